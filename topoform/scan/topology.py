"""Declarations -> a topology, the conflicts between them, and route tests from publishes.

The same queue or exchange declared in several places becomes one object, with every
place kept (the YAML names them). Two places that declare it differently are a
conflict: an error naming both places and the differing field, with the broker's
verdict from :mod:`topoform.planner.rules` for the target version (406 at run time for
the service that starts second, or silently ignored). Server-named queues become
exclusive queues with the name the scan gave them (the files' model of run-time queues).

A binding or route test is written only when every part of it is known and the objects
it names are declared by the scanned code (else the YAML would not validate); the rest
is reported, with file:line.
"""
from __future__ import annotations

import dataclasses
import json
import re

from dataclasses import dataclass, field
from typing import Any

from .. import dump
from ..model import Args, Binding, Exchange, Queue, RouteTest, Topology, thaw
from ..planner.diff import field_diffs
from ..planner.normalize import effective_queue_type, normalize_queue
from ..planner.rules import IGNORES, LOCKS, REJECTS, rule_for
from ..routing.simulate import BUILTIN_EXCHANGES
from .model import BINDING, EXCHANGE, PUBLISH, QUEUE, Declaration, Issue, Place, ServerNamed

_QUEUE_FIELDS = ("durable", "exclusive", "auto_delete")
_EXCHANGE_FIELDS = ("type", "durable", "auto_delete", "internal")


@dataclass
class Entry:
    """One object of the scanned topology and where the code declares it."""

    obj: Any
    places: list[Place] = field(default_factory=list)
    unresolved: dict[str, tuple[str, Place]] = field(default_factory=dict)
    server_named: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Built:
    topology: Topology
    entries: dict[tuple, Entry]
    binding_places: dict[tuple, list[Place]]
    test_places: dict[int, list[Place]]
    issues: list[Issue]
    conflicts: list[Issue]


def version_tuple(version: str | None) -> tuple[int, int] | None:
    if not version:
        return None
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def verdict_text(verdict: str, kind: str) -> str:
    if verdict == REJECTS:
        return (f"the broker rejects the second declare with 406 PRECONDITION_FAILED (the service that starts "
                f"second crashes)")
    if verdict == LOCKS:
        return "the broker answers 405 RESOURCE_LOCKED to the second declare"
    if verdict == IGNORES:
        return f"the broker silently ignores the second declare's value (the {kind} keeps the first one's)"
    return f"the broker's verdict: {verdict}"


def _name(value: Any) -> Any:
    return value.ref if isinstance(value, ServerNamed) else value


def reserved_exchange(decl: Declaration) -> str | None:
    """Why the broker refuses an active declare of an ``amq.`` exchange, or None: a built-in
    (``BUILTIN_EXCHANGES``, every one durable) declared as it is. Another field than the
    built-in's is 406 PRECONDITION_FAILED (inequivalent arg); any other ``amq.`` name is
    403 ACCESS_REFUSED (the prefix is reserved). Unresolved fields are not compared."""
    name = _known_name(decl)
    if decl.passive or name is None or not name.startswith("amq."):
        return None
    builtin = BUILTIN_EXCHANGES.get(name)
    if builtin is None:
        return (f"exchange '{name}': names starting with 'amq.' are reserved for the broker's built-in exchanges; "
                "the broker refuses the declare with 403 ACCESS_REFUSED (the service fails at start-up)")
    xtype, internal = builtin
    have = {"type": xtype, "durable": True, "auto_delete": False, "internal": internal}
    for fld, value in have.items():
        if fld in decl.fields and fld not in decl.unresolved and decl.fields[fld] != value:
            return (f"built-in exchange '{name}' has {fld} {_show(value)}, the code declares "
                    f"{_show(decl.fields[fld])}; the broker rejects the declare with 406 PRECONDITION_FAILED "
                    f"(inequivalent arg '{fld}'; the service fails at start-up)")
    return None


def _known_name(decl: Declaration) -> str | None:
    name = decl.fields.get("name")
    if isinstance(name, ServerNamed):
        return name.ref
    return name if isinstance(name, str) and "name" not in decl.unresolved else None


def queue_of(decl: Declaration, vhost: str, fill: Queue | None = None) -> Queue:
    """The Queue a declaration declares; unresolved fields from ``fill`` (else the default)."""
    values = {}
    for f in _QUEUE_FIELDS:
        if f in decl.fields and f not in decl.unresolved:
            values[f] = decl.fields[f]
        elif fill is not None:
            values[f] = getattr(fill, f)
    args = dict(decl.fields.get("arguments") or {})
    if fill is not None:
        for k, v in fill.arguments.items():
            if f"arguments.{k}" in decl.unresolved or "arguments" in decl.unresolved:
                args[k] = v
    if decl.server_named:
        values["exclusive"] = True
    return Queue(vhost, _known_name(decl) or "", arguments=Args(args), **values)


