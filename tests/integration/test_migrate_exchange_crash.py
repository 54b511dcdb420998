"""Crash safety of exchange migrations: ``apply --migrate`` killed with SIGKILL at every
step boundary of an exchange migration; one more ``apply --migrate`` must finish it.

The exchange ``logs`` changes type (direct -> topic) and durability (false -> true),
which the broker cannot do in place, so the migration deletes it and declares it again
(SPEC 5, docs/migrate.md "Exchange migrations"). Around it:

* ``up`` (fanout) -> ``logs``: an exchange-to-exchange binding with ``logs`` as destination;
* ``logs`` -> queues ``a`` (two keys) and ``a2`` (same key twice, with and without
  binding arguments), and ``logs`` -> ``down`` (fanout, e2e, ``logs`` as source) -> ``b``;
* ``logs`` has the alternate exchange ``unrouted`` (fanout -> ``lost``), and the exchange
  ``front`` has ``logs`` as *its* alternate exchange.

The CLI runs as a subprocess. ``TOPOFORM_TEST_PAUSE_AT=<op>`` (topoform/apply/migrate.py,
``_pause``) makes it stop right before that step and create ``TOPOFORM_TEST_PAUSE_FILE``;
the test then kills it. While it is stopped, messages published through ``up`` must still
reach the same queues once each (the alternate path of the temporary exchange). After the
final run: the new properties, exactly the original bindings on both sides, no
migration artifact, a clean ``plan --detailed-exitcode`` and routing end to end.
"""
from __future__ import annotations

import signal
import time

import pika
import pytest

from migrate_support import start_apply
from topoform.planner.migration import EXCHANGE_OPS

X = "logs"
TEMP = "topoform.migrate.logs"
QUEUES = ("a", "a2", "b", "lost")
# (source, destination, destination_type, routing_key, arguments)
BINDINGS = {
    ("up", X, "exchange", "", ()),
    (X, "a", "queue", "info", ()),
    (X, "a", "queue", "audit.#", ()),
    (X, "a2", "queue", "warn", ()),
    (X, "a2", "queue", "warn", (("level", 3), ("team", "ops"))),
    (X, "down", "exchange", "info", ()),
    ("down", "b", "queue", "", ()),
    ("unrouted", "lost", "queue", "", ()),
}


def _topology(vhost: str) -> str:
    return f"""
vhosts:
  {vhost}:
    exchanges:
      up: {{type: fanout, durable: true}}
      {X}: {{type: topic, durable: true, arguments: {{alternate-exchange: unrouted}}}}
      down: {{type: fanout, durable: true}}
      unrouted: {{type: fanout, durable: true}}
      front: {{type: direct, durable: true, arguments: {{alternate-exchange: {X}}}}}
    queues:
      a: {{durable: true}}
      a2: {{durable: true}}
      b: {{durable: true}}
      lost: {{durable: true}}
    bindings:
      - {{source: up, destination: {X}, destination_type: exchange, routing_key: ""}}
      - {{source: {X}, destination: a, destination_type: queue, routing_key: info}}
      - {{source: {X}, destination: a, destination_type: queue, routing_key: "audit.#"}}
      - {{source: {X}, destination: a2, destination_type: queue, routing_key: warn}}
      - {{source: {X}, destination: a2, destination_type: queue, routing_key: warn,
          arguments: {{team: ops, level: 3}}}}
      - {{source: {X}, destination: down, destination_type: exchange, routing_key: info}}
      - {{source: down, destination: b, destination_type: queue, routing_key: ""}}
      - {{source: unrouted, destination: lost, destination_type: queue, routing_key: ""}}
"""


def _setup(amqp) -> None:
    """The live state before the migration: ``logs`` is a transient direct exchange."""
    ch = amqp.channel()
    ch.exchange_declare("up", "fanout", durable=True)
    ch.exchange_declare("unrouted", "fanout", durable=True)
    ch.exchange_declare(X, "direct", durable=False, arguments={"alternate-exchange": "unrouted"})
    ch.exchange_declare("down", "fanout", durable=True)
    ch.exchange_declare("front", "direct", durable=True, arguments={"alternate-exchange": X})
    for q in QUEUES:
        ch.queue_declare(q, durable=True)
    for src, dst, dtype, key, args in sorted(BINDINGS):
        if dtype == "queue":
            ch.queue_bind(dst, src, key, dict(args) or None)
        else:
            ch.exchange_bind(dst, src, key, dict(args) or None)
    ch.close()


