"""``topoform validate``: load the files, report every finding, exit 0 (valid) or 1 (invalid).

Findings go to stderr as ``PATH:LINE:COL: message`` (warnings as ``... warning: ...``),
all of them, sorted by position; a one-line summary goes to stdout. ``--json`` prints
the findings and counts as JSON on stdout instead.
"""
from __future__ import annotations

from ..load import discover_files, load_topology
from .common import dump_json, target_resolver
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
    return parser


def summary_counts(result) -> dict[str, int]:
    counts = result.topology.counts()
    return {"file": len(result.files), **counts, "test": len(result.topology.tests)}


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[one]} {one if counts[one] == 1 else many}" for one, many in _WORDS)


def run(args, env: Environment) -> int:
    target = target_resolver(args, env)
    paths = discover_files(args.files or [], env.environ, env.cwd)
    result = load_topology(paths, target=target)
    counts = summary_counts(result)
    if args.json:
        env.out(dump_json({
            "valid": result.ok,
            "rabbitmq_version": result.rabbitmq_version,
            "rabbitmq_version_source": result.version_source,
            "files": list(result.files),
            "counts": counts,
            "findings": [{"code": f.code, "severity": f.severity, "message": f.message,
                          "path": f.position.path if f.position else None,
                          "line": f.position.line if f.position else None,
                          "col": f.position.col if f.position else None} for f in result.findings],
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
    env.out(f"valid: {_summary(counts)} (rules of RabbitMQ {result.rabbitmq_version})")
    return ExitCode.OK
