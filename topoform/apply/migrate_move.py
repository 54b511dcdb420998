"""The mover: moves a queue's messages to another queue in journaled, confirmed batches.

Part of the migration runner (``apply/migrate.py`` has the steps and the overview).

**Moving messages** (RABBITMQ-SEMANTICS 12): ``basic.consume`` with a prefetch
window on the source, republish each message through the default exchange to the
destination with ``mandatory`` on a channel in confirm mode, passing the original
body and properties, and acknowledge on the source only after the destination
confirmed the whole batch (one ``basic.ack`` with ``multiple``).

**Nothing is handed back to the source** in a normal run. When a move stops (its
limit reached, the source empty) it cancels its consumer and moves what was already
delivered too, instead of closing the channel over unacknowledged messages. A quorum
queue puts such messages back out of order (a message delivered during the close
jumps ahead of the others: measured on 3.10.8, 4.0.5 and 4.3.6), and from 4.0 every
return counts toward the default delivery limit of 20, past which the queue drops
the message. From a quorum queue the prefetch window is one batch, so what a killed
run leaves unacknowledged is exactly the journaled batch; the broker returns it in
order at the head. ``x-delivery-count`` (and from 4.3 ``x-acquired-count``), which a
quorum queue adds to a redelivered message, is queue state and not moved.

**No duplicates after a crash.** A crash between the destination's confirm and the
source's ack leaves the batch in both queues. Every message moved out is stamped with
a header ``x-topoform-mid`` (``RUN.BATCH.INDEX``) that the move back removes again,
and before publishing a batch the mover writes a journal entry (to the journal queue,
``x-max-length: 1``, confirmed): the batch's message identities (stamp, or a digest of
body and properties), the source's count before it and the destination's count
before it. The next run reads the journal before it consumes and resolves the batch
(:meth:`Mover._resolve`).

Must not import cli.
"""
from __future__ import annotations

import copy
import hashlib
import json
import struct
import time
import uuid
from collections import Counter
from typing import Callable

import pika
from pika import exceptions as pex

from ..broker import amqp
from .migrate_io import LOST_CODES, MigrationBroker, MigrationError, pause

STAMP = "x-topoform-mid"
NO_HEADERS = "~"  # stamp suffix: the message had no headers table at all
TRANSIENT = "^"  # stamp suffix (before NO_HEADERS): the original delivery mode, moved as persistent
# added by quorum queues to the messages they redeliver (x-acquired-count from 4.3 on, measured)
DELIVERY_HEADERS = ("x-delivery-count", "x-acquired-count")
BATCH = 1000
PREFETCH = 2000
# bodies one batch may hold: a queue of large messages moves in fewer per batch, so that the
# client never holds more than about twice this (a classic source's prefetch is two batches)
BATCH_BYTES = 16 * 1024 * 1024
SAMPLE = 8  # messages in the first batch when their size is not known: it measures them
SAMPLE_WAIT = 5.0  # seconds to wait for them when the source holds that many
WAIT = 120.0  # seconds to wait for one broker reply or batch of confirms
QUIET = 1.0  # seconds a destination's count must hold still before a resume trusts it
SETTLE = 30.0  # seconds to wait for a killed run's consumer to leave a queue (its batch returns with it)


def _connection_error(label: str, what: str, exc: BaseException, settings) -> Exception:
    """A pika connection failure as a refusal (the broker's reply) or a lost connection."""
    code = getattr(exc, "reply_code", None)
    if isinstance(exc, pex.ConnectionClosedByBroker) and code not in LOST_CODES:
        text = getattr(exc, "reply_text", "") or ""
        # a user's max-channels closes the connection: parallel migrations wait for each other on it
        return MigrationError(f"{label}: the broker refused while {what}: {amqp.format_reply(code, text)}",
                              code=amqp.limit_code(code, text), hint=amqp.refusal_hint(code, text))
    return amqp.ConnectionLost(f"{label}: connection lost while {what}: "
                               f"{amqp.scrub(str(exc) or type(exc).__name__, settings)}")


