"""``topoform show PLANFILE [--format text|json|markdown] [--summary]``: render a saved plan.

Offline: reads the file ``plan --out`` wrote and prints it as ``plan`` would have; a fleet's
plan file (``plan --targets FILE --out PLANFILE``) one section per target. A file that is
not such a plan, or that was changed after it was saved (its digest), is one line and exit 1. Exit 0 otherwise (whatever the plan
holds: showing a blocked plan is not a failure).
"""
from __future__ import annotations

import json
import os

from ..errors import InputError
from .common import dump_json
from .env import Environment, ExitCode
from .plan_output import add_format_arguments, print_plan

NOT_A_PLAN = "not a plan file saved by 'topoform plan --out'"


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "show", parents=[parents["common"]],
        help="render a plan saved by 'plan --out' (text, JSON or Markdown)",
        description="Print a plan saved by 'topoform plan --out FILE', as text, JSON or Markdown. "
                    "Offline. Exit 0, 1 when the file is not a saved plan.")
    parser.add_argument("planfile", metavar="PLANFILE", help="the file 'topoform plan --out' wrote")
    add_format_arguments(parser, json_flag=True)
    return parser


def read_plan_file(path: str, cwd: str = "."):
    """The :class:`~topoform.planner.plan.Plan` saved in ``path``; InputError (one line) when it is not one."""
    data = read_plan_document(path, cwd)
    if _is_fleet(data):
        raise InputError(f"{path} holds one plan per target of a fleet; pass the fleet file with --targets FILE")
    return plan_from_document(data, path)


def read_plan_document(path: str, cwd: str = ".") -> dict:
    """The JSON object in ``path`` (a single plan or a fleet's plans, not checked yet); InputError (one line)."""
    full = path if os.path.isabs(path) else os.path.join(cwd, path)
    try:
        with open(full, "rb") as fh:
            raw = fh.read()
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, {NOT_A_PLAN}") from None
    except OSError as exc:
        raise InputError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{path}: {NOT_A_PLAN} (it is not JSON)") from None
    if _is_fleet(data):
        return data
    if not isinstance(data, dict) or not isinstance(data.get("changes"), list) or "fingerprint" not in data:
        what = " (it looks like a definitions export)" if isinstance(data, dict) and "queues" in data else ""
        raise InputError(f"{path}: {NOT_A_PLAN}{what}")
    return data


def _is_fleet(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("targets"), dict) and "changes" not in data


def plan_from_document(data, path: str):
    """The Plan of one plan document, after the checks every reader of a saved plan makes: the format
    version, the ``digest`` (the content is what topoform wrote), the structure. InputError (one line)."""
    from ..planner.plan import FORMAT_VERSION, Plan, check_document, content_digest

    if not isinstance(data, dict) or not isinstance(data.get("changes"), list) or "fingerprint" not in data:
        raise InputError(f"{path}: {NOT_A_PLAN}")
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: plan format_version {data.get('format_version')!r} is not supported "
                         f"(this topoform reads {FORMAT_VERSION})")
    again = "make a new plan with 'topoform plan --out FILE'; a saved plan is used only as topoform wrote it"
    if not isinstance(data.get("digest"), str):
        raise InputError(f"the plan file {path} has no digest: it was not saved by this version of topoform "
                         "(or the digest was removed)", hint=again)
    try:
        digest = content_digest(data)
    except (TypeError, ValueError, RecursionError):
        digest = ""
    if digest != data["digest"]:
        raise InputError(f"the plan file {path} was changed after it was saved (its content does not match its "
                         "digest)", hint=again)
    try:
        check_document(data)
        return Plan.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
        raise InputError(f"{path}: {NOT_A_PLAN} (malformed: {detail})") from None


def read_fleet_plans(path: str, cwd: str = ".") -> dict:
    """Target name -> Plan of a fleet's plan file (``plan --targets FILE --out PLANFILE``), each checked
    as :func:`plan_from_document` checks a single plan; InputError (one line) naming the target."""
    data = read_plan_document(path, cwd)
    if not _is_fleet(data) or data.get("format_version") != 1:
        raise InputError(f"{path}: not a fleet plan (saved by 'plan --targets FILE --out PLANFILE')")
    return {str(name): plan_from_document(doc, f"{path} (target {name})") for name, doc in data["targets"].items()}


def run(args, env: Environment) -> int:
    from .plan_output import output_format

    fmt = output_format(args)
    data = read_plan_document(args.planfile, env.cwd)
    if not _is_fleet(data):
        print_plan(plan_from_document(data, args.planfile), args, env)
        return ExitCode.OK
    plans = read_fleet_plans(args.planfile, env.cwd)
    if fmt == "json":  # the fleet's document, each plan as show renders it alone
        from .plan_output import render_plan

        docs = {name: json.loads(render_plan(plan, "json", summary=getattr(args, "summary", False)))
                for name, plan in plans.items()}
        env.out(dump_json({"format_version": 1, "targets": docs}))
        return ExitCode.OK
    for i, (name, plan) in enumerate(plans.items()):  # one section per target, as 'plan --targets' prints
        if i:
            env.out("")
        if fmt != "markdown":  # Markdown: the plan's own heading names the target
            env.out(f"=== target {name} ===")
        print_plan(plan, args, env, title=f"topoform plan: target {name}")
    if not plans:
        env.out("The fleet plan holds no target's plan (every target failed when it was made).")
    return ExitCode.OK
