"""``topoform upgrade-check --to X.Y``: what would break or behave differently on another RabbitMQ version.

Reads the live broker (every vhost the user may read, managed by topoform or not;
``--vhost`` narrows) or, offline, a definitions export (``--state FILE``), plus the
topology files when ``-f`` is given, and ``GET /api/deprecated-features/used`` where the
broker has it (4.0+; 3.10 answers 404). The findings come from :mod:`topoform.upgrade`.

Exit codes: 0 nothing breaks (warnings are printed), 3 something would break, 1 error.
"""
from __future__ import annotations

import os
import textwrap

from ..errors import BrokerError, InputError, UsageError
from .common import broker_settings, dump_json
from .env import Environment, ExitCode

HELP = "list what would break or behave differently on another RabbitMQ version"
WIDTH = 100


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "upgrade-check", parents=[parents["common"], parents["files"], parents["broker"]], help=HELP,
        description=HELP + ": removed features in use (classic mirrored queue policies), arguments and keys the "
                           "target refuses, deprecated features, routing that would change, exchange types the "
                           "target lacks; each with the remedy and the plan it would take. Reads the live broker "
                           "(or --state FILE) and, with -f, the topology files. Exit 0 nothing breaks (warnings "
                           "printed), 3 something would break, 1 error.")
    parser.add_argument("--to", required=True, metavar="X.Y", help="the target RabbitMQ version (3.10 to 4.3)")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="only this vhost (repeatable; default: every vhost the user may read)")
    parser.add_argument("--state", metavar="FILE",
                        help="check a definitions export (GET /api/definitions or rabbitmqctl export_definitions) "
                             "instead of the live broker; its rabbitmq_version/rabbit_version is the current version")
    parser.add_argument("--json", action="store_true", help="print the report as JSON "
                                                            "(schemas/upgrade-check.schema.json)")
    return parser


def _read_state(args, env: Environment, vhosts):
    from ..broker.live import read_state_file

    path = args.state if os.path.isabs(args.state) else os.path.join(env.cwd, args.state)
    if not os.path.isfile(path):
        raise UsageError(f"--state: no such file: {args.state}")
    live = read_state_file(path, vhosts)
    if live.missing_vhosts:
        raise UsageError(f"--vhost: not in the export {args.state}: {', '.join(sorted(live.missing_vhosts))}")
    return live, None


def _read_broker(args, env: Environment, vhosts):
    from ..broker.http import ManagementClient
    from ..broker.live import read_live

    settings = broker_settings(args, env)
    client = ManagementClient(settings)
    try:
        live = read_live(client, vhosts)
        if live.missing_vhosts:
            from ..apply.preflight import refuse_invisible_vhosts

            refuse_invisible_vhosts(client, settings, live.missing_vhosts, "upgrade-check")
            raise UsageError(f"--vhost: no such vhost on the broker: {', '.join(sorted(live.missing_vhosts))}")
        used = _deprecated_used(client, env, live.version)
        _cluster_notes(client, env)
    finally:
        client.close()
    return live, used


def _cluster_notes(client, env: Environment) -> None:
    """On a cluster, the nodes down, alarms and quorum-critical nodes (a rolling upgrade stops
    each node in turn: one that is quorum-critical must wait). Printed on stderr, before the report."""
    from .. import cluster
    from ..broker.cluster_read import read_health

    health = read_health(client, ())
    if health is None or not health.is_cluster:
        return
    lines = cluster.health_notes(health)
    for line in lines:
        env.err(line)
    if health.critical is not None and not any(health.critical.values()):
        env.err(f"cluster: no node is quorum-critical ({len(health.critical)} checked)")


