"""The broker's config kinds -> a :class:`~topoform.config.load.ConfigState` (live side).

Two readers of the same rows (:mod:`topoform.config.kinds` turns each row into an
object): :func:`read_broker` uses the management API's listings (what an administrator
and, kind by kind, a less privileged user may read; a kind that answers 401/403 is
recorded in ``unreadable`` and only matters if the files manage it), and
:func:`from_definitions` reads a definitions export (``plan --state``, ``import --state``).
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

from ..errors import BrokerError
from . import kinds as K
from .load import ConfigState
from .model import ConfigObject

_PERMISSION_CODES = ("broker-permission", "broker-auth")


def _quote(name: str) -> str:
    from ..broker.settings import quote_segment

    return quote_segment(name)


_VHOST_LISTINGS = ("permission", "topic_permission", "vhost_limit", "operator_policy", "federation_upstream",
                   "federation_upstream_set", "shovel")
_READERS = 6  # listings in flight at once: a dozen round trips one after the other were most of a small plan


def read_broker(client, vhosts: Iterable[str]) -> ConfigState:
    """Users, user limits and global parameters, plus every vhost kind of ``vhosts``.

    The listings are requested at once (a few threads of the one client) and their answers
    taken in a fixed order, so the result, and which answers count as "unreadable" or
    "plugin missing", is what reading them one by one gives."""
    if not hasattr(client, "get"):  # a stand-in client without the listings (tests): nothing known
        return ConfigState()
    objects: dict[tuple, ConfigObject] = {}
    unreadable: dict[str, str] = {}
    missing_plugins: set[str] = set()

    def add(obj: ConfigObject | None) -> None:
        if obj is not None:
            objects[obj.key] = obj

    def fetch(path: str):
        try:
            return client.get(path)
        except BrokerError as exc:
            return exc

    requests = [("user", "/api/users", ""), ("global_parameter", "/api/global-parameters", "")]
    for vhost in sorted(set(vhosts)):
        q = _quote(vhost)
        requests += [(kind, K.KINDS[kind].list_path.format(vhost=q), vhost) for kind in _VHOST_LISTINGS]
    if len(requests) > 2:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(_READERS, len(requests)), thread_name_prefix="topoform-config") as pool:
            answers = list(pool.map(fetch, [path for _kind, path, _v in requests]))
    else:
        answers = [fetch(path) for _kind, path, _v in requests]

    def listing(kind: str, answer) -> list:
        if isinstance(answer, BrokerError):
            if answer.code in _PERMISSION_CODES:
                unreadable.setdefault(kind, answer.message)
                return []
            if answer.code in ("broker-not-found", "broker-http") and K.KINDS[kind].plugin:
                missing_plugins.add(K.KINDS[kind].plugin)  # the plugin's API is not there
                return []
            raise answer
        return answer if isinstance(answer, list) else []

    users = listing("user", answers[0])
    for row in users:
        add(K.user_from_row(row))
        if "limits" in row:
            add(K.KINDS["user_limit"].from_row({"user": row["name"], "value": row.get("limits")}, ""))
    if "user" in unreadable or (users and "limits" not in users[0]):
        for row in listing("user_limit", fetch("/api/user-limits")):
            add(K.KINDS["user_limit"].from_row(row, ""))
    for row in listing("global_parameter", answers[1]):
        add(K.global_parameter_from_row(row))
    for (kind, _path, vhost), answer in zip(requests[2:], answers[2:]):
        row_kind = K.KINDS[kind]
        if row_kind.plugin and row_kind.plugin in missing_plugins:
            continue
        for row in listing(kind, answer):
            add(row_kind.from_row(row, vhost))
    return ConfigState(objects=objects, unreadable=unreadable, missing_plugins=frozenset(missing_plugins))


def from_definitions(definitions: Mapping, vhosts: Sequence[str] | None) -> ConfigState:
    """The config kinds of a broker-wide or single-vhost definitions export."""
    objects: dict[tuple, ConfigObject] = {}
    single = len(vhosts or ()) == 1 and not any(k in definitions for k in ("vhosts", "users", "permissions"))
    only = (vhosts or [None])[0] if single else None
    wanted = None if vhosts is None else set(vhosts)

    def inside(row: Mapping) -> bool:
        v = row.get("vhost", only)
        return wanted is None or v in wanted

    def add(obj):
        if obj is not None and (obj.vhost == "" or wanted is None or obj.vhost in wanted):
            objects[obj.key] = obj

    for row in definitions.get("users") or ():
        if isinstance(row, Mapping) and "name" in row:
            add(K.user_from_row(row))
            add(K.KINDS["user_limit"].from_row({"user": row["name"], "value": row.get("limits")}, ""))
    for row in definitions.get("global_parameters") or ():
        if isinstance(row, Mapping) and "name" in row and row["name"] not in ("internal_cluster_id",):
            add(K.global_parameter_from_row(row))
    for row in definitions.get("permissions") or ():
        if isinstance(row, Mapping) and inside(row):
            add(K.permission_from_row(row, row.get("vhost", only)))
    for row in definitions.get("topic_permissions") or ():
        if isinstance(row, Mapping) and inside(row):
            add(K.topic_permission_from_row(row, row.get("vhost", only)))
    for row in definitions.get("parameters") or ():
        if not isinstance(row, Mapping) or not inside(row):
            continue
        kind = K.BY_COMPONENT.get(row.get("component"))
        if kind is not None:
            add(kind.from_row(row, row.get("vhost", only)))
    for row in definitions.get("operator_policies") or ():  # some exports list them apart
        if isinstance(row, Mapping) and inside(row):
            add(K.operator_policy_from_row(row, row.get("vhost", only)))
    for row in definitions.get("vhosts") or ():  # 4.x also puts the limits on the vhost row
        if isinstance(row, Mapping) and row.get("limits") and inside({"vhost": row.get("name")}):
            add(K.KINDS["vhost_limit"].from_row({"vhost": row["name"], "value": row["limits"]}, row["name"]))
    if single and definitions.get("limits"):
        add(K.KINDS["vhost_limit"].from_row({"vhost": only, "value": definitions["limits"]}, only))
    return ConfigState(objects=objects)


def combine(topology_fingerprint: str, config_fingerprint: str) -> str:
    """A saved plan's fingerprint: the topology's, and the digest of the config objects it was based on
    (:func:`topoform.config.hook.basis_fingerprint`; ``""``: none, the topology's alone)."""
    if not config_fingerprint:
        return topology_fingerprint
    # the same form as the topology's alone ("sha256:" + 64 hex digits): plans and tests rely on it
    return "sha256:" + hashlib.sha256(f"{topology_fingerprint}:{config_fingerprint}".encode()).hexdigest()


def super_streams(topology, vhosts: Iterable[str]) -> dict[tuple, ConfigObject]:
    """Super streams as the broker has them: exchanges with ``x-super-stream`` and their partitions."""
    from .model import make
    from ..model import Args

    out = {}
    keep = set(vhosts)
    for x in topology.exchanges.values():
        if x.vhost not in keep or x.arguments.get("x-super-stream") is not True:
            continue
        bindings = sorted(topology.bindings_from(x.vhost, x.name),
                          key=lambda b: (b.arguments.get("x-stream-partition-order", 0), b.destination))
        queues = [topology.queue(x.vhost, b.destination) for b in bindings]
        args = {}
        if queues and queues[0] is not None:
            args = {k: v for k, v in queues[0].arguments.items() if k != "x-queue-type"}
        keys = tuple(b.routing_key for b in bindings)
        value: dict[str, Any] = {"arguments": Args(args)}
        if keys == tuple(str(i) for i in range(len(keys))) and all(
                b.destination == f"{x.name}-{i}" for i, b in enumerate(bindings)):
            value["partitions"] = len(keys)
        else:
            value["binding_keys"] = keys
        obj = make("super_stream", x.vhost, x.name, value)
        out[obj.key] = obj
    return out
