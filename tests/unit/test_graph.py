"""topoform.graph: Mermaid and DOT diagrams.

DOT output is checked by Graphviz itself (``dot -Tjson``: it must parse without a warning,
and the text Graphviz draws must be the real names). Mermaid output is checked by a
strict structural validator of the subset of the flowchart grammar the renderer emits.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from helpers import EXAMPLES, run_cli
from strategies_import_export import topologies
from topoform.graph import build_diagram, highlight_from_route, render
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost

DOT = shutil.which("dot") or "/usr/bin/dot"


# ---------------------------------------------------------------- validators

_ID = r"[eqv]\d+"
_LABEL = r'"(?P<{name}>[^"]*)"'
# exchanges {{hexagon}}, queues [(cylinder)], users ([stadium]), vhosts [/parallelogram/], remote brokers
# [[subroutine]], legend entries [box]
_SHAPES = {"e": ("{{", "}}"), "q": ("[(", ")]"), "u": ("([", "])"), "h": ("[/", "/]"), "r": ("[[", "]]"), "k": ("[", "]")}
_NODE = re.compile(r"(?P<id>[equhrk]\d+)(?P<open>\{\{|\[\(|\(\[|\[/|\[\[|\[)" + _LABEL.format(name="text") +
                   r"(?P<close>\}\}|\)\]|\]\)|/\]|\]\]|\])")
_EDGE = re.compile(r"(?P<src>[equhr]\d+) (?P<arrow>-->|-\.->|==>)(?:\|" + _LABEL.format(name="label") +
                   r"\|)? (?P<dst>[equhr]\d+)")
_SUBGRAPH = re.compile(r"subgraph (?P<id>v\d+|legend) \[" + _LABEL.format(name="label") + r"\]")
_CLASSDEF = re.compile(r"classDef (?P<name>[a-z]+\d*) (?P<style>[a-z-]+:[^,;\s]+( [^,;\s]+)*(,[a-z-]+:[^,;\s]+( [^,;\s]+)*)*)")
_CLASS = re.compile(r"class (?P<ids>[equhrk]\d+(,[equhrk]\d+)*) (?P<name>[a-z]+\d*)")
_LINKSTYLE = re.compile(r"linkStyle (?P<index>\d+) (?P<style>[a-z-]+:[^,;\s]+(,[a-z-]+:[^,;\s]+)*)")
# inside a label: entity codes and <br/> only; no raw quote, #, ;, &, <, >, %, `, |
_LABEL_TEXT = re.compile(r"(?:[^\"#;&<>%`|\n\r\t]|#\d+;|<br/>)*")


def _decode(label: str) -> list[str]:
    return [re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), part) for part in label.split("<br/>")]


def check_mermaid(text: str) -> dict:
    """Strictly validate renderer output; return nodes {id: [label lines]}, edges [(src, dst, arrow, label)]."""
    lines = text.split("\n")
    assert lines[-1] == "", "output ends with a newline"
    lines = lines[:-1]
    if lines[0] == "---":
        assert lines[1].startswith("title: ") and lines[2] == "---"
        json.loads(lines[1][len("title: "):])  # a JSON (hence YAML) string
        lines = lines[3:]
    assert lines[0] == "flowchart LR"
    nodes: dict[str, list[str]] = {}
    edges: list[tuple] = []
    classdefs: set[str] = set()
    depth = 0
    subgraphs: set[str] = set()
    for line in lines[1:]:
        stripped = line.strip()
        assert line == "  " * (depth + 1) + stripped or stripped == "end", f"indentation: {line!r}"
        if m := _SUBGRAPH.fullmatch(stripped):
            assert depth == 0 and m["id"] not in subgraphs
            assert _LABEL_TEXT.fullmatch(m["label"]), line
            subgraphs.add(m["id"])
            depth += 1
        elif stripped == "end":
            assert depth == 1
            depth -= 1
        elif m := _NODE.fullmatch(stripped):
            label = m["text"]
            assert _LABEL_TEXT.fullmatch(label), f"unescaped label: {line!r}"
            assert m["id"] not in nodes, f"node {m['id']} declared twice"
            assert (m["open"], m["close"]) == _SHAPES[m["id"][0]], f"shape of {m['id']}: {line!r}"
            nodes[m["id"]] = _decode(label)
        elif m := _EDGE.fullmatch(stripped):
            assert depth == 0
            if m["label"] is not None:
                assert _LABEL_TEXT.fullmatch(m["label"]) and m["label"], f"unescaped label: {line!r}"
            edges.append((m["src"], m["dst"], m["arrow"], _decode(m["label"] or "")[0]))
        elif m := _CLASSDEF.fullmatch(stripped):
            classdefs.add(m["name"])
        elif m := _CLASS.fullmatch(stripped):
            assert m["name"] in classdefs, f"class {m['name']} used before classDef"
            for node_id in m["ids"].split(","):
                assert node_id in nodes, f"class for undeclared node {node_id}"
        elif m := _LINKSTYLE.fullmatch(stripped):
            assert int(m["index"]) < len(edges), f"linkStyle {m['index']} out of range ({len(edges)} edges)"
        else:
            raise AssertionError(f"line does not match the grammar: {line!r}")
    assert depth == 0
    for src, dst, _, _ in edges:
        assert src in nodes and dst in nodes, f"edge {src}->{dst} to an undeclared node"
    return {"nodes": nodes, "edges": edges}


def check_dot(text: str) -> dict:
    """Run Graphviz on the DOT text; return {node id: drawn label lines}, edges [(tail, head, label, color)]."""
    if not Path(DOT).exists():
        pytest.fail("Graphviz 'dot' is required for the graph tests (apt-get install graphviz)")
    proc = subprocess.run([DOT, "-Tjson"], input=text.encode("utf-8"), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"", f"Graphviz warned: {proc.stderr.decode()}"
    data = json.loads(proc.stdout)
    objects = [o for o in data.get("objects", []) if not o["name"].startswith("cluster_")]
    names = {o["_gvid"]: o["name"] for o in objects}
    nodes = {o["name"]: [op["text"] for op in o["_ldraw_"] if op["op"] == "T"] for o in objects}
    edges = []
    for e in data.get("edges", []):
        texts = [op["text"] for op in e.get("_ldraw_", []) if op["op"] == "T"]
        edges.append((names[e["tail"]], names[e["head"]], "\n".join(texts), e.get("color")))
    subprocess.run([DOT, "-Tsvg"], input=text.encode("utf-8"), capture_output=True, timeout=60, check=True)
    return {"nodes": nodes, "edges": edges}


# ---------------------------------------------------------------- fixtures

def _sample() -> Topology:
    return Topology.build([
        Vhost("/"),
        Exchange("/", "topic_logs", "topic", durable=True, arguments=Args({"alternate-exchange": "unrouted"})),
        Exchange("/", "unrouted", "fanout", durable=True),
        Exchange("/", 'h "quoted" #1; <b>&amp;', "headers"),
        Exchange("/", "internal.x", "direct", internal=True),
        Queue("/", "Q1", durable=True, arguments=Args({"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx"})),
        Queue("/", "Q2"),
        Queue("/", "lost", durable=True),
        Queue("/", "policy-dl"),
        Binding("/", "topic_logs", "Q1", routing_key="*.orange.*"),
        Binding("/", "topic_logs", "Q2", routing_key="lazy.#"),
        Binding("/", "topic_logs", 'h "quoted" #1; <b>&amp;', "exchange", "x.*"),
        Binding("/", 'h "quoted" #1; <b>&amp;', "Q2", arguments=Args({"x-match": "any", "format": "pdf"})),
        Binding("/", "unrouted", "lost"),
        Binding("/", "amq.topic", "Q2", routing_key="from.builtin"),
        Policy("/", "dl", "^policy-", "queues", 1, Args({"dead-letter-exchange": "unrouted"})),
    ])


def _by_label(result: dict) -> dict[str, str]:
    return {lines[0]: node_id for node_id, lines in result["nodes"].items()}


# ---------------------------------------------------------------- mermaid

def test_mermaid_draws_every_object_once_with_its_real_name():
    t = _sample()
    result = check_mermaid(render(t, "mermaid"))
    labels = _by_label(result)
    for x in t.exchanges.values():
        assert labels[x.name].startswith("e")
    for q in t.queues.values():
        assert labels[q.name].startswith("q")
    assert "amq.topic" in labels and "dlx" in labels  # referenced, not declared


def test_mermaid_escapes_quotes_hashes_and_markup():
    text = render(_sample(), "mermaid")
    assert '"h #34;quoted#34; #35;1#59; #60;b#62;#38;amp#59;<br/>headers"' in text


def test_mermaid_edges_bindings_alternate_and_dead_letter_are_distinct():
    result = check_mermaid(render(_sample(), "mermaid"))
    ids = _by_label(result)
    edges = {(s, d): (arrow, label) for s, d, arrow, label in result["edges"]}
    assert edges[(ids["topic_logs"], ids["Q2"])] == ("-->", "lazy.#")
    assert edges[(ids["topic_logs"], ids['h "quoted" #1; <b>&amp;'])] == ("-->", "x.*")
    assert edges[(ids["topic_logs"], ids["unrouted"])] == ("-.->", "alternate")
    assert edges[(ids["Q1"], ids["dlx"])] == ("-.->", "dead-letter")
    assert edges[(ids["policy-dl"], ids["unrouted"])] == ("-.->", "dead-letter (policy dl)")
    assert edges[(ids['h "quoted" #1; <b>&amp;'], ids["Q2"])] == ("-->", "format=pdf x-match=any")


def test_mermaid_route_highlight_uses_thick_links_and_linkstyle():
    from topoform.routing import Router

    t = _sample()
    result = Router(t).route("/", "topic_logs", "x.y", {"format": "pdf"})
    h = highlight_from_route("/", "topic_logs", "x.y", result)
    text = render(t, "mermaid", highlight=h)
    parsed = check_mermaid(text)
    ids = _by_label(parsed)
    thick = [(s, d) for s, d, arrow, _ in parsed["edges"] if arrow == "==>"]
    hexagon = ids['h "quoted" #1; <b>&amp;']
    assert thick == [(hexagon, ids["Q2"]), (ids["topic_logs"], hexagon)]
    for index, (s, d, arrow, _) in enumerate(parsed["edges"]):
        if arrow == "==>":
            assert f"linkStyle {index} stroke:#d50000" in text
    assert 'title: "route: topic_logs [x.y] -> Q2"' in text


def test_mermaid_route_through_the_alternate_exchange_is_highlighted():
    from topoform.routing import Router

    t = _sample()
    h = highlight_from_route("/", "topic_logs", "nothing", Router(t).route("/", "topic_logs", "nothing"))
    assert h.queues == ("lost",)
    diagram = build_diagram(t, highlight=h)
    hot = [(e.kind, e.label) for e in diagram.edges if e.highlighted]
    assert hot == [("binding", ""), ("alternate", "alternate")]


def test_mermaid_several_vhosts_are_subgraphs_and_ids_stay_unique():
    t = Topology.build([Vhost("/"), Vhost("b"), Queue("/", "same"), Queue("b", "same"),
                        Exchange("b", "x", "fanout"), Binding("b", "x", "same")])
    text = render(t, "mermaid")
    parsed = check_mermaid(text)
    assert 'subgraph v0 ["vhost /"]' in text and 'subgraph v1 ["vhost b"]' in text
    assert sorted(parsed["nodes"]) == ["e0", "q0", "q1"]
    only_b = check_mermaid(render(t, "mermaid", vhosts=["b"]))
    assert "subgraph" not in render(t, "mermaid", vhosts=["b"]) and len(only_b["nodes"]) == 2


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_renders_valid_mermaid_and_dot(example):
    from topoform.load import load_topology

    t = load_topology([str(example)]).topology
    m = check_mermaid(render(t, "mermaid"))
    d = check_dot(render(t, "dot"))
    assert len(m["edges"]) == len(d["edges"]) >= len(t.bindings)
    assert sorted(lines[0] for lines in m["nodes"].values()) == sorted(lines[0] for lines in d["nodes"].values())


# ---------------------------------------------------------------- dot

def test_dot_is_accepted_by_graphviz_and_draws_the_real_names():
    t = _sample()
    d = check_dot(render(t, "dot"))
    drawn = {lines[0] for lines in d["nodes"].values()}
    assert {x.name for x in t.exchanges.values()} <= drawn
    assert {q.name for q in t.queues.values()} <= drawn
    assert ("topic_logs\ntopic" in {"\n".join(lines) for lines in d["nodes"].values()})


def test_dot_styles_alternate_dead_letter_and_route():
    from topoform.routing import Router

    t = _sample()
    h = highlight_from_route("/", "topic_logs", "a.orange.b", Router(t).route("/", "topic_logs", "a.orange.b"))
    text = render(t, "dot", highlight=h)
    d = check_dot(text)
    ids = {lines[0]: node for node, lines in d["nodes"].items()}
    colors = {(s, dst): (label, color) for s, dst, label, color in d["edges"]}
    assert colors[(ids["topic_logs"], ids["Q1"])] == ("*.orange.*", "#d50000")
    assert colors[(ids["topic_logs"], ids["unrouted"])] == ("alternate", "#6a1b9a")
    assert colors[(ids["Q1"], ids["dlx"])] == ("dead-letter", "#757575")
    assert 'style="dashed"' in text
    assert 'label="route: topic_logs [a.orange.b] -> Q1"' in text


def test_dot_escapes_backslashes_and_newlines():
    t = Topology.build([Vhost("/"), Queue("/", "back\\slash \\n \\N"), Queue("/", "two\nlines"),
                        Queue("/", "amp &lt; &#945;")])
    d = check_dot(render(t, "dot"))
    drawn = [lines for lines in d["nodes"].values()]
    assert ["back\\slash \\n \\N"] in drawn
    assert ["two", "lines"] in drawn
    assert ["amp &lt; &#945;"] in drawn


def test_default_exchange_route_draws_the_implicit_binding():
    from topoform.routing import Router

    t = Topology.build([Vhost("/"), Queue("/", "hello")])
    h = highlight_from_route("/", "", "hello", Router(t).route("/", "", "hello"))
    m = check_mermaid(render(t, "mermaid", highlight=h))
    assert m["edges"] == [("e0", "q0", "==>", "hello")]
    assert m["nodes"]["e0"] == ["(default exchange)"]
    check_dot(render(t, "dot", highlight=h))


def test_unknown_format_is_a_value_error():
    with pytest.raises(ValueError):
        render(Topology(), "svg")


def test_output_is_deterministic():
    t = _sample()
    shuffled = Topology.build(reversed(list(t.resources())))
    assert render(t, "mermaid") == render(shuffled, "mermaid")
    assert render(t, "dot") == render(shuffled, "dot")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(topologies())
def test_random_topologies_render_valid_diagrams_with_real_names(t):
    m = check_mermaid(render(t, "mermaid"))
    d = check_dot(render(t, "dot"))
    names = {lines[0] for lines in m["nodes"].values()}
    assert {x.name for x in t.exchanges.values()} <= names
    assert {q.name for q in t.queues.values()} <= names
    # DOT shows control characters (a tab) as \xNN; Mermaid labels carry them as entities
    visible = [re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda c: f"\\x{ord(c.group()):02x}", lines[0])
               for lines in m["nodes"].values()]
    assert sorted(visible) == sorted(lines[0] for lines in d["nodes"].values())
    assert len(m["edges"]) == len(d["edges"]) >= len(t.bindings)


# ---------------------------------------------------------------- CLI

def _tutorial(tmp_path) -> Path:
    f = tmp_path / "t.yaml"
    f.write_text("vhosts:\n  /:\n    exchanges:\n      topic_logs: {type: topic}\n      internal.x: {type: fanout, internal: true}\n"
                 "    queues:\n      Q1: {bindings: [{exchange: topic_logs, routing_key: '*.orange.*'}]}\n"
                 "      Q2: {bindings: [{exchange: topic_logs, routing_key: 'lazy.#'}]}\n"
                 "  other:\n    queues: {elsewhere: {}}\n")
    return f


def test_cli_graph_mermaid_and_dot(tmp_path):
    f = _tutorial(tmp_path)
    r = run_cli(["graph", "-f", f])
    assert r.code == 0, r
    check_mermaid(r.out)
    r = run_cli(["graph", "-f", f, "--format", "dot"])
    assert r.code == 0, r
    check_dot(r.out)
    out = tmp_path / "g.dot"
    assert run_cli(["graph", "-f", f, "--format", "dot", "-o", out]).code == 0
    check_dot(out.read_text())


def test_cli_graph_route_highlights_and_draws_the_route_vhost(tmp_path):
    f = _tutorial(tmp_path)
    r = run_cli(["graph", "-f", f, "--route", "topic_logs", "lazy.orange.x"])
    assert r.code == 0, r
    parsed = check_mermaid(r.out)
    assert sum(1 for e in parsed["edges"] if e[2] == "==>") == 2
    assert "elsewhere" not in r.out
    assert "route: topic_logs [lazy.orange.x] -> Q1, Q2" in r.err


def test_cli_graph_vhost_filter(tmp_path):
    r = run_cli(["graph", "-f", _tutorial(tmp_path), "--vhost", "other"])
    assert r.code == 0, r
    assert [lines[0] for lines in check_mermaid(r.out)["nodes"].values()] == ["elsewhere"]


@pytest.mark.parametrize("argv, words", [
    (["--format", "svg"], "invalid choice"),
    (["--route", "nope", "k"], "no exchange 'nope'"),
    (["--route", "internal.x", "k"], "internal"),
    (["--route", "topic_logs"], "expected 2 arguments"),
    (["--vhost", "missing"], "not in the files"),
    (["-H", "a=1"], "needs --route"),
])
def test_cli_graph_errors_exit_1_without_traceback(tmp_path, argv, words):
    r = run_cli(["graph", "-f", _tutorial(tmp_path), *argv])
    assert r.code == 1, r
    assert words in r.err and "Traceback" not in r.err
