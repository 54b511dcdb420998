"""Every replayable row of the rules table, replayed against the real broker.

For each row: declare the object, read it back with the live reader, plan the
changed object and check the plan blocks it naming the field; then really redeclare
it over AMQP and check the broker's answer: 406 (``rejects``), 405 (``locks``), or OK
with the old value still stored (``ignores``, read back over HTTP). So the table
cannot drift from the broker unnoticed.
"""
from __future__ import annotations

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from topoform.broker.http import ManagementClient
from topoform.broker.live import read_live
from topoform.model import Args, Exchange, Queue, Topology, Vhost
from topoform.planner import PlanOptions, make_plan
from topoform.planner.rules import IGNORES, LOCKS, REJECTS, rows_for_replay

LONG = pika.compat.long if hasattr(pika.compat, "long") else int

# (existing value, changed value) for each argument; None = absent.
ARG_VALUES = {
    "x-message-ttl": (60000, 30000),
    "x-expires": (60000, 120000),
    "x-max-length": (10, 20),
    "x-max-length-bytes": (1000, 2000),
    "x-overflow": ("drop-head", "reject-publish"),
    "x-dead-letter-exchange": ("dlx1", "dlx2"),
    "x-dead-letter-routing-key": ("k1", "k2"),
    "x-single-active-consumer": (True, False),
    "x-max-priority": (5, 10),
    "x-queue-mode": ("default", "lazy"),
    "x-queue-version": (1, 2),
    "x-queue-master-locator": ("min-masters", "client-local"),
    "x-delivery-limit": (5, 10),
    "x-max-age": ("1D", "2D"),
    "x-stream-max-segment-size-bytes": (1000000, 2000000),
    "x-foo": ("a", "b"),
}

# Where a version refuses a value used above: (argument, first version) -> values there.
# 4.3 refuses x-queue-version 1 (406 unsupported queue version): 2 -> absent instead
# (measured on 4.3.6: "received none but current is the value '2'").
VERSION_VALUES = {("x-queue-version", (4, 3)): (2, None)}


def _values(arg: str, version: tuple[int, int]):
    for (name, since), values in sorted(VERSION_VALUES.items(), reverse=True):
        if name == arg and version >= since:
            return values
    return ARG_VALUES[arg]


# arguments the broker requires alongside (a DLRK without a DLX is refused on creation)
COMPANIONS = {"x-dead-letter-routing-key": {"x-dead-letter-exchange": "dlx"}}

QUEUE_PROPS = {"durable": (True, False), "auto_delete": (False, True), "exclusive": (False, True)}
EXCHANGE_PROPS = {"type": ("direct", "topic"), "durable": (True, False), "auto_delete": (False, True),
                  "internal": (False, True)}


def _row_id(rule) -> str:
    return f"{rule.kind}-{rule.field}-{'-'.join(rule.queue_types) or 'any'}"


def _cases():
    out = []
    for rule in rows_for_replay():
        if rule.kind == "queue" and rule.field == "arguments.*":
            for qtype in ("classic", "quorum"):  # the wildcard row holds for both types
                out.append(pytest.param(rule, qtype, id=f"{_row_id(rule)}-{qtype}"))
        else:
            out.append(pytest.param(rule, (rule.queue_types or ("classic",))[0], id=_row_id(rule)))
    return out