def exchange_of(decl: Declaration, vhost: str, fill: Exchange | None = None) -> Exchange:
    values = {}
    for f in _EXCHANGE_FIELDS:
        if f in decl.fields and f not in decl.unresolved:
            values[f] = decl.fields[f]
        elif fill is not None:
            values[f] = getattr(fill, f)
    args = dict(decl.fields.get("arguments") or {})
    if fill is not None:
        for k, v in fill.arguments.items():
            if f"arguments.{k}" in decl.unresolved or "arguments" in decl.unresolved:
                args[k] = v
    return Exchange(vhost, _known_name(decl) or "", arguments=Args(args), **values)


def _unknown_fields(decl: Declaration) -> set[str]:
    return set(decl.unresolved)


def _comparable(paths, a: Declaration, b: Declaration) -> list[str]:
    skip = _unknown_fields(a) | _unknown_fields(b)
    out = []
    for p in paths:
        if p in skip or (p.startswith("arguments.") and "arguments" in skip):
            continue
        out.append(p)
    return out


def _value(obj: Any, path: str) -> Any:
    head, _, rest = path.partition(".")
    value = getattr(obj, head)
    if rest:
        return value.get(rest, "(absent)") if hasattr(value, "get") else "(absent)"
    return value


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) and value != "(absent)" else str(value)


def build(declarations: list[Declaration], vhost: str, version: str | None) -> Built:
    from ..routing import Router, RoutingError

    vt = version_tuple(version)
    issues: list[Issue] = []
    conflicts: list[Issue] = []
    entries: dict[tuple, Entry] = {}
    firsts: dict[tuple, Declaration] = {}
    ordered = sorted(declarations, key=lambda d: d.place)

    for decl in ordered:
        for fld, reason in sorted(decl.unresolved.items()):
            issues.append(Issue("unresolved", f"{decl.call}: {fld} is not known statically: {reason}", decl.place,
                                field=fld))

    # ---- exchanges and queues
    for decl in ordered:
        if decl.kind not in (EXCHANGE, QUEUE) or decl.passive:
            continue
        name = _known_name(decl)
        if name is None:
            continue
        if decl.kind == EXCHANGE and (name == "" or name.startswith("amq.")):
            refused = reserved_exchange(decl)
            if refused is not None:
                issues.append(Issue("refused", f"{decl.call}: {refused}", decl.place, field="name"))
            else:
                issues.append(Issue("builtin", f"{decl.call} of built-in exchange '{name}': not written (every "
                                               "broker has it)", decl.place, severity="note"))
            continue
        key = (decl.kind, vhost, name)
        first = firsts.get(key)
        if first is None:
            firsts[key] = decl
            obj = queue_of(decl, vhost) if decl.kind == QUEUE else exchange_of(decl, vhost)
            entry = entries[key] = Entry(obj, [decl.place], server_named=bool(decl.server_named))
            if decl.server_named and not decl.fields.get("exclusive"):
                entry.notes.append("declared non-exclusive; written as a run-time (exclusive) queue")
            for fld, reason in decl.unresolved.items():
                entry.unresolved.setdefault(fld, (reason, decl.place))
            continue
        entry = entries[key]
        entry.places.append(decl.place)
        found = _conflicts(first, decl, vhost, vt)
        at = first.place.exclusive_with(decl.place)
        if at is None:
            conflicts.extend(found)
        else:  # if prod: declare(..., quorum) else: declare(...): one process runs one side
            issues.extend(_branch_issue(c, at) for c in found)
        # a field the first declaration left unresolved, known here: take it
        for fld in list(entry.unresolved):
            if fld not in decl.unresolved and fld in decl.fields:
                entry.obj = entry.obj.replace(**{fld: decl.fields[fld]})
                del entry.unresolved[fld]

    # ---- bindings
    bindings: dict[tuple, Binding] = {}
    binding_places: dict[tuple, list[Place]] = {}
    for decl in ordered:
        if decl.kind != BINDING:
            continue
        if decl.unresolved:  # reported once, as unresolved
            continue
        f = decl.fields
        source, dest, key = f.get("source"), _name(f.get("destination")), _name(f.get("routing_key"))
        dtype = f.get("destination_type", "queue")
        if source == "":
            issues.append(Issue("default-exchange-bind", f"{decl.call}: binding to the default exchange is refused "
                                                        "by the broker (403 ACCESS_REFUSED)", decl.place,
                                severity="warning"))
            continue
        missing = []
        if ("exchange", vhost, source) not in entries and source not in BUILTIN_EXCHANGES:
            missing.append(f"exchange '{source}'")
        if (("queue" if dtype == "queue" else "exchange"), vhost, dest) not in entries:
            missing.append(f"{dtype} '{dest}'")
        if missing:
            issues.append(Issue("not-declared", f"{decl.call}: binding {source} -> {dest} [{key}] not written: "
                                                f"{' and '.join(missing)} not declared by the scanned code",
                                decl.place, severity="note"))
            continue
        b = Binding(vhost, source, dest, dtype, key, Args(f.get("arguments") or {}))
        bindings.setdefault(b.key, b)
        binding_places.setdefault(b.key, []).append(decl.place)

    resources = [e.obj for e in entries.values()] + list(bindings.values())
    topology = Topology.build(resources)

    # ---- route tests from publishes
    router = Router(topology, version=version or "3.10")
    tests: list[RouteTest] = []
    test_places: dict[int, list[Place]] = {}
    seen: dict[tuple, int] = {}
    for decl in ordered:
        if decl.kind != PUBLISH:
            continue
        if decl.unresolved:  # reported once, as unresolved
            continue
        exchange, key = decl.fields.get("exchange"), _name(decl.fields.get("routing_key"))
        x = topology.exchange(vhost, exchange) if exchange else None
        if exchange and x is None:
            issues.append(Issue("no-test", f"{decl.call}: no route test: exchange '{exchange}' is not declared by "
                                           "the scanned code", decl.place, severity="note"))
            continue
        if x is not None and x.type == "headers":
            issues.append(Issue("no-test", f"{decl.call}: no route test: '{exchange}' is a headers exchange and "
                                           "the scan does not read message headers", decl.place, severity="note"))
            continue
        if (exchange, key) in seen:
            test_places[seen[(exchange, key)]].append(decl.place)
            continue
        try:
            result = router.route(vhost, exchange, key)
        except RoutingError as exc:
            issues.append(Issue("no-test", f"{decl.call}: no route test: {exc.message}", decl.place, severity="note"))
            continue
        seen[(exchange, key)] = len(tests)
        test = RouteTest(vhost=vhost, exchange=exchange, routing_key=key, expect=tuple(result.queues),
                         name=f"publish at {decl.place}")
        tests.append(test)
        test_places[len(tests) - 1] = [decl.place]
    topology = Topology.build(resources, tests=tests)
    return Built(topology, entries, binding_places, test_places, issues, conflicts)


