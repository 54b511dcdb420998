"""``topoform fmt``: topology files in canonical form, comments kept.

Canonical form:

- **key order**: the fields of each object in the order the documentation lists them
  (``version, rabbitmq_version, include, vhosts, tests``; a vhost's settings, then
  ``exchanges, queues, bindings, policies``; ``type, durable, auto_delete, internal,
  arguments`` for an exchange, ...); unknown keys after them, as written. Object names
  (queues, exchanges, ...) and argument keys keep the order the user chose.
- **quoting** and **flow style**: the rules of :mod:`topoform.yamlstyle`, which ``import``
  and ``scan -o`` also follow (their output is a fixed point of fmt): a string plain when
  that reads back as the same string, else quoted (``"#"``, ``"*.created"``, ``"60000"``,
  ``"yes"``); a plain value keeps its meaning (``durable: yes`` stays plain, it is a
  boolean); objects (an exchange, a queue, a user, ...) block style; short collections
  inside them (``{exchange: x, routing_key: y}``, ``[a, b]``; at most :data:`FLOW_WIDTH`
  characters, no comment inside) flow style; two-space indentation, list items indented
  under their key.
- comments and blank lines stay where they were (ruamel.yaml's round trip).

Before anything is written, the new text is checked to mean exactly what the old one
did (the YAML node trees topoform reads, compared with key order ignored); a file whose
meaning would change is refused, never rewritten.

Uses ruamel.yaml (comment-preserving round trip); imported only here.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

from . import yamlstyle
from .errors import InputError
from .yamlstyle import FLOW_WIDTH  # the layout rules every writer shares (topoform/yamlstyle.py)

__all__ = ["format_text", "FormatResult", "FLOW_WIDTH", "same_meaning"]

# Canonical field order per context; a context maps a key to the context of its value.
ORDER = {
    "root": ("version", "rabbitmq_version", "owner", "include", "variables", "vhosts", "tests", "users",
             "global_parameters"),
    "vhost": ("description", "tags", "default_queue_type", "owns", "external", "exchanges", "queues", "bindings",
              "policies"),
    "exchange": ("type", "durable", "auto_delete", "internal", "arguments"),
    "queue": ("durable", "exclusive", "auto_delete", "arguments", "bindings"),
    "binding": ("source", "exchange", "destination", "destination_type", "routing_key", "arguments"),
    "policy": ("pattern", "apply_to", "priority", "definition"),
    "test": ("name", "vhost", "exchange", "routing_key", "headers", "expect"),
}
# (context, key) -> what the value is: ("map", ctx) a mapping of names to ctx objects,
# ("list", ctx) a list of ctx objects, ctx an object, "leaf" a mapping kept as written.
CHILDREN: dict[tuple[str, str], Any] = {
    ("root", "vhosts"): ("map", "vhost"),
    ("root", "tests"): ("list", "test"),
    ("vhost", "exchanges"): ("map", "exchange"),
    ("vhost", "queues"): ("map", "queue"),
    ("vhost", "bindings"): ("list", "binding"),
    ("vhost", "policies"): ("map", "policy"),
    ("queue", "bindings"): ("list", "binding"),
    ("root", "variables"): ("map", "variable"),  # one declaration per line: {default: 1, description: ...}
}


def _config_children() -> None:
    """The config kinds' sections (users, permissions, shovels, ...), one row per kind, from
    topoform/config/kinds.py: each a map of objects; a vhost's ``limits`` is one object."""
    from .config import kinds

    for row in kinds.KINDS.values():
        if row.kind == "user_limit":  # written inside its user
            continue
        parent = "root" if row.scope == "global" else "vhost"
        CHILDREN[(parent, row.file_key)] = "config" if row.kind == "vhost_limit" else ("map", "config")


_config_children()
CONTAINERS = {"root", "vhost"}  # never flow style
OBJECTS = {"exchange", "queue", "policy", "config"}  # block style (an empty one is {})


@dataclass(frozen=True)
class FormatResult:
    text: str
    changed: bool


def _text_resolver():
    """A resolver that types no plain scalar (only the empty one, null): every plain scalar
    stays the text the user typed (``0x1F``, ``010``, ``yes``, ``08_``), key or value,
    so fmt never rewrites a number or a name; topoform's reader gives them their types."""
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    class TextResolver(VersionedResolver):
        def resolve(self, kind, value, implicit):
            if kind is ScalarNode and implicit[0]:
                return super().resolve(kind, "" if value in ("", None) else "text", implicit)
            return super().resolve(kind, value, implicit)

    return TextResolver


def _yaml():
    from ruamel.yaml import YAML
    from ruamel.yaml.emitter import Emitter

    class _Emitter(Emitter):
        MAX_SIMPLE_KEY_LENGTH = 1000  # a 255-byte queue name stays `name:`, not `? name` (as import writes it)

    y = YAML(typ="rt")
    y.Emitter = _Emitter
    y.Resolver = _text_resolver()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.brace_single_entry_mapping_in_flow_sequence = True  # [{a: 1}], not [a: 1]: as PyYAML writes it
    y.width = 2 ** 30  # never fold a line (as import writes): flow style is chosen here, by FLOW_WIDTH
    y.allow_duplicate_keys = False  # a duplicate key is an error (validate shows both places)
    return y


