"""The few lines the core pipeline calls: plan, live read and execute hooks for the config kinds.

Kept here so the shared modules (planner, broker.live, apply.executor) only call one
function each.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from ..errors import TopoformError
from .load import EMPTY, ConfigState


def plan_hook(changes, unmanaged, desired: ConfigState | None, live_state, vhosts, options, connected_user,
              want_topology, have_topology):
    """The core plan's changes and unmanaged objects, plus the config kinds' (pure)."""
    from . import live as config_live
    from .plan import plan_config

    desired = desired or EMPTY
    live = getattr(live_state, "config", None) or EMPTY
    streams = config_live.super_streams(have_topology, vhosts)
    if streams:
        live = replace(live, objects={**live.objects, **streams})
    # the objects that make up super streams (the broker's or the files') are planned as one super_stream
    parts = _stream_parts(have_topology, list(streams.values()) + [
        o for o in desired.objects.values() if o.kind == "super_stream"])
    if parts:
        changes = [c for c in changes if (c.kind, c.vhost, _raw_name(c.subject)) not in parts]
        unmanaged = [r for r in unmanaged if (r.kind, r.vhost, _raw_name(r)) not in parts]
    counts: dict[str, int] = {}
    for q in want_topology.queues.values():
        if not q.exclusive:
            counts[q.vhost] = counts.get(q.vhost, 0) + 1
    for o in desired.objects.values():  # a super stream's partitions are queues too
        if o.kind == "super_stream" and o.vhost in set(vhosts):
            n = o.fields.get("partitions") if "partitions" in o.fields else len(o.fields.get("binding_keys") or ())
            counts[o.vhost] = counts.get(o.vhost, 0) + (n if isinstance(n, int) else 0)
    more, more_unmanaged, problems = plan_config(
        desired, live, vhosts, prune=options.prune, prune_users=getattr(options, "prune_users", False),
        connected_user=connected_user, queue_counts=counts)
    if problems:
        hints = (["connect as an administrator"] if any(p.startswith("cannot read") for p in problems) else []) + \
            (["enable the plugin (rabbitmq-plugins enable ...)"] if any("plugin" in p for p in problems) else [])
        raise TopoformError("cannot plan: " + "; ".join(problems), code="config-unreadable",
                            hint=", or ".join(hints))
    return list(changes) + more, list(unmanaged) + more_unmanaged


def _raw_name(r) -> str:
    if getattr(r, "kind", "") == "binding":
        return r.source
    return getattr(r, "name", "")


def _stream_parts(topology, streams: Iterable) -> set:
    """``(kind, vhost, name)`` of every exchange, queue and binding (by source) that belongs to a super stream."""
    out = set()
    for s in streams:
        out.add(("exchange", s.vhost, s.name))
        out.add(("binding", s.vhost, s.name))
        if "partitions" in s.fields:
            keys = [str(i) for i in range(s.fields["partitions"])]
        else:
            keys = list(s.fields.get("binding_keys") or ())
        for k in keys:
            out.add(("queue", s.vhost, f"{s.name}-{k}"))
        for b in topology.bindings_from(s.vhost, s.name):
            out.add(("queue", s.vhost, b.destination))
    return out


def read_live_config(client, vhosts: Iterable[str]):
    from .live import read_broker

    return read_broker(client, vhosts)


def live_fingerprint(topology_fingerprint: str, config) -> str:
    """The live state's fingerprint: the topology's alone (an administrator and a monitoring user read
    the same one). A saved plan adds the config objects it was based on (:func:`seal`), which
    ``apply PLANFILE`` reads again and compares (:func:`saved_plan_fingerprint`)."""
    return topology_fingerprint


def narrow(config, vhosts):
    return config.in_vhosts(vhosts) if config is not None else None


def import_view(topology, config, vhosts):
    """``import --config``: super streams become one object each (their exchange, streams and bindings
    leave the topology), and the config of ``vhosts`` is kept."""
    from dataclasses import replace as _replace

    from ..model import Topology
    from . import live as config_live

    config = config or EMPTY
    streams = config_live.super_streams(topology, vhosts)
    if streams:
        parts = _stream_parts(topology, streams.values())
        keep = [r for r in topology.resources() if (r.kind, r.vhost, _raw_name(r)) not in parts]
        topology = Topology.build(keep, topology.tests)
        config = _replace(config, objects={**config.objects, **streams})
    return topology, config


# ---------------------------------------------------------------------- saved plans: what they were based on
def plan_basis(config, live_state, vhosts, options) -> dict:
    """What of the config kinds a plan was computed from (saved in the plan file as ``config_basis``):
    ``managed``, the ``[kind, vhost or name]`` pairs the files manage in the plan's vhosts (a vhost's
    ``permissions:`` key, each named user, user limit and global parameter); ``all_users`` with
    ``--prune-users`` (every user was compared). What the connected user may not read is never in it:
    the plan refuses to manage that."""
    managed = set()
    keep = set(vhosts)
    for kind, where in (config.managed if config is not None else ()):
        if kind == "super_stream":
            continue  # made of exchanges, streams and bindings: the topology's fingerprint covers them
        if kind in ("user", "user_limit", "global_parameter") or where in keep:
            managed.add((kind, where))
    basis = {"managed": sorted([k, w] for k, w in managed)}
    if getattr(options, "prune_users", False):
        basis["all_users"] = True
    return basis if managed or basis.get("all_users") else {}


def _in_basis(obj, managed: set, all_users: bool) -> bool:
    if obj.kind == "user" and all_users:
        return True
    return (obj.kind, obj.vhost if obj.vhost else obj.name) in managed


def basis_fingerprint(live_config, basis) -> tuple[str, list[str]]:
    """``(digest, unreadable)``: a digest of the live objects the basis covers (their fields, password
    hashes and URIs; ``""`` when there are none), and the kinds of the basis that ``live_config`` could
    not read (then the digest says nothing about them)."""
    import hashlib
    import json

    from ..model import thaw

    if not basis:
        return "", []
    managed = {(k, w) for k, w in basis.get("managed") or ()}
    all_users = bool(basis.get("all_users"))
    kinds = {k for k, _ in managed} | ({"user"} if all_users else set())
    unreadable = sorted(k for k in kinds if k in (getattr(live_config, "unreadable", None) or {}))
    rows = []
    objects = getattr(live_config, "objects", None) or {}
    for key in sorted(objects, key=repr):
        obj = objects[key]
        if not _in_basis(obj, managed, all_users):
            continue
        secrets = {k: [s.plain, s.hash, s.algorithm] for k, s in sorted(obj.secrets.items())}
        rows.append([repr(key), thaw(obj.fields), secrets])
    missing = sorted(getattr(live_config, "missing_plugins", None) or ())
    if not rows and not missing:
        return "", unreadable
    digest = hashlib.sha256(json.dumps([rows, missing], sort_keys=True, default=str).encode()).hexdigest()
    return digest, unreadable


def seal(plan, config, live_state, options):
    """The plan with its basis and a fingerprint over the topology *and* the config objects it was based
    on, so that ``apply PLANFILE`` sees a user's tags or a vhost limit changed behind its back."""
    from dataclasses import replace as _replace

    from .live import combine

    basis = plan_basis(config, live_state, plan.vhosts, options)
    if not basis:
        return plan
    live_config = getattr(live_state, "config", None)
    live_config = live_config.in_vhosts(plan.vhosts) if live_config is not None else None
    digest, _ = basis_fingerprint(live_config, basis)
    return _replace(plan, config_basis=basis, fingerprint=combine(plan.fingerprint, digest))


def saved_plan_fingerprint(saved, live_state) -> str:
    """The fingerprint ``apply PLANFILE`` compares with the saved one: the live topology's, combined with
    the config objects of the plan's basis as read now. Raises StalePlanError when the connected user
    cannot read a kind the plan was based on (it cannot tell whether it changed)."""
    from ..errors import StalePlanError
    from .live import combine

    basis = getattr(saved, "config_basis", None) or {}
    if not basis:
        return live_state.fingerprint
    live_config = getattr(live_state, "config", None) or EMPTY
    digest, unreadable = basis_fingerprint(live_config.in_vhosts(saved.vhosts), basis)
    if unreadable:
        raise StalePlanError(f"the saved plan was based on {', '.join(k + 's' for k in unreadable)}, which this user "
                             "may not read: it cannot tell whether they changed since the plan",
                             hint="apply the plan as the user that made it, or plan again as this one")
    return combine(live_state.fingerprint, digest)