def _branch_issue(conflict: Issue, at: tuple) -> Issue:
    """A conflict between the two sides of one ``if``: a warning, since one process runs one side;
    two processes that take different sides against one broker still conflict."""
    where = f"{conflict.place.path}:{at[0]}"
    message = (conflict.message.replace(" is declared differently at ", " is declared differently on the two "
                                        f"sides of the if at {where}: ", 1)
               + f"; one process runs one side, but two that take different sides conflict on one broker, and "
                 f"the topology takes {conflict.place.described}")
    return dataclasses.replace(conflict, code="conditional-declaration", message=message, severity="warning")


def _first_reason(decl: Declaration) -> str:
    fld, reason = sorted(decl.unresolved.items())[0]
    return f"{fld}: {reason}"


def _conflicts(first: Declaration, other: Declaration, vhost: str, vt) -> list[Issue]:
    kind = first.kind
    if kind == QUEUE:
        a, b = queue_of(first, vhost), queue_of(other, vhost)
        if a == b:
            return []
        paths = [d.path for d in field_diffs(normalize_queue(a), normalize_queue(b))]
        qa, qb = effective_queue_type(a), effective_queue_type(b)
    else:
        a, b = exchange_of(first, vhost), exchange_of(other, vhost)
        if a == b:
            return []
        paths = [d.path for d in field_diffs(a, b)]
        qa = qb = None
    out = []
    for path in _comparable(paths, first, other):
        rule = rule_for(kind, path, qa, vt)
        reverse = rule_for(kind, path, qb, vt)
        text = verdict_text(rule.verdict, kind)
        if reverse.verdict != rule.verdict:
            text += f"; if {other.place.described} starts first: {verdict_text(reverse.verdict, kind)}"
        na, nb = normalize_queue(a) if kind == QUEUE else a, normalize_queue(b) if kind == QUEUE else b
        message = (f"{kind} '{_known_name(first)}' is declared differently at {first.place.described} and "
                   f"{other.place.described}: "
                   f"{path} {_show(_value(na, path))} vs {_show(_value(nb, path))}; {text}")
        out.append(Issue("conflict", message, first.place, severity="error", other=other.place, field=path,
                         verdict=rule.verdict))
    return out