def _bindings(mgmt, vhost: str) -> set:
    rows = mgmt.get(f"/api/bindings/{vhost}")
    return {(r["source"], r["destination"], r["destination_type"], r["routing_key"],
             tuple(sorted((r.get("arguments") or {}).items()))) for r in rows if r["source"]}


def _kill_at(env, topo, op, tmp_path, password) -> str:
    """Run ``apply --migrate`` until it pauses before ``op``, then SIGKILL it."""
    marker = tmp_path / f"paused-{op}"
    proc = start_apply(env, topo, pause=op, pause_file=marker)
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None, f"apply ended before reaching {op}: {proc.communicate()[0][-3000:]!r}"
        assert time.monotonic() < deadline, f"pause point {op} not reached"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL
    assert password not in out
    return out


def _publish(amqp, exchange: str, keys) -> None:
    ch = amqp.channel()
    ch.confirm_delivery()
    for key in keys:
        ch.basic_publish(exchange, key, key.encode(), pika.BasicProperties(delivery_mode=2))
    ch.close()


def _received(amqp) -> dict:
    """Every queue's messages (bodies, in order), consumed."""
    ch = amqp.channel()
    out = {}
    for q in QUEUES:
        got = []
        while True:
            method, _props, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                break
            got.append(body.decode())
        out[q] = got
    ch.close()
    return out


# what a message published to ``up`` with each key reaches, before and after the migration
BEFORE = {"info": ["a", "b"], "warn": ["a2"], "nothing": ["lost"]}


def _routes(table) -> dict:
    out = {q: [] for q in QUEUES}
    for key, queues in table.items():
        for q in queues:
            out[q].append(key)
    return out


def _on(bindings: set, name: str) -> set:
    return {b for b in bindings if name in (b[0], b[1])}


def _renamed(bindings: set, old: str, new: str) -> set:
    return {(new if s == old else s, new if d == old else d, t, k, a) for s, d, t, k, a in bindings}


# what the broker shows when a run is killed right before each step:
# (logs: "old" / "new" / None, temporary exchange exists, logs keeps its bindings, the temporary one has copies)
STATE_BEFORE = {
    "declare_temp_exchange": ("old", False, True, False),
    "copy_bindings": ("old", True, True, False),
    "delete_exchange": ("old", True, True, True),
    "declare_exchange": (None, True, False, True),
    "restore_exchange_bindings": ("new", True, False, True),
    "delete_temp_exchange": ("new", True, True, True),
}


def _check_state(mgmt, vhost: str, op: str) -> None:
    """The kill landed exactly before ``op``."""
    form, has_temp, x_bound, temp_bound = STATE_BEFORE[op]
    r = mgmt.request("GET", f"/api/exchanges/{vhost}/{X}", expect=(200, 404))
    info = r.json() if r.status_code == 200 else None
    shape = None if info is None else (info["type"], info["durable"])
    assert shape == {"old": ("direct", False), "new": ("topic", True), None: None}[form], (op, info)
    r = mgmt.request("GET", f"/api/exchanges/{vhost}/{TEMP}", expect=(200, 404))
    assert (r.status_code == 200) == has_temp, op
    if has_temp:
        temp = r.json()
        assert temp["internal"] and temp["arguments"]["alternate-exchange"] == "unrouted", temp
    bindings = _bindings(mgmt, vhost)
    assert _on(bindings, X) == (_on(BINDINGS, X) if x_bound else set()), op
    assert _on(bindings, TEMP) == (_renamed(_on(BINDINGS, X), X, TEMP) if temp_bound else set()), op
    assert bindings - _on(bindings, X) - _on(bindings, TEMP) == BINDINGS - _on(BINDINGS, X), op


