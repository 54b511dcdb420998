"""Loading topology files: YAML -> positions -> JSON Schema -> model -> reference and broker checks.

This module owns the file format of SPEC section 1: finding the files (``-f``,
``$TOPOFORM_FILE``, ``./topoform.yaml``, directories, ``-`` for standard input: see
:mod:`topoform.discover`; ``include:`` globs), parsing them
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

The checks over the mapped model live in :mod:`topoform.validate_rules`; the rules
that depend on the target RabbitMQ version come from :mod:`topoform.versions` and
:mod:`topoform.arguments`; YAML mistakes are explained by :mod:`topoform.yaml_hints`.

Imports: yaml, jsonschema (through :mod:`topoform.schema`), ``model``, ``errors`` and
the pure rule modules above. Never prints.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import schema as _schema
from . import versions as _versions
from . import yaml_hints
from .arguments import QUEUE_TYPES
from .discover import DEFAULT_FILE, ENV_FILE, StdinFile, discover_files  # noqa: F401 - re-exported
from .discover import dir_files as _dir_files
from .errors import Finding, InputError, Position
from .perf import gc_paused
from .model import EMPTY_ARGS, Args, Binding, Exchange, Policy, Queue, RouteTest, Topology, Vhost
from .validate_rules import run_checks

try:  # libyaml is several times faster; the pure-Python loader gives the same nodes.
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

__all__ = ["LoadResult", "discover_files", "load_topology", "load_text", "DEFAULT_FILE", "ENV_FILE"]


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_IN_PROGRESS = object()

# ---------------------------------------------------------------- result

@dataclass(frozen=True)
class LoadResult:
    """Everything read from a set of files.

    ``topology`` holds what loaded cleanly (objects with structural errors are left
    out); ``findings`` every error and warning, sorted by position; ``files`` every
    file read, includes expanded, in load order; ``positions`` maps a resource
    ``key`` to where it was first declared (computed on first lookup).
    ``rabbitmq_version`` is the target version the checks used (``"X.Y"``),
    ``version_source`` where it came from (see :func:`topoform.versions.resolve_target`),
    ``files_version`` the ``rabbitmq_version`` the files set (None when none does).
    """

    topology: Topology
    findings: tuple[Finding, ...] = ()
    files: tuple[str, ...] = ()
    positions: Mapping[tuple, Position] = field(default_factory=dict)
    rabbitmq_version: str = _versions.DEFAULT
    version_source: str = "default"
    files_version: str | None = None
    config: Any = None  # topoform.config.load.ConfigState: users, permissions, limits, ... (SPEC section 8)
    environment: str | None = None  # --env / TOPOFORM_ENV the variables came from (SPEC section 9)
    variables: Mapping[str, Any] = field(default_factory=dict)  # each declared variable's value
    ownership: Any = None  # topoform.ownership.Ownership: owner, owns, external (SPEC section 9)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------- parsing

class _Doc:
    """One parsed file: its display path, node tree and plain data.

    Once the load is finished, :meth:`release` drops the node tree and the data, which
    are most of the memory and (being alive when the cyclic collector resumes) most of
    its next pass; later position lookups compose the node tree again from ``text``,
    which gives the very same marks.
    """

    __slots__ = ("path", "node", "data", "ok", "index", "text", "released", "rewrite")

    def __init__(self, path: str, node: Any, data: Any, ok: bool, text: str | None = None):
        self.path = path
        self.node = node
        self.data = data
        self.ok = ok
        self.index: dict[int, dict] = {}
        self.text = text
        self.released = False
        self.rewrite = None  # variables substitution to redo on a recomposed tree (topoform/variables.py)

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
        if self.rewrite is not None:
            self.rewrite(self.node)
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


_ROOT_KINDS = {_STR: "a string", _INT: "a number", _FLOAT: "a number", _BOOL: "a boolean",
               "tag:yaml.org,2002:timestamp": "a date", "tag:yaml.org,2002:binary": "binary data"}


def _root_kind(node) -> str:
    """What a file's top-level node is, in words, never its value: ``a list``, ``a string``."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return f"a mapping tagged {node.tag}"
    return _ROOT_KINDS.get(node.tag, "a tagged value")


