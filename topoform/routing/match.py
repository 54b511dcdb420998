"""Pure matchers: topic keys, headers tables, and the value equality the broker uses.

Everything here is a plain function of its inputs, checked against the broker's
observed behaviour (RABBITMQ-SEMANTICS.md sections 5, 6 and 7; the 1,480-pair topic
matrix and the 500-row headers matrix in ``semantics-experiments.json`` are replayed
by ``tests/unit/test_routing_match.py``). Imports nothing from topoform but ``errors``.

Topic rules (section 5.1), the ones a naive matcher gets wrong:

* both keys split on **every** ``.``, empty words kept (``a..b`` is three words);
  the empty string is **zero** words, so ``#`` matches it and ``*`` does not;
* only a whole word ``*`` (exactly one word, possibly empty) or ``#`` (zero or more
  words) is a wildcard: ``a*b`` and ``ab#`` are literal words;
* comparison is byte for byte, case-sensitive; routing keys have no wildcards.

Headers rules (section 7): ``x-match`` is ``all`` (the default), ``any``,
``all-with-x`` or ``any-with-x``; keys starting with ``x-`` count only under the
``-with-x`` forms; a void binding value checks presence; values compare like
Erlang ``==`` on 3.10 (1 == 1.0, str == bytes with the same bytes, "1" != 1,
True != 1) and like ``=:=`` from 3.13 (1 != 1.0).
"""
from __future__ import annotations

import datetime as _dt
from decimal import Decimal
from typing import Any, Mapping, Sequence

__all__ = [
    "split_words", "topic_matches", "direct_matches", "headers_matches", "parse_x_match",
    "header_value_equal", "X_MATCH_VALUES", "InvalidXMatch",
]

X_MATCH_VALUES = ("all", "any", "all-with-x", "any-with-x")


class InvalidXMatch(ValueError):
    """A binding's ``x-match`` the broker refuses at bind time (406 PRECONDITION_FAILED)."""


# --------------------------------------------------------------------------- topic

def split_words(key: str) -> tuple[str, ...]:
    """Words of a topic key: split on every ``.``, empty words kept; ``""`` is no words."""
    return tuple(key.split(".")) if key else ()


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """Whether a topic binding key matches a routing key, exactly as RabbitMQ decides.

    >>> topic_matches("*.orange.*", "quick.orange.rabbit")
    True
    >>> topic_matches("#", ""), topic_matches("*", "")
    (True, False)
    """
    pattern = split_words(binding_key)
    words = split_words(routing_key)
    n = len(words)
    # Set of word positions reachable after consuming pattern[:i]; a small NFA, so
    # patterns with many '#' stay linear in the key length.
    states = {0}
    for p in pattern:
        if p == "#":
            lowest = min(states)
            states = set(range(lowest, n + 1))
        elif p == "*":
            states = {j + 1 for j in states if j < n}
        else:
            states = {j + 1 for j in states if j < n and words[j] == p}
        if not states:
            return False
    return n in states


def direct_matches(binding_key: str, routing_key: str) -> bool:
    """Direct exchanges: exact, byte-for-byte equality (``*`` and ``#`` are literal)."""
    return binding_key == routing_key


# --------------------------------------------------------------------------- headers

def parse_x_match(arguments: Mapping[str, Any]) -> tuple[bool, bool]:
    """``(is_all, with_x)`` for a headers binding's arguments.

    Absent ``x-match`` means ``all``. Any other value than the four the broker knows
    (case-sensitive, a string) raises :class:`InvalidXMatch`, since the broker
    refuses such a binding at bind time.
    """
    if "x-match" not in arguments:
        return True, False
    value = arguments["x-match"]
    if not isinstance(value, str):
        raise InvalidXMatch(f"x-match must be a string, got {type(value).__name__} {value!r}")
    if value not in X_MATCH_VALUES:
        raise InvalidXMatch(f"invalid x-match value {value!r}; expected all, any, all-with-x or any-with-x")
    return value.startswith("all"), value.endswith("-with-x")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _untag(v: Any) -> Any:
    """The Erlang value the broker compares, without its AMQP type tag."""
    if isinstance(v, str):
        return v.encode("utf-8")  # longstr and bytearray are both binaries
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, _dt.datetime):  # AMQP timestamp: integer seconds
        return int(v.replace(tzinfo=v.tzinfo or _dt.timezone.utc).timestamp())
    return v


