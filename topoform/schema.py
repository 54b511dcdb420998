"""The topology JSON Schema: loading it, a fast structural check, and readable messages.

``schemas/topology.schema.json`` is the single source of the structural rules. Running
``jsonschema`` over a 30,000-object file costs several times the YAML parse, so the
happy path uses :func:`fast_check`, a checker compiled from the same schema that
answers only "valid or not". Only when it says "not" do we run the full
``jsonschema`` validator, whose errors carry the instance paths we turn into
positions and one-line messages (:func:`schema_errors`).

The compiler supports exactly the keywords the schema uses; a schema edit that adds
another keyword fails loudly at import time instead of being silently ignored. The
compiled check is never more lenient than jsonschema (it may be stricter: the full
validator then decides).

Imports nothing from topoform and knows no YAML; ``jsonschema`` is imported only when
a file has a structural problem.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

SCHEMA_PATH = Path(__file__).parent / "schemas" / "topology.schema.json"

# Keywords that only annotate (editors show them); the checker ignores them.
_ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples",
                "markdownDescription", "deprecated"}

_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    # bool is a subclass of int in Python; the broker (and the schema) tell them apart.
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "null": lambda v: v is None,
}


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The topology schema as a dict (read once)."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


# ---------------------------------------------------------------- fast check

def _typed(value: Any) -> tuple:
    # enum/const compare with the type: 1 is not true, 1 is not "1" (jsonschema agrees).
    return (type(value), value)


class _Compiler:
    def __init__(self, root: dict):
        self.root = root
        self.refs: dict[str, Callable[[Any], bool]] = {}

    def ref(self, ref: str) -> Callable[[Any], bool]:
        if ref not in self.refs:
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"unsupported $ref {ref!r}")
            slot: list = []
            # Recursive references resolve through the slot once compiled.
            self.refs[ref] = lambda v: slot[0](v)
            slot.append(self.compile(self.root["$defs"][ref[len("#/$defs/"):]]))
            self.refs[ref] = slot[0]
        return self.refs[ref]

    def compile(self, schema: Any) -> Callable[[Any], bool]:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        unknown = set(schema) - _ANNOTATIONS - {
            "type", "properties", "additionalProperties", "required", "enum", "const", "pattern",
            "minimum", "maximum", "minLength", "minProperties", "items", "$ref"}
        if unknown:
            raise ValueError(f"schema keyword(s) not supported by the fast checker: {sorted(unknown)}")
        if "$ref" in schema:
            if len(set(schema) - _ANNOTATIONS) != 1:
                raise ValueError("$ref with sibling keywords is not supported by the fast checker")
            return self.ref(schema["$ref"])
        checks: list[Callable[[Any], bool]] = []
        types = schema.get("type")
        if types is not None:
            names = [types] if isinstance(types, str) else list(types)
            fns = [_TYPE_CHECKS[t] for t in names]
            checks.append(fns[0] if len(fns) == 1 else (lambda v, fns=fns: any(f(v) for f in fns)))
        if "enum" in schema:
            allowed = {_typed(x) for x in schema["enum"]}
            checks.append(lambda v: _safe_in(v, allowed))
        if "const" in schema:
            allowed = {_typed(schema["const"])}
            checks.append(lambda v: _safe_in(v, allowed))
        if "pattern" in schema:
            rx = re.compile(schema["pattern"])
            checks.append(lambda v: type(v) is not str or rx.search(v) is not None)
        if "minimum" in schema:
            lo = schema["minimum"]
            checks.append(lambda v: type(v) not in (int, float) or v >= lo)
        if "maximum" in schema:
            hi = schema["maximum"]
            checks.append(lambda v: type(v) not in (int, float) or v <= hi)
        if "minLength" in schema:
            n = schema["minLength"]
            checks.append(lambda v: type(v) is not str or len(v) >= n)
        if "items" in schema:
            item = self.compile(schema["items"])
            checks.append(lambda v: type(v) is not list or all(map(item, v)))
        if {"properties", "additionalProperties", "required", "minProperties"} & set(schema):
            checks.append(self.compile_object(schema))
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:  # the usual "type" plus one more: no generator per value
            first, second = checks
            return lambda v: first(v) and second(v)
        return lambda v: all(c(v) for c in checks)

    def compile_object(self, schema: dict) -> Callable[[Any], bool]:
        props = {k: self.compile(s) for k, s in schema.get("properties", {}).items()}
        addl_schema = schema.get("additionalProperties", True)
        addl = None if addl_schema is True else (False if addl_schema is False else self.compile(addl_schema))
        required = tuple(schema.get("required", ()))
        min_props = schema.get("minProperties", 0)

        def check(v: Any) -> bool:
            if type(v) is not dict:
                return True  # "type" decides about non-objects
            get = props.get
            for key, value in v.items():
                fn = get(key)
                if fn is None:
                    if addl is False:
                        return False
                    if addl is not None and not addl(value):
                        return False
                elif not fn(value):
                    return False
            for key in required:
                if key not in v:
                    return False
            return len(v) >= min_props

        return check


def _safe_in(value: Any, allowed: set) -> bool:
    try:
        return _typed(value) in allowed
    except TypeError:  # unhashable (a list or mapping): never in an enum of scalars
        return False


@lru_cache(maxsize=1)
def _fast_validator() -> Callable[[Any], bool]:
    root = load_schema()
    return _Compiler(root).compile(root)


def fast_check(data: Any) -> bool:
    """True when ``data`` satisfies the schema (never True when jsonschema would say invalid)."""
    return _fast_validator()(data)


# ---------------------------------------------------------------- full check and messages

@lru_cache(maxsize=1)
def _full_validator():
    from jsonschema import Draft202012Validator, validators

    # jsonschema counts 1.0 as an integer and accepts any number; the broker does not
    # (x-message-ttl: 1.0 is refused "expected integer, got double").
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: type(v) is int)
    cls = validators.extend(Draft202012Validator, type_checker=checker)
    return cls(load_schema())


@dataclass(frozen=True)
class SchemaProblem:
    """One structural problem: where (instance path, and whether the key itself is meant) and what."""

    code: str
    message: str
    path: tuple
    at_key: bool = False  # position of the mapping key rather than its value


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "boolean": "a boolean (true or false)",
               "integer": "an integer", "number": "a number", "null": "empty"}


def _describe_secret(value: Any) -> str:
    """What a secret field held, without its value."""
    return "a list" if isinstance(value, list) else "a string (not shown: it may be a secret)"


def _describe_plain(value: Any) -> str:
    return describe_value(value)


def describe_value(value: Any) -> str:
    """``string "yes"``, ``integer 5``, ``a list``: what the user wrote, for messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# What an item of a section is called in messages (a binding is numbered instead).
