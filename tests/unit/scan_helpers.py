"""Helpers for the scan tests: the corpus folder and compact views of declarations."""
from __future__ import annotations

from pathlib import Path

from topoform.scan import scan_paths
from topoform.scan.model import ServerNamed

CODE = Path(__file__).resolve().parent.parent / "data" / "code"
SERVICES = CODE / "services"
TUTORIALS = CODE / "tutorials"


def _plain(value):
    if isinstance(value, ServerNamed):
        return f"<{value.ref}>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def view(decl) -> tuple:
    """(line, kind, call, fields, sorted unresolved fields[, 'passive'])."""
    out = (decl.place.line, decl.kind, decl.call, _plain(dict(decl.fields)), sorted(decl.unresolved))
    return out + ("passive",) if decl.passive else out


def scan_file(path: Path, **kw):
    return scan_paths([str(path)], **kw)


def views(result, name: str) -> list[tuple]:
    return [view(d) for d in result.declarations if Path(d.place.path).name == name]


def q(name, durable=False, exclusive=False, auto_delete=False, arguments=None) -> dict:
    return {"name": name, "durable": durable, "exclusive": exclusive, "auto_delete": auto_delete,
            "arguments": arguments or {}}


def x(name, type="direct", durable=False, auto_delete=False, internal=False, arguments=None) -> dict:  # noqa: A002
    return {"name": name, "type": type, "durable": durable, "auto_delete": auto_delete, "internal": internal,
            "arguments": arguments or {}}


def b(source, destination, routing_key="", destination_type="queue", arguments=None) -> dict:
    out = {"source": source, "destination": destination, "destination_type": destination_type,
           "arguments": arguments or {}}
    if routing_key is not None:
        out["routing_key"] = routing_key
    return out
