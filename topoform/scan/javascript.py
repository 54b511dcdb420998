"""Declarations in JavaScript and TypeScript source: amqplib, read with tree-sitter.

tree-sitter is a real parser with maintained Python wheels for both grammars
(``tree-sitter-javascript``, ``tree-sitter-typescript``): the scan reads the syntax tree,
never the text with regular expressions, so comments, strings and nesting cannot fool
it. The wheels are an optional extra (``pip install 'topoform[scan-js]'``); without them
``scan`` reports JavaScript/TypeScript files as skipped, with that hint.

Calls (amqplib's channel API, promise and callback styles; also amqp-connection-manager's
``ChannelWrapper`` and the channel its ``setup`` functions get):
``assertQueue(queue, options)`` (durable defaults to **true**; ``messageTtl``,
``expires``, ``deadLetterExchange``, ``deadLetterRoutingKey``, ``maxLength``,
``maxPriority``, ``overflow``, ``queueMode`` become ``x-`` arguments; ``''`` is a
server-named queue), ``checkQueue`` (passive), ``assertExchange(exchange, type,
options)`` (durable true; ``alternateExchange`` becomes ``alternate-exchange``),
``checkExchange``, ``bindQueue(queue, source, pattern, args)``, ``bindExchange(destination,
source, pattern, args)``, ``publish(exchange, routingKey, content)``,
``sendToQueue(queue, content)`` and ``consume(queue, fn)``.

Values: literals, template strings and ``+`` of constants, ``const``/``let`` names
assigned once, object literals (shorthand and spread of known objects), the result of
``assertQueue`` (``q.queue``, also as the callback's or ``then``'s parameter),
``for (const k of [...])`` and ``[...].forEach(k => ...)`` over literal arrays,
``for (const [k, v] of Object.entries(o))`` (and ``Object.keys`` / ``Object.values``) over known
objects, and a loop over an outer loop's variable (one turn's items at a time).
``process.env`` and ``process.argv`` are reported as the environment and the command line.
"""
from __future__ import annotations

import dataclasses

from typing import Any

from .model import (BINDING, CONSUME, EXCHANGE, PUBLISH, QUEUE, UNROUTABLE_OK, Declaration, FileScan, Issue,
                    Place, ServerNamed, Unknown)
from .resolve import TOO_DEEP, Many, inner_turns, joint, lift, lift_dict

EXTENSIONS = {".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
              ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx"}

# Packages whose channels have amqplib's API: a file naming one may call publish/consume on them
# (amqp-connection-manager's ChannelWrapper, and the channel its setup functions get).
LIBRARIES = (b"amqplib", b"amqp-connection-manager")
CALLS = ("assertQueue", "checkQueue", "assertExchange", "checkExchange", "bindQueue", "bindExchange", "publish",
         "sendToQueue", "consume")
QUEUE_OPTIONS = {"messageTtl": "x-message-ttl", "expires": "x-expires", "deadLetterExchange": "x-dead-letter-exchange",
                 "deadLetterRoutingKey": "x-dead-letter-routing-key", "maxLength": "x-max-length",
                 "maxPriority": "x-max-priority", "overflow": "x-overflow", "queueMode": "x-queue-mode"}
EXCHANGE_OPTIONS = {"alternateExchange": "alternate-exchange"}
_FUNCTIONS = ("function_declaration", "function_expression", "arrow_function", "method_definition",
              "generator_function_declaration", "function")
_WRAPPERS = ("parenthesized_expression", "as_expression", "non_null_expression", "satisfies_expression",
             "type_assertion")
_MISSING = object()
MAX_EXPANSION = 64

_PARSERS: dict[str, Any] = {}


class Unavailable(Exception):
    """The tree-sitter wheels are not installed."""


def parser_for(language: str):
    if language in _PARSERS:
        return _PARSERS[language]
    try:
        from tree_sitter import Language, Parser
        if language == "javascript":
            import tree_sitter_javascript as grammar
            lang = Language(grammar.language())
        else:
            import tree_sitter_typescript as grammar
            lang = Language(grammar.language_tsx() if language == "tsx" else grammar.language_typescript())
    except ImportError as exc:
        raise Unavailable(str(exc)) from None
    parser = Parser(lang)
    _PARSERS[language] = parser
    return parser


class Obj:
    __slots__ = ("kind", "attrs")

    def __init__(self, kind: str, **attrs: Any):
        self.kind, self.attrs = kind, attrs


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "\\": "\\", "'": "'",
            '"': '"', "`": "`", "$": "$"}


