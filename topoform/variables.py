"""Variables and environments: ``${name}`` in topology files (SPEC section 9).

A file declares ``variables: {NAME: {default: VALUE}}`` at its top level; every
scalar value and every mapping key (vhost, exchange, queue, policy names) may then
use ``${NAME}``. A value that is exactly one reference takes the variable's value
with its YAML type (``"${ttl}"`` with ``ttl: 60000`` is the integer 60000); a
reference inside a longer string, and any reference in a name, interpolates the
value as text. ``$${`` writes a literal ``${``.

Values, weakest first: the declarations' ``default``; ``environments/NAME.yaml``
(``variables: {NAME: VALUE}``) next to the first file, chosen by ``--env`` /
``TOPOFORM_ENV``; each ``--var-file FILE`` (same format) in order; each
``--var NAME=VALUE`` (the value read as YAML: ``3`` an integer, ``"3"`` a string).

The substitution works on the YAML node tree, before the loader builds plain data,
so every later position (schema errors, references, conflicts) still points at the
very scalar the user wrote; a rewritten node keeps its marks. Problems are findings:
an undefined variable at the reference, a variable without a value, an unused
declaration (warning), a value given for a variable no file declares (at the
environment file's line, or naming ``--var``).

Imports: yaml and ``errors`` only. Never prints.
"""
from __future__ import annotations

import difflib

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import Finding, InputError, Position

__all__ = ["VariableInputs", "Variables", "parse_var", "environment_file", "list_environments", "ENV_VAR"]

ENV_VAR = "TOPOFORM_ENV"
ENV_DIR = "environments"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_STR = "tag:yaml.org,2002:str"

try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class VariableInputs:
    """What the command line chose: the environment and the overrides.

    ``env`` the environment name (None: defaults only); ``cli_vars`` ``(name, value)``
    pairs of ``--var`` (values already YAML-typed); ``var_files`` the ``--var-file``
    paths, as given; ``cwd`` the directory relative paths are read from.
    """

    env: str | None = None
    cli_vars: tuple = ()
    var_files: tuple = ()
    cwd: str = "."

    @property
    def empty(self) -> bool:
        return self.env is None and not self.cli_vars and not self.var_files


