"""Loading topology files: YAML -> positions -> JSON Schema -> model -> reference and broker checks.

This module owns the file format of SPEC section 1: finding the files (``-f``,
``$TOPOFORM_FILE``, ``./topoform.yaml``, directories, ``include:`` globs), parsing them
with line numbers, checking their structure against ``schemas/topology.schema.json``,
mapping them onto :mod:`topoform.model`, and the checks a schema cannot express
(references between objects, what the broker would refuse at declare time).

Bad content never raises: every problem becomes a :class:`~topoform.errors.Finding`
with a ``PATH:LINE:COL`` position, and all of them are reported together.

Speed matters (a 30,000-object file must load in at most 1.3x a bare
``yaml.load(CSafeLoader)``), so: the YAML node tree is built once by libyaml and
turned into Python values by a lean walker that also catches duplicate keys; the
schema is checked by a compiled fast path, and ``jsonschema`` runs only when that
fails; positions are computed from the node tree only when something needs them.
Once the checks are done the node tree and the plain data are dropped (only the file
text is kept; a later position lookup composes the tree again), so the cyclic
collector, paused while loading, does not rescan them when it resumes.

Imports: yaml, jsonschema (through :mod:`topoform.schema`), ``model`` and ``errors``.
Never prints.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import schema as _schema
from .errors import Finding, InputError, Position
from .perf import gc_paused
from .model import EMPTY_ARGS, Args, Binding, Exchange, Policy, Queue, RouteTest, Topology, Vhost

try:  # libyaml is several times faster; the pure-Python loader gives the same nodes.
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

__all__ = ["LoadResult", "discover_files", "load_topology", "load_text", "DEFAULT_FILE", "ENV_FILE"]

DEFAULT_FILE = "topoform.yaml"
ENV_FILE = "TOPOFORM_FILE"
YAML_SUFFIXES = (".yaml", ".yml")
QUEUE_TYPES = ("classic", "quorum", "stream")
MAX_SHORTSTR = 255  # AMQP short string: names and routing keys (RABBITMQ-SEMANTICS 1.5)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_IN_PROGRESS = object()

# Arguments a queue type does not accept at creation: the broker refuses them with
# 406 "invalid arg ... of queue type ..." (RABBITMQ-SEMANTICS 1.2, check_arguments_key).
_QUORUM_ONLY = ("x-delivery-limit", "x-dead-letter-strategy", "x-max-in-memory-length", "x-max-in-memory-bytes",
                "x-quorum-initial-group-size")
_CLASSIC_ONLY = ("x-max-priority", "x-queue-mode", "x-queue-version", "x-queue-master-locator")
_STREAM_ONLY = ("x-max-age", "x-stream-max-segment-size-bytes", "x-initial-cluster-size")
_NOT_FOR_TYPE = {
    "classic": _QUORUM_ONLY + _STREAM_ONLY,
    "quorum": _CLASSIC_ONLY + _STREAM_ONLY,
    "stream": _CLASSIC_ONLY + ("x-delivery-limit", "x-dead-letter-strategy", "x-max-in-memory-length",
                               "x-max-in-memory-bytes", "x-message-ttl", "x-expires", "x-dead-letter-exchange",
                               "x-dead-letter-routing-key", "x-max-length", "x-single-active-consumer"),
}


# ---------------------------------------------------------------- result

@dataclass(frozen=True)
class LoadResult:
    """Everything read from a set of files.

    ``topology`` holds what loaded cleanly (objects with structural errors are left
    out); ``findings`` every error and warning, sorted by position; ``files`` every
    file read, includes expanded, in load order; ``positions`` maps a resource
    ``key`` to where it was first declared (computed on first lookup).
    """

    topology: Topology
    findings: tuple[Finding, ...] = ()
    files: tuple[str, ...] = ()
    positions: Mapping[tuple, Position] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------- discovery

def _resolve(cwd: str, path: str) -> str:
    """``path`` as the user gave it when it works from here, else joined with ``cwd``.

    Messages show the path the user typed; only when the command runs for another
    directory (tests run the CLI in-process with their own cwd) is it prefixed.
    """
    if os.path.isabs(path) or os.path.abspath(cwd) == os.getcwd():
        return path
    return os.path.join(cwd, path)


def _dir_files(directory: str) -> list[str]:
    names = sorted(n for n in os.listdir(directory) if n.endswith(YAML_SUFFIXES) and not n.startswith("."))
    return [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]


def discover_files(file_args: Sequence[str], environ: Mapping[str, str], cwd: str) -> list[str]:
    """The topology files a command reads (SPEC section 3).

    ``-f`` paths first (a directory means every ``*.yaml``/``*.yml`` directly in it);
    without them ``$TOPOFORM_FILE``, else ``./topoform.yaml``. Raises InputError naming
    what was looked for when nothing is found.
    """
    if file_args:
        sources = [(p, "-f") for p in file_args]
    elif environ.get(ENV_FILE):
        sources = [(environ[ENV_FILE], f"${ENV_FILE}")]
    else:
        default = _resolve(cwd, DEFAULT_FILE)
        if not os.path.isfile(default):
            raise InputError(f"no topology file: no -f given, ${ENV_FILE} is not set and {default} does not exist",
                             hint="pass -f FILE or -f DIRECTORY")
        return [default]
    found: list[str] = []
    for given, origin in sources:
        path = _resolve(cwd, given)
        if os.path.isdir(path):
            files = _dir_files(path)
            if not files:
                raise InputError(f"no *.yaml or *.yml files in directory {given} (from {origin})")
            found.extend(files)
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise InputError(f"topology file not found: {given} (from {origin})")
    return found


# ---------------------------------------------------------------- parsing

class _Doc:
    """One parsed file: its display path, node tree and plain data.

    Once the load is finished, :meth:`release` drops the node tree and the data, which
    are most of the memory and (being alive when the cyclic collector resumes) most of
    its next pass; later position lookups compose the node tree again from ``text``,
    which gives the very same marks.
    """

    __slots__ = ("path", "node", "data", "ok", "index", "text", "released")

    def __init__(self, path: str, node: Any, data: Any, ok: bool, text: str | None = None):
        self.path = path
        self.node = node
        self.data = data
        self.ok = ok
        self.index: dict[int, dict] = {}
        self.text = text
        self.released = False

    def release(self) -> None:
        """Forget the node tree and data; positions are recomputed from the text on demand."""
        if self.node is not None and self.text is not None:
            self.node = None
            self.data = None
            self.index = {}
            self.released = True

    def _recompose(self) -> None:
        loader = _Loader(self.text)
        try:
            self.node = loader.get_single_node()
        finally:
            loader.dispose()
        self.released = False

    def pos(self, node: Any) -> Position:
        if node is None:
            return Position(self.path, 1, 1)
        mark = node.start_mark
        return Position(self.path, mark.line + 1, mark.column + 1)

    def locate(self, path: Sequence, at_key: bool = False) -> Position:
        """The position of the value (or, with ``at_key``, the key) at an instance path.

        Walks the node tree only along ``path``: positions cost nothing until an
        error or a caller asks for one. Falls back to the deepest node found.
        """
        if self.released:
            self._recompose()
        node = self.node
        key_node = None
        for part in path:
            found = None
            if isinstance(node, MappingNode):
                index = self.index.get(id(node))
                if index is None:
                    # built once per mapping, so positions for many objects stay linear
                    index = self.index[id(node)] = {}
                    for k, v in node.value:  # own keys: the last one wins, like the data
                        if isinstance(k, ScalarNode) and k.tag != _MERGE:
                            index[k.value] = (k, v)
                    for k, v in _pairs(node):  # then merged (<<) keys that are not overridden
                        if isinstance(k, ScalarNode):
                            index.setdefault(k.value, (k, v))
                hit = index.get(part)
                if hit is not None:
                    key_node, found = hit
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                found, key_node = node.value[part], node.value[part]
            if found is None:
                break
            node = found
        else:
            return self.pos(key_node if at_key and key_node is not None else node)
        return self.pos(node)


def _pairs(node: MappingNode) -> Iterator[tuple]:
    """Key/value node pairs, own keys first then merged ones (<<), as the data sees them."""
    merged = []
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.tag == _MERGE:
            merged.extend([v] if isinstance(v, MappingNode) else
                          [m for m in getattr(v, "value", ()) if isinstance(m, MappingNode)])
        else:
            yield k, v
    for m in merged:
        yield from _pairs(m)


class _Builder:
    """Turns a libyaml node tree into plain values, reporting what a topology cannot hold.

    Cheaper than PyYAML's constructor (no generators, no per-key hashability checks),
    which pays for the duplicate-key check. Mapping keys are the scalar text as written,
    so ``404:`` names queue "404" and ``on:`` names "on", exactly as typed.
    """

    def __init__(self, loader: Any, doc_path: str, findings: list):
        self.loader = loader
        self.path = doc_path
        self.findings = findings
        self.memo: dict[int, Any] = {}

    def pos(self, node) -> Position:
        return Position(self.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, code: str, node, message: str) -> None:
        self.findings.append(Finding(code, message, position=self.pos(node)))

    def build(self, node) -> Any:
        cls = node.__class__
        if cls is ScalarNode:
            tag = node.tag
            if tag == _STR:
                return node.value
            if tag == _INT:
                text = node.value
                if text.isdigit() and (text[0] != "0" or len(text) == 1):
                    return int(text)
                return self.loader.construct_yaml_int(node)  # signs, 0x, YAML 1.1 octal, 1_000
            if tag == _BOOL:
                return self.loader.bool_values[node.value.lower()]
            if tag == _NULL:
                return None
            if tag == _FLOAT:
                return self.loader.construct_yaml_float(node)
            return self.other(node)
        key = id(node)
        done = self.memo.get(key)
        if done is not None:
            if done is _IN_PROGRESS:
                self.error("recursive-alias", node, "recursive YAML alias: a node cannot contain itself")
                return None
            return done  # an alias of an anchored node: build once, share
        if cls is MappingNode:
            if node.tag != "tag:yaml.org,2002:map":
                return self.other(node)
            self.memo[key] = _IN_PROGRESS
            out: dict = {}
            merges = None
            for knode, vnode in node.value:
                if knode.__class__ is not ScalarNode:
                    self.error("non-scalar-key", knode, "mapping keys must be plain names, not lists or mappings")
                    continue
                if knode.tag == _MERGE:
                    merges = (merges or []) + [vnode]
                    continue
                k = knode.value
                if k in out:
                    first = self._first_key(node, k)
                    self.error("duplicate-key", knode, f"duplicate key '{k}' (first defined at line "
                                                       f"{first.start_mark.line + 1}); YAML would silently keep only "
                                                       f"the last one")
                out[k] = self.build(vnode)
            if merges:
                self._merge(out, merges)
            self.memo[key] = out
            return out
        if cls is SequenceNode:
            if node.tag != "tag:yaml.org,2002:seq":
                return self.other(node)
            self.memo[key] = _IN_PROGRESS
            out_list = [self.build(n) for n in node.value]
            self.memo[key] = out_list
            return out_list
        return self.other(node)  # pragma: no cover - libyaml builds only these three

    @staticmethod
    def _first_key(node, key):
        for k, _ in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return k
        return node  # pragma: no cover

    def _merge(self, out: dict, merges: list) -> None:
        # YAML merge keys: own keys win, then earlier merge sources win over later ones.
        for vnode in merges:
            sources = [vnode] if isinstance(vnode, MappingNode) else list(getattr(vnode, "value", []))
            for src in sources:
                value = self.build(src)
                if not isinstance(value, dict):
                    self.error("invalid-merge", src, "a merge key (<<) must refer to a mapping or a list of mappings")
                    continue
                for k, v in value.items():
                    out.setdefault(k, v)

    def other(self, node) -> Any:
        """Tags the lean path does not handle: let PyYAML construct them, refuse what AMQP cannot carry."""
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            self.error("unsupported-value", node, f"unsupported YAML tag '{node.tag}'; topology files hold plain "
                                                  f"YAML values only")
            return None
        if isinstance(value, (str, int, float, bool, bytes, list, dict)) or value is None:
            return value
        text = node.value if isinstance(node, ScalarNode) else node.tag
        self.error("unsupported-value", node, f"value {text} is a YAML {node.tag.rsplit(':', 1)[-1]}, which topoform "
                                              f"cannot send to the broker; quote it to make it a string")
        return None


# libyaml's words for the usual indentation mistakes: a hint helps more than the grammar term.
_INDENT_PROBLEMS = {"did not find expected key", "mapping values are not allowed here",
                    "did not find expected '-' indicator", "did not find expected <document start>"}


def _char_at(text: str, mark) -> str:
    lines = text.split("\n")
    if 0 <= mark.line < len(lines) and 0 <= mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""


def _first_line(text: str) -> str:
    return " ".join(str(text).split())


def _parse(text: str, path: str, findings: list) -> _Doc:
    """Parse one YAML document; syntax errors become one finding at the problem mark."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            pos = Position(path, mark.line + 1, mark.column + 1) if mark else Position(path, 1, 1)
            problem = exc.problem or "invalid YAML"
            if exc.context and exc.problem:
                problem = f"{exc.problem} ({exc.context})"
            if mark is not None and _char_at(text, mark) == "\t":
                problem = "a tab character; YAML indentation must use spaces"
            elif exc.problem in _INDENT_PROBLEMS:
                problem += "; check the indentation"
            findings.append(Finding("yaml-syntax", f"invalid YAML: {_first_line(problem)}", position=pos))
            return _Doc(path, None, None, False)
        except yaml.YAMLError as exc:
            findings.append(Finding("yaml-syntax", f"invalid YAML: {_first_line(exc)}", position=Position(path, 1, 1)))
            return _Doc(path, None, None, False)
        if node is None:
            return _Doc(path, None, None, True)
        before = len(findings)
        data = _Builder(loader, path, findings).build(node)
        return _Doc(path, node, data, len(findings) == before, text)
    finally:
        loader.dispose()


