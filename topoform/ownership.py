"""Ownership: ``owner``, per-vhost ``owns`` globs and ``external`` objects (SPEC section 9).

Several teams manage one vhost, each from its own file set:

- ``owner: LABEL`` names the file set: plans show it and the apply lock records it.
- ``owns: [GLOB, ...]`` on a vhost: the names this file set manages there. ``plan`` and
  ``--prune`` consider only live objects whose names match (a binding by its
  destination, or by its source when the destination is external); anything else is
  another team's, neither unmanaged nor drift. Declaring an object outside ``owns`` is
  an error.
- ``external: {exchanges: [...], queues: [...]}`` (a name, or ``{name, type}``): objects
  declared by others. Bindings may use them; offline commands treat them as declared;
  ``plan`` checks that they exist with a compatible type (a blocked change with the
  reason otherwise) and never creates, changes or deletes them.
- Two file sets (distinct ``owner`` labels, else directories) that both claim one
  object (declare it, or match it with ``owns``) are an error naming both files.

:func:`map_file` runs while a file is mapped (so external names count as declared for
the reference checks), :func:`collect` at the end of the load; :func:`scope_live` and
:func:`external_changes` are what the planner uses. Pure: no I/O, never prints.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import Finding, Position

__all__ = ["Ownership", "VhostScope", "map_file", "collect", "scope_live", "external_changes", "matches"]


def matches(name: str, globs) -> bool:
    """Whether ``name`` matches one of the ``owns`` globs (``*``, ``?``, ``[...]``; case-sensitive)."""
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


@dataclass(frozen=True)
class VhostScope:
    """One vhost's scope: ``owns`` globs (None: every name) and the external objects (name -> type or None)."""

    owns: tuple[str, ...] | None = None
    external_exchanges: Mapping[str, str | None] = field(default_factory=dict)
    external_queues: Mapping[str, str | None] = field(default_factory=dict)

    def owned(self, name: str) -> bool:
        return self.owns is None or matches(name, self.owns)

    def is_external(self, kind: str, name: str) -> bool:
        if kind == "exchange":
            return name in self.external_exchanges
        if kind == "queue":
            return name in self.external_queues
        return False

    def in_scope(self, resource: Any) -> bool:
        """Whether a live object of this vhost is this file set's to plan (and prune)."""
        kind = resource.kind
        if kind == "vhost":
            return True
        if kind == "binding":
            dest_kind = "exchange" if resource.destination_type == "exchange" else "queue"
            if self.is_external(dest_kind, resource.destination):
                return not self.is_external("exchange", resource.source) and self.owned(resource.source)
            return self.owned(resource.destination)
        if kind in ("exchange", "queue") and self.is_external(kind, resource.name):
            return False
        name = getattr(resource, "name", None)
        return name is None or self.owned(name)


@dataclass(frozen=True)
class Ownership:
    """What the files say about who owns what. ``owner``: the labels, comma-joined (None when none)."""

    owner: str | None = None
    vhosts: Mapping[str, VhostScope] = field(default_factory=dict)

    @property
    def scoped(self) -> bool:
        return any(s.owns is not None or s.external_exchanges or s.external_queues for s in self.vhosts.values())

    def scope(self, vhost: str) -> VhostScope | None:
        return self.vhosts.get(vhost)


# ---------------------------------------------------------------- while loading

@dataclass
class _Part:
    """One file's contribution."""

    identity: str | None  # owner label, else the file's directory; None: takes no part in claims
    label: str | None
    doc: Any
    owns: dict  # vhost -> list of (glob, index)
    external: dict  # vhost -> {"exchanges": {name: (type, path)}, "queues": {...}}
    declared: list  # (kind, vhost, name, path)


def _external_entries(value: Any):
    if not isinstance(value, list):
        return
    for i, item in enumerate(value):
        if isinstance(item, str) and item:
            yield i, item, None
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            t = item.get("type")
            yield i, item["name"], t if isinstance(t, str) else None


