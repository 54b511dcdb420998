"""Topology -> diagram text: Mermaid (``flowchart LR``) and Graphviz DOT (``topoform graph``).

Both renderers draw the same intermediate :class:`Diagram`, built by :func:`build_diagram`:

* exchanges (hexagons) and queues (cylinders); exchanges that bindings or arguments refer
  to but the files do not declare (``amq.topic``, a missing alternate exchange) are drawn
  with a dashed outline;
* bindings as solid arrows labelled with the routing key (headers bindings with their
  arguments), exchange-to-exchange bindings included;
* alternate-exchange and dead-letter links as dashed arrows in their own colours, whether
  they come from an argument or from the policy that applies (an argument wins over a
  policy for both, RABBITMQ-SEMANTICS.md section 11.3);
* optionally a :class:`Highlight` (the path a message takes, from the routing engine)
  drawn thick and red;
* ``external`` objects (declared by another file set, topoform/ownership.py) drawn faded:
  grey and dashed, always;
* with ``color_by="owner"`` every object filled in its owner's colour (the top-level
  ``owner:`` of the file that declares it) and a legend of the owners;
* users (their permissions as arrows to the vhosts, topic permissions to the exchange),
  federation upstreams and shovels (arrows between vhosts, objects and remote brokers,
  whose URIs show the host only, or the ``env:NAME`` / ``file:NAME`` reference): built by
  :mod:`topoform.graph_links` from the files' config objects.

Node ids are generated (``e0``, ``q3``), never derived from names, so any name is safe;
names appear only inside quoted, escaped labels. Pure: imports only :mod:`topoform.model`
(and its sibling :mod:`topoform.graph_links`).
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable

from .model import EMPTY_ARGS, Args, Binding, Exchange, Queue, Topology, thaw

__all__ = ["Diagram", "Edge", "Extras", "Highlight", "Node", "build_diagram", "highlight_from_route",
           "render", "render_dot", "render_mermaid", "FORMATS", "COLOR_BY", "NO_OWNER"]

FORMATS = ("mermaid", "dot")
COLOR_BY = ("kind", "owner")
NO_OWNER = "(no owner)"
DEFAULT_EXCHANGE_LABEL = "(default exchange)"

# colours shared by both renderers
_EXCHANGE_FILL, _EXCHANGE_STROKE = "#fff3e0", "#e65100"
_QUEUE_FILL, _QUEUE_STROKE = "#e3f2fd", "#0d47a1"
_ALTERNATE = "#6a1b9a"
_DEAD_LETTER = "#757575"
_ROUTE = "#d50000"
# external objects (another file set's): faded
_FADED_FILL, _FADED_STROKE, _FADED_TEXT = "#f5f5f5", "#9e9e9e", "#9e9e9e"
_USER_FILL, _USER_STROKE = "#e8f5e9", "#1b5e20"
_VHOST_FILL, _VHOST_STROKE = "#fafafa", "#616161"
_REMOTE_FILL, _REMOTE_STROKE = "#eceff1", "#37474f"
_PERMISSION = "#2e7d32"
_FEDERATION = "#1565c0"
_SHOVEL = "#00897b"
# owners' colours (fill, stroke), given in the owners' name order; the objects of no owner in white
_OWNER_COLORS = (("#ffe0b2", "#e65100"), ("#c8e6c9", "#1b5e20"), ("#bbdefb", "#0d47a1"), ("#f8bbd0", "#880e4f"),
                 ("#d1c4e9", "#4527a0"), ("#fff9c4", "#f57f17"), ("#b2dfdb", "#004d40"), ("#ffccbc", "#bf360c"),
                 ("#cfd8dc", "#263238"), ("#f0f4c3", "#827717"))
_NO_OWNER_COLORS = ("#ffffff", "#616161")
# edge kind -> (colour or None, dashed)
_EDGE_STYLES = {"binding": (None, False), "alternate": (_ALTERNATE, True), "dead-letter": (_DEAD_LETTER, True),
                "permission": (_PERMISSION, False), "topic-permission": (_PERMISSION, True),
                "federation": (_FEDERATION, True), "shovel": (_SHOVEL, True)}


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # "exchange" | "queue" | "user" | "vhost" | "remote"
    vhost: str | None  # None: drawn outside every vhost (users, remote brokers, vhosts not drawn)
    name: str
    detail: str = ""  # second label line: exchange type, queue type, flags
    declared: bool = True  # False: referenced but not declared in the files
    external: bool = False  # declared by another file set (``external:``): drawn faded
    owner: str | None = None  # the owner label of the file declaring it (``color_by="owner"``)


@dataclass(frozen=True)
class Edge:
    source: str  # node id
    target: str  # node id
    kind: str  # "binding" | "alternate" | "dead-letter" | "permission" | "topic-permission" | "federation" | "shovel"
    label: str = ""
    highlighted: bool = False


@dataclass
class Diagram:
    """Nodes grouped by vhost (in drawing order) and edges (in drawing order)."""

    vhosts: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    highlighted_nodes: set[str] = field(default_factory=set)
    title: str = ""
    color_by: str = "kind"
    owners: list[str] = field(default_factory=list)  # legend order (color_by="owner")

    def owner_colors(self) -> dict[str, tuple[str, str]]:
        """owner label -> (fill, stroke); NO_OWNER is white."""
        named = [o for o in self.owners if o != NO_OWNER]
        out = {o: _OWNER_COLORS[i % len(_OWNER_COLORS)] for i, o in enumerate(named)}
        if NO_OWNER in self.owners:
            out[NO_OWNER] = _NO_OWNER_COLORS
        return out


@dataclass(frozen=True)
class Extras:
    """What the files add to the picture beyond the topology (all optional).

    ``owners``: ``(kind, vhost, name)`` -> owner label (exchanges, queues); ``external``:
    vhost -> ``{"exchange": {name: type or None}, "queue": {...}}``; ``config``: the files'
    config objects (users, permissions, topic permissions, federation upstreams and sets,
    shovels; anything else is ignored), drawn when ``users`` / ``links`` are true.
    """

    owners: dict = field(default_factory=dict)
    external: dict = field(default_factory=dict)
    config: tuple = ()
    users: bool = True
    links: bool = True


@dataclass(frozen=True)
class Highlight:
    """What ``--route`` marks: the hops a message takes and the nodes it passes.

    ``hops`` are ``(source, destination_type, destination, routing_key, via, arguments)``
    tuples; ``via`` is the routing engine's word for how the hop was taken (``binding``,
    ``alternate-exchange``, ``default``), ``arguments`` the binding's (as an :class:`Args`).
    """

    vhost: str
    exchange: str
    routing_key: str
    queues: tuple[str, ...] = ()
    hops: frozenset = frozenset()

    @property
    def title(self) -> str:
        where = ", ".join(self.queues) if self.queues else "unroutable"
        exchange = self.exchange or DEFAULT_EXCHANGE_LABEL
        return f"route: {exchange} [{self.routing_key}] -> {where}"


def highlight_from_route(vhost: str, exchange: str, routing_key: str, result: Any) -> Highlight:
    """A :class:`Highlight` from a routing-engine result (``.queues``, ``.routes[].path[]``)."""
    hops = set()
    for route in getattr(result, "routes", ()) or ():
        for hop in getattr(route, "path", ()) or ():
            hops.add((hop.source, hop.destination_type, hop.destination, hop.routing_key,
                      str(getattr(hop, "via", "") or ""), Args(getattr(hop, "arguments", None) or {})))
    queues = tuple(sorted(set(getattr(result, "queues", ()) or ())))
    return Highlight(vhost, exchange, routing_key, queues, frozenset(hops))


def _is_alternate(via: str) -> bool:
    return "alternate" in via.lower()


def _effective_policy(topology: Topology, vhost: str, kind: str, name: str):
    """The one policy that applies to an object: highest priority among the matching ones."""
    best = None
    for p in topology.policies.values():
        if p.vhost != vhost or p.apply_to not in ("all", kind + "s"):
            continue
        try:
            if not re.search(p.pattern, name):
                continue
        except re.error:
            continue
        if best is None or (p.priority, p.name) > (best.priority, best.name):
            best = p
    return best


def _setting(topology: Topology, obj, argument: str, policy_key: str) -> tuple[str | None, str]:
    """An argument, else the applying policy's key: (value, where) with where '' or 'policy P'."""
    value = obj.arguments.get(argument)
    if isinstance(value, str):
        return value, ""
    policy = _effective_policy(topology, obj.vhost, obj.kind, obj.name)
    if policy is not None and isinstance(policy.definition.get(policy_key), str):
        return policy.definition[policy_key], f"policy {policy.name}"
    return None, ""


