"""Topology -> topology YAML (SPEC section 1): what ``topoform import`` writes.

The inverse of :mod:`topoform.load`: for every topology ``t`` the loader builds,
``load_text(dump_topology(t)) == t``. Output is deterministic (vhosts, objects, bindings
and argument keys sorted), so an import can be diffed and reviewed like any other file.

Argument values keep their types: a string that a YAML reader could take for a number,
boolean or null (``"60000"``, ``"yes"``, ``"0o17"``) is always quoted, so it loads back
as a string; integers, floats, booleans, lists and nested tables are written as such.

Layout and quoting follow :mod:`topoform.yamlstyle`, the rules ``fmt`` also applies, so
``fmt --check`` passes on an import.

Imports only :mod:`topoform.model`, :mod:`topoform.yamlstyle` and yaml; never broker, planner or apply.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import yaml

from . import yamlstyle
from .model import Binding, Exchange, Policy, Queue, RouteTest, Topology, Vhost, thaw

__all__ = ["dump_topology", "dump_vhosts", "skipped_comment", "not_managed_comment", "vhost_filename"]

# Layout and quoting: one set of rules with ``fmt`` (topoform/yamlstyle.py).
_UNLIMITED = 2 ** 30  # lines are never folded: a collection is one flow line or block style


class _Flow(dict):
    """A mapping written in flow style: ``{a: 1, b: x}``."""


class _FlowList(list):
    """A list written in flow style: ``[a, b]``."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # equal sub-tables must not become &id001 anchors
        return True

    def increase_indent(self, flow=False, indentless=False):  # indent lists under their key
        return super().increase_indent(flow, False)

    def check_simple_key(self):
        # pyyaml writes keys of 128+ characters as "? key" (explicit key syntax); names can be
        # up to 255 bytes, and YAML allows single-line implicit keys up to 1024 characters.
        if isinstance(self.event, yaml.ScalarEvent) and self.event.tag is not None:
            if self.analysis is None:
                self.analysis = self.analyze_scalar(self.event.value)
            if not self.analysis.empty and not self.analysis.multiline and len(self.analysis.scalar) < 1000:
                return True
        return super().check_simple_key()


def _escaped(value: str) -> str:
    """A literal ``${`` is written ``$${``, or loading would read it as a variable (topoform/variables.py)."""
    return value.replace("${", "$${") if "${" in value else value


def _represent_str(dumper: yaml.SafeDumper, value: str):
    value = _escaped(value)
    if not yamlstyle.plain_ok(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=yamlstyle.quote_style(value))
    return dumper.represent_str(value)


def _represent_flow(dumper: yaml.SafeDumper, value: _Flow):
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=True)


def _represent_flow_list(dumper: yaml.SafeDumper, value: _FlowList):
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowList, _represent_flow_list)


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=_UNLIMITED,
                     default_flow_style=False, indent=2)


# ---------------------------------------------------------------------- libyaml (C speed)
# PyYAML's pure-Python emitter spent 92% of a 50,000-object import (issue 17). libyaml's
# emitter writes the same YAML except in three ways, each handled so that the output stays
# byte for byte what :func:`_yaml` writes (tests/unit/test_dump_fast.py compares them):
#
# * it writes block sequences under a mapping key "indentless" (``key:\n- a``), where
#   :class:`_Dumper` indents them (``key:\n  - a``): :func:`_indent_sequences` adds the two
#   columns (neither emitter folds a line, so the C output has exactly one line per node);
# * it writes a key of 128+ characters as ``? key``, where :class:`_Dumper` keeps it a
#   simple key: a document with a string that long is written by :func:`_yaml` instead;
# * it escapes characters outside the BMP (emoji) that PyYAML writes as they are: a
#   document with any non-ASCII string is written by :func:`_yaml` too.
_CSafeDumper = getattr(yaml, "CSafeDumper", None)


class _NotPlain(Exception):
    """Internal: the C emitter's output might differ from the Python emitter's."""


if _CSafeDumper is not None:
    class _CDumper(_CSafeDumper):  # type: ignore[misc, valid-type]
        def ignore_aliases(self, data):
            return True

    def _represent_str_c(dumper, value: str):
        if not value.isascii() or len(value) >= 128:
            raise _NotPlain()
        return _represent_str(dumper, value)

    _CDumper.add_representer(str, _represent_str_c)
    _CDumper.add_representer(_Flow, _represent_flow)
    _CDumper.add_representer(_FlowList, _represent_flow_list)
else:  # pragma: no cover - PyYAML built without libyaml
    _CDumper = None


def _yaml_c(data: Any) -> str:
    """``data`` through libyaml, one line per node; raises :class:`_NotPlain` where it could differ."""
    if _CDumper is None:
        raise _NotPlain()
    return yaml.dump(data, Dumper=_CDumper, sort_keys=False, allow_unicode=True, width=_UNLIMITED,
                     default_flow_style=False, indent=2)