def _tag(v: Any) -> str:
    """A type class for values nested in arrays and tables, where Erlang compares
    ``{Type, Value}`` tuples and so the tag must be equal too. Integer widths
    (signedint against long) cannot be told apart from Python values; they are one class."""
    if v is None:
        return "void"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "longstr"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(v, Decimal):
        return "decimal"
    if isinstance(v, _dt.datetime):
        return "timestamp"
    if isinstance(v, Mapping):
        return "table"
    if isinstance(v, (list, tuple)):
        return "array"
    return type(v).__name__


def _nested_equal(a: Any, b: Any) -> bool:
    """Equality of values inside arrays/tables: tags must agree, then the values."""
    ta, tb = _tag(a), _tag(b)
    if ta != tb:
        return False
    if ta == "array":
        return len(a) == len(b) and all(_nested_equal(x, y) for x, y in zip(a, b))
    if ta == "table":
        return set(a) == set(b) and all(_nested_equal(a[k], b[k]) for k in a)
    return _untag(a) == _untag(b)


def header_value_equal(binding_value: Any, header_value: Any, *, exact_numbers: bool = False) -> bool:
    """Whether a message header value satisfies a (non-void) binding value.

    3.10 semantics (``exact_numbers=False``): Erlang ``==`` on untagged values, so
    int 1, long 1 and double 1.0 are equal, a string equals bytes with the same
    content, and ``"1"``, ``True`` and ``1`` are pairwise different. From 3.13
    (``exact_numbers=True``) numbers compare with ``=:=``: 1 and 1.0 differ.
    Arrays and tables compare element by element with their types.
    """
    a, b = binding_value, header_value
    if isinstance(a, _dt.datetime):  # a timestamp's Erlang value is its integer seconds
        a = _untag(a)
    if isinstance(b, _dt.datetime):
        b = _untag(b)
    if _is_number(a) or _is_number(b):
        if not (_is_number(a) and _is_number(b)):
            return False
        if exact_numbers and isinstance(a, float) != isinstance(b, float):
            return False
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_nested_equal(x, y) for x, y in zip(a, b)))
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return isinstance(a, Mapping) and isinstance(b, Mapping) and _nested_equal(a, b)
    if b is None:  # a void header never equals a non-void binding value
        return False
    ua, ub = _untag(a), _untag(b)
    return type(ua) is type(ub) and ua == ub


def counted_keys(arguments: Mapping[str, Any], with_x: bool) -> tuple[tuple[str, Any], ...]:
    """The binding keys a headers binding tests: all but ``x-match``; ``x-*`` only with ``-with-x``."""
    return tuple((k, v) for k, v in arguments.items()
                 if k != "x-match" and (with_x or not k.startswith("x-")))


def match_counted(is_all: bool, keys: Sequence[tuple[str, Any]], headers: Mapping[str, Any] | None,
                  exact_numbers: bool = False) -> bool:
    """Combine per-key results: ``all`` of no keys is true, ``any`` of no keys is false."""
    headers = headers or {}
    for name, expected in keys:
        if name in headers:
            ok = expected is None or header_value_equal(expected, headers[name], exact_numbers=exact_numbers)
        else:
            ok = False
        if is_all and not ok:
            return False
        if not is_all and ok:
            return True
    return is_all


def headers_matches(binding_arguments: Mapping[str, Any], headers: Mapping[str, Any] | None, *,
                    exact_numbers: bool = False) -> bool:
    """Whether a headers-exchange binding matches a message's headers (``None``: no headers).

    >>> headers_matches({"x-match": "any", "a": "1", "b": "2"}, {"b": "2"})
    True
    >>> headers_matches({"x-match": "any"}, {"a": "1"})
    False
    >>> headers_matches({"n": 1}, {"n": 1.0}), headers_matches({"n": 1}, {"n": 1.0}, exact_numbers=True)
    (True, False)

    Raises :class:`InvalidXMatch` for an ``x-match`` the broker would refuse.
    """
    is_all, with_x = parse_x_match(binding_arguments)
    return match_counted(is_all, counted_keys(binding_arguments, with_x), headers, exact_numbers)