# ---------------------------------------------------------------- the load

class _Positions(Mapping):
    """resource key -> Position, resolved through the node tree on first lookup.

    Bindings are keyed by their ``key`` (all their fields); those keys are built only
    when a caller first asks about a binding, or iterates.
    """

    def __init__(self, locators: dict, bindings: dict | None = None):
        self._locators = locators  # key -> (doc, path, at_key)
        self._bindings = bindings or {}  # Binding -> (doc, path, source_field), not yet in _locators
        self._cache: dict = {}

    def _add_bindings(self) -> None:
        if self._bindings:
            locators = self._locators
            for binding, (doc, path, _) in self._bindings.items():
                locators[binding.key] = (doc, path, False)
            self._bindings = {}

    def __getitem__(self, key):
        if key not in self._cache:
            if key not in self._locators:
                self._add_bindings()
            doc, path, at_key = self._locators[key]
            self._cache[key] = doc.locate(path, at_key)
        return self._cache[key]

    def __contains__(self, key):
        if key not in self._locators:
            self._add_bindings()
        return key in self._locators

    def __iter__(self):
        self._add_bindings()
        return iter(self._locators)

    def __len__(self):
        return len(self._locators) + len(self._bindings)


class _State:
    """Everything gathered while loading a set of files."""

    def __init__(self):
        self.findings: list[Finding] = []
        self.files: list[str] = []
        self.docs: list[_Doc] = []
        self.seen: set[str] = set()
        # key -> resource; key -> (doc, path, at_key) for positions
        self.vhosts: dict = {}
        self.exchanges: dict = {}
        self.queues: dict = {}
        self.policies: dict = {}
        self.bindings: dict = {}  # Binding -> locator of its first declaration
        self.locators: dict = {}
        self.tests: list[RouteTest] = []
        # names declared anywhere, even when the declaration itself had errors, so a
        # broken queue does not also produce "undeclared queue" errors at every binding
        self.known_exchanges: set = set()
        self.known_queues: set = set()
        self.known_vhosts: set = set()
        self.checks: list = []  # (kind, resource, doc, path) for the rule passes

    def add(self, code: str, message: str, position: Position | None, severity: str = "error",
            subject: str = "") -> None:
        self.findings.append(Finding(code, message, severity=severity, position=position, subject=subject))


