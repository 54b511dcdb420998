"""Plan-time migrations (topoform/planner/migration.py): steps, refusals, resume detection."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from topoform.model import Args, Binding, Exchange, Queue, Topology
from topoform.planner import migration as m
from topoform.planner.plan import Action, Change, Plan


@dataclass(frozen=True)
class Stats:
    messages: int
    consumers: int


V = "v1"


def q(name="orders", **kw) -> Queue:
    kw.setdefault("durable", True)
    args = kw.pop("arguments", {})
    return Queue(vhost=V, name=name, arguments=Args(args), **kw)


def blocked(before, after, diff=("arguments.x-queue-type",)):
    return Change(Action.BLOCKED, before.kind, V, after.name, before=before, after=after, diff=tuple(diff),
                  reason="Cannot change in place.")


def live_with(*resources):
    return Topology.build(resources)


def ops(change):
    return [s.op for s in change.steps]


def test_classic_to_quorum_becomes_migrate_with_ordered_steps():
    before, after = q(), q(arguments={"x-queue-type": "quorum"})
    bind = Binding(V, "events", "orders", "queue", "order.*")
    live = live_with(before, bind)
    change = m.expand_migration(blocked(before, after), Topology(), live, {before.key: Stats(10, 0)})
    assert change.action is Action.MIGRATE
    assert ops(change) == ["declare_temp", "move_out", "take_bindings", "drain_out", "delete_queue",
                           "declare_queue", "move_back", "restore_bindings", "drain_back", "delete_temp"]
    declare_temp = change.steps[0].params
    assert declare_temp["queue"] == "topoform.migrate.orders"
    target = json.loads(declare_temp["arguments"]["x-topoform-target"])
    assert target["arguments"] == {"x-queue-type": "quorum"} and target["durable"] is True
    assert change.steps[2].params["bindings"] == ["events -> orders [order.*]"]
    assert "10 messages" in change.reason and "publisher confirms" in change.reason
    # JSON-ready: the plan serializes and reads back
    plan = Plan(changes=(change,))
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert ops(again.changes[0]) == ops(change)


def test_queue_with_consumers_is_refused_without_force_and_cancelled_with_it():
    before, after = q(), q(arguments={"x-message-ttl": 1000})
    stats = {before.key: Stats(5, 2)}
    refused = m.expand_migration(blocked(before, after), Topology(), live_with(before), stats)
    assert refused.action is Action.BLOCKED
    assert "2 consumers" in refused.reason and "--force" in refused.reason
    forced = m.expand_migration(blocked(before, after), Topology(), live_with(before), stats, force=True)
    assert forced.action is Action.MIGRATE
    assert "cancel_consumers" in ops(forced)
    assert "2 consumers will be cancelled" in forced.reason


def test_a_refused_migration_replaces_the_advice_to_use_migrate_and_speaks_of_one_consumer_as_it():
    before, after = q(), q(arguments={"x-message-ttl": 1000})
    change = Change(Action.BLOCKED, "queue", V, "orders", before=before, after=after, diff=("arguments.x-message-ttl",),
                    reason="Cannot change arguments.x-message-ttl in place: 406; use --migrate to recreate the queue "
                           "and move its messages.")
    refused = m.expand_migration(change, Topology(), live_with(before), {before.key: Stats(5, 1)})
    assert refused.reason == ("Cannot change arguments.x-message-ttl in place: 406; --migrate cannot either: Queue "
                              "orders has 1 consumer: a migration deletes the queue under it (field consumers); "
                              "stop it, or use --force to cancel it.")


@pytest.mark.parametrize("before,after,field", [
    (q(arguments={"x-queue-type": "stream"}), q(), "arguments.x-queue-type"),
    (q(), q(arguments={"x-queue-type": "stream"}), "arguments.x-queue-type"),
    (q(durable=False), q(durable=False, arguments={"x-queue-type": "quorum"}), "durable"),
    (q(), q(auto_delete=True, arguments={"x-queue-type": "quorum"}), "auto_delete"),
    (q(arguments={"x-max-priority": 5}), q(arguments={"x-queue-type": "quorum", "x-max-priority": 5}),
     "arguments.x-max-priority"),
    (q(exclusive=True, durable=False), q(exclusive=True, durable=False, arguments={"x-message-ttl": 5}), "exclusive"),
])
def test_unmigratable_queues_stay_blocked_naming_the_field(before, after, field):
    change = m.expand_migration(blocked(before, after), Topology(), live_with(before), {})
    assert change.action is Action.BLOCKED
    assert f"field {field}" in change.reason


def test_shrinking_max_length_below_the_backlog_is_refused():
    before, after = q(), q(arguments={"x-max-length": 10})
    change = m.expand_migration(blocked(before, after), Topology(), live_with(before), {before.key: Stats(50, 0)})
    assert change.action is Action.BLOCKED and "x-max-length" in change.reason


def test_exchange_migration_rebinds_both_sides_and_notes_the_alternate_path():
    before = Exchange(V, "logs", "direct", durable=True)
    after = Exchange(V, "logs", "topic", durable=True)
    live = live_with(before, Exchange(V, "up", "fanout"), q("a"),
                     Binding(V, "logs", "a", "queue", "k"), Binding(V, "up", "logs", "exchange", ""))
    change = m.expand_migration(blocked(before, after, ("type",)), Topology(), live, {})
    assert change.action is Action.MIGRATE
    assert ops(change) == ["declare_temp_exchange", "copy_bindings", "delete_exchange", "declare_exchange",
                           "restore_exchange_bindings", "delete_temp_exchange"]
    copy = change.steps[1].params
    assert copy["source_bindings"] == ["logs -> a [k]"]
    assert copy["destination_bindings"] == ["up -> exchange logs []"]
    assert "Alternate path" in change.reason and "topoform.migrate.logs" in change.reason


def test_builtin_exchange_is_never_migrated():
    before = Exchange(V, "amq.topic", "topic", durable=True)
    change = m.expand_migration(blocked(before, Exchange(V, "amq.topic", "topic")), Topology(), live_with(before), {})
    assert change.action is Action.BLOCKED


def _temp_for(before: Queue, target: Queue) -> Queue:
    return Queue(V, m.temp_queue_name(target.name), durable=True,
                 arguments=Args(m.temp_queue_arguments(before, target)))


@pytest.mark.parametrize("current,phase,first", [
    ("before", "out", "declare_temp"),
    (None, "gap", "declare_queue"),
    ("target", "back", "move_back"),
])
def test_interrupted_queue_migration_is_resumed_from_its_phase(current, phase, first):
    before, target = q(), q(arguments={"x-queue-type": "quorum"})
    temp = _temp_for(before, target)
    journal = Queue(V, m.journal_queue_name("orders"), durable=True,
                    arguments=Args(m.journal_queue_arguments("orders")))
    objects = [temp, journal, Binding(V, "events", temp.name, "queue", "order.*")]
    if current == "before":
        objects.append(before)
    elif current == "target":
        objects.append(target)
    live = live_with(*objects)
    found = m.find_interrupted(live)
    assert [(f.name, f.phase) for f in found] == [("orders", phase)]
    resumes = m.resume_changes(Topology.build([target]), live, {("queue", V, temp.name): Stats(7, 0)})
    assert len(resumes) == 1
    change = resumes[0]
    assert change.action is Action.MIGRATE and change.after == target
    assert change.steps[0].op == first
    assert "topoform.migrate.orders: 7 messages" in change.reason  # where the messages are
    assert ("orders: absent" if current is None else "orders: count not known yet") in change.reason
    assert "--rollback" in change.reason and f"step {found[0].step}" in change.reason
    (undo,) = m.rollback_changes(live, {("queue", V, temp.name): Stats(7, 0)})
    assert undo.after == before and undo.action is Action.MIGRATE
    assert ops(undo)[0] == ("move_out" if phase == "out" else "begin_rollback") and ops(undo)[-1] == "end_rollback"
    # once the marker exists, every plan finishes the rollback (forward would break the order)
    marker = Exchange(V, m.rollback_marker_name("orders"), "fanout", durable=True, internal=True,
                      arguments=Args(m.rollback_marker_arguments("orders", before, target)))
    (resumed,) = m.resume_changes(Topology.build([target]), live_with(*objects, marker), {})
    assert resumed.after == before and "interrupted rollback" in resumed.reason
    assert ops(resumed)[0] == "begin_rollback"
    if phase != "out":
        restore = [s for s in change.steps if s.op == "restore_bindings"][0]
        assert restore.params["bindings"] == ["events -> orders [order.*]"]


def test_artifacts_are_recognized_and_superseded_changes_dropped():
    before, target = q(), q(arguments={"x-queue-type": "quorum"})
    temp = _temp_for(before, target)
    tb = Binding(V, "events", temp.name, "queue", "k")
    assert m.is_migration_artifact(temp) and m.is_migration_artifact(tb)
    assert not m.is_migration_artifact(before)
    assert not m.is_migration_artifact(Queue(V, "topoform.migrate.x"))  # reserved name, but no record
    live = live_with(temp)
    resumes = m.resume_changes(Topology(), live, {})
    planner_changes = [
        Change(Action.CREATE, "queue", V, "orders", after=target),
        Change(Action.CREATE, "binding", V, "events -> orders [k]", after=Binding(V, "events", "orders", "queue", "k")),
        Change(Action.DELETE, "queue", V, temp.name, before=temp),
        Change(Action.CREATE, "queue", V, "other", after=q("other")),
    ]
    kept = m.superseded(planner_changes, resumes)
    assert [c.name for c in kept] == ["other"]


def test_interrupted_exchange_migration_is_found():
    before = Exchange(V, "logs", "direct", durable=True)
    target = Exchange(V, "logs", "topic", durable=True)
    temp = Exchange(V, "topoform.migrate.logs", "direct", durable=True, internal=True,
                    arguments=Args(m.temp_exchange_arguments(before, target)))
    live = live_with(temp, target, Binding(V, temp.name, "a", "queue", "k"))
    (change,) = m.resume_changes(Topology(), live, {})
    assert change.kind == "exchange" and change.steps[0].op == "restore_exchange_bindings"


def test_same_queue_treats_absent_type_as_classic():
    assert m.same_queue(q(), q(arguments={"x-queue-type": "classic"}))
    assert not m.same_queue(q(), q(arguments={"x-queue-type": "quorum"}))


def test_rollback_marker_alone_is_an_interrupted_rollback():
    before, target = q(), q(arguments={"x-queue-type": "quorum"})
    marker = Exchange(V, m.rollback_marker_name("orders"), "fanout", durable=True, internal=True,
                      arguments=Args(m.rollback_marker_arguments("orders", before, target)))
    assert m.is_migration_artifact(marker)
    (item,) = m.find_interrupted(live_with(marker, target))
    assert item.rollback and item.temp is None and item.target == before
    (change,) = m.resume_changes(Topology.build([target]), live_with(marker, target), {})
    assert change.after == before and "declare_temp" in ops(change)
    (done,) = m.find_interrupted(live_with(marker, before))
    assert done.phase == "back" and m.rollback_steps(done)[-1].op == "end_rollback"


def test_temporary_queue_and_journal_are_classic_whatever_the_vhost_default():
    before, target = q(), q(arguments={"x-queue-type": "quorum"})
    assert m.temp_queue_arguments(before, target)["x-queue-type"] == "classic"
    assert m.journal_queue_arguments("orders")["x-queue-type"] == "classic"


def test_delivery_count_a_quorum_queue_adds_is_not_moved():
    import pika

    from topoform.apply import migrate_move as mv

    none = pika.BasicProperties(headers={"x-delivery-count": 2, "x-acquired-count": 2})  # 4.3 adds both
    assert mv._without_delivery_count(none).headers is None  # the broker made the table
    kept = pika.BasicProperties(headers={"x-delivery-count": 1, "a": 1})
    assert mv._without_delivery_count(kept).headers == {"a": 1}
    stamped = pika.BasicProperties(headers={"x-delivery-count": 1, mv.STAMP: "r.0.1~"})
    assert mv._without_delivery_count(stamped).headers == {mv.STAMP: "r.0.1~"}
    plain = pika.BasicProperties(headers={"a": 1})
    assert mv._without_delivery_count(plain) is plain
    # identities survive a redelivery that turned "no table" into a table
    assert mv._digest(b"x", pika.BasicProperties(headers={})) == mv._digest(b"x", pika.BasicProperties())
    assert mv._digest(b"x", pika.BasicProperties(headers={"a": 1})) != mv._digest(b"x", pika.BasicProperties())


def test_prune_of_a_stream_needs_allow_data_loss_before_any_broker_call():
    from topoform.apply.executor import ApplyContext, delete_queue
    from topoform.errors import TopoformError

    stream = Queue(V, "s", durable=True, arguments=Args({"x-queue-type": "stream"}))
    ctx = ApplyContext(settings=None, client=None)
    with pytest.raises(TopoformError, match="stream.*--allow-data-loss"):
        delete_queue(Change(Action.DELETE, "queue", V, "s", before=stream), ctx)
    classic = Queue(V, "c", durable=True)
    (op,) = delete_queue(Change(Action.DELETE, "queue", V, "c", before=classic), ctx)
    assert op.kwargs["if_empty"] and op.kwargs["if_unused"]  # classic queues keep the broker's atomic guards
