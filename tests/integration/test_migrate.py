"""Queue and exchange migrations against the real broker (topoform/apply/migrate.py).

Each test fills a queue, runs the migration the planner would plan, and compares the
messages that come out with those that went in: bodies, every property and header,
in order. Runs in the per-test vhost.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pika
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import migrate_support as ms  # noqa: E402

from topoform.apply.migrate import MigrationError, run_migration  # noqa: E402
from topoform.broker import amqp  # noqa: E402
from topoform.model import Exchange  # noqa: E402
from topoform.planner.plan import Action, Change  # noqa: E402

N = 10_000


def _setup(amqp_conn, name="orders", durable=True, arguments=None):
    ch = amqp_conn.channel()
    ch.exchange_declare("events", "topic", durable=True)
    ch.queue_declare(name, durable=durable, arguments=amqp.encode_args(arguments or {}))
    ch.queue_bind(name, "events", "order.*")
    ch.queue_bind(name, "events", "audit.#", arguments={"x-match-me": pika.compat.long(1)})
    ch.close()


def _bindings(mgmt, vhost, queue):
    rows = mgmt.get(f"/api/queues/{vhost}/{queue}/bindings")
    return sorted((r["source"], r["routing_key"], str(r["arguments"])) for r in rows if r["source"])


def _assert_clean(mgmt, vhost):
    names = [q["name"] for q in mgmt.queues(vhost)]
    assert not [n for n in names if n.startswith("topoform.")], names


QQ = {"x-queue-type": "quorum"}
SCENARIOS = {  # name: (durable before, arguments before, arguments after, durable after, messages)
    "classic-to-quorum": (True, {}, QQ, True, 5000),
    "ttl-change": (True, {"x-message-ttl": 3_600_000}, {"x-message-ttl": 7_200_000}, True, 5000),
    "durability-change": (False, {}, {}, True, 5000),
    "quorum-ttl-change": (True, {**QQ, "x-message-ttl": 3_600_000}, {**QQ, "x-message-ttl": 7_200_000}, True, 2500),
    "quorum-to-classic": (True, QQ, {}, True, 2500),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_migration_keeps_every_message_property_and_order(broker, vhost, amqp, mgmt, scenario):
    durable, before_args, after_args, after_durable, n = SCENARIOS[scenario]
    after = ms.queue(vhost, "orders", durable=after_durable, **after_args)
    _setup(amqp, durable=durable, arguments=before_args)
    bindings = _bindings(mgmt, vhost, "orders")
    messages = ms.corpus(n, broker.username)
    # The order consumers get: FIFO, except that quorum queues from 4.0 on deliver by message
    # priority (the corpus has priorities 0..9), so it is measured through reference queues.
    expected = ms.delivery_order(amqp, messages, [(durable, amqp_args(before_args)),
                                                  (after_durable, amqp_args(after_args))])
    ms.publish(amqp, "orders", messages)

    change = ms.queue_change(broker, vhost, "orders", after)
    assert change.action is Action.MIGRATE, change.reason
    started = time.monotonic()
    run_migration(change, ms.context(broker))
    elapsed = time.monotonic() - started

    info = mgmt.get(f"/api/queues/{vhost}/orders")
    assert info["durable"] is after.durable
    assert _plain(info["arguments"]) == _plain(after.arguments.to_dict())
    assert _bindings(mgmt, vhost, "orders") == bindings
    _assert_clean(mgmt, vhost)
    got = ms.drain(amqp, "orders", expect=n)
    assert len(got) == n
    assert sorted(got) == sorted(ms.as_tuple(b, p) for b, p in messages), "messages lost, changed or duplicated"
    assert got == expected, "messages out of order"
    print(f"{scenario}: {n} messages migrated in {elapsed:.1f}s")


def _plain(args):
    """Arguments without the x-queue-type: classic that 4.x stores on every classic queue (BROKERS.md)."""
    return {k: v for k, v in args.items() if not (k == "x-queue-type" and v == "classic")}


def amqp_args(args):
    return amqp.encode_args(args)


def test_publisher_with_confirms_during_migration_loses_nothing(broker, vhost, amqp, mgmt, monkeypatch):
    _setup(amqp)
    # no priorities: quorum queues from 4.0 deliver by priority, which would interleave the backlog
    # with the live messages (the order of prioritized messages is checked by the scenarios above)
    backlog = ms.corpus(3000, broker.username, seed=3, priorities=False)
    ms.publish(amqp, "orders", backlog)
    swaps = ms.time_binding_swaps(monkeypatch)
    publisher = ms.ConfirmedPublisher(broker, vhost).start()
    time.sleep(0.5)
    change = ms.queue_change(broker, vhost, "orders", ms.queue(vhost, "orders", **{"x-queue-type": "quorum"}))
    run_migration(change, ms.context(broker))
    time.sleep(0.3)
    publisher.stop()
    confirmed = publisher.confirmed
    got = ms.drain(amqp, "orders", expect=len(backlog) + len(confirmed))
    live = [g[0].decode() for g in got if g[0].startswith(b"live-")]
    ms.assert_duplicates_only_at_swaps(live, publisher, swaps)
    old = [g for g in got if not g[0].startswith(b"live-")]
    assert old == [ms.as_tuple(b, p) for b, p in backlog]
    assert len(confirmed) > 100, "the publisher did not run during the migration"
    _assert_clean(mgmt, vhost)


def amqp_connect(broker, vhost):
    return amqp.connect(broker, vhost, name="test publisher")


def test_queue_with_consumer_is_refused_without_force_and_cancelled_with_it(broker, vhost, amqp, mgmt):
    _setup(amqp)
    ms.publish(amqp, "orders", ms.corpus(50, broker.username))
    app = amqp_connect(broker, vhost)
    app_ch = app.channel()
    app_ch.basic_qos(prefetch_count=5)
    app_ch.basic_consume("orders", lambda ch, m, p, b: None)  # holds 5 messages unacknowledged
    app.process_data_events(time_limit=0.5)
    after = ms.queue(vhost, "orders", **{"x-queue-type": "quorum"})
    # plan time (stats lag by ~5 s, so build the stats the broker would report)
    from topoform.broker.http import ManagementClient
    from topoform.broker.live import QueueStats, read_live
    from topoform.planner.migration import expand_migration
    live = read_live(ManagementClient(broker), [vhost])
    blocked = Change(Action.BLOCKED, "queue", vhost, "orders", before=live.topology.queue(vhost, "orders"),
                     after=after, diff=("arguments.x-queue-type",))
    stats = {("queue", vhost, "orders"): QueueStats(messages=50, consumers=1)}
    refused = expand_migration(blocked, live.topology, live.topology, stats)
    assert refused.action is Action.BLOCKED and "--force" in refused.reason
    forced = expand_migration(blocked, live.topology, live.topology, stats, force=True)
    assert forced.action is Action.MIGRATE and "consumer will be cancelled" in forced.reason
    # run time: a consumer present is refused without --force, nothing touched
    plain = expand_migration(blocked, live.topology, live.topology, {})
    with pytest.raises(MigrationError, match="consumer"):
        run_migration(plain, ms.context(broker))
    assert ms.count(amqp, "orders") is not None
    # with --force the consumer's connection is closed and its unacked messages are moved too
    ctx = ms.context(broker)
    ctx.options.force = True
    run_migration(forced, ctx)
    assert not app.is_open or _closed(app)
    got = ms.drain(amqp, "orders", expect=50)
    assert len(got) == 50 and len({g[0] for g in got}) == 50
    _assert_clean(mgmt, vhost)


def _closed(conn) -> bool:
    try:
        conn.process_data_events(time_limit=0.2)
        return not conn.is_open
    except Exception:  # noqa: BLE001 - the broker closed it, as expected
        return True


def test_user_id_of_another_user_is_reported_clearly(broker, vhost, amqp, mgmt):
    # the broker refuses to republish a message whose user_id is not the mover's user;
    # such a message cannot even be published by us, so check the message before republishing
    _setup(amqp)
    ms.publish(amqp, "orders", [(b"x", pika.BasicProperties(user_id=broker.username))])
    from topoform.apply import migrate as mg

    change = ms.queue_change(broker, vhost, "orders", ms.queue(vhost, "orders", **{"x-queue-type": "quorum"}))
    ctx = ms.context(broker)
    ctx.settings = type("S", (), {"username": "someone-else", "password": broker.password,
                                  "describe": broker.describe})()
    ctx.connect = lambda v, purpose="x": amqp_connect(broker, v)
    with pytest.raises(mg.MigrationError, match="user_id"):
        run_migration(change, ctx)
    # the unacknowledged message returns to its queue once the mover's connection is gone
    deadline = time.monotonic() + 10
    while True:
        total = (ms.count(amqp, "orders") or 0) + (ms.count(amqp, "topoform.migrate.orders") or 0)
        if total == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert total == 1


def test_exchange_migration_restores_bindings_on_both_sides(broker, vhost, amqp, mgmt):
    ch = amqp.channel()
    ch.exchange_declare("up", "fanout", durable=True)
    ch.exchange_declare("logs", "direct", durable=True)
    ch.exchange_declare("down", "fanout", durable=True)
    ch.queue_declare("a", durable=True)
    ch.queue_declare("b", durable=True)
    ch.exchange_bind("logs", "up", "")
    ch.queue_bind("a", "logs", "info")
    ch.exchange_bind("down", "logs", "info")
    ch.queue_bind("b", "down", "")
    ch.close()
    from topoform.broker.http import ManagementClient
    from topoform.broker.live import read_live
    from topoform.planner.migration import expand_migration
    live = read_live(ManagementClient(broker), [vhost])
    after = Exchange(vhost, "logs", "topic", durable=True)
    change = expand_migration(Change(Action.BLOCKED, "exchange", vhost, "logs",
                                     before=live.topology.exchange(vhost, "logs"), after=after, diff=("type",)),
                              live.topology, live.topology, {})
    assert change.action is Action.MIGRATE
    run_migration(change, ms.context(broker))
    info = mgmt.get(f"/api/exchanges/{vhost}/logs")
    assert info["type"] == "topic"
    rows = mgmt.get(f"/api/bindings/{vhost}")
    pairs = sorted((r["source"], r["destination"], r["routing_key"]) for r in rows if r["source"])
    assert pairs == [("down", "b", ""), ("logs", "a", "info"), ("logs", "down", "info"), ("up", "logs", "")]
    assert not [e for e in mgmt.get(f"/api/exchanges/{vhost}") if e["name"].startswith("topoform.")]
    # routing works end to end through the recreated exchange
    pub = amqp.channel()
    pub.confirm_delivery()
    pub.basic_publish("up", "info", b"hello", mandatory=True)
    assert ms.count(amqp, "a") == 1 and ms.count(amqp, "b") == 1