def load_topology(paths: Sequence[str]) -> LoadResult:
    """Load, check and merge topology files (directories and includes expanded).

    Never raises on bad content: unreadable files, YAML and schema errors, conflicts,
    dangling references and declarations the broker would refuse all become findings.

    >>> load_text("vhosts: {/: {queues: {hello: {}}}}").topology.counts()["queue"]
    1
    """
    with gc_paused():
        state = _State()
        for path in paths:
            if os.path.isdir(path):
                for f in _dir_files(path):
                    _load_file(state, f)
            else:
                _load_file(state, path)
        return _finish(state)


def load_text(text: str, path: str = "<string>") -> LoadResult:
    """Load one topology from a string (includes are resolved relative to the current directory)."""
    with gc_paused():
        state = _State()
        _load_doc(state, text, path)
        return _finish(state)


def _load_file(state: _State, path: str, included_from: Position | None = None) -> None:
    real = os.path.realpath(path)
    if real in state.seen:
        return  # loaded already (given twice, or an include cycle): once is enough
    state.seen.add(real)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        if isinstance(exc, UnicodeDecodeError):
            reason = "not UTF-8 text"
        state.add("unreadable-file", f"cannot read {path}: {reason}", included_from)
        return
    _load_doc(state, text, path)


def _load_doc(state: _State, text: str, path: str) -> None:
    state.files.append(path)
    doc = _parse(text, path, state.findings)
    state.docs.append(doc)
    data = doc.data
    bad: set = set()
    if not _schema.fast_check(data):
        for problem in _schema.schema_errors(data):
            state.add(problem.code, problem.message, doc.locate(problem.path, problem.at_key))
            bad.add(problem.path[:4] if problem.path[:1] == ("vhosts",) else problem.path[:2])
    if not isinstance(data, dict):
        return
    _includes(state, doc, data.get("include"))
    _map_model(state, doc, data, bad)