def _indent_sequences(text: str) -> str:
    """libyaml's indentless block sequences indented as :class:`_Dumper` writes them."""
    out = []
    stack: list[int] = []  # original columns of the open indentless sequences
    previous_key = -1  # column of the previous line when it was a key with its value below (``key:``)
    for line in text.split("\n"):
        if not line:
            out.append(line)
            previous_key = -1
            continue
        col = len(line) - len(line.lstrip(" "))
        item = line.startswith("-", col) and (len(line) == col + 1 or line[col + 1] == " ")
        while stack and (col < stack[-1] or (col == stack[-1] and not item)):
            stack.pop()
        if item and col == previous_key and (not stack or stack[-1] != col):
            stack.append(col)
        shifted = " " * (2 * len(stack)) + line if stack else line
        out.append(shifted)
        previous_key = col if line.endswith(":") and not item else -1
    return "\n".join(out)


def _yaml_document(data: Any) -> str:
    """:func:`_yaml` of a whole document, at libyaml's speed when the output is the same."""
    try:
        return _indent_sequences(_yaml_c(data))
    except _NotPlain:
        return _yaml(data)


def _scalar_length(value: Any) -> int:
    """The length of a scalar as written (for :func:`topoform.yamlstyle.flows`)."""
    t = type(value)
    if t is str:
        value = _escaped(value)
        return len(value) if yamlstyle.plain_ok(value) else yamlstyle.quoted_length(value)
    if t is bool:
        return 4 if value else 5
    if value is None:
        return 4
    if t is int:
        return len(str(value))
    if t is float:
        return len(_FLOAT_DUMPER.represent_float(value).value)
    return len(str(value))


_FLOAT_DUMPER = _Dumper(None)


