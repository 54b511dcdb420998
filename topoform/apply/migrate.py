"""Runs (and resumes, and rolls back) migrations: message-preserving recreation of queues and exchanges.

The executor calls :func:`run_migration` for every ``migrate`` change. A run never
trusts the plan about *where* a migration stands: it reads the broker, finds the
phase, runs that phase's steps, reads the broker again, until the queue (or
exchange) has its target properties and the artifacts are gone. So a fresh
migration, one interrupted at any point (tool killed, connection lost, the
executor's retry) and one whose plan is a few seconds old all take the same path.
Plan-side names, artifacts and their arguments live in ``planner/migration.py``; the
mover is ``apply/migrate_move.py``, broker access ``apply/migrate_io.py``.

Queue migration, by phase (the queue is ``Q``, the temporary queue ``T``):

* ``out`` (Q has its old properties): declare T and the journal (both classic,
  whatever the vhost's default queue type); cancel Q's consumers (``--force``
  only); move Q's messages to T while Q still has its bindings (so messages
  published meanwhile keep their place in the order); give T every binding of Q
  (bind T, then unbind Q, one binding at a time); move what arrived in Q meanwhile;
  delete Q once it is empty (classic: ``if-empty``; quorum: a passive declare's
  exact count, then a plain delete, since quorum queues refuse ``if-empty``).
* ``gap`` (Q missing): declare Q with the target properties.
* ``back`` (Q has the target properties): move T's messages to Q while T still holds
  the bindings; give the bindings back to Q; move what arrived in T meanwhile;
  delete the journal and T (``if-empty``).

**Rollback** (``apply --migrate --rollback``, :meth:`QueueMigration.run_rollback`)
puts Q back with the properties recorded in T (``x-topoform-before``). From ``out``
it first gathers every message in T (the same order-safe steps as going forward),
then declares the marker exchange ``topoform.journal.Q`` (internal, recording the
original properties): from then on every run, with or without ``--rollback``,
finishes the rollback, because only that keeps the order. With the marker: Q missing
is declared with the original properties; T's messages move back to Q; a Q that
already had the new properties first takes every message back (finishing forward)
and is then migrated to the original properties by an ordinary migration.

A broker refusal (a channel or connection close with a reply code) stops the run
with the broker's answer and the step (``step 6/11 delete_queue ...: the broker
refused: 540 ...``); it is never retried. A lost connection is retried by the
executor and resumes from what the broker shows.

Test hook: ``TOPOFORM_TEST_PAUSE_AT`` makes a run stop (sleep) at a point so a test
can SIGKILL it there: a step name (``delete_queue``) pauses before that step;
``MOVER:BATCH:POINT`` (for example ``move_out:2:confirmed``) pauses inside a move,
after batch BATCH (0-based) was ``journaled``, ``published`` or ``confirmed``
(confirmed, not yet acknowledged). ``TOPOFORM_TEST_PAUSE_FILE`` names a file the run
creates when it pauses. ``TOPOFORM_TEST_BATCH=N`` makes the mover's batches N messages
(prefetch 2N) so that kill tests need fewer messages. Never set them outside tests.

Must not import cli.
"""
from __future__ import annotations

import time
from typing import Mapping

from ..broker import amqp
from ..broker.settings import quote_segment
from ..errors import TopoformError
from ..model import Exchange, Queue
from ..planner import migration as plan_m
from ..planner.plan import Change
from .migrate_io import (MigrationBroker, MigrationError, QueueNotEmpty, exchange_from_http, http_json, pause,
                         queue_from_http, batch_override)
from .migrate_move import STAMP, Mover


def run_migration(change: Change, ctx) -> None:
    """Carry out (or finish, or roll back) one ``migrate`` change; raises :class:`MigrationError` or BrokerError.

    ``ctx`` is the executor's :class:`~topoform.apply.executor.ApplyContext` (``connect``,
    ``client``, ``options.force``, ``note``, ``settings``). A change whose steps include
    ``begin_rollback`` rolls the interrupted migration back.
    """
    if change.kind == "queue":
        migration = QueueMigration(change, ctx)
        migration.run()
    elif change.kind == "exchange":
        ExchangeMigration(change, ctx).run()
    else:
        raise MigrationError(f"cannot migrate a {change.kind}")


