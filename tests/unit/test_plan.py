"""make_plan on small topologies: classification, dependents, ordering, options, round trip."""
from __future__ import annotations

import json

import pytest

from topoform.broker.live import LiveState, QueueStats, to_definitions, topology_fingerprint
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost
from topoform.planner import PlanOptions, dependent_bindings, make_plan, managed_vhosts
from topoform.planner.plan import PHASES, Action, Change, Plan, order_changes, phase_of

from helpers import run_cli


def live_state(*resources, stats=None, missing=(), source="broker") -> LiveState:
    t = Topology.build(resources)
    return LiveState(topology=t, queue_stats=stats or {}, missing_vhosts=frozenset(missing),
                     fingerprint=topology_fingerprint(t), source=source)


def desired(*resources) -> Topology:
    return Topology.build(resources)


V = Vhost("v")


def actions(plan: Plan):
    return [(c.action.value, c.kind, c.name) for c in plan.changes]


def test_equal_sides_give_an_empty_plan():
    objs = (V, Exchange("v", "x", "topic", durable=True), Queue("v", "q", durable=True),
            Binding("v", "x", "q", routing_key="a.#"), Policy("v", "p", "^q", definition=Args({"max-length": 1})))
    plan = make_plan(desired(*objs), live_state(*objs), PlanOptions())
    assert plan.changes == () and plan.unmanaged == () and not plan.has_changes


def test_missing_vhost_is_created_with_its_content():
    plan = make_plan(desired(V, Queue("v", "q")), live_state(missing=["v"]), PlanOptions())
    assert actions(plan) == [("create", "vhost", "v"), ("create", "queue", "q")]


def test_changed_ttl_is_blocked_naming_the_field():
    plan = make_plan(desired(V, Queue("v", "q", arguments=Args({"x-message-ttl": 30000}))),
                     live_state(V, Queue("v", "q", arguments=Args({"x-message-ttl": 60000}))), PlanOptions())
    (change,) = plan.changes
    assert change.action is Action.BLOCKED and change.diff == ("arguments.x-message-ttl",)
    assert "arguments.x-message-ttl" in change.reason and "406" in change.reason
    assert change.before.arguments["x-message-ttl"] == 60000 and change.after.arguments["x-message-ttl"] == 30000


def test_blocked_change_keeps_the_rest_of_the_plan():
    plan = make_plan(desired(V, Queue("v", "a", durable=True), Queue("v", "b")),
                     live_state(V, Queue("v", "a")), PlanOptions())
    assert actions(plan) == [("blocked", "queue", "a"), ("create", "queue", "b")]
    assert plan.summary == {"create": 1, "update": 0, "delete": 0, "migrate": 0, "blocked": 1}


def test_policy_change_is_an_update():
    plan = make_plan(desired(V, Policy("v", "p", "^a")), live_state(V, Policy("v", "p", "^b")), PlanOptions())
    assert actions(plan) == [("update", "policy", "p")]
    assert plan.changes[0].diff == ("pattern",)


def test_vhost_setting_change_is_an_update_and_unset_settings_are_unmanaged():
    plan = make_plan(desired(Vhost("v", description="new")),
                     live_state(Vhost("v", description="old", tags=("x",), default_queue_type="quorum")), PlanOptions())
    assert actions(plan) == [("update", "vhost", "v")] and plan.changes[0].diff == ("description",)


def test_unmanaged_objects_are_listed_without_prune():
    extra = (Queue("v", "old"), Exchange("v", "oldx"), Binding("v", "oldx", "old"), Policy("v", "oldp", "."))
    plan = make_plan(desired(V), live_state(V, *extra), PlanOptions())
    assert plan.changes == ()
    assert {r.key for r in plan.unmanaged} == {r.key for r in extra}


def test_prune_deletes_in_reverse_dependency_order():
    extra = (Queue("v", "old"), Exchange("v", "oldx"), Binding("v", "oldx", "old"), Policy("v", "oldp", "."))
    plan = make_plan(desired(V), live_state(V, *extra, stats={("queue", "v", "old"): QueueStats(0, 0)}),
                     PlanOptions(prune=True))
    assert [(a, k) for a, k, _ in actions(plan)] == [("delete", "binding"), ("delete", "queue"),
                                                     ("delete", "exchange"), ("delete", "policy")]
    assert plan.unmanaged == ()
    assert all(c.before is not None and c.after is None and c.reason for c in plan.changes)


def test_deleting_a_queue_with_messages_is_blocked_without_allow_data_loss():
    live = live_state(V, Queue("v", "full"), stats={("queue", "v", "full"): QueueStats(7, 0)})
    plan = make_plan(desired(V), live, PlanOptions(prune=True))
    assert actions(plan) == [("blocked", "queue", "full")] and "7 messages" in plan.changes[0].reason
    plan = make_plan(desired(V), live, PlanOptions(prune=True, allow_data_loss=True))
    assert actions(plan) == [("delete", "queue", "full")]


