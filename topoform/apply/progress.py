"""Progress reporting for ``apply``: the interface the executor calls, and two writers.

The executor only calls the :class:`Progress` methods; the CLI chooses
:class:`TerminalProgress` (one redrawn line with done/total, rate and ETA) on a terminal
and :class:`LineProgress` (a plain line every few seconds) otherwise. Both write to a
stream the CLI injects; nothing here picks a stream itself. Must not import cli.

Both writers also remember which changes finished (``completed``), so that an apply
stopped by Ctrl-C can say what was done and what was not (:func:`interruption_lines`),
and add the rate to a migration's "N message(s) moved" lines: the messages over the time
since the previous line of the run (the step that moved them), with a running total of
messages moved on the status line.
"""
from __future__ import annotations

import re
import time
from typing import IO, Callable, Sequence

_MOVED = re.compile(r"(?P<n>\d+) (?:more )?message\(s\) moved\b")


def format_duration(seconds: float) -> str:
    """``7s``, ``3m05s``, ``1h02m``: short enough for a status line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


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
        self.completed: list = []  # the changes reported done, in order
        self.messages_moved = 0  # by migrations, from their "N message(s) moved" lines
        self.last_line = self.started  # when the previous note was shown (a migration step's start)

    def start(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.started = self.last_line = self.clock()

    def done(self, change, count: int = 1) -> None:
        self.count += count
        if change is not None:
            self.completed.append(change)
        self.tick()

    def status(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.count / elapsed
        pct = 100.0 * self.count / self.total if self.total else 100.0
        line = f"Applying: {self.count}/{self.total} changes ({pct:.0f}%), {rate:.0f}/s, {elapsed:.1f}s"
        if 0 < self.count < self.total:
            line += f", ETA {format_duration((self.total - self.count) / rate)}"
        if self.messages_moved:
            line += f", {self.messages_moved:,} messages moved"
        return line

    def annotate(self, text: str) -> str:
        """``text`` with the rate added when it says how many messages a migration step moved."""
        now = self.clock()
        seconds, self.last_line = now - self.last_line, now
        m = _MOVED.search(text)
        if not m:
            return text
        n = int(m.group("n"))
        self.messages_moved += n
        if n == 0 or seconds <= 0:
            return text
        return f"{text} ({n / seconds:,.0f} msg/s over {seconds:.1f}s)"

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
        self._write(("\r\x1b[2K" if self.drawn else "") + self.annotate(text) + "\n")
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
        self._write(self.annotate(text) + "\n")


def _describe(change) -> str:
    action = getattr(change.action, "value", change.action)
    return f"{action} {change.kind} {change.name!r} in vhost {change.vhost!r}"


def interruption_lines(changes: Sequence, completed: Sequence, *, saved_plan: bool = False,
                       limit: int = 10, command: str = "apply") -> list[str]:
    """What to print when Ctrl-C or SIGTERM stopped an apply (or ``command``): what was done, what was not,
    and how to finish.

    ``changes`` are the plan's, ``completed`` those the executor reported done (identity
    decides). At most ``limit`` of each are named; the rest are counted.
    """
    done_ids = {id(c) for c in completed}
    left = [c for c in changes if id(c) not in done_ids]
    lines = [f"Interrupted: {len(completed)} of {len(changes)} change{'s' if len(changes) != 1 else ''} done, "
             f"{len(left)} not done. What was done stays on the broker."]
    for title, items in (("Done", list(completed)), ("Not done", left)):
        for change in items[:limit]:
            lines.append(f"  {title}: {_describe(change)}")
        if len(items) > limit:
            lines.append(f"  {title}: ... and {len(items) - limit} more")
    if any(getattr(c.action, "value", c.action) == "migrate" for c in left):
        lines.append("An interrupted migration keeps its messages; 'topoform plan' shows it and "
                     "'topoform apply --migrate' finishes it (or --migrate --rollback undoes it).")
    if saved_plan:
        lines.append("The saved plan is stale now. Run 'topoform plan --out FILE' again and apply that plan: "
                     "it holds only what remains.")
    else:
        lines.append(f"Run 'topoform {command}' again to finish: the next plan holds only what remains.")
    return lines