# What validate says of the scanned topology that the scan reports at the code: every error (a
# declare the broker refuses: a quorum queue not durable, x-max-priority on quorum, a negative
# TTL, ...) and these warnings, the mistakes the broker takes without a word.
_CODE_WARNINGS = frozenset({"suspicious-binding-key", "unknown-argument", "overflow-not-for-queue-type",
                            "dead-letter-strategy-ineffective", "topic-key-too-many-hashes"})


def broker_refusals(built: Built, vhost: str, version: str | None) -> list[Issue]:
    """Validate's findings on the topology the scan writes, each at the code that declares the
    object (its first place). An object with an unresolved field is left out: it is written with
    defaults, which the code may not use.

    The topology goes to the loader as YAML of one line per object in JSON's syntax (a flow
    mapping: the YAML the loader reads, at a fraction of the block style's cost), so that the line
    of a finding names its object; an object JSON would not carry exactly is written by the
    block-style dumper instead."""
    import bisect

    from ..load import load_text

    from .emit import _key

    lines = ["version: 1", "vhosts:", f"  {_flow(vhost) or _key(vhost)}:"]
    spans: list[tuple[int, list]] = []

    def add(key, value, places, indent: int, item: bool = False) -> None:
        spans.append((len(lines) + 1, places))
        pad = " " * indent
        text = _flow(value)
        key_text = _flow(key) if key is not None else None
        if text is not None and (key is None or key_text is not None):
            lines.append(f"{pad}- {text}" if item else f"{pad}{key_text}: {text}")
            return
        block = dump._yaml_document([value] if item else {key: value}).rstrip("\n").split("\n")
        lines.extend(pad + line for line in block)

    topology = built.topology
    exchanges = [x for x in topology.exchanges.values() if x.vhost == vhost]
    queues = [q for q in topology.queues.values() if q.vhost == vhost]
    bindings = [b for b in topology.bindings if b.vhost == vhost]
    if exchanges:
        lines.append("    exchanges:")
        for x in exchanges:
            entry = built.entries[x.key]
            add(x.name, {"type": x.type, "durable": x.durable, "auto_delete": x.auto_delete, "internal": x.internal,
                         "arguments": thaw(x.arguments)}, None if entry.unresolved else entry.places, 6)
    if queues:
        lines.append("    queues:")
        for q in queues:
            entry = built.entries[q.key]
            add(q.name, {"durable": q.durable, "exclusive": q.exclusive, "auto_delete": q.auto_delete,
                         "arguments": thaw(q.arguments)}, None if entry.unresolved else entry.places, 6)
    if bindings:
        lines.append("    bindings:")
        for b in bindings:
            add(None, {"source": b.source, "destination": b.destination, "destination_type": b.destination_type,
                       "routing_key": b.routing_key, "arguments": thaw(b.arguments)},
                built.binding_places.get(b.key, []), 6, item=True)
    if not (exchanges or queues or bindings):
        return []
    loaded = load_text("\n".join(lines) + "\n", "<scan>", target=version)
    starts = [line for line, _ in spans]
    out = []
    for finding in loaded.findings:
        if finding.position is None or not (finding.is_error or finding.code in _CODE_WARNINGS):
            continue
        at = bisect.bisect_right(starts, finding.position.line) - 1
        places = spans[at][1] if at >= 0 else None
        if not places:
            continue
        message = finding.message + (f" ({finding.hint})" if finding.hint else "")
        out.append(Issue(finding.code, message, min(places)))
    return out


# characters YAML reads otherwise than JSON writes them inside a double-quoted string: line
# breaks of YAML 1.1 (folded to a space) and the byte-order mark
_NOT_FLOW = re.compile("[\x85\u2028\u2029\ufeff]")


def _flow(value: Any) -> str | None:
    """``value`` as one line of JSON that YAML reads back as the same value, or None."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False) if _floats_ok(value) else None
    if text is None or _NOT_FLOW.search(text):
        return None
    return text


def _floats_ok(value: Any) -> bool:
    """JSON writes 1e+20 for a float YAML 1.1 reads only with a dot (else a string)."""
    if isinstance(value, float):
        return value == value and "." in json.dumps(value) if abs(value) != float("inf") else False
    if isinstance(value, dict):
        return all(_floats_ok(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_floats_ok(v) for v in value)
    return True
