"""Error types, findings and source positions.

A leaf module: it imports nothing from topoform. Every error carries a stable
kebab-case ``code``, a one-line ``message`` and an optional ``hint``; ``cli`` is the
only place that turns them into output and exit codes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, order=True)
class Position:
    """A place in a topology file. ``line`` and ``col`` are 1-based."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Finding:
    """What a check reports: a stable code, a severity and a one-line message.

    ``subject`` names the object concerned (for example ``queue orders``) when known;
    ``position`` is the source position when the finding comes from a file.
    """

    code: str
    message: str
    severity: str = "error"  # "error" | "warning"
    position: Position | None = None
    subject: str = ""
    hint: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self) -> str:
        """``PATH:LINE:COL: message`` (or ``warning: ...``), one line."""
        prefix = f"{self.position}: " if self.position else ""
        label = "warning: " if self.severity == "warning" else ""
        text = f"{prefix}{label}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def as_json(self, redact=lambda text: text) -> dict:
        """The JSON form of ``validate --json`` and of an error's ``findings`` (``hint`` only when given)."""
        pos = self.position
        out = {"code": self.code, "severity": self.severity, "message": redact(self.message),
               "path": pos.path if pos else None, "line": pos.line if pos else None, "col": pos.col if pos else None}
        if self.hint:
            out["hint"] = redact(self.hint)
        return out

    def sort_key(self):
        pos = self.position
        return (pos.path, pos.line, pos.col) if pos else ("", 0, 0)


class TopoformError(Exception):
    """Base error: ``code`` (kebab-case), one-line ``message``, optional ``hint``."""

    code = "error"

    def __init__(self, message: str, *, hint: str = "", code: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code:
            self.code = code

    def __str__(self) -> str:
        return self.message


class UsageError(TopoformError):
    """The command line itself is wrong."""

    code = "usage"


class InputError(TopoformError):
    """Topology files are missing or invalid; ``findings`` holds every problem found."""

    code = "invalid-input"

    def __init__(self, message: str, findings: Iterable[Finding] = (), **kw):
        super().__init__(message, **kw)
        self.findings = tuple(sorted(findings, key=Finding.sort_key))


class BrokerError(TopoformError):
    """The broker could not be reached or refused a request.

    Messages never contain credentials: build them from redacted URLs only.
    """

    code = "broker"


class BlockedPlanError(TopoformError):
    """The plan holds blocked changes, so nothing was applied."""

    code = "blocked-plan"


class StalePlanError(TopoformError):
    """A saved plan no longer matches the live state it was computed from."""

    code = "stale-plan"


class LockError(TopoformError):
    """Another apply holds the lock."""

    code = "locked"