def parse_var(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` of ``--var``: the value read as YAML (``3`` int, ``true`` bool, ``"3"`` text)."""
    name, eq, raw = text.partition("=")
    name = name.strip()
    if not eq:
        raise InputError("--var expects NAME=VALUE (no '=' given)", hint="e.g. --var ttl=60000")
    if not name:
        raise InputError("--var expects NAME=VALUE: the name before '=' is empty", hint="e.g. --var ttl=60000")
    if not _NAME.match(name):
        raise InputError(f"--var expects NAME=VALUE with NAME made of letters, digits and _ (got {name!r})")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not valid YAML: take it as text
    if isinstance(value, (dict, list)) and not raw.strip().startswith(("{", "[")):
        value = raw
    return name, value


def environment_dir(first_file: str | None) -> str:
    """``environments/`` next to the first file given (or in the current directory)."""
    if not first_file:
        return ENV_DIR
    base = first_file if os.path.isdir(first_file) else os.path.dirname(first_file)
    return os.path.join(base, ENV_DIR) if base else ENV_DIR


def environment_file(first_file: str | None, env: str) -> str:
    return os.path.join(environment_dir(first_file), f"{env}.yaml")


def list_environments(first_file: str | None) -> list[str]:
    """The environments found next to the first file: ``environments/*.yaml`` (and ``*.yml``)."""
    directory = environment_dir(first_file)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted({os.path.splitext(n)[0] for n in names if n.endswith((".yaml", ".yml")) and not n.startswith(".")})


def check_env_name(env: str) -> None:
    if not env or "/" in env or "\\" in env or env.startswith("."):
        raise InputError(f"invalid environment name {env!r}: a plain name such as dev or prod")


@dataclass
class _Decl:
    name: str
    position: Position
    has_default: bool = False
    default: Any = None


@dataclass
class _Value:
    value: Any
    origin: str  # "default", "environment NAME", "--var-file F", "--var"
    position: Position | None = None


def _compose(text: str) -> Any:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _construct(node: Any) -> Any:
    return yaml.constructor.SafeConstructor().construct_document(node)


def _pos(path: str, node: Any) -> Position:
    return Position(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _text(value: Any) -> str:
    """A value interpolated into a string: YAML's spelling for booleans and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


class Variables:
    """The variables of one load: declarations, chosen values, references, findings."""

    def __init__(self, inputs: VariableInputs | None = None):
        self.inputs = inputs or VariableInputs()
        self.decls: dict[str, _Decl] = {}
        self.given: dict[str, _Value] = {}  # environment, var files, --var (strongest last written)
        self.used: set[str] = set()
        self.declared_in: set[str] = set()  # real paths whose declarations were read
        self.findings: list[Finding] = []
        self.sources_read = False
        self._missing_reported: set[str] = set()

    # ------------------------------------------------------------ declarations

    def prescan(self, files: Sequence[str]) -> None:
        """Read the ``variables:`` of every file given, before any file is substituted."""
        for path in files:
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                continue  # the loader reports it
            if "variables" not in text:
                continue
            try:
                node = _compose(text)
            except yaml.YAMLError:
                continue  # the loader reports it
            self.declare(node, path)

    def declare(self, root: Any, path: str) -> None:
        """Record the declarations of one file's top-level ``variables:`` mapping (once per file)."""
        real = os.path.realpath(path) if not path.startswith("<") else path
        if real in self.declared_in:
            return
        self.declared_in.add(real)
        if not isinstance(root, MappingNode):
            return
        for knode, vnode in root.value:
            if isinstance(knode, ScalarNode) and knode.value == "variables" and isinstance(vnode, MappingNode):
                for name_node, spec in vnode.value:
                    if not isinstance(name_node, ScalarNode):
                        continue
                    name = name_node.value
                    where = _pos(path, name_node)
                    if not _NAME.match(name):
                        self.findings.append(Finding("invalid-variable-name", f"variable name '{name}' must be made "
                                                     f"of letters, digits and _ (and not start with a digit)", position=where))
                        continue
                    decl = _Decl(name, where)
                    if isinstance(spec, MappingNode):
                        for k, v in spec.value:
                            if isinstance(k, ScalarNode) and k.value == "default":
                                try:
                                    decl.default, decl.has_default = _construct(v), True
                                except yaml.YAMLError:
                                    pass  # the loader reports the bad value
                    first = self.decls.get(name)
                    if first is not None:
                        if (first.has_default, first.default) != (decl.has_default, decl.default):
                            self.findings.append(Finding(
                                "conflicting-variable", f"variable '{name}' is declared differently at "
                                f"{first.position} (defaults differ); declare it once", position=where))
                        continue
                    self.decls[name] = decl

    # ------------------------------------------------------------ values

    def read_sources(self, first_file: str | None) -> None:
        """The environment file, ``--var-file`` files and ``--var`` values (once)."""
        if self.sources_read:
            return
        self.sources_read = True
        inputs = self.inputs
        if inputs.env is not None:
            check_env_name(inputs.env)
            path = environment_file(first_file, inputs.env)
            if not os.path.isfile(path):
                found = list_environments(first_file)
                raise InputError(f"environment '{inputs.env}': {path} not found"
                                 + (f" (environments found: {', '.join(found)})" if found else ""),
                                 hint=f"create {path} with 'variables: {{NAME: VALUE}}'")
            self._read_values_file(path, f"environment {inputs.env}")
        for given in inputs.var_files:
            path = given if os.path.isabs(given) else os.path.join(inputs.cwd, given)
            if not os.path.isfile(path):
                raise InputError(f"--var-file {given}: file not found")
            self._read_values_file(path, f"--var-file {given}", shown=given)
        for name, value in inputs.cli_vars:
            self.given[name] = _Value(value, "--var")

    def _read_values_file(self, path: str, origin: str, shown: str | None = None) -> None:
        # A broken file is a finding at its position, like a topology file's (validate --all-envs then
        # reports every environment); its content is never quoted (it may hold secrets).
        shown = shown or path
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            node = _compose(text)
        except (OSError, UnicodeDecodeError) as exc:
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or type(exc).__name__
            self.findings.append(Finding("unreadable-file", f"{origin}: cannot read {shown}: {reason}",
                                         position=Position(shown, 1, 1)))
            return
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = Position(shown, mark.line + 1, mark.column + 1) if mark else Position(shown, 1, 1)
            problem = f"{exc.problem} ({exc.context})" if exc.problem and exc.context else exc.problem or "invalid YAML"
            self.findings.append(Finding("yaml-syntax", f"invalid YAML: {' '.join(problem.split())}", position=where))
            return
        except yaml.YAMLError as exc:
            self.findings.append(Finding("yaml-syntax", f"invalid YAML: {type(exc).__name__}",
                                         position=Position(shown, 1, 1)))
            return
        if node is None:
            return
        if not isinstance(node, MappingNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a single value"
            self.findings.append(Finding("wrong-type", f"the top level of {origin} is {kind}, not a mapping "
                                         "'variables: {NAME: VALUE}' (its content is not shown)",
                                         position=_pos(shown, node)))
            return
        for knode, vnode in node.value:
            key = getattr(knode, "value", None)
            if key != "variables":
                self.findings.append(Finding("unknown-key", f"unknown key '{key}' in {origin} (only 'variables' is "
                                             "allowed)", position=_pos(shown, knode)))
                continue
            if isinstance(vnode, ScalarNode) and vnode.tag == "tag:yaml.org,2002:null":
                continue
            if not isinstance(vnode, MappingNode):
                self.findings.append(Finding("invalid-type", "variables must be a mapping of NAME: VALUE",
                                             position=_pos(shown, vnode)))
                continue
            for name_node, value_node in vnode.value:
                name = getattr(name_node, "value", "")
                try:
                    value = _construct(value_node)
                except yaml.YAMLError:
                    self.findings.append(Finding("unsupported-value", f"variable '{name}': unsupported YAML value",
                                                 position=_pos(shown, value_node)))
                    continue
                self.given[name] = _Value(value, origin, _pos(shown, name_node))

    def value_of(self, name: str) -> tuple[bool, Any]:
        if name in self.given and name in self.decls:
            return True, self.given[name].value
        decl = self.decls.get(name)
        if decl is not None and decl.has_default:
            return True, decl.default
        return False, None

    def values(self) -> dict[str, Any]:
        """Every declared variable that has a value, with it (for plans and messages)."""
        out = {}
        for name in sorted(self.decls):
            ok, value = self.value_of(name)
            if ok:
                out[name] = value
        return out

    # ------------------------------------------------------------ substitution

    def rewrite(self, root: Any, path: str) -> None:
        """Substitute every ``${...}`` in one file's node tree, in place (keys included)."""
        seen: set[int] = set()
        self._walk(root, path, seen, top=True)

    def _walk(self, node: Any, path: str, seen: set, top: bool = False) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, MappingNode):
            pairs = node.value
            for i, (k, v) in enumerate(pairs):
                if top and isinstance(k, ScalarNode) and k.value == "variables":
                    continue  # declarations are literal
                if isinstance(k, ScalarNode) and "${" in k.value:
                    self._key(k, path)
                if isinstance(v, ScalarNode):
                    if "${" in v.value and v.tag == _STR:
                        new = self._scalar(v, path)
                        if new is not v:
                            pairs[i] = (k, new)
                else:
                    self._walk(v, path, seen)
        elif isinstance(node, SequenceNode):
            items = node.value
            for i, v in enumerate(items):
                if isinstance(v, ScalarNode):
                    if "${" in v.value and v.tag == _STR:
                        items[i] = self._scalar(v, path)
                else:
                    self._walk(v, path, seen)

    def _refs(self, node: ScalarNode, path: str):
        """(is_whole, pieces) where pieces alternate literal text and variable names."""
        text = node.value
        pieces: list = []
        last = 0
        for m in _REF.finditer(text):
            pieces.append(("text", text[last:m.start()]))
            if m.group(0) == "$${":
                pieces.append(("text", "${"))
            else:
                pieces.append(("var", m.group(1).strip()))
            last = m.end()
        pieces.append(("text", text[last:]))
        pieces = [p for p in pieces if p != ("text", "")]
        whole = len(pieces) == 1 and pieces[0][0] == "var"
        return whole, pieces

    def _resolve(self, name: str, node: ScalarNode, path: str) -> tuple[bool, Any]:
        where = _pos(path, node)
        if not _NAME.match(name):
            self.findings.append(Finding("invalid-variable-reference", f"'${{{name}}}' is not a variable reference "
                                         "(names are letters, digits and _; write $${ for a literal ${)",
                                         position=where))
            return False, None
        self.used.add(name)
        if name not in self.decls:
            close = difflib.get_close_matches(name, list(self.decls), n=1)
            hint = (f"did you mean '{close[0]}'?" if close else
                    f"declare it under variables: as {name}: {{default: VALUE}}, or pass --var {name}=VALUE")
            self.findings.append(Finding("undefined-variable", f"undefined variable '{name}'", position=where,
                                         hint=hint))
            return False, None
        ok, value = self.value_of(name)
        if not ok:
            env = f" or in environments/{self.inputs.env}.yaml" if self.inputs.env else ""
            self.findings.append(Finding("variable-without-value", f"variable '{name}' has no value", position=where,
                                         hint=f"give it a default{env}, or pass --var {name}=VALUE"))
            return False, None
        return True, value

    def _interpolate(self, node: ScalarNode, path: str, pieces) -> str | None:
        out = []
        for kind, item in pieces:
            if kind == "text":
                out.append(item)
                continue
            ok, value = self._resolve(item, node, path)
            if not ok:
                return None
            if isinstance(value, (dict, list)):
                self.findings.append(Finding("variable-not-text", f"variable '{item}' holds a "
                                             f"{'mapping' if isinstance(value, dict) else 'list'}, which cannot be "
                                             "part of a string", position=_pos(path, node)))
                return None
            out.append(_text(value))
        return "".join(out)

    def _key(self, node: ScalarNode, path: str) -> None:
        _, pieces = self._refs(node, path)
        text = self._interpolate(node, path, pieces)
        if text is not None:
            node.value = text
            node.tag = _STR

    def _scalar(self, node: ScalarNode, path: str) -> Any:
        whole, pieces = self._refs(node, path)
        if not whole:
            text = self._interpolate(node, path, pieces)
            if text is not None:
                node.value = text
            return node
        ok, value = self._resolve(pieces[0][1], node, path)
        if not ok:
            return node
        new = yaml.representer.SafeRepresenter().represent_data(value)
        _mark(new, node.start_mark, node.end_mark)
        return new

    # ------------------------------------------------------------ the end of a load

    def finish(self) -> list[Finding]:
        """Unused declarations (warnings) and values for undeclared variables (errors)."""
        out = list(self.findings)
        for name, decl in sorted(self.decls.items()):
            if name not in self.used:
                out.append(Finding("unused-variable", f"variable '{name}' is declared but never used",
                                   severity="warning", position=decl.position))
        for name, given in sorted(self.given.items()):
            if name not in self.decls:
                where = "" if given.position else f" (from {given.origin})"
                close = difflib.get_close_matches(name, list(self.decls), n=1)
                hint = (f"did you mean '{close[0]}'?" if close
                        else "declare it under 'variables:' in the files, or remove it")
                out.append(Finding("unknown-variable", f"{given.origin} sets variable '{name}'{where}, which no file "
                                   "declares", position=given.position, hint=hint))
        return out


def _mark(node: Any, start, end) -> None:
    node.start_mark, node.end_mark = start, end
    if isinstance(node, MappingNode):
        for k, v in node.value:
            _mark(k, start, end)
            _mark(v, start, end)
    elif isinstance(node, SequenceNode):
        for v in node.value:
            _mark(v, start, end)
