"""``--target KIND:NAME`` narrowing (topoform/planner/target.py), offline: parsing, what each kind
needs (table-driven), bindings going with their queues and exchanges, blocked changes outside the
targets, and the CLI (plan --state, plan --out / show, apply PLANFILE refusing --target)."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli

from topoform.broker.live import live_from_definitions
from topoform.config.load import resolve
from topoform.errors import UsageError
from topoform.load import load_text
from topoform.planner import PlanOptions, make_plan
from topoform.planner.target import KIND_ALIASES, PLAN_KINDS, narrow_plan, parse_target, parse_targets

FILES = """
users:
  app: {tags: [monitoring], password_hash: "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn", limits: {max-connections: 5}}
  other: {tags: []}
global_parameters: {cluster_name: eu}
vhosts:
  shop:
    exchanges:
      orders: {type: topic, durable: true, arguments: {alternate-exchange: unrouted}}
      unrouted: {type: fanout, durable: true}
      events: {type: fanout, durable: true}
      dlx: {type: fanout, durable: true}
    queues:
      orders.created: {durable: true, arguments: {x-dead-letter-exchange: dlx}}
      audit: {durable: true}
      moved: {durable: true}
    bindings:
      - {source: orders, destination: orders.created, routing_key: created}
      - {source: events, destination: audit}
    policies:
      fed: {pattern: "^fed", apply_to: exchanges, definition: {federation-upstream-set: ups}}
    limits: {max-queues: 100}
    permissions:
      app: {configure: ".*", write: ".*", read: ".*"}
    topic_permissions:
      app: {events: {write: ".*", read: ".*"}}
    operator_policies:
      cap: {pattern: ".*", apply_to: queues, definition: {max-length: 9}}
    federation_upstreams:
      up1: {uri: "amqp://remote", expires: 1000}
    federation_upstream_sets:
      ups: [{upstream: up1}]
    shovels:
      mv: {src-uri: "amqp://", src-queue: audit, dest-uri: "amqp://", dest-queue: moved}
    super_streams:
      invoices: {partitions: 2}
