"""``topoform upgrade-check``: what would break or behave differently on another RabbitMQ version.

Pure logic: a :class:`~topoform.broker.live.LiveState` (the broker or a definitions
export) and/or the Topology of the files, the version they run on now and a target
version -> a :class:`Report` of :class:`UpgradeFinding` objects. No I/O: the CLI
(``cli/upgrade_check.py``) reads the broker, ``GET /api/deprecated-features/used`` and
the files and passes them in.

The checks are driven by the rows of :data:`topoform.versions.BEHAVIOURS` and the
argument / policy-key table of :mod:`topoform.arguments` (which rows refuse or
deprecate which argument), so a new row or table entry is picked up here: see
:data:`CHECKS` (row keys -> the check that reads them) and :data:`NOT_CHECKED` (rows
that need no finding, with the reason); a unit test keeps every row in one of the two.

A finding is an ``error`` when the target refuses something in use (the object cannot
be declared or set there), a ``warning`` when the target deprecates it or routes /
behaves differently. Each names the object (vhost, kind, name) and the remedy; for
objects read from the broker the remedy carries the plan ``apply --migrate`` (or an
in-place policy update) would take *now*, on the current version, computed by the
planner from the live state with the fix applied.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

from . import arguments as A
from .model import Args, Policy, Queue, Resource, Topology
from .planner.normalize import effective_queue_type
from .plugins import exchange_type_plugin
from .versions import behaviour, format_version, has, parse_version

if TYPE_CHECKING:  # pragma: no cover
    from .broker.live import LiveState

__all__ = ["FORMAT_VERSION", "UpgradeFinding", "Report", "CHECKS", "NOT_CHECKED", "LOCAL_RULES", "check",
           "check_topology", "check_deprecated_features", "collapse_hashes"]

FORMAT_VERSION = 1
BUILTIN_EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
# exchange types built in from some version on (row of topoform.versions.BEHAVIOURS)
VERSIONED_EXCHANGE_TYPES = {"x-local-random": "local_random_exchange", "x-modulus-hash": "modulus_hash_exchange"}
# built-in exchanges topoform never reads, but bindings from them are read
BUILTIN_EXCHANGES = {"amq.topic": "topic", "amq.headers": "headers", "amq.match": "headers",
                     "amq.direct": "direct", "amq.fanout": "fanout"}

# Rules about versions that are not (yet) rows of versions.BEHAVIOURS: (since, evidence).
LOCAL_RULES = {
    "queue_mode_ignored": ("3.12", "RabbitMQ docs 'Lazy Queues' (rabbitmq.com/docs/lazy-queues): from 3.12 the "
                                   "lazy queue mode is ignored; measured: 4.3.6 accepts x-queue-mode lazy (no 406)"),
}

# deprecated feature (GET /api/deprecated-features/used) -> the row under which it is refused or deprecated
DEPRECATED_FEATURE_ROWS = {
    "classic_queue_mirroring": "ha_policies_refused",
    "queue_master_locator": "queue_master_locator_refused",
    "transient_nonexcl_queues": "transient_nonexcl_deprecated",
}
_LEADER_LOCATOR = {"client-local": "client-local", "min-masters": "balanced", "random": "balanced"}


@dataclass(frozen=True)
class UpgradeFinding:
    """One thing that breaks (``error``) or changes (``warning``) on the target version.

    ``rule`` is the BEHAVIOURS row (or :data:`LOCAL_RULES` key) behind it; ``source`` is
    ``broker``, ``state-file`` or ``files``; ``location`` a ``PATH:LINE:COL`` for files;
    ``plan`` the lines of the plan the remedy would take (empty when it needs none or
    cannot be computed).
    """

    severity: str
    vhost: str
    kind: str
    name: str
    message: str
    remedy: str
    rule: str
    source: str = "broker"
    location: str = ""
    plan: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict:
        return {"severity": self.severity, "vhost": self.vhost, "kind": self.kind, "name": self.name,
                "message": self.message, "remedy": self.remedy, "rule": self.rule, "source": self.source,
                "location": self.location, "plan": list(self.plan)}


@dataclass(frozen=True)
class Report:
    from_version: str | None
    to_version: str
    findings: tuple[UpgradeFinding, ...] = ()
    vhosts: tuple[str, ...] = ()

    @property
    def breaks(self) -> bool:
        return any(f.is_error for f in self.findings)

    @property
    def summary(self) -> dict:
        errors = sum(1 for f in self.findings if f.is_error)
        return {"errors": errors, "warnings": len(self.findings) - errors, "vhosts": len(self.vhosts),
                "breaks": errors > 0}

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "from": self.from_version, "to": self.to_version,
                "vhosts": list(self.vhosts), "findings": [f.to_dict() for f in self.findings],
                "summary": self.summary}


# ---------------------------------------------------------------- context

PlanFn = Callable[[str, Sequence[Resource], Sequence[Resource]], tuple]


@dataclass
class _Ctx:
    topology: Topology
    old: tuple[int, int] | None  # the version it runs on now (None: unknown)
    new: tuple[int, int]
    source: str
    plan: PlanFn  # (vhost, replacements, removals) -> plan lines
    locate: Callable[[tuple], str]
    out: list = field(default_factory=list)

    def changes(self, row: str) -> bool:
        """The row holds on the target but not on the current version (unknown current: assume it changes)."""
        return has(self.new, row) and (self.old is None or not has(self.old, row))

    def add(self, severity: str, r: Resource, message: str, remedy: str, rule: str, plan: tuple = ()) -> None:
        self.out.append(UpgradeFinding(severity=severity, vhost=r.vhost, kind=r.kind, name=r.display_name,
                                       message=message, remedy=remedy, rule=rule, source=self.source,
                                       location=self.locate(r.key), plan=tuple(plan)))

    @property
    def to(self) -> str:
        return format_version(self.new)

    @property
    def live(self) -> bool:
        return self.source != "files"

    def fix_with_plan(self, vhost: str, replace: Sequence[Resource], remove: Sequence[Resource] = ()) -> tuple:
        return self.plan(vhost, replace, remove) if self.live else ()


def _since(row: str) -> str:
    return behaviour(row).since or ""


def _edit(ctx: _Ctx, what: str, flags: str = "") -> str:
    """How to carry out a fix: change the files, then apply with the flags the change needs
    (``--migrate`` recreates queues and exchanges, ``--prune`` deletes what the files no longer hold)."""
    command = f"'topoform apply{' ' + flags if flags else ''}'"
    if ctx.live:
        return f"{what}: change it in the topology files, then run {command}"
    return f"{what}: edit the file, then run {command}"


def qtype_of(topology: Topology, q: Queue) -> str:
    """The type the queue has: ``x-queue-type``, else the vhost's default queue type where it applies."""
    vhost = topology.vhosts.get(("vhost", q.vhost))
    dqt = vhost.default_queue_type if vhost is not None else None
    # only quorum and stream defaults change a declare (3.10 lists an unset default as "undefined")
    return effective_queue_type(q, dqt if dqt in ("quorum", "stream") else None)


