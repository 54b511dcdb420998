"""Runs a plan's changes against the broker: one small function per (action, kind).

``apply_plan(plan, ctx, progress)`` executes the changes in plan order and returns an
:class:`ApplyResult`: what was done, what failed (with the broker's own reply), what
was not attempted. It stops at the first failure. Must not import cli.

How it stays fast and correct:

* Every change goes through :data:`HANDLERS`, keyed by (action, kind). AMQP handlers
  do no I/O: they return the :class:`~topoform.broker.amqp.Op` objects to send, so
  consecutive changes of one phase (all exchange declares, then all queue declares,
  then all binds, ...) are pipelined over several channels. HTTP handlers (vhosts,
  policies) and migrations run one at a time, in place.
* A new phase starts only when every reply of the previous one has arrived, so an
  exchange exists before anything binds to it, and bindings leave before queues.
* Every operation is idempotent (redeclaring an identical object, unbinding a missing
  binding and deleting a missing object all succeed), so a connection lost mid-phase
  is retried with backoff by sending the unfinished operations again, and a run killed
  at any point leaves a broker that the next plan converges from.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..broker import amqp
from ..broker.settings import BrokerSettings, quote_segment
from ..errors import BlockedPlanError, BrokerError, TopoformError
from ..planner.plan import Action, Change, Plan
from ..planner.rules import queue_delete_refusal
from .progress import Progress

RETRYABLE_CODES = {"connection-lost", "unreachable", "broker-unreachable", "broker-timeout"}
LIMIT_CODES = ("connection-limit", "channel-limit")  # a vhost's or user's max-connections, a user's max-channels


# --------------------------------------------------------------------------- context and result
@dataclass
class ApplyOptions:
    """Flags that change how changes are executed (not what is planned)."""

    allow_data_loss: bool = False  # delete queues without the broker's if-empty guard
    force: bool = False  # delete queues without the if-unused guard; migrate queues with consumers
    channels: int = 64  # AMQP channels per connection for pipelined operations
    connections: int = 4  # AMQP connections per vhost for large phases (amqp.Pool); 1: one Session
    parallel: int = 1  # queue migrations run at once (apply --migrate --parallel N)
    retries: int = 4  # reconnect attempts after a lost connection
    backoff: float = 0.5  # first retry delay in seconds, doubled each time


@dataclass
class ApplyContext:
    """Everything a change function (and a migration) may use.

    * ``settings``: broker settings (never print them; use ``settings.describe()``).
    * ``client``: the :class:`~topoform.broker.http.ManagementClient`.
    * ``session(vhost)``: the shared pipelined :class:`~topoform.broker.amqp.Session` of a vhost.
    * ``connect(vhost, purpose)``: a new pika ``BlockingConnection`` the caller owns and closes.
    * ``progress``: :class:`~topoform.apply.progress.Progress`; ``note(text)`` shows a line.
    * ``options``: :class:`ApplyOptions` (``force``, ``allow_data_loss``).
    * ``lock``: the :class:`~topoform.apply.lock.BrokerLock` (or None); ``check_lock()``.
    """

    settings: BrokerSettings
    client: Any
    options: ApplyOptions = field(default_factory=ApplyOptions)
    lock: Any = None
    progress: Progress = field(default_factory=Progress)
    sleep: Callable[[float], None] = time.sleep
    exclusive_queues: set = field(default_factory=set)  # (vhost, name) of exclusive queues: never declared, never bound
    _sessions: dict = field(default_factory=dict)

    def session(self, vhost: str) -> "amqp.Session | amqp.Pool":
        session = self._sessions.get(vhost)
        if session is None:
            if self.options.connections > 1:
                session = amqp.Pool(self.settings, vhost, connections=self.options.connections,
                                    channels=self.options.channels, name=amqp.holder_name("apply"))
            else:
                session = amqp.Session(self.settings, vhost, channels=self.options.channels,
                                       name=amqp.holder_name("apply"))
            self._sessions[vhost] = session
        return session

    def connect(self, vhost: str, purpose: str = "apply"):
        """A fresh blocking connection to ``vhost`` (the caller closes it)."""
        return amqp.connect(self.settings, vhost, name=amqp.holder_name(purpose))

    def note(self, text: str) -> None:
        self.progress.note(text)

    def check_lock(self) -> None:
        if self.lock is not None:
            self.lock.check()

    def vhost_created(self, vhost: str) -> None:
        """Take the apply lock on a vhost this run just created."""
        if self.lock is not None:
            self.lock.acquire([vhost])

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()


@dataclass
class Failure:
    change: Change
    message: str  # names the object and quotes the broker's reply
    code: str | None = None  # the error's code (docs/json.md), e.g. broker-refused, connection-limit
    hint: str = ""  # what to do about it, when known


@dataclass
class StepTiming:
    """One phase of the run: consecutive changes of one (action, kind), and how long it took."""

    action: str
    kind: str
    changes: int
    seconds: float


@dataclass
class ApplyResult:
    done: list = field(default_factory=list)  # [Change]
    failed: list = field(default_factory=list)  # [Failure]
    not_attempted: list = field(default_factory=list)  # [Change]
    skipped: list = field(default_factory=list)  # [(Change, why)]
    elapsed: float = 0.0
    steps: list = field(default_factory=list)  # [StepTiming]: one per phase started, in order

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        counts = {a.value: 0 for a in (Action.CREATE, Action.UPDATE, Action.DELETE, Action.MIGRATE)}
        for change in self.done:
            counts[change.action.value] = counts.get(change.action.value, 0) + 1
        return counts


# --------------------------------------------------------------------------- the change functions
# AMQP functions return a list of Ops (sent pipelined by the executor); HTTP functions do
# their request and return None. ``Skip`` means: nothing to do, by design.
class Skip(Exception):
    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def declare_exchange(change: Change, ctx: ApplyContext) -> list[amqp.Op]:
    x = change.after
    return [amqp.op_declare_exchange(x.name, x.type, durable=x.durable, auto_delete=x.auto_delete,
                                     internal=x.internal, arguments=x.arguments, vhost=x.vhost, token=change)]


def declare_queue(change: Change, ctx: ApplyContext) -> list[amqp.Op]:
    q = change.after
    if q.exclusive:
        raise Skip("exclusive queues are declared by their consumers at run time, never by apply")
    return [amqp.op_declare_queue(q.name, durable=q.durable, auto_delete=q.auto_delete, arguments=q.arguments,
                                  vhost=q.vhost, token=change)]


def bind(change: Change, ctx: ApplyContext) -> list[amqp.Op]:
    b = change.after
    if b.destination_type == "queue" and (b.vhost, b.destination) in ctx.exclusive_queues:
        raise Skip("bindings to exclusive queues are made by their consumers at run time")
    return [amqp.op_bind(b.source, b.destination, b.destination_type, b.routing_key, b.arguments,
                         vhost=b.vhost, token=change)]


def unbind(change: Change, ctx: ApplyContext) -> list[amqp.Op]:
    """Unbind with the stored typed arguments.

    The broker tells bindings apart by integer width (SEMANTICS 9) but its HTTP API
    does not show widths, so a live binding with integer arguments was made either
    with ``long`` (HTTP, definitions import, topoform) or ``signedint`` (plain pika
    clients). Unbinding a binding that does not exist succeeds, so both are sent.
    """
    b = change.before
    ops = [amqp.op_bind(b.source, b.destination, b.destination_type, b.routing_key, b.arguments,
                        vhost=b.vhost, token=change, unbind=True)]
    if amqp.has_integers(dict(b.arguments)):
        ops.append(amqp.op_bind(b.source, b.destination, b.destination_type, b.routing_key, b.arguments,
                                int_type=int, vhost=b.vhost, token=change, unbind=True))
    return ops


def delete_queue(change: Change, ctx: ApplyContext) -> list[amqp.Op]:
    """Delete a queue with the guards its type implements.

    Classic queues get the broker's atomic ``if-empty`` / ``if-unused``. Quorum queues
    refuse both flags (540 NOT_IMPLEMENTED, a connection error, on 3.10, 4.0 and 4.3), so
    their counts are read exactly with a passive declare and the delete carries no flag
    (a message published to the queue by name in that one round trip would be lost; its
    bindings left in an earlier phase). A stream reports 0 messages and ignores
    ``if-empty``: it is deleted only with ``--allow-data-loss``.
    """
    q = change.before
    if q.exclusive:
        raise Skip("exclusive queues belong to their connection and are never deleted")
    qtype = q.queue_type
    options = ctx.options
    where = f"queue '{q.name}' in vhost '{q.vhost}'"
    if qtype == "classic":
        return [amqp.op_delete_queue(q.name, if_empty=not options.allow_data_loss,
                                     if_unused=not options.force, vhost=q.vhost, token=change)]
    # the planner blocks the same deletes with the same rule (rules.queue_delete_refusal): this is
    # the run-time check, with exact counts (messages may have arrived since the plan)
    why = queue_delete_refusal(q.name, qtype, 0, 0, allow_data_loss=options.allow_data_loss, force=options.force)
    if why is None and not (options.allow_data_loss and options.force):
        counts = ctx.session(q.vhost).queue_counts(q.name)
        if counts is None:
            return None  # already gone: done
        messages, consumers = counts
        why = queue_delete_refusal(q.name, qtype, messages, consumers, allow_data_loss=options.allow_data_loss,
                                   force=options.force)
    if why:
        raise TopoformError(f"{where}: {why[:1].lower()}{why[1:]} (checked at run time)", code="delete-refused")
    return [amqp.op_delete_queue(q.name, if_empty=False, if_unused=False, vhost=q.vhost, token=change)]


def delete_exchange(change: Change, ctx: ApplyContext) -> list[amqp.Op]:
    x = change.before
    return [amqp.op_delete_exchange(x.name, vhost=x.vhost, token=change)]


def put_policy(change: Change, ctx: ApplyContext) -> None:
    p = change.after
    body = {"pattern": p.pattern, "definition": p.definition.to_dict() if hasattr(p.definition, "to_dict")
            else dict(p.definition), "priority": p.priority, "apply-to": p.apply_to}
    ctx.client.request("PUT", f"/api/policies/{quote_segment(p.vhost)}/{quote_segment(p.name)}", body,
                       expect=(200, 201, 204))


def delete_policy(change: Change, ctx: ApplyContext) -> None:
    p = change.before
    ctx.client.request("DELETE", f"/api/policies/{quote_segment(p.vhost)}/{quote_segment(p.name)}",
                       expect=(200, 204, 404))


def _vhost_body(change: Change) -> dict:
    body: dict[str, Any] = {}
    for desired in (change.before, change.after):  # the files' settings win; unmanaged ones are kept
        if desired is None:
            continue
        if desired.description is not None:
            body["description"] = desired.description
        if desired.tags is not None:
            body["tags"] = ",".join(desired.tags)
        if desired.default_queue_type not in (None, "", "undefined"):  # "undefined": reported as not set
            # 3.10 reads "defaultqueuetype" and silently ignores "default_queue_type" (SEMANTICS 1.6)
            body["defaultqueuetype"] = desired.default_queue_type
    return body


def create_vhost(change: Change, ctx: ApplyContext) -> None:
    """Create the vhost, let the applying user in, wait until it runs, then lock it."""
    v = change.after
    q = quote_segment(v.name)
    ctx.client.request("PUT", f"/api/vhosts/{q}", _vhost_body(change), expect=(200, 201, 204))
    user = ctx.settings.username
    ctx.client.request("PUT", f"/api/permissions/{q}/{quote_segment(user)}",
                       {"configure": ".*", "write": ".*", "read": ".*"}, expect=(200, 201, 204))
    wait_vhost_running(ctx, v.name)
    ctx.vhost_created(v.name)


def update_vhost(change: Change, ctx: ApplyContext) -> None:
    v = change.after
    ctx.client.request("PUT", f"/api/vhosts/{quote_segment(v.name)}", _vhost_body(change), expect=(200, 201, 204))


def wait_vhost_running(ctx: ApplyContext, name: str, timeout: float | None = None) -> None:
    """Vhost processes start asynchronously; AMQP connections fail until they run."""
    deadline = time.monotonic() + (timeout or ctx.settings.timeout)
    while True:
        info = ctx.client.get(f"/api/vhosts/{quote_segment(name)}")
        states = info.get("cluster_state") or {}
        if states and all(state == "running" for state in states.values()):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"vhost '{name}' was created but is not running after "
                              f"{timeout or ctx.settings.timeout:g}s: {states}")
        ctx.sleep(0.1)


def migrate(change: Change, ctx: ApplyContext) -> None:
    try:
        from .migrate import run_migration
    except ImportError:
        raise TopoformError("this build of topoform cannot run migrations (topoform.apply.migrate is missing)",
                            code="migrate-unavailable") from None
    run_migration(change, ctx)


HANDLERS: dict[tuple[Action, str], Callable[[Change, ApplyContext], Any]] = {
    (Action.CREATE, "vhost"): create_vhost,
    (Action.UPDATE, "vhost"): update_vhost,
    (Action.CREATE, "policy"): put_policy,
    (Action.UPDATE, "policy"): put_policy,
    (Action.DELETE, "policy"): delete_policy,
    (Action.CREATE, "exchange"): declare_exchange,
    (Action.CREATE, "queue"): declare_queue,
    (Action.CREATE, "binding"): bind,
    (Action.DELETE, "binding"): unbind,
    (Action.DELETE, "queue"): delete_queue,
    (Action.DELETE, "exchange"): delete_exchange,
    (Action.MIGRATE, "queue"): migrate,
    (Action.MIGRATE, "exchange"): migrate,
}

from ..config.apply import HANDLERS as _CONFIG_HANDLERS  # noqa: E402 - users, permissions, ... (topoform/config/)

HANDLERS.update(_CONFIG_HANDLERS)


# --------------------------------------------------------------------------- the executor
class _Stop(Exception):
    """Internal: the run failed; the failure and the leftovers are recorded."""


def phases(changes: Iterable[Change], parallel_migrations: int = 1) -> list[list[Change]]:
    """Consecutive changes with the same (action, kind): each list may run in parallel.

    The planner already orders changes by phase; splitting on every change of
    (action, kind) keeps that order even for a plan that interleaves them. Migrations
    run one at a time, except consecutive queue migrations with ``parallel_migrations``
    above 1 (``--parallel N``): they form one group, run by :func:`_run_migrations`.
    """
    out: list[list[Change]] = []
    for change in changes:
        if out and (out[-1][0].action, out[-1][0].kind) == (change.action, change.kind) \
                and (change.action is not Action.MIGRATE or parallel_migrations > 1 and change.kind == "queue"):
            out[-1].append(change)
        else:
            out.append([change])
    return out


def removed_with(changes: Iterable[Change], options: ApplyOptions) -> dict[int, list[Change]]:
    """Binding deletes the broker does by itself: ``{id(queue or exchange delete): [binding deletes]}``.

    Deleting a queue removes the bindings to it, deleting an exchange those from and to it
    (SEMANTICS 6), so ``--prune`` of a vhost need not unbind them one by one first (issue
    17). They count as done once the delete that removes them is done, and as not
    attempted when it fails or is not reached. Bindings of a queue whose emptiness is
    checked apart from its delete (a quorum queue without ``--allow-data-loss``: a passive
    declare, then a delete without flags) are still removed first, so that no message
    can be routed to it between the check and the delete.

    An exchange-to-exchange binding rides only with the delete of its *source*, and only
    when its destination stays. Otherwise it is unbound first, in the bindings phase:

    * both ends deleted: two exchanges bound to each other and deleted at once on two
      channels crash one channel on 3.10.8 and 4.0.5 (``function_clause`` in
      ``rabbit_exchange``, 541 INTERNAL_ERROR, the connection closed; rabbitmq-server
      #11951): 5 of 10 prunes of 400 exchanges with 1,600 such bindings failed on 3.10.8;
    * the destination deleted, the source kept: 4.3.x before the fix of rabbitmq-server
      #17255 removes the binding without telling the source's exchange type (an
      ``x-consistent-hash`` source keeps routing to the deleted exchange).
    """
    changes = list(changes)
    queues: dict[tuple, Change] = {}
    exchanges: dict[tuple, Change] = {}
    for c in changes:
        if c.action is Action.DELETE and c.kind == "queue" and c.before is not None and not c.before.exclusive:
            if c.before.queue_type == "classic" or options.allow_data_loss:  # the broker's if-empty, or no guard
                queues[(c.vhost, c.before.name)] = c
        elif c.action is Action.DELETE and c.kind == "exchange" and c.before is not None:
            exchanges[(c.vhost, c.before.name)] = c
    out: dict[int, list[Change]] = {}
    if not queues and not exchanges:
        return out
    for c in changes:
        if c.action is not Action.DELETE or c.kind != "binding" or c.before is None:
            continue
        b = c.before
        if b.destination_type == "queue":
            coverer = queues.get((b.vhost, b.destination)) or exchanges.get((b.vhost, b.source))
        elif (b.vhost, b.destination) in exchanges:
            coverer = None  # unbound first (see above)
        else:
            coverer = exchanges.get((b.vhost, b.source))
        if coverer is not None:
            out.setdefault(id(coverer), []).append(c)
    return out


def apply_plan(plan: Plan, ctx: ApplyContext, progress: Progress | None = None) -> ApplyResult:
    """Execute ``plan`` in order and report what happened.

    Raises :class:`BlockedPlanError` (before touching anything) when the plan holds
    blocked changes. Broker refusals do not raise: the run stops and the result names
    the failed change with the broker's reply, and lists what was not attempted.

    >>> result = apply_plan(plan, ctx)       # doctest: +SKIP
    >>> result.counts(), result.ok
    ({'create': 12, 'update': 0, 'delete': 0, 'migrate': 0}, True)
    """
    if plan.blocked:
        n = len(plan.blocked)
        raise BlockedPlanError(f"the plan holds {n} blocked change{'s' if n != 1 else ''}; nothing was applied")
    for change in plan.changes:
        if (change.action, change.kind) not in HANDLERS:
            raise TopoformError(f"apply cannot {change.action.value} a {change.kind} ({change.name})",
                                code="unsupported-change")
    if progress is not None:
        ctx.progress = progress
    progress = ctx.progress
    for change in plan.changes:
        q = change.after if change.kind == "queue" else None
        if q is not None and q.exclusive:
            ctx.exclusive_queues.add((q.vhost, q.name))
    result = ApplyResult()
    started = time.monotonic()
    progress.start(len(plan.changes))
    riders = removed_with(plan.changes, ctx.options)
    carried = {id(c) for changes in riders.values() for c in changes}
    groups = phases((c for c in plan.changes if id(c) not in carried), ctx.options.parallel)
    try:
        for index, group in enumerate(groups):
            step_started = time.monotonic()
            try:
                if len(group) > 1 and group[0].action is Action.MIGRATE:
                    _run_migrations(group, ctx, result)
                else:
                    _run_phase(group, ctx, result)
            except _Stop:
                result.steps.append(_timing(group, step_started))
                for later in groups[index + 1:]:
                    result.not_attempted.extend(later)
                break
            result.steps.append(_timing(group, step_started))
        done = {id(c) for c in result.done}
        for change in plan.changes:  # bindings the broker removed with their queue or exchange
            for rider in riders.get(id(change), ()):
                if id(change) in done:
                    result.done.append(rider)
                    progress.done(rider)
                else:
                    result.not_attempted.append(rider)
    finally:
        ctx.close()
        result.elapsed = time.monotonic() - started
        progress.finish()
    return result


def _timing(group: list[Change], started: float) -> StepTiming:
    return StepTiming(group[0].action.value, group[0].kind, len(group), time.monotonic() - started)


class _Locked:
    """A progress reporter shared by threads: one call at a time."""

    def __init__(self, inner: Progress):
        self._inner, self._lock = inner, threading.Lock()

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)

        return call


def _run_migrations(group: list[Change], ctx: ApplyContext, result: ApplyResult) -> None:
    """Up to ``ctx.options.parallel`` queue migrations at once, each exactly as it runs alone.

    Each migration has its own connections (``ctx.connect``), its own temporary queue and
    journal, and resumes from what the broker shows, so running several side by side
    changes nothing about how safe each one is (SIGKILL at any point, a lost connection
    retried). Once one fails no further migration starts; those running finish; the
    failure names its queue and the unstarted ones are not attempted. One refused a
    connection or a channel at a limit (the vhost's or the user's ``max-connections``, the
    user's ``max-channels``) while others run is not a failure: it waits for one of them to
    end, and fewer run at once from then on.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    progress = ctx.progress
    ctx.progress = _Locked(progress)  # type: ignore[assignment]
    todo = list(group)
    running: dict = {}
    failed = False
    at_once = max(1, ctx.options.parallel)
    waits: dict[int, int] = {}  # id(change): pauses after a limit refusal with none running
    try:
        with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="topoform-migrate") as pool:
            while todo or running:
                while todo and not failed and len(running) < at_once:
                    change = todo.pop(0)
                    handler = HANDLERS[(change.action, change.kind)]
                    running[pool.submit(_with_retries, lambda c=change, h=handler: h(c, ctx), ctx,
                                        f"{change.kind} {change.name}", False)] = change
                if failed and todo:
                    result.not_attempted.extend(todo)
                    todo = []
                if not running:
                    break
                finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                ctx.progress.tick()
                for future in finished:
                    change = running.pop(future)
                    try:
                        future.result()
                    except TopoformError as exc:
                        if exc.code in LIMIT_CODES and not failed and (running or waits.get(id(change), 0) < 3):
                            # the others hold what the limit allows: this one starts again (resuming
                            # from what the broker shows) once one of them ends; with none running,
                            # after a pause, three times: the broker counts the connections and
                            # channels of the ones that just ended a moment late (seen on 3.10.8)
                            todo.insert(0, change)
                            if running:
                                at_once = len(running)
                                ctx.progress.note(f"{change.kind} {change.name}: {exc.message}; it waits for a "
                                                  f"running migration to end ({at_once} at once from now on)")
                                continue
                            waits[id(change)] = waits.get(id(change), 0) + 1
                            at_once, delay = 1, ctx.options.backoff * 2 ** (waits[id(change)] - 1)
                            ctx.progress.note(f"{change.kind} {change.name}: {exc.message}; again in {delay:g}s")
                            ctx.sleep(delay)
                            continue
                        result.failed.append(_failure(change, exc))
                        failed = True
                        continue
                    result.done.append(change)
                    ctx.progress.done(change)
    finally:
        ctx.progress = progress
    if failed:
        raise _Stop()


