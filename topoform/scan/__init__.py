"""Static discovery of RabbitMQ declarations in source code (``topoform scan``, ``check-code``).

:func:`scan_paths` reads Python (``ast``) and JavaScript/TypeScript (tree-sitter) files,
never running them, and returns a :class:`ScanResult`: every declaration with its
file:line, the values it could not resolve (and why), the topology they add up to, and
the conflicts between places that declare the same object differently.

Modules: ``resolve`` (values of Python expressions), ``python`` and ``javascript`` (the
libraries' calls), ``topology`` (objects, conflicts, route tests), ``emit`` (YAML with
comments), ``check`` (code against topology files).
"""
from __future__ import annotations

import ast
import io
import re
import os
import sys
import tokenize
from dataclasses import dataclass, field

from ..errors import InputError
from .model import Declaration, FileScan, Issue, Place, Unknown
from .python import PythonScanner, module_name, relative
from .resolve import ModuleInfo, Obj, Resolver, calls_of

__all__ = ["scan_paths", "ScanResult", "discover_sources", "Declaration", "Issue", "Place"]

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "env", "__pycache__", ".tox", ".nox",
             "build", "dist", ".mypy_cache", ".pytest_cache", "site-packages", ".eggs"}
PYTHON = (".py",)


def source_extensions() -> tuple[str, ...]:
    """Every file ending the scan reads: Python's and the JavaScript scanner's (one table)."""
    from .javascript import EXTENSIONS

    return PYTHON + tuple(EXTENSIONS)
TOO_DEEP_FILE = "not scanned: an expression too deep"


def _language(path: str) -> str | None:
    from .javascript import EXTENSIONS

    ext = os.path.splitext(path)[1].lower()
    if ext in PYTHON:
        return "python"
    if path.endswith(".d.ts"):
        return None
    return EXTENSIONS.get(ext)


def discover_sources(paths: list[str], cwd: str) -> list[tuple[str, str, str]]:
    """(absolute path, shown path, language) of every source file under ``paths``, sorted.

    A directory is walked (skipping VCS, virtualenv, ``node_modules`` and build folders);
    a missing path is an InputError.
    """
    out: dict[str, tuple[str, str, str]] = {}
    for given in paths:
        full = given if os.path.isabs(given) else os.path.join(cwd, given)
        if os.path.isfile(full):
            lang = _language(full) or "python"
            out.setdefault(os.path.realpath(full), (os.path.normpath(full), os.path.normpath(given), lang))
            continue
        if not os.path.isdir(full):
            raise InputError(f"no such file or directory: {given}")
        for root, dirs, files in os.walk(full):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(files):
                path = os.path.join(root, name)
                lang = _language(path)
                if lang is None:
                    continue
                shown = os.path.normpath(os.path.join(given, os.path.relpath(path, full)))
                # a file reached twice (a symlink to it, or a path given twice) is scanned once: by
                # the first name met, so that it never conflicts with itself
                out.setdefault(os.path.realpath(path), (os.path.normpath(path), shown, lang))
    return sorted(out.values(), key=lambda source: source[1])


# an import statement, parenthesised names included (``from x import (a,\n b)``)
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)", re.M)


def python_text(data: bytes) -> str:
    """Python source decoded as Python decodes it: a UTF-8 BOM, else a PEP 263 coding cookie
    (``# -*- coding: latin-1 -*-``) on the first two lines, else UTF-8. Lines stay where they are.
    SyntaxError for a bad cookie or bytes that do not decode (with their line)."""
    encoding, cookie = tokenize.detect_encoding(io.BytesIO(data).readline)
    try:
        return data.decode(encoding)  # "utf-8-sig" drops the BOM
    except UnicodeDecodeError as exc:  # as Python says it: the line, and whether a coding was declared
        line = data.count(b"\n", 0, exc.start) + 1
        declared = any(b"coding" in c for c in cookie)
        err = SyntaxError(f"byte 0x{data[exc.start]:02x} on line {line} is not {encoding}"
                          + ("" if declared else " and no coding is declared (# -*- coding: ... -*-)"))
        err.lineno = line
        raise err from None