def _effective_policy(topology: Topology, q: Queue) -> Policy | None:
    """The policy that applies to a queue: the highest-priority match (RabbitMQ matches the pattern anywhere)."""
    best = None
    for p in topology.policies.values():
        if p.vhost != q.vhost or p.apply_to not in ("queues", "all", f"{qtype_of(topology, q)}_queues"):
            continue
        try:
            if not re.search(p.pattern, q.name):
                continue
        except re.error:
            continue
        if best is None or p.priority > best.priority:
            best = p
    return best


def _as_quorum(q: Queue, version) -> Queue | None:
    """The quorum queue a classic one would become, or None (auto-delete queues cannot be quorum)."""
    if q.auto_delete or q.exclusive:
        return None
    args = {k: v for k, v in q.arguments.items() if k == "x-queue-type" or A.allowed(k, "quorum", version)
            or A.queue_argument(k) is None}
    args["x-queue-type"] = "quorum"
    return q.replace(durable=True, arguments=Args(args))


# ---------------------------------------------------------------- checks, one per row (or table)

def _check_policy_keys(ctx: _Ctx) -> None:
    """Policy keys the target refuses or deprecates (arguments.POLICY_KEYS: ha-*, queue-master-locator)."""
    for p in sorted(ctx.topology.policies.values(), key=lambda p: p.key):
        by_row: dict[tuple[str, str], list[str]] = {}
        for key in p.definition:
            entry = A.policy_key(key)
            if entry is None:
                continue
            if A.refused(entry, ctx.new):
                by_row.setdefault(("error", entry.refused_by), []).append(key)
            elif A.deprecated(entry, ctx.new):
                by_row.setdefault(("warning", entry.deprecated_by), []).append(key)
        for (severity, row), keys in sorted(by_row.items()):
            names = ", ".join(keys)
            if row == "ha_policies_refused":
                _ha_policy(ctx, p, keys)
                continue
            entry = A.policy_key(keys[0])
            fixed = dict(p.definition)
            for k in keys:
                value = fixed.pop(k)
                if k == "queue-master-locator" and isinstance(value, str):
                    fixed["queue-leader-locator"] = _LEADER_LOCATOR.get(value, "balanced")
            verb = "refuses" if severity == "error" else "deprecates"
            ctx.add(severity, p, f"policy key {names}: RabbitMQ {ctx.to} {verb} it ({behaviour(row).description})",
                    _edit(ctx, entry.remedy[0].upper() + entry.remedy[1:]
                          + " (a policy changes in place, no migration)"), row,
                    ctx.fix_with_plan(p.vhost, [p.replace(definition=Args(fixed))]))


