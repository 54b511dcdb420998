"""Plan -> Markdown (a pull-request comment or a CI job summary) and the short summary forms.

``render_markdown`` writes, in this order: a heading with the one-line summary, a table of
counts per vhost and kind, the blocked changes with their reasons (never collapsed: they
are why a pipeline fails), then the changes grouped by vhost, each vhost as a fenced
``diff`` block holding the text renderer's own lines (so the symbols and attribute lines
read exactly as in a terminal). A plan with more than :data:`COLLAPSE_OVER` changes puts
each vhost's block (and the unmanaged list) inside ``<details>``.

``render_summary`` is ``plan --summary`` as text: counts per vhost and kind plus every
blocked change on one line with its reason. ``summary_document`` is the same as JSON.

Names are shown in code spans whose fence is longer than any backtick run in them, and
``|`` is escaped in table cells, so no object name can break the Markdown.

Must not import broker, apply or cli.
"""
from __future__ import annotations

import html
import re
from typing import Iterable

from .plan import FORMAT_VERSION, Change, Plan
from .render import SAME, _vhost_heading, render_text, summary_line

__all__ = ["render_markdown", "render_summary", "summary_counts", "summary_document", "COLLAPSE_OVER"]

COLLAPSE_OVER = 20  # changes; above this each vhost's block is collapsible
ACTIONS = ("create", "update", "delete", "migrate", "blocked")
KIND_ORDER = ("vhost", "policy", "exchange", "queue", "binding")


def _kind_key(kind: str) -> tuple:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