def _includes(state: _State, doc: _Doc, include: Any) -> None:
    if include is None:
        return
    patterns = [include] if isinstance(include, str) else include
    if not isinstance(patterns, list):
        return
    base = os.path.dirname(doc.path)
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            continue
        where = doc.locate(("include",) if isinstance(include, str) else ("include", i))
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        if glob.has_magic(pattern):
            matches = sorted(m for m in glob.glob(full, recursive=True) if os.path.isfile(m))
            if not matches:
                state.add("include-no-match", f"include pattern '{pattern}' matches no files", where,
                          severity="warning")
        elif os.path.isdir(full):
            matches = _dir_files(full)
        elif os.path.isfile(full):
            matches = [full]
        else:
            state.add("include-not-found", f"included file not found: {pattern} (looked for {full})", where)
            continue
        for m in matches:
            _load_file(state, os.path.normpath(m) if not os.path.isabs(m) else m, where)


def _skipped(bad: set, path: tuple) -> bool:
    """Whether a structural error touches this object (its own path or one above it)."""
    if not bad:
        return False
    return any(path[:len(b)] == b or b[:len(path)] == path for b in bad)


def _args(value: Any) -> Args:
    return Args(value) if value else EMPTY_ARGS


def _map_model(state: _State, doc: _Doc, data: dict, bad: set) -> None:
    """Turn one file's data into resources (the mapping rules of SPEC section 1)."""
    vhosts = data.get("vhosts")
    if isinstance(vhosts, dict):
        for vname, vspec in vhosts.items():
            _map_vhost(state, doc, vname, vspec if isinstance(vspec, dict) else {}, bad)
    tests = data.get("tests")
    if isinstance(tests, list):
        for i, t in enumerate(tests):
            path = ("tests", i)
            if not isinstance(t, dict) or _skipped(bad, path):
                continue
            headers = t.get("headers")
            state.tests.append(RouteTest(
                vhost=t.get("vhost", "/"), exchange=t.get("exchange", ""), routing_key=t.get("routing_key", ""),
                headers=Args(headers) if isinstance(headers, dict) else None, expect=tuple(t.get("expect") or ()),
                position=doc.locate(path), name=t.get("name", "")))
            state.checks.append(("test", state.tests[-1], doc, path))


