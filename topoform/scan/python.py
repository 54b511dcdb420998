"""Declarations in Python source: pika (0.x and 1.x), aio-pika and kombu, read with ``ast``.

The code is parsed, never imported or run. A quick text filter finds the lines that may
hold a call the scan knows; only the statements on those lines are examined, and names
are followed by :mod:`topoform.scan.resolve`. Each library's signatures and defaults are
in the tables below, so the positional and keyword forms of each call bind the same way
the library binds them:

* pika 1.x ``queue_declare(queue, passive, durable, exclusive, auto_delete, arguments)``,
  ``exchange_declare(exchange, exchange_type='direct', ...)``, ``queue_bind(queue,
  exchange, routing_key=None)`` (a missing routing key is the queue name: pika sends
  ``routing_key = queue``), ``basic_consume(queue, on_message_callback)``;
* pika 0.x: ``exchange_declare(..., type=...)``, ``basic_consume(callback, queue=...)``
  with ``no_ack``, and the asynchronous ``Channel`` methods that take a callback first
  (``queue_declare(self.on_declared, 'q')``);
* aio-pika ``declare_queue(name=None, *, durable=False, ...)``, ``declare_exchange(name,
  type=ExchangeType.DIRECT, ...)``, ``queue.bind(exchange, routing_key=None)`` (the queue
  name when missing), ``exchange.bind(source, routing_key='')``, ``exchange.publish(message,
  routing_key)``, ``get_queue``/``get_exchange`` (passive);
* kombu ``Exchange(name, type='direct', durable=True, ...)``, ``Queue(name, exchange,
  routing_key, durable=True, ..., bindings=[binding(...)])`` (kombu declares the queue's
  exchange too, exclusive implies auto_delete, ``message_ttl``/``expires`` in seconds
  become ``x-message-ttl``/``x-expires`` in milliseconds), ``producer.publish(...,
  exchange=..., routing_key=...)``.
"""
from __future__ import annotations

import ast
import bisect
import dataclasses
import os
import re
from typing import Any

from .model import (BINDING, CONSUME, EXCHANGE, PUBLISH, QUEUE, UNROUTABLE_OK, Declaration, FileScan, Issue,
                    Place, ServerNamed, Unknown)
from .resolve import Many, ModuleInfo, Obj, Resolver, Scope, dotted, joint, known, loop_names

# No \b: word boundaries make the engine ~4x slower on a whole file; run() checks them instead.
_TRIGGER = re.compile(r"queue_declare|exchange_declare|queue_bind|exchange_bind|basic_publish|basic_consume|"
                      r"declare_queue|declare_exchange|get_queue|get_exchange|binding|bind|publish|consume|Exchange|"
                      r"SimpleQueue|SimpleBuffer|Queue|put")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_MISSING = object()
# Parameters no declaration reads (message bodies, callbacks, flags of the call itself): never evaluated.
_NOT_READ = frozenset(("body", "properties", "mandatory", "immediate", "on_message_callback", "consumer_callback",
                       "auto_ack", "no_ack", "consumer_tag", "callback", "nowait", "channel", "on_declared", "message",
                       "timeout", "declare", "robust", "content_type", "headers", "delivery_mode"))
_SIMPLE = (ast.Expr, ast.Assign, ast.AnnAssign, ast.Return)
_LEAVES = frozenset((ast.Constant, ast.Name, ast.Load, ast.Store, ast.Del))
MAX_EXPANSION = 64  # declarations one call may expand to (loops over literal lists)


def _top_call(stmt: ast.AST) -> ast.Call | None:
    """The call a simple statement consists of (``f(...)``, ``x = await f(...)``), else None."""
    if type(stmt) not in _SIMPLE:
        return None
    value = stmt.value
    if type(value) is ast.Await:
        value = value.value
    return value if type(value) is ast.Call else None


class Sig:
    """One call signature: positional parameter names, defaults, and the declaration kind."""

    def __init__(self, kind: str, params: tuple, defaults: dict, callback_first: tuple | None = None):
        self.kind, self.params, self.defaults, self.callback_first = kind, params, defaults, callback_first


_QUEUE_DEFAULTS = {"queue": "", "passive": False, "durable": False, "exclusive": False, "auto_delete": False,
                   "arguments": None}
_EXCHANGE_DEFAULTS = {"exchange": None, "exchange_type": "direct", "passive": False, "durable": False,
                      "auto_delete": False, "internal": False, "arguments": None}