def _short(value: Any) -> str:
    value = thaw(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _binding_label(b: Binding, source: Exchange | None) -> str:
    source_type = source.type if source is not None else ""
    parts = []
    if source_type == "headers" or (b.arguments and not b.routing_key):
        args = [f"{k}={_short(v)}" for k, v in b.arguments.items()]
        parts.append(" ".join(args) if args else "(all)")
        if b.routing_key:
            parts.append(f"key {b.routing_key}")
    elif source_type == "fanout":
        parts.append(b.routing_key)
    else:
        parts.append(b.routing_key if b.routing_key else "(empty key)")
        if b.arguments:
            parts.append(" ".join(f"{k}={_short(v)}" for k, v in b.arguments.items()))
    return " ".join(p for p in parts if p)


def _exchange_detail(x: Exchange) -> str:
    flags = [x.type]
    if x.arguments.get("x-super-stream") is True:
        flags.append("super stream")
    if x.internal:
        flags.append("internal")
    if x.auto_delete:
        flags.append("auto-delete")
    return ", ".join(flags)


def _queue_detail(q: Queue) -> str:
    flags = []
    qtype = q.arguments.get("x-queue-type")
    if isinstance(qtype, str) and qtype != "classic":
        flags.append(qtype)
    if q.exclusive:
        flags.append("exclusive")
    if q.auto_delete:
        flags.append("auto-delete")
    return ", ".join(flags)


_PREFIXES = {"exchange": "e", "queue": "q", "user": "u", "vhost": "h", "remote": "r"}
# config kinds that put their vhost in the picture
_LINK_KINDS = ("permission", "topic_permission", "federation_upstream", "shovel")


def build_diagram(topology: Topology, vhosts: Iterable[str] | None = None,
                  highlight: Highlight | None = None, *, extras: Extras | None = None,
                  color_by: str = "kind") -> Diagram:
    """The nodes and edges to draw for ``topology`` (only ``vhosts`` when given), deterministic."""
    if color_by not in COLOR_BY:
        raise ValueError(f"unknown color_by {color_by!r} (expected one of {', '.join(COLOR_BY)})")
    extras = extras or Extras()
    filtered = vhosts is not None
    names = set(vhosts) if vhosts is not None else set(topology.vhost_names()) | set(extras.external)
    if not filtered:
        names |= {o.vhost for o in extras.config if getattr(o, "vhost", "") and o.kind in _LINK_KINDS}
    names = sorted(names)
    diagram = Diagram(vhosts=names, title=highlight.title if highlight else "", color_by=color_by)
    ids: dict[tuple, str] = {}
    counters = dict.fromkeys(_PREFIXES, 0)

    def add_node(kind: str, vhost: str | None, name: str, detail: str = "", declared: bool = True) -> str:
        key = (kind, vhost, name)
        if key not in ids:
            ids[key] = f"{_PREFIXES[kind]}{counters[kind]}"
            counters[kind] += 1
            external = declared is False and kind in ("exchange", "queue") and \
                name in (extras.external.get(vhost) or {}).get(kind, {})
            owner = None
            if color_by == "owner" and kind in ("exchange", "queue") and declared:
                owner = extras.owners.get((kind, vhost, name)) or NO_OWNER
            diagram.nodes.append(Node(ids[key], kind, vhost if vhost in names or kind in ("exchange", "queue") else None,
                                      name, detail, declared, external, owner))
        return ids[key]

    hops = set(highlight.hops) if highlight else set()
    used_hops: set[tuple] = set()

    def hit(source: str, dtype: str, destination: str, key: str | None, alternate: bool, vhost: str,
            arguments: Args = EMPTY_ARGS) -> bool:
        if not highlight or highlight.vhost != vhost:
            return False
        for hop in hops:
            if hop[0] == source and hop[1] == dtype and hop[2] == destination and \
                    _is_alternate(hop[4]) == alternate and (alternate or (hop[3] == key and hop[5] == arguments)):
                used_hops.add(hop)
                return True
        return False

    for vhost in names:
        exchanges = sorted((x for x in topology.exchanges.values() if x.vhost == vhost), key=lambda x: x.name)
        queues = sorted((q for q in topology.queues.values() if q.vhost == vhost), key=lambda q: q.name)
        for x in exchanges:
            add_node("exchange", vhost, x.name, _exchange_detail(x))
        for q in queues:
            add_node("queue", vhost, q.name, _queue_detail(q))
        external = extras.external.get(vhost) or {}
        for kind in ("exchange", "queue"):
            for name, typ in sorted((external.get(kind) or {}).items()):
                if (kind, vhost, name) not in ids:
                    add_node(kind, vhost, name, ", ".join(p for p in (typ or "", "external") if p), declared=False)

        def exchange_ref(name: str) -> str:
            x = topology.exchange(vhost, name)
            if x is not None:
                return add_node("exchange", vhost, name, _exchange_detail(x))
            return add_node("exchange", vhost, name, "", declared=False)

        def queue_ref(name: str) -> str:
            q = topology.queue(vhost, name)
            return add_node("queue", vhost, name, _queue_detail(q) if q else "", declared=q is not None)

        for b in sorted((b for b in topology.bindings if b.vhost == vhost), key=lambda b: b.key):
            src = exchange_ref(b.source)
            dst = queue_ref(b.destination) if b.destination_type == "queue" else exchange_ref(b.destination)
            diagram.edges.append(Edge(src, dst, "binding", _binding_label(b, topology.exchange(vhost, b.source)),
                                      hit(b.source, b.destination_type, b.destination, b.routing_key, False, vhost,
                                          b.arguments)))
        for x in exchanges:
            ae, where = _setting(topology, x, "alternate-exchange", "alternate-exchange")
            if ae is not None:
                label = "alternate" + (f" ({where})" if where else "")
                diagram.edges.append(Edge(ids[("exchange", vhost, x.name)], exchange_ref(ae), "alternate", label,
                                          hit(x.name, "exchange", ae, None, True, vhost)))
        for q in queues:
            dlx, where = _setting(topology, q, "x-dead-letter-exchange", "dead-letter-exchange")
            if dlx is not None:
                dlrk = q.arguments.get("x-dead-letter-routing-key")
                label = "dead-letter" + (f" [{dlrk}]" if isinstance(dlrk, str) else "") + \
                    (f" ({where})" if where else "")
                diagram.edges.append(Edge(ids[("queue", vhost, q.name)], exchange_ref(dlx), "dead-letter", label))

    if extras.config and (extras.users or extras.links):
        from .graph_links import add_links

        add_links(topology, extras, names, filtered, add_node, diagram.edges.append, _effective_policy)
    if color_by == "owner":
        found = {n.owner for n in diagram.nodes if n.owner is not None}
        diagram.owners = sorted(found - {NO_OWNER}) + ([NO_OWNER] if NO_OWNER in found else [])

    if highlight and highlight.vhost in names:
        # hops the drawn edges do not cover (the default exchange, for one) are drawn extra
        for hop in sorted(hops - used_hops, key=lambda h: (h[:5], repr(h[5].canon))):
            source, dtype, destination, key, via = hop[:5]
            vhost = highlight.vhost
            src = ids.get(("exchange", vhost, source)) or add_node("exchange", vhost, source, "", False)
            if dtype == "queue":
                dst = ids.get(("queue", vhost, destination)) or add_node("queue", vhost, destination, "", False)
            else:
                dst = ids.get(("exchange", vhost, destination)) or add_node("exchange", vhost, destination, "", False)
            kind = "alternate" if _is_alternate(via) else "binding"
            diagram.edges.append(Edge(src, dst, kind, "alternate" if kind == "alternate" else key, True))
        start = ids.get(("exchange", highlight.vhost, highlight.exchange))
        if start:
            diagram.highlighted_nodes.add(start)
        for edge in diagram.edges:
            if edge.highlighted:
                diagram.highlighted_nodes.update((edge.source, edge.target))
    return diagram


# ---------------------------------------------------------------- Mermaid

# Characters kept as they are inside a quoted Mermaid label; everything else becomes an
# entity code (#35; for '#', #quot; would also do for '"'), which Mermaid decodes.
_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 ._\-/:*+=,@!?$^~'()\[\]{}]")


def mermaid_escape(text: str) -> str:
    """``text`` safe inside a double-quoted Mermaid label: unusual characters as ``#NNN;``."""
    out = []
    for ch in text:
        if _MERMAID_SAFE.fullmatch(ch) or (ord(ch) > 127 and ch.isprintable() and not ch.isspace()):
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def _mermaid_label(*lines: str) -> str:
    return '"' + "<br/>".join(mermaid_escape(line) for line in lines if line != "") + '"'


def _node_label_lines(n: Node) -> list[str]:
    if n.kind == "vhost":
        return ["vhost " + n.name]
    return [n.name if n.name != "" else DEFAULT_EXCHANGE_LABEL, n.detail]


_MERMAID_SHAPES = {"exchange": "{{{{{}}}}}", "queue": "[({})]", "user": "([{}])", "vhost": "[/{}/]",
                   "remote": "[[{}]]"}


def _groups(diagram: Diagram) -> list[tuple[int, str, list[Node]]]:
    """(index, vhost, nodes) per drawn vhost, then (-1, "", nodes outside every vhost) if any."""
    out = [(i, v, [n for n in diagram.nodes if n.vhost == v]) for i, v in enumerate(diagram.vhosts)]
    drawn = set(diagram.vhosts)
    outside = [n for n in diagram.nodes if n.vhost not in drawn]
    if outside:
        out.append((-1, "", outside))
    return out


def render_mermaid(diagram: Diagram) -> str:
    """Mermaid ``flowchart LR`` text (renders in GitHub and GitLab Markdown)."""
    lines = ["flowchart LR"]
    if diagram.title:
        # front matter is YAML: a JSON string (ASCII-only) is a valid YAML scalar
        lines.insert(0, "---\ntitle: " + json.dumps(diagram.title.replace("\n", " ")) + "\n---")
    grouped = len(diagram.vhosts) > 1
    for i, vhost, nodes in _groups(diagram):
        indent = "  "
        if grouped and i >= 0:
            lines.append(f"  subgraph v{i} [{_mermaid_label('vhost ' + vhost)}]")
            indent = "    "
        for n in nodes:
            lines.append(f"{indent}{n.id}{_MERMAID_SHAPES[n.kind].format(_mermaid_label(*_node_label_lines(n)))}")
        if grouped and i >= 0:
            lines.append("  end")
    owner_colors = diagram.owner_colors() if diagram.color_by == "owner" else {}
    externals = [n.id for n in diagram.nodes if n.external]
    legend = list(owner_colors) + (["external (another file set)"] if owner_colors and externals else [])
    if legend:
        lines.append(f"  subgraph legend [{_mermaid_label('owners')}]")
        for k, text in enumerate(legend):
            lines.append(f"    k{k}[{_mermaid_label(text)}]")
        lines.append("  end")
    arrows = {"binding": "-->", "alternate": "-.->", "dead-letter": "-.->", "permission": "-->",
              "topic-permission": "-.->", "federation": "-.->", "shovel": "-.->"}
    for e in diagram.edges:
        arrow = "==>" if e.highlighted and e.kind == "binding" else arrows[e.kind]
        label = f"|{_mermaid_label(*e.label.split(chr(10)))}|" if e.label else ""
        lines.append(f"  {e.source} {arrow}{label} {e.target}")
    classes: list[tuple[str, list[str]]] = []
    if owner_colors:
        for k, (owner, (fill, stroke)) in enumerate(owner_colors.items()):
            lines.append(f"  classDef owner{k} fill:{fill},stroke:{stroke}")
            classes.append((f"owner{k}", [n.id for n in diagram.nodes if n.owner == owner] + [f"k{k}"]))
    else:
        lines.append(f"  classDef exchange fill:{_EXCHANGE_FILL},stroke:{_EXCHANGE_STROKE}")
        lines.append(f"  classDef queue fill:{_QUEUE_FILL},stroke:{_QUEUE_STROKE}")
        classes += [("exchange", [n.id for n in diagram.nodes if n.kind == "exchange" and not n.external]),
                    ("queue", [n.id for n in diagram.nodes if n.kind == "queue" and not n.external])]
    lines.append("  classDef undeclared stroke-dasharray:4 3")
    classes.append(("undeclared", [n.id for n in diagram.nodes if not n.declared and not n.external]))
    for kind, fill, stroke in (("user", _USER_FILL, _USER_STROKE), ("vhost", _VHOST_FILL, _VHOST_STROKE),
                               ("remote", _REMOTE_FILL, _REMOTE_STROKE)):
        members = [n.id for n in diagram.nodes if n.kind == kind]
        if members:
            lines.append(f"  classDef {kind} fill:{fill},stroke:{stroke}")
            classes.append((kind, members))
    if externals:
        lines.append(f"  classDef external fill:{_FADED_FILL},stroke:{_FADED_STROKE},color:{_FADED_TEXT},"
                     f"stroke-dasharray:4 3")
        classes.append(("external", externals + ([f"k{len(legend) - 1}"] if len(legend) > len(owner_colors) else [])))
    lines.append(f"  classDef route stroke:{_ROUTE},stroke-width:3px")
    classes.append(("route", [n.id for n in diagram.nodes if n.id in diagram.highlighted_nodes]))
    for cls, members in classes:
        if members:
            lines.append(f"  class {','.join(members)} {cls}")
    for index, e in enumerate(diagram.edges):
        color = _EDGE_STYLES[e.kind][0]
        if e.highlighted:
            lines.append(f"  linkStyle {index} stroke:{_ROUTE},stroke-width:3px")
        elif color:
            lines.append(f"  linkStyle {index} stroke:{color}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- DOT

def dot_escape(text: str) -> str:
    """``text`` safe inside a double-quoted DOT string, shown literally (not as escString or entity)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "&":  # Graphviz decodes HTML entities (&amp;, &#945;) even in plain labels
            out.append("&amp;")
        elif ch == "\n":
            out.append("\\n")
        elif unicodedata.category(ch) in ("Cc", "Cs"):  # control characters: shown as \x07
            out.append(f"\\\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _dot_attrs(**attrs: Any) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None or value == "":
            continue
        parts.append(f'{key}="{value}"')
    return (" [" + ", ".join(parts) + "]") if parts else ""


_DOT_SHAPES = {"exchange": ("hexagon", "filled", _EXCHANGE_FILL, _EXCHANGE_STROKE),
               "queue": ("cylinder", "filled", _QUEUE_FILL, _QUEUE_STROKE),
               "user": ("box", "rounded,filled", _USER_FILL, _USER_STROKE),
               "vhost": ("folder", "filled", _VHOST_FILL, _VHOST_STROKE),
               "remote": ("box3d", "filled", _REMOTE_FILL, _REMOTE_STROKE)}


def render_dot(diagram: Diagram) -> str:
    """Graphviz DOT text (``dot -Tsvg``/``-Tpng`` renders it)."""
    lines = ["digraph topology {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    if diagram.title:
        lines.append(f'  label="{dot_escape(diagram.title)}"; labelloc=t; fontname="Helvetica";')
    grouped = len(diagram.vhosts) > 1
    owner_colors = diagram.owner_colors() if diagram.color_by == "owner" else {}
    for i, vhost, nodes in _groups(diagram):
        indent = "  "
        if grouped and i >= 0:
            lines.append(f"  subgraph cluster_{i} {{")
            lines.append(f'    label="{dot_escape("vhost " + vhost)}"; style=rounded; color="#9e9e9e";')
            indent = "    "
        for n in nodes:
            label = "\\n".join(dot_escape(line) for line in _node_label_lines(n) if line)
            hot = n.id in diagram.highlighted_nodes
            shape, style, fill, stroke = _DOT_SHAPES[n.kind]
            fontcolor = None
            if n.owner is not None and n.owner in owner_colors:
                fill, stroke = owner_colors[n.owner]
            if n.external:
                fill, stroke, fontcolor = _FADED_FILL, _FADED_STROKE, _FADED_TEXT
            if not n.declared:
                style += ",dashed"
            attrs = _dot_attrs(label=label, shape=shape, style=style, fillcolor=fill,
                               color=_ROUTE if hot else stroke, fontcolor=fontcolor,
                               penwidth="2.5" if hot else None)
            lines.append(f"{indent}{n.id}{attrs};")
        if grouped and i >= 0:
            lines.append("  }")
    externals = any(n.external for n in diagram.nodes)
    if owner_colors:
        lines.append("  subgraph cluster_legend {")
        lines.append('    label="owners"; style=rounded; color="#9e9e9e";')
        k = 0
        for k, (owner, (fill, stroke)) in enumerate(owner_colors.items()):
            lines.append(f"    k{k}{_dot_attrs(label=dot_escape(owner), shape='box', style='filled', fillcolor=fill, color=stroke)};")
        if externals:
            lines.append(f"    k{k + 1}{_dot_attrs(label='external (another file set)', shape='box', style='filled,dashed', fillcolor=_FADED_FILL, color=_FADED_STROKE, fontcolor=_FADED_TEXT)};")
        lines.append("  }")
    for e in diagram.edges:
        color, dashed = _EDGE_STYLES[e.kind]
        style = "dashed" if dashed else None
        if e.highlighted:
            color = _ROUTE
        attrs = _dot_attrs(label=dot_escape(e.label), style=style, color=color,
                           fontcolor=color if e.kind != "binding" or e.highlighted else None,
                           penwidth="2.5" if e.highlighted else None)
        lines.append(f"  {e.source} -> {e.target}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(topology: Topology, fmt: str = "mermaid", vhosts: Iterable[str] | None = None,
           highlight: Highlight | None = None, *, extras: Extras | None = None, color_by: str = "kind") -> str:
    """Diagram text for ``topology`` in ``fmt`` (``mermaid`` or ``dot``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown graph format {fmt!r} (expected one of {', '.join(FORMATS)})")
    diagram = build_diagram(topology, vhosts, highlight, extras=extras, color_by=color_by)
    if fmt == "dot":
        return render_dot(diagram)
    return render_mermaid(diagram)