def _run_phase(group: list[Change], ctx: ApplyContext, result: ApplyResult) -> None:
    progress = ctx.progress
    handler = HANDLERS[(group[0].action, group[0].kind)]
    pending: dict[str, list[amqp.Op]] = {}  # vhost -> ops, in plan order
    ops_left: dict[int, int] = {}  # id(change) -> ops still to finish
    for i, change in enumerate(group):
        try:
            ops = _with_retries(lambda: handler(change, ctx), ctx, f"{change.kind} {change.name}")
        except Skip as skip:
            result.skipped.append((change, skip.why))
            progress.done(change)
            continue
        except TopoformError as exc:
            result.failed.append(_failure(change, exc))
            result.not_attempted.extend(c for c in group[i + 1:])
            for ops_of in pending.values():  # compiled but never sent
                result.not_attempted.extend(_unique_changes(ops_of))
            raise _Stop() from None
        if ops is None:
            result.done.append(change)
            progress.done(change)
            continue
        ops_left[id(change)] = len(ops)
        pending.setdefault(change.vhost, []).extend(ops)
    for vhost_index, (vhost, ops) in enumerate(pending.items()):
        failed = _run_ops(vhost, ops, ctx, result, ops_left)
        if failed:
            for later_ops in list(pending.values())[vhost_index + 1:]:
                result.not_attempted.extend(_unique_changes(later_ops))
            raise _Stop()