def _deprecated_used(client, env: Environment, version: str | None):
    """``GET /api/deprecated-features/used`` (4.0+), or None where the broker has no such endpoint
    (3.10.8 answers 404, or 406 to a JSON request)."""
    from ..versions import parse_version

    try:
        if version and parse_version(version, supported_only=False) < (4, 0):
            return None
    except InputError:
        pass
    try:
        rows = client.get("/api/deprecated-features/used")
    except BrokerError as exc:
        if exc.code == "broker-not-found":  # no deprecated features subsystem
            return None
        env.err(f"warning: cannot read the deprecated features in use ({exc.message}); checking the objects only")
        return None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else None


def _load_files(args, env: Environment, current: str | None, to: str, vhosts):
    """The files' topology (checked with the rules of the current version) and a key -> position lookup."""
    from ..versions import format_version, parse_version
    from .common import load_files

    now = format_version(parse_version(current, supported_only=False)) if current else None
    loaded = load_files(args, env, show_warnings=False,
                        target=lambda files_version: (now or files_version or to, "given"))
    topology = loaded.topology.in_vhosts(vhosts) if vhosts else loaded.topology

    def locate(key) -> str:
        pos = loaded.positions.get(key)
        return str(pos) if pos else ""

    return topology, locate


def run(args, env: Environment) -> int:
    from .. import upgrade
    from ..versions import format_version, parse_version

    try:
        to = format_version(parse_version(args.to))
    except InputError as exc:
        raise InputError(f"--to: {exc.message}") from None
    vhosts = sorted(set(args.vhosts)) if args.vhosts else None
    live, used = (_read_state if args.state else _read_broker)(args, env, vhosts)
    if live.version:
        try:
            parse_version(live.version, supported_only=False)
        except InputError:
            raise InputError(f"cannot read the broker's version {live.version!r}") from None
    files = locate = None
    if args.files:
        files, locate = _load_files(args, env, live.version, to, vhosts)
    report = upgrade.check(to, live=live, files=files, files_locate=locate, deprecated_used=used)
    if args.json:
        env.out(dump_json(report.to_dict()))
    else:
        env.stdout.write(render_text(report, live, args, used is not None))
    return ExitCode.BLOCKED if report.breaks else ExitCode.OK


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def render_text(report, live, args, has_deprecated: bool) -> str:
    """The report for people: one block per finding, errors first, then a summary line."""
    where = f"the definitions export {args.state}" if args.state else "the broker"
    names = ", ".join(report.vhosts) if len(report.vhosts) <= 6 else f"{len(report.vhosts)} vhosts"
    now = report.from_version or "an unknown version"
    lines = [f"upgrade-check: RabbitMQ {now} -> {report.to_version}; read from {where}"
             f"{' and the files' if args.files else ''}: vhost{'s' if len(report.vhosts) != 1 else ''} {names}"]
    if not has_deprecated and not args.state:
        lines.append("(this broker has no GET /api/deprecated-features/used: objects checked only)")
    if report.from_version is None:
        lines.append("(the current version is unknown: every behaviour change up to the target is listed)")
    for f in report.findings:
        obj = f"{f.kind} {f.name}" if f.kind != "broker" else f.name
        place = f"vhost \"{f.vhost}\" " if f.vhost else ""
        src = f" [{f.location or f.source}]" if f.source == "files" else ""
        lines.append("")
        lines.append(f"{f.severity.upper():<8}{place}{obj}{src}")
        lines.extend(_wrap(f.message, " " * 8))
        lines.extend(_wrap("remedy: " + f.remedy, " " * 8))
        if f.plan:
            lines.append(" " * 8 + "plan (on the current broker):")
            lines.extend(" " * 10 + p for p in f.plan)
    s = report.summary
    verdict = (f"something would break on RabbitMQ {report.to_version}" if report.breaks
               else f"nothing breaks on RabbitMQ {report.to_version}")
    lines.append("")
    lines.append(f"Upgrade check: {s['errors']} error{'s' if s['errors'] != 1 else ''}, {s['warnings']} "
                 f"warning{'s' if s['warnings'] != 1 else ''}: {verdict}.")
    return "\n".join(lines) + "\n"
