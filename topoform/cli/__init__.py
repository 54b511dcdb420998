"""Command line: parse, dispatch to one module per command, map errors to exit codes.

The ``cli`` package is the only part of topoform that prints, reads environment
variables or chooses exit codes. ``main(argv, env)`` is the single boundary that turns
exceptions into one-line messages; tracebacks appear only with ``--debug``.

Each command lives in its own module exposing ``register(subparsers, parents)`` and
``run(args, env) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Sequence

from .. import __version__
from ..broker.settings import redact
from ..errors import BlockedPlanError, InputError, TopoformError, UsageError
from .env import Environment, ExitCode

__all__ = ["main", "console_main", "Environment", "ExitCode"]

# Command name -> module (topoform.cli.<module>), in the order `--help` lists them.
COMMANDS = {
    "validate": "validate",
    "test-route": "route",
    "test": "test",
    "plan": "plan",
    "apply": "apply",
    "import": "import_",
    "export": "export",
    "graph": "graph",
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting with 2 (a pipeline reads 2 as "changes")."""

    def error(self, message: str):  # type: ignore[override]
        where = f"{self.prog.split(' ', 1)[1]}: " if " " in self.prog else ""  # name the subcommand
        raise UsageError(f"{where}{message}", hint=f"see '{self.prog} --help'")


def _parents() -> dict[str, argparse.ArgumentParser]:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")
    files = _Parser(add_help=False)
    files.add_argument("-f", "--file", dest="files", action="append", metavar="PATH",
                       help="topology file or directory (repeatable; default: $TOPOFORM_FILE, else ./topoform.yaml)")
    broker = _Parser(add_help=False)
    broker.add_argument("--url", help="AMQP URL (env TOPOFORM_URL; default amqp://guest:guest@localhost:5672/)")
    broker.add_argument("--management-url", help="management API URL (env TOPOFORM_MANAGEMENT_URL; "
                                                  "default: the AMQP host and credentials on port 15672, https/15671 for amqps)")
    broker.add_argument("--ca-cert", metavar="FILE", help="CA bundle for TLS verification (env TOPOFORM_CA_CERT)")
    broker.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="network timeout for broker requests (default 30)")
    return {"common": common, "files": files, "broker": broker}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="topoform", description="Topology-as-code and migrations for RabbitMQ.")
    parser.add_argument("--version", action="version", version=f"topoform {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parents = _parents()
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:  # a command not built yet stays out of the CLI
            if exc.name == f"{__name__}.{module_name}":
                continue
            raise
        command_parser = module.register(sub, parents)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one command; returns the exit code (never raises, never calls sys.exit)."""
    env = env or Environment.from_process()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        if not getattr(args, "_run", None):
            parser.print_help(env.stdout)
            return ExitCode.ERROR
        return int(args._run(args, env))
    except InputError as exc:
        for finding in exc.findings:
            env.err(redact(finding.format()))
        env.err(f"topoform: error: {redact(exc.message)}")
        return ExitCode.ERROR
    except BlockedPlanError as exc:
        env.err(f"topoform: {redact(exc.message)}")
        return ExitCode.BLOCKED
    except TopoformError as exc:
        line = f"topoform: error: {exc.message}"
        if exc.hint:
            line += f" (hint: {exc.hint})"
        env.err(redact(line))
        if debug:
            env.err(redact(traceback.format_exc()))
        return ExitCode.ERROR
    except KeyboardInterrupt:
        env.err("topoform: interrupted")
        return 130
    except BrokenPipeError:
        return ExitCode.ERROR
    except Exception as exc:  # the one place that catches everything
        env.err(redact(f"topoform: internal error: {type(exc).__name__}: {exc}"
                       + ("" if debug else " (run with --debug for a traceback)")))
        if debug:
            env.err(redact(traceback.format_exc()))
        return ExitCode.ERROR


def console_main() -> None:
    sys.exit(main())
