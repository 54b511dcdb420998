"""``topoform show PLANFILE [--format text|json|markdown] [--summary]``: render a saved plan.

Offline: reads the file ``plan --out`` wrote and prints it as ``plan`` would have. A file
that is not such a plan is one line and exit 1. Exit 0 otherwise (whatever the plan
holds: showing a blocked plan is not a failure).
"""
from __future__ import annotations

import json
import os

from ..errors import InputError
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
    from ..planner.plan import FORMAT_VERSION, Plan

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
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{path}: {NOT_A_PLAN} (it is not JSON)") from None
    if not isinstance(data, dict) or not isinstance(data.get("changes"), list) or "fingerprint" not in data:
        what = " (it looks like a definitions export)" if isinstance(data, dict) and "queues" in data else ""
        raise InputError(f"{path}: {NOT_A_PLAN}{what}")
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: plan format_version {data.get('format_version')!r} is not supported "
                         f"(this topoform reads {FORMAT_VERSION})")
    try:
        return Plan.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: {NOT_A_PLAN} (malformed: {type(exc).__name__})") from None


def run(args, env: Environment) -> int:
    from .plan_output import output_format

    output_format(args)
    plan = read_plan_file(args.planfile, env.cwd)
    print_plan(plan, args, env)
    return ExitCode.OK
