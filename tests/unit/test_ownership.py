"""Ownership: owner, owns, external (topoform/ownership.py, SPEC section 9), offline."""
from __future__ import annotations

from helpers import run_cli
from topoform.apply.lock import describe_holder
from topoform.broker.settings import BrokerSettings
from topoform.load import load_text, load_topology
from topoform.model import Binding, Exchange, Queue, Topology
from topoform.ownership import VhostScope

A = """owner: team-orders
vhosts:
  shop:
    owns: ["orders.*"]
    external: {exchanges: [events], queues: [{name: audit, type: quorum}]}
    exchanges: {orders.x: {type: topic, durable: true}}
    queues:
      orders.paid: {durable: true, bindings: [{exchange: events, routing_key: order.paid}]}
    bindings:
      - {source: orders.x, destination: audit, routing_key: x}
"""


def test_external_objects_count_as_declared_offline():
    r = load_text(A)
    assert r.errors == (), r.errors
    scope = r.ownership.scope("shop")
    assert scope.owns == ("orders.*",) and scope.external_queues == {"audit": "quorum"}
    assert r.ownership.owner == "team-orders"


def test_declaring_outside_owns_is_an_error():
    r = load_text(A.replace("orders.paid:", "billing.q:").replace("source: orders.x", "source: events"))
    # the queue itself, its binding (by its destination), and the binding between two external objects
    assert [e.code for e in r.errors] == ["outside-owns"] * 3, r.errors


def test_scope_by_owns_and_external():
    s = VhostScope(owns=("orders.*",), external_exchanges={"events": None}, external_queues={"audit": None})
    assert s.in_scope(Queue(vhost="v", name="orders.a")) and not s.in_scope(Queue(vhost="v", name="billing"))
    assert not s.in_scope(Exchange(vhost="v", name="events"))
    assert s.in_scope(Binding(vhost="v", source="events", destination="orders.a"))  # by its destination
    assert not s.in_scope(Binding(vhost="v", source="orders.x", destination="billing"))  # another team's queue
    assert s.in_scope(Binding(vhost="v", source="orders.x", destination="audit"))  # to an external: by its source
    assert not s.in_scope(Binding(vhost="v", source="events", destination="audit"))


def _plan(text, live):
    from topoform.broker.live import LiveState
    from topoform.planner import make_plan

    r = load_text(text)
    return make_plan(r.topology, LiveState(topology=live), ownership=r.ownership)


def test_plan_ignores_others_objects_and_blocks_on_missing_externals():
    live = Topology.build([Exchange(vhost="shop", name="billing.x", type="topic"),
                           Queue(vhost="shop", name="billing.q", durable=True)])
    plan = _plan(A, live)
    assert plan.unmanaged == ()
    blocked = {(c.kind, c.name): c.reason for c in plan.blocked}
    assert set(blocked) == {("exchange", "events"), ("queue", "audit")}
    assert "External exchange 'events'" in blocked[("exchange", "events")]
    live = Topology.build([Exchange(vhost="shop", name="events", type="topic"),
                           Queue(vhost="shop", name="audit", durable=True)])  # classic, not quorum
    (only,) = _plan(A, live).blocked
    assert only.name == "audit" and "classic queue" in only.reason


def test_two_file_sets_claiming_one_object(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "t.yaml").write_text("owner: a\nvhosts: {v: {owns: ['q*'], queues: {q1: {durable: true}}}}\n")
    (tmp_path / "b" / "t.yaml").write_text("owner: b\nvhosts: {v: {queues: {q1: {durable: true}}}}\n")
    r = load_topology([str(tmp_path / "a" / "t.yaml"), str(tmp_path / "b" / "t.yaml")])
    (err,) = [e for e in r.errors if e.code == "claimed-twice"]
    assert "a/t.yaml" in err.message and "b/t.yaml" in str(err.position), err
    r = run_cli(["validate", "-f", tmp_path / "a", "-f", tmp_path / "b"])
    assert r.code == 1 and "claimed by two file sets" in r.err


def test_lock_holder_names_the_owner():
    settings = BrokerSettings(url="amqp://u:p@localhost:5672/")
    assert "apply for 'team-orders' by user 'u'" in describe_holder(settings, owner="team-orders")
    assert " for " not in describe_holder(settings).split(" by ")[0]
