"""Topology -> topology YAML (SPEC section 1): what ``topoform import`` writes.

The inverse of :mod:`topoform.load`: for every topology ``t`` the loader builds,
``load_text(dump_topology(t)) == t``. Output is deterministic (vhosts, objects, bindings
and argument keys sorted), so an import can be diffed and reviewed like any other file.

Argument values keep their types: a string that a YAML reader could take for a number,
boolean or null (``"60000"``, ``"yes"``, ``"0o17"``) is always quoted, so it loads back
as a string; integers, floats, booleans, lists and nested tables are written as such.

Imports only :mod:`topoform.model` and yaml; never broker, planner or apply.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Iterable, Mapping, Sequence

import yaml

from .model import Binding, Exchange, Policy, Queue, RouteTest, Topology, Vhost, thaw

__all__ = ["dump_topology", "dump_vhosts", "skipped_comment", "not_managed_comment", "vhost_filename"]

# Width of a flow mapping (``- {exchange: x, routing_key: k}``) before it is written in block form.
FLOW_WIDTH = 100

# Strings that some YAML reader (1.1 or 1.2 core schema) resolves to something other than a
# string. pyyaml already quotes what *its* resolver would misread; these cover the rest
# (``0o17``, ``1e5``, ``.5``), so files also read back right in editors and other tools.
_NUMBERISH = re.compile(r"[-+]?(\.?[0-9][0-9_a-zA-Z.:+-]*|\.(inf|Inf|INF|nan|NaN|NAN))")
_AWKWARD = re.compile("[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029\ufeff]|^ | $")
_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ""}


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


def _represent_str(dumper: yaml.SafeDumper, value: str):
    if "${" in value:  # a literal ${ is written $${, or loading would read it as a variable (topoform/variables.py)
        value = value.replace("${", "$${")
    if _NUMBERISH.fullmatch(value) or value.lower() in _WORDS:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    if _AWKWARD.search(value):
        # line breaks, tabs, control and non-printable characters: double quotes escape them
        # all, where plain or single-quoted scalars would fold or strip them
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


def _represent_flow(dumper: yaml.SafeDumper, value: _Flow):
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=True)


def _represent_flow_list(dumper: yaml.SafeDumper, value: _FlowList):
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowList, _represent_flow_list)


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=FLOW_WIDTH,
                     default_flow_style=False, indent=2)


# ---------------------------------------------------------------------- libyaml (C speed)
# PyYAML's pure-Python emitter spent 92% of a 50,000-object import (issue 17). libyaml's
# emitter writes the same YAML except in three ways, each handled so that the output stays
# byte for byte what :func:`_yaml` writes (tests/unit/test_dump_fast.py compares them):
#
# * it writes block sequences under a mapping key "indentless" (``key:\n- a``), where
#   :class:`_Dumper` indents them (``key:\n  - a``): :func:`_indent_sequences` adds the two
#   columns (with an unlimited width the C output has exactly one line per node, no folding);
# * it folds long lines at other columns (the sequences sit two columns further left): it
#   runs with no width limit, and a document with any line over :data:`FLOW_WIDTH` (where
#   the Python emitter would have folded, or a key of 128+ characters, which libyaml writes
#   as ``? key``) is written by :func:`_yaml` instead;
# * it escapes characters outside the BMP (emoji) that PyYAML writes as they are: a
#   document with any non-ASCII string is written by :func:`_yaml` too.
_CSafeDumper = getattr(yaml, "CSafeDumper", None)
_UNLIMITED = 2 ** 30


class _NotPlain(Exception):
    """Internal: the C emitter's output might differ from the Python emitter's."""


if _CSafeDumper is not None:
    class _CDumper(_CSafeDumper):  # type: ignore[misc, valid-type]
        def ignore_aliases(self, data):
            return True

    def _represent_str_c(dumper, value: str):
        if not value.isascii():
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
        text = _indent_sequences(_yaml_c(data))
    except _NotPlain:
        return _yaml(data)
    if any(len(line) > FLOW_WIDTH for line in text.split("\n")):
        return _yaml(data)
    return text


class _Fits:
    """A choice :func:`_entry` / :func:`_args` leaves open until a whole document is known:
    the flow form when its line fits in :data:`FLOW_WIDTH`, else the block form. The lines
    of every choice are measured in one libyaml call (:func:`_decide`)."""

    __slots__ = ("flow", "block", "prefix", "chosen")

    def __init__(self, flow: Any, block: Any, prefix: int):
        self.flow, self.block, self.prefix, self.chosen = flow, block, prefix, None


_LOCAL = threading.local()  # .pending: the open choices while a document is built (None: decide at once)


def _decide(pending: list) -> None:
    """Choose every pending :class:`_Fits` (one C call; the Python emitter where C might differ)."""
    if not pending:
        return
    try:
        lines = _yaml_c([p.flow for p in pending]).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(pending) or not all(line.startswith("- ") for line in lines):
            raise _NotPlain()
        for p, line in zip(pending, lines):
            # the Python emitter at FLOW_WIDTH writes a line that fits without folding it
            fits = p.prefix + len(line) - 2 + 1 <= FLOW_WIDTH
            p.chosen = p.flow if fits else p.block
    except _NotPlain:
        for p in pending:
            p.chosen = p.flow if _fits_python(p) else p.block


def _fits_python(p: _Fits) -> bool:
    text = _yaml([p.flow]) if p.prefix == 2 else _yaml({"arguments": p.flow})
    return "\n" not in text.rstrip("\n") and len(text) <= FLOW_WIDTH


def _choose(flow: Any, block: Any, prefix: int) -> Any:
    choice = _Fits(flow, block, prefix)
    pending = getattr(_LOCAL, "pending", None)
    if pending is not None:
        pending.append(choice)
        return choice
    return choice.flow if _fits_python(choice) else choice.block


def _resolve(value: Any) -> Any:
    """``value`` with every decided :class:`_Fits` replaced by its choice."""
    if type(value) is _Fits:
        return value.chosen
    if type(value) is dict:
        for k, v in value.items():
            if type(v) is _Fits:
                value[k] = v.chosen
            elif type(v) in (dict, list):
                _resolve(v)
    elif type(value) is list:
        for i, v in enumerate(value):
            if type(v) is _Fits:
                value[i] = v.chosen
            elif type(v) in (dict, list):
                _resolve(v)
    return value


def _flowed(value: Any) -> Any:
    """Every mapping and list inside ``value`` in flow style (for one-line entries)."""
    if isinstance(value, Mapping):
        return _Flow((k, _flowed(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return _FlowList(_flowed(v) for v in value)
    return value


def _entry(mapping: dict) -> Any:
    """A list entry: one flow line when it fits in :data:`FLOW_WIDTH`, else block style."""
    return _choose(_flowed(mapping), mapping, 2)  # "- {...}"


def _args(arguments: Mapping) -> Any:
    """Arguments as a flow table when short (``{x-message-ttl: 60000}``), else a block table."""
    plain = thaw(arguments)
    return _choose(_flowed(plain), plain, len("arguments: "))


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
        out["tags"] = _FlowList(v.tags)
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
    outer = getattr(_LOCAL, "pending", None)
    _LOCAL.pending = pending = []  # flow-or-block choices: measured together once the document is built
    try:
        doc: dict[str, Any] = {"version": 1, "vhosts": {name: _vhost_body(topology, name) for name in names}}
        tests = [t for t in topology.tests if vhosts is None or t.vhost in names]
        if tests:
            doc["tests"] = [_route_test(t) for t in tests]
    finally:
        _LOCAL.pending = outer
    _decide(pending)
    _resolve(doc)
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