def _ha_policy(ctx: _Ctx, p: Policy, keys: list[str]) -> None:
    matched = sorted((q for q in ctx.topology.queues.values()
                      if q.vhost == p.vhost and qtype_of(ctx.topology, q) == "classic"
                      and _effective_policy(ctx.topology, q) == p), key=lambda q: q.name)
    convertible = [(q, _as_quorum(q, ctx.old or ctx.new)) for q in matched]
    quorum = [new for _, new in convertible if new is not None]
    stuck = [q.name for q, new in convertible if new is None]
    rest = {k: v for k, v in p.definition.items() if k not in keys}
    policy_fix: list[Resource] = [p.replace(definition=Args(rest))] if rest else []
    what = "remove the ha-* keys" + (" from the policy" if rest else " (delete the policy)")
    if matched:
        what += (f" and move the {len(matched)} classic queue{'s' if len(matched) != 1 else ''} it mirrors ("
                 f"{', '.join(q.name for q in matched[:8])}{', ...' if len(matched) > 8 else ''}) to quorum "
                 "queues (x-queue-type: quorum, durable)")
    if stuck:
        what += f"; auto-delete queues cannot be quorum queues ({', '.join(stuck)}): keep them classic, unmirrored"
    plan = ctx.fix_with_plan(p.vhost, policy_fix + quorum, [] if rest else [p])
    ctx.add("error", p, f"classic mirrored queue policy ({', '.join(keys)}): RabbitMQ {ctx.to} refuses it "
                        f"(classic queue mirroring was removed in {_since('ha_policies_refused')}; "
                        f"400 not recognised policy settings)",
            _edit(ctx, what[0].upper() + what[1:], "--migrate" + ("" if rest else " --prune")),
            "ha_policies_refused", plan)