def _parse(text: str, path: str, findings: list, variables: Any = None) -> _Doc:
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
            explained = yaml_hints.explain_syntax(exc, text)
            if mark is not None and _char_at(text, mark) == "\t":
                problem = "a tab character; YAML indentation must use spaces"
            elif explained is not None:
                problem, line, col = explained
                pos = Position(path, line + 1, col + 1)
            elif exc.problem in _INDENT_PROBLEMS:
                problem += "; check the indentation"
            findings.append(Finding("yaml-syntax", f"invalid YAML: {_first_line(problem)}", position=pos))
            return _Doc(path, None, None, False)
        except yaml.YAMLError as exc:
            findings.append(Finding("yaml-syntax", f"invalid YAML: {_first_line(exc)}", position=Position(path, 1, 1)))
            return _Doc(path, None, None, False)
        if node is None:
            return _Doc(path, None, None, True)
        if not isinstance(node, MappingNode) and not (isinstance(node, ScalarNode) and node.tag == _NULL):
            # never the content: a file given by mistake (a password file, /etc/passwd) must not be echoed
            findings.append(Finding("wrong-type", f"the top level is {_root_kind(node)}, not a mapping (a topology "
                                    "file holds keys such as 'vhosts:'; its content is not shown)",
                                    position=Position(path, node.start_mark.line + 1, node.start_mark.column + 1)))
            return _Doc(path, None, None, False)
        rewrite = None
        if variables is not None:  # ${name} references (topoform/variables.py), on the node tree: positions stay exact
            variables.declare(node, path)
            if "${" in text:
                rewrite = lambda root: variables.rewrite(root, path)  # noqa: E731
                rewrite(node)
        before = len(findings)
        data = _Builder(loader, path, findings).build(node)
        doc = _Doc(path, node, data, len(findings) == before, text)
        doc.rewrite = rewrite
        return doc
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
        self.versions: list = []  # (rabbitmq_version value, Position) of each file that sets one
        self.variables = None  # topoform.variables.Variables of this load
        self.owners: list = []  # (doc, data) of every file, for topoform/ownership.py
        from .config.load import Accumulator
        self.config = Accumulator()  # the config kinds of SPEC section 8 (topoform/config/)

    def add(self, code: str, message: str, position: Position | None, severity: str = "error",
            subject: str = "", hint: str = "") -> None:
        self.findings.append(Finding(code, message, severity=severity, position=position, subject=subject, hint=hint))


Target = Union[None, str, tuple, Callable[[Optional[str]], tuple]]


def load_topology(paths: Sequence[str], *, target: Target = None, variables: Any = None) -> LoadResult:
    """Load, check and merge topology files (directories and includes expanded).

    Never raises on bad content: unreadable files, YAML and schema errors, conflicts,
    dangling references and declarations the broker would refuse all become findings.

    ``target`` chooses the RabbitMQ version whose rules the checks apply: a version
    (``"4.0"``), or a callable given the files' own ``rabbitmq_version`` (or None) that
    returns ``(version, source)``, like :func:`topoform.versions.resolve_target`; by
    default the files' version, else :data:`topoform.versions.DEFAULT`. Only a bad
    ``target`` itself raises (InputError).

    >>> load_text("vhosts: {/: {queues: {hello: {}}}}").topology.counts()["queue"]
    1
    """
    with gc_paused():
        state = _State()
        state.variables = _variables(paths, variables)
        for path in paths:
            if isinstance(path, StdinFile):  # -f -: the text the CLI read from standard input
                _load_doc(state, path.text, path.display)
            elif os.path.isdir(path):
                for f in _dir_files(path):
                    _load_file(state, f)
            else:
                _load_file(state, path)
        return _finish(state, target)


def load_text(text: str, path: str = "<string>", *, target: Target = None, variables: Any = None) -> LoadResult:
    """Load one topology from a string (includes are resolved relative to the current directory)."""
    with gc_paused():
        state = _State()
        state.variables = _variables([], variables)
        _load_doc(state, text, path)
        return _finish(state, target)


def _variables(paths: Sequence[str], inputs: Any):
    """The load's variables (topoform/variables.py): every given file's declarations, then the chosen values."""
    from .variables import VariableInputs, Variables

    if isinstance(inputs, Variables):
        return inputs
    variables = Variables(inputs if isinstance(inputs, VariableInputs) else None)
    files = [f for p in paths if not isinstance(p, StdinFile) for f in (_dir_files(p) if os.path.isdir(p) else [p])]
    variables.prescan(files)
    for p in paths:
        if isinstance(p, StdinFile) and "variables" in p.text:
            try:
                variables.declare(yaml.compose(p.text, Loader=_Loader), p.display)
            except yaml.YAMLError:
                pass  # the loader reports it
    first = paths[0] if paths else None
    variables.read_sources(first.display if isinstance(first, StdinFile) else first)
    return variables


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
        state.files.append(path)  # counted: "1 error in 1 file", not "in 0 files"
        return
    _load_doc(state, text, path)


