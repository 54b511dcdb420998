"""``topoform check-code PATH... -f FILES``: the code's declarations and publishes agree with the files.

Meant for CI, so that code and topology files cannot drift apart silently. Exit 0 when
everything agrees, 3 with each disagreement at its file:line (and the broker's verdict
for a declare that differs), 1 on error. Values the scan cannot resolve statically are
reported as unchecked and do not fail. ``--json``: ``{"format_version": 1, "agree",
"disagreements", "unchecked", "summary", ...}``.
"""
from __future__ import annotations

from ..errors import TopoformError, UsageError
from .common import dump_json, load_files, target_resolver
from .env import Environment, ExitCode
from ..broker.settings import redact

HELP = "check that the code's declarations and publishes agree with the topology files"


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "check-code", parents=[parents["common"], parents["files"], parents["target"]], help=HELP,
        description=HELP + ": every declare would succeed on a broker holding the files' topology (and "
                           "declares nothing the files lack), every bind names objects and a binding the files "
                           "have, every publish reaches a queue (unless its line says '# topoform: "
                           "unroutable-ok'). Exit 0 agree, 3 disagree, 1 error.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="source files or directories")
    parser.add_argument("--vhost", metavar="V",
                        help="the vhost the code connects to (default: the files' only vhost, else /)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run(args, env: Environment) -> int:
    try:
        return _run(args, env)
    except TopoformError as exc:
        if not args.json:
            raise
        env.out(redact(dump_json({"format_version": 1, "error": {"code": exc.code, "message": exc.message,
                                                          "hint": exc.hint or None}})))
        return ExitCode.ERROR


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _run(args, env: Environment) -> int:
    from ..planner.normalize import _declared_default
    from ..scan import scan_paths
    from ..scan.check import check

    target_resolver(args, env)  # a bad --rabbitmq-version fails before anything is read
    loaded = load_files(args, env, show_warnings=not args.json)
    topology = loaded.topology
    names = topology.vhost_names()
    vhost = args.vhost
    if vhost is None:
        vhost = names[0] if len(names) == 1 else "/"
    if vhost not in names:
        raise UsageError(f"vhost {vhost!r} is not in the files (they define: {', '.join(map(repr, names)) or 'none'})",
                         hint="name the vhost the code connects to with --vhost")
    version = loaded.rabbitmq_version
    result = scan_paths(args.paths, cwd=env.cwd, vhost=vhost, version=version, version_source=loaded.version_source)
    if not result.files and not result.skipped:
        raise UsageError("no source files found (looked for *.py, *.js, *.mjs, *.cjs, *.ts, *.tsx)")
    v = topology.vhosts.get(("vhost", vhost))
    dqt = _declared_default(v) if v is not None else None
    outcome = check(result.declarations, topology, vhost, version, default_queue_type=dqt)
    summary = {"files": len(result.files), "skipped": len(result.skipped), "declarations": len(result.declarations),
               "agree": outcome.agreed, "disagree": len(outcome.disagreements), "unchecked": len(outcome.unchecked)}
    if args.json:
        env.out(redact(dump_json({
            "format_version": 1,
            "agree": outcome.ok,
            "vhost": vhost,
            "rabbitmq_version": version,
            "files": [f.path for f in result.files],
            "disagreements": [d.to_dict() for d in outcome.disagreements],
            "unchecked": [u.to_dict() for u in outcome.unchecked],
            "skipped": [i.to_dict() for i in result.skipped],
            "summary": summary,
        })))
        return ExitCode.OK if outcome.ok else ExitCode.BLOCKED
    for issue in result.skipped:
        env.err(redact(issue.format()))
    for u in outcome.unchecked:
        env.err(redact(f"{u.place}: warning: {u.message}"))
    for d in outcome.disagreements:
        env.out(redact(d.format()))
    verdict = "agree" if outcome.ok else "disagree"
    env.out(f"check-code: code and files {verdict}: {_count(summary['declarations'], 'declaration')} in "
            f"{_count(summary['files'], 'file')}, {summary['agree']} agree, "
            f"{_count(summary['disagree'], 'disagreement')}"
            f", {summary['unchecked']} unchecked (vhost {vhost!r}, rules of RabbitMQ {version})")
    return ExitCode.OK if outcome.ok else ExitCode.BLOCKED
