"""``topoform import``: the live broker (or a definitions export) as topology YAML.

Reads the managed-object view the planner reads (``broker.live``), so that importing and
then planning against the same broker reports no changes. Writes one file (stdout or
``-o FILE``) or, with ``-o DIR``, one file per vhost.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import TopoformError, UsageError
from .common import broker_settings
from .env import Environment, ExitCode

HELP = "write topology YAML from the live broker (or a definitions export)"


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "import", parents=[parents["common"], parents["broker"]], help=HELP,
        description=HELP + ". Objects topoform never manages (the default exchange, amq.* exchanges, "
                           "exclusive and server-named amq.gen-* queues) are left out; a comment at the top "
                           "counts them.")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="vhost to import (repeatable; default: every vhost)")
    parser.add_argument("-o", "--output", metavar="FILE|DIR",
                        help="write to FILE (default: stdout); an existing directory, or a path ending "
                             "in '/', gets one file per vhost")
    parser.add_argument("--state", metavar="FILE",
                        help="read a definitions export (GET /api/definitions or rabbitmqctl "
                             "export_definitions) instead of the live broker")
    return parser


def _read(args, env: Environment):
    """The live state and a one-line description of where it came from (no credentials)."""
    from ..broker import live as live_mod

    vhosts = sorted(set(args.vhosts)) if args.vhosts else None
    if args.state:
        path = Path(env.cwd, args.state)
        if not path.is_file():
            raise UsageError(f"--state: no such file: {args.state}")
        state = live_mod.read_state_file(str(path), vhosts)
        return state, f"the definitions export {args.state}"
    from ..broker.http import ManagementClient

    settings = broker_settings(args, env)
    client = ManagementClient(settings)
    try:
        state = live_mod.read_live(client, vhosts)
    finally:
        close = getattr(client, "close", None)
        if close:
            close()
    return state, f"the broker at {settings.http_base_clean}"


def _header(source: str, vhosts, skipped) -> list[str]:
    from ..dump import skipped_comment

    scope = _count(len(vhosts), "vhost").split(" ", 1)[1] + " " + ", ".join(repr(v) for v in vhosts) \
        if vhosts else "every vhost"
    return [f"Imported by `topoform import` from {source} ({scope}).",
            *skipped_comment(dict(skipped or {}))]


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise TopoformError(f"cannot write {path}: {exc.strerror or exc}", code="output") from None


def run(args, env: Environment) -> int:
    from ..dump import dump_topology, vhost_filename

    state, source = _read(args, env)
    missing = sorted(getattr(state, "missing_vhosts", ()) or ())
    if missing:
        names = ", ".join(repr(v) for v in missing)
        raise TopoformError(f"vhost{'s' if len(missing) != 1 else ''} not found: {names}", code="vhost-not-found",
                            hint="list the broker's vhosts with rabbitmqctl list_vhosts")
    topology = state.topology
    vhosts = sorted(set(args.vhosts)) if args.vhosts else topology.vhost_names()
    header = _header(source, args.vhosts and sorted(set(args.vhosts)), getattr(state, "skipped", {}))

    output = args.output
    if not output or output == "-":
        env.stdout.write(dump_topology(topology, header=header, vhosts=vhosts))
        return ExitCode.OK
    target = Path(env.cwd, output)
    if target.is_dir() or output.endswith(("/", os.sep)):
        taken: set[str] = set()
        for name in vhosts:
            filename = vhost_filename(name, taken)
            _write(target / filename, dump_topology(topology, header=header, vhosts=[name]))
            env.err(f"wrote vhost {name!r} to {Path(output) / filename}")
        return ExitCode.OK
    _write(target, dump_topology(topology, header=header, vhosts=vhosts))
    counts = topology.counts()
    env.err(f"wrote {output}: {_count(len(vhosts), 'vhost')}, {_count(counts['exchange'], 'exchange')}, "
            f"{_count(counts['queue'], 'queue')}, {_count(counts['binding'], 'binding')}, "
            f"{_count(counts['policy'], 'policy', 'policies')}")
    return ExitCode.OK