"""


def _plan(text=FILES, definitions=None, **options):
    loaded = load_text(text)
    assert loaded.ok, [f.format() for f in loaded.errors]
    config = resolve(loaded.config, {})
    live = live_from_definitions(definitions or {"vhosts": [], "queues": []}, loaded.topology.vhost_names())
    plan = make_plan(loaded.topology, live, PlanOptions(**options), config=config)
    known = list(loaded.topology.resources()) + list(config.objects.values())
    return plan, known


def _kept(plan, *specs, known=()):
    narrowed = narrow_plan(plan, parse_targets(specs), known=known)
    return {(c.kind, c.name) for c in narrowed.changes}, narrowed


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, kinds", [
    ("queue:a", ("queue",)), ("queues:a", ("queue",)), ("exchanges:a", ("exchange",)),
    ("policies:a", ("policy",)), ("operator_policies:a", ("operator_policy",)),
    ("operator-policy:a", ("operator_policy",)), ("limits:shop", ("vhost_limit", "user_limit")),
    ("topic_permissions:a", ("topic_permission",)), ("super_streams:a", ("super_stream",)),
    ("global_parameters:a", ("global_parameter",)), ("federation_upstream_sets:a", ("federation_upstream_set",)),
    ("Queue:a", ("queue",)),
])
def test_kind_aliases(text, kinds):
    assert parse_target(text).kinds == kinds


def test_every_plan_kind_is_a_target_kind():
    for kind in PLAN_KINDS:
        assert KIND_ALIASES[kind] == (kind,)


@pytest.mark.parametrize("text, fragment", [
    ("orders", "is not KIND:NAME"), ("bogus:x", "unknown kind 'bogus'"), ("queue:", "has no NAME"),
    (":x", "is not KIND:NAME"),
])
def test_bad_targets_are_usage_errors_listing_the_kinds(text, fragment):
    with pytest.raises(UsageError) as exc:
        parse_target(text)
    assert fragment in exc.value.message
    if "KIND" in fragment or "unknown" in fragment:
        assert "shovel" in exc.value.message and "super_stream" in exc.value.message


def test_a_target_matching_nothing_is_an_error():
    plan, known = _plan()
    with pytest.raises(UsageError, match="matches nothing"):
        narrow_plan(plan, parse_targets(["queue:nope*"]), known=known)


def test_a_target_matching_an_unchanged_object_is_not_an_error():
    plan, known = _plan()
    empty = narrow_plan(plan.__class__(changes=(), vhosts=("shop",)), parse_targets(["queue:audit"]), known=known)
    assert empty.changes == () and empty.options["targets"] == ["queue:audit"]


# ---------------------------------------------------------------------- what each kind needs (table-driven)
NEEDS = [
    # target, must be kept besides it, must not be kept
    ("vhost:shop", {("vhost", "shop")}, {("queue", "audit")}),
    ("exchange:orders", {("vhost", "shop"), ("exchange", "unrouted"),
                         ("binding", "orders -> orders.created [created]"), ("queue", "orders.created"),
                         ("exchange", "dlx")}, {("queue", "audit"), ("exchange", "events")}),
    ("queue:orders.created", {("exchange", "dlx"), ("binding", "orders -> orders.created [created]"),
                              ("exchange", "orders"), ("exchange", "unrouted")}, {("queue", "audit")}),
    ("queue:audit", {("binding", "events -> audit []"), ("exchange", "events")}, {("queue", "moved")}),
    ("binding:events -> audit*", {("exchange", "events"), ("queue", "audit")}, {("exchange", "orders")}),
    ("binding:events", {("binding", "events -> audit []"), ("queue", "audit")}, {("queue", "orders.created")}),
    ("policy:fed", {("federation_upstream_set", "ups"), ("federation_upstream", "up1")}, {("queue", "audit")}),
    ("operator_policy:cap", {("vhost", "shop")}, {("queue", "audit")}),
    ("user:app", {("user_limit", "app")}, {("permission", "app"), ("user", "other")}),
    ("user_limit:app", {("user", "app")}, {("permission", "app")}),
    ("permission:app", {("user", "app"), ("user_limit", "app"), ("vhost", "shop")},
     {("topic_permission", "app@events"), ("user", "other")}),
    ("topic_permission:app", {("user", "app"), ("exchange", "events")}, {("permission", "app"),
                                                                         ("queue", "audit")}),
    ("limits:shop", {("vhost_limit", "limits"), ("vhost", "shop")}, {("queue", "audit")}),
    ("global_parameter:cluster_name", set(), {("vhost", "shop")}),
    ("federation_upstream:up1", {("vhost", "shop")}, {("federation_upstream_set", "ups")}),
    ("federation_upstream_set:ups", {("federation_upstream", "up1")}, {("policy", "fed")}),
    ("shovel:mv", {("queue", "audit"), ("queue", "moved")}, {("binding", "events -> audit []")}),
    ("super_stream:inv*", {("super_stream", "invoices"), ("vhost", "shop")}, {("queue", "audit")}),
]


@pytest.mark.parametrize("spec, needed, excluded", NEEDS, ids=[n[0] for n in NEEDS])
def test_a_target_keeps_what_it_needs_and_nothing_else(spec, needed, excluded):
    plan, known = _plan()
    kept, narrowed = _kept(plan, spec, known=known)
    target = parse_target(spec)
    assert any(target.matches(c.subject) for c in narrowed.changes)
    assert needed <= kept, needed - kept
    assert not (excluded & kept), excluded & kept
    assert narrowed.options["targets"] == [spec]
    order = [c for c in plan.changes if c in narrowed.changes]
    assert list(narrowed.changes) == order  # the plan's own order


def test_only_creates_are_needed_what_exists_stays_out():
    # the broker has vhost shop and exchange events: targeting the queue audit keeps neither
    definitions = {"vhosts": [{"name": "shop"}], "queues": [], "exchanges": [
        {"name": "events", "vhost": "shop", "type": "fanout", "durable": True, "auto_delete": False,
         "internal": False, "arguments": {}}], "bindings": []}
    plan, known = _plan(definitions=definitions)
    kept, _ = _kept(plan, "queue:audit", known=known)
    assert kept == {("queue", "audit"), ("binding", "events -> audit []")}


def test_a_blocked_change_outside_the_targets_no_longer_holds_them_back():
    files = """
vhosts:
  shop:
    queues:
      q1: {durable: true, arguments: {x-message-ttl: 1000}}
      q2: {durable: true}
