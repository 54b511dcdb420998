"""One apply at a time: a lock held on the broker, per vhost.

The lock is an exclusive queue named ``topoform.lock`` in each managed vhost. Only the
connection that declared it may use it, and the broker deletes it when that
connection closes, for whatever reason: a killed apply never leaves a stale lock
(RABBITMQ-SEMANTICS.md 4.1). A second declare from another connection gets 405
RESOURCE_LOCKED. The planner never sees the queue (exclusive queues are not managed).

Who holds the lock is written into the queue's own arguments (``x-topoform-holder``),
so a waiting apply can name the holder at once; the management API shows the
arguments immediately, unlike ``owner_pid_details`` which lags by a stats interval.

The lock connections run without AMQP heartbeats (nothing pumps them while the
executor works) but with TCP keepalive, so a vanished host is noticed too.
Must not import planner or cli.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import time
from typing import Callable, Iterable

from pika import exceptions as pex

from ..broker import amqp
from ..broker.settings import BrokerSettings, quote_segment
from ..errors import BrokerError, LockError

LOCK_QUEUE = "topoform.lock"
HOLDER_ARG = "x-topoform-holder"


def describe_holder(settings: BrokerSettings, purpose: str = "apply", owner: str | None = None) -> str:
    """``topoform apply [for OWNER] by USER pid=PID host=HOST since HH:MM:SSZ``: what a waiting apply prints.

    ``owner`` is the files' ``owner:`` label (SPEC section 9), so a waiting team sees whose apply runs.
    """
    since = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = f" for '{owner}'" if owner else ""
    return (f"topoform {purpose}{who} by user '{settings.username}' pid={os.getpid()} host={socket.gethostname()} "
            f"since {since}")


class BrokerLock:
    """Exclusive ``topoform.lock`` queues, one connection per locked vhost.

    ``acquire(vhosts)`` takes them in sorted order (two applies over overlapping
    vhosts cannot deadlock), retrying every ``poll`` seconds up to ``timeout``; then
    raises :class:`LockError` naming the holder. ``release()`` closes the connections,
    which frees the locks. ``check()`` re-takes a lock whose connection died.
    """

    def __init__(self, settings: BrokerSettings, *, timeout: float = 60.0, poll: float = 0.5,
                 lookup_holder: Callable[[str], str | None] | None = None, holder: str | None = None,
                 on_wait: Callable[[str, str | None], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.timeout = timeout
        self.poll = poll
        self.holder = holder or describe_holder(settings)
        self.lookup_holder = lookup_holder
        self.on_wait = on_wait
        self.clock = clock
        self.sleep = sleep
        self.connections: dict[str, object] = {}
        self.channels: dict[str, object] = {}  # the channel each lock was declared on
        self.stranded: set[str] = set()  # vhosts whose lock queue sits on a lost cluster node (still ours)

    @property
    def vhosts(self) -> list[str]:
        return sorted(self.connections)

    def acquire(self, vhosts: Iterable[str], timeout: float | None = None) -> None:
        for vhost in sorted(set(vhosts)):
            if vhost not in self.connections and vhost not in self.stranded:
                self._acquire_one(vhost, self.timeout if timeout is None else timeout)

    def _acquire_one(self, vhost: str, timeout: float) -> None:
        deadline = self.clock() + timeout
        connection = amqp.connect(self.settings, vhost, name=amqp.holder_name("apply (lock)"), heartbeat=0,
                                  keepalive=True)
        announced = False
        try:
            while True:
                channel = connection.channel()
                try:
                    channel.queue_declare(LOCK_QUEUE, exclusive=True, auto_delete=False, durable=False,
                                          arguments={HOLDER_ARG: self.holder})
                except pex.ChannelClosedByBroker as exc:
                    if exc.reply_code != 405:
                        raise amqp.AmqpError(
                            f"cannot take the apply lock (queue '{LOCK_QUEUE}') in vhost '{vhost}'", exc.reply_code,
                            exc.reply_text, hint=f"the applying user needs configure permission on '{LOCK_QUEUE}'"
                            if exc.reply_code == 403 else "") from None
                    holder = self._who(vhost)
                    if self.clock() >= deadline:
                        raise LockError(
                            f"vhost '{vhost}' is locked by another apply ({holder or 'holder unknown'}); "
                            f"gave up after {timeout:g}s",
                            hint="wait for it to finish, or raise --lock-timeout") from None
                    if not announced and self.on_wait:
                        self.on_wait(vhost, holder)
                        announced = True
                    self.sleep(min(self.poll, max(0.0, deadline - self.clock())))
                    continue
                self.connections[vhost] = connection
                self.channels[vhost] = channel  # release() deletes the lock on it: no extra channel
                connection = None
                return
        except pex.AMQPConnectionError as exc:
            raise BrokerError(f"lost the connection to vhost '{vhost}' while taking the apply lock: "
                              f"{amqp.scrub(str(exc) or type(exc).__name__, self.settings)}") from None
        finally:
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001
                    pass

    def _who(self, vhost: str) -> str | None:
        if self.lookup_holder is None:
            return None
        try:
            return self.lookup_holder(vhost)
        except BrokerError:
            return None

    def check(self, timeout: float = 5.0) -> None:
        """Make sure every lock is still held; re-take one whose connection died (or raise LockError)."""
        for vhost, connection in list(self.connections.items()):
            alive = connection.is_open
            if alive:
                try:
                    connection.process_data_events(0)
                except (pex.AMQPError, OSError):
                    alive = False
            if not alive:
                del self.connections[vhost]
                self.channels.pop(vhost, None)
                try:
                    self._acquire_one(vhost, timeout)
                except LockError:
                    # A cluster node died with our lock queue on it: its record (with our holder
                    # argument) outlives the node, so it still keeps every other apply out. Still ours.
                    if not (self._who(vhost) or "").startswith(self.holder):
                        raise
                    self.stranded.add(vhost)

    def release(self) -> None:
        connections, self.connections = self.connections, {}
        channels, self.channels = self.channels, {}
        for vhost, connection in connections.items():
            try:
                if connection.is_open:
                    # Delete the lock queue first: 4.x removes an exclusive queue only some
                    # time after its connection closed, and a lock that outlives its apply
                    # would hold back the next one and show up in listings. On the lock's own
                    # channel: under a user's max-channels, one more channel is refused (530)
                    # and the broker closes the connection instead.
                    channel = channels.get(vhost)
                    try:
                        if channel is None or not getattr(channel, "is_open", True):
                            channel = connection.channel()
                        channel.queue_delete(LOCK_QUEUE)
                    except (pex.AMQPError, OSError):
                        pass
                    connection.close()
            except Exception:  # noqa: BLE001 - the broker frees the lock with the connection anyway
                pass

    def __enter__(self) -> "BrokerLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder_from_management(client) -> Callable[[str], str | None]:
    """A ``lookup_holder`` reading the lock queue's arguments (and owner) through the management API."""

    def lookup(vhost: str) -> str | None:
        data = client.get(f"/api/queues/{quote_segment(vhost)}/{quote_segment(LOCK_QUEUE)}")
        holder = (data.get("arguments") or {}).get(HOLDER_ARG)
        owner = data.get("owner_pid_details") or {}
        peer = owner.get("name") if isinstance(owner, dict) else None
        if holder and peer:
            return f"{holder}, connection {peer}"
        return holder or (f"connection {peer}" if peer else None)

    return lookup
