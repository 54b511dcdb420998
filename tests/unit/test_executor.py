"""Executor: dispatch table, phase order, pipelined batches, failures, retries (against a recording fake)."""
from __future__ import annotations

import pytest

from topoform.apply import executor as ex
from topoform.apply.executor import ApplyContext, ApplyOptions, apply_plan
from topoform.broker import amqp
from topoform.broker.settings import BrokerSettings
from topoform.errors import BlockedPlanError
from topoform.model import Args, Binding, Exchange, Policy, Queue, Vhost
from topoform.planner.plan import Action, Change, Plan

V = "v1"


def create(r):
    return Change(Action.CREATE, r.kind, r.vhost, r.name, before=None, after=r)


def delete(r):
    return Change(Action.DELETE, r.kind, r.vhost, r.name, before=r, after=None)


class FakeSession:
    """Records every batch; ``fail`` maps an op subject to (code, text); ``lose`` drops the connection N times."""

    def __init__(self, log, fail=None, lose=0):
        self.log = log
        self.fail = fail or {}
        self.lose = lose
        self.last_result = None
        self.closed = 0

    def run(self, ops, on_done=None, tick=None):
        ops = list(ops)
        result = amqp.BatchResult()
        self.last_result = result
        if self.lose:
            self.lose -= 1
            half = len(ops) // 2
            for op in ops[:half]:
                result.done.append(op)
                on_done(op)
            result.not_attempted = ops[half:]
            raise amqp.ConnectionLost("connection to vhost 'v1' lost: boom")
        self.log.append([(op.method, op.kwargs, op.subject) for op in ops])
        for i, op in enumerate(ops):
            if op.subject in self.fail:
                code, text = self.fail[op.subject]
                result.failures.append((op, amqp.AmqpError(op.subject, code, text)))
                result.not_attempted = ops[i + 1:]
                return result
            result.done.append(op)
            on_done(op)
            if tick:
                tick()
        return result

    def close(self):
        self.closed += 1


class FakeClient:
    def __init__(self):
        self.requests = []

    def request(self, method, path, body=None, expect=()):
        self.requests.append((method, path, body))

    def get(self, path, params=None):
        self.requests.append(("GET", path, None))
        return {"name": "x", "cluster_state": {"rabbit@n": "running"}}


class FakeLock:
    def __init__(self):
        self.acquired = []
        self.checks = 0

    def acquire(self, vhosts, timeout=None):
        self.acquired.extend(vhosts)

    def check(self, timeout=5.0):
        self.checks += 1


class Ctx(ApplyContext):
    def session(self, vhost):
        if vhost not in self._sessions:
            self._sessions[vhost] = self.fake_factory(vhost)
        return self._sessions[vhost]


def make_ctx(fail=None, lose=0, **options):
    log = []
    client = FakeClient()
    ctx = Ctx(settings=BrokerSettings(url="amqp://bob:s3cret-pw@localhost:5672/"), client=client,
              options=ApplyOptions(**options), lock=FakeLock(), sleep=lambda s: ctx.slept.append(s))
    ctx.slept = []
    sessions = {}

    def factory(vhost):
        s = FakeSession(log, fail=fail, lose=lose)
        sessions[vhost] = s
        return s

    ctx.fake_factory = factory
    ctx.fake_sessions = sessions
    return ctx, log, client


EX = Exchange(V, "events", "topic", durable=True)
EX2 = Exchange(V, "audit", "fanout", arguments=Args({"alternate-exchange": "ae"}))
Q = Queue(V, "orders", durable=True, arguments=Args({"x-message-ttl": 60000, "x-max-length": 10}))
Q2 = Queue(V, "payments", durable=True)
B = Binding(V, "events", "orders", "queue", "order.*")
B2 = Binding(V, "events", "audit", "exchange", "#")
POL = Policy(V, "ttl", "^short\\.", "queues", 1, Args({"message-ttl": 1000}))


