"""Runs (and resumes) migrations: message-preserving recreation of queues and exchanges.

The executor calls :func:`run_migration` for every ``migrate`` change. A run never
trusts the plan about *where* a migration stands: it reads the broker, finds the
phase, runs that phase's steps, reads the broker again, until the queue (or
exchange) has its target properties and the artifacts are gone. So a fresh
migration, one interrupted at any point (tool killed, connection lost, the
executor's retry) and one whose plan is a few seconds old all take the same path.
Plan-side names, artifacts and their arguments live in ``planner/migration.py``.

Queue migration, by phase (the queue is ``Q``, the temporary queue ``T``):

* ``out`` (Q has its old properties): declare T and the journal; cancel Q's
  consumers (``--force`` only); move Q's messages to T while Q still has its
  bindings (so messages published meanwhile keep their place in the order); give T
  every binding of Q (bind T, then unbind Q, one binding at a time); move what
  arrived in Q meanwhile; delete Q (``if-empty``).
* ``gap`` (Q missing): declare Q with the target properties.
* ``back`` (Q has the target properties): move T's messages to Q while T still holds
  the bindings; give the bindings back to Q; move what arrived in T meanwhile;
  delete the journal and T (``if-empty``).

**Moving messages** (RABBITMQ-SEMANTICS 12): ``basic.consume`` with a prefetch
window on the source, republish each message through the default exchange to the
destination with ``mandatory`` on a channel in confirm mode, passing the original
body and properties, and acknowledge on the source only after the destination
confirmed the whole batch (one ``basic.ack`` with ``multiple``).

**No duplicates after a crash.** A crash between the destination's confirm and the
source's ack leaves the batch in both queues. Two things make the next run remove
exactly those copies:

* every message moved out is stamped with a header ``x-topoform-mid``
  (``RUN.BATCH.INDEX``) that the move back removes again, so the final queue holds
  the original headers only;
* before publishing a batch the mover writes a journal entry (to the journal queue,
  ``x-max-length: 1``, confirmed): the batch's message identities (stamp, or a
  digest of body and properties), the source's message count before it and the
  destination's count before it.

The next run reads the journal before it consumes. If the source still holds the
journal's batch at its head (count not lower than recorded, same identities), the
batch was not acknowledged: a batch moved *out* is remembered as dropped (its
stamped copies in T are discarded on the way back); for a batch moved *back*, the
number of copies that reached Q is Q's count minus the recorded count, and that
many originals at T's head are acknowledged without being published again.

Test hook: ``TOPOFORM_TEST_PAUSE_AT`` makes a run stop (sleep) at a point so a test
can SIGKILL it there: a step name (``delete_queue``) pauses before that step;
``MOVER:BATCH:POINT`` (for example ``move_out:2:confirmed``) pauses inside a move,
after batch BATCH (0-based) was ``journaled``, ``published`` or ``confirmed``
(confirmed, not yet acknowledged). ``TOPOFORM_TEST_PAUSE_FILE`` names a file the run
creates when it pauses. Never set them outside tests.

Must not import cli.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
import uuid
from typing import Any, Callable, Mapping

import pika
from pika import exceptions as pex

from ..broker import amqp
from ..broker.settings import quote_segment
from ..errors import TopoformError
from ..model import Args, Exchange, Queue
from ..planner import migration as plan_m
from ..planner.plan import Change

STAMP = "x-topoform-mid"
NO_HEADERS = "~"  # stamp suffix: the message had no headers table at all
BATCH = 1000
PREFETCH = 2000
WAIT = 120.0  # seconds to wait for one broker reply or batch of confirms
QUIET = 1.0  # seconds a destination's count must hold still before a resume trusts it
SETTLE = 30.0  # seconds to wait for a killed run's consumer to leave a queue (its batch returns with it)


class MigrationError(TopoformError):
    """A migration step failed; the broker keeps what is needed to resume it."""

    code = "migration-failed"


def run_migration(change: Change, ctx) -> None:
    """Carry out (or finish) one ``migrate`` change; raises :class:`MigrationError` or BrokerError.

    ``ctx`` is the executor's :class:`~topoform.apply.executor.ApplyContext` (``connect``,
    ``client``, ``options.force``, ``note``, ``settings``).
    """
    if change.kind == "queue":
        QueueMigration(change, ctx).run()
    elif change.kind == "exchange":
        ExchangeMigration(change, ctx).run()
    else:
        raise MigrationError(f"cannot migrate a {change.kind}")


# ---------------------------------------------------------------------- test hook
def _pause(point: str, environ=None) -> None:
    environ = os.environ if environ is None else environ
    if environ.get("TOPOFORM_TEST_PAUSE_AT") != point:
        return
    marker = environ.get("TOPOFORM_TEST_PAUSE_FILE")
    if marker:
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write(point)
    while True:  # wait to be killed
        time.sleep(3600)


# ---------------------------------------------------------------------- small AMQP helpers
class _Broker:
    """One blocking connection for topology operations and passive counts, with typed errors."""

    def __init__(self, ctx, vhost: str):
        self.ctx = ctx
        self.vhost = vhost
        self.conn = ctx.connect(vhost, "migrate")
        self._ch = None

    @property
    def ch(self):
        if self._ch is None or not self._ch.is_open:
            self._ch = self.conn.channel()
        return self._ch

    def close(self) -> None:
        try:
            if self.conn.is_open:
                self.conn.close()
            return
        except Exception:  # noqa: BLE001 - pika's blocking close trips over raw async channels
            pass
        try:  # close the asynchronous connection underneath: unacknowledged messages return to their queue
            impl = self.conn._impl  # noqa: SLF001
            if impl.is_open:
                impl.close()
            deadline = time.monotonic() + 10
            while not impl.is_closed and time.monotonic() < deadline:
                self.conn.process_data_events(time_limit=0.05)
        except Exception:  # noqa: BLE001 - a dead connection needs no closing
            pass

    def call(self, subject: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self.ch)
        except pex.ChannelClosedByBroker as exc:
            self._ch = None
            raise amqp.AmqpError(subject, exc.reply_code, exc.reply_text) from None
        except (pex.AMQPConnectionError, pex.StreamLostError, OSError) as exc:
            raise amqp.ConnectionLost(f"connection to vhost '{self.vhost}' lost during a migration: "
                                      f"{amqp.scrub(str(exc) or type(exc).__name__, self.ctx.settings)}") from None

    def count(self, queue: str) -> tuple[int, int] | None:
        """(ready messages, consumers) of a queue, or None when it does not exist."""
        try:
            frame = self.call(f"queue '{queue}'", lambda ch: ch.queue_declare(queue, passive=True))
        except amqp.AmqpError as exc:
            if exc.reply_code == 404:
                return None
            raise
        return frame.method.message_count, frame.method.consumer_count

    def declare_queue(self, name: str, durable: bool, auto_delete: bool, arguments) -> None:
        args = amqp.encode_args(dict(arguments or {}))
        self.call(f"queue '{name}' in vhost '{self.vhost}'",
                  lambda ch: ch.queue_declare(name, durable=durable, auto_delete=auto_delete, arguments=args))

    def delete_queue(self, name: str, if_empty: bool = True) -> None:
        self.call(f"queue '{name}' in vhost '{self.vhost}'", lambda ch: ch.queue_delete(name, if_empty=if_empty))

    def bind(self, b: dict, source: str, destination: str, dtype: str, unbind: bool = False) -> None:
        key = b.get("routing_key") or ""
        raw = b.get("arguments") or {}
        variants = [amqp.encode_args(raw)]
        if unbind and amqp.has_integers(raw):
            # the HTTP API hides integer widths: unbind the signedint twin too (SEMANTICS 9)
            variants.append(amqp.encode_args(raw, int_type=int))
        for args in variants:
            subject = f"binding {source} -> {destination} [{key}] in vhost '{self.vhost}'"
            if dtype == "queue":
                fn = (lambda ch, a=args: ch.queue_unbind(destination, source, key, a)) if unbind else \
                    (lambda ch, a=args: ch.queue_bind(destination, source, key, a))
            else:
                fn = (lambda ch, a=args: ch.exchange_unbind(destination, source, key, a)) if unbind else \
                    (lambda ch, a=args: ch.exchange_bind(destination, source, key, a))
            self.call(subject, fn)


def _http_json(ctx, path: str, attempts: int = 20) -> Any:
    """GET a JSON document, None on 404. A just-declared quorum queue briefly answers 500: retried."""
    for attempt in range(attempts):
        response = ctx.client.request("GET", path, expect=(200, 404, 500, 503))
        if response.status_code in (200, 404):
            return response.json() if response.status_code == 200 else None
        time.sleep(0.25)
    raise MigrationError(f"the management API kept answering {response.status_code} to GET {path}")


def _queue_from_http(vhost: str, row: dict | None) -> Queue | None:
    if row is None:
        return None
    return Queue(vhost=vhost, name=row["name"], durable=bool(row.get("durable")),
                 exclusive=bool(row.get("exclusive")), auto_delete=bool(row.get("auto_delete")),
                 arguments=Args(row.get("arguments") or {}))


def _exchange_from_http(vhost: str, row: dict | None) -> Exchange | None:
    if row is None:
        return None
    return Exchange(vhost=vhost, name=row["name"], type=row.get("type") or "direct", durable=bool(row.get("durable")),
                    auto_delete=bool(row.get("auto_delete")), internal=bool(row.get("internal")),
                    arguments=Args(row.get("arguments") or {}))


# ---------------------------------------------------------------------- message identity and stamps
def _digest(body: bytes, props: pika.BasicProperties) -> str:
    fields = {k: getattr(props, k) for k in ("content_type", "content_encoding", "headers", "delivery_mode",
                                             "priority", "correlation_id", "reply_to", "expiration", "message_id",
                                             "timestamp", "type", "user_id", "app_id", "cluster_id")}
    h = hashlib.sha1(body)
    h.update(json.dumps(fields, sort_keys=True, default=repr).encode("utf-8", "surrogatepass"))
    return "h" + h.hexdigest()[:16]


def _stamp_of(props: pika.BasicProperties) -> str | None:
    headers = props.headers
    if isinstance(headers, dict):
        value = headers.get(STAMP)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None
    return None


def _identity(body: bytes, props: pika.BasicProperties) -> str:
    return _stamp_of(props) or _digest(body, props)


def _stamped(props: pika.BasicProperties, stamp: str) -> pika.BasicProperties:
    out = copy.copy(props)
    if props.headers is None:
        out.headers = {STAMP: stamp + NO_HEADERS}
    else:
        out.headers = dict(props.headers)
        out.headers[STAMP] = stamp
    return out


def _unstamped(props: pika.BasicProperties) -> pika.BasicProperties:
    stamp = _stamp_of(props)
    if stamp is None:
        return props
    out = copy.copy(props)
    headers = dict(props.headers)
    del headers[STAMP]
    out.headers = None if stamp.endswith(NO_HEADERS) and not headers else headers
    return out


def _batch_of(stamp: str) -> str:
    """``RUN.BATCH`` of a stamp ``RUN.BATCH.INDEX[~]``."""
    return stamp.rsplit(".", 1)[0]


# ---------------------------------------------------------------------- the mover
class Mover:
    """Moves messages from ``src`` to ``dst`` in journaled, confirmed batches.

    ``mode`` is ``out`` (stamp each message), ``back`` or ``rest`` (strip the stamp,
    drop copies of batches recorded as not acknowledged). ``rest`` is the move after
    the bindings returned to the destination (its count then also grows by
    publishers, so fewer conclusions are drawn from it after a crash).
    """

    def __init__(self, conn: pika.BlockingConnection, broker: _Broker, src: str, dst: str, journal: str, *,
                 mode: str, username: str, note: Callable[[str], None], label: str, batch: int = BATCH,
                 prefetch: int = PREFETCH, environ=None):
        self.conn = conn
        self.broker = broker
        self.src, self.dst, self.journal = src, dst, journal
        self.mode = mode
        self.username = username
        self.note = note
        self.label = label
        self.batch_size = batch
        self.prefetch = max(prefetch, batch)
        self.environ = environ
        self.run_id = uuid.uuid4().hex[:8]
        self.buf: list = []  # [(delivery_tag, props, body)]
        self.pending: set[int] = set()
        self.seq = 0
        self.failure: str | None = None
        self.drop: set[str] = set()  # "RUN.BATCH" of moved-out batches whose copies must be discarded
        self.skip_first = 0
        self.moved = 0
        self.batches = 0

    # ---- channels
    def _impl(self):
        return self.conn._impl  # noqa: SLF001 - pika's async connection: callbacks allow batched confirms

    def _tick(self, seconds: float) -> None:
        try:
            self.conn.process_data_events(time_limit=seconds)
        except (pex.AMQPConnectionError, pex.StreamLostError, OSError) as exc:
            raise amqp.ConnectionLost(f"{self.label}: connection lost: "
                                      f"{amqp.scrub(str(exc) or type(exc).__name__, self.broker.ctx.settings)}") \
                from None
        if self.failure:
            raise MigrationError(self.failure)

    def _pump(self, until: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if self.failure:
                raise MigrationError(self.failure)
            if time.monotonic() > deadline:
                raise MigrationError(f"{self.label}: no answer from the broker within {timeout:g}s while {what}")
            try:
                self.conn.process_data_events(time_limit=0.01)
            except (pex.AMQPConnectionError, pex.StreamLostError, OSError) as exc:
                raise amqp.ConnectionLost(f"{self.label}: connection lost while {what}: "
                                          f"{amqp.scrub(str(exc) or type(exc).__name__, self.broker.ctx.settings)}") \
                    from None
        if self.failure:
            raise MigrationError(self.failure)

    def _open_channel(self):
        box: dict = {}
        ch = self._impl().channel(on_open_callback=lambda c: box.setdefault("open", True))
        ch.add_on_close_callback(self._on_channel_close)
        self._pump(lambda: "open" in box, "opening a channel")
        return ch

    def _on_channel_close(self, ch, reason) -> None:
        if self.closing:
            return
        if isinstance(reason, pex.ChannelClosedByBroker):
            text = amqp.format_reply(reason.reply_code, reason.reply_text)
            if "user_id" in (reason.reply_text or ""):
                text += (f" (a message carries a user_id other than '{self.username}': migrate as that user, "
                         "RABBITMQ-SEMANTICS 12)")
            self.failure = f"{self.label}: the broker closed the channel: {text}"
        else:
            self.failure = f"{self.label}: channel closed: {reason}"

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tag = method.delivery_tag
        nack = isinstance(method, pika.spec.Basic.Nack)
        if method.multiple:
            done = {s for s in self.pending if s <= tag}
        else:
            done = {tag} & self.pending
        self.pending -= done
        if nack and done:
            self.failure = (f"{self.label}: queue '{self.dst}' refused {len(done)} message(s) (basic.nack); "
                            "the source keeps them")

    def _on_return(self, ch, method, props, body) -> None:
        self.failure = (f"{self.label}: queue '{self.dst}' does not exist (message returned "
                        f"{method.reply_code} {method.reply_text}); the source keeps its messages")

    def _on_message(self, ch, method, props, body) -> None:
        self.buf.append((method.delivery_tag, props, body))

    # ---- journal
    def _read_journal(self) -> dict | None:
        box: dict = {}

        def got(ch, method, props, body):
            box["entry"] = body
            box["tag"] = method.delivery_tag

        self.cch.basic_get(self.journal, got, auto_ack=False)
        self.cch.queue_declare(self.journal, passive=True, callback=lambda f: box.setdefault("done", True))
        self._pump(lambda: "done" in box, "reading the journal")
        if "tag" not in box:
            return None
        self.cch.basic_nack(box["tag"], requeue=True)
        try:
            entry = json.loads(box["entry"])
        except ValueError:
            return None
        return entry if isinstance(entry, dict) else None

    def _publish_journal(self, entry: dict) -> None:
        # Published on the batch's own channel just before the batch: the broker routes a
        # channel's publishes in order, so no copy of the batch can exist without this entry
        # (the tool being killed never reorders what the broker already received). Its
        # confirm is awaited together with the batch's, which saves a round of disk syncs.
        self.seq += 1
        self.pending.add(self.seq)
        self.pch.basic_publish("", self.journal, json.dumps(entry, separators=(",", ":")).encode(),
                               pika.BasicProperties(delivery_mode=2, content_type="application/json"),
                               mandatory=True)

    # ---- resolving a batch left in flight by a killed run
    def _resolve(self, entry: dict | None, src_total: int, dst_total: int | None) -> None:
        if not entry:
            return
        self.drop = set(entry.get("drop") or ())
        phase = entry.get("phase")
        n = int(entry.get("n") or 0)
        ids = list(entry.get("ids") or ())
        if n == 0 or not ids:
            return
        same_direction = (phase == "out") == (self.mode == "out")
        if not same_direction:
            return  # a finished direction: its last batch was acknowledged before the next phase began
        if src_total < int(entry.get("src_before") or 0):
            return  # the source lost the batch: it was acknowledged
        # wait for the head of the source, then compare it with the journal's batch
        self._pump(lambda: len(self.buf) >= min(n, src_total), "reading the head of the source", timeout=WAIT)
        head = [_identity(body, props) for _, props, body in self.buf[:n]]
        if head != ids:
            return  # another batch is at the head: the journal's was acknowledged
        batch_key = f"{entry.get('run')}.{entry.get('batch')}"
        if self.mode == "out":
            self.drop.add(batch_key)
            self.note(f"{self.label}: the previous run was stopped between a confirm and its ack; "
                      f"its copies of {n} message(s) will be discarded")
            return
        actions = entry.get("actions") or ""
        published = actions.count("p")
        landed = 0 if dst_total is None else dst_total - int(entry.get("dst_before") or 0)
        if landed < 0 or landed > published:
            if phase == "back" or landed < 0:
                self.note(f"{self.label}: queue '{self.dst}' changed while the migration was stopped; "
                          "its last batch may be duplicated")
            landed = 0 if landed < 0 else (published if phase == "back" else 0)
        # skip every message up to the last one whose copy reached the destination
        seen = 0
        skip = 0
        for i, action in enumerate(actions):
            if seen == landed:
                break
            skip = i + 1
            if action == "p":
                seen += 1
        self.skip_first = skip
        if landed:
            self.note(f"{self.label}: {landed} message(s) had reached '{self.dst}' before the previous run "
                      "stopped; their originals are discarded")

    # ---- the move
    closing = False

    def run(self, limit: int | None = None) -> int:
        """Move until the source is empty (or ``limit`` messages were handled); returns messages moved."""
        self.cch = self._open_channel()
        self.pch = self._open_channel()
        box: dict = {}
        self.pch.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda f: box.setdefault("c", 1))
        self.pch.add_on_return_callback(self._on_return)
        self.cch.basic_qos(prefetch_count=self.prefetch, callback=lambda f: box.setdefault("q", 1))
        self._pump(lambda: "c" in box and "q" in box, "opening channels")
        entry = self._read_journal()
        src = self._settled_count(self.src)
        if src is None:
            return 0
        if entry and entry.get("phase") == "back" and self.mode == "back":
            dst = self._quiet_count(self.dst)  # a killed run's batch may still be landing there
        else:
            dst = self.broker.count(self.dst)
        src_total = src[0]
        self.tag = self.cch.basic_consume(self.src, self._on_message, auto_ack=False)
        self._resolve(entry, src_total, dst[0] if dst else None)
        handled = 0
        idle_checks = 0
        try:
            while limit is None or handled < limit:
                self._collect()
                if not self.buf:
                    counts = self.broker.count(self.src)
                    if counts is None or counts[0] == 0:
                        idle_checks += 1
                        if idle_checks >= 2 or counts is None:
                            break
                    continue
                idle_checks = 0
                handled += self._batch()
        finally:
            self.closing = True
            self._stop()  # what we hold unacknowledged returns to the source
        return self.moved

    def _settled_count(self, queue: str) -> tuple[int, int] | None:
        """The queue's counts once no consumer is left on it.

        A killed run's consumer keeps holding its unacknowledged batch until the broker has
        noticed the dead connection; while it does, the ready count is short by that batch,
        and :meth:`_resolve` would take the batch for acknowledged and move it twice. The
        queue process drops a dead channel's consumer and requeues its messages in one step,
        and a passive declare is answered by that same process (no stats lag), so zero
        consumers means the count is whole. Nobody else consumes here: the temporary queue
        is ours, and the original queue was checked for consumers (or they were closed
        with --force).
        """
        deadline = time.monotonic() + SETTLE
        while True:
            counts = self.broker.count(queue)
            if counts is None or counts[1] == 0:
                return counts
            if time.monotonic() > deadline:
                raise MigrationError(f"{self.label}: queue '{queue}' still has {counts[1]} consumer(s) after "
                                     f"{SETTLE:.0f}s; stop them (or use --force) and run again")
            time.sleep(0.05)

    def _quiet_count(self, queue: str) -> tuple[int, int] | None:
        """The queue's counts once they stop changing (resume of a move back).

        Publishes a killed run had already sent keep landing after its death (a quorum
        queue enqueues asynchronously), so a count read at once can miss part of the batch
        in flight, and :meth:`_resolve` would send those messages again. While messages
        move back nothing else publishes to the destination (its bindings are still on the
        temporary queue), so a count unchanged for QUIET seconds is complete. (In ``rest``
        mode publishers are active again and the count never holds still: not used there.)
        """
        deadline = time.monotonic() + SETTLE
        counts = self.broker.count(queue)
        stable_since = time.monotonic()
        while counts is not None and time.monotonic() < deadline:
            time.sleep(0.1)
            again = self.broker.count(queue)
            if again != counts:
                counts, stable_since = again, time.monotonic()
            elif time.monotonic() - stable_since >= QUIET:
                break
        return counts

    def _collect(self) -> None:
        """Pump until a full batch is buffered, or deliveries pause."""
        deadline = time.monotonic() + 0.25
        last = len(self.buf)
        quiet = time.monotonic()
        while len(self.buf) < self.batch_size and time.monotonic() < deadline:
            self._tick(0.005)
            if len(self.buf) != last:
                last = len(self.buf)
                quiet = time.monotonic()
            elif time.monotonic() - quiet > (0.01 if self.buf else 0.03):
                break
        if self.failure:
            raise MigrationError(self.failure)

    def _batch(self) -> int:
        batch, self.buf = self.buf[:self.batch_size], self.buf[self.batch_size:]
        k = self.batches
        self.batches += 1
        actions = []
        out = []
        for i, (tag, props, body) in enumerate(batch):
            if i < self.skip_first:
                actions.append("s")
                continue
            stamp = _stamp_of(props)
            if self.mode != "out" and stamp is not None and _batch_of(stamp.rstrip(NO_HEADERS)) in self.drop:
                actions.append("d")
                continue
            if props.user_id is not None and props.user_id != self.username:
                raise MigrationError(
                    f"{self.label}: a message in queue '{self.src}' has user_id '{props.user_id}', and the broker "
                    f"refuses to republish it as user '{self.username}' (406, RABBITMQ-SEMANTICS 12); run the "
                    f"migration as user '{props.user_id}' or clear the property; nothing was lost")
            actions.append("p")
            if self.mode == "out":
                out.append((_stamped(props, f"{self.run_id}.{k}.{i}"), body))
            else:
                out.append((_unstamped(props), body))
        self.skip_first = 0
        entry = {"phase": self.mode, "run": self.run_id, "batch": k, "n": len(batch),
                 "ids": [_identity(body, props) for _, props, body in batch], "actions": "".join(actions),
                 "drop": sorted(self.drop)}
        if self.mode == "out":
            # Everything we hold unacknowledged returns to the source if we die. Count what we
            # hold BEFORE asking for the ready count: the passive declare runs on this same
            # connection, so deliveries keep arriving into self.buf while it waits, and
            # counting them after the call would count them twice (as ready at the broker and
            # as held). That overcount once made a resume take an unacknowledged batch for
            # acknowledged and keep its copies: 1,000 duplicates (tests/integration/
            # test_migrate_crash.py).
            held = len(batch) + len(self.buf)
            counts = self.broker.count(self.src)
            entry["src_before"] = (counts[0] if counts else 0) + held
        else:
            dst = self.broker.count(self.dst)
            if dst is None:
                raise MigrationError(f"{self.label}: queue '{self.dst}' does not exist; the source keeps its "
                                     "messages")
            entry["dst_before"] = dst[0]
        self._publish_journal(entry)
        _pause(f"{self.label_op}:{k}:journaled", self.environ)
        for props, body in out:
            self.seq += 1
            self.pending.add(self.seq)
            self.pch.basic_publish("", self.dst, body, props, mandatory=True)
        _pause(f"{self.label_op}:{k}:published", self.environ)
        self._pump(lambda: not self.pending, f"waiting for confirms from queue '{self.dst}'")
        _pause(f"{self.label_op}:{k}:confirmed", self.environ)
        self.cch.basic_ack(batch[-1][0], multiple=True)
        self.moved += len(out)
        return len(batch)

    label_op = ""

    def _stop(self) -> None:
        self.failure = None
        for ch in (getattr(self, "cch", None), getattr(self, "pch", None)):
            try:
                if ch is not None and ch.is_open:
                    ch.close()
            except (pex.AMQPError, OSError, ValueError):
                pass
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline and any(
                    ch is not None and not ch.is_closed for ch in (getattr(self, "cch", None), getattr(self, "pch", None))):
                self.conn.process_data_events(time_limit=0.01)
        except (pex.AMQPError, OSError):
            pass


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
        self.broker = _Broker(self.ctx, self.vhost)
        try:
            for _ in range(self.ROUNDS):
                phase = self.inspect()
                if phase == "done":
                    return
                for op in [o for o in self.OPS if self.PHASE_OF[o] == phase]:
                    _pause(op, self.environ)
                    getattr(self, "op_" + op)()
            raise MigrationError(f"{self.KIND} {self.name}: the migration did not settle after {self.ROUNDS} "
                                 f"rounds; is another client recreating the {self.KIND}?")
        finally:
            self.broker.close()


class QueueMigration(_Migration):
    KIND = "queue"
    OPS = plan_m.QUEUE_OPS
    PHASE_OF = plan_m.QUEUE_PHASE_OF

    def __init__(self, change: Change, ctx):
        super().__init__(change, ctx, plan_m.temp_queue_name(change.name))
        self.journal = plan_m.journal_queue_name(self.name)
        self.force = bool(getattr(getattr(ctx, "options", None), "force", False)) or any(
            s.op == "cancel_consumers" for s in change.steps)

    def _get(self, name: str) -> Queue | None:
        return _queue_from_http(self.vhost, _http_json(
            self.ctx, f"/api/queues/{quote_segment(self.vhost)}/{quote_segment(name)}"))

    def _from_record(self, raw) -> Queue | None:
        return plan_m.queue_from_record(self.vhost, self.name, raw)

    def _same(self, a, b) -> bool:
        return plan_m.same_queue(a, b)

    # ---- the steps
    def op_declare_temp(self) -> None:
        before = self.recorded_before or self.target
        self.broker.declare_queue(self.temp, True, False, plan_m.temp_queue_arguments(before, self.target))
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
        rows = _http_json(self.ctx, f"/api/consumers/{quote_segment(self.vhost)}") or []
        names = set()
        for row in rows:
            if (row.get("queue") or {}).get("name") == self.name:
                conn = (row.get("channel_details") or {}).get("connection_name")
                if conn:
                    names.add(conn)
        for conn in sorted(names):
            self.ctx.client.request("DELETE", f"/api/connections/{quote_segment(conn)}", expect=(200, 204, 404))
        return len(names)

    def _mover(self, src: str, dst: str, mode: str, label_op: str) -> Mover:
        mover = Mover(self.broker.conn, self.broker, src, dst, self.journal, mode=mode,
                      username=self.ctx.settings.username, note=self.note,
                      label=f"queue {self.name} ({label_op})", environ=self.environ)
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
        rows = _http_json(self.ctx, f"/api/queues/{quote_segment(self.vhost)}/{quote_segment(queue)}/bindings") or []
        return [r for r in rows if r.get("source")]

    def op_take_bindings(self) -> None:
        rows = self._bindings_of(self.name)
        for b in rows:  # bind the temporary queue first: a message is never without a destination
            self.broker.bind(b, b["source"], self.temp, "queue")
            self.broker.bind(b, b["source"], self.name, "queue", unbind=True)
        self.note(f"Queue {self.name}: {len(rows)} binding(s) moved to {self.temp}")

    def op_drain_out(self) -> None:
        self._ensure_no_consumers()
        moved = self._mover(self.name, self.temp, "out", "drain_out").run()
        if moved:
            self.note(f"Queue {self.name}: {moved} more message(s) moved to {self.temp}")

    def op_delete_queue(self) -> None:
        for _ in range(5):
            try:
                self.broker.delete_queue(self.name, if_empty=True)
                self.note(f"Queue {self.name}: deleted")
                return
            except amqp.AmqpError as exc:
                if exc.reply_code != 406:
                    raise
                self.op_drain_out()  # something arrived (a direct publish): move it too
        raise MigrationError(f"queue {self.name} keeps receiving messages and cannot be emptied for deletion")

    def op_declare_queue(self) -> None:
        t = self.target
        try:
            self.broker.declare_queue(self.name, t.durable, t.auto_delete, t.arguments)
        except amqp.AmqpError as exc:
            if exc.reply_code == 406:  # another client recreated it meanwhile: the next round moves it again
                self.note(f"Queue {self.name}: recreated by another client with other properties; moving again")
                return
            raise
        self.note(f"Queue {self.name}: declared with the new properties")

    def op_move_back(self) -> None:
        counts = self.broker.count(self.temp)
        start = counts[0] if counts else 0
        moved = self._mover(self.temp, self.name, "back", "move_back").run(limit=max(start, 1))
        self.note(f"Queue {self.name}: {moved} message(s) moved back")

    def op_restore_bindings(self) -> None:
        rows = self._bindings_of(self.temp)
        for b in rows:
            self.broker.bind(b, b["source"], self.name, "queue")
            self.broker.bind(b, b["source"], self.temp, "queue", unbind=True)
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
        if self.broker.count(self.temp) is not None:
            self.broker.delete_queue(self.temp, if_empty=True)
        self.note(f"Queue {self.name}: migration complete; {self.temp} deleted")


# ---------------------------------------------------------------------- exchange migration
class ExchangeMigration(_Migration):
    KIND = "exchange"
    OPS = plan_m.EXCHANGE_OPS
    PHASE_OF = plan_m.EXCHANGE_PHASE_OF
    ROUNDS = 6

    def __init__(self, change: Change, ctx):
        super().__init__(change, ctx, plan_m.temp_exchange_name(change.name))

    def _get(self, name: str) -> Exchange | None:
        return _exchange_from_http(self.vhost, _http_json(
            self.ctx, f"/api/exchanges/{quote_segment(self.vhost)}/{quote_segment(name)}"))

    def _from_record(self, raw) -> Exchange | None:
        return plan_m.exchange_from_record(self.vhost, self.name, raw)

    def _same(self, a, b) -> bool:
        return plan_m.same_exchange(a, b)

    def _bindings(self, name: str, side: str) -> list[dict]:
        return _http_json(self.ctx, f"/api/exchanges/{quote_segment(self.vhost)}/{quote_segment(name)}"
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


__all__ = ["run_migration", "MigrationError", "Mover", "STAMP"]