# ---------------------------------------------------------------------- queue migration
class _Migration:
    """What queue and exchange migrations share: resuming from what the broker shows.

    Each run asks the broker where the migration stands (``inspect``: the temporary
    object's record and the current object), then runs the steps of that phase; it
    loops until the object matches its target, so a fresh run, a resume after a kill
    and a retry after a lost connection all take the same path. Subclasses name the
    steps (``OPS``, ``PHASE_OF``) and say how to fetch, read back and compare objects.
    """

    KIND = ""
    OPS: tuple = ()
    PHASE_OF: Mapping[str, str] = {}
    ROUNDS = 8

    def __init__(self, change: Change, ctx, temp: str):
        self.change = change
        self.ctx = ctx
        self.vhost = change.vhost
        self.name = change.name
        self.temp = temp
        self.target = change.after
        self.recorded_before = change.before
        self.environ = getattr(ctx, "environ", None)
        self._cursor = 0

    def note(self, text: str) -> None:
        self.ctx.note(text)

    # ---- hooks
    def _get(self, name: str):
        raise NotImplementedError

    def _from_record(self, raw):
        raise NotImplementedError

    def _same(self, a, b) -> bool:
        raise NotImplementedError

    # ---- where are we?
    def inspect(self) -> str:
        temp, current = self._get(self.temp), self._get(self.name)
        if temp is not None:
            recorded = self._from_record(temp.arguments.get(plan_m.ARG_TARGET))
            if recorded is not None and not self._same(recorded, self.target):
                self.note(f"{self.KIND.capitalize()} {self.name}: finishing the interrupted migration toward the "
                          f"properties recorded in {self.temp}; the next plan shows any further change")
                self.target = recorded
            before = self._from_record(temp.arguments.get(plan_m.ARG_BEFORE))
            self.recorded_before = before or self.recorded_before
            if current is None:
                return "gap"
            return "back" if self._same(current, self.target) else "out"
        if current is not None and self._same(current, self.target):
            return "done"
        if current is not None:
            self.recorded_before = current
            return "out"
        return "gap"

    def run(self) -> None:
        self.broker = MigrationBroker(self.ctx, self.vhost)
        try:
            self.run_forward()
        finally:
            self.broker.close()

    def run_forward(self) -> None:
        for _ in range(self.ROUNDS):
            phase = self.inspect()
            if phase == "done":
                return
            self.run_ops([o for o in self.OPS if self.PHASE_OF[o] == phase])
        raise MigrationError(f"{self.KIND} {self.name}: the migration did not settle after {self.ROUNDS} "
                             f"rounds; is another client recreating the {self.KIND}?")

    def run_ops(self, ops) -> None:
        for op in ops:
            pause(op, self.environ)
            self.step(op)

    def step(self, op: str) -> None:
        """Run one step; a broker refusal becomes a MigrationError naming the step (never retried)."""
        try:
            getattr(self, "op_" + op)()
        except amqp.AmqpError as exc:
            raise MigrationError(f"{self._step_label(op)}: the broker refused: "
                                 f"{amqp.format_reply(exc.reply_code, exc.reply_text)} ({exc.subject})",
                                 code=amqp.limit_code(exc.reply_code, exc.reply_text or ""), hint=exc.hint) from None
        except MigrationError as exc:
            raise MigrationError(f"{self._step_label(op)}: {exc.message}", code=exc.code, hint=exc.hint) from None
        except amqp.ConnectionLost as exc:
            raise amqp.ConnectionLost(f"{self._step_label(op)}: {exc.message}") from None

    def _step_label(self, op: str) -> str:
        ops = [s.op for s in self.change.steps]
        where = f"{self.KIND} '{self.name}' in vhost '{self.vhost}'"
        for i in range(self._cursor, len(ops)):
            if ops[i] == op:
                self._cursor = i
                return f"step {i + 1}/{len(ops)} {op} of {where}"
        return f"step {op} of {where}"


