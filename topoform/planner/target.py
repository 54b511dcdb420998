"""``--target KIND:NAME``: narrow a plan to some objects, their bindings and what they need (pure).

A target names a kind (the plan JSON's ``kind``, or the file format's singular/plural
key: ``queue``/``queues``, ``limits`` for both ``vhost_limit`` and ``user_limit``) and a
name glob (``*``, ``?``, ``[...]``, case-sensitive). :func:`narrow_plan` keeps:

1. the changes whose object matches a target (table :data:`NAMES`: which names of an
   object a glob is matched against, e.g. a binding's display name, source or destination);
2. for a targeted queue or exchange, the changes of its bindings; for a targeted user, its
   limits; for a targeted delete, the deletes of what goes with it (table :data:`GOES_WITH`);
3. then, repeatedly, the creates of whatever a kept change needs that does not exist yet
   (table :data:`NEEDS`): the vhost, a binding's source and destination, a topic
   permission's user and exchange, a shovel's queues, a policy's federation upstream, ...

Changes outside the targets (blocked ones too) are dropped, so the narrowed plan's exit
code is its own. A target that matches nothing in the files nor in the plan is a usage
error. The narrowed plan records the targets in ``options["targets"]``.

Must not import broker, apply or cli.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from ..errors import UsageError
from .plan import Action, Change, Plan

__all__ = ["Target", "parse_target", "parse_targets", "narrow_plan", "matches", "KIND_ALIASES", "PLAN_KINDS"]

# The plan JSON's kinds (SPEC sections 4 and 8), in the order usage errors list them.
PLAN_KINDS = ("vhost", "exchange", "queue", "binding", "policy", "user", "user_limit", "permission",
              "topic_permission", "vhost_limit", "operator_policy", "global_parameter", "federation_upstream",
              "federation_upstream_set", "shovel", "super_stream")

# What a user may type -> the plan kinds it means. Singular and plural, '-' for '_'.
KIND_ALIASES: dict[str, tuple[str, ...]] = {}
for _k in PLAN_KINDS:
    KIND_ALIASES[_k] = (_k,)
    KIND_ALIASES[_k + ("es" if _k.endswith("s") else "s")] = (_k,)
KIND_ALIASES.update({
    "policies": ("policy",), "operator_policies": ("operator_policy",),
    "limit": ("vhost_limit", "user_limit"), "limits": ("vhost_limit", "user_limit"),
})


@dataclass(frozen=True)
class Target:
    kinds: tuple[str, ...]
    pattern: str
    text: str  # as typed, for messages and the saved plan

    def matches(self, obj: Any) -> bool:
        return obj.kind in self.kinds and any(fnmatch.fnmatchcase(n, self.pattern) for n in names_of(obj))


def parse_target(text: str) -> Target:
    """``KIND:NAME`` -> Target; a clear UsageError otherwise (listing the valid kinds)."""
    kind, sep, pattern = str(text).partition(":")
    valid = ", ".join(PLAN_KINDS) + " (or their plurals; 'limits' for both limit kinds)"
    if not sep or not kind.strip():
        raise UsageError(f"--target {text!r} is not KIND:NAME (KIND is one of: {valid})")
    key = kind.strip().lower().replace("-", "_")
    if key not in KIND_ALIASES:
        raise UsageError(f"--target {text!r}: unknown kind {kind!r}; valid kinds: {valid}")
    if not pattern:
        raise UsageError(f"--target {text!r} has no NAME (a name or a glob such as 'orders.*')")
    return Target(kinds=KIND_ALIASES[key], pattern=pattern, text=f"{kind}:{pattern}")


def parse_targets(texts: Iterable[str] | None) -> tuple[Target, ...]:
    return tuple(parse_target(t) for t in texts or ())


# ---------------------------------------------------------------------- tables
def _get(obj: Any, name: str, default: Any = None) -> Any:
    fields = getattr(obj, "fields", None)
    if fields is not None:  # a config object
        return fields.get(name, default)
    return getattr(obj, name, default)


def _args(obj: Any, attr: str) -> Mapping:
    value = getattr(obj, attr, None)
    if value is None and getattr(obj, "fields", None) is not None:
        value = obj.fields.get(attr)
    return value or {}


# kind -> the names a target's glob is matched against (besides ``name``)
NAMES: dict[str, Callable[[Any], tuple[str, ...]]] = {
    "binding": lambda b: (b.name, b.source, b.destination),
    "topic_permission": lambda o: (o.name, str(_get(o, "user", "")), str(_get(o, "exchange", ""))),
    "vhost_limit": lambda o: (o.name, o.vhost),  # 'limits:shop' or 'vhost_limit:*'
}


def names_of(obj: Any) -> tuple[str, ...]:
    fn = NAMES.get(obj.kind)
    return fn(obj) if fn else (getattr(obj, "display_name", None) or obj.name,)


Ref = tuple  # (kind, vhost, name): an object another one needs


def _local_vhosts(obj: Any, uri_field: str) -> tuple[str, ...]:
    """The vhosts a shovel's URI points at on this broker: the URI's path, else the shovel's own."""
    uri = _get(obj, uri_field)
    if isinstance(uri, (list, tuple)):
        uri = uri[0] if uri else None
    if isinstance(uri, str) and "://" in uri:
        parts = urlsplit(uri)
        if parts.path not in ("", "/"):
            return (unquote(parts.path[1:]),)
    return (obj.vhost,)


