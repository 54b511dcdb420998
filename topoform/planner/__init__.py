"""The planner: desired and live topologies -> an ordered :class:`~topoform.planner.plan.Plan`.

``make_plan`` is pure: it receives the desired Topology (from the files) and the
LiveState (from the broker or a definitions export) and does no I/O, so every plan
can be computed and rendered offline. Steps (DESIGN "One plan, end to end"):

1. restrict both sides to the managed vhosts (the vhosts the files name, narrowed by
   ``--vhost``);
2. normalize for comparison (``normalize.py``) and diff by key (``diff.py``);
3. classify with the rules table (``rules.py``): creates, in-place updates of policies
   and vhost settings, blocked exchange and queue changes, deletes of unmanaged objects
   only with ``--prune``, blocked when a queue delete would lose messages;
4. with ``--migrate``, hand each blocked exchange or queue change to
   ``migration.expand_migration``; always add ``migration.resume_changes``;
5. order by phases (``plan.order_changes``).

Example::

    >>> plan = make_plan(desired, live, PlanOptions())
    >>> plan.summary
    {'create': 2, 'update': 0, 'delete': 0, 'migrate': 0, 'blocked': 1}

Must not import broker, apply or cli (``LiveState`` is only a type hint here).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Mapping

from .. import versions
from ..model import Args, Binding, Exchange, Queue, Resource, Topology, Vhost
from . import migration
from .diff import Difference, diff_bindings, diff_mappings, field_diffs
from .normalize import (effective_queue_type, normalize_queue, normalize_vhost, queues_equivalent, same_max_age,
                        vhost_defaults)
from .plan import Action, Change, Plan, order_changes
from .rules import classify_change, queue_delete_refusal

if TYPE_CHECKING:  # pragma: no cover
    from ..broker.live import LiveState

__all__ = ["PlanOptions", "make_plan", "managed_vhosts", "dependent_bindings", "is_runtime_queue"]


@dataclass(frozen=True)
class PlanOptions:
    """What the user allowed. ``vhosts`` narrows the managed vhosts (``--vhost``); None = all in the files."""

    prune: bool = False
    migrate: bool = False
    allow_data_loss: bool = False
    force: bool = False
    vhosts: tuple[str, ...] | None = None
    prune_users: bool = False  # delete users not in the files (SPEC section 8)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["vhosts"] = list(self.vhosts) if self.vhosts is not None else None
        if not out["prune_users"]:
            del out["prune_users"]  # shown only when given: plans without users stay as they were
        return out


def managed_vhosts(desired: Topology, options: PlanOptions | None = None) -> list[str]:
    """The vhosts named in the files, narrowed by ``options.vhosts``; sorted."""
    names = set(desired.vhost_names())
    if options is not None and options.vhosts is not None:
        names &= set(options.vhosts)
    return sorted(names)


def is_runtime_queue(queue: Queue) -> bool:
    """Exclusive queues are declared by consumers at run time, never by topoform (SPEC section 2)."""
    return queue.exclusive


def is_never_managed_exchange(exchange: Exchange) -> bool:
    """The default exchange and ``amq.*``: never created, deleted or compared (section 2)."""
    return exchange.is_builtin


def dependent_bindings(topology: Topology, resource: Resource) -> list[Binding]:
    """Bindings that disappear with ``resource``: to a queue; from or to an exchange. Sorted by key."""
    if isinstance(resource, Queue):
        return topology.bindings_to(resource.vhost, "queue", resource.name)
    if isinstance(resource, Exchange):
        found = {b.key: b for b in topology.bindings_from(resource.vhost, resource.name)}
        found.update((b.key, b) for b in topology.bindings_to(resource.vhost, "exchange", resource.name))
        return [found[k] for k in sorted(found, key=repr)]
    return []


def _restrict(topology: Topology, vhosts: list[str]) -> Topology:
    if set(topology.vhost_names()) <= set(vhosts):
        return topology
    return topology.in_vhosts(vhosts)


def make_plan(desired: Topology, live: "LiveState", options: PlanOptions | None = None, *,
              config=None, connected_user: str | None = None, ownership=None) -> Plan:
    """Compute the plan that makes the live broker match the files.

    Args:
        desired: the topology loaded from the files.
        live: the managed vhosts as read from the broker (or a definitions export).
        options: flags; see :class:`PlanOptions`.

    Returns an immutable, ordered Plan. Never raises for a change the broker would
    refuse: such changes are ``blocked`` with a reason, and the rest is still planned.
    """
    options = options or PlanOptions()
    vhosts = managed_vhosts(desired, options)
    want = _restrict(desired, vhosts)
    have = _restrict(live.topology, vhosts)
    fingerprint = live.fingerprint
    if have is not live.topology and hasattr(live, "narrow"):
        fingerprint = live.narrow(vhosts).fingerprint
    if ownership is not None:  # owns / external (topoform/ownership.py): others' objects are out of scope
        from ..ownership import external_changes, scope_live

        scoped_changes = external_changes(have, ownership, vhosts, live.missing_vhosts)
        have = scope_live(have, ownership)
    version = _rules_version(getattr(live, "version", None))
    dqt_updatable = version is None or versions.has(version, "vhost_default_queue_type_updatable")
    defaults = vhost_defaults(want, have, updatable=dqt_updatable)
    stats = live.queue_stats
    source = getattr(live, "source", "broker")

    changes: list[Change] = []
    leftovers: list[Resource] = []  # live-only objects: unmanaged, or deletes with --prune

    # ---- vhosts: create when missing, update managed settings in place
    for name in vhosts:
        wanted_vhost = want.vhosts.get(("vhost", name)) or Vhost(name=name)
        live_vhost = have.vhosts.get(("vhost", name))
        if live_vhost is None or name in live.missing_vhosts:
            changes.append(Change(Action.CREATE, "vhost", name, name, after=wanted_vhost))
            continue
        found = field_diffs(normalize_vhost(live_vhost), normalize_vhost(wanted_vhost), ignore_unset=True)
        if found:
            paths = tuple(f.path for f in found)
            fixed = "default_queue_type" in paths and not dqt_updatable
            changes.append(Change(Action.BLOCKED if fixed else Action.UPDATE, "vhost", name, name, before=live_vhost,
                                  after=wanted_vhost, diff=paths, reason=_fixed_default_reason(live_vhost, version)
                                  if fixed else ""))

    # ---- policies: the broker changes them in place
    for d in diff_mappings("policy", dict(want.policies), dict(have.policies)):
        _classify(d, changes, leftovers, version=version)

    # ---- exchanges (built-ins are never planned)
    wanted_exchanges = {k: e for k, e in want.exchanges.items() if not is_never_managed_exchange(e)}
    live_exchanges = {k: e for k, e in have.exchanges.items() if not is_never_managed_exchange(e)}
    for d in diff_mappings("exchange", wanted_exchanges, live_exchanges):
        _classify(d, changes, leftovers, version=version)

    # ---- queues (exclusive queues in the files are runtime objects: compared only if one exists)
    runtime = {k for k, q in want.queues.items() if is_runtime_queue(q) and k not in have.queues}
    wanted_queues = {k: q for k, q in want.queues.items() if k not in runtime and not q.name.startswith("amq.")}
    live_queues = dict(have.queues)
    if version is None or versions.has(version, "max_age_compared_as_duration"):  # 7D is 168h there
        wanted_queues = {k: same_max_age(q, live_queues[k]) if k in live_queues else q for k, q in wanted_queues.items()}

    def equal(d: Queue, l: Queue) -> bool:
        return queues_equivalent(d, l, defaults.get(d.vhost))

    def fields(l: Queue, d: Queue):
        return field_diffs(normalize_queue(l), normalize_queue(d, defaults.get(d.vhost)))

    for d in diff_mappings("queue", wanted_queues, live_queues, equal=equal, fields=fields):
        if d.desired is not None and d.live is not None:
            # Show the type a declare would really get: in a vhost whose default queue type is
            # quorum, "no x-queue-type" means quorum (section 1.6). Same effect on the broker.
            dqt = defaults.get(d.desired.vhost)
            if "x-queue-type" not in d.desired.arguments and effective_queue_type(d.desired, dqt) != "classic":
                d = replace(d, desired=d.desired.replace(arguments=Args(
                    {**d.desired.arguments, "x-queue-type": effective_queue_type(d.desired, dqt)})))
        _classify(d, changes, leftovers, version=version, queue_type=effective_queue_type(d.live) if d.live else None,
                  default_queue_type=defaults.get(d.desired.vhost) if d.desired else None)
        if d.desired is not None and d.live is not None and "x-queue-type" not in wanted_queues[d.key].arguments:
            _note_default_change(changes, wanted_queues[d.key], d.live, have, defaults)

    # ---- bindings (to runtime queues, or from the default exchange: never planned)
    runtime_names = {(k[1], k[2]) for k in runtime}
    wanted_bindings = [b for b in want.bindings
                       if b.source and not (b.destination_type == "queue" and (b.vhost, b.destination) in runtime_names)]
    for d in diff_bindings(wanted_bindings, have.bindings):
        _classify(d, changes, leftovers, version=version)

    # ---- migrations (owned by planner/migration.py)
    if options.migrate:
        expanded = []
        for change in changes:
            if (change.action is Action.BLOCKED and change.kind in ("exchange", "queue") and change.after is not None
                    and not getattr(change.after, "exclusive", False)):  # runtime queues are not recreated
                change = migration.expand_migration(change, want, have, stats, force=options.force)
            expanded.append(change)
        changes = expanded
    # interrupted migrations found on the broker: finishing them supersedes other changes to
    # the same objects and their bindings (planner/migration.py owns which)
    resumed = migration.resume_changes(want, have, stats)
    busy = {(c.kind, c.vhost, c.name) for c in resumed}

    # ---- live-only objects: listed, or deleted with --prune (queues only when empty)
    unmanaged: list[Resource] = []
    for obj in leftovers:
        # an interrupted migration's temporary objects hold messages: resume_changes handles them
        if (obj.kind, obj.vhost, obj.display_name) in busy or migration.is_migration_artifact(obj):
            continue
        if not options.prune:
            unmanaged.append(obj)
            continue
        if isinstance(obj, Queue):  # the executor's own rule (rules.queue_delete_refusal), so apply never stops halfway
            qstats = stats.get(obj.key)
            why = queue_delete_refusal(obj.name, obj.queue_type, qstats.messages if qstats else None,
                                       qstats.consumers if qstats else None, allow_data_loss=options.allow_data_loss,
                                       force=options.force, source=source)
            if why:
                changes.append(Change(Action.BLOCKED, "queue", obj.vhost, obj.display_name, before=obj, reason=why))
                continue
        changes.append(Change(Action.DELETE, obj.kind, obj.vhost, obj.display_name, before=obj,
                              reason=_delete_reason(obj, stats)))

    if config is not None or getattr(live, "config", None):  # users, permissions, limits, ... (topoform/config/)
        from ..config.hook import plan_hook

        changes, unmanaged = plan_hook(changes, unmanaged, config, live, vhosts, options, connected_user, want, have)
    if resumed:
        changes = list(migration.superseded(changes, resumed)) + list(resumed)
    if ownership is not None:
        changes = list(changes) + scoped_changes
    return Plan(changes=order_changes(changes), unmanaged=tuple(sorted(unmanaged, key=_resource_order)),
                fingerprint=fingerprint, vhosts=tuple(vhosts), options=options.to_dict())


def _rules_version(version: str | None) -> tuple[int, int] | None:
    """The broker's (major, minor) for the rules table; ``None`` (any version) when unknown."""
    if not version:
        return None
    try:
        return versions.parse_version(version, supported_only=False)
    except Exception:  # noqa: BLE001 - unknown: rows that hold on every version
        return None


