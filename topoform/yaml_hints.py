"""Plain-words explanations for the YAML mistakes people make in topology files.

libyaml's words describe the grammar ("while scanning an alias", "did not find
expected node content"); these helpers say what was probably meant and how to fix
it, and point at the character concerned:

* a value starting with ``*`` (``routing_key: *.created``) is read as an alias, with
  ``&`` as an anchor, and ``@`` / backquote cannot start a value at all: quote it;
* a value starting with ``#`` after a space is a comment, so ``routing_key: #.created``
  is empty (null), and in a flow mapping the rest of the line is lost: quote it;
* a queue's ``bindings:`` (or ``arguments:``, ``durable:``...) indented one level too
  little becomes a queue named ``bindings``; a queue's sugar bindings indented under
  the vhost become vhost bindings without ``source``: indent them under the queue.

Pure functions over the file text and the parsed data; no YAML parsing here
(imports only :mod:`topoform.errors`).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Sequence

from .errors import Position

QUEUE_FIELDS = ("durable", "exclusive", "auto_delete", "arguments", "bindings")
EXCHANGE_FIELDS = ("type", "durable", "auto_delete", "internal", "arguments")
VHOST_FIELDS = ("exchanges", "queues", "bindings", "policies", "description", "tags", "default_queue_type")

_START = {"*": "is read as a YAML alias (a reference to an &anchor)", "&": "is read as a YAML anchor",
          "@": "is reserved in YAML", "`": "is reserved in YAML"}
_CONTEXTS = {"while scanning an alias": "*", "while scanning an anchor": "&"}
_TOKEN_END = re.compile(r"[\s,\]}]")
_COMMENT_VALUE = re.compile(r"(?:^|[:,\[{]|^\s*-)\s+(#[^\s,\]}]*)")


def _line(text: str, line: int) -> str:
    lines = text.split("\n")
    return lines[line] if 0 <= line < len(lines) else ""


def _token(line_text: str, col: int) -> str:
    rest = line_text[col:]
    m = _TOKEN_END.search(rest, 1)
    token = rest[:m.start()] if m else rest
    return token.rstrip()


def _key_before(line_text: str, col: int) -> str:
    m = re.search(r"([\w.-]+)\s*:\s*$", line_text[:col])
    return m.group(1) if m else ""


# Keys whose value may be a secret: a hint about their value never repeats it.
_SECRET_KEYS = frozenset({"password", "password_hash", "uri", "src-uri", "dest-uri"})


def _quoted(key: str, token: str) -> str:
    value = '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{key}: {value}" if key else value


def _may_show(key: str) -> bool:
    """Whether a hint may repeat the value written after ``key``: only a value of a named, non-secret key.
    A value with no key before it may be the whole file (a password file given with -f by mistake)."""
    return bool(key) and key not in _SECRET_KEYS


def explain_syntax(exc: Any, text: str) -> tuple[str, int, int] | None:
    """A better message for a libyaml error, with the 0-based line and column it is about."""
    problem = exc.problem or ""
    context = exc.context or ""
    char = _CONTEXTS.get(context)
    if char is None and "cannot start any token" in problem and exc.problem_mark is not None:
        mark = exc.problem_mark
        found = _line(text, mark.line)[mark.column:mark.column + 1]
        char = found if found in _START else None
    if char is not None:
        mark = exc.context_mark if context in _CONTEXTS and exc.context_mark else exc.problem_mark
        if mark is None:
            return None
        line_text = _line(text, mark.line)
        col = line_text.find(char, mark.column)
        col = mark.column if col < 0 else col
        token, key = _token(line_text, col), _key_before(line_text, col)
        example = f", {_quoted(key, token)}" if _may_show(key) else ""
        return f"a value starting with '{char}' {_START[char]}: quote it{example}", mark.line, col
    if problem.startswith("did not find expected node content") or problem.startswith("did not find expected ','") \
            or "expected ',' or '}'" in problem or "expected ',' or ']'" in problem:
        mark = exc.problem_mark
        if mark is None:
            return None
        found = _comment_value(text, mark.line)
        if found:
            line, col, token, key = found
            if not _may_show(key):
                return ("a value starting with '#' after a space starts a YAML comment, so the rest of the line is "
                        "lost: quote it", line, col)
            return (f"'{token}' starts a YAML comment (a '#' after a space), so the rest of the line is lost: "
                    f"quote it, {_quoted(key, token)}", line, col)
    return None


def _comment_value(text: str, last_line: int) -> tuple[int, int, str, str] | None:
    """The last ``key: #value`` (or ``- #value``) at or up to three lines before ``last_line``."""
    for line in range(last_line, max(-1, last_line - 4), -1):
        line_text = _line(text, line)
        matches = list(_COMMENT_VALUE.finditer(line_text))
        if matches:
            m = matches[-1]
            return line, m.start(1), m.group(1), _key_before(line_text, m.start(1))
    return None