def _unescape(seq: str) -> str:
    body = seq[1:]
    if body.startswith("u{") and body.endswith("}"):
        return chr(int(body[2:-1], 16))
    if body.startswith("u") and len(body) == 5:
        return chr(int(body[1:], 16))
    if body.startswith("x") and len(body) == 3:
        return chr(int(body[1:], 16))
    return _ESCAPES.get(body, body)


class Scope:
    def __init__(self, node, parent: "Scope | None"):
        self.node, self.parent = node, parent
        self.assigns: dict[str, list] = {}
        self.params: dict[str, int] = {}
        self.param_keys: dict[str, str] = {}  # ({name, key}) => ...: a destructured parameter's property
        if node.type in _FUNCTIONS:
            params = node.child_by_field_name("parameters") or node.child_by_field_name("parameter")
            if params is not None:
                items = [params] if params.type == "identifier" else list(params.named_children)
                for i, p in enumerate(items):
                    ident = p if p.type == "identifier" else (p.child_by_field_name("pattern") or
                                                              p.child_by_field_name("left") or p)
                    if ident.type == "identifier":
                        self.params[_text(ident)] = i
                    elif ident.type == "object_pattern":
                        for name, key in _pattern_names(ident):
                            self.params[name] = i
                            self.param_keys[name] = key
        body = node.child_by_field_name("body") if node.type in _FUNCTIONS else node
        if body is not None:
            self._collect(body)

    def _collect(self, node) -> None:
        stack = list(node.children)
        while stack:
            n = stack.pop()
            t = n.type
            if t in _FUNCTIONS or t == "class_body":
                if t == "function_declaration":
                    name = n.child_by_field_name("name")
                    if name is not None:
                        self.assigns.setdefault(_text(name), []).append(("function", n))
                continue
            if t == "enum_declaration":  # TypeScript: enum Queues { Orders = 'orders.q' }
                name = next((c for c in n.named_children if c.type == "identifier"), None)
                if name is not None:
                    self.assigns.setdefault(_text(name), []).append(("enum", n))
                continue
            if t == "variable_declarator":
                name, value = n.child_by_field_name("name"), n.child_by_field_name("value")
                if name is not None and name.type == "identifier":
                    self.assigns.setdefault(_text(name), []).append(("value", value))
                elif name is not None and name.type == "object_pattern":
                    for prop in name.named_children:
                        if prop.type == "shorthand_property_identifier_pattern":
                            self.assigns.setdefault(_text(prop), []).append(("member", value, _text(prop)))
                        elif prop.type == "pair_pattern":
                            key, val = prop.child_by_field_name("key"), prop.child_by_field_name("value")
                            if val is not None and val.type == "identifier":
                                self.assigns.setdefault(_text(val), []).append(("member", value, _text(key)))
            elif t == "assignment_expression" or t == "augmented_assignment_expression":
                left = n.child_by_field_name("left")
                if left is not None and left.type == "identifier":
                    self.assigns.setdefault(_text(left), []).append(("assigned", None))
            elif t == "for_in_statement":
                left, right = n.child_by_field_name("left"), n.child_by_field_name("right")
                is_of = any(c.type == "of" for c in n.children)
                if left is not None and left.type == "identifier":
                    self.assigns.setdefault(_text(left), []).append(("loop" if is_of else "assigned", right))
                elif left is not None and left.type == "object_pattern" and is_of:
                    # for (const {name, key} of BINDINGS): each property one loop variable
                    for name, key in _pattern_names(left):
                        self.assigns.setdefault(name, []).append(("loop", right, ("key", key)))
                elif left is not None and left.type == "array_pattern" and is_of:
                    # for (const [name, keys] of Object.entries(QUEUES)): one loop variable per place
                    items = [c for c in left.named_children if c.type != "comment"]
                    for i, item in enumerate(items):
                        if item.type == "identifier":
                            self.assigns.setdefault(_text(item), []).append(("loop", right, (i, len(items))))
            stack.extend(n.children)