def _shovel_needs(o: Any) -> list[Ref]:
    out: list[Ref] = []
    for side in ("src", "dest"):
        vhosts = _local_vhosts(o, f"{side}-uri")
        for kind in ("queue", "exchange"):
            name = _get(o, f"{side}-{kind}")
            if isinstance(name, str) and name:
                out += [(kind, v, name) for v in vhosts]
    return out


def _policy_needs(o: Any) -> list[Ref]:
    d = _args(o, "definition")
    out: list[Ref] = []
    up = d.get("federation-upstream")
    if isinstance(up, str):
        out.append(("federation_upstream", o.vhost, up))
    upset = d.get("federation-upstream-set")
    if isinstance(upset, str):
        out.append(("federation_upstream", o.vhost, "*") if upset == "all"
                   else ("federation_upstream_set", o.vhost, upset))
    for arg in ("alternate-exchange", "dead-letter-exchange"):
        if isinstance(d.get(arg), str) and d.get(arg):
            out.append(("exchange", o.vhost, d[arg]))
    return out


def _upstream_set_needs(o: Any) -> list[Ref]:
    return [("federation_upstream", o.vhost, m.get("upstream")) for m in _get(o, "upstreams") or ()
            if isinstance(m, Mapping) and isinstance(m.get("upstream"), str)]


def _arg_exchange(arg: str) -> Callable[[Any], list[Ref]]:
    def needs(o: Any) -> list[Ref]:
        value = _args(o, "arguments").get(arg)
        return [("exchange", o.vhost, value)] if isinstance(value, str) and value else []
    return needs


# kind -> what an object of that kind needs to exist first (its vhost is always added for vhost kinds).
# A name '*' means every object of that kind in the vhost.
NEEDS: dict[str, Callable[[Any], list[Ref]]] = {
    "vhost": lambda o: [],
    "exchange": _arg_exchange("alternate-exchange"),
    "queue": _arg_exchange("x-dead-letter-exchange"),
    "binding": lambda b: [("exchange", b.vhost, b.source),
                          ("exchange" if b.destination_type == "exchange" else "queue", b.vhost, b.destination)],
    "policy": _policy_needs,
    "operator_policy": lambda o: [],
    "user": lambda o: [],
    "user_limit": lambda o: [("user", "", o.name)],
    "permission": lambda o: [("user", "", o.name)],
    "topic_permission": lambda o: [("user", "", str(_get(o, "user", ""))),
                                   ("exchange", o.vhost, str(_get(o, "exchange", "")))],
    "vhost_limit": lambda o: [],
    "global_parameter": lambda o: [],
    "federation_upstream": lambda o: [],
    "federation_upstream_set": _upstream_set_needs,
    "shovel": _shovel_needs,
    "super_stream": lambda o: [],
}
GLOBAL_KINDS = frozenset({"user", "user_limit", "global_parameter"})


def _bindings_of(c: Change, others: Iterable[Change]) -> list[Change]:
    o = c.subject
    dest_type = "queue" if c.kind == "queue" else "exchange"
    return [b for b in others if b.kind == "binding" and b.vhost == c.vhost
            and ((c.kind == "exchange" and b.subject.source == o.name)
                 or (b.subject.destination_type == dest_type and b.subject.destination == o.name))]


