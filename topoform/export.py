"""Topology -> the broker's own definitions JSON (``topoform export``).

The result is what ``POST /api/definitions`` and the ``load_definitions`` setting accept
at boot (RABBITMQ-SEMANTICS.md section 10.2, global form: every row carries ``vhost``).
It holds vhosts, exchanges, queues, bindings and policies; users and permissions are not
topoform's to manage and are left out.

Exclusive queues are left out, and so are the bindings to them: the broker would create
them as ordinary, permanent queues (SPEC section 2; the broker's own export omits them
too). The omissions are returned as notes for the caller to print.

Pure: imports only :mod:`topoform.model`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .model import Binding, Queue, Topology, takes_default_queue_type, thaw

__all__ = ["Export", "export_definitions"]

@dataclass
class Export:
    """``definitions``: JSON-ready dict; ``notes``: one line per thing left out, for stderr.

    ``problems``: values the broker's definitions import refuses, one line each; the
    caller must not write such a document.
    """

    definitions: dict
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _null_paths(value, path: str = "") -> list[str]:
    """Where a JSON-ready value holds ``null``, as dotted paths."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _null_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _null_paths(v, f"{path}[{i}]")]
    return []


def _vhost_row(topology: Topology, name: str) -> dict:
    row: dict = {"name": name}
    v = topology.vhosts.get(("vhost", name))
    metadata: dict = {}
    # 3.10 reads default_queue_type only from "metadata"; description and tags work there too
    # (checked by POST /api/definitions on 3.10.8).
    if v is not None and v.description is not None:
        metadata["description"] = v.description
    if v is not None and v.tags is not None:
        metadata["tags"] = list(v.tags)
    if v is not None and v.default_queue_type is not None:
        metadata["default_queue_type"] = v.default_queue_type
    if metadata:
        row["metadata"] = metadata
    return row


def _binding_row(b: Binding) -> dict:
    return {"source": b.source, "vhost": b.vhost, "destination": b.destination,
            "destination_type": b.destination_type, "routing_key": b.routing_key,
            "arguments": thaw(b.arguments)}


def _queue_arguments(topology: Topology, q: Queue) -> dict:
    """The queue's arguments, with the ``x-queue-type`` the vhost's default queue type gives it
    when the files leave it out: 3.10.8's definitions import ignores the default (a durable
    queue with ``arguments: {}`` in a vhost whose default is quorum is made classic, where a
    declare makes it quorum; 4.0.5 and 4.3.6 apply it), so the export says the type itself."""
    args = thaw(q.arguments)
    if "x-queue-type" not in args:
        v = topology.vhosts.get(("vhost", q.vhost))
        dqt = v.default_queue_type if v is not None else None
        if dqt != "classic" and takes_default_queue_type(q.durable, q.exclusive, q.auto_delete, dqt):
            args["x-queue-type"] = dqt
    return args


def export_definitions(topology: Topology, vhosts: Iterable[str] | None = None) -> Export:
    """Definitions JSON for ``topology`` (or only the named ``vhosts``), sorted for stable output.

    Example::

        >>> from topoform.model import Queue
        >>> e = export_definitions(Topology.build([Queue("/", "orders", durable=True)]))
        >>> e.definitions["queues"]
        [{'name': 'orders', 'vhost': '/', 'durable': True, 'auto_delete': False, 'arguments': {}}]
    """
    names = sorted(set(vhosts) if vhosts is not None else set(topology.vhost_names()))
    keep = set(names)
    notes: list[str] = []

    exclusive = sorted((q for q in topology.queues.values() if q.vhost in keep and q.exclusive),
                       key=lambda q: (q.vhost, q.name))
    skipped = {(q.vhost, q.name) for q in exclusive}
    for q in exclusive:
        notes.append(f"left out exclusive queue {q.name!r} in vhost {q.vhost!r}: consumers declare it at "
                     "run time, and the broker would create it as an ordinary queue")

    exchanges = [
        {"name": x.name, "vhost": x.vhost, "type": x.type, "durable": x.durable,
         "auto_delete": x.auto_delete, "internal": x.internal, "arguments": thaw(x.arguments)}
        for x in sorted(topology.exchanges.values(), key=lambda x: (x.vhost, x.name))
        if x.vhost in keep and not x.is_builtin
    ]
    queues = [
        {"name": q.name, "vhost": q.vhost, "durable": q.durable, "auto_delete": q.auto_delete,
         "arguments": _queue_arguments(topology, q)}
        for q in sorted(topology.queues.values(), key=lambda q: (q.vhost, q.name))
        if q.vhost in keep and (q.vhost, q.name) not in skipped
    ]
    bindings = []
    dropped = 0
    for b in sorted((b for b in topology.bindings if b.vhost in keep), key=lambda b: b.key):
        if b.destination_type == "queue" and (b.vhost, b.destination) in skipped:
            dropped += 1
            continue
        bindings.append(_binding_row(b))
    if dropped:
        notes.append(f"left out {dropped} binding{'s' if dropped != 1 else ''} to exclusive queues")
    policies = [
        {"vhost": p.vhost, "name": p.name, "pattern": p.pattern, "apply-to": p.apply_to,
         "definition": thaw(p.definition), "priority": p.priority}
        for p in sorted(topology.policies.values(), key=lambda p: (p.vhost, p.name))
        if p.vhost in keep
    ]
    definitions = {
        "vhosts": [_vhost_row(topology, n) for n in names],
        "policies": policies,
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    }
    # A null (AMQP void) argument is valid over AMQP, e.g. a headers binding's presence
    # check, but POST /api/definitions refuses it with 400 null_not_allowed (checked on
    # 3.10.8), and load_definitions would fail at boot.
    problems = []
    for kind, rows, field_name in (("exchange", exchanges, "arguments"), ("queue", queues, "arguments"),
                                   ("binding", bindings, "arguments"), ("policy", policies, "definition")):
        for row in rows:
            for path in _null_paths(row[field_name]):
                what = (f"binding {row['source']} -> {row['destination']} [{row['routing_key']}]"
                        if kind == "binding" else f"{kind} {row['name']}")
                problems.append(f"{what} in vhost {row['vhost']!r} has {field_name}.{path}: null, which the "
                                "broker's definitions import refuses (400 null_not_allowed)")
    return Export(definitions, notes, problems)
