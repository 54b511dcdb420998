"""The scanned topology as YAML, each object with a comment naming the code that declares it.

The objects are rendered with :mod:`topoform.dump`'s own helpers (same quoting, same
argument types, so ``validate`` reads back exactly what the scan found); this module
only adds the comments: where each exchange, queue and binding is declared, which
fields could not be resolved, and which publish each route test comes from.
"""
from __future__ import annotations

from typing import Iterable

from .. import dump
from ..model import Topology
from .model import Place

MAX_PLACES = 6


def _places(places: Iterable[Place]) -> str:
    unique = sorted(set(places))
    shown = ", ".join(p.described for p in unique[:MAX_PLACES])
    if len(unique) > MAX_PLACES:
        shown += f" and {len(unique) - MAX_PLACES} more"
    return shown


def _indent(text: str, n: int) -> list[str]:
    pad = " " * n
    return [pad + line if line else line for line in text.rstrip("\n").split("\n")]


def _comment(text: str, n: int) -> str:
    return " " * n + "# " + text


def render(built, vhost: str, header: list[str]) -> str:
    topology: Topology = built.topology
    lines = [("# " + h).rstrip() for h in header]
    lines += ["version: 1", "vhosts:"]
    lines.append(f"  {_key(vhost)}:")
    exchanges = sorted((x for x in topology.exchanges.values() if x.vhost == vhost), key=lambda x: x.name)
    queues = sorted((q for q in topology.queues.values() if q.vhost == vhost), key=lambda q: q.name)
    queue_names = {q.name for q in queues}
    sugar: dict[str, list] = {}
    general = []
    for b in sorted((b for b in topology.bindings if b.vhost == vhost), key=dump._binding_sort_key):
        if b.destination_type == "queue" and b.destination in queue_names:
            sugar.setdefault(b.destination, []).append(b)
        else:
            general.append(b)
    if not (exchanges or queues or general):
        lines[-1] += " {}"
    if exchanges:
        lines.append("    exchanges:")
        for x in exchanges:
            entry = built.entries[x.key]
            lines += _object_comments(entry, 6)
            lines += _indent(dump._yaml_document({x.name: dump._exchange(x)}), 6)
    if queues:
        lines.append("    queues:")
        for q in queues:
            entry = built.entries[q.key]
            lines += _object_comments(entry, 6)
            lines += _indent(dump._yaml_document({q.name: dump._queue(q, [])}), 6)
            if sugar.get(q.name):
                lines.append("        bindings:")
                for b in sugar[q.name]:
                    lines.append(_comment(f"bound at {_places(built.binding_places.get(b.key, []))}", 10))
                    item: dict = {"exchange": b.source, "routing_key": b.routing_key}
                    if b.arguments:
                        item["arguments"] = b.arguments.to_dict()
                    lines += _indent(dump._yaml_document([dump._entry(item)]), 10)
    if general:
        lines.append("    bindings:")
        for b in general:
            lines.append(_comment(f"bound at {_places(built.binding_places.get(b.key, []))}", 6))
            lines += _indent(dump._yaml_document([dump._binding(b)]), 6)
    if topology.tests:
        lines.append("tests:")
        for i, t in enumerate(topology.tests):
            places = _places(built.test_places.get(i, []))
            reached = ", ".join(t.expect) if t.expect else "no queue (unroutable)"
            lines.append(_comment(f"published at {places}: the simulator reaches {reached}; confirm", 2))
            lines += _indent(dump._yaml_document([dump._route_test(t)]), 2)
    return "\n".join(lines) + "\n"


def _key(name: str) -> str:
    text = dump._yaml_document({name: 1})
    return text.rsplit(":", 1)[0].strip()


def _object_comments(entry, n: int) -> list[str]:
    out = [_comment(f"declared at {_places(entry.places)}", n)]
    if entry.server_named:
        out.append(_comment("server-named by the broker at run time (the name here is the scan's)", n))
    for note in entry.notes:
        out.append(_comment(note, n))
    for fld, (reason, place) in sorted(entry.unresolved.items()):
        out.append(_comment(f"unresolved {fld} ({place}): {reason}; written with the default, check it", n))
    return out