def _check_queue_arguments(ctx: _Ctx) -> None:
    """Queue arguments the target refuses or deprecates, or no longer accepts for the queue's type."""
    for q in _queues(ctx):
        qtype = qtype_of(ctx.topology, q)
        for name, value in q.arguments.items():
            entry = A.queue_argument(name)
            if entry is None or (name == "x-queue-version"):
                continue  # x-queue-version: a refused *value*, see _check_queue_version
            if A.refused(entry, ctx.new):
                severity, row, verb = "error", entry.refused_by, "refuses"
            elif A.deprecated(entry, ctx.new):
                severity, row, verb = "warning", entry.deprecated_by, "deprecates"
            elif ctx.old is not None and A.allowed(name, qtype, ctx.old) and not A.allowed(name, qtype, ctx.new):
                ctx.add("error", q, f"argument {name}: a {qtype} queue cannot have it on RabbitMQ {ctx.to} "
                                    "(406 invalid arg)",
                        _edit(ctx, f"Remove {name}", "--migrate"), _TYPE_ROWS.get((name, qtype), "arguments"),
                        ctx.fix_with_plan(q.vhost, [_without(q, name)]))
                continue
            else:
                continue
            fixed = _without(q, name)
            how = f"remove {name}"
            if name == "x-queue-master-locator":
                # the replacement, where the current version accepts it on this queue type
                if A.allowed("x-queue-leader-locator", qtype, ctx.old or ctx.new):
                    new_value = _LEADER_LOCATOR.get(value, "balanced") if isinstance(value, str) else "balanced"
                    fixed = fixed.replace(arguments=Args({**fixed.arguments, "x-queue-leader-locator": new_value}))
                    how = f"replace {name} with x-queue-leader-locator: {new_value}"
                else:
                    how += (f" (x-queue-leader-locator, its replacement, is accepted on {qtype} queues from "
                            f"{A.queue_argument('x-queue-leader-locator').types.get(qtype)})")
            ctx.add(severity, q, f"argument {name}: RabbitMQ {ctx.to} {verb} it ({behaviour(row).description})",
                    _edit(ctx, how[0].upper() + how[1:] + " (the queue is recreated)", "--migrate"), row,
                    ctx.fix_with_plan(q.vhost, [fixed]))


# (argument, queue type) -> the row that says from which version that type accepts it
_TYPE_ROWS = {("x-queue-leader-locator", "classic"): "classic_queue_leader_locator"}


def _without(q: Queue, name: str) -> Queue:
    return q.replace(arguments=Args({k: v for k, v in q.arguments.items() if k != name}))


def _queues(ctx: _Ctx) -> list[Queue]:
    return sorted((q for q in ctx.topology.queues.values() if not q.exclusive), key=lambda q: q.key)


def _check_queue_version(ctx: _Ctx) -> None:
    """x-queue-version: 1 (CQv1) on a classic queue, and the policy key queue-version: 1."""
    row = "queue_version_1_refused"
    if not has(ctx.new, row):
        return
    for q in _queues(ctx):
        if qtype_of(ctx.topology, q) == "classic" and q.arguments.get("x-queue-version") == 1:
            ctx.add("error", q, f"argument x-queue-version: 1: RabbitMQ {ctx.to} refuses it (406 unsupported queue "
                                f"version; classic queues v1 were removed in {_since(row)})",
                    _edit(ctx, "Remove x-queue-version (or set 2) (the queue is recreated)", "--migrate"), row,
                    ctx.fix_with_plan(q.vhost, [_without(q, "x-queue-version")]))
    for p in sorted(ctx.topology.policies.values(), key=lambda p: p.key):
        if p.definition.get("queue-version") == 1:
            rest = {k: v for k, v in p.definition.items() if k != "queue-version"}
            ctx.add("warning", p, f"policy key queue-version: 1 has no effect on RabbitMQ {ctx.to} (classic queues "
                                  f"v1 were removed in {_since(row)}; measured: 4.3.6 accepts the policy)",
                    _edit(ctx, "Remove queue-version from the policy (it changes in place)", "" if rest else "--prune"),
                    row,
                    ctx.fix_with_plan(p.vhost, [p.replace(definition=Args(rest))] if rest else [],
                                      [] if rest else [p]))