class JavaScriptScanner:
    def __init__(self, path: str, source: bytes, language: str, project=None):
        self.path, self.source, self.language, self.project = path, source, language, project
        self.scan = FileScan(path, language)
        self._results: dict[int, Any] = {}
        self._scopes: dict[int, Scope] = {}
        self._busy: set = set()
        self._lines = source.decode("utf-8", "replace").splitlines()
        self._server_named = 0
        self._plain_calls: dict[str, list] = {}  # name -> its calls by that name (f(...)), in file order
        self._uses: dict[str, int] = {}  # name -> how often it appears at all
        self._call_lines: dict[int, list[str]] = {}  # helper function node id -> "path:line" of each call

    def run(self) -> FileScan:
        tree = parser_for(self.language).parse(self.source)
        root = tree.root_node
        self._root = root
        if root.has_error:
            self.scan.issues.append(Issue("parse-error", "the file has syntax errors; declarations in the parts "
                                          "tree-sitter could read are still reported", Place(self.path, 1)))
        stack = [root]
        calls = []
        while stack:
            n = stack.pop()
            if n.type == "call_expression":
                f = n.child_by_field_name("function")
                if f is not None and f.type == "member_expression":
                    prop = f.child_by_field_name("property")
                    if prop is not None and _text(prop) in CALLS:
                        calls.append(n)
                elif f is not None and f.type == "identifier":
                    self._plain_calls.setdefault(_text(f), []).append(n)
            elif n.type in ("identifier", "shorthand_property_identifier"):
                word = _text(n)
                self._uses[word] = self._uses.get(word, 0) + 1
            stack.extend(reversed(n.children))
        for found in self._plain_calls.values():
            found.sort(key=lambda c: c.start_byte)
        for call in sorted(calls, key=lambda c: c.start_byte):
            self._call(call)
        return self.scan

    # ------------------------------------------------------------------ scopes
    def _scope_of(self, node) -> Scope:
        chain = []
        n = node.parent
        while n is not None:
            if n.type in _FUNCTIONS or n.type == "program":
                chain.append(n)
            n = n.parent
        parent = None
        for fn in reversed(chain):
            scope = self._scopes.get(fn.id)
            if scope is None:
                scope = self._scopes[fn.id] = Scope(fn, parent)
            parent = scope
        return parent  # type: ignore[return-value]

    def _lookup(self, name: str, node) -> Any:
        scope = self._scope_of(node)
        while scope is not None:
            if name in scope.assigns:
                return self._bound(name, scope.assigns[name], scope)
            if name in scope.params:
                return self._param(name, scope)
            scope = scope.parent
        if name == "undefined":
            return None
        return Unknown(f"'{name}' is not defined in this file")

    def _bound(self, name: str, values: list, scope: Scope) -> Any:
        if len(values) != 1 or values[0][0] == "assigned":
            return Unknown(f"'{name}' is assigned more than once")
        kind, node = values[0][0], values[0][1]
        if kind == "function":
            return Obj("function", name=name)
        if kind == "enum":
            return self._enum(node)
        if node is None:
            return Unknown(f"'{name}' is declared without a value")
        key = (node.id, name)
        if key in self._busy:
            return Unknown(f"'{name}' is defined in terms of itself")
        self._busy.add(key)
        try:
            value = self.eval(node)
        except RecursionError:  # const N = 'a' + 'a' + ... thousands of times: this value only
            value = TOO_DEEP
        finally:
            self._busy.discard(key)
        if kind == "loop":
            return self._loop(name, value, node, values[0][2] if len(values[0]) > 2 else None)
        if kind == "member":
            attr = values[0][2]
            if isinstance(value, Obj) and attr in value.attrs:
                return value.attrs[attr]
            if isinstance(value, dict) and attr in value:
                return value[attr]
            return Unknown(f"'{name}' is read from a value known only at run time")
        return value

    def _enum(self, node) -> dict:
        """A TypeScript enum's members: ``{Orders: 'orders.q', N: 0, ...}`` (members without a value
        count up from the previous number, from 0; after a string member TypeScript requires one)."""
        body = next((c for c in node.named_children if c.type == "enum_body"), None)
        members: dict = {}
        previous: Any = -1
        for member in body.named_children if body is not None else []:
            if member.type == "enum_assignment":
                key = member.named_children[0]
                value = self.eval(member.named_children[-1]) if len(member.named_children) > 1 else None
            elif member.type in ("property_identifier", "string"):
                key = member
                value = previous + 1 if isinstance(previous, int) and not isinstance(previous, bool) else \
                    Unknown("an enum member after a member that is not a number")
            else:
                continue
            members[self.eval(key) if key.type == "string" else _text(key)] = value
            previous = value
        return members

    def _loop(self, name: str, value: Any, node, place: tuple | None) -> Any:
        """A ``for ... of`` variable: one turn per item (see resolve.Many), ``place`` = (index, width)
        for a destructured ``[a, b]``; a loop over an outer loop's variable keeps each outer turn."""
        tags = None
        if isinstance(value, Many):
            value, tags = inner_turns(value, ("js", node.id), (list, dict))
            if value is None:
                return Unknown(f"'{name}' loops over a value that is not a known array")
        if isinstance(value, list) and value and place is not None and place[0] == "key":
            if not all(isinstance(v, dict) and place[1] in v for v in value):
                return Unknown(f"'{name}' is read from items that are not all objects with '{place[1]}'")
            value = [v[place[1]] for v in value]
        elif isinstance(value, list) and value and place is not None:
            index, width = place
            if not all(isinstance(v, list) and len(v) == width for v in value):
                return Unknown(f"'{name}' unpacks items that are not all {width}-element arrays")
            value = [v[index] for v in value]
        if isinstance(value, list) and value and all(not isinstance(v, (Unknown, Many)) for v in value):
            return Many(value, tags or [{("js", node.id): i} for i in range(len(value))])  # one turn per value
        if isinstance(value, Unknown):
            return Unknown(f"{value.reason}, through the loop variable '{name}'")
        return Unknown(f"'{name}' is a loop variable")

    def _param(self, name: str, scope: Scope) -> Any:
        fn = scope.node
        index = scope.params[name]
        args = fn.parent
        call = args.parent if args is not None and args.type == "arguments" else None
        if call is not None and call.type == "call_expression":
            f = call.child_by_field_name("function")
            prop = f.child_by_field_name("property") if f is not None and f.type == "member_expression" else None
            method = _text(prop) if prop is not None else ""
            if method in ("forEach", "map") and index == 0:
                values = self.eval(f.child_by_field_name("object"))
                key = scope.param_keys.get(name)
                if key is not None and isinstance(values, list):
                    if not all(isinstance(v, dict) and key in v for v in values):
                        return Unknown(f"'{name}' is read from items that are not all objects with '{key}'")
                    values = [v[key] for v in values]
                if isinstance(values, list) and values and all(not isinstance(v, (Unknown, Many)) for v in values):
                    return Many(values, [{("js", f.id): i} for i in range(len(values))])
                if isinstance(values, Unknown):
                    return Unknown(f"{values.reason}, through the parameter '{name}'")
            if method in ("assertQueue", "assertExchange", "checkQueue", "checkExchange") and index == 1:
                return self._call(call)  # callback API: function(err, ok)
            if method == "then" and index == 0:
                inner = f.child_by_field_name("object")
                if inner is not None and inner.type == "call_expression":
                    return self._call(inner)
        helper = self._helper_name(fn)
        if helper is not None:
            return self._from_calls(name, fn, helper, index)
        return Unknown(f"'{name}' is a parameter of a function")

    # ------------------------------------------------------------------ helpers of one's own
    def _helper_name(self, fn) -> str | None:
        """The name a function is called by in this file: ``function declare(...)`` or
        ``const declare = (...) => ...``; None for any other function."""
        if fn.type == "function_declaration":
            name = fn.child_by_field_name("name")
            return _text(name) if name is not None else None
        parent = fn.parent
        if fn.type in ("arrow_function", "function_expression") and parent is not None \
                and parent.type == "variable_declarator" and parent.child_by_field_name("value") == fn:
            name = parent.child_by_field_name("name")
            return _text(name) if name is not None and name.type == "identifier" else None
        return None

    def _from_calls(self, name: str, fn, helper: str, index: int) -> Any:
        """A helper's parameter: its value at each call of the helper in this file, one turn per call
        (as Python helpers: resolve.Resolver._from_calls). Not followed when the helper is exported
        or used other than by a call: it may be called with anything."""
        sites = self._plain_calls.get(helper, [])
        # export function f / export const f = ...: the statement one or three levels up
        up, n = [], fn.parent
        while n is not None and len(up) < 3:
            up.append(n)
            n = n.parent
        exported = any(up[i].type == "export_statement" for i in (0, 2) if i < len(up))
        only_called = self._uses.get(helper, 0) == len(sites) + 1  # its own name, then each call
        if not sites or exported or not only_called:
            why = "is exported" if exported else "is never called" if only_called else "is used other than by a call"
            return Unknown(f"'{name}' is a parameter of {helper}(), which {why} in this file")
        self._call_lines.setdefault(fn.id, [f"{self.path}:{c.start_point[0] + 1}" for c in sites])
        values, tags = [], []
        for i, call in enumerate(sites):
            args = _arguments_of(call)
            where = f"line {call.start_point[0] + 1}"
            if any(a.type == "spread_element" for a in args[:index + 1]):
                return Unknown(f"'{name}' of {helper}() is spread at the call on {where}")
            value = self.eval(args[index]) if index < len(args) else self._default(fn, index)
            if isinstance(value, Unknown):
                value = Unknown(f"{value.reason}, as '{name}' of {helper}() at the call on {where}")
            if isinstance(value, Many):
                for v, t in zip(value.values, value.tags):
                    values.append(v)
                    tags.append({("jscall", fn.id): i, **t})
            else:
                values.append(value)
                tags.append({("jscall", fn.id): i})
        return Many(values, tags)

    def _default(self, fn, index: int) -> Any:
        params = fn.child_by_field_name("parameters")
        items = list(params.named_children) if params is not None else []
        item = items[index] if index < len(items) else None
        if item is not None and item.type == "assignment_pattern":
            return self.eval(item.child_by_field_name("right"))
        if item is not None and item.type in ("required_parameter", "optional_parameter") \
                and item.child_by_field_name("value") is not None:  # TypeScript: name: string = '#'
            return self.eval(item.child_by_field_name("value"))
        return None  # undefined

    # ------------------------------------------------------------------ values
    def eval(self, node) -> Any:
        if node is None:
            return None
        t = node.type
        if t in _WRAPPERS:
            inner = node.named_children
            return self.eval(inner[0]) if inner else Unknown("an empty expression")
        if t == "string":
            return "".join(_text(c) if c.type == "string_fragment" else _unescape(_text(c))
                           for c in node.named_children)
        if t == "template_string":
            parts = []
            for c in node.named_children:
                if c.type == "string_fragment":
                    parts.append(_text(c))
                elif c.type == "escape_sequence":
                    parts.append(_unescape(_text(c)))
                elif c.type == "template_substitution":
                    value = self.eval(c.named_children[0]) if c.named_children else ""
                    if isinstance(value, Unknown):
                        return Unknown(f"a template string with {value.reason}")
                    if isinstance(value, ServerNamed):
                        value = value.ref
                    if isinstance(value, Many):
                        parts.append(value)
                        continue
                    if not isinstance(value, (str, int, float, bool)):
                        return Unknown("a template string of a value that is not a constant")
                    parts.append(_js_text(value))
            return lift(lambda *ps: "".join(ps), parts)
        if t == "number":
            text = _text(node).replace("_", "")
            try:
                value = int(text, 0) if text.isdigit() or text[:2].lower() in ("0x", "0o", "0b") else float(text)
            except ValueError:
                return Unknown(f"the number {text}")
            return int(value) if isinstance(value, float) and value.is_integer() else value
        if t in ("true", "false"):
            return t == "true"
        if t in ("null", "undefined"):
            return None
        if t == "identifier":
            return self._lookup(_text(node), node)
        if t == "unary_expression":
            op = node.child_by_field_name("operator")
            value = self.eval(node.child_by_field_name("argument"))
            if op is not None and _text(op) == "-" and isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value
            if op is not None and _text(op) == "!" and isinstance(value, bool):
                return not value
            return value if isinstance(value, Unknown) else Unknown(f"'{_short(node)}' is computed at run time")
        if t == "binary_expression":
            op = _text(node.child_by_field_name("operator"))
            left, right = self.eval(node.child_by_field_name("left")), self.eval(node.child_by_field_name("right"))
            for side in (left, right):
                if isinstance(side, Unknown):
                    return side if op in ("+", "-", "*") else Unknown(f"'{_short(node)}' is computed at run time")

            def apply(a, b):
                if op == "+" and (isinstance(a, str) or isinstance(b, str)) and all(
                        isinstance(x, (str, int, float)) for x in (a, b)):
                    return _js_text(a) + _js_text(b)
                if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b)) and op in "+-*":
                    r = a + b if op == "+" else a - b if op == "-" else a * b
                    return int(r) if isinstance(r, float) and r.is_integer() else r
                return Unknown(f"'{_short(node)}' is computed at run time")

            return lift(apply, [left, right])
        if t == "object":
            out: dict = {}
            for c in node.named_children:
                if c.type == "pair":
                    key = c.child_by_field_name("key")
                    k = self.eval(key) if key.type in ("string", "number") else _text(key)
                    if key.type == "computed_property_name":
                        k = self.eval(key.named_children[0]) if key.named_children else None
                    if not isinstance(k, (str, int)):
                        return Unknown(f"an object key {_short(key)} that cannot be resolved")
                    out[str(k)] = self.eval(c.child_by_field_name("value"))
                elif c.type == "shorthand_property_identifier":
                    out[_text(c)] = self._lookup(_text(c), c)
                elif c.type == "spread_element":
                    spread = self.eval(c.named_children[0]) if c.named_children else None
                    if not isinstance(spread, dict):
                        return Unknown(spread.reason if isinstance(spread, Unknown) else "an object built at run time")
                    out.update(spread)
                elif c.type == "comment":
                    continue
                else:
                    return Unknown("an object built at run time")
            return out
        if t == "array":
            items = []
            for c in node.named_children:
                if c.type == "spread_element":
                    return Unknown("an array built at run time")
                if c.type != "comment":
                    items.append(self.eval(c))
            return items
        if t == "member_expression":
            obj, prop = node.child_by_field_name("object"), node.child_by_field_name("property")
            if obj.type == "as_expression" and obj.named_children and obj.named_children[-1].type in (
                    "nested_type_identifier", "type_identifier"):
                # tree-sitter-typescript reads `{...} as a.B.C` as (`{...} as a.B`).C: the cast's value
                return self.eval(obj.named_children[0])
            path = _text(obj)
            if path == "process.env":
                return Unknown(f"from the environment ({_text(prop)})")
            if path == "process.argv" or _text(node) == "process.argv":
                return Unknown("from the command line (process.argv)")
            base = self.eval(obj)
            if isinstance(base, Many) and all(isinstance(v, dict) and _text(prop) in v for v in base.values):
                return Many([v[_text(prop)] for v in base.values], base.tags)  # q.name in for (const q of ...)
            if isinstance(base, Obj) and _text(prop) in base.attrs:
                return base.attrs[_text(prop)]
            if isinstance(base, dict) and _text(prop) in base:
                return base[_text(prop)]
            if isinstance(base, Unknown):
                return Unknown(f"'{_short(node)}' is read from a value the scan cannot follow ({base.reason})")
            return Unknown(f"'{_short(node)}' is known only at run time")
        if t == "subscript_expression":
            obj = node.child_by_field_name("object")
            if _text(obj) == "process.argv":
                return Unknown("from the command line (process.argv)")
            if _text(obj) == "process.env":
                key = self.eval(node.child_by_field_name("index"))
                return Unknown(f"from the environment ({key})" if isinstance(key, str) else "from the environment")
            base, key = self.eval(obj), self.eval(node.child_by_field_name("index"))
            if isinstance(base, dict) and isinstance(key, str) and key in base:
                return base[key]
            if isinstance(base, list) and isinstance(key, int) and 0 <= key < len(base):
                return base[key]
            return base if isinstance(base, Unknown) else Unknown(f"'{_short(node)}' is looked up at run time")
        if t == "await_expression":
            inner = node.named_children
            return self.eval(inner[0]) if inner else Unknown("await of nothing")
        if t == "call_expression":
            return self._call(node)
        if t == "ternary_expression":
            a = self.eval(node.child_by_field_name("consequence"))
            b = self.eval(node.child_by_field_name("alternative"))
            return Unknown(f"chosen at run time: {_either(a)} or {_either(b)}")
        if t in _FUNCTIONS:
            return Obj("function", name="<function>")
        return Unknown(f"'{_short(node)}' is computed at run time")

    # ------------------------------------------------------------------ calls
    def _call(self, node) -> Any:
        if node.id in self._results:
            return self._results[node.id]
        self._results[node.id] = Unknown("a value being computed")
        try:
            value = self._dispatch(node)
        except RecursionError:
            value = TOO_DEEP
        if value is None:
            text = _short(node)
            why = " from the command line (process.argv)" if "process.argv" in text else ""
            value = Unknown(f"computed{why} by {text}")
        self._results[node.id] = value
        return value

    def _object_items(self, node, method: str) -> Any:
        """``Object.entries(o)`` (``[key, value]`` arrays), ``Object.keys(o)``, ``Object.values(o)``."""
        args = _arguments_of(node)
        table = self.eval(args[0]) if len(args) == 1 else Unknown(f"{_short(node)} with other than one argument")
        if isinstance(table, dict):
            return ([[k, v] for k, v in table.items()] if method == "entries"
                    else list(table) if method == "keys" else list(table.values()))
        return table if isinstance(table, Unknown) else Unknown(f"{_short(node)} of a value that is not an object")

    def _dispatch(self, node) -> Any:
        f = node.child_by_field_name("function")
        if f is None or f.type != "member_expression":
            return None
        method = _text(f.child_by_field_name("property"))
        if _text(f.child_by_field_name("object")) == "Object" and method in ("entries", "keys", "values"):
            return self._object_items(node, method)
        if method not in CALLS:
            return None
        if method in ("publish", "consume") and not self._amqplib_channel(f.child_by_field_name("object")):
            return None
        args = _arguments_of(node)

        def arg(i):
            if i >= len(args):
                return _MISSING
            if args[i].type == "spread_element":
                return Unknown("passed through a spread argument")
            try:
                return self.eval(args[i])
            except RecursionError:  # this argument only: the call is still recorded
                return TOO_DEEP

        place = Place(self.path, node.start_point[0] + 1, node.start_point[1] + 1)
        if method in ("assertQueue", "checkQueue"):
            name = arg(0)
            options = arg(1) if method == "assertQueue" else {}
            return self._queue(place, method, name, options, passive=method == "checkQueue")
        if method in ("assertExchange", "checkExchange"):
            name = arg(0)
            xtype = arg(1) if method == "assertExchange" else "direct"
            options = arg(2) if method == "assertExchange" else {}
            return self._exchange(place, method, name, xtype, options, passive=method == "checkExchange")
        if method == "bindQueue":
            self._record(Declaration(BINDING, place, "amqplib", method),
                         {"destination": _need(arg(0), "no queue given"), "source": _need(arg(1), "no exchange given"),
                          "destination_type": "queue", "routing_key": _key(arg(2)), "arguments": _table(arg(3))})
            return Obj("ok")
        if method == "bindExchange":
            self._record(Declaration(BINDING, place, "amqplib", method),
                         {"destination": _need(arg(0), "no exchange given"),
                          "source": _need(arg(1), "no exchange given"),
                          "destination_type": "exchange", "routing_key": _key(arg(2)), "arguments": _table(arg(3))})
            return Obj("ok")
        if method == "publish":
            self._record(Declaration(PUBLISH, place, "amqplib", method, unroutable_ok=self._marked(node)),
                         {"exchange": _need(arg(0), "no exchange given"), "routing_key": _key(arg(1))})
            return True
        if method == "sendToQueue":
            self._record(Declaration(PUBLISH, place, "amqplib", method, unroutable_ok=self._marked(node)),
                         {"exchange": "", "routing_key": _need(arg(0), "no queue given")})
            return True
        self._record(Declaration(CONSUME, place, "amqplib", method), {"queue": _need(arg(0), "no queue given")})
        return Obj("consume-ok")

    def _amqplib_channel(self, receiver) -> bool:
        """``publish``/``consume`` are common names: the file must use amqplib (or a wrapper of it)."""
        return any(name in self.source for name in LIBRARIES)

    def _queue(self, place: Place, method: str, name: Any, options: Any, passive: bool) -> Any:
        decl = Declaration(QUEUE, place, "amqplib", method, passive=passive)
        if name is _MISSING or name in ("", None):
            self._server_named += 1
            ref = (self.project.server_named_ref(getattr(self, "abspath", self.path), self._server_named)
                   if self.project else f"server-named-{self._server_named}")
            decl.server_named = ref
            name = ServerNamed(ref)
        options = {} if options is _MISSING or options is None else options
        values: dict[str, Any] = {"name": name}
        if isinstance(options, Unknown):
            for field in ("durable", "exclusive", "auto_delete", "arguments"):
                values[field] = options
        else:
            durable = options.get("durable", True)
            values["durable"] = True if durable is None else durable
            values["exclusive"] = options.get("exclusive", False)
            values["auto_delete"] = options.get("autoDelete", False)
            values["arguments"] = _arguments(options, QUEUE_OPTIONS)
        self._record(decl, values)
        return Obj("queue-ok", queue=name, messageCount=Unknown("a count"), consumerCount=Unknown("a count"))

    def _exchange(self, place: Place, method: str, name: Any, xtype: Any, options: Any, passive: bool) -> Any:
        decl = Declaration(EXCHANGE, place, "amqplib", method, passive=passive)
        options = {} if options is _MISSING or options is None else options
        values: dict[str, Any] = {"name": _need(name, "no exchange name given"),
                                  "type": _need(xtype, "no exchange type given")}
        if isinstance(options, Unknown):
            for field in ("durable", "auto_delete", "internal", "arguments"):
                values[field] = options
        else:
            durable = options.get("durable", True)
            values["durable"] = True if durable is None else durable
            values["auto_delete"] = options.get("autoDelete", False)
            values["internal"] = options.get("internal", False)
            values["arguments"] = _arguments(options, EXCHANGE_OPTIONS)
        self._record(decl, values)
        return Obj("exchange-ok", exchange=values["name"])

    def _record(self, decl: Declaration, values: dict) -> None:
        from .python import _set

        many = [k for k, v in values.items() if isinstance(v, Many)]
        combos = joint([values[k] for k in many], limit=MAX_EXPANSION) if many else [((), {})]
        for combo, turns in combos:
            item = dict(values)
            item.update(zip(many, combo))
            via = tuple(sorted({self._call_lines[key[1]][turn] for key, turn in turns.items()
                                if key[0] == "jscall" and key[1] in self._call_lines}))
            place = dataclasses.replace(decl.place, via=via) if via else decl.place
            d = Declaration(decl.kind, place, decl.library, decl.call, passive=decl.passive,
                            server_named=decl.server_named, unroutable_ok=decl.unroutable_ok)
            for field, value in item.items():
                if isinstance(value, Obj):
                    value = Unknown("an object the scan cannot follow")
                _set(d, field, value)
            self.scan.declarations.append(d)

    def _marked(self, node) -> bool:
        first, last = node.start_point[0], node.end_point[0]
        for n in range(max(first - 1, 0), last + 1):
            if n < len(self._lines) and UNROUTABLE_OK in self._lines[n]:
                return True
        return False