def full_plan():
    return Plan(changes=(
        create(Vhost(V, description="d", default_queue_type="quorum")),
        create(POL),
        create(EX2), create(EX),
        create(Q), create(Q2),
        create(B), create(B2),
        delete(Binding(V, "events", "old", "queue", "k", Args({"n": 1}))),
        delete(Queue(V, "old", durable=True)),
        delete(Exchange(V, "gone")),
        delete(Policy(V, "oldpol", ".*")),
    ), vhosts=(V,))


def test_every_change_runs_in_phase_order_one_batch_per_phase():
    ctx, log, client = make_ctx()
    result = apply_plan(full_plan(), ctx)
    assert result.ok and len(result.done) == 12 and not result.not_attempted
    methods = [[m for m, _, _ in batch] for batch in log]
    assert methods == [
        ["exchange_declare", "exchange_declare"],
        ["queue_declare", "queue_declare"],
        ["queue_bind", "exchange_bind"],
        # the binding to queue 'old' is not unbound: deleting the queue removes it (issue 17)
        ["queue_delete"],
        ["exchange_delete"],
    ]
    http = [(m, p) for m, p, _ in client.requests]
    assert http[0] == ("PUT", "/api/vhosts/v1")
    assert http[1] == ("PUT", "/api/permissions/v1/bob")
    assert ("PUT", "/api/policies/v1/ttl") in http
    assert http[-1] == ("DELETE", "/api/policies/v1/oldpol")
    # the vhost's settings: 3.10 reads defaultqueuetype, not default_queue_type
    assert client.requests[0][2] == {"description": "d", "defaultqueuetype": "quorum"}
    assert ctx.lock.acquired == [V]
    assert result.counts() == {"create": 8, "update": 0, "delete": 4, "migrate": 0}


def test_vhost_phase_and_http_changes_come_before_amqp_work():
    ctx, log, client = make_ctx()
    apply_plan(full_plan(), ctx)
    assert client.requests[2][0] == "GET"  # waited for the new vhost to run before any AMQP connect


def test_policy_body_uses_the_api_field_names():
    ctx, _, client = make_ctx()
    apply_plan(Plan(changes=(create(POL),)), ctx)
    assert client.requests == [("PUT", "/api/policies/v1/ttl",
                                {"pattern": "^short\\.", "definition": {"message-ttl": 1000}, "priority": 1,
                                 "apply-to": "queues"})]


def test_declares_send_exactly_the_planned_properties_with_long_integers():
    ctx, log, _ = make_ctx()
    apply_plan(Plan(changes=(create(EX2), create(Q))), ctx)
    (_, xk, _), = log[0]
    assert xk == {"exchange": "audit", "exchange_type": "fanout", "durable": False, "auto_delete": False,
                  "internal": False, "arguments": {"alternate-exchange": "ae"}}
    (_, qk, _), = log[1]
    assert qk["queue"] == "orders" and qk["durable"] is True and qk["exclusive"] is False
    assert all(type(v) is amqp.long for v in qk["arguments"].values())


def test_blocked_plan_raises_before_touching_anything():
    ctx, log, client = make_ctx()
    plan = Plan(changes=(create(EX), Change(Action.BLOCKED, "queue", V, "orders", before=Q, after=Q2, reason="r")))
    with pytest.raises(BlockedPlanError):
        apply_plan(plan, ctx)
    assert log == [] and client.requests == []


def test_dispatch_table_covers_every_executable_action_and_kind():
    for action in (Action.CREATE, Action.DELETE):
        for kind in ("exchange", "queue", "binding", "policy"):
            assert (action, kind) in ex.HANDLERS
    assert (Action.CREATE, "vhost") in ex.HANDLERS and (Action.UPDATE, "policy") in ex.HANDLERS
    assert (Action.MIGRATE, "queue") in ex.HANDLERS and (Action.MIGRATE, "exchange") in ex.HANDLERS
    assert not any(action is Action.BLOCKED for action, _ in ex.HANDLERS)


def test_queue_deletes_are_guarded_unless_flags_say_otherwise():
    plan = Plan(changes=(delete(Q),))
    ctx, log, _ = make_ctx()
    apply_plan(plan, ctx)
    assert log[0][0][1] == {"queue": "orders", "if_empty": True, "if_unused": True}
    ctx, log, _ = make_ctx(allow_data_loss=True, force=True)
    apply_plan(plan, ctx)
    assert log[0][0][1] == {"queue": "orders", "if_empty": False, "if_unused": False}