class QueueMigration(_Migration):
    KIND = "queue"
    OPS = plan_m.QUEUE_OPS
    PHASE_OF = plan_m.QUEUE_PHASE_OF

    def __init__(self, change: Change, ctx):
        super().__init__(change, ctx, plan_m.temp_queue_name(change.name))
        self.journal = plan_m.journal_queue_name(self.name)
        self.marker = plan_m.rollback_marker_name(self.name)
        self.force = bool(getattr(getattr(ctx, "options", None), "force", False)) or any(
            s.op == "cancel_consumers" for s in change.steps)
        self.rollback = any(s.op == "begin_rollback" for s in change.steps)
        self.types: dict[str, str] = {}  # queue name -> its type as the broker last reported it
        self._size: int | None = None  # mean body size of the queue's messages (bytes), once known

    def _get(self, name: str) -> Queue | None:
        # the queue record, not the statistics: on 4.3.6 the statistics of a quorum queue
        # declared a moment ago can crash the API's worker (badarg in rabbit_mgmt_db:
        # adjust_hibernated_memory_use) and answer 500 for longer than the retries wait
        # (an apply --migrate failed so in bench_migrate_parallel.py); they also lag the
        # queue by ~5 s. The fields read here are the same with disable_stats on 3.10, 4.0, 4.3.
        row = http_json(self.ctx, f"/api/queues/{quote_segment(self.vhost)}/{quote_segment(name)}",
                        params={"disable_stats": "true"})
        if row is not None:
            self.types[name] = str(row.get("type") or "classic")
        return queue_from_http(self.vhost, row)

    def _type_of(self, name: str) -> str:
        if name not in self.types:
            self._get(name)
        return self.types.get(name, "classic")

    def _marker_exchange(self) -> Exchange | None:
        row = http_json(self.ctx, f"/api/exchanges/{quote_segment(self.vhost)}/{quote_segment(self.marker)}")
        x = exchange_from_http(self.vhost, row)
        return x if x is not None and x.arguments.get(plan_m.ARG_ROLE) == plan_m.ROLE_ROLLBACK else None

    def run(self) -> None:
        self.broker = MigrationBroker(self.ctx, self.vhost)
        try:
            if self.rollback or self._marker_exchange() is not None:
                self.run_rollback()
            else:
                self.run_forward()
        finally:
            self.broker.close()

    def _from_record(self, raw) -> Queue | None:
        return plan_m.queue_from_record(self.vhost, self.name, raw)

    def _same(self, a, b) -> bool:
        return plan_m.same_queue(a, b)

    # ---- the steps
    def op_declare_temp(self) -> None:
        before = self.recorded_before or self.target
        self.broker.declare_queue(self.temp, True, False, plan_m.temp_queue_arguments(before, self.target))
        self.types[self.temp] = "classic"
        self.broker.declare_queue(self.journal, True, False, plan_m.journal_queue_arguments(self.name))
        self.note(f"Queue {self.name}: temporary queue {self.temp} declared")

    def op_cancel_consumers(self) -> None:
        self._ensure_no_consumers()

    def _ensure_no_consumers(self) -> None:
        counts = self.broker.count(self.name)
        if counts is None or counts[1] == 0:
            return
        if not self.force:
            raise MigrationError(f"queue {self.name} has {counts[1]} consumer(s); a migration deletes the queue "
                                 "under them: stop them, or use --force to cancel them", )
        deadline = time.monotonic() + 30
        while counts and counts[1]:
            closed = self._close_consumer_connections()
            if time.monotonic() > deadline:
                raise MigrationError(f"queue {self.name}: {counts[1]} consumer(s) are still attached after "
                                     "closing their connections for 30s")
            time.sleep(0.5 if closed else 1.0)
            counts = self.broker.count(self.name)
        self.note(f"Queue {self.name}: consumers cancelled (their connections were closed)")

    def _close_consumer_connections(self) -> int:
        rows = http_json(self.ctx, f"/api/consumers/{quote_segment(self.vhost)}") or []
        names = set()
        for row in rows:
            if (row.get("queue") or {}).get("name") == self.name:
                conn = (row.get("channel_details") or {}).get("connection_name")
                if conn:
                    names.add(conn)
        for conn in sorted(names):
            self.ctx.client.request("DELETE", f"/api/connections/{quote_segment(conn)}", expect=(200, 204, 404))
        return len(names)

    def _message_size(self) -> int | None:
        """The mean body size of the queue's messages from the broker's statistics (bytes), or None.

        Read once, from the original queue, which has usually held its messages for a while: the
        statistics lag a queue by ~5 s, and those of a quorum queue declared a moment ago can
        answer 500 on 4.3.6 (see :meth:`_get`), so neither the temporary queue nor the queue
        declared again is asked. Unknown (no statistics yet, an error, a run resumed after the
        move out): the mover falls back to the batch size in the journal or its default."""
        if self._size is None:
            try:
                row = http_json(self.ctx, f"/api/queues/{quote_segment(self.vhost)}/{quote_segment(self.name)}",
                                attempts=1, params={"columns": "messages,message_bytes"})
            except TopoformError:
                row = None
            messages, size = (row or {}).get("messages"), (row or {}).get("message_bytes")
            if isinstance(messages, int) and isinstance(size, int) and messages > 0 and size > 0:
                self._size = -(-size // messages)
        return self._size

    def _learn_size(self, mean_size: int) -> None:
        if self._size is None:
            self._size = mean_size

    def _mover(self, src: str, dst: str, mode: str, label_op: str) -> Mover:
        size = self._message_size() if mode == "out" else self._size  # the queue itself only before it is moved
        sizing = batch_override(self.environ) or {"message_size": size, "learned": self._learn_size}
        mover = Mover(self.broker.conn, self.broker, src, dst, self.journal, mode=mode,
                      username=self.ctx.settings.username, note=self.note,
                      label=f"queue {self.name} ({label_op})", environ=self.environ,
                      source_type=self._type_of(src), **sizing)
        mover.label_op = label_op
        return mover

    def op_move_out(self) -> None:
        self._ensure_no_consumers()
        counts = self.broker.count(self.name)
        start = counts[0] if counts else 0
        # Chase what publishers add while the queue keeps its bindings, but stop after the backlog
        # so that a busy publisher cannot keep the migration from moving on.
        moved = self._mover(self.name, self.temp, "out", "move_out").run(limit=max(start, 1))
        self.note(f"Queue {self.name}: {moved} message(s) moved to {self.temp}")

    def _bindings_of(self, queue: str) -> list[dict]:
        rows = http_json(self.ctx, f"/api/queues/{quote_segment(self.vhost)}/{quote_segment(queue)}/bindings") or []
        return [r for r in rows if r.get("source")]

    def op_take_bindings(self) -> None:
        rows = self._bindings_of(self.name)
        for b in rows:  # bind the temporary queue first: a message is never without a destination
            self.broker.move_binding(b, b["source"], self.name, self.temp)
        self.note(f"Queue {self.name}: {len(rows)} binding(s) moved to {self.temp}")

    def op_drain_out(self) -> None:
        self._ensure_no_consumers()
        moved = self._mover(self.name, self.temp, "out", "drain_out").run()
        if moved:
            self.note(f"Queue {self.name}: {moved} more message(s) moved to {self.temp}")

    def op_delete_queue(self) -> None:
        qtype = self._type_of(self.name)
        for _ in range(5):
            try:
                self.broker.delete_queue(self.name, if_empty=True, queue_type=qtype)
                self.note(f"Queue {self.name}: deleted")
                self.types.pop(self.name, None)
                return
            except QueueNotEmpty as busy:
                if busy.consumers and not busy.messages:
                    self._ensure_no_consumers()
                self.op_drain_out()  # something arrived (a direct publish): move it too
        raise MigrationError(f"queue {self.name} keeps receiving messages and cannot be emptied for deletion")

    def op_declare_queue(self) -> None:
        t = self.target
        try:
            self.broker.declare_queue(self.name, t.durable, t.auto_delete, t.arguments)
        except amqp.AmqpError as exc:
            if exc.reply_code == 406 and self.broker.count(self.name) is not None:
                # another client recreated it meanwhile: the next round moves it again
                self.note(f"Queue {self.name}: recreated by another client with other properties; moving again")
                return
            raise
        self.types.pop(self.name, None)
        self.note(f"Queue {self.name}: declared with the new properties")

    def op_move_back(self) -> None:
        counts = self.broker.count(self.temp)
        start = counts[0] if counts else 0
        moved = self._mover(self.temp, self.name, "back", "move_back").run(limit=max(start, 1))
        self.note(f"Queue {self.name}: {moved} message(s) moved back")

    def op_restore_bindings(self) -> None:
        rows = self._bindings_of(self.temp)
        for b in rows:
            self.broker.move_binding(b, b["source"], self.temp, self.name)
        self.note(f"Queue {self.name}: {len(rows)} binding(s) restored")

    def op_drain_back(self) -> None:
        moved = self._mover(self.temp, self.name, "rest", "drain_back").run()
        if moved:
            self.note(f"Queue {self.name}: {moved} more message(s) moved back")

    def op_delete_temp(self) -> None:
        counts = self.broker.count(self.temp)
        if counts and counts[0]:
            self.op_drain_back()
        self.broker.delete_queue(self.journal, if_empty=False)
        for _ in range(5):
            try:
                self.broker.delete_queue(self.temp, if_empty=True, queue_type=self._type_of(self.temp))
                break
            except QueueNotEmpty:
                self.op_drain_back()
        else:
            raise MigrationError(f"queue {self.temp} keeps receiving messages and cannot be emptied for deletion")
        self.types.pop(self.temp, None)
        self.note(f"Queue {self.name}: migration complete; {self.temp} deleted")

    # ---- rollback (see the module doc)
    def run_rollback(self) -> None:
        for _ in range(self.ROUNDS + 4):
            marker, temp, current = self._marker_exchange(), self._get(self.temp), self._get(self.name)
            if marker is None:
                if temp is None:
                    raise MigrationError(f"queue {self.name}: no interrupted migration to roll back (no {self.temp})")
                original = self._from_record(temp.arguments.get(plan_m.ARG_BEFORE))
                forward = self._from_record(temp.arguments.get(plan_m.ARG_TARGET))
                if original is None or forward is None:
                    raise MigrationError(f"queue {self.name}: {self.temp} does not record the queue's properties; "
                                         "it cannot be rolled back")
                self.original, self.forward = original, forward
                if current is not None and self._same(current, original):
                    # still moving out: gather every message in T first, as going forward would
                    self.run_ops(("move_out", "take_bindings", "drain_out"))
                self.run_ops(("begin_rollback",))
                continue
            self.original = self._from_record(marker.arguments.get(plan_m.ARG_TARGET))
            self.forward = self._from_record(marker.arguments.get(plan_m.ARG_BEFORE))
            if self.original is None:
                raise MigrationError(f"queue {self.name}: the rollback marker {self.marker} records no properties")
            if temp is None:
                if current is not None and self._same(current, self.original):
                    self.run_ops(("end_rollback",))
                    return
                if current is None:
                    self.run_ops(("declare_original",))
                    continue
                # Q has the new properties and every message: an ordinary migration takes it back
                self.target, self.recorded_before = self.original, current
                self.run_ops([o for o in self.OPS if self.PHASE_OF[o] == "out" and o != "cancel_consumers"])
                continue
            recorded = self._from_record(temp.arguments.get(plan_m.ARG_TARGET))
            if recorded is not None and self._same(recorded, self.original):  # that ordinary migration, under way
                self.target = self.original
                phase = self.inspect()
                self.run_ops([o for o in self.OPS if self.PHASE_OF[o] == phase and o != "cancel_consumers"])
                continue
            if current is None:
                self.run_ops(("declare_original",))
                continue
            # the original migration's T: its messages go to Q, whichever properties Q has now
            self.run_ops(("move_back", "restore_bindings", "drain_back", "delete_temp"))
        raise MigrationError(f"queue {self.name}: the rollback did not settle; is another client recreating "
                             "the queue?")

    def op_begin_rollback(self) -> None:
        args = amqp.encode_args(plan_m.rollback_marker_arguments(self.name, self.original, self.forward))
        self.broker.call(f"exchange '{self.marker}' in vhost '{self.vhost}'", lambda ch: ch.exchange_declare(
            self.marker, "fanout", durable=True, auto_delete=False, internal=True, arguments=args))
        self.note(f"Queue {self.name}: rolling back the interrupted migration (marker {self.marker} declared)")

    def op_declare_original(self) -> None:
        o = self.original
        self.broker.declare_queue(self.name, o.durable, o.auto_delete, o.arguments)
        self.types.pop(self.name, None)
        self.note(f"Queue {self.name}: declared again with its original properties")

    def op_end_rollback(self) -> None:
        self.broker.call(f"exchange '{self.marker}' in vhost '{self.vhost}'",
                         lambda ch: ch.exchange_delete(self.marker))
        self.note(f"Queue {self.name}: rollback complete; the queue has its original properties again")


# ---------------------------------------------------------------------- exchange migration
class ExchangeMigration(_Migration):
    KIND = "exchange"
    OPS = plan_m.EXCHANGE_OPS
    PHASE_OF = plan_m.EXCHANGE_PHASE_OF
    ROUNDS = 6

    def __init__(self, change: Change, ctx):
        super().__init__(change, ctx, plan_m.temp_exchange_name(change.name))

    def _get(self, name: str) -> Exchange | None:
        return exchange_from_http(self.vhost, http_json(
            self.ctx, f"/api/exchanges/{quote_segment(self.vhost)}/{quote_segment(name)}"))

    def _from_record(self, raw) -> Exchange | None:
        return plan_m.exchange_from_record(self.vhost, self.name, raw)

    def _same(self, a, b) -> bool:
        return plan_m.same_exchange(a, b)

    def _bindings(self, name: str, side: str) -> list[dict]:
        return http_json(self.ctx, f"/api/exchanges/{quote_segment(self.vhost)}/{quote_segment(name)}"
                                    f"/bindings/{side}") or []

    def _map(self, b: dict, old: str, new: str) -> tuple[str, str, str]:
        src = new if b["source"] == old else b["source"]
        dst = new if (b["destination"] == old and b.get("destination_type") == "exchange") else b["destination"]
        return src, dst, b.get("destination_type") or "queue"

    def _rebind(self, old: str, new: str) -> int:
        rows = self._bindings(old, "source") + [b for b in self._bindings(old, "destination") if b["source"] != old]
        for b in rows:
            if not b.get("source"):
                continue
            src, dst, dtype = self._map(b, old, new)
            self.broker.bind(b, src, dst, dtype)
        return len(rows)

    def op_declare_temp_exchange(self) -> None:
        before = self.recorded_before or self.target
        args = amqp.encode_args(plan_m.temp_exchange_arguments(before, self.target))
        self.broker.call(f"exchange '{self.temp}'", lambda ch: ch.exchange_declare(
            self.temp, before.type, durable=True, auto_delete=False, internal=True, arguments=args))

    def op_copy_bindings(self) -> None:
        n = self._rebind(self.name, self.temp)
        self.ctx.note(f"Exchange {self.name}: {n} binding(s) copied to {self.temp} (the alternate path)")

    def op_delete_exchange(self) -> None:
        self.broker.call(f"exchange '{self.name}'", lambda ch: ch.exchange_delete(self.name))
        self.ctx.note(f"Exchange {self.name}: deleted")

    def op_declare_exchange(self) -> None:
        t = self.target
        args = amqp.encode_args(dict(t.arguments))
        self.broker.call(f"exchange '{self.name}'", lambda ch: ch.exchange_declare(
            self.name, t.type, durable=t.durable, auto_delete=t.auto_delete, internal=t.internal, arguments=args))
        self.ctx.note(f"Exchange {self.name}: declared with the new properties")

    def op_restore_exchange_bindings(self) -> None:
        n = self._rebind(self.temp, self.name)
        self.ctx.note(f"Exchange {self.name}: {n} binding(s) restored")

    def op_delete_temp_exchange(self) -> None:
        self.broker.call(f"exchange '{self.temp}'", lambda ch: ch.exchange_delete(self.temp))
        self.ctx.note(f"Exchange {self.name}: migration complete; {self.temp} deleted")


__all__ = ["run_migration", "MigrationError", "Mover", "STAMP", "QueueMigration", "ExchangeMigration"]
