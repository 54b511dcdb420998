"""Command line: parse, dispatch to one module per command, map errors to exit codes.

The ``cli`` package is the only part of topoform that prints, reads environment
variables or chooses exit codes. ``main(argv, env)`` is the single boundary that turns
exceptions into one-line messages; tracebacks appear only with ``--debug``.

Each command lives in its own module exposing ``register(subparsers, parents)`` and
``run(args, env) -> int``.
"""
from __future__ import annotations

import argparse
import dataclasses
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

# The commands whose output may be coloured (the plan's + ~ - ! symbols); each gets --color.
COLOR_COMMANDS = ("plan", "apply", "show", "diff", "destroy")

# Command name -> module (topoform.cli.<module>), in the order `--help` lists them.
COMMANDS = {
    "validate": "validate",
    "test-route": "route",
    "test": "test",
    "plan": "plan",
    "apply": "apply",
    "destroy": "destroy",
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
    Abbreviated long options are not accepted (``--allow`` is not ``--allow-data-loss``).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        where = f"{self.prog.split(' ', 1)[1]}: " if " " in self.prog else ""  # name the subcommand
        raise UsageError(f"{where}{_sanitize_usage(message)}", hint=f"see '{self.prog} --help'")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(namespace, "command", None)
            where = f"{command}: " if command else ""
            hint = f"see '{self.prog}{' ' + command if command else ''} --help'"
            paths = [x for x in extras if x.lower().endswith(_FILE_SUFFIXES) and not x.startswith("-")]
            if paths and hasattr(namespace, "files"):
                # `topoform validate topo.yaml`: the files are given with -f
                hint = f"topology files are given with -f: {self.prog} {command} " + " ".join(f"-f {p}" for p in paths)
            raise UsageError(f"{where}unrecognized arguments: {describe_extras(extras)}", hint=hint)
        return namespace


_FILE_SUFFIXES = (".yaml", ".yml")


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
                       help="topology file or directory (repeatable; '-' reads standard input; default: $TOPOFORM_FILE, "
                            "several paths separated by ':', else ./topoform.yaml)")
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
    broker.add_argument("--url", action="append",
                        help="AMQP URL (env TOPOFORM_URL; default amqp://guest:guest@localhost:5672/); a cluster's "
                             "nodes: comma-separated or the flag repeated, the first that answers is used")
    broker.add_argument("--management-url", action="append",
                        help="management API URL (env TOPOFORM_MANAGEMENT_URL; default: the AMQP host and credentials "
                             "on port 15672, https/15671 for amqps); a list like --url, one per AMQP URL")
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. ``only``: the one command the command line runs (:func:`command_word`);
    the other commands then get empty placeholders, which saves importing and building them
    all (about 11 ms of every run, a twentieth of a no-change plan of 1,000 queues)."""
    parser = _Parser(prog="topoform", description="Topology-as-code and migrations for RabbitMQ.")
    parser.add_argument("--version", action="version", version=f"topoform {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parents = _parents()
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name)  # never chosen: the command line names `only`
            continue
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:  # a command not built yet stays out of the CLI
            if exc.name == f"{__name__}.{module_name}":
                continue
            raise
        command_parser = module.register(sub, parents)
        command_parser.set_defaults(_run=module.run)
        if name in COLOR_COMMANDS:
            command_parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                                        help="colour the plan's symbols: auto (default: on a terminal, unless "
                                             "NO_COLOR is set), always or never")
    return parser


def command_word(argv: Sequence[str]) -> str | None:
    """The command a command line runs when its first word names one; None otherwise (an
    option first, such as ``--help`` or ``--version``, or no command, or an unknown one):
    then the whole parser is built, for the full help and the list of choices."""
    if argv and argv[0] in COMMANDS:
        return argv[0]
    return None


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one command; returns the exit code (never raises, never calls sys.exit)."""
    env = env or Environment.from_process()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    forget_secrets()  # BrokerSettings registers this run's passwords; redact() hides them anywhere
    try:
        json_errors = wants_json(argv)
        if json_errors:  # an error document only when stdout holds no document yet
            env = dataclasses.replace(env, stdout=_TrackedStream(env.stdout))
        return _main(argv, env, debug, json_errors=json_errors)
    finally:
        forget_secrets()