def map_file(state: Any, doc: Any, data: dict, bad: set) -> None:
    """Record one file's owner, owns and external; external names count as declared from now on."""
    label = data.get("owner") if isinstance(data.get("owner"), str) else None
    vhosts = data.get("vhosts")
    if label is None and not (isinstance(vhosts, dict) and any(
            isinstance(v, dict) and ("owns" in v or "external" in v) for v in vhosts.values())):
        return  # nothing to say about ownership (the usual case): no cost
    part = _Part(None, label, doc, {}, {}, [])
    if isinstance(vhosts, dict):
        for vname, spec in vhosts.items():
            if not isinstance(spec, dict):
                continue
            owns = spec.get("owns")
            if isinstance(owns, list):
                part.owns[vname] = [(g, i) for i, g in enumerate(owns) if isinstance(g, str) and g]
            ext = spec.get("external")
            if isinstance(ext, dict):
                entry = part.external[vname] = {"exchanges": {}, "queues": {}}
                for kind, known in (("exchanges", state.known_exchanges), ("queues", state.known_queues)):
                    for i, name, typ in _external_entries(ext.get(kind)):
                        entry[kind][name] = (typ, ("vhosts", vname, "external", kind, i))
                        known.add((vname, name))
            for kind, section in (("exchange", "exchanges"), ("queue", "queues"), ("policy", "policies")):
                objs = spec.get(section)
                if isinstance(objs, dict):
                    part.declared.extend((kind, vname, name, ("vhosts", vname, section, name)) for name in objs)
    if label is not None or part.owns:
        part.identity = label or os.path.dirname(os.path.abspath(doc.path))
    if label is not None or part.owns or part.external:
        if not hasattr(state, "owners"):
            state.owners = []
        state.owners.append(part)


def collect(state: Any) -> Ownership | None:
    """The load's Ownership, adding the errors: objects outside ``owns``, bindings out of scope, double claims."""
    parts: list[_Part] = list(getattr(state, "owners", None) or [])
    if not parts:
        return None
    add = state.findings.append
    labels = sorted({p.label for p in parts if p.label})
    # ---- owns per vhost: the union; a vhost where some declaring file has no owns is wholly in scope
    owns: dict[str, set] = {}
    for p in parts:
        for vname, globs in p.owns.items():
            owns.setdefault(vname, set()).update(g for g, _ in globs)
    declared_names = {(k, v, n) for k, v, n in ((key[0], key[1], key[2]) for key in state.locators
                                                 if isinstance(key, tuple) and len(key) == 3)}
    scopes: dict[str, VhostScope] = {}
    vnames = set(owns) | {v for p in parts for v in p.external}
    for vname in vnames:
        ext_x: dict = {}
        ext_q: dict = {}
        for p in parts:
            for name, (typ, _) in p.external.get(vname, {}).get("exchanges", {}).items():
                if ("exchange", vname, name) not in declared_names:
                    ext_x[name] = typ or ext_x.get(name)
            for name, (typ, _) in p.external.get(vname, {}).get("queues", {}).items():
                if ("queue", vname, name) not in declared_names:
                    ext_q[name] = typ or ext_q.get(name)
        scopes[vname] = VhostScope(owns=tuple(sorted(owns[vname])) if vname in owns else None,
                                   external_exchanges=ext_x, external_queues=ext_q)
    # ---- each file's declarations inside its own owns
    for p in parts:
        for kind, vname, name, path in p.declared:
            globs = p.owns.get(vname)
            if globs is not None and not matches(name, [g for g, _ in globs]):
                add(Finding("outside-owns", f"{kind} '{name}' in vhost '{vname}' is outside this file set's owns "
                            f"({', '.join(g for g, _ in globs) or 'nothing'})", position=p.doc.locate(path, True),
                            hint="add a matching glob to owns, or move it to the file set that owns it"))
    by_path = {p.doc.path: p for p in parts}
    for binding, (doc, path, _field) in state.bindings.items():
        p = by_path.get(doc.path)
        scope = scopes.get(binding.vhost)
        if p is None or scope is None or binding.vhost not in p.owns or scope.in_scope(binding):
            continue
        add(Finding("outside-owns", f"binding {binding.source} -> {binding.destination} in vhost '{binding.vhost}' "
                    f"is outside this file set's owns: its destination (or, to an external object, its source) "
                    f"must match {', '.join(g for g, _ in p.owns[binding.vhost])}", position=doc.locate(path)))
    _claims(parts, add)
    return Ownership(owner=", ".join(labels) or None, vhosts=scopes)


