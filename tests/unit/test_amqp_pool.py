"""amqp.Pool: a phase spread over several connections keeps Session.run's result rules (issue 17)."""
from __future__ import annotations

import threading

import pytest

from topoform.broker import amqp
from topoform.broker.settings import BrokerSettings

SETTINGS = BrokerSettings(url="amqp://bob:s3cret-pw@localhost:5672/")


def ops(n):
    return [amqp.op_declare_queue(f"q{i}", durable=True, auto_delete=False, arguments=None) for i in range(n)]


def pool_with(behaviours, monkeypatch):
    """A Pool whose sessions run ``behaviours[i](session, ops, on_done)`` instead of talking to a broker."""
    pool = amqp.Pool(SETTINGS, "v", connections=len(behaviours), channels=4)
    for session, behaviour in zip(pool.sessions, behaviours):
        def run(ops_, on_done=None, tick=None, session=session, behaviour=behaviour):
            session.last_result = amqp.BatchResult()
            return behaviour(session, list(ops_), on_done)
        monkeypatch.setattr(session, "run", run)
        monkeypatch.setattr(session, "open", lambda session=session: session)
    return pool


def ok(session, ops_, on_done):
    for op in ops_:
        session.last_result.done.append(op)
        on_done(op)
    return session.last_result


def test_small_phases_use_one_connection(monkeypatch):
    seen = []
    pool = pool_with([lambda s, o, d: (seen.append(len(o)), ok(s, o, d))[1]] * 3, monkeypatch)
    result = pool.run(ops(amqp.Pool.SPLIT_MIN - 1), on_done=lambda op: None)
    assert seen == [amqp.Pool.SPLIT_MIN - 1] and len(result.done) == amqp.Pool.SPLIT_MIN - 1


def test_a_large_phase_is_spread_and_every_op_reported_done_once(monkeypatch):
    threads, done = set(), []

    def record(s, o, d):
        threads.add(threading.current_thread().name)
        return ok(s, o, d)

    pool = pool_with([record] * 3, monkeypatch)
    batch = ops(3 * amqp.Pool.SPLIT_MIN)
    result = pool.run(batch, on_done=done.append)
    assert len(threads) == 3 and result.ok
    assert sorted(id(op) for op in done) == sorted(id(op) for op in batch) == sorted(id(op) for op in result.done)


def test_a_failure_on_one_connection_stops_the_others_and_is_reported(monkeypatch):
    def fail_first(s, o, d):
        s.last_result.failures.append((o[0], amqp.AmqpError(o[0].subject, 406, "PRECONDITION_FAILED - x")))
        s.last_result.not_attempted.extend(o[1:])
        return s.last_result

    halted = []

    def watch(s, o, d):  # the others see the halt flag set by the failing connection
        for _ in range(200):
            if s.halt is not None and s.halt.is_set():
                halted.append(True)
                break
            threading.Event().wait(0.01)
        s.last_result.not_attempted.extend(o)
        return s.last_result

    pool = pool_with([fail_first, watch], monkeypatch)
    batch = ops(2 * amqp.Pool.SPLIT_MIN)
    result = pool.run(batch, on_done=lambda op: None)
    assert halted == [True]
    assert [f[0].kwargs["queue"] for f in result.failures] == ["q0"]
    assert len(result.not_attempted) == len(batch) - 1


def test_a_lost_connection_raises_with_everything_unfinished_not_attempted(monkeypatch):
    def lose(s, o, d):
        half = len(o) // 2
        for op in o[:half]:
            s.last_result.done.append(op)
            d(op)
        s.last_result.not_attempted.extend(o[half:])
        raise amqp.ConnectionLost("connection to vhost 'v' lost: boom")

    pool = pool_with([ok, lose], monkeypatch)
    batch = ops(2 * amqp.Pool.SPLIT_MIN)
    with pytest.raises(amqp.ConnectionLost):
        pool.run(batch, on_done=lambda op: None)
    left = pool.last_result
    assert len(left.done) + len(left.not_attempted) == len(batch)
    assert len(left.not_attempted) == amqp.Pool.SPLIT_MIN - amqp.Pool.SPLIT_MIN // 2


def test_a_connection_that_cannot_open_raises_its_error(monkeypatch):
    from topoform.errors import BrokerError

    def refuse(s, o, d):
        raise BrokerError("cannot connect to amqp://localhost:5672: connection refused", code="unreachable")

    pool = pool_with([ok, refuse], monkeypatch)
    with pytest.raises(BrokerError) as info:
        pool.run(ops(2 * amqp.Pool.SPLIT_MIN), on_done=lambda op: None)
    assert info.value.code == "unreachable" and "s3cret" not in str(info.value)


def test_each_connection_gets_a_contiguous_part_of_the_phase(monkeypatch):
    """Plan order groups the bindings of one exchange: each connection takes a run of them, not every Nth op."""
    parts = {}

    def record(s, o, d):
        parts[id(s)] = o
        return ok(s, o, d)

    pool = pool_with([record] * 3, monkeypatch)
    batch = ops(3 * amqp.Pool.SPLIT_MIN + 1)
    pool.run(batch, on_done=lambda op: None)
    got = [parts[id(s)] for s in pool.sessions]
    assert [op for part in got for op in part] == batch  # in order, each op once
    assert [len(p) for p in got] == [amqp.Pool.SPLIT_MIN + 1, amqp.Pool.SPLIT_MIN + 1, amqp.Pool.SPLIT_MIN - 1]


def test_an_extra_connection_refused_at_a_connection_limit_leaves_the_phase_to_the_others(monkeypatch):
    from topoform.errors import BrokerError

    runs = []

    def record(s, o, d):
        runs.append((s.name, len(o)))
        return ok(s, o, d)

    pool = pool_with([record] * 4, monkeypatch)
    opened = []

    def refuse(session=pool.sessions[2]):
        opened.append(session.name)
        raise BrokerError("the connection limit of vhost 'v' (2) is reached", code="connection-limit")

    monkeypatch.setattr(pool.sessions[2], "open", refuse)
    for session in pool.sessions[:2]:
        monkeypatch.setattr(session, "open", lambda session=session: opened.append(session.name) or session)
    batch = ops(4 * amqp.Pool.SPLIT_MIN)
    result = pool.run(batch, on_done=lambda op: None)
    assert result.ok and sorted(id(op) for op in result.done) == sorted(id(op) for op in batch)
    assert len(runs) == 2 and sum(n for _, n in runs) == len(batch)  # the first two connections did it all
    assert pool.limit == 2
    # the first connection is opened before the extras take the places the limit allows
    assert opened == [pool.sessions[0].name, pool.sessions[1].name, pool.sessions[2].name]
    runs.clear()
    pool.run(ops(4 * amqp.Pool.SPLIT_MIN), on_done=lambda op: None)
    assert len(runs) == 2 and opened.count(pool.sessions[2].name) == 1  # not asked for again


def test_an_extra_connection_refused_otherwise_is_an_error(monkeypatch):
    from topoform.errors import BrokerError

    pool = pool_with([ok] * 3, monkeypatch)

    def refuse():
        raise BrokerError("cannot connect", code="unreachable")

    monkeypatch.setattr(pool.sessions[1], "open", refuse)
    with pytest.raises(BrokerError, match="cannot connect"):
        pool.run(ops(3 * amqp.Pool.SPLIT_MIN), on_done=lambda op: None)
