"""Static values of Python expressions: what a name or an argument holds, without running code.

:class:`Resolver` evaluates an ``ast`` expression in its scope and returns a plain value
(str, int, float, bool, None, dict, list), an object the scanner knows (:class:`Obj`: a
declared queue, an exchange, a kombu entity, a function), :class:`Many` (a loop over a
literal list), or :class:`~topoform.scan.model.Unknown` with the reason. It follows:

* literals, module-level constants, class constants (``self.QUEUE``), local names
  assigned exactly once, names imported from another scanned module;
* ``+`` on strings and numbers (and ``-``, ``*`` on numbers), f-strings of constants;
* dict and list displays (``**`` of a known dict too), a dict built in a local variable
  (``args = {}; args["x-max-length"] = 10``);
* ``ExchangeType.topic`` / ``ExchangeType.TOPIC`` (pika, aio-pika) as ``"topic"``.

Everything else is unknown, with a reason the user can act on: ``sys.argv`` (the
command line), ``os.environ``/``os.getenv`` (the environment), a parameter, a name
assigned more than once, a call. Nothing is guessed.

Scopes are built lazily, by walking statements only (never every expression), so a
scan costs little more than the parse itself.
"""
from __future__ import annotations

import ast
import re
from typing import Any, Callable

from .model import ServerNamed, Unknown

_CONST_TYPES = (str, int, float, bool, type(None), bytes)
TOO_DEEP = Unknown("an expression nested too deep to follow")


class Obj:
    """An object the scanner understands: ``kind`` and attributes (``attrs``) it can read."""

    __slots__ = ("kind", "attrs")

    def __init__(self, kind: str, **attrs: Any):
        self.kind = kind
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"Obj({self.kind}, {self.attrs})"


class Many:
    """The values of a loop variable over a known list (each one declared in turn), or of
    something computed from loop variables. ``tags[i]`` says which turn of which loop
    ``values[i]`` belongs to (``{loop: turn}``), so that two values of the same loop are
    combined turn by turn, never crosswise (:func:`joint`)."""

    __slots__ = ("values", "tags")

    def __init__(self, values: list, tags: list | None = None):
        self.values = values
        self.tags = tags if tags is not None else [{} for _ in values]


def joint(parts: list, limit: int | None = None) -> list[tuple[list, dict]]:
    """Every combination of ``parts`` (a :class:`Many` gives one of its values, anything else
    itself) whose loop turns agree: ``f"{q}.{q}"`` in ``for q in ("a", "b")`` is ``a.a`` and
    ``b.b``; two different loops combine every way. At most ``limit`` combinations."""
    combos: list[tuple[list, dict]] = [([], {})]
    for p in parts:
        if isinstance(p, Many):
            combos = [(chosen + [v], {**turns, **t}) for chosen, turns in combos
                      for v, t in zip(p.values, p.tags) if all(turns.get(k, i) == i for k, i in t.items())]
        else:
            combos = [(chosen + [p], turns) for chosen, turns in combos]
        if limit is not None and len(combos) > limit:
            combos = combos[:limit]
    return combos


def inner_turns(outer: Many, loop: Any, kinds: tuple) -> tuple[list | None, list]:
    """A loop over another loop's variable (``for key in keys`` inside ``for name, keys in
    ROUTES.items()``): each outer turn gives its own items (each of type ``kinds``), and each item
    keeps the outer turn it came from, so ``name`` and ``key`` combine within one turn. The
    items and their tags (``loop`` numbers the inner turns); (None, []) when a turn is no list."""
    flat, tags = [], []
    for items, turn in zip(outer.values, outer.tags):
        if not isinstance(items, kinds):
            return None, []
        for item in items:
            tags.append({**turn, loop: len(flat)})
            flat.append(item)
    return flat, tags


_PARAM = object()
_IN_PROGRESS = object()
_MULTI = object()
_MISSING_VALUE = object()


class Def:
    """A function or class a released module scope still names (its body is gone)."""

    __slots__ = ("name", "kind")

    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind


def loop_names(stmt: ast.For | ast.AsyncFor) -> list[tuple[str, Any]]:
    """The loop variables of ``for x in ...`` (``(x, iterable)``) or ``for k, v in ...``
    (``(k, (iterable, 0, 2))``, ``(v, (iterable, 1, 2))``); [] for any other target."""
    target = stmt.target
    if isinstance(target, ast.Name):
        return [(target.id, stmt.iter)]
    if isinstance(target, (ast.Tuple, ast.List)) and target.elts and all(isinstance(e, ast.Name) for e in target.elts):
        n = len(target.elts)
        return [(e.id, (stmt.iter, i, n)) for i, e in enumerate(target.elts)]
    return []


