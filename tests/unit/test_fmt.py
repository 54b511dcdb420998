"""``topoform fmt``: canonical form, comments kept, same Topology, idempotent; ``--check`` exits 3."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ROOT, run_cli
from topoform.fmt import FLOW_WIDTH, format_text, same_meaning
from topoform.load import load_topology

YAML_FILES = sorted(p for base in ("examples", "tests/golden") for p in (ROOT / base).rglob("*.y*ml"))


def _load(path: Path):
    result = load_topology([str(path)], target="4.3")
    return result.topology, sorted((f.code, f.message) for f in result.findings)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_formatted_file_loads_to_the_same_topology_and_keeps_comments(path, tmp_path):
    original = path.read_text()
    formatted = format_text(original, str(path)).text
    copy = tmp_path / path.name
    copy.write_text(formatted)
    assert _load(copy) == _load(path)
    for comment in (l.strip() for l in original.splitlines() if l.strip().startswith("#")):
        assert comment in formatted, f"comment lost: {comment}"
    assert format_text(formatted).text == formatted  # idempotent
    assert not format_text(formatted).changed


def test_key_order_quoting_and_flow_style():
    text = (
        "vhosts:\n"
        "  /:\n"
        "    queues:\n"
        "      q:\n"
        "        arguments:\n"
        "          x-queue-type: 'quorum'\n"
        "        durable: true\n"
        "        bindings:\n"
        "          - routing_key: 'order.created'\n"
        "            exchange: ex\n"
        "          - {exchange: ex, routing_key: '#'}\n"
        "    exchanges:\n"
        "      ex: {durable: true, type: topic}\n"
        "version: 1\n"
    )
    out = format_text(text).text
    assert out == (
        "version: 1\n"
        "vhosts:\n"
        "  /:\n"
        "    exchanges:\n"
        "      ex:\n"
        "        type: topic\n"
        "        durable: true\n"
        "    queues:\n"
        "      q:\n"
        "        durable: true\n"
        "        arguments: {x-queue-type: quorum}\n"
        "        bindings:\n"
        "          - {exchange: ex, routing_key: order.created}\n"
        '          - {exchange: ex, routing_key: "#"}\n'
    )


@pytest.mark.parametrize("value, written", [
    ('"yes"', '"yes"'),      # a string that plain would be a boolean
    ("yes", "yes"),          # a plain boolean stays a boolean
    ('"60000"', '"60000"'),  # a string, not the integer
    ("60000", "60000"),
    ("'*.created'", '"*.created"'),
    ("'it''s'", "it's"),
    ('""', '""'),
    ("'2024-01-31'", '"2024-01-31"'),
    ('"12:30"', '"12:30"'),  # YAML 1.1 reads 12:30 plain as an integer
    ("'a: b'", '"a: b"'),
    ('"~"', '"~"'),
])
def test_quoting_keeps_the_type(value, written):
    text = f"vhosts:\n  /:\n    queues:\n      q:\n        arguments:\n          x-custom: {value}\n"
    out = format_text(text).text
    assert f"x-custom: {written}" in out, out
    assert same_meaning(text, out)
    assert yaml.safe_load(out) == yaml.safe_load(text)


def test_long_mappings_stay_block_and_commented_ones_keep_their_comments():
    args = ", ".join(f"x-arg-{i}: {i}" for i in range(12))
    text = ("vhosts:\n  /:\n    queues:\n      q:\n        arguments: {" + args + "}\n"
            "      r:\n        durable: true  # kept\n")
    out = format_text(text).text
    assert "arguments:\n          x-arg-0: 0\n" in out
    assert "durable: true  # kept" in out
    assert all(len(line) <= FLOW_WIDTH + 40 for line in out.splitlines())


@pytest.mark.parametrize("text, message", [
    ("vhosts:\n  /:\n   queues: {}\n  bad", "not valid YAML"),
    ("a: 1\na: 2\n", "duplicate key"),
    ("a: 1\n---\nb: 2\n", "2 YAML documents"),
])
def test_unformattable_input_is_one_line_error(text, message, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    r = run_cli(["fmt", "-f", path])
    assert r.code == 1 and message in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert path.read_text() == text  # untouched


def test_fmt_check_lists_files_and_exits_3_then_fmt_rewrites(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nvhosts:\n  /:\n    queues:\n      q:\n        durable: true\n      empty: {}\n")
    bad = tmp_path / "bad.yaml"
    bad_text = "# header\nvhosts:\n  /:\n    queues:\n      q2:\n        durable: true\nversion: 1\n"
    bad.write_text(bad_text)
    check = run_cli(["fmt", "--check", "-f", tmp_path])
    assert check.code == 3, check
    assert check.out.splitlines() == [str(bad)]
    assert bad.read_text() == bad_text  # --check writes nothing
    before = good.stat().st_mtime_ns
    r = run_cli(["fmt", "-f", tmp_path])
    assert r.code == 0 and r.out.splitlines() == [str(bad)]
    assert good.stat().st_mtime_ns == before  # an already formatted file is not rewritten
    assert bad.read_text().startswith("# header\nversion: 1\n")
    again = run_cli(["fmt", "--check", "-f", tmp_path])
    assert again.code == 0 and again.out == "" and again.err == ""


def test_fmt_uses_the_default_files(tmp_path):
    (tmp_path / "topoform.yaml").write_text("vhosts: {/: {queues: {q: {}}}}\nversion: 1\n")
    r = run_cli(["fmt", "--check"], cwd=tmp_path)
    assert r.code == 3 and "topoform.yaml" in r.out
    r = run_cli(["fmt"], cwd=tmp_path)
    assert r.code == 0
    assert (tmp_path / "topoform.yaml").read_text() == "version: 1\nvhosts:\n  /:\n    queues:\n      q: {}\n"


def test_crlf_files_keep_crlf(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"vhosts:\r\n  /:\r\n    queues:\r\n      q:\r\n        durable: true\r\nversion: 1\r\n")
    assert run_cli(["fmt", "-f", path]).code == 0
    data = path.read_bytes()
    assert data.startswith(b"version: 1\r\n") and b"\n" not in data.replace(b"\r\n", b"")


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_byte_order_mark_is_kept_and_check_passes_on_the_result(tmp_path, newline):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + newline.join([b"vhosts:", b"  /:", b"    queues:", b"      q:",
                                                      b"        durable: true", b"version: 1", b""]))
    assert run_cli(["fmt", "-f", path]).code == 0
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfversion: 1" + newline), data
    assert run_cli(["fmt", "--check", "-f", path]).code == 0
    assert run_cli(["validate", "-f", path]).code == 0


def test_a_merge_key_stays_first_in_its_mapping(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("vhosts:\n  v:\n    queues:\n      a: &qq\n        durable: true\n      b:\n"
                    "        <<: *qq\n        bindings: []\n        arguments: {x-max-length: 5}\n")
    assert run_cli(["fmt", "-f", path]).code == 0
    assert path.read_text().endswith("      b:\n        <<: *qq\n        arguments: {x-max-length: 5}\n"
                                      "        bindings: []\n"), path.read_text()
    assert run_cli(["fmt", "--check", "-f", path]).code == 0


# ---------------------------------------------------------------------- property: any topology
_names = st.text(alphabet="abcxyz.-_0123456789", min_size=1, max_size=12).filter(lambda s: s.strip() == s)
_tricky = st.sampled_from(["yes", "no", "on", "off", "null", "~", "true", "1e3", "0x1f", "010", "12:30", "#", "*.a",
                           "a: b", "", " lead", "60000", "2024-01-31", "it's", 'say "hi"', "order.#", "-", "?x"])
_values = st.one_of(st.integers(-10**6, 10**6), st.booleans(), _tricky, _names)
_args = st.dictionaries(st.sampled_from(["x-custom", "x-other", "alternate-exchange", "x-max-length"]), _values,
                        max_size=3)
_binding = st.fixed_dictionaries({"exchange": _names}, optional={"routing_key": _values.map(str), "arguments": _args})
_queue = st.fixed_dictionaries({}, optional={"durable": st.booleans(), "arguments": _args,
                                             "bindings": st.lists(_binding, max_size=3)})
_exchange = st.fixed_dictionaries({}, optional={"type": st.sampled_from(["direct", "topic", "fanout"]),
                                                "durable": st.booleans(), "arguments": _args})
_vhost = st.fixed_dictionaries({}, optional={"queues": st.dictionaries(_names, _queue, max_size=4),
                                             "exchanges": st.dictionaries(_names, _exchange, max_size=3)})
_doc = st.fixed_dictionaries({"vhosts": st.dictionaries(st.sampled_from(["/", "a", "b"]), _vhost, min_size=1,
                                                        max_size=2)}, optional={"version": st.just(1)})


@settings(max_examples=int(os.environ.get("TOPOFORM_FMT_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_doc, flow=st.sampled_from([None, True, False]), shuffle=st.randoms())
def test_any_document_formats_to_the_same_meaning_idempotently(doc, flow, shuffle, tmp_path):
    text = yaml.safe_dump(doc, default_flow_style=flow, sort_keys=bool(shuffle.getrandbits(1)), allow_unicode=True)
    result = format_text(text)
    assert same_meaning(text, result.text)
    assert format_text(result.text).text == result.text
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(text)
    b.write_text(result.text)
    assert load_topology([str(a)], target="4.3").topology == load_topology([str(b)], target="4.3").topology


def test_owner_variables_owns_and_external_go_first_and_variables_one_per_line():
    text = ("vhosts:\n  shop:\n    queues:\n      q:\n        durable: true\n"
            "    external: {exchanges: [events]}\n    owns: [orders.*]\n"
            "variables: {ttl: {default: 1}, region: {}}\nowner: team-orders\nversion: 1\n")
    assert format_text(text).text == (
        "version: 1\nowner: team-orders\nvariables:\n  ttl: {default: 1}\n  region: {}\nvhosts:\n  shop:\n"
        "    owns: [orders.*]\n    external: {exchanges: [events]}\n    queues:\n      q:\n        durable: true\n")
