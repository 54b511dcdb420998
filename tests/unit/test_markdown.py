"""``plan --format markdown`` (a pull-request comment) and ``plan --summary``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_cli
from json_schemas import validate
from topoform.model import Queue
from topoform.planner.plan import Action, Change, Plan
from topoform.planner.render import render_text
from topoform.planner.render_markdown import COLLAPSE_OVER, code, render_markdown, render_summary

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "desired.yaml").exists())


def _plan(case: str, *extra: str):
    folder = GOLDEN / case
    args = json.loads((folder / "case.json").read_text()).get("args", [])
    return run_cli(["plan", "-f", folder / "desired.yaml", "--state", folder / "live.json", *args, *extra])


def _empty_state(tmp_path: Path) -> Path:
    path = tmp_path / "empty.json"
    path.write_text('{"vhosts": [], "queues": [], "exchanges": [], "bindings": [], "policies": []}')
    return path


@pytest.mark.parametrize("case", CASES)
def test_markdown_has_the_table_then_blocked_then_changes_by_vhost(case):
    md = _plan(case, "--format", "markdown")
    data = _plan(case, "--json").json
    assert md.code == _plan(case).code
    text = md.out
    assert text.startswith("### topoform plan\n")
    if not data["changes"]:
        assert "**No changes.**" in text and "| vhost |" not in text
        return
    totals = re.search(r"^\| \*\*total\*\* \| \| (.*) \|$", text, re.M).group(1)
    assert [int(x.strip("* ")) for x in totals.split("|")] == [
        data["summary"][a] for a in ("create", "update", "delete", "migrate", "blocked")]
    rows = re.findall(r"^\| (`[^|]*`) \| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
    assert sum(int(r[2]) + int(r[3]) + int(r[4]) + int(r[5]) + int(r[6]) for r in rows) == len(data["changes"])
    changes_at = text.index("#### Changes by vhost")
    blocked = [c for c in data["changes"] if c["action"] == "blocked"]
    if blocked:
        assert text.index("#### Blocked changes") < changes_at
        section = text[text.index("#### Blocked changes"):changes_at]
        for c in blocked:
            assert f"`{c['name']}`" in section and " ".join(c["reason"].split()) in section
    else:
        assert "Blocked changes" not in text
    for vhost in {c["vhost"] for c in data["changes"]}:
        assert f"##### vhost `{vhost}`" in text[changes_at:]
    # every change's line of the text renderer appears in a fenced block
    for line in _plan(case).out.splitlines():
        if line.startswith("  ") and line.strip()[:1] in "+~-!":
            assert "\n" + line[2:] in text[changes_at:], line


def test_a_big_plan_collapses_each_vhost(tmp_path):
    state = _empty_state(tmp_path)
    r = run_cli(["plan", "-f", EXAMPLES / "service.yaml", "--state", state, "--format", "markdown"])
    n = len(run_cli(["plan", "-f", EXAMPLES / "service.yaml", "--state", state, "--json"]).json["changes"])
    assert n > COLLAPSE_OVER
    assert r.out.count("<details><summary>vhost") == 1
    assert f'vhost "orders": {n} changes</summary>' in r.out
    assert r.out.count("<details>") == r.out.count("</details>")


def test_a_small_plan_is_not_collapsed():
    r = _plan("several-vhosts-grouped", "--format", "markdown")
    assert "<details>" not in r.out and r.out.count("```diff") == 2


def _change(name: str, vhost: str = "/", action=Action.BLOCKED, reason="it would lose data") -> Change:
    q = Queue(vhost=vhost, name=name, durable=True)
    return Change(action, "queue", vhost, name, before=q if action is not Action.CREATE else None,
                  after=q if action is not Action.DELETE else None, reason=reason)


@pytest.mark.parametrize("name", ["a`b", "``x``", "a|b", "<script>", "`", "x ```diff"])
def test_names_cannot_break_the_markdown(name):
    plan = Plan(changes=(_change(name, vhost=name), _change(name + "2", action=Action.CREATE, reason="")))
    text = render_markdown(plan)
    for line in text.splitlines():
        if line.startswith("| `"):
            # a GFM cell splits on every unescaped pipe: 7 columns, whatever the name
            assert len(re.split(r"(?<!\\)\|", line.strip("|"))) == 7, line
    outside = re.sub(r"^(`{3,})diff\n.*?^\1$", "", text, flags=re.M | re.S)  # fenced blocks
    outside = re.sub(r"(`+).*?\1", "", outside)  # code spans
    assert "<script>" not in outside  # raw HTML only where Markdown shows it as text
    fences = re.findall(r"^(`{3,})diff$", text, re.M)
    for fence in fences:  # the fence is longer than any backtick run inside the block
        body = text.split(fence + "diff\n", 1)[1].split("\n" + fence + "\n", 1)[0]
        assert fence not in body


@pytest.mark.parametrize("text", ["plain", "a`b", "`lead", "trail`", "x``y", ""])
def test_code_spans_hold_any_text(text):
    span = code(text)
    ticks = re.match(r"`+", span).group(0)
    inner = span[len(ticks):-len(ticks)]
    assert span.endswith(ticks)
    assert inner.strip(" ") == (text or '""')
    assert ticks not in inner


def test_summary_lists_counts_per_vhost_and_kind_and_every_blocked_line():
    r = _plan("several-vhosts-grouped", "--summary")
    full = _plan("several-vhosts-grouped")
    assert r.code == full.code == 3
    data = _plan("several-vhosts-grouped", "--json").json
    for c in data["changes"]:
        assert f'vhost "{c["vhost"]}"' in r.out
    for c in data["changes"]:
        if c["action"] == "blocked":
            line = [l for l in r.out.splitlines() if f'queue {c["name"]} (vhost "{c["vhost"]}")' in l]
            assert len(line) == 1 and " ".join(c["reason"].split()) in line[0]
    assert "arguments.x-max-length: 5 -> 10" not in r.out  # no attribute lines
    assert r.out.splitlines()[-1] == full.out.splitlines()[-1]


def test_summary_of_a_big_plan_is_short(tmp_path):
    state = _empty_state(tmp_path)
    argv = ["plan", "-f", EXAMPLES / "service.yaml", "-f", EXAMPLES / "topoform.yaml", "--state", state]
    full, short = run_cli(argv), run_cli([*argv, "--summary"])
    assert len(short.out.splitlines()) < 15 < len(full.out.splitlines())
    counts = {m.group(1): m.group(2) for m in re.finditer(r"^  (\w+) +(\d+) to create$", short.out, re.M)}
    data = run_cli([*argv, "--json"]).json
    for kind, n in counts.items():
        assert int(n) == sum(1 for c in data["changes"] if c["kind"] == kind and c["vhost"] == "orders") or int(
            n) == sum(1 for c in data["changes"] if c["kind"] == kind and c["vhost"] == "/")


@pytest.mark.parametrize("case", CASES)
def test_summary_json_validates_and_agrees_with_the_plan(case):
    summary = _plan(case, "--summary", "--format", "json")
    data = _plan(case, "--json").json
    validate(summary.json, "plan-summary.schema.json")
    validate(data, "plan.schema.json")
    assert summary.json["summary"] == data["summary"]
    total = sum(n for kinds in summary.json["by_vhost"].values() for row in kinds.values() for n in row.values())
    assert total == len(data["changes"])
    assert len(summary.json["blocked"]) == data["summary"]["blocked"]


def test_summary_markdown_stops_after_the_blocked_changes():
    r = _plan("several-vhosts-grouped", "--summary", "--format", "markdown")
    assert "| **total** |" in r.out and "#### Blocked changes (1)" in r.out
    assert "Changes by vhost" not in r.out and "```" not in r.out


def test_json_flag_equals_format_json_and_conflicts_are_refused():
    assert _plan("several-vhosts-grouped", "--json").out == _plan("several-vhosts-grouped", "--format", "json").out
    r = _plan("several-vhosts-grouped", "--json", "--format", "text")
    assert r.code == 1 and "--json contradicts --format text" in r.err and r.out == ""


def test_render_summary_of_an_empty_plan():
    assert render_summary(Plan()) == "No changes. The broker matches the files.\n"
    assert render_text(Plan()).strip() in render_summary(Plan())


def test_global_objects_are_shown_as_the_broker_not_as_vhost_empty():
    user = Change(action=Action.CREATE, kind="user", vhost="", name="app", after=None)
    blocked = Change(action=Action.BLOCKED, kind="user", vhost="", name="old", reason="needs --prune-users")
    plan = Plan(changes=(user, blocked, _change("q", action=Action.CREATE, reason="")), vhosts=("/",))
    md = render_markdown(plan)
    assert 'vhost ""' not in md and "vhost ``" not in md and "| `` |" not in md, md
    assert "##### broker (global) (2 changes)" in md and "| broker (global) | user |" in md, md
    assert "- **user `old`** broker-wide (global)" in md, md
    block = md.split("##### broker (global) (2 changes)", 1)[1].split("```", 2)[1]
    assert "broker (global)" not in block  # the heading is not repeated inside the diff block
    summary = render_summary(plan)
    assert "broker (global)" in summary and "(vhost \"\")" not in summary, summary