class Scope:
    """The names one module, class or function binds (collected from its statements)."""

    __slots__ = ("node", "kind", "name", "parent", "assigns", "items", "loops", "imports", "defs", "params",
                 "self_attrs", "module", "active_loops")

    def __init__(self, node: ast.AST, kind: str, name: str, parent: "Scope | None", module: "ModuleInfo"):
        self.node, self.kind, self.name, self.parent, self.module = node, kind, name, parent, module
        self.assigns: dict[str, list] = {}
        self.items: dict[str, list] = {}  # name -> [(key expr, value expr)] from name[key] = value
        self.loops: dict[str, ast.AST] = {}  # loop variable -> iterable expression
        self.imports: dict[str, tuple] = {}
        self.defs: dict[str, ast.AST] = {}
        self.params: set[str] = set()
        self.active_loops: dict[str, list] = {}  # loop variable -> iterables of the loops being walked
        self.self_attrs = None  # class scopes: self.X = value in its methods, collected on first use
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
                if arg is not None:
                    self.params.add(arg.arg)
        body = node.body if isinstance(getattr(node, "body", None), list) else []
        self._collect(body)

    def instance_attributes(self) -> dict[str, list]:
        """``self.X = value`` assignments in this class's methods: X -> [(value, method)]."""
        if self.self_attrs is None:
            found: dict[str, list] = {}
            for stmt in self.node.body:
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for sub in ast.walk(stmt):
                    if isinstance(sub, ast.Assign):
                        for target in sub.targets:
                            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                                    and target.value.id == "self"):
                                found.setdefault(target.attr, []).append((sub.value, stmt))
            self.self_attrs = found
        return self.self_attrs

    def bind(self, name: str, value: Any) -> None:
        self.assigns.setdefault(name, []).append(value)

    def _target(self, target: ast.AST, value: ast.AST | None) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, value if value is not None else _MULTI)
        elif isinstance(target, (ast.Tuple, ast.List)):
            elts = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) \
                else None
            for i, t in enumerate(target.elts):
                self._target(t.value if isinstance(t, ast.Starred) else t, elts[i] if elts else None)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and value is not None:
            self.items.setdefault(target.value.id, []).append((target.slice, value))
        elif isinstance(target, ast.Starred):
            self._target(target.value, None)

    def _collect(self, body: list) -> None:
        text = self.module.text if self.module is not None else None
        walrus_possible = text is None or ":=" in text  # the walk for := costs; most files have none
        for stmt in body:
            t = type(stmt)
            if walrus_possible:
                for walrus in _named_exprs(stmt):  # if (q := "jobs"): binds q here, like an assignment
                    self._target(walrus.target, walrus.value)
            if t is ast.Assign:
                for target in stmt.targets:
                    self._target(target, stmt.value)
            elif t is ast.AnnAssign:
                if stmt.value is not None:
                    self._target(stmt.target, stmt.value)
            elif t is ast.AugAssign:
                self._target(stmt.target, None)
            elif t in (ast.For, ast.AsyncFor):
                names = loop_names(stmt)
                if names:
                    for name, marker in names:
                        self.loops[name] = marker
                        self.bind(name, _MULTI if name in self.assigns else marker)
                else:
                    self._target(stmt.target, None)
                self._collect(stmt.body)
                self._collect(stmt.orelse)
            elif t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
                self.defs[stmt.name] = stmt
                self.bind(stmt.name, stmt)
                continue
            elif t in (ast.Import, ast.ImportFrom):
                for alias in stmt.names:
                    if t is ast.Import:
                        local = alias.asname or alias.name.split(".")[0]
                        self.imports[local] = ("module", alias.name if alias.asname else alias.name.split(".")[0])
                        if not alias.asname and "." in alias.name:
                            # import pkg.mq binds pkg; pkg.mq.f(...) is found under the whole name
                            # (a dotted key, never a name a lookup asks for)
                            self.imports[alias.name] = ("module", alias.name)
                    else:
                        local = alias.asname or alias.name
                        self.imports[local] = ("from", stmt.module or "", alias.name, stmt.level)
                    self.bind(local, ("import",))
            elif t in (ast.If, ast.While):
                self._collect(stmt.body)
                self._collect(stmt.orelse)
            elif t in (ast.With, ast.AsyncWith):
                for item in stmt.items:
                    if item.optional_vars is not None:
                        self._target(item.optional_vars, None)
                self._collect(stmt.body)
            elif t is ast.Try or t.__name__ == "TryStar":
                self._collect(stmt.body)
                for h in stmt.handlers:
                    if h.name:
                        self.bind(h.name, _MULTI)
                    self._collect(h.body)
                self._collect(stmt.orelse)
                self._collect(stmt.finalbody)
            elif t.__name__ == "Match":
                for case in stmt.cases:
                    self._collect(case.body)


_BODIES = ("body", "orelse", "handlers", "finalbody", "cases")


