"""``check-code``: would every declaration in the code succeed on a broker holding the files' topology?

For each declaration the scan found (see :mod:`topoform.scan`), against the topology
loaded from the files, in one vhost:

* an active exchange or queue declare must be *equivalent* to the files' object: the
  differing fields are classified with the rules table (``rules.rule_for``) for the
  target version and the existing object's queue type: ``rejects`` (406 at run time, the
  service crashes), ``locks`` (405) or ``ignores`` (the broker keeps the files' value and
  the code's is silently lost). A declare of an object the files do not have is drift:
  the code would create topology nobody reviews;
* a passive declare (``passive=True``, ``checkQueue``, ``get_queue``) needs the object;
* a bind needs its exchange and destination, and the binding itself in the files (a
  binding to a server-named queue matches the files' binding to an exclusive queue with
  the same key and arguments: any key on a fanout exchange, and the queue's own name
  where the code binds with the broker-given name);
* a consume needs its queue;
* a publish needs its exchange and must reach at least one queue in the files'
  routing (the offline router), unless its line carries ``# topoform: unroutable-ok``.

Values the scan could not resolve are *unchecked*: reported, never failing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Args, Binding, Topology
from ..planner.diff import field_diffs
from ..planner.normalize import effective_queue_type, normalize_queue
from ..planner.rules import IGNORES, LOCKS, REJECTS, rule_for
from ..routing.index import SIMULATED_TYPES
from .model import BINDING, CONSUME, EXCHANGE, PUBLISH, QUEUE, Declaration, ServerNamed
from ..routing.simulate import BUILTIN_EXCHANGES
from .topology import _show, _value, exchange_of, queue_of, reserved_exchange, version_tuple

_EFFECT = {
    REJECTS: "the broker rejects this declare with 406 PRECONDITION_FAILED (the service fails at start-up)",
    LOCKS: "the broker answers 405 RESOURCE_LOCKED",
    IGNORES: "the broker silently ignores the code's value and keeps the files'",
}


@dataclass(frozen=True)
class Disagreement:
    place: object
    kind: str
    name: str
    code: str
    message: str
    field: str | None = None
    verdict: str | None = None
    files_value: object = None
    code_value: object = None

    def format(self) -> str:
        return f"{getattr(self.place, 'described', self.place)}: {self.message}"  # a helper's: (called at ...)

    def to_dict(self) -> dict:
        out = {"place": str(self.place), "path": self.place.path, "line": self.place.line, "kind": self.kind,
               "name": self.name, "code": self.code, "message": self.message, "field": self.field,
               "verdict": self.verdict, "files_value": _json(self.files_value), "code_value": _json(self.code_value)}
        if getattr(self.place, "via", ()):
            out["via"] = list(self.place.via)
        return out


def _json(value):
    if isinstance(value, Args):
        return value.to_dict()
    return value


@dataclass
class CheckResult:
    vhost: str
    disagreements: list[Disagreement] = field(default_factory=list)
    unchecked: list[Disagreement] = field(default_factory=list)
    agreed: int = 0

    @property
    def ok(self) -> bool:
        return not self.disagreements


def _builtin_exchange(name: str) -> bool:
    return name == "" or name in BUILTIN_EXCHANGES


def check(declarations: list[Declaration], files: Topology, vhost: str, version: str | None,
          default_queue_type: str | None = None) -> CheckResult:
    from ..routing import Router, RoutingError

    vt = version_tuple(version)
    out = CheckResult(vhost)
    router = Router(files, version=version or "3.10")

    def bad(decl, kind, name, code, message, **kw):
        out.disagreements.append(Disagreement(decl.place, kind, name, code, message, **kw))

    def unchecked(decl, kind, name, why: str | None = None):
        if why is not None:  # known, but beyond what the offline router simulates
            out.unchecked.append(Disagreement(decl.place, kind, str(name), "unsimulated",
                                              f"{decl.call}: not checked: {why}"))
            return
        fld, reason = sorted(decl.unresolved.items())[0]
        out.unchecked.append(Disagreement(decl.place, kind, str(name), "unresolved",
                                          f"{decl.call}: not checked: {fld} is known only at run time ({reason})",
                                          field=fld))

    # what the scanned code declares itself: a bind to one of these that the files lack is still a
    # disagreement, but the bind works where the code's declare ran first (no 404 to predict)
    declared: dict = {}
    for d in sorted(declarations, key=lambda d: d.place):
        if d.kind in (QUEUE, EXCHANGE) and not d.passive and "name" not in d.unresolved and isinstance(d.name, str):
            declared.setdefault((d.kind, d.name), d.place)

    for decl in sorted(declarations, key=lambda d: d.place):
        before = len(out.disagreements)
        name = decl.fields.get("name")
        if decl.kind == EXCHANGE:
            if "name" in decl.unresolved:
                unchecked(decl, "exchange", "?")
                continue
            if name == "" or (name.startswith("amq.") and not decl.passive):
                refused = reserved_exchange(decl)
                if refused is not None:
                    bad(decl, "exchange", name, "refused", f"{decl.call}: {refused}")
                    continue
                if decl.unresolved:
                    unchecked(decl, "exchange", name)
                    continue
                out.agreed += 1
                continue
            if decl.passive and _builtin_exchange(name):
                out.agreed += 1
                continue
            have = files.exchange(vhost, name)
            if have is None:
                if decl.passive:
                    bad(decl, "exchange", name, "missing", f"{decl.call}: exchange '{name}' is not in the files: "
                        "the passive declare fails with 404 NOT_FOUND")
                else:
                    bad(decl, "exchange", name, "not-in-files", f"{decl.call}: exchange '{name}' is not in the "
                        "files (the code would create it; add it to the files)")
                continue
            if not decl.passive:
                want = exchange_of(decl, vhost, fill=have)
                for d in field_diffs(have, want):
                    rule = rule_for("exchange", d.path, None, vt)
                    bad(decl, "exchange", name, "differs", _differs("exchange", name, d.path, have, want, rule.verdict,
                                                                    decl.call),
                        field=d.path, verdict=rule.verdict, files_value=_value(have, d.path),
                        code_value=_value(want, d.path))
            if decl.unresolved and len(out.disagreements) == before:
                unchecked(decl, "exchange", name)
                continue
        elif decl.kind == QUEUE:
            if decl.server_named:
                out.agreed += 1  # the broker names it: a declare always creates a new queue
                continue
            if "name" in decl.unresolved:
                unchecked(decl, "queue", "?")
                continue
            have = files.queue(vhost, name)
            if have is None:
                if decl.passive:
                    bad(decl, "queue", name, "missing", f"{decl.call}: queue '{name}' is not in the files: the "
                        "passive declare fails with 404 NOT_FOUND")
                else:
                    bad(decl, "queue", name, "not-in-files", f"{decl.call}: queue '{name}' is not in the files "
                        "(the code would create it; add it to the files)")
                continue
            if not decl.passive:
                want = queue_of(decl, vhost, fill=have)
                live = normalize_queue(have, default_queue_type)
                wanted = normalize_queue(want, default_queue_type)
                qtype = effective_queue_type(have, default_queue_type)
                for d in field_diffs(live, wanted):
                    rule = rule_for("queue", d.path, qtype, vt)
                    bad(decl, "queue", name, "differs", _differs("queue", name, d.path, live, wanted, rule.verdict,
                                                                 decl.call, qtype),
                        field=d.path, verdict=rule.verdict, files_value=_value(live, d.path),
                        code_value=_value(wanted, d.path))
            if decl.unresolved and len(out.disagreements) == before:
                unchecked(decl, "queue", name)
                continue
        elif decl.kind == BINDING:
            _check_binding(decl, files, vhost, bad, unchecked, declared)
        elif decl.kind == CONSUME:
            queue = decl.fields.get("queue")
            if "queue" in decl.unresolved:
                unchecked(decl, "queue", "?")
                continue
            if not isinstance(queue, ServerNamed) and files.queue(vhost, queue) is None:
                bad(decl, "queue", queue, "missing", f"{decl.call}: consumes from queue '{queue}', which is not "
                    "in the files (404 NOT_FOUND)")
        elif decl.kind == PUBLISH:
            _check_publish(decl, files, vhost, router, RoutingError, bad, unchecked)
        if len(out.disagreements) == before and not any(u.place == decl.place for u in out.unchecked[-1:]):
            out.agreed += 1
    return out


def _differs(kind: str, name: str, path: str, have, want, verdict: str, call: str, qtype: str | None = None) -> str:
    effect = _EFFECT.get(verdict, f"the broker's verdict: {verdict}")
    if verdict == IGNORES and qtype:
        effect += f" (a {qtype} queue ignores it on redeclare)"
    return (f"{call}: {kind} '{name}' {path}: the files have {_show(_value(have, path))}, the code declares "
            f"{_show(_value(want, path))}; {effect}")


def _missing_for_bind(kind: str, name: str, declared: dict) -> str:
    """Why a bind to ``kind`` ``name`` that the files lack matters."""
    place = declared.get((kind, name))
    if place is not None:
        return f"the code declares it at {place.described}: add it to the files"
    return "the bind fails with 404 NOT_FOUND"


def _check_binding(decl, files: Topology, vhost: str, bad, unchecked, declared: dict) -> None:
    f = decl.fields
    source, dest, dtype = f.get("source"), f.get("destination"), f.get("destination_type", "queue")
    if "source" in decl.unresolved or "destination" in decl.unresolved:
        unchecked(decl, "binding", "?")
        return
    problems = False
    if source == "":
        bad(decl, "binding", f"-> {dest}", "default-exchange", f"{decl.call}: cannot bind to the default exchange "
            "(403 ACCESS_REFUSED)")
        return
    if not _builtin_exchange(source) and files.exchange(vhost, source) is None:
        bad(decl, "binding", source, "missing", f"{decl.call}: exchange '{source}' is not in the files "
            f"({_missing_for_bind(EXCHANGE, source, declared)})")
        problems = True
    runtime = isinstance(dest, ServerNamed)
    if not runtime:
        exists = files.queue(vhost, dest) if dtype == "queue" else files.exchange(vhost, dest)
        if exists is None:
            bad(decl, "binding", dest, "missing", f"{decl.call}: {dtype} '{dest}' is not in the files "
                f"({_missing_for_bind(QUEUE if dtype == 'queue' else EXCHANGE, dest, declared)})")
            problems = True
    if problems:
        return
    if decl.unresolved:
        unchecked(decl, "binding", f"{source} -> {dest.ref if runtime else dest}")
        return
    raw_key = f.get("routing_key")
    key = raw_key.ref if isinstance(raw_key, ServerNamed) else raw_key
    args = Args(f.get("arguments") or {})
    if runtime:
        x = files.exchange(vhost, source)
        fanout = x is not None and x.type == "fanout"

        def same_key(b) -> bool:
            if fanout:  # a fanout exchange ignores binding keys
                return True
            if isinstance(raw_key, ServerNamed):  # bound with the broker-given name: the files' queue's own name
                return b.routing_key == b.destination
            return b.routing_key == key

        found = any(same_key(b) and b.arguments == args and b.destination_type == "queue"
                    and (files.queue(vhost, b.destination) is not None and files.queue(vhost, b.destination).exclusive)
                    for b in files.bindings_from(vhost, source))
    else:
        found = Binding(vhost, source, dest, dtype, key, args) in files.bindings
    if not found:
        shown = f"{source} -> {'a server-named queue' if runtime else dest} [{key}]"
        bad(decl, "binding", shown, "not-in-files", f"{decl.call}: binding {shown} is not in the files "
            "(the code would create it; add it to the files)")


def _unsimulated(files: Topology, vhost: str, exchange: str) -> tuple[str, str] | None:
    """The first exchange a publish to ``exchange`` may pass through (itself, the exchanges bound
    to it, alternate exchanges) whose type the router does not simulate: ``(name, type)``."""
    seen, todo = set(), [exchange]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        x = files.exchange(vhost, name)
        if x is None:
            continue
        if x.type not in SIMULATED_TYPES:
            return name, x.type
        todo += [b.destination for b in files.bindings_from(vhost, name) if b.destination_type == "exchange"]
        if x.alternate_exchange:
            todo.append(x.alternate_exchange)
    return None


def _check_publish(decl, files: Topology, vhost: str, router, RoutingError, bad, unchecked) -> None:  # noqa: N803
    exchange = decl.fields.get("exchange")
    if "exchange" in decl.unresolved:
        unchecked(decl, "publish", "?")
        return
    x = files.exchange(vhost, exchange) if exchange else None
    if exchange and x is None and exchange not in BUILTIN_EXCHANGES:
        bad(decl, "publish", exchange, "missing", f"{decl.call}: publishes to exchange '{exchange}', which is not in "
            "the files (the channel is closed with 404 NOT_FOUND)")
        return
    key = decl.fields.get("routing_key")
    if isinstance(key, ServerNamed):
        return  # a reply to a server-named queue: reaches it at run time
    if "routing_key" in decl.unresolved:
        if x is not None and x.type == "fanout":
            key = ""  # a fanout exchange ignores the key
        else:
            unchecked(decl, "publish", exchange)
            return
    if x is not None and x.type == "headers":
        out_reason = "the scan does not read message headers"
        decl.unresolved.setdefault("headers", out_reason)
        unchecked(decl, "publish", exchange)
        return
    plugin = _unsimulated(files, vhost, exchange) if exchange else None
    if plugin is not None:  # x-delayed-message, x-consistent-hash, ...: the router cannot follow it
        name, xtype = plugin
        unchecked(decl, "publish", exchange, f"exchange '{name}'" + (f" (reached from '{exchange}')"
                  if name != exchange else "") + f" has type '{xtype}', which the route simulator cannot "
                  f"follow (it simulates {', '.join(SIMULATED_TYPES)})")
        return
    try:
        result = router.route(vhost, exchange, key)
    except RoutingError as exc:
        bad(decl, "publish", exchange, "refused", f"{decl.call}: {exc.message}")
        return
    if result.unroutable and not decl.unroutable_ok:
        bad(decl, "publish", exchange or "(default)", "unroutable",
            f"{decl.call}: a message to exchange '{exchange}' with routing key {key!r} reaches no queue in the "
            "files (mark the line '# topoform: unroutable-ok' if that is intended)")
