"""Quorum queues on a cluster: health, missing members, leader placement, apply refusals.

Pure functions on the management API's answers (no I/O; :mod:`topoform.broker.cluster_read`
does the reading). What each RabbitMQ version returns (observed on 3.10.8, 4.0.5, 4.3.6):

* ``GET /api/nodes``: ``name``, ``running``, ``mem_alarm``, ``disk_free_alarm`` on every version.
* ``GET /api/queues/VHOST``, a quorum queue: ``members``, ``online`` and ``leader`` on every
  version; ``node`` (the leader) is null on 3.10 and set from 4.0. A stopped node's members
  stay in ``members`` and leave ``online``.
* ``POST /api/queues/quorum/VHOST/NAME/replicas/add`` ``{"node": N}`` adds a member from 4.0
  (204; already a member: 204 too); 3.10 has no such route (405), so there the remedy is the
  command ``rabbitmq-queues add_member``.
* ``GET /api/health/checks/node-is-quorum-critical``: 200 ``{"status": "ok"}`` (a single node
  says ``"reason": "single node cluster"``), 503 ``{"status": "failed", "queues": [...]}`` when
  stopping *that* node (the one answering) would leave a quorum queue without a majority.

The desired group size of a quorum queue is its ``x-quorum-initial-group-size`` argument, or
the broker's default of 3, never more than the cluster's nodes (the broker picks at most that
many at declare time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

DEFAULT_GROUP_SIZE = 3  # the broker's quorum_cluster_size default (3.10 to 4.3)
ADD_MEMBER_SINCE = (4, 0)  # POST /api/queues/quorum/V/N/replicas/add (3.10: 405)
STEP_ADD_MEMBER = "add_member"

__all__ = ["NodeInfo", "QueueReplicas", "ClusterHealth", "parse_nodes", "parse_queues", "desired_size",
           "member_changes", "health_notes", "leader_concentration", "group_size_warnings", "apply_refusals",
           "parse_quorum_critical", "node_endpoints", "assign_endpoints", "split_for_placement"]


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class NodeInfo:
    name: str
    running: bool
    mem_alarm: bool = False
    disk_free_alarm: bool = False

    @property
    def alarms(self) -> tuple[str, ...]:
        return tuple(a for a, on in (("memory", self.mem_alarm), ("disk", self.disk_free_alarm)) if on)


@dataclass(frozen=True)
class QueueReplicas:
    """One quorum queue's replicas as ``GET /api/queues/VHOST`` reports them."""

    vhost: str
    name: str
    members: tuple[str, ...] = ()
    online: tuple[str, ...] = ()
    leader: str | None = None
    group_size: int | None = None  # x-quorum-initial-group-size, when the queue has it

    @property
    def key(self) -> tuple[str, str]:
        return (self.vhost, self.name)

    @property
    def offline(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m not in self.online)


@dataclass(frozen=True)
class ClusterHealth:
    """What the plan and apply know of the cluster. ``critical`` maps a node to the queues
    (vhost, name) that would lose their majority if it stopped; None: not checked."""

    nodes: tuple[NodeInfo, ...] = ()
    queues: Mapping[tuple[str, str], QueueReplicas] = field(default_factory=dict)
    version: tuple[int, ...] = ()
    critical: Mapping[str, tuple[tuple[str, str], ...]] | None = None
    unreachable: tuple[str, ...] = ()  # management endpoints that did not answer the quorum-critical check

    @property
    def is_cluster(self) -> bool:
        return len(self.nodes) > 1

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes if n.running)

    @property
    def down(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes if not n.running)

    @property
    def can_add_members(self) -> bool:
        return tuple(self.version[:2]) >= ADD_MEMBER_SINCE

    def offline(self, q: QueueReplicas) -> tuple[str, ...]:
        """Members not online: as the queue reports it, or on a node ``GET /api/nodes`` says is
        down (the queue listing's statistics lag a few seconds behind a stopped node)."""
        down = set(self.down)
        return tuple(m for m in q.members if m not in q.online or m in down)


# ----------------------------------------------------------------------------- parsing
def _flag(value: Any) -> bool:
    return value is True