"""
    definitions = {"vhosts": [{"name": "shop"}], "queues": [
        {"name": "q1", "vhost": "shop", "durable": True, "auto_delete": False, "arguments": {"x-message-ttl": 5}}]}
    plan, known = _plan(files, definitions)
    assert plan.blocked
    narrowed = narrow_plan(plan, parse_targets(["queue:q2"]), known=known)
    assert not narrowed.blocked and [(c.kind, c.name) for c in narrowed.changes] == [("queue", "q2")]
    still = narrow_plan(plan, parse_targets(["queue:q*"]), known=known)
    assert [c.name for c in still.blocked] == ["q1"]


def test_globs_and_several_targets():
    plan, known = _plan()
    kept, _ = _kept(plan, "queue:orders.*", "shovel:m?", known=known)
    assert {("queue", "orders.created"), ("shovel", "mv"), ("queue", "moved")} <= kept
    assert ("operator_policy", "cap") not in kept


def test_prune_deletes_of_a_target_go_with_their_bindings():
    files = "vhosts:\n  shop:\n    queues: {keep: {durable: true}}\n"
    definitions = {"vhosts": [{"name": "shop"}], "queues": [
        {"name": n, "vhost": "shop", "durable": True, "auto_delete": False, "arguments": {}} for n in ("keep", "old", "x")],
        "exchanges": [{"name": "e", "vhost": "shop", "type": "fanout", "durable": True, "auto_delete": False,
                       "internal": False, "arguments": {}}],
        "bindings": [{"source": "e", "vhost": "shop", "destination": "old", "destination_type": "queue",
                      "routing_key": "", "arguments": {}}]}
    plan, known = _plan(files, definitions, prune=True, allow_data_loss=True)
    kept, _ = _kept(plan, "queue:old", known=known)
    assert kept == {("queue", "old"), ("binding", "e -> old []")}


# ---------------------------------------------------------------------- through the CLI, offline
@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "topoform.yaml").write_text(FILES, encoding="utf-8")
    (tmp_path / "state.json").write_text(json.dumps({"rabbitmq_version": "4.3.6", "vhosts": [], "queues": []}))
    return tmp_path


def test_plan_state_with_targets_and_show(workdir):
    r = run_cli(["plan", "--state", "state.json", "--target", "shovel:mv", "--json"], cwd=workdir)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {(c["kind"], c["name"]) for c in doc["changes"]} == {
        ("vhost", "shop"), ("shovel", "mv"), ("queue", "audit"), ("queue", "moved")}
    assert doc["options"]["targets"] == ["shovel:mv"]
    r = run_cli(["plan", "--state", "state.json", "--target", "queue:audit", "--out", "p.json"], cwd=workdir)
    assert r.code == 0, r.err
    shown = run_cli(["show", "p.json"], cwd=workdir)
    assert shown.code == 0 and "targets: queue:audit" in shown.out
    assert "exchange events" in shown.out and "queue moved" not in shown.out
    md = run_cli(["show", "p.json", "--format", "markdown"], cwd=workdir)
    assert md.code == 0 and "Narrowed to `queue:audit`" in md.out, md
    plain = run_cli(["plan", "--state", "state.json", "--format", "markdown"], cwd=workdir)
    assert plain.code in (0, 2) and "Narrowed to" not in plain.out, plain


@pytest.mark.parametrize("argv, fragment", [
    (["plan", "--state", "state.json", "--target", "nope:x"], "unknown kind 'nope'"),
    (["plan", "--state", "state.json", "--target", "queue:missing"], "matches nothing"),
    (["plan", "--state", "state.json", "--vhost", "shop", "--target", "queue"], "is not KIND:NAME"),
])
def test_plan_target_errors_are_one_line(workdir, argv, fragment):
    r = run_cli(argv, cwd=workdir)
    assert r.code == 1 and fragment in r.err and "Traceback" not in r.err
    assert len([line for line in r.err.splitlines() if line.startswith("topoform: error")]) == 1


def test_apply_planfile_refuses_target(workdir):
    assert run_cli(["plan", "--state", "state.json", "--out", "p.json"], cwd=workdir).code == 0
    r = run_cli(["apply", "p.json", "--target", "queue:audit"], cwd=workdir,
                environ={"TOPOFORM_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert r.code == 1 and "--target cannot narrow a saved plan" in r.err


def test_target_is_not_an_abbreviation_of_targets(workdir):
    r = run_cli(["plan", "--state", "state.json", "--target", "queue:audit", "--json"], cwd=workdir)
    assert r.code == 0 and json.loads(r.out)["options"]["targets"] == ["queue:audit"]
