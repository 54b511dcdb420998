"""``topoform scan PATH...``: the declarations in source code, statically, as a report or topology YAML.

Exit 0; 3 when two places declare the same object differently (each conflict names
both places, the field and the broker's verdict for the target version); 1 on error.
Findings (conflicts, values that cannot be resolved statically, files not scanned) go
to stderr as ``PATH:LINE: message``; the report or ``--json`` to stdout; ``-o`` writes
the topology (``FILE``, or ``DIR`` with one file per vhost).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import TopoformError, UsageError
from .common import dump_json, target_resolver
from .env import Environment, ExitCode
from ..broker.settings import redact

HELP = "find the declarations in source code (pika, aio-pika, kombu, amqplib), statically"


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "scan", parents=[parents["common"], parents["target"]], help=HELP,
        description=HELP + ", without running it; report them, or write them as topology YAML with -o. "
                           "Exit 0, 3 when two places declare the same object differently, 1 on error.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="source files or directories")
    parser.add_argument("-o", "--output", metavar="FILE|DIR",
                        help="write the topology YAML to FILE; an existing directory, or a path ending in '/', "
                             "gets one file per vhost")
    parser.add_argument("--vhost", default="/", metavar="V",
                        help="the vhost the code connects to (it is in the connection URL, not the code; default /)")
    parser.add_argument("--force", action="store_true", help="overwrite an output file whose content differs")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    return parser


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _describe(decl) -> str:
    f = decl.fields

    def show(value):
        from ..scan.model import ServerNamed

        if isinstance(value, ServerNamed):
            return f"(server-named: {value.ref})"
        return repr(value)

    if decl.kind in ("exchange", "queue"):
        name = show(f["name"]) if "name" in f else "(unresolved name)"
        bits = []
        if decl.kind == "exchange" and "type" in f:
            bits.append(str(f["type"]))
        bits += [k for k in ("durable", "exclusive", "auto_delete", "internal") if f.get(k) is True]
        if f.get("arguments"):
            bits.append(", ".join(f"{k}={v!r}" for k, v in sorted(f["arguments"].items())))
        if decl.passive:
            bits = []  # a passive declare only checks the name: the broker ignores type, flags and arguments
        text = f"{'passive ' if decl.passive else ''}{decl.kind} {name}" + (f" ({'; '.join(bits)})" if bits else "")
    elif decl.kind == "binding":
        text = (f"binding {show(f.get('source', '?'))} -> {f.get('destination_type', 'queue')} "
                f"{show(f.get('destination', '?'))} [{show(f.get('routing_key', '?'))}]")
    elif decl.kind == "publish":
        text = f"publish to {show(f.get('exchange', '?'))} [{show(f.get('routing_key', '?'))}]"
    else:
        text = f"consume from {show(f.get('queue', '?'))}"
    if decl.unresolved:
        text += "; unresolved: " + ", ".join(sorted(decl.unresolved))
    via = f", called at {', '.join(decl.place.calls())}" if decl.place.via else ""
    return f"{decl.place}: {text}  [{decl.library} {decl.call}{via}]"


def run(args, env: Environment) -> int:
    try:
        return _run(args, env)
    except TopoformError as exc:
        if not args.json:
            raise
        env.out(redact(dump_json({"format_version": 1, "error": {"code": exc.code, "message": exc.message,
                                                          "hint": exc.hint or None}})))
        return ExitCode.ERROR


def _run(args, env: Environment) -> int:
    from ..scan import scan_paths
    from ..scan.emit import render

    version, source = target_resolver(args, env)(None)
    result = scan_paths(args.paths, cwd=env.cwd, vhost=args.vhost, version=version, version_source=source)
    if not result.files and not result.skipped:
        from ..scan import source_extensions

        looked = ", ".join(f"*{ext}" for ext in source_extensions())
        raise UsageError(f"no source files found (looked for {looked})",
                         hint="give the service's source folder")
    written: list[str] = []
    if args.output:
        header = [f"Found by `topoform scan` in {_count(len(result.files), 'file')} (rules of RabbitMQ {version}).",
                  "Review before applying: names, durability and arguments are what the code declares;",
                  "route tests are what the simulator computes from the code's publishes."]
        unresolved = [i for i in result.issues if i.code == "unresolved"]
        if unresolved:
            header.append(f"{_count(len(unresolved), 'value')} could not be resolved statically (see the comments "
                          "and the scan's warnings).")
        if result.conflicts:
            header.append(f"{_count(len(result.conflicts), 'conflict')}: the first declaration of each object is "
                          "written; fix the code first.")
        text = redact(render(result.built, args.vhost, header))  # comments quote code: no credentials
        written.append(_write(args, env, text))
    summary = _summary(result)
    if args.json:
        env.out(redact(dump_json({
            "format_version": 1,
            "rabbitmq_version": version,
            "rabbitmq_version_source": source,
            "vhost": args.vhost,
            "files": [f.path for f in result.files],
            "declarations": [d.to_dict() for d in result.declarations],
            "issues": [i.to_dict() for i in result.issues],
            "conflicts": [c.to_dict() for c in result.conflicts],
            "topology": result.topology.counts() | {"test": len(result.topology.tests)},
            "output": written,
            "summary": summary,
        })))
    else:
        for issue in sorted(result.issues, key=lambda i: i.severity == "note"):  # notes last
            env.err(redact(issue.format()))
        for conflict in result.conflicts:
            env.err(redact(conflict.format()))
        if not args.output:
            for decl in result.declarations:
                env.out(redact(_describe(decl)))
        counts = result.topology.counts()
        line = (f"scanned {_count(summary['files'], 'file')}: {_count(summary['declarations'], 'declaration')}; "
                f"topology: {_count(counts['exchange'], 'exchange')}, {_count(counts['queue'], 'queue')}, "
                f"{_count(counts['binding'], 'binding')}, {_count(len(result.topology.tests), 'route test')}; "
                f"{_count(summary['unresolved'], 'unresolved value')}, {_count(summary['conflicts'], 'conflict')}")
        if written:
            line += f"; wrote {', '.join(written)}"
        env.out(line + f" (rules of RabbitMQ {version})")
    return ExitCode.BLOCKED if result.conflicts else ExitCode.OK


def _summary(result) -> dict:
    return {"files": len(result.files), "skipped": len(result.skipped), "declarations": len(result.declarations),
            "unresolved": sum(1 for i in result.issues if i.code == "unresolved"),
            "conflicts": len(result.conflicts)}


def _write(args, env: Environment, text: str) -> str:
    from ..dump import vhost_filename

    target = Path(env.cwd, args.output)
    if args.output.endswith("/") or target.is_dir():
        target = target / vhost_filename(args.vhost)
        shown = str(Path(args.output) / target.name)
    else:
        shown = args.output
    if target.is_dir():
        raise TopoformError(f"cannot write {shown}: it is a directory", code="output")
    if target.exists() and not args.force:
        try:
            same = target.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            raise TopoformError(f"{shown} exists and differs", code="output",
                                hint="use --force to overwrite it, or write elsewhere")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise TopoformError(f"cannot write {shown}: {exc.strerror or exc}", code="output") from None
    return shown