def _run_ops(vhost: str, ops: list[amqp.Op], ctx: ApplyContext, result: ApplyResult,
             ops_left: dict[int, int]) -> bool:
    """Send one vhost's ops of one phase, retrying after a lost connection. True when something failed."""
    progress = ctx.progress
    session = ctx.session(vhost)

    def on_done(op: amqp.Op) -> None:
        change = op.token
        ops_left[id(change)] -= 1
        if ops_left[id(change)] == 0:
            result.done.append(change)
            progress.done(change)

    todo = ops
    attempt = 0
    while True:
        try:
            batch = session.run(todo, on_done=on_done, tick=progress.tick)
        except BrokerError as exc:
            batch = session.last_result if exc.code == "connection-lost" else None
            if exc.code not in RETRYABLE_CODES or attempt >= ctx.options.retries:
                change = (batch.not_attempted[0].token if batch and batch.not_attempted else todo[0].token)
                result.failed.append(_failure(change, exc))
                left = batch.not_attempted if batch else todo
                result.not_attempted.extend(c for c in _unique_changes(left) if c is not change)
                return True
            if batch is not None:
                todo = batch.not_attempted
            delay = ctx.options.backoff * (2 ** attempt)
            attempt += 1
            progress.note(f"Connection to vhost '{vhost}' lost ({exc.message}); retrying in {delay:g}s "
                          f"(attempt {attempt} of {ctx.options.retries})")
            ctx.sleep(delay)
            session.close()
            try:
                ctx.check_lock()
            except TopoformError as lock_exc:
                change = todo[0].token
                result.failed.append(Failure(change, f"could not keep the apply lock: {lock_exc.message}",
                                             lock_exc.code, lock_exc.hint))
                result.not_attempted.extend(c for c in _unique_changes(todo) if c is not change)
                return True
            continue
        if batch.failures:
            failed_changes = []
            for op, error in batch.failures:
                if op.token not in failed_changes:
                    failed_changes.append(op.token)
                    result.failed.append(Failure(op.token, error.message, error.code, error.hint))
            result.not_attempted.extend(c for c in _unique_changes(batch.not_attempted)
                                        if c not in failed_changes and ops_left.get(id(c), 0) > 0)
            return True
        return False