def _classify(d: Difference, changes: list[Change], leftovers: list[Resource], *, queue_type: str | None = None,
              default_queue_type: str | None = None, version: tuple[int, int] | None = None) -> None:
    subject = d.desired if d.desired is not None else d.live
    name = subject.display_name
    if d.only_desired:
        changes.append(Change(Action.CREATE, d.kind, subject.vhost, name, after=d.desired))
        return
    if d.only_live:
        leftovers.append(d.live)
        return
    paths = tuple(f.path for f in d.fields)
    verdict = classify_change(d.kind, name, paths, queue_type=queue_type, default_queue_type=default_queue_type,
                              version=version)
    action = Action.UPDATE if verdict.action == "update" else Action.BLOCKED
    changes.append(Change(action, d.kind, subject.vhost, name, before=d.live, after=d.desired, diff=paths,
                          reason=verdict.reason))


def _fixed_default_reason(live_vhost: Vhost, version: tuple[int, int] | None) -> str:
    where = f"RabbitMQ {version[0]}.{version[1]}" if version else "This broker"
    has = live_vhost.default_queue_type
    kept = "has none" if has in (None, "", "undefined") else f"keeps {has!r}"
    return (f"{where} sets a vhost's default_queue_type only when it creates the vhost: a change answers 204 "
            f"and the vhost {kept} (from 4.0 it changes in place); write the broker's value in the files (or "
            "leave default_queue_type out), or recreate the vhost.")