def test_exclusive_queues_and_bindings_to_them_are_never_declared():
    xq = Queue(V, "runtime", exclusive=True)
    xb = Binding(V, "events", "runtime", "queue", "k")
    ctx, log, _ = make_ctx()
    result = apply_plan(Plan(changes=(create(xq), create(xb), create(B))), ctx)
    assert result.ok and [c.name for c, _ in result.skipped] == ["runtime", xb.name]
    assert [[k["queue"] for _, k, _ in batch] for batch in log] == [["orders"]]


def test_unbind_with_integer_arguments_sends_both_integer_widths():
    b = Binding(V, "h", "q", "queue", "", Args({"x-match": "all", "n": 1}))
    ctx, log, _ = make_ctx()
    result = apply_plan(Plan(changes=(delete(b),)), ctx)
    assert result.ok and len(result.done) == 1
    widths = sorted(type(k["arguments"]["n"]).__name__ for _, k, _ in log[0])
    assert widths == ["int", "long"]


def test_a_refused_change_stops_the_run_and_is_reported_with_the_broker_reply():
    reply = "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'orders' in vhost 'v1'"
    ctx, log, _ = make_ctx(fail={"queue 'orders' in vhost 'v1'": (406, reply)})
    result = apply_plan(Plan(changes=(create(EX), create(Q), create(Q2), create(B), create(B2))), ctx)
    assert not result.ok
    assert result.failed[0].change.name == "orders"
    assert "406 PRECONDITION_FAILED - inequivalent arg 'durable'" in result.failed[0].message
    assert [c.name for c in result.done] == ["events"]
    assert sorted(c.name for c in result.not_attempted) == sorted(["payments", B.name, B2.name])
    assert len(log) == 2  # the binding phase never started


def test_a_lost_connection_is_retried_with_backoff_and_the_lock_is_checked():
    ctx, log, _ = make_ctx(lose=2)
    queues = [create(Queue(V, f"q{i}")) for i in range(10)]
    result = apply_plan(Plan(changes=tuple(queues)), ctx)
    assert result.ok and len(result.done) == 10
    assert ctx.slept == [0.5, 1.0]
    assert ctx.lock.checks == 2
    assert len(log[0]) == 10 - 5 - 2  # only what was not finished is sent again


def test_retries_are_bounded():
    ctx, _, _ = make_ctx(lose=99, retries=2)
    result = apply_plan(Plan(changes=tuple(create(Queue(V, f"q{i}")) for i in range(8))), ctx)
    assert not result.ok and "lost" in result.failed[0].message
    assert len(result.done) + len(result.failed) + len(result.not_attempted) == 8


def test_phases_split_on_action_and_kind_and_never_merge_migrations():
    m = Change(Action.MIGRATE, "queue", V, "a", before=Q, after=Q)
    groups = ex.phases([create(EX), create(EX2), create(Q), m, m, create(B)])
    assert [len(g) for g in groups] == [2, 1, 1, 1, 1]


def test_http_failure_names_the_object_and_leaves_the_rest_not_attempted():
    from topoform.errors import BrokerError

    ctx, log, client = make_ctx()

    def boom(method, path, body=None, expect=()):
        raise BrokerError("PUT http://localhost:15672/api/policies/v1/ttl answered 400: bad pattern")

    client.request = boom
    result = apply_plan(Plan(changes=(create(POL), create(EX))), ctx)
    assert result.failed[0].change.name == "ttl" and "400: bad pattern" in result.failed[0].message
    assert [c.name for c in result.not_attempted] == ["events"] and log == []


QUORUM_OLD = Queue(V, "qold", durable=True, arguments=Args({"x-queue-type": "quorum"}))


def _prune_plan(queue):
    return Plan(changes=(
        delete(Binding(V, "events", queue.name, "queue", "k")),
        delete(Binding(V, "gone", "kept", "queue", "k2")),  # removed with its source exchange
        delete(Binding(V, "events", "kept", "queue", "k3")),  # neither end deleted: unbound
        delete(queue),
        delete(Exchange(V, "gone")),
    ), vhosts=(V,))