def _check_queue_mode(ctx: _Ctx) -> None:
    """x-queue-mode / queue-mode: ignored from 3.12 (LOCAL_RULES)."""
    since = LOCAL_RULES["queue_mode_ignored"][0]
    if ctx.new < parse_version(since) or (ctx.old is not None and ctx.old >= parse_version(since)):
        return
    for q in _queues(ctx):
        if qtype_of(ctx.topology, q) == "classic" and "x-queue-mode" in q.arguments:
            ctx.add("warning", q, f"argument x-queue-mode: {q.arguments['x-queue-mode']} is ignored from RabbitMQ "
                                  f"{since} (classic queues keep messages on disk much as lazy queues did)",
                    "Nothing breaks; remove it when the queue is next recreated", "queue_mode_ignored")
    for p in sorted(ctx.topology.policies.values(), key=lambda p: p.key):
        if "queue-mode" in p.definition:
            ctx.add("warning", p, f"policy key queue-mode is ignored from RabbitMQ {since}",
                    "Nothing breaks; remove the key (a policy changes in place)", "queue_mode_ignored")


def collapse_hashes(key: str) -> str:
    """A topic key with runs of adjacent ``#`` words collapsed to one (``a.#.#.b`` -> ``a.#.b``): it matches
    exactly the same routing keys."""
    words: list[str] = []
    for w in key.split("."):
        if w == "#" and words and words[-1] == "#":
            continue
        words.append(w)
    return ".".join(words)


def _exchange_type(ctx: _Ctx, vhost: str, name: str) -> str | None:
    ex = ctx.topology.exchange(vhost, name)
    return ex.type if ex is not None else BUILTIN_EXCHANGES.get(name)


def _check_topic_keys(ctx: _Ctx) -> None:
    row = "topic_max_two_hash"
    if not has(ctx.new, row):
        return
    for b in sorted(ctx.topology.bindings, key=lambda b: repr(b.key)):
        if "#" not in b.routing_key or b.routing_key.split(".").count("#") <= 2:
            continue
        if _exchange_type(ctx, b.vhost, b.source) != "topic":
            continue
        collapsed = collapse_hashes(b.routing_key)
        if collapsed.split(".").count("#") <= 2:
            how = f"Rebind with the key '{collapsed}' (adjacent '#' words collapsed: it matches the same keys)"
            plan = ctx.fix_with_plan(b.vhost, [b.replace(routing_key=collapsed)], [b])
        else:
            how = ("Rewrite the key with at most two '#' words (it cannot be shortened without changing what it "
                   "matches: check the new key with 'topoform test-route')")
            plan = ()
        ctx.add("error", b, f"topic binding key '{b.routing_key}' has {b.routing_key.split('.').count('#')} '#' "
                            f"words: RabbitMQ {ctx.to} refuses it (406 at most 2 are allowed)",
                _edit(ctx, how, "--prune"), row, plan)


def _check_transient_queues(ctx: _Ctx) -> None:
    row = "transient_nonexcl_deprecated"
    if not has(ctx.new, row):
        return
    for q in _queues(ctx):
        if q.durable or qtype_of(ctx.topology, q) != "classic":
            continue
        ctx.add("warning", q, f"transient non-exclusive queue: RabbitMQ {ctx.to} deprecates it (feature "
                              f"transient_nonexcl_queues, deprecated from {_since(row)}; where the broker denies it "
                              "the declare closes the connection)",
                _edit(ctx, "Make it durable (durable: true; clients must declare it durable too), or exclusive if "
                           "one connection owns it (the queue is recreated)", "--migrate"), row,
                ctx.fix_with_plan(q.vhost, [q.replace(durable=True)]))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_headers_numeric(ctx: _Ctx) -> None:
    row = "headers_numeric_strict"
    if not ctx.changes(row):
        return
    for b in sorted(ctx.topology.bindings, key=lambda b: repr(b.key)):
        if _exchange_type(ctx, b.vhost, b.source) != "headers":
            continue
        ints = [k for k, v in b.arguments.items() if _is_int(v) and not k.startswith("x-")]
        if not ints:
            continue
        ctx.add("warning", b, f"headers binding with integer value{'s' if len(ints) > 1 else ''} "
                              f"({', '.join(f'{k}={b.arguments[k]}' for k in ints)}): from RabbitMQ {_since(row)} an "
                              "integer matches only an integer, so messages that carry the header as a float "
                              f"(for example {b.arguments[ints[0]]}.0) stop matching (on "
                              f"{format_version(ctx.old) if ctx.old else 'older versions'} they match)",
                "Make publishers send the header as an integer, or add a second binding with the float value",
                row)