def _computed(call: ast.Call, scope) -> Unknown:
    """A call in a file read only for a helper's calls: its value is not followed."""
    from .python import _source

    return Unknown(lambda: f"computed by {_source(call)}")


class Project:
    """The scanned Python modules: imports between them, names of server-named queues."""

    def __init__(self, root: str):
        self.root = root
        self.by_path: dict[str, PythonScanner | None] = {}  # None: could not be parsed
        self.sources: dict[str, tuple[str, str]] = {}  # Python files to scan: path -> (full, shown)
        self.files: list[FileScan] = []
        self.skipped: list[Issue] = []
        self._busy: set = set()
        self._calls_cache: dict = {}
        self._import_index: dict[str, set[str]] | None = None

    def close(self) -> None:
        """Break the scanner <-> project <-> resolver cycles, so that the trees' remains are freed now
        by reference counting instead of by a long collection later."""
        for scanner in self.by_path.values():
            if scanner is not None:
                scanner.close()
        self.by_path.clear()

    def load(self, path: str) -> PythonScanner | None:
        """Parse and scan one Python file (once), then free its tree; None when it cannot be read."""
        if path in self.by_path:
            return self.by_path[path]
        self.by_path[path] = None
        full, shown = self.sources[path]
        parsing = False
        try:
            with open(full, "rb") as fh:
                text = python_text(fh.read())
            parsing = True
            tree = ast.parse(text, filename=shown)
        except OSError as exc:
            self.skipped.append(Issue("unreadable", f"cannot read: {exc.strerror or exc}", Place(shown, 1)))
            return None
        except RecursionError:
            self.skipped.append(Issue("parse-error", TOO_DEEP_FILE + " for Python's parser (RecursionError)",
                                      Place(shown, 1)))
            return None
        except (SyntaxError, ValueError, UnicodeDecodeError, LookupError) as exc:
            line = getattr(exc, "lineno", None) or 1
            message = f"not scanned: {type(exc).__name__}: {getattr(exc, 'msg', None) or exc}"
            if parsing and isinstance(exc, SyntaxError):
                # syntax newer than the Python running topoform is a SyntaxError too: say which Python read it
                message += f" (read as Python {sys.version_info.major}.{sys.version_info.minor})"
            self.skipped.append(Issue("parse-error", message, Place(shown, line)))
            return None
        module = ModuleInfo(shown, tree, module_name(full, self.root))
        module.abspath = path
        module.text = text
        scanner = PythonScanner(module, text, self)
        self.by_path[path] = scanner
        try:
            self.files.append(scanner.run())
        except RecursionError:
            self.skipped.append(Issue("parse-error", TOO_DEEP_FILE + " to follow (RecursionError)", Place(shown, 1)))
        scanner.release()
        return scanner

    def server_named_ref(self, path: str, n: int) -> str:
        """``svc/consumer.py`` (relative to the scan's common folder) -> ``svc.consumer.server-named``."""
        if os.path.isabs(path) and self.root:
            path = relative(path, self.root)
        stem = path.replace("\\", "/")
        for ext in source_extensions():
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
                break
        stem = ".".join(p for p in stem.split("/") if p not in ("", ".", ".."))
        return f"{stem}.server-named" + (f"-{n}" if n > 1 else "")

    def _find(self, importer: str, module: str, level: int) -> PythonScanner | None:
        """The scanned file an import names, from the importer's folder: ``level`` folders up for a
        relative import; for an absolute one, each folder above the importer's (the scan's common
        folder may be inside the package, as with ``src/myapp`` scanned alone), the first that has
        the module."""
        parts = [p for p in module.split(".") if p]
        if not parts and not level:
            return None
        if level:
            base = os.path.dirname(importer)
            for _ in range(level - 1):
                base = os.path.dirname(base)
            bases = [base]
        else:
            bases, base = [], os.path.dirname(importer)
            while True:
                bases.append(base)
                if not base or os.path.dirname(base) == base:
                    break
                base = os.path.dirname(base)
        for base in bases:
            tail = (os.path.join(base, *parts) + ".py",) if parts else ()
            for candidate in tail + (os.path.join(base, *parts, "__init__.py"),):
                candidate = os.path.normpath(candidate)
                if candidate in self.sources:
                    return self.load(candidate)
        return None

    def import_hook(self, module: ModuleInfo, spec: tuple, attr: str):
        """The value of ``attr`` imported as ``spec``: a constant of the named module, or, for
        ``from pkg import mod`` (``from . import mod``), the scanned module ``pkg/mod.py`` itself.
        A ``("file", path, ...)`` spec names a module already found (``mod.X`` after that import)."""
        kind, name, _, level = spec
        target = self.load(name) if kind == "file" else self._find(module.abspath, name, level)
        if target is not None:
            key = (target.module.path, attr)
            if key in self._busy:
                return None
            self._busy.add(key)
            try:
                scope = target.module.scope
                if attr in scope.assigns:
                    return target.resolver.lookup(attr, scope)
            finally:
                self._busy.discard(key)
        if kind == "file":
            return None
        sub = self._find(module.abspath, f"{name}.{attr}" if name else attr, level)
        if sub is None or sub.module.abspath is None:
            return None
        return Obj("module", name=f"{name}.{attr}" if name else attr, file=sub.module.abspath)


    def calls_from_other_files(self, module: ModuleInfo, name: str) -> tuple[list, list[str]]:
        """The calls of ``module``'s function ``name`` in the other scanned files that import it
        (``from module import name [as other]``, ``import module [as m]`` then ``m.name(...)``,
        ``import pkg.module`` then ``pkg.module.name(...)``), as ``(call, scope, resolver, path)``,
        and the files that use it in a way the scan cannot follow (other than by a call)."""
        cache_key = (module.path, name)
        if cache_key in self._calls_cache:
            return self._calls_cache[cache_key]
        self._calls_cache[cache_key] = ([], [])  # a cycle of helpers: nothing more
        stem = module.dotted.rsplit(".", 1)[-1]
        sites: list = []
        unfollowed: list[str] = []
        for path in sorted(self._importers().get(stem, ())):
            full, shown = self.sources[path]
            if path == getattr(module, "abspath", None):
                continue
            text = self._read(path)
            if text is None:
                continue
            try:
                tree = ast.parse(text, filename=shown)
            except (SyntaxError, ValueError, RecursionError):
                continue
            other = ModuleInfo(shown, tree, module_name(full, self.root))
            other.abspath, other.text = path, text
            scope = other.scope
            for local, spec in scope.imports.items():
                target = self._find(path, spec[1], 0 if spec[0] == "module" else spec[3])
                if spec[0] == "module":  # import mq [as m]: m.name(...); import pkg.mq: pkg.mq.name(...)
                    key = ("attr", local, name)
                elif target is not None and target.module is module and spec[2] == name:  # from mq import name [as other]
                    key = ("name", local)
                elif spec[2] == stem:  # from pkg import mq [as m] (from . import mq): m.name(...)
                    target = self._find(path, f"{spec[1]}.{stem}" if spec[1] else stem, spec[3])
                    key = ("attr", local, name)
                else:
                    continue
                if target is None or target.module is not module:
                    continue
                calls = calls_of(other, key, scope)
                if calls is None:
                    unfollowed.append(shown)
                    continue
                resolver = Resolver(_computed, self.import_hook)
                sites += [(call, where, resolver, shown) for call, where in calls]
        result = (sites, sorted(set(unfollowed)))
        self._calls_cache[cache_key] = result
        return result

    def _read(self, path: str) -> str | None:
        try:
            with open(self.sources[path][0], "rb") as fh:
                return python_text(fh.read())
        except (OSError, SyntaxError, UnicodeDecodeError, LookupError):
            return None

    def _importers(self) -> dict[str, set[str]]:
        """Word of an import statement -> the files whose imports hold it (module and imported
        names): which files may import a helper, without parsing them all. Built once."""
        if self._import_index is None:
            index: dict[str, set[str]] = {}
            for path in self.sources:
                text = self._read(path) or ""
                for m in _IMPORT.finditer(text):
                    for word in re.findall(r"\w+", m.group(0)):
                        index.setdefault(word, set()).add(path)
            self._import_index = index
        return self._import_index

    def note_calls_elsewhere(self) -> None:
        """A helper whose parameters the scan took from its calls, that a file imports in a way
        the scan cannot follow: say so at the helper (what the calls there declare is missing)."""
        for scanner in self.by_path.values():
            if scanner is None or scanner.resolver is None or scanner.module is None:
                continue
            for name, (line, files) in sorted(scanner.resolver.followed.items()):
                scanner.scan.issues.append(Issue(
                    "calls-elsewhere", f"{name}(): its parameters are taken from its calls; "
                    f"{', '.join(files)} use{'s' if len(files) == 1 else ''} it in a way the scan cannot follow "
                    "(import of the module, or not a plain call), so what those calls declare is not found",
                    Place(scanner.module.path, line)))