def test_bindings_of_deleted_classic_queues_and_exchanges_are_left_to_the_broker():
    ctx, log, _ = make_ctx()
    result = apply_plan(_prune_plan(Queue(V, "old", durable=True)), ctx)
    assert result.ok and len(result.done) == 5 and not result.not_attempted
    assert [[(m, k.get("routing_key")) for m, k, _ in batch] for batch in log] == [
        [("queue_unbind", "k3")], [("queue_delete", None)], [("exchange_delete", None)]]


def test_exchange_to_exchange_bindings_ride_only_with_their_source_when_the_destination_stays():
    # both ends deleted at once crash a channel on 3.10 and 4.0 (541, rabbitmq-server#11951);
    # a deleted destination leaves a kept source's exchange type uninformed on 4.3.x (#17255)
    plan = Plan(changes=(
        delete(Binding(V, "gone", "gone2", "exchange", "both")),   # both ends deleted: unbound first
        delete(Binding(V, "kept", "gone", "exchange", "dest")),    # destination deleted: unbound first
        delete(Binding(V, "gone", "kept", "exchange", "source")),  # source deleted, destination stays: rides
        delete(Exchange(V, "gone")),
        delete(Exchange(V, "gone2")),
    ), vhosts=(V,))
    ctx, log, _ = make_ctx()
    result = apply_plan(plan, ctx)
    assert result.ok and len(result.done) == 5 and not result.not_attempted
    assert [[(m, k.get("routing_key")) for m, k, _ in batch] for batch in log] == [
        [("exchange_unbind", "both"), ("exchange_unbind", "dest")], [("exchange_delete", None)] * 2]


def test_bindings_of_a_quorum_queue_are_removed_before_its_counted_delete():
    class CountingSession(FakeSession):
        def queue_counts(self, name):
            return (0, 0)

    ctx, log, _ = make_ctx()
    ctx.fake_factory = lambda vhost: CountingSession(log)
    result = apply_plan(_prune_plan(QUORUM_OLD), ctx)
    assert result.ok and len(result.done) == 5
    assert [(m, k.get("routing_key")) for m, k, _ in log[0]] == [("queue_unbind", "k"), ("queue_unbind", "k3")]
    # with --allow-data-loss nothing is counted, so the broker removes them with the queue
    ctx, log, _ = make_ctx(allow_data_loss=True)
    ctx.fake_factory = lambda vhost: CountingSession(log)
    apply_plan(_prune_plan(QUORUM_OLD), ctx)
    assert [(m, k.get("routing_key")) for m, k, _ in log[0]] == [("queue_unbind", "k3")]


def test_bindings_left_to_a_delete_that_failed_are_not_attempted():
    ctx, _, _ = make_ctx(fail={"queue 'old' in vhost 'v1'": (406, "PRECONDITION_FAILED - queue 'old' in vhost "
                                                                    "'v1' not empty")})
    result = apply_plan(_prune_plan(Queue(V, "old", durable=True)), ctx)
    assert not result.ok and [f.change.name for f in result.failed] == ["old"]
    left = {(c.kind, c.before.destination if c.kind == "binding" else c.name) for c in result.not_attempted}
    assert ("binding", "old") in left and ("exchange", "gone") in left
    assert ("binding", "kept") in left  # its exchange delete was not reached


def _migrations(n):
    return Plan(changes=tuple(Change(Action.MIGRATE, "queue", V, f"m{i}", before=Queue(V, f"m{i}", durable=True),
                                     after=Queue(V, f"m{i}", durable=True, arguments=Args({"x-queue-type": "quorum"})))
                              for i in range(n)), vhosts=(V,))