def _check_alternate_path(amqp, where: str) -> None:
    """While a migration is stopped, ``up`` still routes through ``logs`` or its temporary twin, once each."""
    _publish(amqp, "up", list(BEFORE))
    got = _received(amqp)
    assert got == _routes(BEFORE), f"killed before {where}: routing through up gave {got}"


def _check_final(amqp, mgmt, vhost, broker_env, topo, cli, where: str) -> None:
    final = start_apply(broker_env, topo)
    out = final.communicate(timeout=120)[0].decode(errors="replace")
    assert final.returncode == 0, f"after kill(s) {where}: {out[-3000:]}"
    info = mgmt.get(f"/api/exchanges/{vhost}/{X}")
    assert (info["type"], info["durable"], info["auto_delete"], info["internal"], info["arguments"]) == \
        ("topic", True, False, False, {"alternate-exchange": "unrouted"}), info
    assert _bindings(mgmt, vhost) == BINDINGS, f"after kill(s) {where}"
    exchanges = {e["name"] for e in mgmt.get(f"/api/exchanges/{vhost}") if e["name"] and
                 not e["name"].startswith("amq.")}
    assert exchanges == {"up", X, "down", "unrouted", "front"}, exchanges
    deadline = time.monotonic() + 10  # the lock queue goes with the killed/finished connections
    while True:
        queues = {q["name"] for q in mgmt.queues(vhost)}
        if queues == set(QUEUES) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert queues == set(QUEUES), queues
    plan = cli(["plan", "--detailed-exitcode", "-f", topo], environ=broker_env)
    assert plan.code == 0, plan
    # routing end to end: through the upstream exchange, the exchange itself, and as an alternate exchange
    _publish(amqp, "up", ["info", "warn", "audit.login", "nothing"])
    _publish(amqp, X, ["info", "audit.x.y", "other"])
    _publish(amqp, "front", ["warn"])  # unroutable on front: its alternate exchange logs takes it
    got = _received(amqp)
    assert got == {"a": ["info", "audit.login", "info", "audit.x.y"], "a2": ["warn", "warn"],
                   "b": ["info", "info"], "lost": ["nothing", "other"]}, got


@pytest.mark.parametrize("op", EXCHANGE_OPS)
def test_exchange_migration_killed_before_each_step_is_finished_by_the_next_apply(
        op, broker_env, vhost, amqp, mgmt, cli, tmp_path, test_password):
    _setup(amqp)
    topo = tmp_path / "topology.yaml"
    topo.write_text(_topology(vhost))
    assert _bindings(mgmt, vhost) == BINDINGS
    plan = cli(["plan", "--migrate", "--detailed-exitcode", "-f", topo], environ=broker_env)
    assert plan.code == 2 and "1 to migrate" in plan.out, plan
    _kill_at(broker_env, topo, op, tmp_path, test_password)
    _check_state(mgmt, vhost, op)
    _check_alternate_path(amqp, op)
    # the next plan recognizes the interrupted migration once the temporary exchange exists
    plan = cli(["plan", "--migrate", "--detailed-exitcode", "-f", topo], environ=broker_env)
    assert plan.code == 2 and "1 to migrate" in plan.out, plan
    if op != EXCHANGE_OPS[0]:
        assert "Finishes the interrupted migration" in plan.out, plan
    _check_final(amqp, mgmt, vhost, broker_env, topo, cli, op)


def test_exchange_migration_killed_at_every_step_in_turn(broker_env, vhost, amqp, mgmt, cli, tmp_path,
                                                         test_password):
    """Each run resumes what the previous kill left and is killed before the next step."""
    _setup(amqp)
    topo = tmp_path / "topology.yaml"
    topo.write_text(_topology(vhost))
    for op in EXCHANGE_OPS:
        _kill_at(broker_env, topo, op, tmp_path, test_password)
        _check_state(mgmt, vhost, op)
        _check_alternate_path(amqp, op)
    _check_final(amqp, mgmt, vhost, broker_env, topo, cli, "at every step in turn")