def _load_doc(state: _State, text: str, path: str) -> None:
    state.files.append(path)
    doc = _parse(text, path, state.findings, state.variables)
    state.docs.append(doc)
    data = doc.data
    bad: set = set()
    if not _schema.fast_check(data):
        _schema_findings(state, doc, data, bad)
    if not isinstance(data, dict):
        return
    if "rabbitmq_version" in data:
        state.versions.append((data["rabbitmq_version"], doc.locate(("rabbitmq_version",))))
    _includes(state, doc, data.get("include"))
    _map_model(state, doc, data, bad)
    from .ownership import map_file as map_ownership  # owner / owns / external (SPEC section 9)

    map_ownership(state, doc, data, bad)
    from .config.load import map_file
    map_file(state.config, data, doc.locate, state.add, os.path.dirname(os.path.abspath(path)), bad)


def _schema_findings(state: _State, doc: _Doc, data: Any, bad: set) -> None:
    """The schema's problems as findings, with the YAML and indentation mistakes behind them explained."""
    problems = list(_schema.schema_errors(data))
    for problem in problems:
        bad.add(problem.path[:4] if problem.path[:1] == ("vhosts",) else problem.path[:2])
    for code, message, where in yaml_hints.explain_problems(problems, data, doc.text, doc.locate):
        state.add(code, message, where)


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

    operator_policies = spec.get("operator_policies")  # mapped by topoform/config/load.py; checked here
    if isinstance(operator_policies, dict):
        for name, p in operator_policies.items():
            path = vpath + ("operator_policies", name)
            if isinstance(p, dict) and not _skipped(bad, path):
                state.checks.append(("operator_policy", (str(name), p), doc, path))


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

def _files_version(state: _State) -> str | None:
    """The ``rabbitmq_version`` the files set: each checked, and all of them must agree."""
    first = None  # (normalized, position)
    for value, pos in state.versions:
        if not isinstance(value, str):
            continue  # the schema reports the type (with a quoting hint)
        try:
            normalized = _versions.format_version(_versions.parse_version(value))
        except InputError as exc:
            state.add("unsupported-version", f"rabbitmq_version: {exc.message}", pos)
            continue
        if first is None:
            first = (normalized, pos)
        elif normalized != first[0]:
            state.add("conflicting-version", f"rabbitmq_version \"{first[0]}\" differs from \"{value}\" in {pos}; "
                                             f"files that set it must agree", first[1])
    return first[0] if first else None


def _target(target: Target, files_version: str | None) -> tuple[str, str]:
    if callable(target):
        version, source = target(files_version)
        return _versions.format_version(_versions.parse_version(version)), source
    if target is not None:
        return _versions.format_version(_versions.parse_version(target)), "given"
    return (files_version, "files") if files_version else (_versions.DEFAULT, "default")


_UNSET_VARIABLE = ("undefined-variable", "variable-without-value")


def _without_echoes(findings: list) -> list:
    """Without the checks of a value that is an unset variable's reference: ``"${tll}"`` is reported
    as the undefined variable it is, not also as a string where an integer belongs."""
    unset = {f.position for f in findings if f.code in _UNSET_VARIABLE and f.position is not None}
    if not unset:
        return findings
    return [f for f in findings if f.code in _UNSET_VARIABLE or f.position not in unset]


def _finish(state: _State, target: Target = None) -> LoadResult:
    files_version = _files_version(state)
    version, source = _target(target, files_version)
    run_checks(state, _versions.parse_version(version))
    config = _config(state)
    ownership = _ownership(state)
    findings = tuple(sorted(_without_echoes(state.findings), key=lambda f: (f.sort_key(), f.severity, f.message)))
    topology = Topology(vhosts=state.vhosts, exchanges=state.exchanges, queues=state.queues,
                        bindings=frozenset(state.bindings), policies=state.policies, tests=tuple(state.tests))
    for doc in state.docs:
        doc.release()  # every check is done: keep only the text for later position lookups
    return LoadResult(topology=topology, findings=findings, files=tuple(state.files),
                      positions=_Positions(state.locators, state.bindings), rabbitmq_version=version,
                      version_source=source, files_version=files_version, config=config,
                      environment=state.variables.inputs.env if state.variables else None,
                      variables=state.variables.values() if state.variables else {}, ownership=ownership)


def _ownership(state: _State):
    """Variables' findings, then owner / owns / external (topoform/ownership.py) with their checks."""
    if state.variables is not None:
        state.findings.extend(state.variables.finish())
    from .ownership import collect

    return collect(state)


def _config(state: _State):
    """The files' config kinds (topoform/config/), with their reference checks as findings."""
    from .config.load import check_references

    config = state.config.finish()
    from .config.load import Known

    def report(code, message, pos, severity="error", hint=""):
        state.findings.append(Finding(code, message, severity=severity, position=pos, hint=hint))

    check_references(config, report, Known(state.known_vhosts, state.known_queues, state.known_exchanges))
    return config