PIKA: dict[str, Sig] = {
    "queue_declare": Sig(QUEUE, ("queue", "passive", "durable", "exclusive", "auto_delete", "arguments"),
                         _QUEUE_DEFAULTS,
                         ("callback", "queue", "passive", "durable", "exclusive", "auto_delete", "nowait",
                          "arguments")),
    "exchange_declare": Sig(EXCHANGE, ("exchange", "exchange_type", "passive", "durable", "auto_delete",
                                       "internal", "arguments"), _EXCHANGE_DEFAULTS,
                            ("callback", "exchange", "exchange_type", "passive", "durable", "auto_delete",
                             "internal", "nowait", "arguments")),
    "queue_bind": Sig(BINDING, ("queue", "exchange", "routing_key", "arguments"),
                      {"routing_key": None, "arguments": None},
                      ("callback", "queue", "exchange", "routing_key", "nowait", "arguments")),
    "exchange_bind": Sig(BINDING, ("destination", "source", "routing_key", "arguments"),
                         {"routing_key": "", "arguments": None},
                         ("callback", "destination", "source", "routing_key", "nowait", "arguments")),
    "basic_publish": Sig(PUBLISH, ("exchange", "routing_key", "body", "properties", "mandatory"), {}),
    "basic_consume": Sig(CONSUME, ("queue", "on_message_callback", "auto_ack", "exclusive", "consumer_tag",
                                   "arguments"), {},
                         ("consumer_callback", "queue", "no_ack", "exclusive", "consumer_tag", "arguments")),
}

AIO: dict[str, Sig] = {
    "declare_queue": Sig(QUEUE, ("name",), {"name": None, "durable": False, "exclusive": False, "passive": False,
                                            "auto_delete": False, "arguments": None}),
    "declare_exchange": Sig(EXCHANGE, ("name", "type"), {"type": "direct", "durable": False, "auto_delete": False,
                                                         "internal": False, "passive": False, "arguments": None}),
    "get_queue": Sig(QUEUE, ("name", "ensure"), {"ensure": True}),
    "get_exchange": Sig(EXCHANGE, ("name", "ensure"), {"ensure": True}),
}
_AIO_QUEUE_BIND = ("exchange", "routing_key", "arguments")
_AIO_EXCHANGE_BIND = ("exchange", "routing_key", "arguments")
_AIO_PUBLISH = ("message", "routing_key")

_KNOWN = frozenset(PIKA) | frozenset(AIO) | {"bind", "publish", "consume", "Exchange", "Queue", "binding",
                                             "SimpleQueue", "SimpleBuffer", "put"}
# kombu's Connection.SimpleQueue / SimpleBuffer (kombu/simple.py): an exchange and a queue named
# alike, bound with the name as key; SimpleBuffer's are not durable and auto-delete
KOMBU_SIMPLE = ("name", "no_ack", "queue_opts", "queue_args", "exchange_opts")
_KOMBU_SIMPLE_FLAGS = {"SimpleQueue": {}, "SimpleBuffer": {"durable": False, "auto_delete": True}}

KOMBU_EXCHANGE = ("name", "type", "channel")
KOMBU_QUEUE = ("name", "exchange", "routing_key", "channel", "bindings", "on_declared")
KOMBU_BINDING = ("exchange", "routing_key", "arguments", "unbind_arguments")
# kombu's Queue keywords that become queue arguments (seconds become milliseconds)
KOMBU_ARGUMENTS = {"message_ttl": ("x-message-ttl", 1000), "expires": ("x-expires", 1000),
                   "max_length": ("x-max-length", None), "max_length_bytes": ("x-max-length-bytes", None),
                   "max_priority": ("x-max-priority", None)}