def test_unknown_message_count_blocks_the_delete():
    plan = make_plan(desired(V), live_state(V, Queue("v", "q")), PlanOptions(prune=True))
    assert actions(plan) == [("blocked", "queue", "q")] and "may hold messages" in plan.changes[0].reason


def test_never_managed_objects_are_never_planned():
    d = desired(V, Exchange("v", "amq.topic", "topic", durable=True), Queue("v", "rt", exclusive=True),
                Exchange("v", "x"), Binding("v", "x", "rt"), Binding("v", "amq.topic", "q2"), Queue("v", "q2"))
    plan = make_plan(d, live_state(V, Exchange("v", "x"), Queue("v", "q2"), Binding("v", "amq.topic", "q2")),
                     PlanOptions(prune=True))
    assert plan.changes == ()


def test_desired_exclusive_queue_over_a_shared_live_queue_is_blocked_with_405():
    plan = make_plan(desired(V, Queue("v", "q", exclusive=True)), live_state(V, Queue("v", "q")), PlanOptions())
    (change,) = plan.changes
    assert change.action is Action.BLOCKED and "exclusive" in change.diff and "405" in change.reason


def test_quorum_default_vhost_without_type_equals_live_quorum_queue():
    qv = Vhost("v", default_queue_type="quorum")
    plan = make_plan(desired(V, Queue("v", "q", durable=True)),
                     live_state(qv, Queue("v", "q", durable=True, arguments=Args({"x-queue-type": "quorum"}))),
                     PlanOptions())
    assert plan.changes == ()


def test_managed_vhosts_are_the_files_vhosts_narrowed_by_option():
    d = desired(Vhost("a"), Vhost("b"), Queue("c", "q"))
    assert managed_vhosts(d) == ["a", "b", "c"]
    assert managed_vhosts(d, PlanOptions(vhosts=("b", "zz"))) == ["b"]


def test_other_vhosts_of_the_live_state_are_ignored_and_fingerprint_narrowed():
    live = live_state(V, Vhost("w"), Queue("w", "stranger"))
    plan = make_plan(desired(V), live, PlanOptions(prune=True))
    assert plan.changes == () and plan.vhosts == ("v",)
    assert plan.fingerprint == topology_fingerprint(Topology.build([V])) != live.fingerprint


def test_dependent_bindings_of_a_recreated_object():
    t = desired(V, Exchange("v", "x"), Exchange("v", "y"), Queue("v", "q"),
                Binding("v", "x", "q"), Binding("v", "y", "x", "exchange"), Binding("v", "x", "y", "exchange"))
    assert [b.source for b in dependent_bindings(t, Queue("v", "q"))] == ["x"]
    assert len(dependent_bindings(t, Exchange("v", "x"))) == 3


def test_migrate_hands_blocked_changes_to_the_migration_engine(monkeypatch):
    from topoform.planner import migration

    seen = []

    def fake_expand(change, want, have, stats, force=False):
        seen.append((change.name, force))
        return Change(Action.MIGRATE, change.kind, change.vhost, change.name, change.before, change.after,
                      change.diff, "recreate", ())

    monkeypatch.setattr(migration, "expand_migration", fake_expand)
    plan = make_plan(desired(V, Queue("v", "q", durable=True)), live_state(V, Queue("v", "q")),
                     PlanOptions(migrate=True, force=True))
    assert seen == [("q", True)] and actions(plan) == [("migrate", "queue", "q")]


def test_phase_order_creates_before_migrations_before_deletes():
    q, x = Queue("v", "q"), Exchange("v", "x")
    changes = [Change(Action.DELETE, "exchange", "v", "x", before=x), Change(Action.CREATE, "queue", "v", "q", after=q),
               Change(Action.MIGRATE, "queue", "v", "m", before=q, after=q),
               Change(Action.CREATE, "vhost", "v", "v", after=V),
               Change(Action.DELETE, "binding", "v", "b", before=Binding("v", "x", "q")),
               Change(Action.UPDATE, "policy", "v", "p", before=Policy("v", "p", "a"), after=Policy("v", "p", "b"))]
    ordered = order_changes(changes)
    assert [(c.action.value, c.kind) for c in ordered] == [
        ("create", "vhost"), ("update", "policy"), ("create", "queue"), ("migrate", "queue"),
        ("delete", "binding"), ("delete", "exchange")]
    assert [phase_of(c) for c in ordered] == sorted(phase_of(c) for c in ordered)
    assert PHASES[0] == ("apply", "vhost")


