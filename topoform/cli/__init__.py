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
import re
import sys
import traceback
from typing import Sequence

from .. import __version__
from ..broker.settings import forget_secrets, redact
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
    "upgrade-check": "upgrade_check",
    "show": "show",
    "diff": "diff",
    "fmt": "fmt",
    "completion": "completion",
    "scan": "scan",
    "check-code": "check_code",
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting with 2 (a pipeline reads 2 as "changes").

    Its messages never echo an option's value: a misspelled ``--urll amqp://u:pw@h`` is
    reported as ``unrecognized arguments: --urll VALUE`` (values may hold passwords).
    """

    def error(self, message: str):  # type: ignore[override]
        where = f"{self.prog.split(' ', 1)[1]}: " if " " in self.prog else ""  # name the subcommand
        raise UsageError(f"{where}{_sanitize_usage(message)}", hint=f"see '{self.prog} --help'")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(namespace, "command", None)
            where = f"{command}: " if command else ""
            raise UsageError(f"{where}unrecognized arguments: {describe_extras(extras)}",
                             hint=f"see '{self.prog}{' ' + command if command else ''} --help'")
        return namespace


def describe_extras(extras: Sequence[str]) -> str:
    """Unrecognized arguments as safe text: option names only, any value shown as VALUE."""
    shown: list[str] = []
    after_option = False
    for item in extras:
        if item.startswith("-") and len(item) > 1:
            name, eq, _ = item.partition("=")
            shown.append(f"{name}=VALUE" if eq else name)
            after_option = not eq
        elif after_option or _secret_like(item):
            shown.append("VALUE")
            after_option = False
        else:
            shown.append(item)
    return " ".join(shown)


_AMBIGUOUS = re.compile(r"ambiguous option: (?P<opt>-[^=\s]*)=.*? could match (?P<matches>.*)$", re.S)
_OPTION_VALUE = re.compile(r"(?P<opt>(?<![\w-])--?[A-Za-z][\w-]*)=\S*")


def _sanitize_usage(message: str) -> str:
    """argparse's message without any option value it may quote, and with URLs redacted."""
    m = _AMBIGUOUS.match(message)
    if m:
        message = f"ambiguous option: {m.group('opt')}=VALUE could match {m.group('matches')}"
    message = _OPTION_VALUE.sub(lambda mm: f"{mm.group('opt')}=VALUE", message)
    message = _INVALID_CHOICE.sub(lambda mm: "invalid choice: VALUE (" if _secret_like(mm.group(1)) else mm.group(0),
                                  message)
    return redact(message)


_INVALID_CHOICE = re.compile(r"invalid choice: '(.*?)' \(", re.S)


def _secret_like(value: str) -> bool:
    """A word that may be (part of) a URL with credentials, or a password typed where a command was expected."""
    return any(c in value for c in "@:/%#?& '\"\\") or not value.isascii()


def _parents() -> dict[str, argparse.ArgumentParser]:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on internal errors")
    files = _Parser(add_help=False)
    files.add_argument("-f", "--file", dest="files", action="append", metavar="PATH",
                       help="topology file or directory (repeatable; default: $TOPOFORM_FILE, else ./topoform.yaml)")
    # variables and environments (topoform/variables.py): every command that reads files takes them
    files.add_argument("--env", dest="envs", action="append", metavar="NAME",
                       help="environment: read variable values from environments/NAME.yaml next to the first file "
                            "(env TOPOFORM_ENV; validate takes it repeatedly)")
    files.add_argument("--var", dest="vars", action="append", metavar="NAME=VALUE",
                       help="set a variable (the value is read as YAML: 3 is an integer, '\"3\"' a string; repeatable; "
                            "beats the environment and --var-file)")
    files.add_argument("--var-file", dest="var_files", action="append", metavar="FILE",
                       help="read variable values from FILE ('variables: {NAME: VALUE}'; repeatable; beats the "
                            "environment)")
    broker = _Parser(add_help=False)
    broker.add_argument("--url", help="AMQP URL (env TOPOFORM_URL; default amqp://guest:guest@localhost:5672/)")
    broker.add_argument("--management-url", help="management API URL (env TOPOFORM_MANAGEMENT_URL; "
                                                  "default: the AMQP host and credentials on port 15672, https/15671 for amqps)")
    broker.add_argument("--username", metavar="USER",
                        help="user for AMQP and the management API (env TOPOFORM_USERNAME; beats the URLs' user)")
    broker.add_argument("--password-file", metavar="FILE",
                        help="read the password from FILE, one trailing newline ignored (env TOPOFORM_PASSWORD_FILE, "
                             "or the password itself in TOPOFORM_PASSWORD; beats the URLs' password)")
    broker.add_argument("--ca-cert", metavar="FILE", help="CA bundle for TLS verification (env TOPOFORM_CA_CERT)")
    broker.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="network timeout for broker requests (default 30)")
    target = _Parser(add_help=False)  # offline commands: whose rules the files are checked against
    target.add_argument("--rabbitmq-version", "--broker-version", dest="rabbitmq_version", metavar="X.Y",
                        help="target RabbitMQ version, 3.10 to 4.3 (env TOPOFORM_RABBITMQ_VERSION, else the files' "
                             "rabbitmq_version, else the newest, 4.3): validation and routing follow its rules")
    return {"common": common, "files": files, "broker": broker, "target": target}


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
    forget_secrets()  # BrokerSettings registers this run's passwords; redact() hides them anywhere
    try:
        return _main(argv, env, debug)
    finally:
        forget_secrets()


def _main(argv: list[str], env: Environment, debug: bool) -> int:
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
        if debug and not isinstance(exc, UsageError):  # a usage error is the user's, never a traceback
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
