"""Rendering: symbols, attribute lines, reasons, grouping, colour rules, JSON."""
from __future__ import annotations

from topoform.model import Args, Binding, Exchange, Policy, Queue, Vhost
from topoform.planner.plan import Action, Change, Plan, Step
from topoform.planner.render import NO_CHANGES, format_value, render_json, render_text, summary_line

from helpers import run_cli

Q_LIVE = Queue("/", "payments", durable=True, arguments=Args({"x-message-ttl": 60000}))
Q_WANT = Queue("/", "payments", durable=True, arguments=Args({"x-message-ttl": 30000}))


def _plan():
    return Plan(changes=(
        Change(Action.CREATE, "queue", "/", "orders", after=Queue("/", "orders", durable=True)),
        Change(Action.UPDATE, "policy", "/", "p", before=Policy("/", "p", "^a"), after=Policy("/", "p", "^b"),
               diff=("pattern",)),
        Change(Action.CREATE, "binding", "/", Binding("/", "events", "orders", routing_key="order.*").name,
               after=Binding("/", "events", "orders", routing_key="order.*")),
        Change(Action.BLOCKED, "queue", "/", "payments", before=Q_LIVE, after=Q_WANT, diff=("arguments.x-message-ttl",),
               reason="Cannot change arguments.x-message-ttl in place."),
        Change(Action.MIGRATE, "queue", "/", "jobs", before=Queue("/", "jobs"), after=Queue("/", "jobs", durable=True),
               diff=("durable",), reason="Recreated with its messages.", steps=(Step("move", {"to": "t"}), Step("delete"))),
        Change(Action.DELETE, "exchange", "other", "old", before=Exchange("other", "old"), reason="Not in the files."),
    ), unmanaged=(Queue("/", "legacy"),))


def test_text_groups_by_vhost_with_symbols_and_summary():
    text = render_text(_plan())
    lines = text.splitlines()
    assert lines[0] == 'vhost "/"'
    assert any(l.startswith("  +   queue orders") and l.endswith("durable=true") for l in lines)
    assert any(l.startswith("  ~   policy p") and l.endswith('pattern: "^a" -> "^b"') for l in lines)
    assert "  +   binding events -> orders [order.*]" in lines
    assert any(l.startswith("  !   queue payments") and "arguments.x-message-ttl: 60000 -> 30000" in l for l in lines)
    assert any(l.startswith("  -/+ queue jobs") for l in lines)
    assert 'vhost "other"' in lines
    assert lines[-1] == "Plan: 2 to create, 1 to update, 1 to delete, 1 to migrate, 1 blocked."


def test_reason_on_blocked_delete_and_migrate_lines():
    text = render_text(_plan())
    for reason in ("Cannot change arguments.x-message-ttl in place.", "Recreated with its messages.", "Not in the files."):
        assert reason in text
    assert "2 steps: move, delete" in text


def test_unmanaged_objects_are_listed_with_a_prune_hint():
    text = render_text(_plan())
    assert "--prune" in text and "    queue legacy" in text


def test_empty_plan_says_so_in_words():
    assert render_text(Plan()) == NO_CHANGES + "\n"


def test_values_show_their_types():
    assert format_value(60000) == "60000" and format_value("60000") == '"60000"' and format_value(True) == "true"


def test_no_colour_unless_asked():
    assert "\x1b[" not in render_text(_plan())
    coloured = render_text(_plan(), color=True)
    assert "\x1b[32m" in coloured and "\x1b[1;31m" in coloured
    import re
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render_text(_plan())


def test_cli_colour_only_on_a_terminal_and_never_with_no_color(tmp_path):
    (tmp_path / "topoform.yaml").write_text("vhosts:\n  v:\n    queues: {q: {}}\n")
    (tmp_path / "s.json").write_text('{"vhosts": [{"name": "v"}]}')
    argv = ["plan", "--state", "s.json"]
    assert "\x1b[" not in run_cli(argv, cwd=tmp_path).out
    assert "\x1b[" in run_cli(argv, cwd=tmp_path, stdout_isatty=True).out
    assert "\x1b[" not in run_cli(argv, cwd=tmp_path, stdout_isatty=True, environ={"NO_COLOR": "1"}).out


def test_json_is_the_contract():
    data = render_json(_plan())
    assert data["format_version"] == 1
    assert data["summary"] == {"create": 2, "update": 1, "delete": 1, "migrate": 1, "blocked": 1}
    migrate = [c for c in data["changes"] if c["action"] == "migrate"][0]
    assert migrate["steps"] == [{"op": "move", "to": "t"}, {"op": "delete"}]
    assert data["changes"][0]["before"] is None and data["changes"][0]["after"]["name"] == "orders"


def test_summary_line():
    assert summary_line(Plan()) == "Plan: 0 to create, 0 to update, 0 to delete, 0 to migrate, 0 blocked."


def test_vhost_create_shows_its_settings():
    plan = Plan(changes=(Change(Action.CREATE, "vhost", "v", "v", after=Vhost("v", description="d", tags=("a",))),))
    assert 'description="d" tags=["a"]' in render_text(plan)