def _main(argv: list[str], env: Environment, debug: bool, json_errors: bool = False) -> int:
    try:
        parser = build_parser(only=command_word(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        if not getattr(args, "_run", None):
            parser.print_help(env.stdout)
            return ExitCode.ERROR
        if getattr(args, "color", None):
            env = dataclasses.replace(env, color_mode=args.color)
        from .common import read_stdin_files

        read_stdin_files(args, env)  # -f -: the topology comes from standard input
        return int(args._run(args, env))
    except InputError as exc:
        for finding in exc.findings:
            env.err(redact(finding.format()))
        env.err(redact(f"topoform: error: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else "")))
        return _json_error(env, json_errors, exc, ExitCode.ERROR)
    except BlockedPlanError as exc:
        env.err(f"topoform: {redact(exc.message)}")
        return _json_error(env, json_errors, exc, ExitCode.BLOCKED)
    except TopoformError as exc:
        line = f"topoform: error: {exc.message}"
        hint = exc.hint or (_help_hint(argv) if isinstance(exc, UsageError) else "")
        if hint:
            line += f" (hint: {hint})"
        env.err(redact(line))
        if debug and not isinstance(exc, UsageError):  # a usage error is the user's, never a traceback
            env.err(redact(traceback.format_exc()))
        return _json_error(env, json_errors, exc, ExitCode.ERROR)
    except KeyboardInterrupt as exc:
        env.err("topoform: terminated (SIGTERM)" if isinstance(exc, Terminated) else "topoform: interrupted")
        return _json_error(env, json_errors, exc, 130)
    except BrokenPipeError:
        return ExitCode.ERROR
    except Exception as exc:  # the one place that catches everything
        env.err(redact(f"topoform: internal error: {type(exc).__name__}: {exc}"
                       + ("" if debug else " (run with --debug for a traceback)")))
        if debug:
            env.err(redact(traceback.format_exc()))
        return _json_error(env, json_errors, exc, ExitCode.ERROR)


# --------------------------------------------------------------------------- JSON error documents
# With --json (or --format json) an error is also a document on stdout (schemas/error.schema.json):
# {"format_version": 1, "error": {"code", "message", "hint", "detail"[, "findings"]}}. ``code`` is one
# of the categories below (first matching class wins); ``detail`` is the error's own kebab-case code.
def _error_codes() -> list[tuple[type, str]]:
    from ..apply.preflight import PreflightError
    from ..errors import BrokerError, LockError, StalePlanError

    return [(UsageError, "usage"), (InputError, "input"), (BlockedPlanError, "blocked"),
            (StalePlanError, "stale-plan"), (LockError, "locked"), (PreflightError, "preflight"),
            (BrokerError, "broker"), (TopoformError, "error"), (KeyboardInterrupt, "interrupted"),
            (BaseException, "internal")]


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (read before parsing: usage errors happen while parsing).

    ``--json`` or ``--format json``, before any ``--``; not when ``--format`` also names another
    format (which one was meant is unknown: that usage error stays text)."""
    formats: list[str] = []
    for i, item in enumerate(argv):
        if item == "--":
            break
        if item == "--json":
            formats.append("json")
        elif item.startswith("--format="):
            formats.append(item.split("=", 1)[1])
        elif item == "--format":
            formats.append(argv[i + 1] if i + 1 < len(argv) else "")
    return bool(formats) and all(f == "json" for f in formats)


def error_document(exc: BaseException) -> dict:
    """The JSON error document of ``exc``, secrets redacted."""
    code = next(name for cls, name in _error_codes() if isinstance(exc, cls))
    if isinstance(exc, TopoformError):
        message, hint, detail = exc.message, exc.hint or None, exc.code
    elif isinstance(exc, KeyboardInterrupt):
        message, hint, detail = "interrupted", None, "interrupted"
    else:
        message, hint, detail = f"internal error: {type(exc).__name__}: {exc}", None, "internal-error"
    error: dict = {"code": code, "message": redact(message), "hint": redact(hint) if hint else None,
                   "detail": redact(detail)}
    if isinstance(exc, InputError) and exc.findings:
        error["findings"] = [f.as_json(redact) for f in exc.findings]
    return {"format_version": 1, "error": error}


class _TrackedStream:
    """A stdout that remembers whether anything was written (everything else is delegated)."""

    def __init__(self, stream):
        self._stream = stream
        self.written = False

    def write(self, text: str) -> int:
        if text:
            self.written = True
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _json_error(env: Environment, enabled: bool, exc: BaseException, code: int) -> int:
    """Print the error document on stdout when JSON was asked for and stdout holds no document yet (a
    command that printed its document before failing, such as destroy's plan, keeps stdout one
    document; stderr has the message); return ``code`` unchanged."""
    if enabled and not getattr(env.stdout, "written", False):
        import json

        try:
            env.out(json.dumps(error_document(exc), indent=2, sort_keys=True, ensure_ascii=False))
        except (BrokenPipeError, ValueError, OSError):
            pass
    return code


def _help_hint(argv: Sequence[str]) -> str:
    """``see 'topoform CMD --help'`` for a usage error found after parsing (the subcommand's own help)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return f"see 'topoform {command} --help'" if command in COMMANDS else "see 'topoform --help'"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled pipeline job, a stopped container): handled exactly as Ctrl-C is."""


def _on_sigterm(signum, frame) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not break the clean stop
    raise Terminated()


def console_main() -> None:
    import signal

    try:  # SIGTERM stops an apply, destroy or migration as Ctrl-C does: report, lock released, exit 130
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main thread, or no such signal here
        pass
    sys.exit(main())
