"""How a plan is printed by ``plan``, ``show`` and ``diff``: ``--format text|json|markdown``, ``--summary``.

``--json`` is ``--format json`` (kept for scripts). ``--summary`` prints only the counts
per vhost and kind plus every blocked change (text, Markdown or JSON).
"""
from __future__ import annotations

from ..errors import UsageError
from .common import dump_json
from .env import Environment

FORMATS = ("text", "json", "markdown")


def add_format_arguments(parser, *, summary: bool = True, json_flag: bool = False) -> None:
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="text (default), json (the document --out saves) or markdown (for a pull-request "
                             "comment or a CI job summary)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="same as --format json")
    if summary:
        parser.add_argument("--summary", action="store_true",
                            help="print only the counts per vhost and kind, and every blocked change")


def output_format(args) -> str:
    """The chosen format; ``--json`` with another ``--format`` is a usage error."""
    fmt = getattr(args, "format", None)
    if getattr(args, "json", False):
        if fmt not in (None, "json"):
            raise UsageError(f"--json contradicts --format {fmt}; pass only one")
        return "json"
    return fmt or "text"


def render_plan(plan, fmt: str, *, summary: bool = False, color: bool = False, title: str = "topoform plan",
                same: str | None = None) -> str:
    """The plan in ``fmt`` as text ending with a newline; ``same``: what an empty plan means
    (default: the broker matches the files)."""
    from ..planner.render import SAME, render_json, render_text
    from ..planner.render_markdown import render_markdown, render_summary, summary_document

    same = same or SAME
    if fmt == "json":
        return dump_json(summary_document(plan) if summary else render_json(plan)) + "\n"
    if fmt == "markdown":
        return render_markdown(plan, title=title, details=not summary, same=same)
    return render_summary(plan, same) if summary else render_text(plan, color=color, same=same)


def print_plan(plan, args, env: Environment, *, title: str = "topoform plan", same: str | None = None) -> None:
    fmt = output_format(args)
    env.stdout.write(render_plan(plan, fmt, summary=getattr(args, "summary", False),
                                 color=env.color and fmt == "text", title=title, same=same))