def _note_default_change(changes: list[Change], desired: Queue, live: Queue, have: Topology,
                         defaults: Mapping) -> None:
    """A queue blocked on ``x-queue-type`` only because the vhost's default changes in this plan:
    say so, and how to keep the queue's type (existing queues keep theirs)."""
    last = changes[-1] if changes else None
    live_vhost = have.vhosts.get(("vhost", desired.vhost))
    if (last is None or last.action is not Action.BLOCKED or last.kind != "queue" or last.name != desired.display_name
            or "arguments.x-queue-type" not in last.diff or live_vhost is None):
        return
    before = normalize_vhost(live_vhost).default_queue_type
    before = None if before == "undefined" else before
    after = defaults.get(desired.vhost)
    if (before or "classic") == (after or "classic"):
        return
    note = (f" The vhost's default queue type changes from {before or 'none'} to {after or 'none'} in this plan, and an "
            f"existing queue keeps its type: to keep this one as it is, write x-queue-type: "
            f"{effective_queue_type(live)} in the files.")
    changes[-1] = replace(last, reason=last.reason + note)


def _delete_reason(obj: Resource, stats: Mapping) -> str:
    if isinstance(obj, Queue):
        qstats = stats.get(obj.key)
        if qstats is None:
            return "Not in the files; --prune deletes it, with any messages it holds (--allow-data-loss)."
        if qstats.messages:
            n = qstats.messages
            return f"Not in the files; --prune deletes it with its {n} message{'s' if n != 1 else ''} (--allow-data-loss)."
        return "Not in the files; --prune deletes it (it is empty)."
    if isinstance(obj, Exchange):
        return "Not in the files; --prune deletes it (the broker drops its bindings too)."
    return "Not in the files; --prune deletes it."


_KIND_ORDER = {"vhost": 0, "policy": 1, "exchange": 2, "queue": 3, "binding": 4}  # config kinds: 9, by name


def _resource_order(r: Resource) -> tuple:
    return (r.vhost, _KIND_ORDER.get(r.kind, 9), r.display_name, repr(r.key))


def describe_options(options: PlanOptions) -> list[str]:
    """The flags as the user typed them (for messages)."""
    flags: list[str] = []
    for name in ("prune", "migrate", "allow_data_loss", "force", "prune_users"):
        if getattr(options, name):
            flags.append("--" + name.replace("_", "-"))
    return flags

