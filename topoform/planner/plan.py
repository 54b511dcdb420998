"""Plan data: Action, Step, Change, Plan, their summary and (de)serialization.

A Change stays typed until the end: the renderer and the executor are two
interpreters of the same objects, and nothing inspects ``reason`` to decide anything.
Must not import broker, apply or cli.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..model import Args, Binding, Exchange, Policy, Queue, Resource, Vhost, freeze

FORMAT_VERSION = 1


class Action(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    BLOCKED = "blocked"
    MIGRATE = "migrate"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-", "blocked": "!", "migrate": "-/+"}[self.value]


@dataclass(frozen=True)
class Step:
    """One step of a migration: a verb and its parameters (plain, JSON-ready values)."""

    op: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"op": self.op, **dict(self.params)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Step":
        d = dict(d)
        return cls(op=d.pop("op"), params=d)


@dataclass(frozen=True)
class Change:
    """One planned change.

    ``before`` is the object as the broker has it (None for create), ``after`` as the
    files want it (None for delete). ``diff`` lists differing field paths such as
    ``arguments.x-message-ttl``. ``reason`` is for people only.
    """

    action: Action
    kind: str
    vhost: str
    name: str
    before: Resource | None = None
    after: Resource | None = None
    diff: tuple[str, ...] = ()
    reason: str = ""
    steps: tuple[Step, ...] = ()

    @property
    def subject(self) -> Resource:
        return self.after if self.after is not None else self.before  # type: ignore[return-value]

    @property
    def key(self) -> tuple:
        return self.subject.key

    def to_dict(self) -> dict:
        out = {
            "action": self.action.value,
            "kind": self.kind,
            "vhost": self.vhost,
            "name": self.name,
            "before": self.before.to_dict() if self.before is not None else None,
            "after": self.after.to_dict() if self.after is not None else None,
            "diff": list(self.diff),
            "reason": self.reason,
        }
        if self.steps:
            out["steps"] = [s.to_dict() for s in self.steps]
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "Change":
        kind = d["kind"]
        return cls(
            action=Action(d["action"]),
            kind=kind,
            vhost=d["vhost"],
            name=d["name"],
            before=resource_from_dict(kind, d.get("before")),
            after=resource_from_dict(kind, d.get("after")),
            diff=tuple(d.get("diff") or ()),
            reason=d.get("reason") or "",
            steps=tuple(Step.from_dict(s) for s in d.get("steps") or ()),
        )


_RESOURCE_TYPES = {"vhost": Vhost, "exchange": Exchange, "queue": Queue, "binding": Binding, "policy": Policy}


def resource_from_dict(kind: str, d: Mapping | None) -> Resource | None:
    """Rebuild a resource from its ``to_dict()`` form (as saved in a plan file)."""
    if d is None:
        return None
    if kind not in _RESOURCE_TYPES:  # the config kinds of SPEC section 8
        from ..config.model import object_from_dict

        return object_from_dict(kind, d)
    cls = _RESOURCE_TYPES[kind]
    values = dict(d)
    for name in ("arguments", "definition"):
        if name in values:
            values[name] = Args(values[name] or {})
    if kind == "vhost" and values.get("tags") is not None:
        values["tags"] = tuple(values["tags"])
    return cls(**{k: freeze(v) if k not in ("arguments", "definition") else v for k, v in values.items()})


@dataclass(frozen=True)
class Plan:
    """An ordered, immutable list of changes plus what the planner saw.

    ``unmanaged`` lists live objects absent from the files that stay untouched
    (without ``--prune``); ``fingerprint`` identifies the live state the plan was
    computed from, so ``apply PLANFILE`` can refuse a stale plan.
    """

    changes: tuple[Change, ...] = ()
    unmanaged: tuple[Resource, ...] = ()
    fingerprint: str = ""
    vhosts: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    env: str | None = None  # the environment (--env) the plan was made for (SPEC section 9)
    owner: str | None = None  # the files' owner label(s)
    # what of the config kinds the plan was based on (topoform/config/hook.py ``plan_basis``): the
    # fingerprint covers those objects too, and apply PLANFILE reads them again to compare
    config_basis: Mapping[str, Any] = field(default_factory=dict)
    # the broker the plan was read from: management URL (never credentials), cluster name, version;
    # None when it was not made against a broker (``state_file``: made offline from that export)
    broker: Mapping[str, Any] | None = None
    state_file: str | None = None  # the file name of ``plan --state FILE``

    @property
    def summary(self) -> dict[str, int]:
        counts = {a.value: 0 for a in (Action.CREATE, Action.UPDATE, Action.DELETE, Action.MIGRATE, Action.BLOCKED)}
        for c in self.changes:
            counts[c.action.value] += 1
        return counts

    @property
    def blocked(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is Action.BLOCKED)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict:
        """The contract's plan JSON (SPEC section 4) plus ``fingerprint``, ``vhosts``, ``unmanaged``, where
        it was made (``broker`` or ``state_file``) and the ``digest`` of all that (:func:`content_digest`)."""
        doc = {
            "format_version": FORMAT_VERSION,
            "changes": [c.to_dict() for c in self.changes],
            "summary": self.summary,
            "fingerprint": self.fingerprint,
            "vhosts": list(self.vhosts),
            "options": dict(self.options),
            "unmanaged": [{"kind": r.kind, "vhost": r.vhost, "name": r.display_name, "object": r.to_dict()}
                          for r in self.unmanaged],
            **({"env": self.env} if self.env is not None else {}),
            **({"owner": self.owner} if self.owner is not None else {}),
            **({"config_basis": dict(self.config_basis)} if self.config_basis else {}),
            **({"broker": dict(self.broker)} if self.broker is not None else {}),
            **({"state_file": self.state_file} if self.state_file is not None else {}),
        }
        doc["digest"] = content_digest(doc)
        return doc

    @classmethod
    def from_dict(cls, d: Mapping) -> "Plan":
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported plan format_version {d.get('format_version')!r} (expected {FORMAT_VERSION})")
        return cls(
            changes=tuple(Change.from_dict(c) for c in d.get("changes") or ()),
            unmanaged=tuple(resource_from_dict(u["kind"], u["object"]) for u in d.get("unmanaged") or ()),
            fingerprint=d.get("fingerprint") or "",
            vhosts=tuple(d.get("vhosts") or ()),
            options=dict(d.get("options") or {}),
            env=d.get("env"),
            owner=d.get("owner"),
            config_basis=dict(d.get("config_basis") or {}),
            broker=dict(d["broker"]) if isinstance(d.get("broker"), Mapping) else None,
            state_file=d.get("state_file"),
        )


def content_digest(doc: Mapping) -> str:
    """``sha256:HEX`` of the canonical JSON (sorted keys, no spaces, UTF-8) of a plan document without
    its ``digest``: a saved plan whose content no longer gives its digest was changed after it was saved."""
    import hashlib
    import json

    body = {k: v for k, v in doc.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


_ACTIONS = {a.value for a in Action}
_GLOBAL_KINDS = ("user", "user_limit", "global_parameter")  # not in a vhost (``vhost`` is "")


def _delete_allowed(kind: str, options: Mapping) -> bool:
    """Whether a plan made with ``options`` can hold a delete of ``kind``: unmanaged objects with --prune
    (users with --prune-users), everything with destroy; a user's limits the files no longer give, always."""
    if options.get("destroy") or kind in ("user_limit", "global_parameter"):
        return True
    return bool(options.get("prune_users") if kind == "user" else options.get("prune"))