def test_plan_json_round_trips():
    plan = make_plan(desired(V, Queue("v", "q", arguments=Args({"x-message-ttl": 1})), Binding("v", "x", "q", arguments=Args({"n": 1})),
                             Exchange("v", "x")),
                     live_state(V, Queue("v", "q"), Queue("v", "old")), PlanOptions())
    data = json.loads(json.dumps(plan.to_dict()))
    again = Plan.from_dict(data)
    assert again.to_dict() == plan.to_dict()
    assert again.changes == plan.changes and again.unmanaged == plan.unmanaged
    assert set(data) >= {"format_version", "changes", "summary", "fingerprint"}
    assert set(data["changes"][0]) == {"action", "kind", "vhost", "name", "before", "after", "diff", "reason"}


# ---- the CLI, offline through --state
YAML = "vhosts:\n  v:\n    queues:\n      q: {durable: true, arguments: {x-message-ttl: 1000}}\n"


def _files(tmp_path, live_resources):
    (tmp_path / "topoform.yaml").write_text(YAML)
    (tmp_path / "state.json").write_text(json.dumps(to_definitions(Topology.build(live_resources))))


def test_cli_exit_codes(tmp_path):
    _files(tmp_path, [V])
    assert run_cli(["plan", "--state", "state.json"], cwd=tmp_path).code == 0
    assert run_cli(["plan", "--state", "state.json", "--detailed-exitcode"], cwd=tmp_path).code == 2
    _files(tmp_path, [V, Queue("v", "q", durable=True, arguments=Args({"x-message-ttl": 1000}))])
    assert run_cli(["plan", "--state", "state.json", "--detailed-exitcode"], cwd=tmp_path).code == 0
    _files(tmp_path, [V, Queue("v", "q", durable=True)])
    assert run_cli(["plan", "--state", "state.json", "--detailed-exitcode"], cwd=tmp_path).code == 3
    assert run_cli(["plan", "--state", "state.json"], cwd=tmp_path).code == 3


def test_cli_out_saves_the_json_plan_with_fingerprint(tmp_path):
    _files(tmp_path, [V])
    r = run_cli(["plan", "--state", "state.json", "--out", "plan.json"], cwd=tmp_path)
    assert r.code == 0 and "Saved the plan to plan.json" in r.err
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["fingerprint"].startswith("sha256:") and saved["summary"]["create"] == 1
    assert Plan.from_dict(saved).changes[0].after == Queue("v", "q", durable=True,
                                                           arguments=Args({"x-message-ttl": 1000}))
    js = run_cli(["plan", "--state", "state.json", "--json"], cwd=tmp_path)
    assert json.loads(js.out) == saved


def test_cli_out_message_is_a_whole_line_and_the_plan_records_its_state_file(tmp_path):
    _files(tmp_path, [V])
    r = run_cli(["plan", "--state", "state.json", "--out", "plan.json"], cwd=tmp_path)
    assert r.err.endswith("run 'topoform apply plan.json' to carry it out.\n"), r
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["state_file"] == "state.json" and "broker" not in saved
    assert saved["digest"].startswith("sha256:")


@pytest.mark.parametrize("out", ["", "  "])
def test_cli_out_empty_is_a_usage_error(tmp_path, out):
    _files(tmp_path, [V])
    r = run_cli(["plan", "--state", "state.json", "--out", out], cwd=tmp_path)
    assert r.code == 1 and "--out needs a file name" in r.err and len(r.err.strip().splitlines()) == 1, r
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "topoform.yaml"]


def test_cli_out_dash_writes_the_plan_to_stdout(tmp_path):
    _files(tmp_path, [V])
    r = run_cli(["plan", "--state", "state.json", "--out", "-", "--detailed-exitcode"], cwd=tmp_path)
    assert r.code == 2, r
    assert not (tmp_path / "-").exists()
    assert r.json == run_cli(["plan", "--state", "state.json", "--json"], cwd=tmp_path).json  # stdout: only the plan
    assert "+   queue q" in r.err  # the text plan, on stderr
    saved = tmp_path / "saved.json"
    saved.write_text(r.out)
    assert run_cli(["show", saved], cwd=tmp_path).code == 0  # a plan file as --out FILE writes it
    r = run_cli(["plan", "--state", "state.json", "--out", "-", "--json"], cwd=tmp_path)
    assert r.code == 0 and r.json["summary"]["create"] == 1 and r.err == "", r  # one document
    for flags, says in ((["--format", "markdown"], "--format markdown"), (["--summary"], "--summary")):
        r = run_cli(["plan", "--state", "state.json", "--out", "-", *flags], cwd=tmp_path)
        assert r.code == 1 and f"--out - writes the plan JSON to standard output; {says}" in r.err and r.out == "", r