def _map_vhost(state: _State, doc: _Doc, vname: str, spec: dict, bad: set) -> None:
    vpath = ("vhosts", vname)
    state.known_vhosts.add(vname)
    # Every vhost named becomes a resource; a setting with a structural error is left
    # unmanaged (None) rather than guessed.
    tags = spec.get("tags")
    dqt = spec.get("default_queue_type")
    desc = spec.get("description")
    vhost = Vhost(name=vname, description=desc if isinstance(desc, str) else None,
                  tags=tuple(tags) if isinstance(tags, list) and all(isinstance(t, str) for t in tags) else None,
                  default_queue_type=dqt if dqt in QUEUE_TYPES else None)
    _declare(state, state.vhosts, vhost, doc, vpath)

    exchanges = spec.get("exchanges")
    if isinstance(exchanges, dict):
        for name, x in exchanges.items():
            path = vpath + ("exchanges", name)
            state.known_exchanges.add((vname, name))
            if _skipped(bad, path):
                continue
            x = x or {}
            ex = Exchange(vhost=vname, name=name, type=x.get("type", "direct"), durable=x.get("durable", False),
                          auto_delete=x.get("auto_delete", False), internal=x.get("internal", False),
                          arguments=_args(x.get("arguments")))
            if _declare(state, state.exchanges, ex, doc, path):
                state.checks.append(("exchange", ex, doc, path))

    queues = spec.get("queues")
    if isinstance(queues, dict):
        default_type = spec.get("default_queue_type")
        for name, q in queues.items():
            path = vpath + ("queues", name)
            state.known_queues.add((vname, name))
            q = q or {}
            if not _skipped(bad, path):
                queue = Queue(vhost=vname, name=name, durable=q.get("durable", False),
                              exclusive=q.get("exclusive", False), auto_delete=q.get("auto_delete", False),
                              arguments=_args(q.get("arguments")))
                if _declare(state, state.queues, queue, doc, path):
                    state.checks.append(("queue", (queue, default_type), doc, path))
            sugar = q.get("bindings") if isinstance(q, dict) else None
            if isinstance(sugar, list):
                for i, b in enumerate(sugar):
                    bpath = path + ("bindings", i)
                    if not isinstance(b, dict) or _skipped(bad, bpath):
                        continue
                    binding = Binding(vhost=vname, source=b.get("exchange", ""), destination=name,
                                      destination_type="queue", routing_key=b.get("routing_key", ""),
                                      arguments=_args(b.get("arguments")))
                    _bind(state, binding, doc, bpath, "exchange")

    bindings = spec.get("bindings")
    if isinstance(bindings, list):
        for i, b in enumerate(bindings):
            bpath = vpath + ("bindings", i)
            if not isinstance(b, dict) or _skipped(bad, bpath):
                continue
            binding = Binding(vhost=vname, source=b.get("source", ""), destination=b.get("destination", ""),
                              destination_type=b.get("destination_type", "queue"),
                              routing_key=b.get("routing_key", ""), arguments=_args(b.get("arguments")))
            _bind(state, binding, doc, bpath, "source")

    policies = spec.get("policies")
    if isinstance(policies, dict):
        for name, p in policies.items():
            path = vpath + ("policies", name)
            if _skipped(bad, path) or not isinstance(p, dict):
                continue
            policy = Policy(vhost=vname, name=name, pattern=p.get("pattern", ""), apply_to=p.get("apply_to", "all"),
                            priority=p.get("priority", 0), definition=_args(p.get("definition")))
            if _declare(state, state.policies, policy, doc, path):
                state.checks.append(("policy", policy, doc, path))


