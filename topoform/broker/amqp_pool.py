"""Several AMQP connections to one vhost driven at once: the phases of a large apply (issue 17).

Reached as ``topoform.broker.amqp.Pool``; it lives here to keep ``amqp.py`` to one concern
(one connection's sessions and their errors).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from ..errors import BrokerError
from .amqp import BatchResult, ConnectionLost, Op, Session, holder_name
from .settings import BrokerSettings


class Pool:
    """Several :class:`Session` connections to one vhost, each driven by its own thread.

    The broker parses each connection's frames in one process (its reader), so one
    connection caps how fast a phase can go however many channels it has; ``run(ops)``
    spreads a phase's ops over ``connections`` connections of ``channels`` channels each
    (small batches use the first connection only). The result and the failure rules are
    those of :meth:`Session.run`: once one connection saw a failure the others stop
    sending, and a lost connection raises :class:`ConnectionLost` after every thread has
    finished, with every op not known to be done in ``last_result.not_attempted``.
    """

    SPLIT_MIN = 2000  # ops per extra connection: below, one connection is as fast (the others cost a handshake)

    def __init__(self, settings: BrokerSettings, vhost: str, *, connections: int = 4, channels: int = 32,
                 name: str | None = None, window: int = 20):
        self.settings = settings
        self.vhost = vhost
        name = name or holder_name()
        count = max(1, connections)
        self.sessions = [Session(settings, vhost, channels=channels, window=window,
                                 name=name if i == 0 else f"{name} conn={i + 1}") for i in range(count)]
        self.last_result: BatchResult | None = None
        self.limit = count  # connections usable; lowered when the broker refuses one at a connection limit

    def run(self, ops: Iterable[Op], on_done: Callable[[Op], None] | None = None,
            tick: Callable[[], None] | None = None) -> BatchResult:
        ops = list(ops)
        used = self._usable(min(len(self.sessions), max(1, len(ops) // self.SPLIT_MIN)))
        if used == 1:
            try:
                return self.sessions[0].run(ops, on_done=on_done, tick=tick)
            finally:
                self.last_result = self.sessions[0].last_result
        lock = threading.Lock()
        halt = threading.Event()

        def done(op: Op) -> None:
            if on_done is not None:
                with lock:
                    on_done(op)

        outcomes: list = [None] * used

        def work(i: int, part: list) -> None:
            session = self.sessions[i]
            session.halt = halt
            try:
                outcomes[i] = session.run(part, on_done=done)
                if outcomes[i].failures:
                    halt.set()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                halt.set()
                outcomes[i] = exc
            finally:
                session.halt = None

        # contiguous parts: ops come in plan order (by source exchange, then destination), so the
        # bindings of one exchange stay on one connection instead of contending from all of them
        size = -(-len(ops) // used)
        parts = [ops[i * size:(i + 1) * size] for i in range(used)]
        threads = [threading.Thread(target=work, args=(i, parts[i]), name=f"topoform-amqp-{i + 1}", daemon=True)
                   for i in range(used)]
        for t in threads:
            t.start()
        try:
            while True:
                alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                alive[0].join(0.05)  # a thread still running: joining a finished one would not wait
                if tick:
                    with lock:
                        tick()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the connections stop sending, their replies in flight count
            halt.set()  # each connection then waits for its replies (at most its op timeout without one)
            deadline = time.monotonic() + max(s.op_timeout for s in self.sessions[:used]) + 1
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            raise
        merged = BatchResult()
        self.last_result = merged
        lost: ConnectionLost | None = None
        other: BaseException | None = None
        for i, outcome in enumerate(outcomes):
            part = outcome if isinstance(outcome, BatchResult) else getattr(self.sessions[i], "last_result", None)
            if isinstance(outcome, ConnectionLost):
                lost = lost or outcome  # its last_result holds what was done and what was not
            elif isinstance(outcome, BaseException) or part is None:
                other = other or outcome  # e.g. could not connect: what it did not report done was not sent
                finished = {id(op) for op in part.done} if part is not None else set()
                merged.done.extend(part.done if part is not None else ())
                merged.not_attempted.extend(op for op in parts[i] if id(op) not in finished)
                continue
            merged.done.extend(part.done)
            merged.failures.extend(part.failures)
            merged.not_attempted.extend(part.not_attempted)
        if other is not None:
            raise other
        if lost is not None and not merged.failures:
            raise lost
        return merged

    def _usable(self, wanted: int) -> int:
        """How many of the first ``wanted`` connections are open or can be opened.

        An extra connection the broker refuses because a connection limit is reached (the
        vhost's or the user's ``max-connections``) is not an error: the phase runs on the
        connections it has, and later phases do not ask for more. The first connection's
        refusal is raised as it is (nothing can run without it).
        """
        wanted = min(wanted, self.limit)
        if wanted > 1:
            self.sessions[0].open()  # first: the extras must not take the places it needs
        for i in range(1, wanted):
            try:
                self.sessions[i].open()
            except BrokerError as exc:
                if exc.code != "connection-limit":
                    raise
                self.limit = i
                return i
        return wanted

    # ---- the Session conveniences, on the first connection
    def queue_counts(self, queue: str) -> tuple[int, int] | None:
        return self.sessions[0].queue_counts(queue)

    def call(self, op: Op) -> None:
        self.sessions[0].call(op)

    def open(self) -> "Pool":
        self.sessions[0].open()
        return self

    @property
    def is_open(self) -> bool:
        return self.sessions[0].is_open

    def close(self) -> None:
        for session in self.sessions:
            session.close()

    def __enter__(self) -> "Pool":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