def _with_retries(fn: Callable[[], Any], ctx: ApplyContext, what: str, retry_limits: bool = True) -> Any:
    """Run a synchronous (HTTP or migration) change function, retrying a lost connection.

    A refusal at a connection or channel limit is retried the same way (``retry_limits``):
    the broker counts the connections and channels of a migration that just ended a
    moment late (seen on 3.10.8), so the next one can be refused for a limit it is within.
    Parallel migrations (:func:`_run_migrations`) handle limits themselves.
    """
    retryable = RETRYABLE_CODES | set(LIMIT_CODES) if retry_limits else RETRYABLE_CODES
    attempt = 0
    while True:
        try:
            return fn()
        except TopoformError as exc:
            if exc.code not in retryable or attempt >= ctx.options.retries:
                raise
            delay = ctx.options.backoff * (2 ** attempt)
            attempt += 1
            ctx.progress.note(f"{what}: {exc.message}; retrying in {delay:g}s (attempt {attempt} of "
                              f"{ctx.options.retries})")
            ctx.sleep(delay)
            ctx.check_lock()


def _unique_changes(ops: Iterable[amqp.Op]) -> list[Change]:
    seen: set[int] = set()
    out = []
    for op in ops:
        if id(op.token) not in seen:
            seen.add(id(op.token))
            out.append(op.token)
    return out


def _failure(change: Change, exc: TopoformError) -> Failure:
    return Failure(change, _describe(change, exc), exc.code, exc.hint)


def _describe(change: Change, exc: TopoformError) -> str:
    """The failure line: names the object unless the error already does."""
    message = exc.message
    subject = f"{change.kind} '{change.name}'"
    if isinstance(exc, amqp.AmqpError) or change.name in message:
        return message
    return f"{subject} in vhost '{change.vhost}': {message}"