def check_document(d: Mapping) -> None:
    """Raise ValueError (one line, naming the entry) when a plan document is not one topoform writes:
    wrong types, an unknown action, a create or update without ``after``, a delete without ``before``,
    a change outside the plan's vhosts, a delete its options do not allow, a summary that does not
    count the changes."""
    def fail(where: str, what: str):
        raise ValueError(f"{where}: {what}")

    for name, kind in (("changes", list), ("vhosts", list), ("options", dict), ("summary", dict),
                       ("unmanaged", list), ("fingerprint", str)):
        if name in d and not isinstance(d[name], kind):
            fail(name, f"must be a JSON {'array' if kind is list else 'object' if kind is dict else 'string'}")
    vhosts = d.get("vhosts") or []
    if not all(isinstance(v, str) for v in vhosts):
        fail("vhosts", "must be names")
    for field_name in ("env", "owner", "state_file"):
        if d.get(field_name) is not None and not isinstance(d[field_name], str):
            fail(field_name, "must be a string")
    if d.get("broker") is not None and not isinstance(d["broker"], dict):
        fail("broker", "must be a JSON object")
    from ..config.kinds import KINDS

    kinds = set(_RESOURCE_TYPES) | set(KINDS)
    options = d.get("options") or {}
    counts = {a: 0 for a in _ACTIONS}
    for i, c in enumerate(d.get("changes") or ()):
        where = f"changes[{i}]"
        if not isinstance(c, dict):
            fail(where, "must be a JSON object")
        if c.get("action") not in _ACTIONS:
            fail(where, f"unknown action {c.get('action')!r}")
        for key in ("kind", "vhost", "name"):
            if not isinstance(c.get(key), str):
                fail(where, f"'{key}' must be a string")
        for key in ("before", "after"):
            if c.get(key) is not None and not isinstance(c[key], dict):
                fail(where, f"'{key}' must be an object or null")
        if not isinstance(c.get("diff", []), list) or not isinstance(c.get("reason", ""), (str, type(None))):
            fail(where, "'diff' must be a list and 'reason' a string")
        steps = c.get("steps", [])
        if not isinstance(steps, list) or not all(isinstance(s, dict) and isinstance(s.get("op"), str)
                                                  for s in steps):
            fail(where, "'steps' must be a list of objects with an 'op'")
        if c["kind"] not in kinds:
            fail(where, f"unknown kind {c['kind']!r}")
        action = c["action"]
        if action in ("create", "update", "migrate") and c.get("after") is None:
            fail(where, f"a {action} without 'after'")
        if action in ("update", "delete") and c.get("before") is None:
            fail(where, f"a{'n' if action == 'update' else ''} {action} without 'before'")
        if action == "blocked" and c.get("before") is None and c.get("after") is None:
            fail(where, "a blocked change without 'before' or 'after'")
        if c["kind"] not in _GLOBAL_KINDS and c["vhost"] not in vhosts:
            fail(where, f"vhost {c['vhost']!r} is not one of the plan's vhosts")
        if action == "delete" and not _delete_allowed(c["kind"], options):
            flag = "--prune-users" if c["kind"] == "user" else "--prune"
            fail(where, f"a delete in a plan made without {flag}")
        counts[action] += 1
    if "summary" in d and {k: d["summary"].get(k) for k in counts} != counts:
        fail("summary", "does not count the plan's changes")


