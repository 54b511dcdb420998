"""``topoform validate``: load the files, report every finding, exit 0 (valid) or 1 (invalid).

Findings go to stderr as ``PATH:LINE:COL: message`` (warnings as ``... warning: ...``),
all of them, sorted by position; a one-line summary goes to stdout. ``--json`` prints
the findings and counts as JSON on stdout instead.
"""
from __future__ import annotations

from ..load import discover_files, load_topology
import json

from ..errors import InputError
from .common import dump_json, target_resolver, variable_inputs
from .env import Environment, ExitCode

_WORDS = (("file", "files"), ("vhost", "vhosts"), ("exchange", "exchanges"), ("queue", "queues"),
          ("binding", "bindings"), ("policy", "policies"), ("test", "tests"))


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "validate", parents=[parents["common"], parents["files"], parents["target"]],
        help="check topology files: YAML, schema, references, declarations the broker would refuse",
        description="Load the topology files and report every problem as PATH:LINE:COL: message, with the "
                    "rules of the target RabbitMQ version (what it refuses is an error, what it deprecates a "
                    "warning). Exit 0 when valid (warnings do not fail), 1 when invalid.")
    parser.add_argument("--json", action="store_true", help="print findings and counts as JSON on stdout")
    parser.add_argument("--all-envs", action="store_true",
                        help="validate once per environment found in environments/*.yaml next to the first file")
    return parser


def summary_counts(result) -> dict[str, int]:
    counts = result.topology.counts()
    return {"file": len(result.files), **counts, "test": len(result.topology.tests)}


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[one]} {one if counts[one] == 1 else many}" for one, many in _WORDS)


def run(args, env: Environment) -> int:
    target = target_resolver(args, env)
    paths = discover_files(args.files or [], env.environ, env.cwd)
    envs = _environments(args, env, paths)
    if envs is None:
        return _validate(args, env, paths, target, variable_inputs(args, env))
    # one run per environment (--env repeated, or --all-envs): each reported under its name; worst exit code
    # an environment that cannot be checked at all is reported under its name too, and the next one checked
    codes, docs = [], {}
    for name in envs:
        if args.json:
            import dataclasses
            import io

            buffer = io.StringIO()
            sub = dataclasses.replace(env, stdout=buffer)
            try:
                codes.append(_validate(args, sub, paths, target, variable_inputs(args, env, name)))
                docs[name] = json.loads(buffer.getvalue())
            except InputError as exc:
                codes.append(ExitCode.ERROR)
                docs[name] = _failed_report(exc, paths)
        else:
            env.err(f"== environment {name}")
            try:
                codes.append(_validate(args, env, paths, target, variable_inputs(args, env, name), label=name))
            except InputError as exc:
                codes.append(ExitCode.ERROR)
                for finding in exc.findings:
                    env.err(finding.format())
                env.err(f"topoform: error: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else ""))
    if args.json:
        env.out(dump_json({"format_version": 1, "valid": all(c == ExitCode.OK for c in codes), "environments": docs}))
    return max(codes) if codes else ExitCode.OK


def _failed_report(exc: InputError, paths) -> dict:
    """The --json report of an environment whose check stopped with ``exc`` (validate.schema.json's report)."""
    from ..errors import Finding
    from ..versions import DEFAULT

    findings = list(exc.findings) or [Finding(exc.code, exc.message, hint=exc.hint)]
    zero = {one: 0 for one, _many in _WORDS}
    return {"format_version": 1, "valid": False, "rabbitmq_version": DEFAULT, "rabbitmq_version_source": "default",
            "files": [str(p) for p in paths], "counts": zero | {"file": len(paths)},
            "findings": [f.as_json() for f in findings]}


def _environments(args, env: Environment, paths) -> list[str] | None:
    """The environments to check one by one, or None for a single run (one --env, TOPOFORM_ENV or none)."""
    from ..errors import UsageError
    from ..variables import list_environments

    given = list(getattr(args, "envs", None) or [])
    if args.all_envs:
        if given:
            raise UsageError("--all-envs checks every environment; do not pass --env as well")
        found = list_environments(paths[0] if paths else None)
        if not found:
            raise UsageError("--all-envs: no environments/*.yaml next to the first file")
        return found
    return given if len(given) > 1 else None


def _validate(args, env: Environment, paths, target, variables, label: str | None = None) -> int:
    result = load_topology(paths, target=target, variables=variables)
    counts = summary_counts(result)
    if args.json:
        env.out(dump_json({
            "format_version": 1,
            "valid": result.ok,
            "rabbitmq_version": result.rabbitmq_version,
            "rabbitmq_version_source": result.version_source,
            "files": list(result.files),
            "counts": counts,
            "findings": [f.as_json() for f in result.findings],
        }))
        return ExitCode.OK if result.ok else ExitCode.ERROR
    for finding in result.findings:
        env.err(finding.format())
    if result.errors:
        n, w = len(result.errors), len(result.warnings)
        env.err(f"invalid: {n} error{'' if n == 1 else 's'}"
                + (f", {w} warning{'' if w == 1 else 's'}" if w else "")
                + f" in {len(result.files)} file{'' if len(result.files) == 1 else 's'}")
        return ExitCode.ERROR
    where = f", environment {label}" if label else (f", environment {result.environment}" if result.environment else "")
    env.out(f"valid: {_summary(counts)} (rules of RabbitMQ {result.rabbitmq_version}{where})")
    return ExitCode.OK