def _named_exprs(stmt: ast.stmt) -> list:
    """The ``name := value`` expressions of ``stmt`` itself (its test, value, arguments), not those
    of the statements it contains nor of the functions and classes it defines."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return []
    found = []
    for name, value in ast.iter_fields(stmt):
        if name in _BODIES:
            continue
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, ast.AST):
                found += [n for n in ast.walk(part) if isinstance(n, ast.NamedExpr)]
    return found


class ModuleInfo:
    """One parsed module: its tree, path, dotted name, and lazily built scopes."""

    def __init__(self, path: str, tree: ast.Module, dotted: str):
        self.path, self.tree, self.dotted = path, tree, dotted
        self._scope: Scope | None = None
        self.scopes: dict[int, Scope] = {}
        self.references: dict | None = None  # see references()
        self.text: str | None = None  # the source, while the tree is kept

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            self._scope = Scope(self.tree, "module", self.dotted, None, self)
        return self._scope

    def release(self) -> None:
        """Drop the syntax tree, keeping the module scope (what other modules import from it).

        Keeping thousands of trees alive costs more than parsing them; the module scope
        holds only the value expressions of its names, and markers for its functions.
        """
        scope = self.scope
        for name, values in scope.assigns.items():
            scope.assigns[name] = [Def(v.name, "class" if isinstance(v, ast.ClassDef) else "function")
                                   if isinstance(v, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else v
                                   for v in values]
        scope.defs = {}
        scope.node = None
        self.tree = None
        self.scopes = {}
        self.references = None
        self.text = None

    def scope_for(self, node: ast.AST, kind: str, parent: Scope) -> Scope:
        found = self.scopes.get(id(node))
        if found is None:
            found = self.scopes[id(node)] = Scope(node, kind, getattr(node, "name", "<lambda>"), parent, self)
        return found


def references(module: "ModuleInfo") -> dict[tuple, list[tuple[ast.AST, ast.Call | None, "Scope"]]]:
    """Every use of a name (``("name", n)``), of ``self.attr`` (``("self", attr)``) and of
    ``name.attr`` or ``a.b.attr`` (``("attr", "a.b", attr)``) in the module: ``(node, the call it is the
    function of or None, the scope it is in)``. Built once per module, by one walk."""
    found: dict[tuple, list] = {}

    def visit(node: ast.AST, where: Scope, call: ast.Call | None) -> None:
        t = type(node)
        if t is ast.Name and isinstance(node.ctx, ast.Load):
            found.setdefault(("name", node.id), []).append((node, call, where))
        elif t is ast.Attribute and isinstance(node.value, ast.Name):
            key = ("self", node.attr) if node.value.id == "self" else ("attr", node.value.id, node.attr)
            found.setdefault(key, []).append((node, call, where))
        elif t is ast.Attribute and isinstance(node.value, ast.Attribute):
            base = dotted(node.value)  # pkg.mq.declare(...) after import pkg.mq
            if base is not None:
                found.setdefault(("attr", base, node.attr), []).append((node, call, where))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                args = getattr(child, "args", None)
                for expr in (*child.decorator_list, *(args.defaults if args else ()),
                             *(d for d in (args.kw_defaults if args else ()) if d is not None)):
                    visit(expr, where, None)  # evaluated where the definition is
                inner = module.scope_for(child, "class" if isinstance(child, ast.ClassDef) else "function", where)
                for stmt in child.body:
                    visit(stmt, inner, None)
            else:
                visit(child, where, node if t is ast.Call and child is node.func else None)

    visit(module.tree, module.scope, None)
    return found


def calls_of(module: "ModuleInfo", key: tuple, parent: "Scope") -> list[tuple[ast.Call, Scope]] | None:
    """The calls of the function that ``key`` (see :func:`references`: ``("name", f)``,
    ``("self", f)``, ``("attr", module, f)``) refers to in ``parent`` (a scope of ``module``),
    each with the scope it is made in; None when it is used other than by a plain call (a
    callback, ...) or called with ``*args`` / ``**kwargs``."""
    if module.references is None:
        module.references = references(module)
    sites: list[tuple[ast.Call, Scope]] = []
    for node, call, where in module.references.get(key, ()):
        inside = where
        while inside is not None and inside is not parent:
            inside = inside.parent
        if inside is None:
            continue  # another scope's own name
        if call is None or any(isinstance(a, ast.Starred) for a in call.args) \
                or any(k.arg is None for k in call.keywords):
            return None
        sites.append((call, where))
    return sites


def call_sites(scope: Scope) -> list[tuple[ast.Call, Scope]] | None:
    """The calls of ``scope``'s function, each with the scope it is made in: by its name in the
    scope that defines it (a module-level or nested function), or as ``self._name(...)`` in its
    class (a method whose name starts with ``_``: others are called from outside the file too).
    None when the function is used any other way (passed as a callback, rebound, ...), when it
    is a public method, or when a call passes ``*args`` / ``**kwargs``."""
    fn, parent = scope.node, scope.parent
    module = scope.module
    if module is None or module.tree is None or parent.node is None:
        return None
    method = parent.kind == "class"
    if method and not fn.name.startswith("_"):
        return None
    if not method and len(parent.assigns.get(fn.name, ())) != 1:
        return None
    if module.text is not None and len(re.findall(rf"\b{re.escape(fn.name)}\b", module.text)) <= 1:
        return []  # only its definition names it: never called here (skips the walk)
    return calls_of(module, ("self" if method else "name", fn.name), parent)


def argument_for(fn: ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call, name: str, method: bool) -> Any:
    """The expression a call passes as parameter ``name`` (or its default), else Unknown."""
    a = fn.args
    positional = [x.arg for x in (*a.posonlyargs, *a.args)]
    if method:
        positional = positional[1:]
    if a.vararg is not None and name == a.vararg.arg or a.kwarg is not None and name == a.kwarg.arg:
        return Unknown("collected by *args or **kwargs")
    if name in positional:
        i = positional.index(name)
        if i < len(call.args):
            return call.args[i]
        for k in call.keywords:
            if k.arg == name:
                return k.value
        first_default = len(positional) - len(a.defaults)
        if i >= first_default:
            return a.defaults[i - first_default]
        return Unknown("not given")
    kwonly = [x.arg for x in a.kwonlyargs]
    if name in kwonly:
        for k in call.keywords:
            if k.arg == name:
                return k.value
        default = a.kw_defaults[kwonly.index(name)]
        return default if default is not None else Unknown("not given")
    return Unknown("not a parameter")


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def known(value: Any) -> bool:
    return not isinstance(value, (Unknown, Many))


CallHook = Callable[[ast.Call, Scope], Any]
ImportHook = Callable[[ModuleInfo, tuple, str], Any]


class Resolver:
    """Evaluates expressions; ``call_hook`` gives the value of a call (a declaration's result)."""

    def __init__(self, call_hook: CallHook, import_hook: ImportHook | None = None):
        self.call_hook = call_hook
        self.import_hook = import_hook
        self._busy: set = set()
        self._cache: dict = {}
        self.followed: dict[str, tuple] = {}  # function -> (its line, files whose calls of it are not followed)
        self.call_lines: dict[int, list[str]] = {}  # id(function) -> its calls ("path:line"), in turn order
        # the calls of a module-level function in the other scanned files that import it:
        # (module, name) -> ([(call, scope, resolver)], [files whose uses cannot be followed])
        self.foreign_calls: Callable[[ModuleInfo, str], tuple[list, list[str]]] | None = None

    # ------------------------------------------------------------------ names
    def lookup(self, name: str, scope: Scope, line: int | None = None) -> Any:
        """The value of ``name`` seen from ``scope`` (names are static: cached, except loop variables)."""
        s, looping = scope, False
        while s is not None:
            if s.active_loops:
                looping = True
                break
            s = s.parent
        if not looping:
            key = (name, id(scope))
            found = self._cache.get(key, _MISSING_VALUE)
            if found is _MISSING_VALUE:
                found = self._cache[key] = self._lookup(name, scope)
            return found
        return self._lookup(name, scope)

    def _lookup(self, name: str, scope: Scope) -> Any:
        s: Scope | None = scope
        first = True
        while s is not None:
            if s.kind == "class" and not first:  # class bodies are not visible from their methods
                s = s.parent
                continue
            first = False
            loops = s.active_loops.get(name)
            if loops:  # inside `for name in ...:` (the scanner walks the loop's body)
                return self._loop(name, loops[-1], s)
            if name in s.params and name not in s.assigns:
                return self._param(name, s)
            values = s.assigns.get(name)
            if values is not None:
                return self._bound(name, values, s)
            s = s.parent
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        return Unknown(f"'{name}' is not defined in this file")

    def _bound(self, name: str, values: list, scope: Scope) -> Any:
        if len(values) != 1 or values[0] is _MULTI:
            lines = sorted({getattr(v, "lineno", 0) for v in values if isinstance(v, ast.AST)})
            where = f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""
            return Unknown(f"'{name}' is assigned more than once{where}")
        value = values[0]
        if isinstance(value, tuple) and value == ("import",):
            return self._imported(name, scope)
        if isinstance(value, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return Obj("function", name=value.name, node=value)
        if isinstance(value, ast.ClassDef):
            return Obj("class", name=value.name, node=value)
        if isinstance(value, Def):
            return Obj(value.kind, name=value.name, node=None)
        if name in scope.loops and scope.loops[name] is value:
            return self._loop(name, value, scope)
        key = (id(value), id(scope))
        if key in self._busy:
            return Unknown(f"'{name}' is defined in terms of itself")
        self._busy.add(key)
        try:
            result = self.eval(value, scope)
        finally:
            self._busy.discard(key)
        if isinstance(result, dict) and name in scope.items:
            result = dict(result)
            for key_node, value_node in scope.items[name]:
                k = self.eval(key_node, scope)
                if not isinstance(k, str):
                    return Unknown(f"'{name}' gets a key that cannot be resolved")
                result[k] = self.eval(value_node, scope)
            return lift_dict(result)
        return result

    # ------------------------------------------------------------------ parameters
    def _param(self, name: str, scope: Scope) -> Any:
        """A parameter of a function of this file, from its calls in this file: one value per call
        (:class:`Many`, a turn per call, so a call's arguments stay together), when every use of
        the function is a call whose argument is known. Otherwise Unknown."""
        fn = scope.node
        plain = Unknown(f"'{name}' is a parameter of {scope.name}()")
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or scope.parent is None:
            return plain
        key = ("param", id(fn), name)
        if key in self._cache:
            return self._cache[key]
        if key in self._busy:
            return Unknown(f"'{name}' is a parameter of {scope.name}(), which calls itself")
        self._busy.add(key)
        try:
            sites = self._sites(scope)
            if sites is _IN_PROGRESS:
                result = Unknown(f"'{name}' is a parameter of {scope.name}(), whose calls are being followed")
            else:
                result = self._from_calls(name, scope, sites) if sites else plain
        finally:
            self._busy.discard(key)
        self._cache[key] = result
        return result

    def _sites(self, scope: Scope) -> Any:
        """Every call of ``scope``'s function, ``(call, scope, resolver, path)``: in this file and
        in the files that import it; found once per function, so that every parameter takes
        its values from the same calls in the same order (a turn per call)."""
        fn = scope.node
        key = ("sites", id(fn))
        if key not in self._cache:
            self._cache[key] = _IN_PROGRESS
            local = call_sites(scope)
            sites = None
            if local is not None:
                sites = [(call, where, self, scope.module.path) for call, where in local]
                if scope.parent.kind == "module" and self.foreign_calls is not None:
                    foreign, unfollowed = self.foreign_calls(scope.module, fn.name)
                    sites += foreign
                    if unfollowed:
                        self.followed[fn.name] = (fn.lineno, unfollowed)
                self.call_lines[id(fn)] = [f"{path}:{call.lineno}" for call, _, _, path in sites]
            self._cache[key] = sites
        return self._cache[key]

    def _from_calls(self, name: str, scope: Scope, sites: list) -> Any:
        fn = scope.node
        here = scope.module.path
        values, tags = [], []
        turn = ("call", id(fn))
        for i, (call, caller, resolver, path) in enumerate(sites):
            where = f"line {call.lineno}" if path == here else f"{path}:{call.lineno}"
            expr = argument_for(fn, call, name, method=scope.parent.kind == "class")
            if isinstance(expr, Unknown):
                return Unknown(f"'{name}' of {fn.name}() is {expr.reason} at the call on {where}")
            if expr in fn.args.defaults or expr in fn.args.kw_defaults:
                value = self.eval(expr, scope.parent)
            else:
                value = resolver.eval(expr, caller)
            if isinstance(value, Unknown):  # this call's declarations stay unresolved; the others do not
                value = Unknown(f"{value.reason}, as '{name}' of {fn.name}() at the call on {where}")
            if isinstance(value, Many):
                for v, t in zip(value.values, value.tags):
                    values.append(v)
                    tags.append({turn: i, **t})
            else:
                values.append(value)
                tags.append({turn: i})
        if all(isinstance(v, Unknown) for v in values):
            return values[0]
        if all(len(t) == 1 for t in tags) and all(v is values[0] or v == values[0] for v in values):
            return values[0]  # the same at every call (a channel, a constant)
        return Many(values, tags)

    def _loop(self, name: str, marker: Any, scope: Scope) -> Any:
        """A loop variable: each value it takes, tagged with the loop's turn (see :class:`Many`)."""
        iterable, position, width = marker if isinstance(marker, tuple) else (marker, None, None)
        values = self._iterate(iterable, scope)
        tags = None
        if isinstance(values, Many):
            values, tags = inner_turns(values, id(iterable), (list, tuple, dict))
            if values is None:
                return Unknown(f"'{name}' loops over a value that is not a known list")
        if isinstance(values, (list, tuple)) and values and position is not None:
            if not all(isinstance(v, (list, tuple)) and len(v) == width for v in values):
                return Unknown(f"'{name}' unpacks items that are not all {width}-tuples")
            values = [v[position] for v in values]
        if isinstance(values, (list, tuple)) and values and all(known(v) for v in values):
            return Many(list(values), tags or [{id(iterable): i} for i in range(len(values))])
        if isinstance(values, Unknown):
            return Unknown(f"{values.reason}, through the loop variable '{name}'")
        return Unknown(f"'{name}' is a loop variable")

    def _iterate(self, iterable: ast.AST, scope: Scope) -> Any:
        """What a ``for`` loop over ``iterable`` visits: a known list or tuple, a dict's keys,
        ``d.items()``, ``d.keys()``, ``d.values()``."""
        if (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) and not iterable.args
                and not iterable.keywords and iterable.func.attr in ("items", "keys", "values")):
            table = self.eval(iterable.func.value, scope)
            if isinstance(table, dict):
                attr = iterable.func.attr
                return list(table.items() if attr == "items" else table.values() if attr == "values" else table)
            if isinstance(table, Unknown):
                return table
        values = self.eval(iterable, scope)
        return list(values) if isinstance(values, dict) else values

    def _imported(self, name: str, scope: Scope) -> Any:
        spec = scope.imports[name]
        if spec[0] == "module":
            return Obj("module", name=spec[1])
        _, module, attr, level = spec
        if self.import_hook is not None:
            found = self.import_hook(scope.module, spec, attr)
            if found is not None:
                return found
        full = ("." * level) + module
        if module in ("sys", "os") or module.split(".")[0] in ("pika", "aio_pika", "kombu"):
            return Obj("module", name=f"{module}.{attr}")
        return Unknown(f"'{name}' is imported from {full}, which the scan could not resolve")

    # ------------------------------------------------------------------ expressions
    def eval(self, node: ast.AST, scope: Scope) -> Any:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            return Unknown(lambda: f"{_describe(node)} is computed at run time")
        try:
            return method(node, scope)
        except RecursionError:  # 'a' + 'a' + ... a thousand times: this value only
            return TOO_DEEP

    def _Constant(self, node: ast.Constant, scope: Scope) -> Any:
        return node.value

    def _Name(self, node: ast.Name, scope: Scope) -> Any:
        return self.lookup(node.id, scope, node.lineno)

    def _JoinedStr(self, node: ast.JoinedStr, scope: Scope) -> Any:
        parts: list = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
                continue
            value = self.eval(v.value, scope) if isinstance(v, ast.FormattedValue) else self.eval(v, scope)
            if isinstance(value, Unknown):
                return Unknown(f"an f-string with {value.reason}")
            spec = ""
            if isinstance(v, ast.FormattedValue) and v.format_spec is not None:
                spec = self.eval(v.format_spec, scope)  # f"{n:03d}": the spec is an f-string itself
                if isinstance(spec, Unknown):
                    return spec
                if not isinstance(spec, str) or isinstance(value, (Many, ServerNamed)):
                    return Unknown("an f-string with a format specification known only at run time")
            if isinstance(value, Many):
                parts.append(value)
                continue
            if not isinstance(value, _CONST_TYPES) and not isinstance(value, ServerNamed):
                return Unknown("an f-string of a value that is not a constant")
            conv = getattr(v, "conversion", -1)
            text = repr(value) if conv == ord("r") else ascii(value) if conv == ord("a") else value
            if spec:
                try:
                    parts.append(format(text, spec))
                except (ValueError, TypeError):
                    return Unknown(f"an f-string whose format specification {spec!r} does not fit its value")
                continue
            parts.append(text if isinstance(text, str) else _text(text))
        return lift(lambda *ps: "".join(ps), parts)

    def _BinOp(self, node: ast.BinOp, scope: Scope) -> Any:
        left, right = self.eval(node.left, scope), self.eval(node.right, scope)
        for side in (left, right):
            if isinstance(side, Unknown):
                return side
        op = type(node.op)
        if op is ast.Mod and isinstance(node.right, ast.Tuple) and isinstance(right, list):
            # "%s.%s" % (a, b): the tuple's items may be loop values, one string per turn
            return lift(lambda text, *values: _percent(text, tuple(values)) if isinstance(text, str)
                        else Unknown(lambda: f"{_describe(node)} is computed at run time"), [left, *right])

        def apply(a, b):
            if op is ast.Add and isinstance(a, str) and isinstance(b, str):
                return a + b
            if _number(a) and _number(b) and op in _ARITHMETIC:
                if op is ast.Pow and (abs(b) > 64 or abs(a) > 2 ** 64):
                    return Unknown(lambda: f"{_describe(node)} is too large to compute")
                try:
                    return _ARITHMETIC[op](a, b)
                except (ZeroDivisionError, OverflowError, ValueError):
                    return Unknown(lambda: f"{_describe(node)} fails at run time")
            if op is ast.Mod and isinstance(a, str):
                return _percent(a, b)
            return Unknown(lambda: f"{_describe(node)} is computed at run time")

        return lift(apply, [left, right])

    def _UnaryOp(self, node: ast.UnaryOp, scope: Scope) -> Any:
        value = self.eval(node.operand, scope)
        if isinstance(node.op, ast.USub) and _number(value):
            return -value
        if isinstance(node.op, ast.Not) and isinstance(value, bool):
            return not value
        if isinstance(value, Unknown):
            return value
        return Unknown(lambda: f"{_describe(node)} is computed at run time")

    def _Dict(self, node: ast.Dict, scope: Scope) -> Any:
        out: dict = {}
        for k, v in zip(node.keys, node.values):
            if k is None:  # **other
                merged = self.eval(v, scope)
                if not isinstance(merged, dict):
                    return Unknown(merged.reason if isinstance(merged, Unknown) else "a mapping built at run time")
                out.update(merged)
                continue
            key = self.eval(k, scope)
            if not isinstance(key, str):
                return Unknown(lambda: f"a mapping key {_describe(k)} that cannot be resolved")
            out[key] = self.eval(v, scope)
        return lift_dict(out)

    def _List(self, node, scope: Scope) -> Any:
        out = []
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                return Unknown("a list built at run time")
            out.append(self.eval(elt, scope))
        return out

    _Tuple = _List

    def _Attribute(self, node: ast.Attribute, scope: Scope) -> Any:
        name = dotted(node)
        if name is not None:
            tail = name.rsplit(".", 2)
            if len(tail) >= 2 and tail[-2] == "ExchangeType":
                return node.attr.lower()
            if len(tail) == 3 and tail[-3].rsplit(".", 1)[-1] == "ExchangeType" and tail[-1] == "value":
                return tail[-2].lower()  # ExchangeType.topic.value
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            return self._self_attr(node.attr, scope)
        base = self.eval(node.value, scope)
        if isinstance(base, Obj):
            if base.kind == "module":
                full = f"{base.attrs['name']}.{node.attr}"
                if full == "sys.argv":
                    return Unknown("from the command line (sys.argv)")
                if full == "os.environ":
                    return Obj("environ")
                if full.endswith("ExchangeType"):
                    return Obj("module", name=full)
                if full.split(".")[0] in ("os", "sys", "pika", "aio_pika", "kombu"):
                    return Obj("module", name=full)
                if self.import_hook is not None:
                    spec = ("file", base.attrs["file"]) if "file" in base.attrs else ("from", base.attrs["name"])
                    found = self.import_hook(scope.module, spec + (node.attr, 0), node.attr)
                    if found is not None:
                        return found
                if self._imports_module(full, scope):  # import pkg.names, then pkg.names.X
                    return Obj("module", name=full)
                return Unknown(f"'{full}' is read from another module the scan could not resolve")
            if node.attr in base.attrs:
                return base.attrs[node.attr]
            if base.kind == "class" and base.attrs.get("node") is not None:  # Settings.QUEUE
                found = self._class_attr(base.attrs["node"], node.attr, scope.module)
                if found is not None:
                    return found
            return Unknown(lambda: f"'{_text_node(node)}' is known only at run time")
        if isinstance(base, Unknown):
            return Unknown(lambda: f"'{_text_node(node)}' is read from a value the scan cannot follow "
                                   f"({base.reason})")
        if isinstance(base, dict):
            return Unknown(lambda: f"'{_text_node(node)}' is an attribute of a mapping")
        return Unknown(lambda: f"'{_text_node(node)}' is known only at run time")

    @staticmethod
    def _imports_module(full: str, scope: Scope) -> bool:
        s: Scope | None = scope
        while s is not None:
            if full in s.imports:
                return True
            s = s.parent
        return False

    def _self_attr(self, attr: str, scope: Scope) -> Any:
        s: Scope | None = scope
        while s is not None and s.kind != "class":
            s = s.parent
        if s is None:
            return Unknown(f"'self.{attr}' is known only at run time")
        assigned = s.instance_attributes().get(attr, [])
        if attr in s.assigns and not assigned:
            return self._bound(attr, s.assigns[attr], s)
        if len(assigned) == 1 and attr not in s.assigns:
            value_node, method = assigned[0]
            method_scope = s.module.scope_for(method, "function", s)
            return self.eval(value_node, method_scope)
        if assigned:
            return Unknown(f"'self.{attr}' is assigned more than once")
        if attr not in s.assigns:  # a constant of a base class of this file (class Worker(Base))
            for base in self._bases(s.node, s.parent):
                found = self._class_attr(base, attr, s.module)
                if found is not None:
                    return found
        return Unknown(f"'self.{attr}' is not set in class {s.name}")

    def _bases(self, cls: ast.ClassDef | None, parent: Scope | None) -> list:
        """The base classes of ``cls`` defined in the same file (their syntax trees)."""
        if cls is None or parent is None:
            return []
        out = []
        for expr in cls.bases:
            value = self.eval(expr, parent)
            if isinstance(value, Obj) and value.kind == "class" and isinstance(value.attrs.get("node"), ast.ClassDef):
                out.append(value.attrs["node"])
        return out

    def _class_attr(self, cls: ast.ClassDef, attr: str, module: "ModuleInfo", depth: int = 0) -> Any:
        """A class constant ``attr`` of ``cls`` or of its bases in the file; None when none has it.
        A constant that an instance reassigns (``self.X = ...`` in a method) is known only at run time."""
        if depth > 20 or module is None:
            return None
        scope = module.scope_for(cls, "class", module.scope)
        if attr in scope.assigns:
            text = module.text  # no "self.X" anywhere in the file: no method reassigns it (skips a walk)
            if (text is None or f"self.{attr}" in text) and attr in scope.instance_attributes():
                return Unknown(f"'{cls.name}.{attr}' is also set on its instances")
            return self._bound(attr, scope.assigns[attr], scope)
        for base in self._bases(cls, scope.parent):
            found = self._class_attr(base, attr, module, depth + 1)
            if found is not None:
                return found
        return None

    def _Subscript(self, node: ast.Subscript, scope: Scope) -> Any:
        base = self.eval(node.value, scope)
        if isinstance(base, Obj) and base.kind == "environ":
            key = self.eval(node.slice, scope)
            return Unknown(f"from the environment ({key})" if isinstance(key, str) else "from the environment")
        if isinstance(base, Unknown):
            return base
        key = self.eval(node.slice, scope)
        if isinstance(base, dict) and isinstance(key, str) and key in base:
            return base[key]
        if isinstance(base, (list, tuple)) and isinstance(key, int) and -len(base) <= key < len(base):
            return base[key]
        return Unknown(lambda: f"'{_text_node(node)}' is looked up at run time")

    def _Call(self, node: ast.Call, scope: Scope) -> Any:
        env = self._environ_call(node, scope)
        if env is not None:
            return env
        text = self._str_method(node, scope)
        if text is not None:
            return text
        return self.call_hook(node, scope)

    def _str_method(self, node: ast.Call, scope: Scope) -> Any:
        """``"{}.dlx".format(svc)``, ``name.upper()``, ``".".join(parts)``, ...: a string method of
        :data:`_STR_METHODS` called on a known string with known arguments; None for any other call."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in _STR_METHODS):
            return None
        base = self.eval(func.value, scope)
        if not isinstance(base, str) and not (isinstance(base, Many) and all(isinstance(x, str) for x in base.values)):
            return None
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return Unknown(lambda: f"'{_text_node(node)}' is computed from arguments unpacked at run time")
        args = [self.eval(a, scope) for a in node.args]
        kwargs = {k.arg: self.eval(k.value, scope) for k in node.keywords}
        for value in [*args, *kwargs.values()]:
            if isinstance(value, Unknown):
                return value
        if func.attr == "format" and re.search(r"\{[^{}]*[.\[]", base if isinstance(base, str) else ""):
            return Unknown(lambda: f"'{_text_node(node)}' reads attributes or items at run time")
        keys = list(kwargs)

        def call(text, *values):
            positional, named = values[:len(args)], dict(zip(keys, values[len(args):]))
            if not all(_plain_constant(v) for v in (*positional, *named.values())):
                return Unknown(lambda: f"'{_text_node(node)}' is computed from a value that is not a constant")
            try:
                return getattr(text, func.attr)(*positional, **named)
            except (ValueError, TypeError, IndexError, KeyError):
                return Unknown(lambda: f"'{_text_node(node)}' fails at run time")

        return lift(call, [base, *args, *kwargs.values()])

    def _environ_call(self, node: ast.Call, scope: Scope) -> Unknown | None:
        func = node.func
        if not isinstance(func, ast.Attribute):
            return None
        if func.attr == "getenv" or (func.attr == "get" and isinstance(self.eval(func.value, scope), Obj)
                                     and self.eval(func.value, scope).kind == "environ"):
            if func.attr == "getenv":
                base = self.eval(func.value, scope)
                if not (isinstance(base, Obj) and base.kind == "module" and base.attrs["name"] == "os"):
                    return None
            key = self.eval(node.args[0], scope) if node.args else None
            return Unknown(f"from the environment ({key})" if isinstance(key, str) else "from the environment")
        return None

    def _IfExp(self, node: ast.IfExp, scope: Scope) -> Any:
        a, b = self.eval(node.body, scope), self.eval(node.orelse, scope)
        if known(a) and known(b) and type(a) is type(b) and a == b:
            return a
        return Unknown(f"chosen at run time: {_either(a)} or {_either(b)}")

    def _BoolOp(self, node: ast.BoolOp, scope: Scope) -> Any:
        values = [self.eval(v, scope) for v in node.values]
        return Unknown("chosen at run time: " + " or ".join(_either(v) for v in values))

    def _Lambda(self, node: ast.Lambda, scope: Scope) -> Any:
        return Obj("function", name="<lambda>", node=node)

    def _Await(self, node: ast.Await, scope: Scope) -> Any:
        return self.eval(node.value, scope)

    def _NamedExpr(self, node, scope: Scope) -> Any:
        return self.eval(node.value, scope)

    def _ListComp(self, node: ast.ListComp, scope: Scope) -> Any:
        """``[f"{s}.q" for s in SERVICES]``: one generator over a known list, a plain name, no
        condition; its items computed as the loop's turns (the name is a loop variable of a scope
        of its own, so the values are never cached)."""
        if len(node.generators) != 1:
            return Unknown("a comprehension of several loops")
        gen = node.generators[0]
        if gen.ifs or gen.is_async or not isinstance(gen.target, ast.Name):
            return Unknown("a comprehension with a condition or unpacking")
        items = self._iterate(gen.iter, scope)
        if isinstance(items, Unknown):
            return items
        if not isinstance(items, (list, tuple)) or not all(known(v) for v in items):
            return Unknown("a comprehension over a value that is not a known list")
        if not items:
            return []
        inner = Scope(node, "comprehension", "<comprehension>", scope, scope.module)
        inner.active_loops[gen.target.id] = [gen.iter]
        value = self.eval(node.elt, inner)
        if isinstance(value, Unknown):
            return value
        if not isinstance(value, Many):
            return [value] * len(items)
        loop = id(gen.iter)
        if len(value.values) != len(items) or any(set(t) - {loop} for t in value.tags):
            return Unknown("a comprehension whose items depend on another loop")
        return [v for v, _ in sorted(zip(value.values, value.tags), key=lambda pair: pair[1].get(loop, 0))]

    _GeneratorExp = _ListComp


_ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.FloorDiv: lambda a, b: a // b, ast.Div: lambda a, b: a / b, ast.Mod: lambda a, b: a % b,
               ast.Pow: lambda a, b: a ** b}

# string methods whose result the scan computes when the string and the arguments are constants
_STR_METHODS = frozenset({"format", "upper", "lower", "strip", "lstrip", "rstrip", "replace", "join",
                          "removeprefix", "removesuffix", "capitalize", "title"})


def _plain_constant(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
    return isinstance(value, (str, int, float, bool)) or value is None


def _percent(text: str, values: Any) -> Any:
    """``"%s.dlx" % svc`` and ``"%s.%s" % (a, b)`` of constants; a mapping or anything else is Unknown."""
    if isinstance(values, list) or not _plain_constant(values):
        return Unknown("a string formatted with % from a value that is not a constant")
    try:
        return text % values
    except (TypeError, ValueError, KeyError):
        return Unknown("a string formatted with % that fails at run time")


def _either(value: Any) -> str:
    if isinstance(value, Unknown):
        return value.reason
    if isinstance(value, _CONST_TYPES):
        return repr(value)
    return "a value known only at run time"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text(value: Any) -> str:
    if isinstance(value, ServerNamed):
        return value.ref
    return str(value)


def lift_dict(table: dict) -> Any:
    """A dict whose values include loop values (``{"x-dead-letter-exchange": f"{svc}.dlx"}`` in
    ``for svc in ...``) as one dict per turn (:class:`Many`); any other dict as it is."""
    if not any(isinstance(v, Many) for v in table.values()):
        return table
    keys = list(table)
    return lift(lambda *values: dict(zip(keys, values)), list(table.values()))


def lift(fn, parts: list) -> Any:
    """Apply ``fn`` to parts, expanding :class:`Many` parts into one value per combination."""
    if not any(isinstance(p, Many) for p in parts):
        return fn(*parts)
    combos = joint(parts)
    results = [next((c for c in chosen if isinstance(c, Unknown)), None) or fn(*chosen) for chosen, _ in combos]
    for r in results:
        if isinstance(r, Unknown):
            return r
    return Many(results, [turns for _, turns in combos])


def _text_node(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - only a label
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(node: ast.AST) -> str:
    return f"'{_text_node(node)}'"