def count_changes(changes: Iterable[Change]) -> dict[str, int]:
    return Plan(changes=tuple(changes)).summary


# ---------------------------------------------------------------------- ordering (DESIGN "Ordering")
# Creates and updates first, parents before children; then migrations; then deletes,
# children before parents. A blocked change sits where its unblocked form would run.
# The config kinds (topoform/config/, SPEC section 8) sit where their dependencies need them:
# users before permissions, exchanges before topic permissions, federation upstreams before
# the policies that use them, shovels and tighter vhost limits after the queues.
PHASES: tuple[tuple[str, str], ...] = (
    ("apply", "vhost"),
    ("apply", "user"),
    ("apply", "user_limit"),
    ("apply", "permission"),
    ("apply", "global_parameter"),
    ("apply", "vhost_limit_early"),
    ("apply", "federation_upstream"),
    ("apply", "federation_upstream_set"),
    ("apply", "policy"),
    ("apply", "operator_policy"),
    ("apply", "exchange"),
    ("apply", "topic_permission"),
    ("apply", "queue"),
    ("apply", "binding"),
    ("apply", "super_stream"),
    ("apply", "shovel"),
    ("apply", "vhost_limit"),
    ("migrate", "*"),
    ("delete", "shovel"),
    ("delete", "vhost_limit"),
    ("delete", "super_stream"),
    ("delete", "binding"),
    ("delete", "queue"),
    ("delete", "topic_permission"),
    ("delete", "exchange"),
    ("delete", "operator_policy"),
    ("delete", "policy"),
    ("delete", "federation_upstream_set"),
    ("delete", "federation_upstream"),
    ("delete", "global_parameter"),
    ("delete", "permission"),
    ("delete", "user_limit"),
    ("delete", "user"),
    ("delete", "vhost"),
)
_PHASE_INDEX = {p: i for i, p in enumerate(PHASES)}


def phase_of(change: Change) -> int:
    """The index in :data:`PHASES` of the phase a change runs in."""
    if change.action is Action.MIGRATE:
        return _PHASE_INDEX[("migrate", "*")]
    deleting = change.action is Action.DELETE or (change.action is Action.BLOCKED and change.after is None)
    kind = change.kind if deleting else getattr(change.subject, "phase_kind", change.kind)  # config: early limits
    return _PHASE_INDEX[("delete" if deleting else "apply", kind)]


def sort_key(change: Change) -> tuple:
    """Phase, then vhost, then the displayed name, then the full identity (deterministic)."""
    return (phase_of(change), change.vhost, change.name, repr(change.key))


def order_changes(changes: Iterable[Change]) -> tuple[Change, ...]:
    """Changes in execution order: phases, sorted by identity within a phase."""
    return tuple(sorted(changes, key=sort_key))
