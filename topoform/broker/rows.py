"""Rows of the management API or of a definitions export -> resources, and the topology's fingerprint.

Split from ``broker/live.py`` (which reads and combines them): one function per kind of
row, each giving exactly the declared configuration (server-only fields dropped,
missing fields at the declare defaults, an AMQP void read as ``None``).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Mapping

from ..model import DQT_UNSET, EMPTY_ARGS, Args, Binding, Exchange, Policy, Queue, Resource, Topology, Vhost


# ---------------------------------------------------------------------- rows -> resources
def _bool(value: Any) -> bool:
    return bool(value) if value is not None else False


def _void(value: Any) -> Any:
    """The management API renders an AMQP void (pika ``None``) as the string ``"undefined"``,
    exactly as it renders that string itself, in listings and exports alike (checked on
    3.10.8: only the opaque ``properties_key`` differs). Void is the value that means
    something (a headers binding's presence check, SEMANTICS section 7), so it is read as
    ``None``; ``validate`` warns about the literal string in arguments."""
    if value == "undefined":
        return None
    if isinstance(value, dict):
        return {k: _void(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_void(v) for v in value]
    return value


def _args(value: Any) -> Args:
    if not value:
        return EMPTY_ARGS  # most rows: no arguments (and one shared object)
    if not isinstance(value, Mapping):
        return EMPTY_ARGS
    if "undefined" in value.values() or any(isinstance(v, (dict, list)) for v in value.values()):
        # an argument that names an object (an exchange called "undefined") is never a void
        value = {k: (v if k in _NAME_ARGUMENTS else _void(v)) for k, v in value.items()}
    return Args(value)


_NAME_ARGUMENTS = frozenset({"alternate-exchange", "x-dead-letter-exchange", "x-dead-letter-routing-key"})


def _tags(value: Any) -> tuple[str, ...] | None:
    """Tags as the broker keeps them: in the given order, repeats included (checked on 3.10.8 and 4.3.6)."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [t.strip() for t in value.split(",")]
    else:
        items = [str(t).strip() for t in value]
    return tuple(t for t in items if t)


def vhost_from_row(row: Mapping) -> Vhost:
    """A vhost from ``GET /api/vhosts`` or a definitions ``vhosts`` entry (3.11+ puts settings in ``metadata``).

    A setting the source does not report stays ``None`` (unknown, never a difference).
    A reported but unset ``default_queue_type`` (3.10 says ``undefined``) is
    :data:`DQT_UNSET`: known and not set, so files that ask for ``classic`` or ``quorum``
    see an update, and ``import`` writes nothing for it.
    """
    meta = row.get("metadata") if isinstance(row.get("metadata"), Mapping) else {}
    description = row.get("description", meta.get("description"))
    tags = row.get("tags", meta.get("tags"))
    dqt = row.get("default_queue_type", meta.get("default_queue_type"))
    if dqt in ("undefined", ""):
        dqt = DQT_UNSET
    return Vhost(name=str(row["name"]), description=description, tags=_tags(tags), default_queue_type=dqt)


def exchange_from_row(row: Mapping, vhost: str) -> Exchange:
    return Exchange(vhost=vhost, name=str(row["name"]), type=str(row.get("type") or "direct"),
                    durable=_bool(row.get("durable")), auto_delete=_bool(row.get("auto_delete")),
                    internal=_bool(row.get("internal")), arguments=_args(row.get("arguments")))


def queue_from_row(row: Mapping, vhost: str) -> Queue:
    return Queue(vhost=vhost, name=str(row["name"]), durable=_bool(row.get("durable")),
                 exclusive=_bool(row.get("exclusive")), auto_delete=_bool(row.get("auto_delete")),
                 arguments=_args(row.get("arguments")))


def binding_from_row(row: Mapping, vhost: str) -> Binding:
    return Binding(vhost=vhost, source=str(row["source"]), destination=str(row["destination"]),
                   destination_type=str(row.get("destination_type") or "queue"),
                   routing_key=str(row.get("routing_key") or ""), arguments=_args(row.get("arguments")))


def policy_from_row(row: Mapping, vhost: str) -> Policy:
    try:
        priority = int(row.get("priority") or 0)
    except (TypeError, ValueError):
        priority = 0
    return Policy(vhost=vhost, name=str(row["name"]), pattern=str(row.get("pattern") or ""),
                  apply_to=str(row.get("apply-to") or row.get("apply_to") or "all"),
                  priority=priority, definition=_args(row.get("definition")))


def is_server_named(queue_name: str) -> bool:
    """``amq.*`` queue names are reserved: only the broker creates them (``amq.gen-*``; section 4.2)."""
    return queue_name.startswith("amq.")


def is_builtin_exchange(name: str) -> bool:
    return name == "" or name.startswith("amq.")


def vhost_resources(defs: Mapping, vhost: str, exclusive: set[str], skipped: Counter) -> list[Resource]:
    """One vhost's exchanges, queues, bindings and policies from a definitions document.

    ``exclusive`` names the vhost's exclusive queues (from the queue listing): they and the
    bindings to them are skipped even if a source lists them.
    """
    out: list[Resource] = []
    skipped_queues: set[str] = set(exclusive)
    for row in defs.get("exchanges") or ():
        if is_builtin_exchange(str(row.get("name", ""))):
            skipped["built-in exchanges"] += 1
            continue
        out.append(exchange_from_row(row, vhost))
    for row in defs.get("queues") or ():
        name = str(row.get("name", ""))
        if name in exclusive or row.get("exclusive"):
            skipped["exclusive queues"] += 1
            skipped_queues.add(name)
            continue
        if is_server_named(name):
            skipped["server-named queues"] += 1
            skipped_queues.add(name)
            continue
        out.append(queue_from_row(row, vhost))
    for row in defs.get("bindings") or ():
        if not row.get("source"):
            skipped["default-exchange bindings"] += 1
            continue
        dtype = row.get("destination_type") or "queue"
        dest = str(row.get("destination", ""))
        if dtype == "queue" and (dest in skipped_queues or is_server_named(dest)):
            skipped["bindings to skipped queues"] += 1
            continue
        out.append(binding_from_row(row, vhost))
    for row in defs.get("policies") or ():
        out.append(policy_from_row(row, vhost))
    return out


# ---------------------------------------------------------------------- fingerprint
_FIELDS: dict[type, tuple[str, ...]] = {}


def _canon_resource(r: Resource) -> tuple:
    cls = type(r)
    names = _FIELDS.get(cls)
    if names is None:
        from dataclasses import fields

        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    values = []
    for n in names:
        v = getattr(r, n)
        values.append(v.canon if type(v) is Args else v)  # type(): isinstance on an ABC is slow
    return (r.kind, tuple(values))


def topology_fingerprint(topology: Topology) -> str:
    """A stable hash of a topology's configuration (never of message counts, which change constantly).

    Equal topologies give equal fingerprints, whatever the order they were read in.
    ``apply PLANFILE`` compares it with the live state's to refuse a stale plan.
    """
    lines = sorted(repr(_canon_resource(r)) for r in topology.resources())
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()