_TOP_OBJECTS = {"users": "user", "global_parameters": "global parameter"}
_VHOST_OBJECTS = {
    "exchanges": "exchange", "queues": "queue", "policies": "policy", "operator_policies": "operator policy",
    "permissions": "permissions of user", "topic_permissions": "topic permissions of user",
    "federation_upstreams": "federation upstream", "federation_upstream_sets": "federation upstream set",
    "shovels": "shovel", "super_streams": "super stream",
}
# Fields whose value is or may hold a secret: a message says what was wrong, never the value.
_SECRET_FIELDS = frozenset({"password", "password_hash", "uri", "src-uri", "dest-uri"})


def describe_path(path: tuple) -> str:
    """The object a path points into, in the words users see: ``queue 'orders'``."""
    p = list(path)
    if not p:
        return "the top level"
    if p[0] == "include":
        return "include"
    if p[0] == "tests":
        if len(p) == 1:
            return "tests"
        text = f"test #{p[1] + 1}" if isinstance(p[1], int) else "tests"
        if len(p) >= 3 and p[2] in ("headers", "expect"):
            text = f"{p[2]} of {text}"
        return text
    if p[0] in _TOP_OBJECTS:
        if len(p) == 1:
            return p[0]
        text = f"{_TOP_OBJECTS[p[0]]} '{p[1]}'"
        return f"{p[2]} of {text}" if len(p) > 2 and p[2] == "limits" else text
    if p[0] != "vhosts":
        return "the top level"
    if len(p) == 1:
        return "vhosts"
    vhost = p[1]
    if len(p) == 2:
        return f"vhost '{vhost}'"
    section = p[2]
    if len(p) == 3 or section == "limits":
        return f"{section} of vhost '{vhost}'"
    item = p[3]
    kind = _VHOST_OBJECTS.get(section)
    if kind:
        text = f"{kind} '{item}'"
        if section == "topic_permissions" and len(p) > 4:
            text = f"{text}, exchange '{p[4]}'"
    else:
        text = f"binding #{item + 1} in vhost '{vhost}'" if isinstance(item, int) else f"bindings of vhost '{vhost}'"
    rest = p[4:]
    if rest and rest[0] == "bindings" and section == "queues":
        if len(rest) >= 2 and isinstance(rest[1], int):
            text = f"binding #{rest[1] + 1} of {text}"
            rest = rest[2:]
        else:
            return f"bindings of {text}"
    if rest and rest[0] in ("arguments", "definition"):
        text = f"{rest[0]} of {text}"
    return text