class PythonScanner:
    """Scans one module; ``project`` resolves imports across scanned modules and names server-named queues."""

    def __init__(self, module: ModuleInfo, text: str, project):
        self.module, self.text, self.project = module, text, project
        self.scan = FileScan(module.path, "python")
        self.resolver = Resolver(self._call_value, project.import_hook if project else None)
        if project is not None:
            self.resolver.foreign_calls = project.calls_from_other_files
        self._results: dict[int, Any] = {}
        self._lines = text.splitlines()
        self._server_named = 0
        self._scope: Scope | None = None  # the scope being walked
        self._branches: list = []  # ((line, col) of an if or match, side) around the statement walked
        self._attribute_sets: set | None = None  # attribute names assigned anywhere in the file

    # ------------------------------------------------------------------ walking
    def run(self) -> FileScan:
        text, lines, line, last = self.text, [], 1, 0
        end = len(text)
        for m in _TRIGGER.finditer(text):
            start, stop = m.span()
            if (start and text[start - 1] in _WORD) or (stop < end and text[stop] in _WORD):
                continue  # part of a longer name
            line += text.count("\n", last, start)
            last = start
            if not lines or lines[-1] != line:
                lines.append(line)
        if lines:
            self._candidates = lines
            self._candidate_set = set(lines)
            self._walk(self.module.tree.body, self.module.scope)
        return self.scan

    def close(self) -> None:
        """After the whole scan: drop everything but the FileScan (breaks reference cycles)."""
        self.resolver = None
        self.project = None
        self._results = {}
        if self.module is not None:
            self.module._scope = None  # scope.module <-> module._scope
            self.module.scopes = {}
        self.module = None

    def release(self) -> None:
        """After :meth:`run`: free the tree and the text (other modules may still read the module scope)."""
        self.module.release()
        self.text = ""
        self._lines = []

    def _has(self, node: ast.AST) -> bool:
        lines = self._candidates
        i = bisect.bisect_left(lines, node.lineno)
        return i < len(lines) and lines[i] <= (node.end_lineno or node.lineno)

    def _walk(self, body: list, scope: Scope) -> None:
        outer, self._scope = self._scope, scope
        try:
            self._walk_body(body, scope)
        finally:
            self._scope = outer

    def _walk_body(self, body: list, scope: Scope) -> None:
        for stmt in body:
            if not self._has(stmt):
                continue
            t = type(stmt)
            if t in (ast.FunctionDef, ast.AsyncFunctionDef):
                self._walk(stmt.body, self.module.scope_for(stmt, "function", scope))
            elif t is ast.ClassDef:
                self._walk(stmt.body, self.module.scope_for(stmt, "class", scope))
            elif t is ast.If:
                self._calls(stmt.test, scope)
                at = (stmt.lineno, stmt.col_offset + 1)
                for side, body in (("if", stmt.body), ("else", stmt.orelse)):
                    self._branches.append((at, side))
                    try:
                        self._walk(body, scope)
                    finally:
                        self._branches.pop()
            elif t is ast.While:
                self._calls(stmt.test, scope)
                self._walk(stmt.body, scope)
                self._walk(stmt.orelse, scope)
            elif t in (ast.For, ast.AsyncFor):
                self._calls(stmt.iter, scope)
                names = loop_names(stmt)
                for name, marker in names:
                    scope.active_loops.setdefault(name, []).append(marker)
                try:
                    self._walk(stmt.body, scope)
                finally:
                    for name, _ in names:
                        scope.active_loops[name].pop()
                        if not scope.active_loops[name]:
                            del scope.active_loops[name]
                self._walk(stmt.orelse, scope)
            elif t in (ast.With, ast.AsyncWith):
                for item in stmt.items:
                    self._calls(item.context_expr, scope)
                self._walk(stmt.body, scope)
            elif t is ast.Try or t.__name__ == "TryStar":
                self._walk(stmt.body, scope)
                for h in stmt.handlers:
                    self._walk(h.body, scope)
                self._walk(stmt.orelse, scope)
                self._walk(stmt.finalbody, scope)
            elif t.__name__ == "Match":
                at = (stmt.lineno, stmt.col_offset + 1)
                for i, case in enumerate(stmt.cases):
                    self._branches.append((at, f"case {i + 1}"))
                    try:
                        self._walk(case.body, scope)
                    finally:
                        self._branches.pop()
            else:
                self._calls(stmt, scope)

    def _calls(self, node: ast.AST, scope: Scope) -> None:
        """Every call on a candidate line inside ``node``, in source order (subtrees without one skipped)."""
        if not self._has(node):
            return
        top = _top_call(node)
        if top is not None:  # `ch.queue_declare(...)`, `x = await ch.declare_queue(...)`: the common case
            func = top.func
            name = func.attr if type(func) is ast.Attribute else func.id if type(func) is ast.Name else None
            if name in _KNOWN:  # its arguments are evaluated, nested declarations with them
                self._call_value(top, scope)
                return
        stack = [node]
        found = []
        leaves, call, has, lines = _LEAVES, ast.Call, self._has, self._candidate_set
        children = ast.iter_child_nodes
        while stack:
            sub = stack.pop()
            if type(sub) is call:
                found.append(sub)
            for child in children(sub):
                if type(child) in leaves:
                    continue
                first = getattr(child, "lineno", None)
                if first is None or (first in lines if child.end_lineno == first else has(child)):
                    stack.append(child)
        for call in sorted(found, key=lambda c: (c.lineno, c.col_offset)):
            self._call_value(call, scope)

    # ------------------------------------------------------------------ calls
    def _call_value(self, node: ast.Call, scope: Scope) -> Any:
        key = id(node)
        if key in self._results:
            return self._results[key]
        self._results[key] = Unknown("a value being computed")
        try:
            value = self._dispatch(node, scope)
        except RecursionError:
            value = Unknown("an expression too deep to follow")
        if value is None:
            line = self._lines[node.lineno - 1] if node.lineno <= len(self._lines) else ""
            why = " from the command line (sys.argv)" if "sys.argv" in line else ""
            value = Unknown(lambda: f"computed{why} by {_source(node)}")
        self._results[key] = value
        return value

    def _dispatch(self, node: ast.Call, scope: Scope) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute):
            method = func.attr
            if method in PIKA:
                return self._pika(method, node, scope)
            if method in AIO:
                return self._aio_declare(method, node, scope)
            if method in _KOMBU_SIMPLE_FLAGS and self._imports_kombu():
                return self._kombu_simple(method, node, scope)
            if method in ("bind", "publish", "consume", "put"):
                receiver = self.resolver.eval(func.value, scope) if not _is_default_exchange(func.value) \
                    else Obj("aio-exchange", name="")
                if isinstance(receiver, Obj):
                    return self._on_object(method, receiver, node, scope)
                if method == "publish" and any(k.arg == "exchange" for k in node.keywords):
                    return self._kombu_publish(node, scope)
                return None
        target = self.resolver.eval(func, scope) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if isinstance(target, Obj) and target.kind == "module":
            name = target.attrs["name"]
            if name in ("kombu.Exchange", "kombu.entity.Exchange"):
                return self._kombu_exchange(node, scope)
            if name in ("kombu.Queue", "kombu.entity.Queue"):
                return self._kombu_queue(node, scope)
            if name in ("kombu.binding", "kombu.entity.binding"):
                return self._kombu_binding(node, scope)
        if isinstance(target, Obj) and target.kind == "class" and target.attrs.get("node") is not None \
                and not node.args and not node.keywords:
            return self._instance(target.attrs["node"])
        if isinstance(target, Obj) and target.kind == "function" and target.attrs["name"] == "dict":
            return None
        if isinstance(func, ast.Name) and func.id == "dict" and not node.args:
            return {k.arg: self.resolver.eval(k.value, scope) for k in node.keywords if k.arg}
        return None

    def _instance(self, cls: ast.ClassDef) -> Any:
        """``Cfg()`` of a module's own plain class or dataclass, without arguments: its class-level
        values (``queue: str = "orders"``). Not for a class with bases (pydantic settings read the
        environment), another decorator, an ``__init__``, or an attribute that a method or any
        ``x.attr = ...`` in the file sets: those are known only at run time."""
        if cls not in self.module.tree.body or cls.bases or cls.keywords:
            return None
        for deco in cls.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if _source(target) not in ("dataclass", "dataclasses.dataclass"):
                return None
        if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name in ("__init__", "__post_init__",
                                                                                      "__new__") for s in cls.body):
            return None
        scope = self.module.scope_for(cls, "class", self.module.scope)
        changed = set(scope.instance_attributes()) | self._set_attributes()
        attrs = {}
        for stmt in cls.body:
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
                stmt.target if isinstance(stmt, ast.AnnAssign) and stmt.value is not None else None
            if isinstance(target, ast.Name) and target.id not in changed:
                attrs[target.id] = self.resolver.eval(stmt.value, scope)
        return Obj("instance", **attrs)

    def _set_attributes(self) -> set:
        """Every attribute name assigned anywhere in the file (``x.attr = ...``, ``x.attr += ...``)."""
        found = self._attribute_sets
        if found is None:
            found = self._attribute_sets = set()
            for sub in ast.walk(self.module.tree):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] \
                    if isinstance(sub, (ast.AugAssign, ast.AnnAssign)) else []
                found.update(t.attr for t in targets if isinstance(t, ast.Attribute))
        return found

    def _bind(self, node: ast.Call, params: tuple, scope: Scope, skip: int = 0) -> dict:
        """Arguments by parameter name (``_MISSING`` when not given; Unknown for ``*args``/``**kw``)."""
        out: dict[str, Any] = {}
        args = node.args
        for i, arg in enumerate(args):
            if isinstance(arg, ast.Starred):
                for p in params[i + skip:]:
                    out.setdefault(p, Unknown(lambda: f"passed through *{_source(arg.value)}"))
                break
            if i + skip < len(params) and params[i + skip] not in _NOT_READ:
                out[params[i + skip]] = self.resolver.eval(arg, scope)
        for kw in node.keywords:
            if kw.arg in _NOT_READ:
                continue
            if kw.arg is None:
                spread = self.resolver.eval(kw.value, scope)
                if isinstance(spread, dict):
                    for k, v in spread.items():
                        out.setdefault(k, v)
                else:
                    out["**"] = Unknown(lambda kw=kw: f"passed through **{_source(kw.value)}")
            else:
                out[kw.arg] = self.resolver.eval(kw.value, scope)
        return out

    def _callback_first(self, node: ast.Call, scope: Scope) -> bool:
        """pika 0.x asynchronous Channel methods take the callback first."""
        if not node.args or isinstance(node.args[0], ast.Starred):
            return False
        first = node.args[0]
        if isinstance(first, ast.Lambda):
            return True
        value = self.resolver.eval(first, scope)
        if isinstance(value, Obj) and value.kind == "function":
            return True
        if isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "self":
            cls = scope
            while cls is not None and cls.kind != "class":
                cls = cls.parent
            return cls is not None and first.attr in cls.defs
        return isinstance(first, ast.Call) and dotted(first.func) in ("functools.partial", "partial")

    # ------------------------------------------------------------------ pika
    def _pika(self, method: str, node: ast.Call, scope: Scope) -> Any:
        sig = PIKA[method]
        kws = {k.arg for k in node.keywords}
        if method == "basic_consume":
            old = ("consumer_callback" in kws or "no_ack" in kws or
                   ("on_message_callback" not in kws and self._callback_first(node, scope)))
        else:
            old = sig.callback_first is not None and self._callback_first(node, scope) and "callback" not in kws
        params = sig.callback_first if old else sig.params
        got = self._bind(node, params, scope)
        place = self._place(node)
        if method == "queue_declare":
            return self._queue(place, "pika", method, got, sig.defaults, node)
        if method == "exchange_declare":
            if "type" in got and "exchange_type" not in got:  # pika 0.x spelling
                got["exchange_type"] = got.pop("type")
            return self._exchange(place, "pika", method, got, sig.defaults)
        if method in ("queue_bind", "exchange_bind"):
            if method == "queue_bind":
                dest, source, dtype = got.get("queue", _MISSING), got.get("exchange", _MISSING), "queue"
                key = got.get("routing_key", None)
                if key is None:  # pika: routing_key = queue when None
                    key = dest
            else:
                dest, source, dtype = got.get("destination", _MISSING), got.get("source", _MISSING), "exchange"
                key = got.get("routing_key", "")
            return self._binding(place, "pika", method, source, dest, dtype, key, got.get("arguments"))
        if method == "basic_publish":
            return self._publish(place, "pika", method, got.get("exchange", _MISSING), got.get("routing_key", _MISSING),
                                 node)
        return self._consume(place, "pika", method, got.get("queue", _MISSING))

    # ------------------------------------------------------------------ aio-pika
    def _aio_declare(self, method: str, node: ast.Call, scope: Scope) -> Any:
        sig = AIO[method]
        got = self._bind(node, sig.params, scope)
        place = self._place(node)
        if method in ("get_queue", "get_exchange"):
            ensure = got.get("ensure", True)
            got = {("queue" if method == "get_queue" else "exchange"): got.get("name", _MISSING),
                   "passive": ensure if isinstance(ensure, bool) else True}
            if method == "get_queue":
                return self._queue(place, "aio-pika", method, got, _QUEUE_DEFAULTS, node, obj="aio-queue",
                                   record=got["passive"] is True)
            return self._exchange(place, "aio-pika", method, got, _EXCHANGE_DEFAULTS, obj="aio-exchange",
                                  record=got["passive"] is True)
        rename = {"name": "queue"} if method == "declare_queue" else {"name": "exchange", "type": "exchange_type"}
        got = {rename.get(k, k): v for k, v in got.items()}
        if method == "declare_queue":
            return self._queue(place, "aio-pika", method, got, {**_QUEUE_DEFAULTS, "queue": None}, node,
                               obj="aio-queue")
        return self._exchange(place, "aio-pika", method, got, _EXCHANGE_DEFAULTS, obj="aio-exchange")

    def _on_object(self, method: str, receiver: Obj, node: ast.Call, scope: Scope) -> Any:
        place = self._place(node)
        kind = receiver.kind
        if kind == "aio-queue" and method == "bind":
            got = self._bind(node, _AIO_QUEUE_BIND, scope)
            source = _entity_name(got.get("exchange", _MISSING))
            key = got.get("routing_key", None)
            if key is None:  # aio-pika: the queue's name when missing
                key = receiver.attrs["name"]
            return self._binding(place, "aio-pika", "Queue.bind", source, receiver.attrs["name"], "queue", key,
                                 got.get("arguments"))
        if kind == "aio-exchange" and method == "bind":
            got = self._bind(node, _AIO_EXCHANGE_BIND, scope)
            return self._binding(place, "aio-pika", "Exchange.bind", _entity_name(got.get("exchange", _MISSING)),
                                 receiver.attrs["name"], "exchange", got.get("routing_key", ""),
                                 got.get("arguments"))
        if kind == "aio-exchange" and method == "publish":
            got = self._bind(node, _AIO_PUBLISH, scope)
            return self._publish(place, "aio-pika", "Exchange.publish", receiver.attrs["name"],
                                 got.get("routing_key", _MISSING), node)
        if kind == "aio-queue" and method == "consume":
            return self._consume(place, "aio-pika", "Queue.consume", receiver.attrs["name"])
        if kind == "kombu-simple" and method == "put":  # the producer: its exchange, keyed by the name
            return self._publish(place, "kombu", "put", receiver.attrs["name"], receiver.attrs["name"], node)
        if kind == "kombu-exchange" and method == "publish":
            got = self._bind(node, ("message", "routing_key"), scope)
            return self._publish(place, "kombu", "Exchange.publish", receiver.attrs["name"],
                                 got.get("routing_key", ""), node)
        if method == "publish" and any(k.arg == "exchange" for k in node.keywords):
            return self._kombu_publish(node, scope)
        return None

    # ------------------------------------------------------------------ kombu
    def _kombu_exchange(self, node: ast.Call, scope: Scope) -> Any:
        given = got = self._bind(node, KOMBU_EXCHANGE, scope)
        name = got.get("name", "")
        xtype = got.get("type", "")
        got = {"exchange": name, "exchange_type": xtype if xtype != "" else "direct",
               **{k: got[k] for k in ("durable", "auto_delete", "internal", "arguments", "passive") if k in got}}
        if got.get("exchange") == "":
            return Obj("kombu-exchange", name="")
        record = not _true(given.get("no_declare"))
        return self._exchange(self._place(node), "kombu", "Exchange", got,
                              {**_EXCHANGE_DEFAULTS, "durable": True}, obj="kombu-exchange", record=record)

    def _kombu_queue(self, node: ast.Call, scope: Scope) -> Any:
        got = self._bind(node, KOMBU_QUEUE, scope)
        place = self._place(node)
        args = got.get("queue_arguments")
        if isinstance(args, dict) or args is None or args is _MISSING:
            args = dict(args or {})
            for kw, (arg, scale) in KOMBU_ARGUMENTS.items():
                value = got.get(kw, _MISSING)
                if value is _MISSING or value is None:
                    continue
                if scale and isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = int(value * scale)
                args[arg] = value
        exclusive = got.get("exclusive", False)
        fields = {"queue": got.get("name", ""), "arguments": args or None,
                  **{k: got[k] for k in ("durable", "exclusive", "auto_delete") if k in got}}
        if exclusive is True:  # kombu: exclusive implies auto_delete
            fields["auto_delete"] = True
        no_declare = _true(got.get("no_declare"))
        result = self._queue(place, "kombu", "Queue", fields, {**_QUEUE_DEFAULTS, "durable": True}, node,
                             obj="kombu-queue", record=not no_declare)
        if no_declare:
            return result
        qname = result.attrs["name"] if isinstance(result, Obj) else Unknown("the queue's name")
        bindings = got.get("bindings", _MISSING)
        exchange = got.get("exchange", _MISSING)
        if isinstance(exchange, list):
            bindings, exchange = exchange, _MISSING
        if isinstance(exchange, str) and exchange:
            exchange = self._exchange(place, "kombu", "Queue(exchange=...)", {"exchange": exchange},
                                      {**_EXCHANGE_DEFAULTS, "durable": True}, obj="kombu-exchange")
        no_bindings = bindings is _MISSING or bindings is None or bindings == []
        if isinstance(exchange, Obj) and exchange.attrs.get("name") not in ("", None) and no_bindings:
            self._binding(place, "kombu", "Queue", exchange.attrs["name"], qname, "queue",
                          got.get("routing_key", ""), got.get("binding_arguments"))
        elif isinstance(exchange, Unknown) and no_bindings:
            self._binding(place, "kombu", "Queue", exchange, qname, "queue", got.get("routing_key", ""),
                          got.get("binding_arguments"))
        if isinstance(bindings, list):
            for b in bindings:
                if isinstance(b, Obj) and b.kind == "kombu-binding":
                    self._binding(b.attrs["place"], "kombu", "binding", b.attrs["exchange"], qname, "queue",
                                  b.attrs["routing_key"], b.attrs["arguments"])
                elif isinstance(b, Unknown):
                    self.scan.issues.append(Issue("unresolved", f"a binding of queue {_show(qname)}: {b.reason}",
                                                  place))
        elif isinstance(bindings, Unknown):
            self.scan.issues.append(Issue("unresolved", f"the bindings of queue {_show(qname)}: {bindings.reason}",
                                          place))
        return result

    def _imports_kombu(self) -> bool:
        return any(spec[1].split(".")[0] == "kombu" for spec in self.module.scope.imports.values())

    def _kombu_simple(self, method: str, node: ast.Call, scope: Scope) -> Any:
        got = self._bind(node, KOMBU_SIMPLE, scope)
        name = got.get("name", _MISSING)
        if name is _MISSING or isinstance(name, Obj):  # SimpleQueue(Queue(...)): that queue's own declares
            return None
        place, flags = self._place(node), _KOMBU_SIMPLE_FLAGS[method]
        options = {}
        for key in ("exchange_opts", "queue_opts"):
            value = got.get(key, _MISSING)
            if isinstance(value, Unknown):
                self.scan.issues.append(Issue("unresolved", f"{method}: {key} is not known statically: "
                                                            f"{value.reason}", place, field=key))
            options[key] = value if isinstance(value, dict) else {}
        x_opts, q_opts = options["exchange_opts"], options["queue_opts"]
        exchange = {"exchange": name, "exchange_type": x_opts.get("type", "direct"), **flags,
                    **{k: x_opts[k] for k in ("durable", "auto_delete") if k in x_opts}}
        self._exchange(place, "kombu", method, exchange, {**_EXCHANGE_DEFAULTS, "durable": True})
        args = got.get("queue_args", _MISSING)
        queue = {"queue": name, "arguments": None if args in (_MISSING, None, {}) else args, **flags,
                 **{k: q_opts[k] for k in ("durable", "exclusive", "auto_delete") if k in q_opts}}
        self._queue(place, "kombu", method, queue, {**_QUEUE_DEFAULTS, "durable": True}, node)
        self._binding(place, "kombu", method, name, name, "queue", name, None)
        return Obj("kombu-simple", name=name)

    def _kombu_binding(self, node: ast.Call, scope: Scope) -> Any:
        got = self._bind(node, KOMBU_BINDING, scope)
        exchange = got.get("exchange", _MISSING)
        if isinstance(exchange, str):
            exchange = self._exchange(self._place(node), "kombu", "binding(exchange=...)", {"exchange": exchange},
                                      {**_EXCHANGE_DEFAULTS, "durable": True}, obj="kombu-exchange")
        return Obj("kombu-binding", exchange=_entity_name(exchange), routing_key=got.get("routing_key", ""),
                   arguments=got.get("arguments"), place=self._place(node))

    def _kombu_publish(self, node: ast.Call, scope: Scope) -> Any:
        got = self._bind(node, ("body", "routing_key"), scope)
        return self._publish(self._place(node), "kombu", "Producer.publish", _entity_name(got.get("exchange", "")),
                             got.get("routing_key", ""), node)

    # ------------------------------------------------------------------ declarations
    def _place(self, node: ast.AST) -> Place:
        return Place(self.module.path, node.lineno, node.col_offset + 1, branches=tuple(self._branches))

    def _expand(self, values: dict) -> list[tuple[dict, dict]]:
        """One set of values per combination of loop turns and calls, with those turns."""
        many = [k for k, v in values.items() if isinstance(v, Many)]
        if not many:
            return [(values, {})]
        out = []
        for chosen, turns in joint([values[k] for k in many], limit=MAX_EXPANSION):
            item = dict(values)
            item.update(zip(many, chosen))
            out.append((item, turns))
        return out

    def _via(self, turns: dict) -> tuple[str, ...]:
        """The lines of the calls that made a declaration inside helpers whose parameters came
        from their calls: the call of each turn, or every call when the values are the same."""
        lines: set[str] = set()
        scope = self._scope
        while scope is not None:
            calls = self.resolver.call_lines.get(id(scope.node)) if scope.kind == "function" else None
            if calls:
                turn = turns.get(("call", id(scope.node)))
                lines.update([calls[turn]] if turn is not None else calls)
            scope = scope.parent
        return tuple(sorted(lines))

    def _record(self, decl: Declaration, values: dict) -> list[Declaration]:
        items = self._expand(values)
        out = []
        for i, (item, turns) in enumerate(items):
            via = self._via(turns)
            place = dataclasses.replace(decl.place, via=via) if via else decl.place
            d = decl if i == 0 else Declaration(decl.kind, place, decl.library, decl.call, passive=decl.passive,
                                                server_named=decl.server_named, unroutable_ok=decl.unroutable_ok,
                                                unresolved=dict(decl.unresolved))
            d.place = place
            for field, value in item.items():
                _set(d, field, value)
            out.append(d)
        self.scan.declarations.extend(out)
        return out

    def _queue(self, place: Place, library: str, call: str, got: dict, defaults: dict, node: ast.Call,
               obj: str = "pika-declare-ok", record: bool = True) -> Any:
        name = got.get("queue", got.get("name", _MISSING))
        if name is _MISSING:
            name = defaults.get("queue", "")
        passive = got.get("passive", False)
        decl = Declaration(QUEUE, place, library, call, passive=passive is True)
        if isinstance(passive, Unknown):
            decl.unresolved["passive"] = passive.reason
        if name in ("", None):
            self._server_named += 1
            where = getattr(self.module, "abspath", self.module.path)
            ref = (self.project.server_named_ref(where, self._server_named) if self.project
                   else f"server-named-{self._server_named}")
            decl.server_named = ref
            name = ServerNamed(ref)
        values = {"name": name}
        for field in ("durable", "exclusive", "auto_delete", "arguments"):
            value = got.get(field, _MISSING)
            values[field] = defaults.get(field) if value is _MISSING else value
        if "**" in got:
            decl.unresolved["**"] = got["**"].reason
        if record:
            self._record(decl, values)
        qname = name if known(name) else name
        if obj == "pika-declare-ok":
            return Obj(obj, method=Obj("method", queue=qname))
        return Obj(obj, name=qname)

    def _exchange(self, place: Place, library: str, call: str, got: dict, defaults: dict,
                  obj: str | None = None, record: bool = True) -> Any:
        name = got.get("exchange", got.get("name", _MISSING))
        if name is _MISSING or name is None:
            name = Unknown("no exchange name given")
        passive = got.get("passive", False)
        decl = Declaration(EXCHANGE, place, library, call, passive=passive is True)
        values = {"name": name}
        for field, src in (("type", "exchange_type"), ("durable", "durable"), ("auto_delete", "auto_delete"),
                           ("internal", "internal"), ("arguments", "arguments")):
            value = got.get(src, _MISSING)
            values[field] = defaults.get(src) if value is _MISSING else value
        if "**" in got:
            decl.unresolved["**"] = got["**"].reason
        if record:
            self._record(decl, values)
        return Obj(obj or "exchange", name=name)

    def _binding(self, place: Place, library: str, call: str, source: Any, dest: Any, dtype: str, key: Any,
                 arguments: Any) -> Any:
        decl = Declaration(BINDING, place, library, call)
        self._record(decl, {"source": _MISSING_TO(source, "no exchange given"),
                            "destination": _MISSING_TO(dest, "no destination given"), "destination_type": dtype,
                            "routing_key": "" if key is _MISSING else key, "arguments": arguments})
        return None

    def _publish(self, place: Place, library: str, call: str, exchange: Any, key: Any, node: ast.AST) -> Any:
        decl = Declaration(PUBLISH, place, library, call, unroutable_ok=self._marked(node))
        self._record(decl, {"exchange": _MISSING_TO(exchange, "no exchange given"),
                            "routing_key": _MISSING_TO(key, "no routing key given")})
        return None

    def _consume(self, place: Place, library: str, call: str, queue: Any) -> Any:
        decl = Declaration(CONSUME, place, library, call)
        self._record(decl, {"queue": _MISSING_TO(queue, "no queue given")})
        return None

    def _marked(self, node: ast.AST) -> bool:
        first = max(node.lineno - 1, 1)
        for n in range(first, (node.end_lineno or node.lineno) + 1):
            if n - 1 < len(self._lines) and UNROUTABLE_OK in self._lines[n - 1]:
                return True
        return False


