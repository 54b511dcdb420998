"""Plan -> human text, Plan -> JSON-ready dict. Returns strings and dicts; never prints.

The text groups changes by vhost, one line per change with the contract's symbols
(``+`` create, ``~`` update, ``-`` delete, ``!`` blocked, ``-/+`` migrate), attribute
lines ``field: before -> after``, the reason on every blocked, delete and migrate
change, unmanaged objects under their own heading, and one summary line last. Colour
is optional decoration: the text without it says everything.

Values are shown as JSON so that types stay visible: ``60000`` and ``"60000"`` differ
to the broker, and so they do on screen. A missing value is ``(absent)``.

Must not import broker, apply or cli.
"""
from __future__ import annotations

import json
import textwrap
from typing import Any, Iterable

from ..model import Args, Exchange, Policy, Queue, Resource, Vhost, thaw
from .diff import ABSENT, get_path
from .plan import Action, Change, Plan

__all__ = ["render_text", "render_json", "summary_line", "format_value"]

SAME = "The broker matches the files."  # what "No changes." means; diff has no broker (cli/diff.py)
NO_CHANGES = f"No changes. {SAME}"
MAX_LABEL = 40
WRAP = 72  # attribute lines wrap at about this many characters
REASON_WRAP = 80

_COLORS = {
    Action.CREATE: "32",   # green
    Action.UPDATE: "33",   # yellow
    Action.DELETE: "31",   # red
    Action.BLOCKED: "1;31",  # bold red
    Action.MIGRATE: "36",  # cyan
}


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and text else text


