"""What a scan finds in source code: places, values, declarations, findings.

A declaration is one call in the code (``queue_declare``, ``assertExchange``, kombu's
``Queue(...)``, a publish) with each of its fields either *known* (a literal, or a
constant the resolver could follow) or *unresolved* (with the reason: a value from the
command line, the environment, configuration, a computation). Nothing is guessed: an
unresolved field stays unresolved, and every report names its file:line.

Pure data: imports nothing from topoform outside this package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# Declaration kinds.
EXCHANGE = "exchange"
QUEUE = "queue"
BINDING = "binding"
PUBLISH = "publish"
CONSUME = "consume"
KINDS = (EXCHANGE, QUEUE, BINDING, PUBLISH, CONSUME)

# The comment that marks a publish as allowed to reach no queue (check-code).
UNROUTABLE_OK = "topoform: unroutable-ok"


@dataclass(frozen=True, order=True)
class Place:
    """A place in a source file; ``line`` and ``col`` are 1-based."""

    path: str
    line: int
    col: int = 1
    via: tuple[str, ...] = ()  # a declaration inside a helper: the calls that made it ("path:line")
    # the branches it sits in: ((line, col) of an if or match, which side), innermost last; two
    # declarations on different sides of one if never run in one process (not compared)
    branches: tuple = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def described(self) -> str:
        """``svc.py:10``, or ``svc.py:10 (called at line 17)`` for a helper's declaration."""
        if not self.via:
            return str(self)
        return f"{self} (called at {', '.join(self.calls())})"

    def exclusive_with(self, other: "Place") -> tuple | None:
        """The ``(line, col)`` of an if (or match) that puts ``self`` and ``other`` on different sides."""
        if self.path != other.path:
            return None
        theirs = dict(other.branches)
        for at, side in self.branches:
            if at in theirs and theirs[at] != side:
                return at
        return None

    def calls(self) -> list[str]:
        """The calls that made it: ``line 17`` in the same file, ``app.py:4`` in another."""
        out = []
        for v in self.via:
            path, _, line = v.rpartition(":")
            out.append(f"line {line}" if path == self.path else v)
        return out

    def to_dict(self) -> dict:
        out = {"path": self.path, "line": self.line, "col": self.col}
        if self.via:
            out["via"] = list(self.via)
        return out


class Unknown:
    """A value the scan cannot know statically, with the reason (shown to the user).

    ``reason`` may be given as a callable, computed only when someone reads it (most
    unknown values are intermediate and never shown: rendering source text is costly).
    """

    __slots__ = ("_reason",)

    def __init__(self, reason):
        self._reason = reason

    @property
    def reason(self) -> str:
        if callable(self._reason):
            self._reason = self._reason()
        return self._reason

    def __repr__(self) -> str:
        return f"Unknown({self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(("Unknown", self.reason))


@dataclass(frozen=True)
class ServerNamed:
    """The name of a queue the broker names at run time (``queue_declare('')``).

    ``ref`` is the topology name the scan gives it (for example
    ``billing.consumer.server-named``), unique per declaring place.
    """

    ref: str


@dataclass
class Declaration:
    """One call in the code.

    ``fields`` holds every field with a known value (the library's defaults filled in);
    ``unresolved`` maps a field (``routing_key``, ``arguments.x-dead-letter-exchange``)
    to the reason it is unknown. ``passive`` declares only check that the object exists.
    ``server_named`` (queues) is set when the broker names the queue at run time.
    """

    kind: str
    place: Place
    library: str
    call: str
    fields: dict[str, Any] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)
    passive: bool = False
    server_named: str | None = None
    unroutable_ok: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> Any:
        return self.fields.get("name")

    @property
    def resolved(self) -> bool:
        return not self.unresolved

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "place": str(self.place), "path": self.place.path, "line": self.place.line,
               "library": self.library, "call": self.call, "fields": _plain(self.fields),
               "unresolved": dict(sorted(self.unresolved.items())), "passive": self.passive}
        if self.server_named:
            out["server_named"] = self.server_named
        if self.kind == PUBLISH:
            out["unroutable_ok"] = self.unroutable_ok
        if self.notes:
            out["notes"] = list(self.notes)
        if self.place.via:
            out["via"] = list(self.place.via)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, ServerNamed):
        return {"server_named": value.ref}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Issue:
    """A finding of the scan itself: an unresolved value, a file that cannot be parsed, a note.

    ``severity`` is ``error`` (conflicts), ``warning`` (unresolved values, unparsable
    files) or ``note``.
    """

    code: str
    message: str
    place: Place | None = None
    severity: str = "warning"
    other: Place | None = None  # the second place of a conflict
    field: str | None = None
    verdict: str | None = None

    def format(self) -> str:
        prefix = f"{self.place}: " if self.place else ""
        label = "" if self.severity == "error" else f"{self.severity}: "
        return f"{prefix}{label}{self.message}"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"code": self.code, "severity": self.severity, "message": self.message,
                               "place": str(self.place) if self.place else None}
        if self.place is not None and self.place.via:
            out["via"] = list(self.place.via)
        if self.other is not None:
            out["other_place"] = str(self.other)
            if self.other.via:
                out["other_via"] = list(self.other.via)
        if self.field is not None:
            out["field"] = self.field
        if self.verdict is not None:
            out["verdict"] = self.verdict
        return out


@dataclass
class FileScan:
    """What one source file holds."""

    path: str
    language: str
    declarations: list[Declaration] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