# ---------------------------------------------------------------------- quoting
_PYYAML_RESOLVER = None


def _pyyaml_plain_tag(value: str) -> str:
    """The tag topoform's YAML 1.1 reader gives ``value`` written plain."""
    global _PYYAML_RESOLVER
    import yaml

    if _PYYAML_RESOLVER is None:
        _PYYAML_RESOLVER = yaml.resolver.Resolver()
    return _PYYAML_RESOLVER.resolve(yaml.ScalarNode, value, (True, False))


def _plain_is_safe(value: str) -> bool:
    """Would ``value`` written plain read back as this very string (YAML 1.1 and 1.2, block and flow)?"""
    return yamlstyle.plain_ok(value)


def _requote(value: Any) -> Any:
    """A string scalar in canonical quoting; anything else unchanged."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

    if type(value) is str:  # written plain: keep it plain if it means something else quoted
        if _pyyaml_plain_tag(value) != "tag:yaml.org,2002:str" or _plain_is_safe(value):
            return value
        return _quoted(value)
    if isinstance(value, (DoubleQuotedScalarString, SingleQuotedScalarString)):
        text = str(value)
        return text if _plain_is_safe(text) else _quoted(text)
    return value


def _quoted(text: str) -> Any:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

    return SingleQuotedScalarString(text) if yamlstyle.quote_style(text) == "'" else DoubleQuotedScalarString(text)


# ---------------------------------------------------------------------- structure
def _has_comments(node: Any) -> bool:
    ca = getattr(node, "ca", None)
    if ca is None:
        return False
    if ca.comment or getattr(ca, "end", None) or any(v for v in ca.items.values() if any(v)):
        return True
    return False


def _has_anchor(node: Any) -> bool:
    anchor = getattr(node, "anchor", None)
    return bool(anchor is not None and getattr(anchor, "value", None)) or bool(getattr(node, "merge", None))


def _can_flow(node: Any) -> bool:
    """No comment, anchor or multi-line scalar anywhere in ``node``: it could be one line."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, (CommentedMap, CommentedSeq)):
        if _has_comments(node) or _has_anchor(node):
            return False
        return all(_can_flow(v) for v in (node.values() if isinstance(node, CommentedMap) else node))
    if isinstance(node, (dict, list)):
        return False
    if isinstance(node, str) and ("\n" in node or type(node).__name__ in ("LiteralScalarString",
                                                                           "FoldedScalarString")):
        return False
    return True


def _scalar_length(value: Any) -> int:
    """A scalar's length as written (after :func:`_requote`), as topoform/dump.py counts it."""
    if value is None:
        return 4
    if isinstance(value, bool):
        return 4 if value else 5
    text = str(value)
    if type(value) is str:  # plain
        return len(text)
    if isinstance(value, str):  # quoted
        return yamlstyle.quoted_length(text)
    return len(text)


def _set_style(node: Any, context: str | None) -> None:
    """Flow style for a short collection (at most two levels, no comment), block otherwise."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(node, (CommentedMap, CommentedSeq)):
        return
    if context in CONTAINERS:
        if len(node):
            node.fa.set_block_style()
        return
    if len(node) == 0:
        node.fa.set_flow_style()
        return
    if context in OBJECTS:
        node.fa.set_block_style()
        return
    if _can_flow(node) and yamlstyle.flows(node, _scalar_length):
        node.fa.set_flow_style()
    else:
        node.fa.set_block_style()


def _reorder(node: Any, order: tuple[str, ...]) -> None:
    keys = list(node.keys())
    known = [k for k in order if k in node]
    rest = [k for k in keys if not (isinstance(k, str) and k in order) and k != "<<"]
    wanted = (["<<"] if "<<" in keys else []) + known + rest  # a merge key (<<: *defaults) first, as written
    if wanted == keys:
        return
    for k in wanted:
        node.move_to_end(k)


def _put(node: Any, key: Any, value: Any) -> None:
    """Assign without ruamel's habit of keeping the old scalar's quoting style."""
    from ruamel.yaml.comments import CommentedMap

    if isinstance(node, CommentedMap):
        super(CommentedMap, node).__setitem__(key, value)
    else:
        list.__setitem__(node, key, value)


def _walk(node: Any, context: str | None) -> None:
    """Reorder, requote and restyle ``node`` (a value in ``context``; None: kept as written)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        if context in ORDER:
            _reorder(node, ORDER[context])
        for k in list(node.keys()):
            v = node[k]
            child = CHILDREN.get((context, k)) if context else None
            if isinstance(child, tuple) and child[0] == "map" and isinstance(v, CommentedMap):
                for name in list(v.keys()):
                    item = v[name]
                    _walk(item, child[1])
                    _put(v, name, _requote(item))
                    _set_style(v[name], child[1])
                v.fa.set_block_style() if len(v) else None
                continue
            if isinstance(child, tuple) and child[0] == "list" and isinstance(v, CommentedSeq):
                for i, item in enumerate(v):
                    _walk(item, child[1])
                    _set_style(item, child[1])
                v.fa.set_block_style() if len(v) else None
                continue
            _walk(v, child if isinstance(child, str) else None)
            _put(node, k, _requote(v))
            _set_style(node[k], None if context is None else child if isinstance(child, str) else "field")
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            _walk(item, None)
            _put(node, i, _requote(item))
            _set_style(node[i], None)
            if isinstance(node[i], CommentedSeq) and _can_flow(node[i]):
                node[i].fa.set_flow_style()  # a list in a list is one line (topoform/yamlstyle.py)