def test_parallel_queue_migrations_run_up_to_n_at_once(monkeypatch):
    import threading
    import time as _time

    from topoform.apply import executor

    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def fake_migrate(change, ctx):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        _time.sleep(0.15)
        ctx.note(f"moved {change.name}")
        with lock:
            state["now"] -= 1

    monkeypatch.setitem(executor.HANDLERS, (Action.MIGRATE, "queue"), fake_migrate)
    ctx, _, _ = make_ctx(parallel=3)
    result = apply_plan(_migrations(7), ctx)
    assert result.ok and sorted(c.name for c in result.done) == [f"m{i}" for i in range(7)]
    assert state["max"] == 3
    ctx, _, _ = make_ctx()  # the default: one at a time
    state["max"] = 0
    apply_plan(_migrations(3), ctx)
    assert state["max"] == 1


def test_a_failed_parallel_migration_stops_further_starts(monkeypatch):
    import time as _time

    from topoform.apply import executor
    from topoform.errors import TopoformError

    started = []

    def fake_migrate(change, ctx):
        started.append(change.name)
        if change.name == "m1":
            raise TopoformError("queue 'm1' in vhost 'v1': step 3/11 move_out: the broker refused: 406 ...")
        _time.sleep(0.3)

    monkeypatch.setitem(executor.HANDLERS, (Action.MIGRATE, "queue"), fake_migrate)
    ctx, _, _ = make_ctx(parallel=2)
    result = apply_plan(_migrations(6), ctx)
    assert [f.change.name for f in result.failed] == ["m1"]
    assert "m0" in {c.name for c in result.done}  # the one running beside it finished
    assert {c.name for c in result.not_attempted} == {f"m{i}" for i in range(6)} - set(started)
    assert len(started) <= 3


def test_a_parallel_migration_refused_at_a_connection_limit_waits_and_fewer_run_at_once(monkeypatch):
    """A vhost allowing fewer connections than --parallel N needs: the refused migration starts
    again when another ends, and the run completes with fewer at once (no failure)."""
    import threading
    import time as _time

    from topoform.apply import executor
    from topoform.errors import BrokerError

    allowed = 2  # migrations the (fake) connection limit lets in at once
    state = {"now": 0, "max": 0, "refused": 0}
    lock = threading.Lock()

    def fake_migrate(change, ctx):
        with lock:
            if state["now"] >= allowed:
                state["refused"] += 1
                raise BrokerError("the broker at amqp://localhost:5672 refused a connection to vhost 'v1': the "
                                  "connection limit of vhost 'v1' (3) is reached", code="connection-limit")
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        _time.sleep(0.1)
        with lock:
            state["now"] -= 1

    monkeypatch.setitem(executor.HANDLERS, (Action.MIGRATE, "queue"), fake_migrate)
    ctx, _, _ = make_ctx(parallel=4)
    notes = []
    monkeypatch.setattr(ctx, "note", notes.append, raising=False)
    monkeypatch.setattr(ctx.progress, "note", notes.append)
    result = apply_plan(_migrations(6), ctx)
    assert result.ok, [f.message for f in result.failed]
    assert sorted(c.name for c in result.done) == [f"m{i}" for i in range(6)]
    assert state["max"] == allowed and 1 <= state["refused"] <= 2
    assert any("connection limit" in n and "2 at once from now on" in n for n in notes), notes


def test_a_migration_refused_at_a_connection_limit_with_none_beside_it_fails_after_three_pauses(monkeypatch):
    from topoform.apply import executor
    from topoform.errors import BrokerError

    def refused(change, ctx):
        raise BrokerError("the connection limit of vhost 'v1' (1) is reached", code="connection-limit")

    monkeypatch.setitem(executor.HANDLERS, (Action.MIGRATE, "queue"), refused)
    ctx, _, _ = make_ctx(parallel=1)
    result = apply_plan(_migrations(2), ctx)
    assert [f.change.name for f in result.failed] == ["m0"] and "connection limit" in result.failed[0].message
    # retried like a lost connection (the broker counts closed connections a moment late)
    assert len(ctx.slept) == ctx.options.retries
    ctx, _, _ = make_ctx(parallel=3)
    result = apply_plan(_migrations(3), ctx)  # all three refused at once: none ran beside the last
    assert result.failed and not result.done
    backoff = ctx.options.backoff
    assert ctx.slept == [backoff, 2 * backoff, 4 * backoff]  # the last one alone: three pauses, then failed
