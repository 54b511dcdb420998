"""The one layout of topology YAML, shared by every writer: ``import`` and ``scan -o``
(:mod:`topoform.dump`) and ``fmt`` (:mod:`topoform.fmt`), so that ``fmt --check`` passes
on what topoform writes.

* **Quoting**: a string is plain when it reads back as the same string in every YAML
  reader (1.1 and 1.2, block and flow context), else in double quotes (:func:`plain_ok`).
* **Flow style**: a collection inside an object (arguments, a definition, tags, a
  binding or a route test entry, ...) goes on one line when its flow form is at most
  :data:`FLOW_WIDTH` characters and nests at most :data:`FLOW_DEPTH` levels
  (:func:`flows`); otherwise block style, each collection inside it decided alike.
  A list directly inside a list is always one flow line.
  Containers (the document, a vhost, the maps of objects, the lists of bindings and
  tests) and objects themselves (an exchange, a queue, a policy, a user, a shovel, ...)
  are block style; an empty collection is ``{}`` or ``[]``.

The decision depends only on the values (their texts, measured by :func:`flow_length`),
never on where a line starts, so writer and formatter reach the same one.

Imports only yaml.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping

import yaml

__all__ = ["FLOW_WIDTH", "FLOW_DEPTH", "plain_ok", "quote_style", "quoted_length", "flow_length", "depth", "flows"]

FLOW_WIDTH = 100  # a collection goes on one line when its flow form is at most this long
FLOW_DEPTH = 2   # ... and it nests at most this many levels ({a: {b: c}} is two)

# The usual name: plain in every reader without further checks.
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
# Strings that some YAML reader (1.1 or 1.2 core schema) resolves to something other than a
# string, beyond what PyYAML's own resolver catches (``0o17``, ``1e5``, ``.5``): quoted, so
# files also read back right in editors and other tools.
_NUMBERISH = re.compile(r"[-+]?(\.?[0-9][0-9_a-zA-Z.:+-]*|\.(inf|Inf|INF|nan|NaN|NAN))")
_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ""}
# characters only double quotes can hold (line breaks, tabs, control and non-printable ones)
_ESCAPED = re.compile("[^\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029\ufeff]")
# ... and what else no plain scalar can be: a leading or trailing space
AWKWARD = re.compile(_ESCAPED.pattern + "|^ | $")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_RESOLVER = yaml.resolver.Resolver()


def plain_ok(value: str) -> bool:
    """Would ``value`` written plain read back as this very string (YAML 1.1 and 1.2, block and flow)?"""
    if _SIMPLE.fullmatch(value):
        return value.lower() not in _WORDS
    if not value or AWKWARD.search(value) or _NUMBERISH.fullmatch(value) or value.lower() in _WORDS:
        return False
    if _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        return False
    from yaml.emitter import Emitter  # PyYAML's analysis: what its emitter (and libyaml's) writes plain

    analysis = Emitter(None, allow_unicode=True).analyze_scalar(value)
    return bool(analysis.allow_flow_plain and analysis.allow_block_plain)


def quote_style(value: str) -> str:
    """How a string that cannot be plain is quoted: ``"`` (double quotes), except ``'`` for one
    holding a character outside the BMP (an emoji) and nothing that needs an escape, which
    PyYAML's double quotes would write as ``\\U...`` where ruamel.yaml writes the character."""
    return "'" if _ASTRAL.search(value) and not _ESCAPED.search(value) else '"'


def quoted_length(value: str) -> int:
    """The length of ``value`` quoted (:func:`quote_style`), for :func:`flows` (escapes counted
    as JSON writes them)."""
    if quote_style(value) == "'":
        return len(value) + 2 + value.count("'")
    return len(json.dumps(value, ensure_ascii=False))


def flow_length(value: Any, scalar_length: Callable[[Any], int], limit: int = FLOW_WIDTH) -> int:
    """The length of ``value``'s one-line flow form (``{a: 1, b: [x, y]}``), counting each
    scalar (keys too) by ``scalar_length``; stops counting once past ``limit``."""
    if isinstance(value, Mapping):
        total = 2 + max(0, 2 * (len(value) - 1))  # braces, ", " between entries
        for k, v in value.items():
            total += scalar_length(k) + 2 + flow_length(v, scalar_length, limit)  # "k: v"
            if total > limit:
                return total
        return total
    if isinstance(value, (list, tuple)):
        total = 2 + max(0, 2 * (len(value) - 1))
        for v in value:
            total += flow_length(v, scalar_length, limit)
            if total > limit:
                return total
        return total
    return scalar_length(value)


def depth(value: Any) -> int:
    """How many collection levels ``value`` nests (a scalar 0, ``{a: 1}`` 1, ``{a: [1]}`` 2)."""
    if isinstance(value, Mapping):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def flows(value: Any, scalar_length: Callable[[Any], int]) -> bool:
    """Is the collection ``value`` written on one line in flow style?"""
    if not value:
        return True
    return depth(value) <= FLOW_DEPTH and flow_length(value, scalar_length) <= FLOW_WIDTH