def _claims(parts: list[_Part], add) -> None:
    """An object claimed (declared, or matched by owns) by two file sets: one error naming both."""
    claims: dict[tuple, dict] = {}  # (kind, vhost, name) -> identity -> (Position, how)
    for p in parts:
        if p.identity is None:
            continue
        for kind, vname, name, path in p.declared:
            claims.setdefault((kind, vname, name), {}).setdefault(p.identity, (p.doc.locate(path, True), "declares it"))
    for p in parts:
        if p.identity is None:
            continue
        for vname, globs in p.owns.items():
            for (kind, v, name), who in claims.items():
                if v != vname or p.identity in who:
                    continue
                for glob, i in globs:
                    if matches(name, [glob]):
                        who[p.identity] = (p.doc.locate(("vhosts", vname, "owns", i)), f"owns '{glob}'")
                        break
    for (kind, vname, name), who in sorted(claims.items()):
        if len(who) < 2:
            continue
        (a, (pa, ha)), (b, (pb, hb)) = sorted(who.items(), key=lambda kv: _order(kv[1][0]))[:2]
        add(Finding("claimed-twice", f"{kind} '{name}' in vhost '{vname}' is claimed by two file sets: "
                    f"{_who(a)} at {pa} ({ha}) and {_who(b)} at {pb} ({hb})", position=pb,
                    hint="one file set owns it; the other lists it under external"))


def _order(pos: Position) -> tuple:
    return (pos.path, pos.line, pos.col)


def _who(identity: str) -> str:
    return f"'{identity}'" if os.sep not in identity else f"the files in {identity}"


# ---------------------------------------------------------------- planning

def scope_live(topology: Any, ownership: Ownership | None) -> Any:
    """The live topology without what belongs to others (outside owns, or external)."""
    if ownership is None or not ownership.scoped:
        return topology
    from .model import Topology

    def keep(r) -> bool:
        scope = ownership.scope(r.vhost)
        return scope is None or scope.in_scope(r)

    return Topology(vhosts=dict(topology.vhosts),
                    exchanges={k: x for k, x in topology.exchanges.items() if keep(x)},
                    queues={k: q for k, q in topology.queues.items() if keep(q)},
                    bindings=frozenset(b for b in topology.bindings if keep(b)),
                    policies={k: p for k, p in topology.policies.items() if keep(p)},
                    tests=topology.tests)


def external_changes(live_topology: Any, ownership: Ownership | None, vhosts, missing_vhosts=()) -> list:
    """A blocked change for each external object missing on the broker or of another type."""
    if ownership is None:
        return []
    from .model import Exchange, Queue
    from .planner.plan import Action, Change

    out = []
    for vname in sorted(set(vhosts) & set(ownership.vhosts)):
        scope = ownership.vhosts[vname]
        for name, want in sorted(scope.external_exchanges.items()):
            if name == "" or name.startswith("amq."):
                continue
            have = None if vname in missing_vhosts else live_topology.exchange(vname, name)
            placeholder = Exchange(vhost=vname, name=name, type=want or "direct")
            if have is None:
                out.append(Change(Action.BLOCKED, "exchange", vname, name, after=placeholder, diff=("external",),
                                  reason=f"External exchange '{name}' (declared by another file set) does not exist "
                                         f"in vhost '{vname}'; its owner must create it first, and this plan "
                                         f"never creates it."))
            elif want and have.type != want:
                out.append(Change(Action.BLOCKED, "exchange", vname, name, before=have, after=placeholder,
                                  diff=("type",), reason=f"External exchange '{name}' is of type '{have.type}', not "
                                  f"'{want}' as listed under external; this plan never changes it."))
        for name, want in sorted(scope.external_queues.items()):
            have = None if vname in missing_vhosts else live_topology.queue(vname, name)
            args = {"x-queue-type": want} if want else {}
            from .model import Args

            placeholder = Queue(vhost=vname, name=name, durable=True, arguments=Args(args))
            if have is None:
                out.append(Change(Action.BLOCKED, "queue", vname, name, after=placeholder, diff=("external",),
                                  reason=f"External queue '{name}' (declared by another file set) does not exist in "
                                         f"vhost '{vname}'; its owner must create it first, and this plan never "
                                         f"creates it."))
            elif want:
                qtype = have.arguments.get("x-queue-type") or "classic"
                if qtype != want:
                    out.append(Change(Action.BLOCKED, "queue", vname, name, before=have, after=placeholder,
                                      diff=("arguments.x-queue-type",),
                                      reason=f"External queue '{name}' is a {qtype} queue, not {want} as listed "
                                             f"under external; this plan never changes it."))
    return out