def _check_exchange_types(ctx: _Ctx) -> None:
    for ex in sorted(ctx.topology.exchanges.values(), key=lambda e: e.key):
        if ex.type in BUILTIN_EXCHANGE_TYPES or ex.is_builtin:
            continue
        row = VERSIONED_EXCHANGE_TYPES.get(ex.type)
        how = "the declare fails with a channel error (406)" if has(ctx.new, "unknown_exchange_type_is_channel_error") \
            else "the declare closes the connection (503)"
        if row is not None:
            if has(ctx.new, row):
                continue
            plugin = exchange_type_plugin(ex.type)
            if plugin:
                ctx.add("warning", ex, f"exchange type {ex.type} is built in only from RabbitMQ {_since(row)}: on "
                                       f"{ctx.to} it needs the {plugin} plugin, or {how}",
                        f"Enable {plugin} on the {ctx.to} broker", row)
            else:
                ctx.add("error", ex, f"exchange type {ex.type} does not exist on RabbitMQ {ctx.to} (built in from "
                                     f"{_since(row)}): {how}",
                        _edit(ctx, "Use another exchange type (the exchange is recreated)", "--migrate"), row)
            continue
        plugin = exchange_type_plugin(ex.type)
        ctx.add("warning", ex, f"exchange type {ex.type} comes from a plugin ({plugin or 'unknown to topoform'}): "
                               f"the target must have a build of it for RabbitMQ {ctx.to} enabled, or {how}",
                f"Install and enable {plugin or 'the plugin'} for {ctx.to} before moving this exchange",
                "unknown_exchange_type_is_channel_error")


def _check_policy_apply_to(ctx: _Ctx) -> None:
    row = "policy_apply_to_queue_types"
    if has(ctx.new, row):
        return
    for p in sorted(ctx.topology.policies.values(), key=lambda p: p.key):
        if p.apply_to in A.APPLY_TO_QUEUE_TYPES:
            ctx.add("error", p, f"apply-to {p.apply_to}: RabbitMQ {ctx.to} refuses it (400; accepted from "
                                f"{_since(row)})",
                    _edit(ctx, "Use apply_to queues with a pattern that matches only those queues"), row)


def _check_quorum_delivery_limit(ctx: _Ctx) -> None:
    row = "quorum_default_delivery_limit"
    if not ctx.changes(row):
        return
    for q in _queues(ctx):
        if qtype_of(ctx.topology, q) != "quorum" or "x-delivery-limit" in q.arguments:
            continue
        p = _effective_policy(ctx.topology, q)
        if p is not None and "delivery-limit" in p.definition:
            continue
        ctx.add("warning", q, f"quorum queue without a delivery limit: from RabbitMQ {_since(row)} it gets "
                              "delivery-limit 20, so a message requeued more than 20 times is dropped (or "
                              "dead-lettered)",
                "Set the limit you want with a policy key delivery-limit (it changes in place, no migration)", row)