def _expected(schema: dict) -> str:
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    names = [n for n in names if n != "null"] or names
    return " or ".join(_TYPE_WORDS.get(n, n) for n in names)


def _choices(values) -> str:
    return ", ".join(json.dumps(v) if not isinstance(v, str) else v for v in values)


def _field_subject(path: tuple) -> tuple[str, str]:
    """(field words, context) for a value at ``path``: ("'durable'", "queue 'orders'")."""
    last = path[-1] if path else None
    parent = describe_path(path[:-1])
    if isinstance(last, int):
        return f"item {last + 1}", parent
    return f"'{last}'", parent


def _resource_like(path: tuple) -> bool:
    """Paths that name an object itself (a queue, a binding, a test) rather than a field."""
    return (len(path) == 4 and path[0] == "vhosts" and path[2] != "limits") or (len(path) == 2 and path[0] == "tests") or (
        len(path) == 6 and path[0] == "vhosts" and path[2] == "queues" and path[4] == "bindings") or len(path) <= 2


# Queue and exchange settings written as keys of the object, where the broker takes them
# as arguments (x-queue-type, x-message-ttl, ...): the hint names the argument.
_ARGUMENT_SPELLINGS = {
    "type": "x-queue-type", "queue_type": "x-queue-type", "ttl": "x-message-ttl", "message_ttl": "x-message-ttl",
    "max_length": "x-max-length", "max_length_bytes": "x-max-length-bytes", "overflow": "x-overflow",
    "expires": "x-expires", "dead_letter_exchange": "x-dead-letter-exchange",
    "dead_letter_routing_key": "x-dead-letter-routing-key", "max_priority": "x-max-priority",
    "delivery_limit": "x-delivery-limit", "single_active_consumer": "x-single-active-consumer",
    "queue_mode": "x-queue-mode", "alternate_exchange": "alternate-exchange", "lazy": "x-queue-mode",
}


def _as_argument(key: str) -> str | None:
    """The argument a key of a queue or exchange means (``ttl`` -> ``x-message-ttl``), else None."""
    if key.startswith("x-") or key == "alternate-exchange":
        return key
    return _ARGUMENT_SPELLINGS.get(key.replace("-", "_").lower())