def _bind(state: _State, binding: Binding, doc: _Doc, path: tuple, source_field: str) -> None:
    if binding in state.bindings:
        return  # the same binding twice (sugar and general form, or two files): one binding
    state.bindings[binding] = (doc, path, source_field)


def _declare(state: _State, bucket: dict, resource, doc: _Doc, path: tuple) -> bool:
    """Record a declaration; a second, different declaration of the same object is an error.

    Returns True when the resource is new (so its checks run once).
    """
    key = resource.key
    existing = bucket.get(key)
    if existing is None:
        bucket[key] = resource
        state.locators[key] = (doc, path, True)
        return True
    if isinstance(resource, Vhost):
        merged, clash = _merge_vhost(existing, resource)
        if not clash:
            bucket[key] = merged
            return False
    elif existing == resource:
        return False
    first = state.locators[key]
    first_pos = first[0].locate(first[1], True)
    differing = [f for f, v in resource.to_dict().items() if existing.to_dict().get(f) != v]
    if isinstance(resource, Vhost):
        differing = [f for f in differing if getattr(existing, f) is not None and getattr(resource, f) is not None]
    state.add("conflicting-declaration",
              f"{resource.kind} '{resource.name}' in vhost '{resource.vhost}' is declared differently at {first_pos} "
              f"({', '.join(differing)} differ{'s' if len(differing) == 1 else ''})",
              doc.locate(path, True), subject=f"{resource.kind} {resource.name}")
    return False


def _merge_vhost(a: Vhost, b: Vhost) -> tuple[Vhost, bool]:
    # A setting left out (None) is unmanaged, so it never conflicts with a given one.
    out = {}
    for f in ("description", "tags", "default_queue_type"):
        x, y = getattr(a, f), getattr(b, f)
        if x is not None and y is not None and x != y:
            return a, True
        out[f] = x if x is not None else y
    return Vhost(name=a.name, **out), False


# ---------------------------------------------------------------- checks over the model

def _finish(state: _State) -> LoadResult:
    _check_resources(state)
    _check_bindings(state)
    findings = tuple(sorted(state.findings, key=lambda f: (f.sort_key(), f.severity, f.message)))
    topology = Topology(vhosts=state.vhosts, exchanges=state.exchanges, queues=state.queues,
                        bindings=frozenset(state.bindings), policies=state.policies, tests=tuple(state.tests))
    for doc in state.docs:
        doc.release()  # every check is done: keep only the text for later position lookups
    return LoadResult(topology=topology, findings=findings, files=tuple(state.files),
                      positions=_Positions(state.locators, state.bindings))


