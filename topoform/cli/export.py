"""``topoform export``: the files as the broker's own definitions JSON.

The output loads with ``POST /api/definitions``, ``rabbitmqctl import_definitions`` or the
``load_definitions`` setting at boot, to seed brokers and test environments from the same
files. Exclusive queues (and bindings to them) are left out, each with a note on stderr.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import TopoformError, UsageError
from .common import dump_json, load_files
from .env import Environment, ExitCode

HELP = "write the files as the broker's definitions JSON (for load_definitions at boot)"


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "export", parents=[parents["common"], parents["files"], parents["target"]], help=HELP,
        description=HELP + ". Users and permissions are not included: add them for a boot-time import.")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="export only this vhost (repeatable; default: every vhost in the files)")
    parser.add_argument("--json", action="store_true",
                        help="with -o: print a report (the file written, counts, notes) as JSON on stdout "
                             "(schemas/export-report.schema.json)")
    return parser


def run(args, env: Environment) -> int:
    from ..export import export_definitions

    as_json = bool(getattr(args, "json", False))
    if as_json and (not args.output or args.output == "-"):
        raise UsageError("export --json prints a report on stdout, so the definitions need -o FILE",
                         hint="add -o definitions.json")
    loaded = load_files(args, env)
    topology = loaded.topology
    if args.vhosts:
        unknown = sorted(set(args.vhosts) - set(topology.vhost_names()))
        if unknown:
            raise UsageError(f"--vhost: not in the files: {', '.join(repr(v) for v in unknown)}")
    result = export_definitions(topology, args.vhosts)
    if result.problems:
        more = len(result.problems) - 1
        raise TopoformError(result.problems[0] + (f" (and {more} more)" if more else ""), code="export-unsupported",
                            hint="topoform apply declares such arguments over AMQP, where null is allowed")
    if loaded.config:  # users, permissions, limits, ... (topoform/config/export.py); secrets read now
        from ..config.export import add_definitions
        from ..config.load import resolve as resolve_secrets

        names = sorted(set(args.vhosts) if args.vhosts else set(topology.vhost_names()))
        result.notes.extend(add_definitions(result.definitions, resolve_secrets(loaded.config, env.environ), names))
    for note in result.notes:
        env.err(f"note: {note}")
    text = dump_json(result.definitions) + "\n"
    if not args.output or args.output == "-":
        env.stdout.write(text)
        return ExitCode.OK
    path = Path(env.cwd, args.output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TopoformError(f"cannot write {args.output}: {exc.strerror or exc}", code="output") from None
    d = result.definitions
    env.err(f"wrote {args.output}: {_count(len(d['vhosts']), 'vhost')}, {_count(len(d['exchanges']), 'exchange')}, "
            f"{_count(len(d['queues']), 'queue')}, {_count(len(d['bindings']), 'binding')}, "
            f"{_count(len(d['policies']), 'policy', 'policies')}")
    if as_json:
        from ..broker.settings import redact

        env.out(dump_json({"format_version": 1, "output": args.output,
                           "counts": {k: len(v) for k, v in sorted(d.items()) if isinstance(v, list)},
                           "notes": [redact(n) for n in result.notes]}))
    return ExitCode.OK


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"