def explain_null(text: str, line: int, col: int) -> tuple[str, int] | None:
    """For a value that is null because a ``#...`` comment follows the key: (explanation, 0-based column).

    ``line`` and ``col`` are the 0-based position of the null value.
    """
    line_text = _line(text, line)
    rest = line_text[col:]
    stripped = rest.lstrip()
    if not stripped[:1] in ("#", "&") or (rest == stripped and col > 0 and not line_text[col - 1].isspace()):
        return None
    at = col + len(rest) - len(stripped)
    token = stripped.split()[0]
    key = _key_before(line_text, col)
    what = "is a YAML comment (a '#' after a space starts one)" if token[0] == "#" else \
        "is read as a YAML anchor name, not as the value"
    if not _may_show(key):
        return f"the text after the key {what}; if it is the value, quote it", at
    return f"'{token}' after the key {what}; if it is the value, quote it: {_quoted(key, token)}", at


def explain_problems(problems: Sequence, data: Any, text: str | None,
                     locate: Callable[..., Position]) -> Iterator[tuple[str, str, Position]]:
    """Schema problems as ``(code, message, position)``, explained where a YAML or indentation
    mistake is the likely cause. One finding per misplaced object; duplicates dropped."""
    seen: set = set()
    hinted: set = set()
    for problem in problems:
        path = problem.path
        if tuple(path) == ("rabbitmq_version",) and isinstance(data, dict) and \
                isinstance(data.get("rabbitmq_version"), str):
            continue  # the loader checks the text itself, naming the supported versions
        message, where = problem.message, locate(path, problem.at_key)
        indent, sugar = indentation_hint(path, data), vhost_binding_hint(path, data)
        if indent or sugar:
            owner = tuple(path[:4])
            if owner in hinted:
                continue  # the hint explains every problem of this object
            hinted.add(owner)
            message = f"{indent} (as written: {message})" if indent else sugar
            where = locate(owner if indent else owner[:3], True)
        elif "got nothing (null)" in message and text is not None:
            null = explain_null(text, where.line - 1, where.col - 1)
            if null:
                message, where = f"{message}: {null[0]}", Position(where.path, where.line, null[1] + 1)
        elif tuple(path) == ("rabbitmq_version",) and isinstance(data, dict) and \
                isinstance(data.get("rabbitmq_version"), float):
            token = _token(_line(text or "", where.line - 1), where.col - 1) or str(data["rabbitmq_version"])
            message = (f'rabbitmq_version must be a string, got the number {data["rabbitmq_version"]}: quote it, '
                       f'rabbitmq_version: "{token}" (unquoted, YAML reads 3.10 as the number 3.1)')
        if (problem.code, message, where) not in seen:  # the schema can report one problem twice
            seen.add((problem.code, message, where))
            yield problem.code, message, where


def indentation_hint(path: Sequence, data: Any) -> str | None:
    """For a problem inside an object whose name is really a field of the object above it.

    ``path`` is the instance path of a schema problem. Returns a sentence or None.
    """
    if len(path) < 4 or path[0] != "vhosts" or path[2] not in ("queues", "exchanges"):
        return None
    section, name = path[2], path[3]
    kind = "queue" if section == "queues" else "exchange"
    a_kind = "a queue" if kind == "queue" else "an exchange"
    fields = QUEUE_FIELDS if kind == "queue" else EXCHANGE_FIELDS
    if name in fields:
        above = _previous_key(data, path[:3], name)
        target = f"{kind} '{above}'" if above else f"the {kind} it belongs to"
        return (f"'{name}' is a field of {a_kind}, but it is indented as {a_kind} name under '{section}': indent "
                f"'{name}:' two more spaces, under {target}")
    if name in VHOST_FIELDS:
        return (f"'{name}' is a vhost key, but it is indented as {a_kind} name under '{section}': indent "
                f"'{name}:' two fewer spaces, level with '{section}:'")
    return None


def vhost_binding_hint(path: Sequence, data: Any) -> str | None:
    """For a vhost-level binding written like a queue's sugar binding (``exchange:``, no ``source``)."""
    if len(path) < 4 or path[0] != "vhosts" or path[2] != "bindings" or not isinstance(path[3], int):
        return None
    item = _get(data, path[:4])
    if not isinstance(item, dict) or "exchange" not in item or "source" in item:
        return None
    queues = _get(data, path[:2] + ("queues",))
    last = list(queues)[-1] if isinstance(queues, dict) and queues else None
    target = f"queue '{last}' (the last queue above)" if last else "its queue"
    return (f"binding #{path[3] + 1} in vhost '{path[1]}' has 'exchange:', the form of a queue's own bindings: if it "
            f"belongs to {target}, indent 'bindings:' under that queue; a vhost's bindings need source and "
            f"destination")


def _get(data: Any, path: Sequence) -> Any:
    node = data
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def _previous_key(data: Any, parent: Sequence, name: str) -> str | None:
    mapping = _get(data, parent)
    if not isinstance(mapping, dict):
        return None
    keys = list(mapping)
    if name not in keys:
        return None
    i = keys.index(name)
    before = [k for k in keys[:i] if k not in QUEUE_FIELDS + EXCHANGE_FIELDS + VHOST_FIELDS]
    return before[-1] if before else None