def _name_problems(state: _State, kind: str, name: str, doc: _Doc, path: tuple, reserved: bool = True) -> None:
    if len(name) <= MAX_SHORTSTR // 4 and name and "\r" not in name and "\n" not in name and \
            not (reserved and name.startswith("amq.")):
        return  # the common case, decided without encoding or locating anything
    where = doc.locate(path, True)
    size = len(name.encode("utf-8"))
    if size > MAX_SHORTSTR:
        state.add("name-too-long", f"{kind} name '{_clip(name)}' is {size} bytes; the broker allows at most "
                                   f"{MAX_SHORTSTR} (AMQP short string)", where)
    if "\r" in name or "\n" in name:
        state.add("name-has-newline", f"{kind} name {name!r} contains a line break; the broker silently strips it "
                                      f"and the declare never completes", where)
    if reserved and name.startswith("amq."):
        state.add("reserved-name", f"{kind} name '{_clip(name)}' uses the reserved prefix 'amq.'; the broker "
                                   f"refuses to create it (403 ACCESS_REFUSED)", where)
    if name == "":
        what = "the default exchange cannot be declared" if kind == "exchange" else \
            "an empty name asks the broker for a generated amq.gen-* name, which topoform cannot manage"
        state.add("empty-name", f"{kind} name must not be empty: {what}", where)


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _check_resources(state: _State) -> None:
    for kind, item, doc, path in state.checks:
        if kind == "exchange":
            ex: Exchange = item
            _name_problems(state, "exchange", ex.name, doc, path)
            if ex.type.startswith("x-"):
                state.add("plugin-exchange-type", f"exchange '{ex.name}' has plugin type '{ex.type}': the plugin must "
                                                  f"be enabled, or the declare closes the connection (503)",
                          doc.locate(path + ("type",)), severity="warning")
            ae = ex.arguments.get("alternate-exchange")
            if isinstance(ae, str) and not _exchange_known(state, ex.vhost, ae):
                state.add("dangling-alternate-exchange",
                          f"alternate-exchange '{ae}' of exchange '{ex.name}' is not declared in the files "
                          f"(unroutable messages are dropped unless it exists on the broker)",
                          doc.locate(path + ("arguments", "alternate-exchange")), severity="warning")
        elif kind == "queue":
            _check_queue(state, item[0], item[1], doc, path)
        elif kind == "policy":
            policy: Policy = item
            _name_problems(state, "policy", policy.name, doc, path, reserved=False)
            try:
                re.compile(policy.pattern)
            except re.error as exc:
                state.add("invalid-pattern", f"pattern of policy '{policy.name}' is not a valid regular expression: "
                                             f"{exc}", doc.locate(path + ("pattern",)), severity="warning")
        elif kind == "test":
            _check_test(state, item, doc, path)
    for key, vhost in state.vhosts.items():
        doc, path, _ = state.locators[key]
        if len(vhost.name.encode("utf-8")) > MAX_SHORTSTR or not vhost.name:
            _name_problems(state, "vhost", vhost.name, doc, path, reserved=False)


def _exchange_known(state: _State, vhost: str, name: str) -> bool:
    return name == "" or name.startswith("amq.") or (vhost, name) in state.known_exchanges


def _check_queue(state: _State, q: Queue, default_type: str | None, doc: _Doc, path: tuple) -> None:
    _name_problems(state, "queue", q.name, doc, path)
    declared_type = q.arguments.get("x-queue-type")
    qtype = declared_type if isinstance(declared_type, str) else None
    via_default = False
    if qtype is None and default_type in ("quorum", "stream") and q.durable and not q.exclusive:
        # The vhost default applies to durable, non-exclusive declares without
        # x-queue-type (RABBITMQ-SEMANTICS 1.6).
        qtype, via_default = default_type, True
    qtype = qtype or "classic"
    if qtype in ("quorum", "stream"):
        how = f" (the default queue type of vhost '{q.vhost}')" if via_default else ""
        for flag, bad, code, words in (("durable", not q.durable, "not-durable", "must be durable"),
                                       ("exclusive", q.exclusive, "exclusive", "cannot be exclusive"),
                                       ("auto_delete", q.auto_delete, "auto-delete", "cannot be auto-delete")):
            if bad:
                state.add(f"{qtype}-{code}", f"{qtype} queue '{q.name}'{how} {words}; the broker refuses it "
                                             f"(406 invalid property)", doc.locate(path + (flag,)) if flag in
                          _keys_at(doc, path) else doc.locate(path, True))
    for arg in _NOT_FOR_TYPE.get(qtype, ()):
        if arg in q.arguments:
            state.add("argument-not-for-queue-type",
                      f"{qtype} queue '{q.name}' cannot have argument '{arg}'; the broker refuses it at creation "
                      f"(406 invalid arg)", doc.locate(path + ("arguments", arg), True))
    dlx = q.arguments.get("x-dead-letter-exchange")
    if isinstance(dlx, str) and not _exchange_known(state, q.vhost, dlx):
        state.add("dangling-dead-letter-exchange",
                  f"x-dead-letter-exchange '{dlx}' of queue '{q.name}' is not declared in the files "
                  f"(dead letters are dropped unless it exists on the broker)",
                  doc.locate(path + ("arguments", "x-dead-letter-exchange")), severity="warning")