def format_value(value: Any) -> str:
    """A value as the user should read it: JSON (types visible), ``(absent)`` when missing."""
    if value is ABSENT:
        return "(absent)"
    try:
        return json.dumps(thaw(value), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _plain(value: Any) -> str:
    """Top-level string fields (type, pattern...) unquoted unless empty or spaced."""
    if isinstance(value, str) and value and value.strip() == value and " " not in value:
        return value
    return format_value(value)


def _create_attributes(obj: Resource) -> list[str]:
    """The attributes worth showing for a new object: everything that is not a declare default."""
    attrs: list[str] = []
    if isinstance(obj, Exchange):
        attrs.append(f"type={_plain(obj.type)}")
        attrs += [f"{f}=true" for f in ("durable", "auto_delete", "internal") if getattr(obj, f)]
        attrs += _mapping_attrs("arguments", obj.arguments)
    elif isinstance(obj, Queue):
        attrs += [f"{f}=true" for f in ("durable", "exclusive", "auto_delete") if getattr(obj, f)]
        attrs += _mapping_attrs("arguments", obj.arguments)
    elif isinstance(obj, Policy):
        attrs += [f"pattern={format_value(obj.pattern)}", f"apply_to={obj.apply_to}", f"priority={obj.priority}"]
        attrs += _mapping_attrs("definition", obj.definition)
    elif isinstance(obj, Vhost):
        for f in ("description", "tags", "default_queue_type"):
            value = getattr(obj, f)
            if value is not None:
                attrs.append(f"{f}={format_value(value)}")
    elif hasattr(obj, "secret_paths"):  # the config kinds (topoform/config/): never a secret value
        attrs += obj.attributes()
    return attrs


def _mapping_attrs(prefix: str, mapping: Args) -> list[str]:
    return [f"{prefix}.{k}={format_value(v)}" for k, v in mapping.items()]


def _wrap(tokens: list[str], width: int = WRAP) -> list[str]:
    """Attribute tokens joined by spaces, wrapped into lines of about ``width`` characters."""
    lines: list[str] = []
    current = ""
    for token in tokens:
        if current and len(current) + 1 + len(token) > width:
            lines.append(current)
            current = token
        else:
            current = f"{current} {token}" if current else token
    if current:
        lines.append(current)
    return lines


def _label(change: Change) -> str:
    return f"{change.action.symbol:<3} {change.kind} {change.name}"


def _details(change: Change) -> list[str]:
    """The lines shown after the label: attributes or field changes, then the reason."""
    lines: list[str] = []
    if change.action is Action.CREATE and change.after is not None:
        lines.extend(_wrap(_create_attributes(change.after)))
    elif change.diff:
        for path in change.diff:
            before = get_path(change.before, path)
            after = get_path(change.after, path)
            secret = any(path in getattr(o, "secret_paths", ()) for o in (change.before, change.after))
            if secret and (before == after or before is ABSENT or after is ABSENT):
                lines.append(f"{path}: changes")  # a password or URI credentials: never shown (SPEC section 8)
                continue
            lines.append(f"{path}: {format_value(before)} -> {format_value(after)}")
    if change.steps:
        lines.append(f"{len(change.steps)} step{'s' if len(change.steps) != 1 else ''}: "
                     + ", ".join(s.op for s in change.steps))
    if change.reason and change.action in (Action.BLOCKED, Action.DELETE, Action.MIGRATE, Action.UPDATE):
        lines.extend(textwrap.wrap(change.reason, width=REASON_WRAP, break_long_words=False,
                                   break_on_hyphens=False))
    return lines


def summary_line(plan: Plan) -> str:
    s = plan.summary
    return (f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
            f"{s['migrate']} to migrate, {s['blocked']} blocked.")


def _vhost_heading(name: str) -> str:
    if name == "":  # users, user limits, global parameters (topoform/config/)
        return "broker (global)"
    return f"vhost {json.dumps(name, ensure_ascii=False)}"


def _group(items: Iterable, vhost_of) -> dict[str, list]:
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(vhost_of(item), []).append(item)
    return groups


def render_text(plan: Plan, *, color: bool = False, same: str = SAME) -> str:
    """The plan for people, as SPEC section 4 describes it. Ends with a newline.

    Example::

        vhost "/"
          +   queue orders                      durable=true
          !   queue payments                    arguments.x-message-ttl: 60000 -> 30000
                                                The broker would reject the redeclare ...
        Plan: 1 to create, 0 to update, 0 to delete, 0 to migrate, 1 blocked.
    """
    out: list[str] = []
    if plan.owner or plan.env:  # SPEC section 9: whose files, which environment
        out.append(", ".join(p for p in (f"owner: {plan.owner}" if plan.owner else "",
                                          f"environment: {plan.env}" if plan.env else "") if p))
    if plan.options.get("targets"):  # --target KIND:NAME (planner/target.py): a narrowed plan says so
        out.append("targets: " + ", ".join(str(t) for t in plan.options["targets"]))
    # align details on the longest label that has any (bindings rarely do), within reason
    rows = [(c, _label(c), _details(c)) for c in plan.changes]  # each computed once: 31,000 changes are common
    width = min(max((len(label) for _c, label, details in rows if details), default=0), MAX_LABEL)
    indent = " " * (2 + width + 2)
    groups = _group(rows, lambda row: row[0].vhost)
    for vhost in sorted(groups):
        out.append(_paint(_vhost_heading(vhost), "1", color))
        for change, label, details in groups[vhost]:  # already in execution order
            painted = _paint(label, _COLORS[change.action], color)
            if details and len(label) <= width:
                out.append(f"  {painted}{' ' * (width - len(label))}  {details[0]}".rstrip())
                rest = details[1:]
            else:
                out.append(f"  {painted}")
                rest = details
            for line in rest:
                out.append(indent + line)
    if plan.unmanaged:
        out.append(_paint("Unmanaged: on the broker but not in the files; left alone "
                          "(plan --prune would delete them):", "1", color))
        for vhost, items in sorted(_group(plan.unmanaged, lambda r: r.vhost).items()):
            out.append(f"  {_vhost_heading(vhost)}")
            for r in items:
                out.append(f"    {r.kind} {r.display_name}")
    if plan.changes:
        out.append(summary_line(plan))
    else:
        out.append(f"No changes. {same}")
    return "\n".join(out) + "\n"


def render_json(plan: Plan) -> dict:
    """The contract's plan JSON (SPEC section 4): ``format_version``, ``changes``, ``summary``,
    plus ``fingerprint``, ``vhosts``, ``options`` and ``unmanaged``. What ``--out`` saves."""
    return plan.to_dict()

