"""Reads the cluster's state for :mod:`topoform.cluster`: nodes, quorum queue replicas,
quorum-critical nodes, the per-node endpoints; and adds quorum queue members.

Requests (fields per version: :mod:`topoform.cluster`):

* ``GET /api/overview`` (version, listeners), ``GET /api/nodes``;
* ``GET /api/queues/VHOST?columns=...&disable_stats=true`` for each managed vhost (404: the vhost
  does not exist yet). ``disable_stats``: the members from the queue's record, not the statistics
  database, which a member's last emission can set back to the old members for about 5 s after
  ``rabbitmq-queues delete_member`` (seen on the 4.3.6 cluster: 2, then 3 for 5 s, then 2);
* ``GET /api/health/checks/node-is-quorum-critical`` on each node's management listener
  (the check speaks for the node that answers);
* ``POST /api/queues/quorum/VHOST/NAME/replicas/add`` ``{"node": N}`` (4.0+, administrator).

Never raises for a cluster read that fails: health is advice, and the reads that matter
(the topology) report their own errors. Imports nothing from planner, apply or cli.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

from .. import cluster as C
from ..errors import BrokerError
from .http import UNSORTED, ManagementClient
from .settings import BrokerSettings, quote_segment

QUEUE_COLUMNS = "name,vhost,type,members,online,leader,node,arguments"
NODE_COLUMNS = "name,running,mem_alarm,disk_free_alarm"
OVERVIEW_COLUMNS = "rabbitmq_version,node,listeners"  # the whole overview costs ~0.1-0.2 s (object totals)

__all__ = ["read_health", "read_nodes", "amqp_endpoints", "management_endpoints", "add_members", "parse_version"]


def parse_version(text: Any) -> tuple[int, ...]:
    parts = []
    for piece in str(text or "").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _hostport(netloc_host: str, port: int) -> str:
    return f"[{netloc_host}]:{port}" if ":" in netloc_host else f"{netloc_host}:{port}"


def _replace_hostport(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + _hostport(host, port)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _listed_urls(settings: BrokerSettings, name: str) -> list[str]:
    """The endpoint list given with ``--url`` / ``--management-url`` (a cluster), when this
    build's settings carry one; [] otherwise."""
    for attr in (f"{name}s", f"{name}_list"):
        value = getattr(settings, attr, None)
        if isinstance(value, (list, tuple)) and len(value) > 1 and all(isinstance(v, str) for v in value):
            return list(value)
    return []


def amqp_endpoints(settings: BrokerSettings, overview: dict, running: Iterable[str]) -> list[tuple]:
    """``[(settings, node or None), ...]``: one per node to declare quorum queues through
    (index 0: the settings given). A list of ``--url`` endpoints is used as given (nodes
    unknown); one URL on a cluster whose nodes listen on different ports of one host is
    completed from the listeners of ``GET /api/overview``. Otherwise (one URL, a load
    balancer) just that one: no client-side placement.
    """
    listed = _listed_urls(settings, "url")
    mapped = C.node_endpoints(tuple(running), overview.get("listeners"), settings.amqp_host, settings.amqp_port)
    if listed:
        by_port = {port: node for node, (_h, port) in mapped.items()}

        def node_of(url: str):
            try:
                return by_port.get(urlsplit(url).port or 5672)
            except ValueError:
                return None

        return [(settings, node_of(settings.url))] + [(dataclasses.replace(settings, url=u), node_of(u))
                                                      for u in listed if u != settings.url]
    if not mapped:
        return [(settings, None)]
    own = next((node for node, (_h, port) in mapped.items() if port == settings.amqp_port), None)
    out = [(settings, own)]
    for node, (host, port) in mapped.items():
        if port != settings.amqp_port:
            out.append((dataclasses.replace(settings, url=_replace_hostport(settings.url, host, port)), node))
    return out