def _amqp_args(args: dict) -> dict:
    return {k: LONG(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in args.items()}


def _queue_versions(rule, qtype, version=(3, 10)):
    """(existing queue, changed queue, the argument or property that changes)."""
    base_args = {} if qtype == "classic" else {"x-queue-type": qtype}
    durable = True
    if rule.field.startswith("arguments."):
        arg = rule.field.split(".", 1)[1]
        if arg == "*":
            arg = "x-foo"
        base_args.update(COMPANIONS.get(arg, {}))
        if arg == "x-queue-type":
            old_args = dict(base_args)
            new_args = {"x-queue-type": "quorum" if qtype == "classic" else "classic"}
        else:
            old, new = _values(arg, version)
            if new is None and rule.verdict != REJECTS:
                new = old  # an ignored row needs a value to send
            # an ignored argument may be invalid on creation for this type: absent -> value
            old_args = dict(base_args, **({arg: old} if rule.verdict == REJECTS or arg == "x-foo" else {}))
            new_args = dict(base_args, **({arg: new} if new is not None else {}))
        existing = Queue("v", "q", durable=durable, arguments=Args(old_args))
        changed = Queue("v", "q", durable=durable, arguments=Args(new_args))
        return existing, changed, arg
    old, new = QUEUE_PROPS[rule.field]
    props = {"durable": qtype != "classic" or rule.field != "durable"}
    if rule.field == "exclusive":
        props = {"durable": False}
    existing = Queue("v", "q", arguments=Args(base_args), **dict(props, **{rule.field: old}))
    changed = Queue("v", "q", arguments=Args(base_args), **dict(props, **{rule.field: new}))
    return existing, changed, rule.field


def _declare_queue(ch, q: Queue):
    ch.queue_declare(q.name, durable=q.durable, exclusive=q.exclusive, auto_delete=q.auto_delete,
                     arguments=_amqp_args(dict(q.arguments)))


def _declare_exchange(ch, e: Exchange):
    ch.exchange_declare(e.name, exchange_type=e.type, durable=e.durable, auto_delete=e.auto_delete,
                        internal=e.internal, arguments=_amqp_args(dict(e.arguments)))


def _exchange_versions(rule):
    if rule.field.startswith("arguments."):
        arg = rule.field.split(".", 1)[1]
        old, new = ("ae1", "ae2") if arg == "alternate-exchange" else ARG_VALUES["x-foo"]
        arg = "x-foo" if arg == "*" else arg
        return (Exchange("v", "x", "direct", durable=True, arguments=Args({arg: old})),
                Exchange("v", "x", "direct", durable=True, arguments=Args({arg: new})), arg)
    old, new = EXCHANGE_PROPS[rule.field]
    base = {"type": "direct", "durable": True, "auto_delete": False, "internal": False}
    return (Exchange("v", "x", **dict(base, **{rule.field: old})),
            Exchange("v", "x", **dict(base, **{rule.field: new})), rule.field)


@pytest.mark.parametrize("rule,qtype", _cases())
def test_rules_row_holds_on_the_broker(rule, qtype, vhost, broker, amqp, mgmt, broker_version):
    if not rule.holds(broker_version):
        # The row is limited to other versions (Rule.since/until): this broker refuses the
        # declare outright instead, which is what makes the row end there.
        _, with_argument, name = _queue_versions(rule, qtype, broker_version)
        ch = amqp.channel()
        with pytest.raises((ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)) as info:
            _declare_queue(ch, with_argument.replace(vhost=vhost))
        assert info.value.reply_code in (406, 541), info.value
        return
    if rule.kind == "queue":
        existing, changed, name = _queue_versions(rule, qtype, broker_version)
    else:
        existing, changed, name = _exchange_versions(rule)
    existing, changed = existing.replace(vhost=vhost), changed.replace(vhost=vhost)
    keep_open = amqp.channel()
    (_declare_queue if rule.kind == "queue" else _declare_exchange)(keep_open, existing)

    # 1. the plan calls the change blocked and names the field
    client = ManagementClient(broker)
    try:
        live = read_live(client, [vhost])
    finally:
        client.close()
    assert existing.key in (live.topology.queues if rule.kind == "queue" else live.topology.exchanges)
    desired = Topology.build([Vhost(vhost), changed])
    plan = make_plan(desired, live, PlanOptions())
    blocked = [c for c in plan.changes if c.key == changed.key]
    assert len(blocked) == 1 and blocked[0].action.value == "blocked", plan.changes
    assert any(p == f"arguments.{name}" or p == name for p in blocked[0].diff), blocked[0].diff
    assert name in blocked[0].reason

    # 2. the broker agrees
    ch = amqp.channel()
    declare = _declare_queue if rule.kind == "queue" else _declare_exchange
    if rule.verdict in (REJECTS, LOCKS):
        with pytest.raises(ChannelClosedByBroker) as info:
            declare(ch, changed)
        assert info.value.reply_code == (406 if rule.verdict == REJECTS else 405), info.value
        assert "406" in blocked[0].reason if rule.verdict == REJECTS else "405" in blocked[0].reason
    else:
        assert rule.verdict == IGNORES
        declare(ch, changed)  # accepted...
        kind_path = "queues" if rule.kind == "queue" else "exchanges"
        stored = mgmt.get(f"/api/{kind_path}/{_q(vhost)}/{_q(existing.name)}")["arguments"]
        assert stored.get(name) == existing.arguments.get(name), stored  # ...and the old value kept
        assert "silently keep the old value" in blocked[0].reason
        ch.close()
    keep_open.close()


def _q(s):
    from topoform.broker.settings import quote_segment

    return quote_segment(s)


def test_every_replayable_row_has_a_case():
    ids = {p.id for p in _cases()}
    assert len(ids) == len(_cases()) >= 40