def parse_nodes(data: Any) -> tuple[NodeInfo, ...]:
    """``GET /api/nodes`` -> nodes sorted by name (anything malformed is skipped)."""
    out = []
    for item in data if isinstance(data, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        out.append(NodeInfo(item["name"], _flag(item.get("running")), _flag(item.get("mem_alarm")),
                            _flag(item.get("disk_free_alarm"))))
    return tuple(sorted(out, key=lambda n: n.name))


def _names(value: Any) -> tuple[str, ...]:
    return tuple(sorted(v for v in value if isinstance(v, str))) if isinstance(value, list) else ()


def _group_size(arguments: Any) -> int | None:
    value = arguments.get("x-quorum-initial-group-size") if isinstance(arguments, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_queues(data: Any) -> dict[tuple[str, str], QueueReplicas]:
    """``GET /api/queues[/VHOST]`` items -> the quorum queues' replicas, keyed by (vhost, name).

    The leader is ``leader`` (every version) or ``node`` (4.x); classic queues and streams are left out.
    """
    out: dict[tuple[str, str], QueueReplicas] = {}
    for item in data if isinstance(data, list) else ():
        if not isinstance(item, dict) or item.get("type") != "quorum":
            continue
        vhost, name = item.get("vhost"), item.get("name")
        if not isinstance(vhost, str) or not isinstance(name, str):
            continue
        leader = item.get("leader") if isinstance(item.get("leader"), str) else None
        if leader is None and isinstance(item.get("node"), str):
            leader = item["node"]
        out[(vhost, name)] = QueueReplicas(vhost, name, _names(item.get("members")), _names(item.get("online")),
                                           leader, _group_size(item.get("arguments")))
    return out


def parse_quorum_critical(status: int, body: Any) -> tuple[tuple[str, str], ...]:
    """One node's ``GET /api/health/checks/node-is-quorum-critical`` -> the queues it is critical for."""
    if status == 200 or not isinstance(body, dict) or body.get("status") != "failed":
        return ()
    queues = []
    for q in body.get("queues") or ():
        if isinstance(q, dict) and isinstance(q.get("name"), str):
            queues.append((str(q.get("virtual_host", q.get("vhost", ""))), q["name"]))
    return tuple(sorted(set(queues))) or (("", "?"),)


# ----------------------------------------------------------------------------- rules
def desired_size(group_size: int | None, cluster_size: int) -> int:
    """How many members a quorum queue should have on a cluster of ``cluster_size`` nodes."""
    wanted = group_size if group_size else DEFAULT_GROUP_SIZE
    return max(1, min(wanted, cluster_size)) if cluster_size else wanted


def _add_candidates(q: QueueReplicas, health: ClusterHealth) -> tuple[int, tuple[str, ...]]:
    """(members missing, running non-member nodes that could take them, least-loaded first)."""
    missing = desired_size(q.group_size, len(health.nodes)) - len(q.members)
    if missing <= 0:
        return 0, ()
    load = {n: 0 for n in health.running}
    for other in health.queues.values():
        for m in other.members:
            if m in load:
                load[m] += 1
    candidates = sorted((n for n in health.running if n not in q.members), key=lambda n: (load[n], n))
    return missing, tuple(candidates[:missing])


def member_changes(health: ClusterHealth, queues: Mapping[tuple, Any], *, vhosts: Iterable[str] | None = None):
    """Update changes (kind queue, one ``add_member`` step per node) for the managed quorum
    queues that have fewer members than their desired group size, where the broker can add
    members over HTTP (4.0+) and a running non-member node exists. ``queues``: the live
    topology's queues (the changes' before and after)."""
    from .planner.plan import Action, Change, Step

    if not health.can_add_members:
        return []
    wanted = set(vhosts) if vhosts is not None else None
    out = []
    for key in sorted(health.queues):
        q = health.queues[key]
        live = queues.get(key)
        if live is None or (wanted is not None and q.vhost not in wanted):
            continue
        missing, nodes = _add_candidates(q, health)
        if not nodes:
            continue
        size = desired_size(q.group_size, len(health.nodes))
        reason = (f"quorum queue has {len(q.members)} of {size} members ({', '.join(q.members) or 'none'}); "
                  f"apply adds a member on {', '.join(nodes)}")
        out.append(Change(Action.UPDATE, "queue", q.vhost, q.name, before=live, after=live, reason=reason,
                          steps=tuple(Step(STEP_ADD_MEMBER, {"node": n}) for n in nodes)))
    return out


def leader_concentration(health: ClusterHealth, keys: Iterable[tuple[str, str]] | None = None):
    """``(node, leads, total)`` when one node leads more than half of the quorum queues
    (of ``keys``, default all) on a cluster of two or more running nodes; else None."""
    if len(health.running) < 2:
        return None
    chosen = [health.queues[k] for k in (keys if keys is not None else health.queues) if k in health.queues]
    leaders = [q.leader for q in chosen if q.leader]
    if len(leaders) < 2:
        return None
    counts: dict[str, int] = {}
    for leader in leaders:
        counts[leader] = counts.get(leader, 0) + 1
    node, leads = max(sorted(counts.items()), key=lambda kv: kv[1])
    return (node, leads, len(leaders)) if leads * 2 > len(leaders) else None


def health_notes(health: ClusterHealth, *, vhosts: Iterable[str] | None = None) -> list[str]:
    """One line each, for plan and apply: nodes down, alarms, members offline or missing
    (with the command to run where the broker cannot add them over HTTP), leaders
    concentrated on one node, quorum-critical nodes."""
    wanted = set(vhosts) if vhosts is not None else None
    lines: list[str] = []
    if health.down:
        lines.append(f"cluster: node{'s' if len(health.down) > 1 else ''} down: {', '.join(health.down)}")
    for n in health.nodes:
        if n.alarms:
            lines.append(f"cluster: node {n.name} has a {' and a '.join(n.alarms)} alarm: publishers are blocked "
                         "and apply will not start")
    keys = [k for k in sorted(health.queues) if wanted is None or k[0] in wanted]
    for key in keys:
        q = health.queues[key]
        where = f"quorum queue '{q.name}' in vhost '{q.vhost}'"
        offline = health.offline(q)
        if offline:
            lines.append(f"cluster: {where}: {len(offline)} of {len(q.members)} members offline "
                         f"({', '.join(offline)})" + ("" if q.leader else "; it has no leader"))
        missing, nodes = _add_candidates(q, health)
        if missing > 0:
            size = desired_size(q.group_size, len(health.nodes))
            if not nodes:
                lines.append(f"cluster: {where} has {len(q.members)} of {size} members and no running node "
                             "can take another now")
            elif not health.can_add_members:
                cmds = "; ".join(f"rabbitmq-queues add_member -p {_shell(q.vhost)} {_shell(q.name)} {n}"
                                 for n in nodes)
                lines.append(f"cluster: {where} has {len(q.members)} of {size} members; this RabbitMQ version "
                             f"cannot add members over HTTP: run {cmds}")
    top = leader_concentration(health, keys)
    if top is not None:
        node, leads, total = top
        lines.append(f"cluster: {node} leads {leads} of {total} quorum queues (more than half); "
                     "'rabbitmq-queues rebalance quorum' spreads the leaders")
    for node, queues in sorted((health.critical or {}).items()):
        if queues:
            shown = ", ".join(f"'{n}' in vhost '{v}'" if v and not v.startswith("(") else f"'{n}'"
                              for v, n in queues[:3])
            more = f" and {len(queues) - 3} more" if len(queues) > 3 else ""
            lines.append(f"cluster: node {node} is quorum-critical: stopping it would leave {shown}{more} "
                         "without a majority")
    for endpoint in health.unreachable:
        lines.append(f"cluster: {endpoint} did not answer the quorum-critical check")
    return lines


def _shell(word: str) -> str:
    import shlex

    return shlex.quote(word)


def group_size_warnings(queues: Iterable[Any], cluster_size: int) -> list[str]:
    """Desired quorum queues whose ``x-quorum-initial-group-size`` exceeds the cluster."""
    out = []
    if cluster_size < 1:
        return out
    for q in sorted(queues, key=lambda q: (q.vhost, q.name)):
        args = q.arguments or {}
        if args.get("x-queue-type") != "quorum":
            continue
        size = _group_size(dict(args))
        if size is not None and size > cluster_size:
            out.append(f"queue '{q.name}' in vhost '{q.vhost}': x-quorum-initial-group-size {size} is more than "
                       f"the cluster's {cluster_size} node{'s' if cluster_size != 1 else ''}; it gets "
                       f"{cluster_size} member{'s' if cluster_size != 1 else ''}")
    return out


def _is_quorum(obj: Any) -> bool:
    args = getattr(obj, "arguments", None) or {}
    return args.get("x-queue-type") == "quorum"


def apply_refusals(health: ClusterHealth, changes: Sequence[Any]) -> list[str]:
    """Why apply must not start (``--force`` overrides): a resource alarm on any node; a node
    down while the plan deletes, recreates or migrates a quorum queue that has lost members
    (members offline, or fewer than its desired group size)."""
    from .planner.plan import Action

    out = [f"node {n.name} has a {' and a '.join(n.alarms)} alarm" for n in health.nodes if n.alarms]
    if not health.down:
        return out
    for change in changes:
        if change.kind != "queue" or change.action not in (Action.DELETE, Action.MIGRATE):
            continue
        if not _is_quorum(change.before):  # the live queue the change removes (classic -> quorum: not at risk)
            continue
        q = health.queues.get((change.vhost, change.name))
        if q is None:
            continue
        size = desired_size(q.group_size, len(health.nodes))
        lost = health.offline(q)
        if lost or len(q.members) < size:
            verb = "delete" if change.action is Action.DELETE else "recreate (migrate)"
            out.append(f"the plan would {verb} quorum queue '{q.name}' in vhost '{q.vhost}' while node"
                       f"{'s' if len(health.down) > 1 else ''} {', '.join(health.down)} "
                       f"{'are' if len(health.down) > 1 else 'is'} down and it has lost members ("
                       + (f"offline: {', '.join(lost)}" if lost else f"{len(q.members)} of {size}") + ")")
    return out


# ----------------------------------------------------------------------------- placement
def node_endpoints(nodes: Sequence[str], listeners: Any, host: str, port: int,
                   protocol: str = "amqp") -> dict[str, tuple[str, int]]:
    """Each running node's endpoint ``(host, port)`` for ``protocol`` (``amqp``, ``http``) from
    ``GET /api/overview`` ``listeners``, when the nodes can be told apart by port on the host
    of the URL given (several nodes on one host) and ``port`` is one of them. Otherwise {}
    (the caller then uses the list of URLs given, if any)."""
    ports: dict[str, int] = {}
    for item in listeners if isinstance(listeners, list) else ():
        if not isinstance(item, dict) or item.get("protocol") != protocol:
            continue
        node, p = item.get("node"), item.get("port")
        if node in nodes and isinstance(p, int) and node not in ports:
            ports[node] = p
    if len(ports) < 2 or len(set(ports.values())) != len(ports) or port not in ports.values():
        return {}
    return {node: (host, p) for node, p in sorted(ports.items())}


def assign_endpoints(keys: Sequence[tuple], endpoints: int, leaders: Sequence[int] | None = None) -> dict:
    """Spread new quorum queues over ``endpoints`` connections: each goes to the endpoint whose
    node leads the fewest quorum queues so far (``leaders``: the count per endpoint now),
    ties to the lower index. Deterministic; key -> endpoint index."""
    if endpoints < 2:
        return {k: 0 for k in keys}
    load = list(leaders) if leaders is not None and len(leaders) == endpoints else [0] * endpoints
    out = {}
    for key in keys:
        i = min(range(endpoints), key=lambda j: (load[j], j))
        out[key] = i
        load[i] += 1
    return out


def placeable(change: Any) -> bool:
    """A create of a quorum queue (where its declaring connection decides its leader)."""
    from .planner.plan import Action

    return change.action is Action.CREATE and change.kind == "queue" and _is_quorum(change.after) \
        and not getattr(change.after, "exclusive", False)


def split_for_placement(changes: Sequence[Any], assignment: Mapping[tuple, int]):
    """The plan's changes as segments ``[(endpoint index, changes), ...]`` run in order: everything
    up to the queue phase on endpoint 0 (less the quorum creates placed elsewhere), then each
    other endpoint's quorum creates, then the rest on endpoint 0. Order within each is kept."""
    from .planner.plan import phase_of

    moved = {id(c): assignment[(c.vhost, c.name)] for c in changes
             if placeable(c) and assignment.get((c.vhost, c.name), 0) != 0}
    if not moved:
        return [(0, tuple(changes))]
    last = max(phase_of(c) for c in changes if id(c) in moved)
    pre = tuple(c for c in changes if phase_of(c) <= last and id(c) not in moved)
    post = tuple(c for c in changes if phase_of(c) > last)
    segments = [(0, pre)] if pre else []
    for index in sorted(set(moved.values())):
        segments.append((index, tuple(c for c in changes if moved.get(id(c)) == index)))
    if post:
        segments.append((0, post))
    return segments