def _check_passive_declare(ctx: _Ctx) -> None:
    row = "passive_declare_needs_configure"
    if ctx.changes(row) and ctx.live and ctx.topology.vhost_names():
        ctx.out.append(UpgradeFinding(
            "warning", "", "broker", "permissions",
            f"from RabbitMQ {_since(row)} a passive declare of a queue or exchange needs configure permission on it "
            "(release notes; not re-verified here)",
            "Check that applications which only passively declare have configure permission on those names",
            row, source=ctx.source))


# BEHAVIOURS rows (and LOCAL_RULES keys) -> the check that reads them. Several rows may share a
# table-driven check (the argument table names the rows under which each argument is refused).
CHECKS: tuple[tuple[tuple[str, ...], Callable[[_Ctx], None]], ...] = (
    (("ha_policies_refused",), _check_policy_keys),
    (("queue_master_locator_deprecated", "queue_master_locator_refused", "classic_queue_leader_locator"),
     _check_queue_arguments),
    (("queue_version_1_refused",), _check_queue_version),
    (("queue_mode_ignored",), _check_queue_mode),
    (("topic_max_two_hash",), _check_topic_keys),
    (("transient_nonexcl_deprecated",), _check_transient_queues),
    (("headers_numeric_strict",), _check_headers_numeric),
    (("local_random_exchange", "modulus_hash_exchange", "unknown_exchange_type_is_channel_error"),
     _check_exchange_types),
    (("policy_apply_to_queue_types",), _check_policy_apply_to),
    (("quorum_default_delivery_limit",), _check_quorum_delivery_limit),
    (("passive_declare_needs_configure",), _check_passive_declare),
)

# rows that need no finding: topoform itself handles them, users have nothing to change
NOT_CHECKED = {
    "classic_queue_type_stored": "topoform normalizes the x-queue-type the broker adds; nothing to change",
    "exports_omit_internal_exchanges": "topoform reads internal exchanges from the listing; nothing to change",
    "policies_without_vhost_in_export": "an export-format difference topoform reads either way",
    "definitions_export_cheaper": "topoform picks the cheaper read on each version; nothing to change",
    "vhost_default_queue_type_updatable": "an existing vhost's default queue type becomes changeable; nothing "
                                          "that works stops working (plan blocks a change where it is not)",
    "max_age_compared_as_duration": "equal x-max-age durations become equivalent on redeclare; nothing that "
                                    "works stops working (plan compares them as the broker does)",
}


# ---------------------------------------------------------------- entry points

def _no_plan(vhost, replace, remove) -> tuple:
    return ()


def check_topology(topology: Topology, old, new, *, source: str = "broker", plan: PlanFn | None = None,
                   locate: Callable[[tuple], str] | None = None) -> list[UpgradeFinding]:
    """Every finding for the objects of ``topology``, running on ``old`` (None: unknown), moving to ``new``."""
    ctx = _Ctx(topology=topology, old=None if old is None else parse_version(old, supported_only=False),
               new=parse_version(new), source=source, plan=plan or _no_plan, locate=locate or (lambda key: ""))
    for _rows, fn in CHECKS:
        fn(ctx)
    return ctx.out


def check_deprecated_features(used: Iterable[Mapping], old, new) -> list[UpgradeFinding]:
    """Findings for the rows of ``GET /api/deprecated-features/used`` (4.0+): each feature in use."""
    new_v = parse_version(new)
    out = []
    for row in sorted(used, key=lambda r: str(r.get("name"))):
        name = str(row.get("name", "?"))
        key = DEPRECATED_FEATURE_ROWS.get(name)
        phase = row.get("deprecation_phase") or row.get("phase") or ""
        refused = key is not None and key.endswith("_refused") and has(new_v, key)
        if refused:
            what = f"RabbitMQ {format_version(new_v)} refuses it ({behaviour(key).description})"
        elif key is not None and has(new_v, key):
            what = f"RabbitMQ {format_version(new_v)} deprecates it too"
        elif key is not None:
            continue  # the target has no such restriction (a downgrade): nothing changes
        else:
            what = f"RabbitMQ {format_version(new_v)} may deny or remove it: see its release notes"
        out.append(UpgradeFinding(
            "error" if refused else "warning", "", "deprecated-feature", name,
            f"the broker reports the deprecated feature {name} in use ({phase or 'deprecated'} on "
            f"{format_version(old) if old else 'the current version'}): {what}",
            "Find what uses it (the other findings name the objects topoform can read; exclusive queues and "
            "client connections are not listed) and change it before the upgrade",
            key or "deprecated_features_used", source="broker"))
    return out