def test_cli_out_dash_or_empty_with_targets_is_refused_before_any_work(tmp_path):
    _files(tmp_path, [V])
    (tmp_path / "targets.yaml").write_text("targets:\n  a: {url: 'amqp://localhost:1/'}\n")
    r = run_cli(["plan", "--targets", "targets.yaml", "--out", "-"], cwd=tmp_path)
    assert r.code == 1 and "--out - cannot be used with --targets" in r.err and r.out == "", r
    r = run_cli(["plan", "--targets", "targets.yaml", "--out", ""], cwd=tmp_path)
    assert r.code == 1 and "--out needs a file name" in r.err and r.out == "", r


def test_cli_usage_and_input_errors_exit_1_in_one_line(tmp_path):
    _files(tmp_path, [V])
    r = run_cli(["plan", "--state", "nope.json"], cwd=tmp_path)
    assert r.code == 1 and "cannot read state file" in r.err and "Traceback" not in r.err
    r = run_cli(["plan", "--state", "state.json", "--vhost", "zz"], cwd=tmp_path)
    assert r.code == 1 and "'zz' is not a vhost of the files" in r.err
    r = run_cli(["plan", "--bogus"], cwd=tmp_path)
    assert r.code == 1


def test_cli_vhost_narrows(tmp_path):
    (tmp_path / "topoform.yaml").write_text("vhosts:\n  a:\n    queues: {qa: {}}\n  b:\n    queues: {qb: {}}\n")
    (tmp_path / "state.json").write_text(json.dumps({"vhosts": [{"name": "a"}, {"name": "b"}]}))
    r = run_cli(["plan", "--state", "state.json", "--vhost", "b", "--json"], cwd=tmp_path)
    assert [c["name"] for c in r.json["changes"]] == ["qb"] and r.json["vhosts"] == ["b"]


def test_migration_artifacts_are_neither_unmanaged_nor_pruned():
    from topoform.planner import migration

    temp = Queue("v", migration.temp_queue_name("orders"), durable=True,
                 arguments=Args({migration.ARG_MIGRATING: "orders"}))
    assert migration.is_migration_artifact(temp)
    plan = make_plan(desired(V), live_state(V, temp, stats={temp.key: QueueStats(0, 0)}), PlanOptions(prune=True))
    assert temp.key not in {c.key for c in plan.changes if c.action is Action.DELETE}
    assert temp not in plan.unmanaged


def test_planner_imports_no_broker_code():
    import subprocess
    import sys

    code = ("import sys, topoform.planner, topoform.planner.render, topoform.planner.rules; "
            "bad = [m for m in sys.modules if m.startswith(('topoform.broker', 'topoform.apply', 'topoform.cli', "
            "'requests', 'pika'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_vhost_guess_for_early_reads_finds_block_style_vhost_keys():
    import yaml

    from topoform.cli.plan import _scan_vhost_keys

    text = ('version: 1\n# comment\nvhosts:\n  /:\n    queues:\n      q: {}\n  "a b":\n    queues: {}\n'
            '  orders:   # trailing comment\n    exchanges: {}\ntests: []\n  notavhost:\n')
    assert _scan_vhost_keys(text, yaml) == {"/", "a b", "orders"}
    assert _scan_vhost_keys("vhosts: {x: {}}\n", yaml) == set()  # flow style: no guess, read later
    # four-space indentation, a comment at column 0 inside the block, a second vhosts block, deeper keys ignored
    text = ("vhosts:\n    a:\n        queues:\n            deep: {}\n# note\n    'b':\n"
            "include: []\nvhosts:   # again\n  c: {}\n")
    assert _scan_vhost_keys(text, yaml) == {"a", "b", "c"}
    assert _scan_vhost_keys("vhosts:\n", yaml) == set()


def test_files_setting_a_default_queue_type_the_broker_reports_unset_plan_an_update():
    """3.10's GET /api/vhosts says ``undefined`` for "not set": that is known, so quorum differs."""
    from topoform.broker.live import vhost_from_row

    live_vhost = vhost_from_row({"name": "v", "description": "", "tags": [], "default_queue_type": "undefined"})
    live = LiveState(topology=Topology.build([live_vhost]))
    plan = make_plan(Topology.build([Vhost("v", default_queue_type="quorum")]), live, PlanOptions())
    assert [(c.action.value, c.kind, c.diff) for c in plan.changes] == [("update", "vhost", ("default_queue_type",))]
    unknown = LiveState(topology=Topology.build([Vhost("v")]))  # an export that does not report it
    assert make_plan(Topology.build([Vhost("v", default_queue_type="quorum")]), unknown, PlanOptions()).changes == ()