@dataclass
class ScanResult:
    files: list[FileScan]
    vhost: str
    rabbitmq_version: str
    version_source: str
    built: object = None
    skipped: list[Issue] = field(default_factory=list)

    @property
    def declarations(self) -> list[Declaration]:
        return sorted((d for f in self.files for d in f.declarations), key=lambda d: d.place)

    @property
    def issues(self) -> list[Issue]:
        found = [i for f in self.files for i in f.issues] + list(self.skipped) + list(self.built.issues)
        unique = list(dict.fromkeys(found))  # one declaration a loop expands: its warning once
        return sorted(unique, key=lambda i: (i.place or Place("", 0), i.code))

    @property
    def conflicts(self) -> list[Issue]:
        return list(self.built.conflicts)

    @property
    def topology(self):
        return self.built.topology


def scan_paths(paths: list[str], *, cwd: str = ".", vhost: str = "/", version: str = "4.3",
               version_source: str = "default") -> ScanResult:
    """Scan files and directories; see the module docstring."""
    from .topology import broker_refusals, build

    from ..perf import gc_paused

    with gc_paused():  # syntax trees are large, acyclic and short-lived: collections would find nothing
        return _scan(paths, cwd, vhost, version, version_source, build, broker_refusals)


def _scan(paths, cwd, vhost, version, version_source, build, broker_refusals) -> ScanResult:
    sources = discover_sources(paths, cwd)
    root = os.path.commonpath([s[0] for s in sources]) if sources else cwd
    if sources and os.path.isfile(root):
        root = os.path.dirname(root)
    project = Project(root)
    others = []
    for full, shown, lang in sources:
        if lang == "python":
            project.sources[os.path.normpath(full)] = (full, shown)
        else:
            others.append((full, shown, lang))
    for path in project.sources:
        project.load(path)
    files, skipped = project.files, project.skipped
    for full, shown, lang in others:
        from .javascript import JavaScriptScanner, Unavailable

        try:
            with open(full, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            skipped.append(Issue("unreadable", f"cannot read: {exc.strerror or exc}", Place(shown, 1)))
            continue
        try:
            scanner = JavaScriptScanner(shown, data, lang, project)
            scanner.abspath = full
            files.append(scanner.run())
        except RecursionError:
            skipped.append(Issue("parse-error", TOO_DEEP_FILE + " to follow (RecursionError)", Place(shown, 1)))
        except Unavailable:
            skipped.append(Issue("no-parser", f"not scanned: the {lang} parser is not installed "
                                              "(pip install 'topoform[scan-js]')", Place(shown, 1)))
    project.note_calls_elsewhere()
    files.sort(key=lambda f: f.path)
    project.close()
    declarations = [d for f in files for d in f.declarations]
    result = ScanResult(files, vhost, version, version_source, skipped=skipped)
    result.built = build(declarations, vhost, version)
    result.built.issues.extend(broker_refusals(result.built, vhost, version))
    return result
