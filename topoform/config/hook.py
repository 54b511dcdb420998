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
    more, more_unmanaged, problems = plan_config(
        desired, live, vhosts, prune=options.prune, prune_users=getattr(options, "prune_users", False),
        connected_user=connected_user, queue_counts=counts)
    if problems:
        raise TopoformError("cannot plan: " + "; ".join(problems), code="config-unreadable",
                            hint="use an administrator, or enable the plugin")
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
    """The live state's fingerprint: the topology's alone. The config kinds stay out, because what a
    user may read of them depends on its tags (an administrator and a monitoring user must see the
    same state), and because their changes are plain PUTs that a stale plan cannot get wrong."""
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
