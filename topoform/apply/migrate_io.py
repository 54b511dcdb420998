"""Broker access for migrations: typed refusals, exact counts, type-aware deletes, the test hook.

Used by ``apply/migrate.py`` (the steps) and ``apply/migrate_move.py`` (the mover).
Must not import cli.

* A refusal (a channel *or* connection close with a reply code: 403, 404, 406, 540, ...)
  becomes :class:`~topoform.broker.amqp.AmqpError`, never :class:`ConnectionLost`: the
  executor retries only a lost connection, and a refusal repeats identically.
  ``320 CONNECTION_FORCED`` (broker shutdown, an operator closing the connection) is a
  lost connection.
* Emptiness is read with a passive ``queue.declare``: the queue process answers it
  with its real ready count and consumer count (management statistics lag about 5 s).
* Deletes use only the guards the queue type implements: ``if-empty`` on classic
  queues; quorum queues refuse ``if-empty`` and ``if-unused`` with a *connection*
  error (540 NOT_IMPLEMENTED, measured on 3.10.8, 4.0.5 and 4.3.6), so they are
  checked with a passive declare first and deleted without flags.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from pika import exceptions as pex

from ..broker import amqp
from ..errors import TopoformError
from ..model import Args, Exchange, Queue


# Connection closes that mean "lost", not "refused": the broker or an operator closed it.
LOST_CODES = (320,)


class MigrationError(TopoformError):
    """A migration step failed; the broker keeps what is needed to resume it."""

    code = "migration-failed"


class QueueNotEmpty(Exception):
    """Internal: a guarded delete found messages (or consumers) in the queue."""

    def __init__(self, messages: int, consumers: int):
        super().__init__(f"{messages} message(s), {consumers} consumer(s)")
        self.messages, self.consumers = messages, consumers


# ---------------------------------------------------------------------- test hook
def pause(point: str, environ=None) -> None:
    environ = os.environ if environ is None else environ
    if environ.get("TOPOFORM_TEST_PAUSE_AT") != point:
        return
    marker = environ.get("TOPOFORM_TEST_PAUSE_FILE")
    if marker:
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write(point)
    while True:  # wait to be killed
        time.sleep(3600)


def batch_override(environ=None) -> dict:
    """Mover batch and prefetch from the test hook ``TOPOFORM_TEST_BATCH`` (tests only), else {}."""
    environ = os.environ if environ is None else environ
    raw = environ.get("TOPOFORM_TEST_BATCH", "")
    if raw.isdigit() and int(raw) > 0:
        return {"batch": int(raw), "prefetch": 2 * int(raw)}
    return {}


# ---------------------------------------------------------------------- small AMQP helpers
class MigrationBroker:
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
        except pex.ConnectionClosedByBroker as exc:
            self._ch = None
            if exc.reply_code not in LOST_CODES:  # the broker's answer to this request: retrying repeats it
                raise amqp.AmqpError(subject, exc.reply_code, exc.reply_text) from None
            raise amqp.ConnectionLost(f"connection to vhost '{self.vhost}' closed by the broker during a migration: "
                                      f"{amqp.format_reply(exc.reply_code, exc.reply_text)}") from None
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

    def delete_queue(self, name: str, if_empty: bool = True, queue_type: str = "classic") -> None:
        """Delete a queue; with ``if_empty``, only when it holds no message (else :class:`QueueNotEmpty`).

        Classic queues get the broker's atomic ``if-empty`` guard. Quorum queues refuse
        that flag (540, a connection error), so their emptiness is read with a passive
        declare (exact: the queue answers with its own counts) and the delete carries no
        flag. Streams report 0 messages to a passive declare whatever they hold and
        ignore ``if-empty`` (measured on 3.10.8, 4.0.5, 4.3.6): an emptiness check of a
        stream is refused. A missing queue counts as deleted.
        """
        subject = f"queue '{name}' in vhost '{self.vhost}'"
        if if_empty and queue_type == "stream":
            raise MigrationError(f"{subject} is a stream: its message count cannot be read, so it is never "
                                 "deleted as empty")
        if if_empty and queue_type != "classic":
            counts = self.count(name)
            if counts is None:
                return
            if counts[0] or counts[1]:
                raise QueueNotEmpty(*counts)
            self.call(subject, lambda ch: ch.queue_delete(name))
            return
        try:
            self.call(subject, lambda ch: ch.queue_delete(name, if_empty=if_empty))
        except amqp.AmqpError as exc:
            if if_empty and exc.reply_code == 406:
                counts = self.count(name) or (1, 0)
                raise QueueNotEmpty(max(counts[0], 1), counts[1]) from None
            raise

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

    def move_binding(self, b: dict, source: str, old: str, new: str) -> None:
        """Give a queue binding of ``old`` to ``new``: bind ``new``, then unbind ``old``, pipelined.

        The bind goes out with ``nowait`` and the unbind right behind it on the same channel:
        the broker handles a channel's methods in order, so a message is never without a
        destination, and the window in which it reaches both queues (a duplicate) is the
        broker's own time for one unbind rather than a client round trip as well.
        """
        key = b.get("routing_key") or ""
        raw = b.get("arguments") or {}
        bind_args = amqp.encode_args(raw)
        variants = [bind_args] + ([amqp.encode_args(raw, int_type=int)] if amqp.has_integers(raw) else [])
        subject = f"binding {source} -> {old}/{new} [{key}] in vhost '{self.vhost}'"
        box: dict = {}
        try:
            ch = self.conn._impl.channel(on_open_callback=lambda c: box.setdefault("open", True))  # noqa: SLF001
            ch.add_on_close_callback(lambda c, reason: box.setdefault("closed", reason))
            self._wait(box, "open", subject)
            ch.queue_bind(new, source, key, bind_args)  # no callback: nowait
            for i, args in enumerate(variants):
                last = i == len(variants) - 1
                ch.queue_unbind(old, source, key, args,
                                callback=(lambda f: box.setdefault("done", True)) if last else (lambda f: None))
            self._wait(box, "done", subject)
        except (pex.ConnectionClosedByBroker, pex.AMQPConnectionError, pex.StreamLostError, OSError) as exc:
            code = getattr(exc, "reply_code", None)
            if isinstance(exc, pex.ConnectionClosedByBroker) and code not in LOST_CODES:
                raise amqp.AmqpError(subject, code, exc.reply_text) from None
            raise amqp.ConnectionLost(f"connection to vhost '{self.vhost}' lost during a migration: "
                                      f"{amqp.scrub(str(exc) or type(exc).__name__, self.ctx.settings)}") from None
        if ch.is_open:
            ch.close()

    def _wait(self, box: dict, key: str, subject: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while key not in box:
            reason = box.get("closed")
            if reason is not None:
                if isinstance(reason, pex.ChannelClosedByBroker):
                    raise amqp.AmqpError(subject, reason.reply_code, reason.reply_text)
                raise amqp.ConnectionLost(f"{subject}: channel closed: {reason}")
            if time.monotonic() > deadline:
                raise MigrationError(f"{subject}: no answer from the broker within {timeout:g}s")
            self.conn.process_data_events(time_limit=0.01)


def http_json(ctx, path: str, attempts: int = 20, params: dict | None = None) -> Any:
    """GET a JSON document, None on 404. A just-declared quorum queue briefly answers 500: retried."""
    for attempt in range(attempts):
        response = ctx.client.request("GET", path, expect=(200, 404, 500, 503), params=params)
        if response.status_code in (200, 404):
            return response.json() if response.status_code == 200 else None
        time.sleep(0.25)
    raise MigrationError(f"the management API kept answering {response.status_code} to GET {path}")


def queue_from_http(vhost: str, row: dict | None) -> Queue | None:
    if row is None:
        return None
    return Queue(vhost=vhost, name=row["name"], durable=bool(row.get("durable")),
                 exclusive=bool(row.get("exclusive")), auto_delete=bool(row.get("auto_delete")),
                 arguments=Args(row.get("arguments") or {}))


def exchange_from_http(vhost: str, row: dict | None) -> Exchange | None:
    if row is None:
        return None
    return Exchange(vhost=vhost, name=row["name"], type=row.get("type") or "direct", durable=bool(row.get("durable")),
                    auto_delete=bool(row.get("auto_delete")), internal=bool(row.get("internal")),
                    arguments=Args(row.get("arguments") or {}))