def management_endpoints(settings: BrokerSettings, overview: dict, running: Iterable[str]) -> list[BrokerSettings]:
    """One settings per node's management listener (index 0: the settings given), as :func:`amqp_endpoints`."""
    listed = _listed_urls(settings, "management_url")
    user, password = settings.http_credentials
    if listed:
        return [settings] + [dataclasses.replace(settings, management_url=u) for u in listed[1:]]
    base = urlsplit(settings.http_base_clean)
    mapped = C.node_endpoints(tuple(running), overview.get("listeners"), base.hostname or "localhost",
                              base.port or (443 if base.scheme == "https" else 80), protocol="http")
    out = [settings]
    for node, (host, port) in mapped.items():
        if port != base.port:
            url = urlunsplit((base.scheme, _hostport(host, port), base.path, "", ""))
            out.append(dataclasses.replace(settings, management_url=url, username_override=user,
                                           password_override=password))
    return out


def read_nodes(client: Any) -> Any:
    """``GET /api/nodes`` with the columns :func:`read_health` needs (a plan starts it early)."""
    return client.get("/api/nodes", params={"columns": NODE_COLUMNS})


def read_health(client: Any, vhosts: Iterable[str], *, critical: bool = True,
                nodes_answer: Any = None) -> C.ClusterHealth | None:
    """The cluster's health as the plan shows it; None when the nodes cannot be read
    (a user without the monitoring tag, an old API): the plan then says nothing of the cluster.

    ``nodes_answer``: a function giving :func:`read_nodes`' answer (or raising its error),
    when the request was started earlier; None: ask now."""
    try:
        nodes = C.parse_nodes(nodes_answer() if nodes_answer is not None else read_nodes(client))
        if len(nodes) < 2:  # one node: alarms are all there is to know (GET /api/overview is slow)
            return C.ClusterHealth(nodes=nodes) if nodes else None
        overview = client.get("/api/overview", params={"columns": OVERVIEW_COLUMNS})
    except Exception:  # noqa: BLE001 - advice only: a user without the monitoring tag, a stand-in client
        return None
    if not isinstance(overview, dict):
        return None
    version = parse_version(overview.get("rabbitmq_version"))
    queues: dict = {}
    for vhost in sorted(set(vhosts)):
        try:
            data = client.get(f"/api/queues/{quote_segment(vhost)}",
                              params={"columns": QUEUE_COLUMNS, "disable_stats": "true", **UNSORTED})
        except Exception:  # noqa: BLE001 - a vhost the files create, or one this user cannot see
            continue
        queues.update(C.parse_queues(data))
    health = C.ClusterHealth(nodes=nodes, queues=queues, version=version)
    if critical:
        health = dataclasses.replace(health, **_critical(client, overview, health))
    return health


def _critical(client: Any, overview: dict, health: C.ClusterHealth) -> dict:
    found: dict[str, tuple] = {}
    unreachable: list[str] = []
    for settings in management_endpoints(client.settings, overview, health.running):
        other = client if settings is client.settings else ManagementClient(settings)
        try:
            node = str(other.get("/api/overview", params={"columns": "node"}).get("node") or other.base)
            response = other.request("GET", "/api/health/checks/node-is-quorum-critical", expect=(200, 503))
            try:
                body = response.json()
            except ValueError:
                body = None
            found[node] = C.parse_quorum_critical(response.status_code, body)
        except BrokerError:
            unreachable.append(other.base)
        finally:
            if other is not client:
                other.close()
    return {"critical": found, "unreachable": tuple(unreachable)}


def add_members(change: Any, ctx: Any) -> None:
    """The executor's handler for an update of a queue whose steps add quorum members."""
    q = change.after if change.after is not None else change.before
    path = f"/api/queues/quorum/{quote_segment(q.vhost)}/{quote_segment(q.name)}/replicas/add"
    for step in change.steps:
        if step.op != C.STEP_ADD_MEMBER:
            raise BrokerError(f"queue '{q.name}': unknown update step '{step.op}'", code="unsupported-change")
        node = step.params.get("node")
        try:
            # the endpoint offers no JSON reply: "accept: application/json" gets 406 Not Acceptable
            ctx.client.request("POST", path, {"node": node}, expect=(200, 201, 204), accept="*/*")
        except BrokerError as exc:
            if "405" in exc.message or "404" in exc.message:
                import shlex

                raise BrokerError(f"queue '{q.name}' in vhost '{q.vhost}': this broker cannot add quorum members "
                                  f"over HTTP; run rabbitmq-queues add_member -p {shlex.quote(q.vhost)} "
                                  f"{shlex.quote(q.name)} {node}",
                                  code="broker-http") from None
            raise