def _keys_at(doc: _Doc, path: tuple) -> tuple:
    node = doc.data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return tuple(node) if isinstance(node, dict) else ()


def _check_test(state: _State, t: RouteTest, doc: _Doc, path: tuple) -> None:
    if t.vhost not in state.known_vhosts:
        state.add("dangling-reference", f"test #{path[1] + 1} uses vhost '{t.vhost}', which is not declared in the "
                                        f"files", doc.locate(path + ("vhost",)))
        return
    if not _exchange_known(state, t.vhost, t.exchange):
        state.add("dangling-reference", f"test #{path[1] + 1} publishes to exchange '{t.exchange}', which is not "
                                        f"declared in vhost '{t.vhost}'", doc.locate(path + ("exchange",)))
    for i, qname in enumerate(t.expect):
        if (t.vhost, qname) not in state.known_queues:
            state.add("dangling-reference", f"test #{path[1] + 1} expects queue '{qname}', which is not declared in "
                                            f"vhost '{t.vhost}'", doc.locate(path + ("expect", i)))
    size = len(t.routing_key.encode("utf-8"))
    if size > MAX_SHORTSTR:
        state.add("routing-key-too-long", f"routing key of test #{path[1] + 1} is {size} bytes; at most "
                                          f"{MAX_SHORTSTR} can be sent", doc.locate(path + ("routing_key",)))


def _check_bindings(state: _State) -> None:
    exchanges = state.exchanges
    for b, (doc, path, source_field) in state.bindings.items():
        vhost = b.vhost
        if b.source == "":
            state.add("default-exchange-binding", "the default exchange (\"\") cannot be bound to or from; "
                                                  "every queue is already reachable through it by its name",
                      doc.locate(path + (source_field,)))
        elif not _exchange_known(state, vhost, b.source):
            state.add("dangling-reference", f"binding source exchange '{b.source}' is not declared in vhost "
                                            f"'{vhost}'", doc.locate(path + (source_field,)))
        if source_field == "source":
            if b.destination_type == "exchange":
                if b.destination == "":
                    state.add("default-exchange-binding", "the default exchange (\"\") cannot be bound to or from",
                              doc.locate(path + ("destination",)))
                elif not _exchange_known(state, vhost, b.destination):
                    state.add("dangling-reference", f"binding destination exchange '{b.destination}' is not "
                                                    f"declared in vhost '{vhost}'", doc.locate(path + ("destination",)))
            elif (vhost, b.destination) not in state.known_queues:
                hint = " (set destination_type: exchange for an exchange-to-exchange binding)" \
                    if (vhost, b.destination) in state.known_exchanges else ""
                state.add("dangling-reference", f"binding destination queue '{b.destination}' is not declared in "
                                                f"vhost '{vhost}'{hint}", doc.locate(path + ("destination",)))
        key = b.routing_key
        if len(key) > MAX_SHORTSTR // 4 and len(key.encode("utf-8")) > MAX_SHORTSTR:
            state.add("routing-key-too-long", f"routing_key of {_schema.describe_path(path)} is "
                                              f"{len(key.encode('utf-8'))} bytes; the broker allows at most "
                                              f"{MAX_SHORTSTR} (AMQP short string)", doc.locate(path + ("routing_key",)))
        if "#" in key:
            ex = exchanges.get(("exchange", vhost, b.source))
            if (ex is not None and ex.type == "topic" or b.source == "amq.topic") and \
                    key.split(".").count("#") > 2:
                state.add("topic-key-too-many-hashes",
                          f"topic binding key '{_clip(key)}' has more than two '#' words; RabbitMQ 4.3.5 and later "
                          f"refuse it", doc.locate(path + ("routing_key",)), severity="warning")
        for name, value in b.arguments.items():
            if value == "undefined":
                # the management API renders this string exactly as it renders null (void)
                state.add("ambiguous-undefined", f"binding argument '{name}' is the string \"undefined\", which the "
                          "management API shows exactly like null; topoform reads it back as null, so plans for "
                          "this binding are unreliable (use null for a presence check, or another value)",
                          doc.locate(path + ("arguments", name)), severity="warning")