def _pattern_names(pattern) -> list[tuple[str, str]]:
    """(local name, property) of an object pattern's plain entries: ``{name, key: k}`` ->
    ``[("name", "name"), ("k", "key")]`` (defaults and nested patterns are left out)."""
    out = []
    for prop in pattern.named_children:
        if prop.type == "shorthand_property_identifier_pattern":
            out.append((_text(prop), _text(prop)))
        elif prop.type == "pair_pattern":
            key, val = prop.child_by_field_name("key"), prop.child_by_field_name("value")
            if key is not None and val is not None and val.type == "identifier":
                out.append((_text(val), _text(key)))
    return out


def _arguments_of(call) -> list:
    """A call's argument nodes, comments left out."""
    node = call.child_by_field_name("arguments")
    return [c for c in node.named_children if c.type != "comment"] if node is not None else []


def _arguments(options: dict, own: dict) -> Any:
    given = options.get("arguments", {})
    if isinstance(given, Unknown):
        return given
    args = dict(given or {}) if isinstance(given, dict) else {}
    for option, arg in own.items():
        if option in options and options[option] is not None:
            args[arg] = options[option]
    return lift_dict(args)  # {deadLetterExchange: `${svc}.dlx`} in a loop: one table per turn


def _table(value: Any) -> Any:
    """A binding's arguments: an object whose values include loop values is one table per turn."""
    value = _none(value)
    return lift_dict(value) if isinstance(value, dict) else value


def _need(value: Any, reason: str) -> Any:
    return Unknown(reason) if value is _MISSING else value


def _key(value: Any) -> Any:
    return "" if value is _MISSING or value is None else value


def _none(value: Any) -> Any:
    return None if value is _MISSING else value


def _js_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _either(value: Any) -> str:
    if isinstance(value, Unknown):
        return value.reason
    if isinstance(value, (str, int, float, bool)):
        return repr(value)
    return "a value known only at run time"


def _short(node) -> str:
    text = " ".join(_text(node).split())
    return text if len(text) <= 60 else text[:57] + "..."