# ---------------------------------------------------------------------- meaning
def _meaning(text: str) -> Any:
    """What topoform reads from ``text``: the YAML 1.1 node tree, key order ignored, scalars typed."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = list(yaml.compose_all(text, Loader=loader_cls))
    constructor = yaml.SafeLoader("")
    memo: dict[int, Any] = {}

    def scalar(node):
        if node.tag == "tag:yaml.org,2002:str":
            return ("str", node.value)
        try:
            return (node.tag, constructor.construct_object(node, deep=True))
        except Exception:  # noqa: BLE001 - an odd tag: compare its text
            return (node.tag, node.value)

    def walk(node):
        if id(node) in memo:
            return memo[id(node)]
        if isinstance(node, yaml.ScalarNode):
            out = scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            memo[id(node)] = ("seq-in-progress",)
            out = ("seq", node.tag, tuple(walk(n) for n in node.value))
        else:
            memo[id(node)] = ("map-in-progress",)
            # keys are names as typed (topoform takes the text); values are typed
            items = [((k.value if isinstance(k, yaml.ScalarNode) else repr(walk(k))), walk(v)) for k, v in node.value]
            out = ("map", node.tag, tuple(sorted(items, key=lambda kv: (str(kv[0]), repr(kv[1])))))
        memo[id(node)] = out
        return out

    return tuple(walk(d) for d in docs)


def same_meaning(old: str, new: str) -> bool:
    try:
        return _meaning(old) == _meaning(new)
    except Exception:  # noqa: BLE001 - unreadable either way: not provably the same
        return False


# ---------------------------------------------------------------------- entry point
def format_text(text: str, path: str = "<string>") -> FormatResult:
    """``text`` in canonical form. InputError (one line, with the position) when it is not YAML
    or when formatting would change what it means."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if not text.strip():
        return FormatResult(text, False)
    y = _yaml()
    try:
        docs = list(y.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise InputError(f"{where}: not valid YAML: {exc.problem or exc.context}; fmt left it unchanged") from None
    except YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}; fmt left it unchanged") from None
    if len(docs) != 1:
        raise InputError(f"{path}: holds {len(docs)} YAML documents; a topology file holds one")
    doc = docs[0]
    from ruamel.yaml.comments import CommentedMap

    if doc is not None and not isinstance(doc, CommentedMap):  # /etc/passwd by mistake: never rewrite, never quote it
        kind = "a list" if isinstance(doc, list) else "a single value"
        raise InputError(f"{path}:{_first_content_line(text)}:1: the top level is {kind}, not a mapping (its content "
                         "is not shown); fmt left it unchanged")
    if isinstance(doc, CommentedMap):
        _walk(doc, "root")
        _set_style(doc, "root")
    out = io.StringIO()
    try:
        y.dump(doc, out)
    except Exception as exc:  # noqa: BLE001 - ruamel cannot write it back: leave the file alone
        raise InputError(f"{path}: fmt cannot rewrite this file ({type(exc).__name__}); left it unchanged") from None
    new = out.getvalue()
    if text.startswith("---") and not new.startswith("---"):
        new = "---\n" + new
    if new == text:
        return FormatResult(text, False)
    if not same_meaning(text, new):
        raise InputError(f"{path}: fmt would change what this file means (a value's type or text); "
                         "left it unchanged", hint="quote the value you mean as a string")
    return FormatResult(new, True)


def _first_content_line(text: str) -> int:
    """The 1-based line of a document's first content (after blank lines, comments, directives, ``---``)."""
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "%")) and stripped != "---":
            return number
    return 1


def format_file(path: str, display: str | None = None) -> FormatResult:
    """Read and format one file (does not write)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise InputError(f"{display or path}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read {display or path}: {exc.strerror or exc}") from None
    bom = "\ufeff" if text.startswith("\ufeff") else ""  # a UTF-8 byte order mark stays, as CRLF does
    text = text[len(bom):]
    if "\r\n" in text:
        result = format_text(text.replace("\r\n", "\n"), display or path)
        result = FormatResult(result.text.replace("\n", "\r\n"), result.changed)
    else:
        result = format_text(text, display or path)
    return FormatResult(bom + result.text, result.changed) if bom else result


def write_atomically(path: str, text: str) -> None:
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".topoform-fmt-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