def _flowed(value: Any) -> Any:
    """Every mapping and list inside ``value`` in flow style (for one-line entries)."""
    if isinstance(value, Mapping):
        return _Flow((k, _flowed(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return _FlowList(_flowed(v) for v in value)
    return value


def _layout(value: Any) -> Any:
    """A collection inside an object (arguments, an entry, tags, ...): one flow line when
    :func:`topoform.yamlstyle.flows` says so, else block style, each collection inside it
    decided alike. Anything else as it is."""
    if isinstance(value, Mapping):
        if yamlstyle.flows(value, _scalar_length):
            return _flowed(value)
        return {k: _layout(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if yamlstyle.flows(value, _scalar_length):
            return _flowed(value)
        return [_flowed(v) if isinstance(v, (list, tuple)) else _layout(v) for v in value]  # a list in a list: one line
    return value


def _entry(mapping: dict) -> Any:
    """A list entry (a binding, a route test)."""
    return _layout(mapping)


def _args(arguments: Mapping) -> Any:
    """Arguments (or a definition): ``{x-message-ttl: 60000}`` when short, else a block table."""
    return _layout(thaw(arguments))


def _exchange(x: Exchange) -> dict:
    out: dict[str, Any] = {"type": x.type, "durable": x.durable}
    if x.auto_delete:
        out["auto_delete"] = True
    if x.internal:
        out["internal"] = True
    if x.arguments:
        out["arguments"] = _args(x.arguments)
    return out


def _queue(q: Queue, sugar: list[Binding]) -> dict:
    out: dict[str, Any] = {"durable": q.durable}
    if q.exclusive:
        out["exclusive"] = True
    if q.auto_delete:
        out["auto_delete"] = True
    if q.arguments:
        out["arguments"] = _args(q.arguments)
    if sugar:
        entries = []
        for b in sugar:
            entry: dict[str, Any] = {"exchange": b.source, "routing_key": b.routing_key}
            if b.arguments:
                entry["arguments"] = thaw(b.arguments)
            entries.append(_entry(entry))
        out["bindings"] = entries
    return out


def _binding(b: Binding) -> Any:
    entry: dict[str, Any] = {"source": b.source, "destination": b.destination,
                             "destination_type": b.destination_type, "routing_key": b.routing_key}
    if b.arguments:
        entry["arguments"] = thaw(b.arguments)
    return _entry(entry)


def _policy(p: Policy) -> dict:
    return {"pattern": p.pattern, "apply_to": p.apply_to, "priority": p.priority,
            "definition": _args(p.definition)}


def _vhost_settings(v: Vhost | None) -> dict:
    out: dict[str, Any] = {}
    if v is None:
        return out
    if v.description is not None:
        out["description"] = v.description
    if v.tags is not None:
        out["tags"] = _layout(list(v.tags))
    if v.default_queue_type not in (None, "", "undefined"):  # "undefined": the broker has none set
        out["default_queue_type"] = v.default_queue_type
    return out


def _binding_sort_key(b: Binding) -> tuple:
    return (b.source, b.destination_type, b.destination, b.routing_key, repr(b.arguments.canon))


def _vhost_body(topology: Topology, name: str) -> dict:
    body: dict[str, Any] = _vhost_settings(topology.vhosts.get(("vhost", name)))
    exchanges = sorted((x for x in topology.exchanges.values() if x.vhost == name), key=lambda x: x.name)
    queues = sorted((q for q in topology.queues.values() if q.vhost == name), key=lambda q: q.name)
    queue_names = {q.name for q in queues}
    sugar: dict[str, list[Binding]] = {}
    general: list[Binding] = []
    for b in sorted((b for b in topology.bindings if b.vhost == name), key=_binding_sort_key):
        if b.destination_type == "queue" and b.destination in queue_names:
            sugar.setdefault(b.destination, []).append(b)
        else:
            general.append(b)
    policies = sorted((p for p in topology.policies.values() if p.vhost == name), key=lambda p: p.name)
    if exchanges:
        body["exchanges"] = {x.name: _exchange(x) for x in exchanges}
    if queues:
        body["queues"] = {q.name: _queue(q, sugar.get(q.name, [])) for q in queues}
    if general:
        body["bindings"] = [_binding(b) for b in general]
    if policies:
        body["policies"] = {p.name: _policy(p) for p in policies}
    return body


def _route_test(t: RouteTest) -> Any:
    entry: dict[str, Any] = {}
    if t.name:
        entry["name"] = t.name
    entry.update({"vhost": t.vhost, "exchange": t.exchange})
    if t.routing_key or t.headers is None:
        entry["routing_key"] = t.routing_key
    if t.headers is not None:
        entry["headers"] = thaw(t.headers)
    entry["expect"] = list(t.expect)
    return _entry(entry)


def _comment(lines: Iterable[str]) -> str:
    out = []
    for line in lines:
        for part in str(line).splitlines() or [""]:
            out.append(("# " + part).rstrip())
    return "".join(f"{line}\n" for line in out)


def dump_topology(topology: Topology, *, header: Sequence[str] = (),
                  vhosts: Iterable[str] | None = None, config=None) -> str:
    """Topology YAML for ``topology`` (or only the given ``vhosts``), with ``header`` as comments.

    Example::

        >>> t = Topology.build([Queue("/", "orders", durable=True)])
        >>> print(dump_topology(t), end="")
        version: 1
        vhosts:
          /:
            queues:
              orders:
                durable: true
    """
    names = sorted(set(vhosts) if vhosts is not None else set(topology.vhost_names()))
    doc: dict[str, Any] = {"version": 1, "vhosts": {name: _vhost_body(topology, name) for name in names}}
    tests = [t for t in topology.tests if vhosts is None or t.vhost in names]
    if tests:
        doc["tests"] = [_route_test(t) for t in tests]
    if config is not None:  # import --config: users, permissions, limits, ... (topoform/config/dump.py)
        from .config.dump import add_to_document

        add_to_document(doc, config, names)
    return _comment(header) + _yaml_document(doc)


def dump_vhosts(topology: Topology, *, header: Sequence[str] = ()) -> dict[str, str]:
    """One YAML text per vhost, keyed by vhost name (for ``import -o DIR``)."""
    return {name: dump_topology(topology, header=header, vhosts=[name]) for name in topology.vhost_names()}


def vhost_filename(name: str, taken: set[str] | None = None) -> str:
    """A safe, readable file name for a vhost: ``/`` -> ``default.yaml``, ``a/b c`` -> ``a_b_c.yaml``.

    ``taken`` (lower-cased names already used) gets the result added; a clash gets a numeric suffix.
    """
    stem = "default" if name == "/" else re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "vhost"
    taken = taken if taken is not None else set()
    candidate, n = stem, 2
    while f"{candidate}.yaml".lower() in taken:
        candidate, n = f"{stem}-{n}", n + 1
    filename = f"{candidate}.yaml"
    taken.add(filename.lower())
    return filename


def skipped_comment(skipped: Mapping[str, int]) -> list[str]:
    """Header lines naming what the import left out because topoform never manages it (SPEC 2)."""
    items = sorted((k, v) for k, v in skipped.items() if v)
    if not items:
        return ["Skipped: nothing (no never-managed objects found)."]
    total = sum(v for _, v in items)
    detail = ", ".join(f"{k}: {v}" for k, v in items)
    return [f"Skipped {total} never-managed object{'s' if total != 1 else ''}: {detail}."]


def not_managed_comment(not_managed: Mapping[str, int]) -> list[str]:
    """A header line counting what a definitions file holds that topoform does not manage
    (parameters, vhost limits, users, permissions, ...): nothing when there is none."""
    items = sorted((k, v) for k, v in not_managed.items() if v)
    if not items:
        return []
    return ["Not imported (topoform does not manage them): " + ", ".join(f"{k}: {v}" for k, v in items) + "."]
