"""``topoform import``: the live broker (or a definitions export) as topology YAML.

Reads the managed-object view the planner reads (``broker.live``), so that importing and
then planning against the same broker reports no changes. Writes one file (stdout or
``-o FILE``) or, with ``-o DIR``, one file per vhost.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import TopoformError, UsageError
from .common import broker_settings, dump_json
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
    parser.add_argument("--force", action="store_true",
                        help="overwrite output files whose content differs (hand edits are lost)")
    parser.add_argument("--state", metavar="FILE",
                        help="read a definitions export (GET /api/definitions or rabbitmqctl "
                             "export_definitions) instead of the live broker")
    parser.add_argument("--config", action="store_true",
                        help="also import users (without passwords), permissions, topic permissions, limits, "
                             "operator policies, federation upstreams, shovels and super streams")
    parser.add_argument("--json", action="store_true",
                        help="with -o: print a report of the files written and left unchanged and of the objects "
                             "skipped, with counts, as JSON on stdout (schemas/import-report.schema.json)")
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
        if state.missing_vhosts:  # missing, or only invisible to a user without permission on it?
            from ..apply.preflight import refuse_invisible_vhosts

            refuse_invisible_vhosts(client, settings, state.missing_vhosts, "import")
    finally:
        close = getattr(client, "close", None)
        if close:
            close()
    return state, f"the broker at {settings.http_base_clean}"


def _header(source: str, vhosts, state) -> list[str]:
    from ..dump import not_managed_comment, skipped_comment

    scope = _count(len(vhosts), "vhost").split(" ", 1)[1] + " " + ", ".join(repr(v) for v in vhosts) \
        if vhosts else "every vhost"
    lines = [f"Imported by `topoform import` from {source} ({scope}).",
             *skipped_comment(dict(getattr(state, "skipped", {}) or {}))]
    lines += not_managed_comment(dict(getattr(state, "not_managed", {}) or {}))
    lines += [f"Note: {note}." for note in getattr(state, "notes", ()) or ()]
    return lines


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _describe(topology, vhosts) -> str:
    counts = topology.in_vhosts(vhosts).counts() if hasattr(topology, "in_vhosts") else topology.counts()
    return (f"{_count(len(vhosts), 'vhost')}, {_count(counts['exchange'], 'exchange')}, "
            f"{_count(counts['queue'], 'queue')}, {_count(counts['binding'], 'binding')}, "
            f"{_count(counts['policy'], 'policy', 'policies')}")


def _plan_writes(writes: list[tuple[Path, str, str]], force: bool) -> tuple[list, list, list]:
    """(files to write, files already identical, files that differ and would be overwritten)."""
    todo, same, differ = [], [], []
    for path, shown, text in writes:
        if path.is_dir():
            raise TopoformError(f"cannot write {shown}: it is a directory", code="output")
        if path.exists():
            try:
                old = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                old = None
            if old == text:
                same.append(shown)
                continue
            differ.append(shown)
            if not force:
                continue
        todo.append((path, shown, text))
    return todo, same, differ


def _missing_dirs(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        parent = path.parent
        chain = []
        while not parent.exists():
            chain.append(parent)
            if parent.parent == parent:
                break
            parent = parent.parent
        for d in reversed(chain):
            if d not in out:
                out.append(d)
    return out


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise TopoformError(f"cannot write {path}: {exc.strerror or exc}", code="output") from None


def run(args, env: Environment) -> int:
    from ..broker.live import as_declared as live_as_declared
    from ..dump import dump_topology, vhost_filename

    as_json = bool(getattr(args, "json", False))
    if as_json and (not args.output or args.output == "-"):
        raise UsageError("import --json prints a report on stdout, so the topology needs -o FILE or -o DIR",
                         hint="add -o topology.yaml (or -o DIR/ for one file per vhost)")
    state, source = _read(args, env)
    missing = sorted(getattr(state, "missing_vhosts", ()) or ())
    if missing:
        names = ", ".join(repr(v) for v in missing)
        raise TopoformError(f"vhost{'s' if len(missing) != 1 else ''} not found: {names}", code="vhost-not-found",
                            hint="list the broker's vhosts with rabbitmqctl list_vhosts")
    for note in getattr(state, "notes", ()) or ():
        env.err(f"note: {note}")
    topology = live_as_declared(state)  # without the x-queue-type the broker added itself
    vhosts = sorted(set(args.vhosts)) if args.vhosts else topology.vhost_names()
    if not vhosts:
        not_managed = dict(getattr(state, "not_managed", {}) or {})
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(not_managed.items()))
        env.err(f"nothing to import from {source}: it holds no vhost, exchange, queue, binding or policy"
                + (f" (not imported, topoform does not manage them: {detail})" if detail else "")
                + "; nothing was written")
        if as_json:
            env.out(dump_json(_report(source, state, vhosts, topology, [], set(), [])))
        return ExitCode.OK
    header = _header(source, args.vhosts and sorted(set(args.vhosts)), state)
    config = None
    if getattr(args, "config", False):  # users, permissions, limits, ... (topoform/config/)
        from ..config.dump import secret_variables
        from ..config.hook import import_view

        topology, config = import_view(topology, getattr(state, "config", None), vhosts)
        for variable, what in secret_variables(config, vhosts):
            env.err(f"note: set {variable} to the {what} (import never writes credentials)")

    output = args.output
    if not output or output == "-":
        env.stdout.write(dump_topology(topology, header=header, vhosts=vhosts, config=config))
        return ExitCode.OK
    target = Path(env.cwd, output)
    writes: list[tuple[Path, str, str, list]] = []
    if target.is_dir() or output.endswith(("/", os.sep)):
        taken: set[str] = set()
        for name in vhosts:
            filename = vhost_filename(name, taken)
            writes.append((target / filename, str(Path(output) / filename),
                           dump_topology(topology, header=header, vhosts=[name], config=config), [name]))
    else:
        writes.append((target, output, dump_topology(topology, header=header, vhosts=vhosts, config=config), vhosts))
    todo, same, differ = _plan_writes([(p, shown, text) for p, shown, text, _ in writes], args.force)
    if differ and not args.force:
        n = len(differ)
        raise TopoformError(f"refusing to overwrite {n} file{'s' if n != 1 else ''} whose content differs from "
                            f"this import: {', '.join(differ)}; nothing was written", code="output-exists",
                            hint="review your edits, then run again with --force to replace them")
    created = _missing_dirs([p for p, _, _ in todo])
    for d in created:
        env.err(f"created directory {os.path.relpath(d, env.cwd) if not os.path.isabs(output) else d}")
    written = {shown for _, shown, _ in todo}
    for path, shown, text in todo:
        _write(path, text)
    for path, shown, text, names in writes:
        what = _describe(topology, names)
        if shown in written:
            verb = "overwrote" if shown in differ else "wrote"
            env.err(f"{verb} {shown}: {what}")
        else:
            env.err(f"unchanged {shown}: {what} (same content)")
    if as_json:
        env.out(dump_json(_report(source, state, vhosts, topology, [(shown, names) for _, shown, _, names in writes],
                                  written, differ)))
    return ExitCode.OK


def _report(source: str, state, vhosts, topology, files, written, differ) -> dict:
    """The ``import --json`` document (schemas/import-report.schema.json)."""
    from ..broker.settings import redact

    def counts(names) -> dict:
        c = topology.in_vhosts(names).counts() if hasattr(topology, "in_vhosts") else topology.counts()
        return {k: c.get(k, 0) for k in ("exchange", "queue", "binding", "policy")} | {"vhost": len(names)}

    entries = [{"path": shown, "status": ("overwritten" if shown in differ else "written") if shown in written
                else "unchanged", "vhosts": list(names), "counts": counts(names)} for shown, names in files]
    return {
        "format_version": 1,
        "source": redact(source),
        "vhosts": list(vhosts),
        "files": entries,
        "counts": counts(list(vhosts)),
        "written": sum(1 for e in entries if e["status"] != "unchanged"),
        "unchanged": sum(1 for e in entries if e["status"] == "unchanged"),
        "skipped": {k: v for k, v in sorted(dict(getattr(state, "skipped", {}) or {}).items()) if v},
        "not_managed": {k: v for k, v in sorted(dict(getattr(state, "not_managed", {}) or {}).items()) if v},
        "notes": [redact(n) for n in getattr(state, "notes", ()) or ()],
    }
