"""Progress reporting for ``apply``: the interface the executor calls, and two writers.

The executor only calls the :class:`Progress` methods; the CLI chooses
:class:`TerminalProgress` (one redrawn line with done/total and rate) on a terminal
and :class:`LineProgress` (a plain line every few seconds) otherwise. Both write to a
stream the CLI injects; nothing here picks a stream itself. Must not import cli.
"""
from __future__ import annotations

import time
from typing import IO, Callable


class Progress:
    """What the executor reports. The base class ignores everything (tests, library use)."""

    def start(self, total: int) -> None:
        """``total`` changes are about to run."""

    def done(self, change, count: int = 1) -> None:
        """``count`` changes (ending with ``change``) finished."""

    def note(self, text: str) -> None:
        """A line worth showing as it happens (vhost created, migration step, retry, lock wait)."""

    def tick(self) -> None:
        """Called often while waiting for the broker; a chance to redraw."""

    def finish(self) -> None:
        """The run ended (successfully or not); clear any live line."""


class _Counting(Progress):
    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.clock = clock
        self.total = 0
        self.count = 0
        self.started = clock()

    def start(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.started = self.clock()

    def done(self, change, count: int = 1) -> None:
        self.count += count
        self.tick()

    def status(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.count / elapsed
        pct = 100.0 * self.count / self.total if self.total else 100.0
        return f"Applying: {self.count}/{self.total} changes ({pct:.0f}%), {rate:.0f}/s, {elapsed:.1f}s"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        try:
            self.stream.flush()
        except (AttributeError, ValueError):
            pass


class TerminalProgress(_Counting):
    """One line redrawn in place at most ``fps`` times a second."""

    def __init__(self, stream: IO[str], fps: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(stream, clock)
        self.interval = 1.0 / fps
        self.last = 0.0
        self.drawn = False

    def tick(self) -> None:
        now = self.clock()
        if now - self.last >= self.interval or self.count == self.total:
            self.last = now
            self._write("\r\x1b[2K" + self.status())
            self.drawn = True

    def note(self, text: str) -> None:
        self._write(("\r\x1b[2K" if self.drawn else "") + text + "\n")
        self.drawn = False
        self.last = 0.0

    def finish(self) -> None:
        if self.drawn:
            self._write("\r\x1b[2K")
            self.drawn = False


class LineProgress(_Counting):
    """Plain lines for logs and CI: one every ``interval`` seconds while work is running."""

    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(stream, clock)
        self.interval = interval
        self.last = clock()

    def start(self, total: int) -> None:
        super().start(total)
        self.last = self.clock()

    def tick(self) -> None:
        now = self.clock()
        if now - self.last >= self.interval and self.count < self.total:
            self.last = now
            self._write(self.status() + "\n")

    def note(self, text: str) -> None:
        self._write(text + "\n")