_KIND_ORDER = {k: i for i, k in enumerate(("broker", "deprecated-feature", "vhost", "policy", "exchange", "queue",
                                            "binding"))}


def _sort_key(f: UpgradeFinding):
    return (0 if f.is_error else 1, f.source == "files", f.vhost, _KIND_ORDER.get(f.kind, 99), f.name, f.rule)


def check(new, *, live: "LiveState | None" = None, files: Topology | None = None, files_locate=None,
          deprecated_used: Iterable[Mapping] | None = None, plan: PlanFn | None = None) -> Report:
    """The whole report: the live state (or export), the files, and the broker's deprecated features in use.

    ``plan`` computes remedy plans for live objects (see :func:`remedy_planner`); by default one is
    built from ``live``.
    """
    new_text = format_version(parse_version(new))
    old = live.version if live is not None else None
    old_text = format_version(parse_version(old, supported_only=False)) if old else None
    findings: list[UpgradeFinding] = []
    vhosts: set[str] = set()
    if live is not None:
        vhosts.update(live.topology.vhost_names())
        findings += check_topology(live.topology, old, new_text, source=live.source,
                                   plan=plan or remedy_planner(live))
    if files is not None:
        vhosts.update(files.vhost_names())
        findings += check_topology(files, old, new_text, source="files", locate=files_locate)
    if deprecated_used:
        findings += check_deprecated_features(deprecated_used, old, new_text)
    return Report(from_version=old_text, to_version=new_text, findings=tuple(sorted(findings, key=_sort_key)),
                  vhosts=tuple(sorted(vhosts)))


def remedy_planner(live: "LiveState") -> PlanFn:
    """A PlanFn over ``live``: the plan (text lines) that makes one vhost of it into the vhost with
    ``replace`` objects swapped in and ``remove`` objects deleted (``apply --migrate --prune``)."""

    def plan(vhost: str, replace: Sequence[Resource], remove: Sequence[Resource]) -> tuple:
        from .planner import PlanOptions, make_plan
        from .planner.render import render_text

        have = live.topology.in_vhosts([vhost])
        gone = {r.key for r in remove}
        kept = [r for r in have.resources() if r.key not in gone]
        by_key = {r.key: r for r in kept}
        for r in replace:
            by_key[r.key] = r
        desired = Topology.build(list(by_key.values()))
        result = make_plan(desired, live, PlanOptions(prune=bool(remove), migrate=True, vhosts=(vhost,)))
        # only the changes to the objects fixed (the planner may see other differences, e.g. a queue
        # whose stored arguments are ambiguous); its reasons speak of "the files", so only the changes
        # and steps are kept (a blocked change keeps its reason: why the fix cannot be applied as is)
        from .planner.plan import Action

        wanted = {(r.kind, r.display_name) for r in (*replace, *remove)}
        changes = tuple(c if c.action is Action.BLOCKED else dataclasses.replace(c, reason="")
                        for c in result.changes if (c.kind, c.name) in wanted)
        if not changes:
            return ()
        terse = dataclasses.replace(result, unmanaged=(), changes=changes)
        return tuple(line for line in render_text(terse).splitlines() if line.strip())

    return plan


def rows_covered() -> set[str]:
    """Every row key a check reads (for the test that keeps BEHAVIOURS and CHECKS in step)."""
    return {row for rows, _ in CHECKS for row in rows}