# ---------------------------------------------------------------------- message identity and stamps
def _digest(body: bytes, props: pika.BasicProperties) -> str:
    fields = {k: getattr(props, k) for k in ("content_type", "content_encoding", "headers", "delivery_mode",
                                             "priority", "correlation_id", "reply_to", "expiration", "message_id",
                                             "timestamp", "type", "user_id", "app_id", "cluster_id")}
    fields["headers"] = fields["headers"] or None  # {} and None: a redelivery may turn one into the other
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
    if props.delivery_mode != 2:
        # Persistent while in the temporary queue: a transient message in a classic queue dies
        # with its node's restart (a cluster node stopped during the move lost 849 of 10,000).
        # The move back restores the original delivery mode from the stamp (^1, or ^0: none set).
        stamp += TRANSIENT + str(props.delivery_mode or 0)
        out.delivery_mode = 2
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
    core = stamp.rstrip(NO_HEADERS)
    if TRANSIENT in core:
        mode = core.rsplit(TRANSIENT, 1)[1]
        out.delivery_mode = int(mode) or None if mode.isdigit() else props.delivery_mode
    return out


def _without_delivery_count(props: pika.BasicProperties) -> pika.BasicProperties:
    """A quorum queue's redelivery without the ``x-delivery-count`` (and ``x-acquired-count``) it added."""
    headers = props.headers
    if not isinstance(headers, dict) or not any(k in headers for k in DELIVERY_HEADERS):
        return props
    out = copy.copy(props)
    rest = {k: v for k, v in headers.items() if k not in DELIVERY_HEADERS}
    stamp = _stamp_of(props)
    # the broker created the table if the message had none: an original empty table cannot be told apart
    out.headers = rest if rest and not (stamp and stamp.endswith(NO_HEADERS) and list(rest) == [STAMP]) \
        else (rest or None)
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

    def __init__(self, conn: pika.BlockingConnection, broker: MigrationBroker, src: str, dst: str, journal: str, *,
                 mode: str, username: str, note: Callable[[str], None], label: str, batch: int | None = None,
                 prefetch: int | None = None, environ=None, source_type: str = "classic",
                 message_size: int | None = None, learned: Callable[[int], None] | None = None):
        self.conn = conn
        self.broker = broker
        self.src, self.dst, self.journal = src, dst, journal
        self.mode = mode
        self.username = username
        self.note = note
        self.label = label
        self.fixed = batch is not None  # a given batch (tests) is used as given
        self.batch_size = batch or BATCH
        self.source_type = source_type
        self.message_size = message_size  # the source's mean body size in bytes, when known
        self.learned = learned  # told the mean body size the first batch measured
        self.sampling = False  # the first batch measures the size, then the window is set from it
        self._set_prefetch(prefetch)
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

    def _set_prefetch(self, prefetch: int | None = None) -> None:
        # from a quorum queue hold no more than the batch: what a kill returns is then the journaled batch
        if self.source_type == "quorum":
            self.prefetch = self.batch_size
        else:
            self.prefetch = max(prefetch or min(PREFETCH, 2 * self.batch_size), self.batch_size)

    @staticmethod
    def window_for(mean_size: int) -> int:
        """Messages per batch for messages of ``mean_size`` body bytes: BATCH, fewer for large ones."""
        return max(1, min(BATCH, BATCH_BYTES // max(1, mean_size)))

    def _size_batches(self, entry: dict | None) -> None:
        """Messages per batch: :meth:`window_for` the messages' mean size; with the size unknown, the
        window of the run before, else a first batch that measures them (:meth:`_sample`). Never
        fewer than the batch a killed run left in flight in this direction: :meth:`_resolve` must
        see all of it (then there is no sampling, which would take the batch's head)."""
        if self.fixed:
            return
        in_flight = int(entry.get("n") or 0) if entry and (entry.get("phase") == "out") == (self.mode == "out") else 0
        window = BATCH
        if self.message_size:
            window = self.window_for(self.message_size)
        elif entry and str(entry.get("window") or "").isdigit():
            window = max(1, min(BATCH, int(entry["window"])))
        elif not in_flight:
            self.sampling = True  # :meth:`_sample` measures them first
            return
        self._set_window(max(window, in_flight))

    def _set_window(self, window: int) -> None:
        self.batch_size = window
        self._set_prefetch()
        if window < BATCH:
            self.note(f"{self.label}: {window} message(s) per batch (large messages)")

    def _sample(self, box: dict, src_total: int) -> int:
        """Measure the messages at the head of the source and move them as the first batch, then set
        the window from their mean size; returns messages handled.

        A consumer's prefetch is fixed when it starts, so a first consumer takes SAMPLE and a second
        one the window that fits. The first is cancelled only once it holds all SAMPLE unacknowledged:
        then nothing can be on its way to it. (What is on its way to a cancelled consumer goes back
        to the queue, measured on 3.10.8, 4.0.5 and 4.3.6: a quorum queue returns it itself, as a
        redelivery with a delivery-count header, and 3.10.8 puts it behind the rest; from a classic
        queue pika rejects it. basic.get is no way out: on 3.10.8 a quorum queue adds
        ``x-delivery-count: 0`` to what it gets.) With fewer at the head the consumer stays, and this
        run keeps SAMPLE per batch."""
        self.batch_size = self.prefetch = SAMPLE
        self.cch.basic_qos(prefetch_count=SAMPLE, callback=lambda f: box.setdefault("sample", 1))
        self._pump(lambda: "sample" in box, "setting the prefetch")
        self.tag = self.cch.basic_consume(self.src, self._on_message, auto_ack=False)
        # the source held src_total: wait for SAMPLE of them (a short while: some may expire meanwhile)
        deadline = time.monotonic() + SAMPLE_WAIT
        while len(self.buf) < min(SAMPLE, src_total) and time.monotonic() < deadline:
            self._tick(0.005)
        self._collect()
        self.sampling = False
        if not self.buf:
            return 0
        mean = -(-sum(len(body) for _, _, body in self.buf) // len(self.buf))
        if self.learned:
            self.learned(mean)
        full = len(self.buf) >= SAMPLE
        if full:  # the consumer holds all it may: nothing is in flight to it
            done: dict = {}
            self.cch.basic_cancel(self.tag, callback=lambda f: done.setdefault("ok", 1))
            self._pump(lambda: "ok" in done, f"cancelling the consumer on queue '{self.src}'")
        window = self.window_for(mean)
        handled = self._batch(window=window)
        if full:
            self._set_window(window)
            self.tag = None
        return handled

    # ---- channels
    def _impl(self):
        return self.conn._impl  # noqa: SLF001 - pika's async connection: callbacks allow batched confirms

    def _tick(self, seconds: float) -> None:
        try:
            self.conn.process_data_events(time_limit=seconds)
        except (pex.AMQPConnectionError, pex.StreamLostError, OSError) as exc:
            raise _connection_error(self.label, "moving messages", exc, self.broker.ctx.settings) from None
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
                raise _connection_error(self.label, what, exc, self.broker.ctx.settings) from None
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
        if method.redelivered and self.source_type == "quorum":
            props = _without_delivery_count(props)
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
        if head != ids and not (self.source_type == "quorum" and Counter(head) == Counter(ids)):
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
        # skip every message up to the last one whose copy reached the destination; those the
        # batch itself skipped ("s": a run before it had found their copies there) stay skipped
        seen = 0
        skip = 0
        for i, action in enumerate(actions):
            if action == "s":
                skip = i + 1
                continue
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
        self._pump(lambda: "c" in box, "opening channels")
        entry = self._read_journal()
        self._size_batches(entry)
        src = self._settled_count(self.src)
        if src is None:
            return 0
        if entry and entry.get("phase") == "back" and self.mode == "back":
            dst = self._quiet_count(self.dst)  # a killed run's batch may still be landing there
        else:
            dst = self.broker.count(self.dst)
        src_total = src[0]
        handled = 0
        idle_checks = 0
        gone = False
        try:
            self.tag = None
            sampled = self.sampling
            if sampled:  # no batch of this direction in flight: _resolve only takes the drop list
                self._resolve(entry, src_total, dst[0] if dst else None)
                handled += self._sample(box, src_total)
            if self.tag is None:  # no sampling, or the sampling consumer was cancelled
                self.cch.basic_qos(prefetch_count=self.prefetch, callback=lambda f: box.setdefault("q", 1))
                self._pump(lambda: "q" in box, "setting the prefetch")
                self.tag = self.cch.basic_consume(self.src, self._on_message, auto_ack=False)
                if not sampled:
                    self._resolve(entry, src_total, dst[0] if dst else None)
            while limit is None or handled < limit:
                self._collect()
                if not self.buf:
                    counts = self.broker.count(self.src)
                    if counts is None or counts[0] == 0:
                        idle_checks += 1
                        gone = counts is None
                        if idle_checks >= 2 or gone:
                            break
                    continue
                idle_checks = 0
                handled += self._batch()
            if not gone:
                self._finish()
        finally:
            self.closing = True
            self._stop()  # only after a failure is anything left unacknowledged: it returns to the source
        return self.moved

    def _finish(self) -> None:
        """Cancel the consumer, then move what it was already given (never hand it back: see the module doc)."""
        box: dict = {}
        self.cch.basic_cancel(self.tag, callback=lambda f: box.setdefault("ok", 1))
        self._pump(lambda: "ok" in box, f"cancelling the consumer on queue '{self.src}'")
        while self.buf:
            self._batch()

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

    def _batch(self, window: int | None = None) -> int:
        """Move the head of the buffer as one batch; ``window`` is what the journal records for a
        resumed run (default: this batch size; the measuring batch records the size it measured)."""
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
                 "window": window or self.batch_size,  # what a resumed run takes when the size is unknown
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
        pause(f"{self.label_op}:{k}:journaled", self.environ)
        self._publish_batch(out)
        pause(f"{self.label_op}:{k}:published", self.environ)
        self._pump(lambda: not self.pending, f"waiting for confirms from queue '{self.dst}'")
        pause(f"{self.label_op}:{k}:confirmed", self.environ)
        self.cch.basic_ack(batch[-1][0], multiple=True)
        self.moved += len(out)
        return len(batch)

    label_op = ""

    def _publish_batch(self, out: list) -> None:
        """Publish ``out`` ((properties, body) pairs) to the destination, each tracked for its confirm.

        The frames are encoded by ``amqp.raw_publish`` (byte for byte pika's) and written at
        once: pika's own path per message cost more client CPU than the broker's work on two
        cores. Anything pika would refuse to encode goes through pika, which says why.
        """
        impl = self._impl()
        data = None
        if out and self.pch.is_open and not self.failure:
            number, body_max = self.pch.channel_number, impl._body_max_length  # noqa: SLF001
            try:
                data = b"".join([amqp.raw_publish(number, "", self.dst, props, body, body_max, mandatory=True)
                                 for props, body in out])
            except (ValueError, TypeError, struct.error, pex.AMQPError):
                data = None
        if data is None:
            for props, body in out:
                self.seq += 1
                self.pending.add(self.seq)
                self.pch.basic_publish("", self.dst, body, props, mandatory=True)
            return
        first = self.seq + 1
        self.seq += len(out)
        self.pending.update(range(first, self.seq + 1))
        impl._output_marshaled_frames([data])  # noqa: SLF001 - one write for the batch

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