def _MISSING_TO(value: Any, reason: str) -> Any:  # noqa: N802 - reads like a constant helper
    return Unknown(reason) if value is _MISSING else value


def _true(value: Any) -> bool:
    return value is True


def _entity_name(value: Any) -> Any:
    if isinstance(value, Obj):
        return value.attrs.get("name", Unknown("an object the scan cannot follow"))
    if value is _MISSING:
        return Unknown("no exchange given")
    return value


def _is_default_exchange(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "default_exchange"


def _show(value: Any) -> str:
    if isinstance(value, ServerNamed):
        return f"{value.ref} (server-named)"
    return repr(value) if isinstance(value, str) else "(unresolved)"


def _source(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - only a label
        return type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."


_BOOL_FIELDS = frozenset(("durable", "exclusive", "auto_delete", "internal"))
_NAME_FIELDS = frozenset(("name", "source", "destination", "exchange", "queue", "routing_key", "type"))


def _set(decl: Declaration, field: str, value: Any) -> None:
    """Store one field of a declaration: known values in ``fields``, reasons in ``unresolved``."""
    t = type(value)
    if t is bool and field in _BOOL_FIELDS or t is str and field in _NAME_FIELDS:
        decl.fields[field] = value  # the common case, without the checks below
        return
    if isinstance(value, Unknown):
        decl.unresolved[field] = value.reason
        return
    if isinstance(value, Obj):
        decl.unresolved[field] = "an object the scan cannot follow"
        return
    if field == "arguments":
        if value is None:
            decl.fields["arguments"] = {}
            return
        if not isinstance(value, dict):
            decl.unresolved["arguments"] = "not a mapping"
            return
        args = {}
        for k, v in value.items():
            if isinstance(v, Unknown):
                decl.unresolved[f"arguments.{k}"] = v.reason
            elif isinstance(v, (Obj, Many)) or (isinstance(v, (list, dict)) and not _plain_value(v)):
                decl.unresolved[f"arguments.{k}"] = "a value known only at run time"
            elif isinstance(v, ServerNamed):
                decl.unresolved[f"arguments.{k}"] = "a server-named queue's name"
            elif isinstance(v, bytes):
                args[k] = v.decode("utf-8", "replace")
            else:
                args[k] = v
        decl.fields["arguments"] = args
        return
    if field in _BOOL_FIELDS:
        decl.fields[field] = bool(value) if isinstance(value, (bool, int, str, type(None))) else value
        return
    if field in _NAME_FIELDS:
        if isinstance(value, ServerNamed):
            decl.fields[field] = value
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            decl.unresolved[field] = f"not a string ({type(value).__name__})"
            return
    decl.fields[field] = value


def _plain_value(v: Any) -> bool:
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain_value(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_plain_value(x) for x in v)
    return isinstance(v, (str, int, float, bool, type(None)))


def relative(path: str, root: str) -> str:
    """``path`` relative to ``root`` (a plain prefix cut when it is inside: relpath is slow)."""
    if root and path.startswith(root.rstrip(os.sep) + os.sep):
        return path[len(root.rstrip(os.sep)) + 1:]
    return os.path.relpath(path, root) if root else path


def module_name(path: str, root: str) -> str:
    """``svc/orders/consumer.py`` under ``root`` -> ``svc.orders.consumer``."""
    rel = relative(path, root)
    stem = rel[:-3] if rel.endswith(".py") else rel
    parts = [p for p in stem.replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)