def _message(error) -> list[SchemaProblem]:
    path = tuple(error.absolute_path)
    v = error.validator
    schema = error.schema
    inst = error.instance
    secret = bool(path) and path[-1] in _SECRET_FIELDS and isinstance(inst, (str, list))
    if secret and v == "type" and path[-1] == "password" and isinstance(inst, str):
        return [SchemaProblem("plain-text-secret", f"{describe_path(path[:-1])}: the password must come from "
                              "{env: NAME} or {file: PATH}, never in plain text", path)]
    describe_value = _describe_secret if secret else _describe_plain
    if v == "additionalProperties" and isinstance(inst, dict):
        known = sorted(schema.get("properties", {}))
        out = []
        for key in inst:
            if key in schema.get("properties", {}):
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            if not path and str(key).startswith("x-") and not close:
                # docker-compose's x-* extension keys hold anchors to merge; topoform has none
                hint = ("topoform has no x-* extension keys: put the anchor on the first object that uses it, "
                        "'orders: &quorum {...}', and merge it into the others, '<<: *quorum'; ")
            argument = _as_argument(str(key)) if "arguments" in known and not close else None
            if argument:
                value = inst[key] if isinstance(inst[key], (str, int, float, bool)) else "..."
                shown = str(value).lower() if isinstance(value, bool) else value
                hint = f"the broker takes it as an argument: arguments: {{{argument}: {shown}}}; "
            where = describe_path(path)
            out.append(SchemaProblem("unknown-key", f"unknown key '{key}' in {where} ({hint}expected one of: "
                                     f"{', '.join(known)})", path + (key,), at_key=True))
        return out
    if v == "required":
        missing = [k for k in schema.get("required", ()) if k not in inst]
        return [SchemaProblem("missing-key", f"{describe_path(path)} is missing required key '{k}'", path)
                for k in missing]
    if v == "minProperties":
        return [SchemaProblem("empty-value", f"{describe_path(path)} must not be empty", path)]
    if v == "type":
        expected = _expected(schema)
        if _resource_like(path) and not (path and path[0] == "include"):
            what = describe_path(path) if path else "the file"
            return [SchemaProblem("wrong-type", f"{what} must be {expected}, got {describe_value(inst)}", path)]
        field, where = _field_subject(path)
        return [SchemaProblem("wrong-type", f"{field} in {where} must be {expected}, got {describe_value(inst)}", path)]
    field, where = _field_subject(path)
    if v == "enum":
        return [SchemaProblem("invalid-value", f"{field} in {where} must be one of: {_choices(schema['enum'])}; "
                              f"got {describe_value(inst)}", path)]
    if v == "const":
        return [SchemaProblem("invalid-value", f"{field} in {where} must be {json.dumps(schema['const'])}, "
                              f"got {describe_value(inst)}", path)]
    if v == "pattern":
        if path and path[-1] == "type":
            return [SchemaProblem("unknown-exchange-type", f"{field} of {where} must be direct, fanout, topic, headers "
                                  f"or a plugin type x-*; got {describe_value(inst)}", path)]
        if path and path[-1] == "x-max-age":
            return [SchemaProblem("invalid-value", f"{field} in {where} must be a number and a unit "
                                  f"(Y, M, D, h, m or s), e.g. 7D; got {describe_value(inst)}", path)]
        return [SchemaProblem("invalid-value", f"{field} in {where} must match {schema['pattern']}; "
                              f"got {describe_value(inst)}", path)]
    if v == "minimum":
        return [SchemaProblem("out-of-range", f"{field} in {where} must be at least {schema['minimum']}, "
                              f"got {describe_value(inst)}", path)]
    if v == "maximum":
        return [SchemaProblem("out-of-range", f"{field} in {where} must be at most {schema['maximum']}, "
                              f"got {describe_value(inst)}", path)]
    if v == "minLength":
        return [SchemaProblem("empty-value", f"{field} in {where} must not be empty", path)]
    return [SchemaProblem("schema", f"{where}: {error.message}", path)]


def schema_errors(data: Any) -> Iterator[SchemaProblem]:
    """Every structural problem in ``data``, as readable messages with instance paths."""
    validator = _full_validator()
    for error in validator.iter_errors(data):
        yield from _message(error)