def _of_user(c: Change, others: Iterable[Change], actions: tuple) -> list[Change]:
    name = c.subject.name
    return [x for x in others if x.action in actions and (
        (x.kind in ("user_limit", "permission") and x.subject.name == name)
        or (x.kind == "topic_permission" and _get(x.subject, "user") == name))]


# kind -> the other changes that go with a targeted change of it ("their bindings", a user's limits;
# for a delete, what the broker drops with it)
GOES_WITH: dict[str, Callable[[Change, tuple], list[Change]]] = {
    "queue": _bindings_of,
    "exchange": _bindings_of,
    "user": lambda c, others: (_of_user(c, others, (Action.DELETE,)) if c.action is Action.DELETE
                               else [x for x in others if x.kind == "user_limit" and x.subject.name == c.subject.name
                                     and x.action is not Action.DELETE]),
}


def _creates(c: Change) -> bool:
    """A change that makes an object exist (a blocked create too: it keeps the narrowed plan blocked)."""
    return c.action is Action.CREATE or (c.action is Action.BLOCKED and c.before is None and c.after is not None)


def needs_of(c: Change) -> list[Ref]:
    """What the object of a change needs to exist first (empty for deletes)."""
    if c.action is Action.DELETE or c.after is None:
        return []
    out = list(NEEDS.get(c.kind, lambda o: [])(c.subject))
    if c.kind not in GLOBAL_KINDS and c.kind != "vhost":
        out.append(("vhost", c.vhost, c.vhost))
    return out


# ---------------------------------------------------------------------- narrowing
def matches(targets: Iterable[Target], obj: Any) -> bool:
    return any(t.matches(obj) for t in targets)


def narrow_plan(plan: Plan, targets: Iterable[Target], *, known: Iterable[Any] = ()) -> Plan:
    """The plan narrowed to ``targets`` (see the module docstring). ``known``: the objects of the files
    (a target that matches one of them but no change is fine: nothing to do)."""
    targets = tuple(targets)
    if not targets:
        return plan
    changes = plan.changes
    known = tuple(known)
    for t in targets:
        if not any(t.matches(c.subject) for c in changes) and not any(t.matches(o) for o in known):
            where = f" of vhost{'s' if len(plan.vhosts) != 1 else ''} {', '.join(plan.vhosts)}" if plan.vhosts else ""
            raise UsageError(f"--target {t.text} matches nothing in the files{where} or the plan")
    creates: dict[tuple, list[int]] = {}
    for i, c in enumerate(changes):
        if _creates(c):
            creates.setdefault((c.kind, c.vhost), []).append(i)
            if c.kind == "super_stream":  # its exchange and partitions are made with it
                creates.setdefault(("exchange", c.vhost), []).append(i)
                creates.setdefault(("queue", c.vhost), []).append(i)

    def providers(ref: Ref) -> list[int]:
        kind, vhost, name = ref
        out = []
        for i in creates.get((kind, vhost), ()):
            c = changes[i]
            if c.kind == "super_stream" and kind in ("exchange", "queue"):
                if name == c.name or (kind == "queue" and name.startswith(c.name + "-")):
                    out.append(i)
            elif name == "*" or c.name == name:
                out.append(i)
        return out

    keep: set[int] = set()
    todo: list[int] = []
    index = {id(c): i for i, c in enumerate(changes)}
    for i, c in enumerate(changes):
        if any(t.matches(c.subject) for t in targets):
            todo.append(i)
            for extra in GOES_WITH.get(c.kind, lambda *_: [])(c, changes):
                todo.append(index[id(extra)])
    while todo:
        i = todo.pop()
        if i in keep:
            continue
        keep.add(i)
        for ref in needs_of(changes[i]):
            todo.extend(j for j in providers(ref) if j not in keep)
        if changes[i].kind == "user" and _creates(changes[i]):  # a new user comes whole: with its limits
            todo.extend(index[id(x)] for x in GOES_WITH["user"](changes[i], changes))
    narrowed = tuple(c for i, c in enumerate(changes) if i in keep)
    unmanaged = tuple(r for r in plan.unmanaged if matches(targets, r))
    options = {**dict(plan.options), "targets": [t.text for t in targets]}
    return replace(plan, changes=narrowed, unmanaged=unmanaged, options=options)  # the plan's own order