def summary_counts(plan: Plan) -> dict[str, dict[str, dict[str, int]]]:
    """``{vhost: {kind: {action: n}}}`` for every vhost and kind that has a change (sorted)."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for c in plan.changes:
        row = counts.setdefault(c.vhost, {}).setdefault(c.kind, {a: 0 for a in ACTIONS})
        row[c.action.value] += 1
    return {v: {k: counts[v][k] for k in sorted(counts[v], key=_kind_key)} for v in sorted(counts)}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _where(vhost: str) -> str:
    """``vhost "shop"``, or ``broker (global)`` for users, user limits and global parameters."""
    return _vhost_heading(vhost)


def blocked_line(change: Change) -> str:
    """One blocked change, with its reason, on one line (text form)."""
    reason = _one_line(change.reason) or "blocked"
    return f"!   {change.kind} {change.name} ({_where(change.vhost)}): {reason}"


def _counts_text(row: dict[str, int]) -> str:
    words = {"create": "to create", "update": "to update", "delete": "to delete", "migrate": "to migrate",
             "blocked": "blocked"}
    return ", ".join(f"{row[a]} {words[a]}" for a in ACTIONS if row[a])


def render_summary(plan: Plan, same: str = SAME) -> str:
    """``plan --summary``: counts per vhost and kind, then every blocked line, then the summary line."""
    counts = summary_counts(plan)
    out: list[str] = []
    for vhost, kinds in counts.items():
        out.append(_where(vhost))
        width = max(len(k) for k in kinds)
        for kind, row in kinds.items():
            out.append(f"  {kind:<{width}}  {_counts_text(row)}")
    if plan.blocked:
        out.append(f"Blocked ({len(plan.blocked)}):")
        out.extend(f"  {blocked_line(c)}" for c in plan.blocked)
    if plan.unmanaged:
        n = len(plan.unmanaged)
        out.append(f"Unmanaged: {n} object{'s' if n != 1 else ''} on the broker but not in the files (left alone).")
    out.append(summary_line(plan) if plan.changes else f"No changes. {same}")
    return "\n".join(out) + "\n"


def summary_document(plan: Plan) -> dict:
    """``plan --summary --format json``: the counts, per vhost and kind, and the blocked changes."""
    return {
        "format_version": FORMAT_VERSION,
        "summary": plan.summary,
        "by_vhost": summary_counts(plan),
        "blocked": [{"vhost": c.vhost, "kind": c.kind, "name": c.name, "reason": c.reason} for c in plan.blocked],
        "unmanaged": len(plan.unmanaged),
    }


# ---------------------------------------------------------------------- Markdown
def code(text: str) -> str:
    """``text`` as an inline code span that no backtick inside it can close early."""
    text = _one_line(text) if "\n" in str(text) else str(text)
    if not text:
        return '`""`'
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    """A table cell: pipes escaped (GFM splits cells on them, even inside code spans)."""
    return text.replace("|", "\\|")


def _fence(lines: list[str]) -> tuple[str, str]:
    longest = max((len(m) for line in lines for m in re.findall(r"`{3,}", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return fence + "diff", fence


def _table(counts: dict[str, dict[str, dict[str, int]]], plan: Plan) -> list[str]:
    out = ["| vhost | kind | create | update | delete | migrate | blocked |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for vhost, kinds in counts.items():
        for kind, row in kinds.items():
            where = "broker (global)" if vhost == "" else code(vhost)
            out.append(f"| {_cell(where)} | {kind} | " + " | ".join(str(row[a]) for a in ACTIONS) + " |")
    total = plan.summary
    out.append("| **total** | | " + " | ".join(f"**{total[a]}**" for a in ACTIONS) + " |")
    return out


def _blocked_section(blocked: Iterable[Change]) -> list[str]:
    out: list[str] = []
    for c in blocked:
        where = "broker-wide (global)" if c.vhost == "" else f"in vhost {code(c.vhost)}"
        out.append(f"- **{c.kind} {code(c.name)}** {where}")
        if c.diff:
            out.append("  - changes: " + ", ".join(code(p) for p in c.diff))
        out.append(f"  - {html.escape(_one_line(c.reason) or 'blocked', quote=False)}")
    return out


def _vhost_lines(plan: Plan, vhost: str, changes: list[Change]) -> list[str]:
    """The text renderer's lines for one vhost's changes (without its heading and summary line)."""
    sub = Plan(changes=tuple(changes), vhosts=(vhost,))
    lines = render_text(sub, color=False).splitlines()
    # drop 'vhost "..."' and the summary line (and anything after it); unindent so that '+' and
    # '-' start the line (a diff block colours them)
    if lines and lines[0] == _vhost_heading(vhost):
        lines = lines[1:]
    last = summary_line(sub)
    if last in lines:
        lines = lines[:lines.index(last)]
    return [line[2:] if line.startswith("  ") else line for line in lines]


def render_markdown(plan: Plan, *, title: str = "topoform plan", collapse_over: int = COLLAPSE_OVER,
                    details: bool = True, same: str = SAME) -> str:
    """The plan as GitHub-flavoured Markdown. Ends with a newline.

    ``details=False`` (``--summary``) stops after the table and the blocked changes.
    """
    out: list[str] = [f"### {html.escape(title, quote=False)}", ""]
    if plan.options.get("targets"):  # --target KIND:NAME: a narrowed plan says so
        out += ["Narrowed to " + ", ".join(code(str(t)) for t in plan.options["targets"])
                + " (other changes are not part of this plan).", ""]
    if not plan.changes:
        out.append(f"**No changes.** {same}")
    else:
        out.append(f"**{summary_line(plan)}**")
        out += ["", *_table(summary_counts(plan), plan)]
    if plan.blocked:
        n = len(plan.blocked)
        out += ["", f"#### Blocked changes ({n})", "",
                f"Nothing is applied while {'this change is' if n == 1 else 'these changes are'} blocked.", ""]
        out += _blocked_section(plan.blocked)
    if not details:
        return "\n".join(out) + "\n"
    collapse = len(plan.changes) > collapse_over
    groups: dict[str, list[Change]] = {}
    for c in plan.changes:
        groups.setdefault(c.vhost, []).append(c)
    if groups:
        out += ["", "#### Changes by vhost"]
    for vhost in sorted(groups):
        changes = groups[vhost]
        lines = _vhost_lines(plan, vhost, changes)
        opening, closing = _fence(lines)
        n = len(changes)
        heading = f"{_where(vhost)}: {n} change{'s' if n != 1 else ''}"
        if collapse:
            out += ["", f"<details><summary>{html.escape(heading, quote=False)}</summary>", ""]
        else:
            where = "broker (global)" if vhost == "" else f"vhost {code(vhost)}"
            out += ["", f"##### {where} ({n} change{'s' if n != 1 else ''})", ""]
        out += [opening, *lines, closing]
        if collapse:
            out += ["", "</details>"]
    if plan.unmanaged:
        n = len(plan.unmanaged)
        out += ["", f"<details><summary>Unmanaged: {n} object{'s' if n != 1 else ''} on the broker but not in "
                    "the files (left alone; <code>--prune</code> would delete them)</summary>", ""]
        for r in plan.unmanaged:
            out.append(f"- vhost {code(r.vhost)}: {r.kind} {code(r.display_name)}")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
