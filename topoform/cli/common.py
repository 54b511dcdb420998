"""Helpers shared by the command modules: files, loading, broker settings, JSON output."""
from __future__ import annotations

import json
import os
from typing import Any

from ..broker.settings import DEFAULT_URL, BrokerSettings, split_urls
from ..errors import BrokerError, InputError, UsageError
from .env import Environment


def target_resolver(args, env: Environment, state_version: str | None = None):
    """The offline target version, for ``load_topology(target=...)`` (SPEC section 6).

    ``--rabbitmq-version``, else ``TOPOFORM_RABBITMQ_VERSION``, else the files'
    ``rabbitmq_version``, else ``state_version`` (an export's own version field, for
    ``plan --state``), else the newest supported version. A bad flag or variable is
    reported before any file is read (InputError, exit 1).
    """
    from ..versions import resolve_target

    flag = getattr(args, "rabbitmq_version", None)
    resolve_target(flag, env.environ, None, None)  # fail fast on a bad flag or variable
    return lambda files_version: resolve_target(flag, env.environ, files_version, state_version)


def state_target(args, env: Environment):
    """Like :func:`target_resolver`, for ``plan --state FILE``: before the default comes the
    export's own ``rabbitmq_version`` / ``rabbit_version``, read only when needed."""
    from ..versions import resolve_target

    flag = getattr(args, "rabbitmq_version", None)
    resolve_target(flag, env.environ, None, None)  # fail fast on a bad flag or variable
    path = args.state if os.path.isabs(args.state) else os.path.join(env.cwd, args.state)

    def resolve(files_version):
        state_version = None
        if not (flag or env.environ.get("TOPOFORM_RABBITMQ_VERSION") or files_version):
            state_version = _export_version(path)
        return resolve_target(flag, env.environ, files_version, state_version)

    return resolve


def live_target(args, env: Environment, broker_version):
    """The target version against a live broker: the broker's own (SPEC section 6).

    ``broker_version`` is a callable returning the broker's version text (``GET
    /api/overview``) or None when it could not be read (then the offline order applies).
    A different version named by ``--rabbitmq-version``, ``TOPOFORM_RABBITMQ_VERSION`` or
    the files is a warning; a broker outside the supported range gets the rules of the
    nearest supported version, with a warning.
    """
    from ..versions import SUPPORTED, format_version, parse_version, resolve_target

    flag = getattr(args, "rabbitmq_version", None)
    resolve_target(flag, env.environ, None, None)  # fail fast on a bad flag or variable

    def resolve(files_version):
        reported = broker_version()
        if not reported:
            return resolve_target(flag, env.environ, files_version, None)
        try:
            version = format_version(parse_version(reported))
        except InputError:
            try:
                exact = parse_version(reported, supported_only=False)
            except InputError:
                return resolve_target(flag, env.environ, files_version, None)
            nearest = SUPPORTED[0] if exact < parse_version(SUPPORTED[0]) else SUPPORTED[-1]
            env.err(f"warning: the broker runs RabbitMQ {reported}, outside the supported {SUPPORTED[0]} to "
                    f"{SUPPORTED[-1]}; using the rules of {nearest}")
            version = nearest
        wanted = flag or env.environ.get("TOPOFORM_RABBITMQ_VERSION") or files_version
        if wanted:
            try:
                wanted_text = format_version(parse_version(str(wanted), supported_only=False))
            except InputError:
                wanted_text = str(wanted)
            if wanted_text != version:
                env.err(f"warning: the files target RabbitMQ {wanted_text} but the broker runs {reported}; "
                        f"the broker's version decides (validated with the rules of {version})")
        return version, "broker"

    return resolve


def _export_version(path: str) -> str | None:
    """The version field of a definitions export, or None (an unreadable file is reported later)."""
    from ..broker.live import export_version

    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return export_version(data) if isinstance(data, dict) else None


def print_warnings(warnings, env: Environment, *, keep: int = 1) -> None:
    """Warnings to stderr, each kind folded after ``keep`` in full: commands other than
    ``validate`` (which lists every finding) say the rest in one line, so that six
    deprecated transient queues do not bury a plan."""
    seen: dict[str, list] = {}
    for finding in warnings:
        seen.setdefault(finding.code, []).append(finding)
    for code, findings in seen.items():
        for finding in findings[:keep]:
            env.err(finding.format())
        rest = findings[keep:]
        if rest:
            subjects = [f.subject or (str(f.position) if f.position else "") for f in rest]
            named = ", ".join(s for s in subjects[:5] if s) + (", ..." if len(subjects) > 5 else "")
            env.err(f"warning: {len(rest)} more like this ({code}{': ' + named if named else ''}); "
                    "'topoform validate' lists each")


def read_stdin_files(args, env: Environment) -> None:
    """``-f -``: read standard input once and put its text where the ``-`` was (see topoform/discover.py).

    Called by ``main`` after parsing, so every command that takes ``-f`` reads it the same way.
    """
    files = getattr(args, "files", None)
    if not files or "-" not in files:
        return
    if files.count("-") > 1:
        raise UsageError("-f - may be given once (standard input is read once)")
    if getattr(args, "command", None) == "fmt":
        raise UsageError("fmt rewrites files in place; it cannot take -f - (standard input)",
                         hint="format a file: topoform fmt -f FILE")
    from ..load import StdinFile

    try:
        text = env.stdin.read()
    except UnicodeDecodeError:
        raise UsageError("-f -: standard input is not UTF-8 text") from None
    args.files = [StdinFile(text, env.cwd) if f == "-" else f for f in files]


def load_files(args, env: Environment, *, show_warnings: bool = True, target=None):
    """Discover and load the topology files named by ``-f`` (or the defaults).

    Returns the :class:`topoform.load.LoadResult`. Raises InputError (every error
    finding, each as ``PATH:LINE:COL: message``) when the files are invalid; warnings
    are printed to stderr and do not fail. ``target`` is the RabbitMQ version whose
    rules apply (see :func:`topoform.load.load_topology`); by default the offline
    target of :func:`target_resolver`.
    """
    from ..load import discover_files, load_topology

    if target is None:
        target = target_resolver(args, env)
    paths = discover_files(args.files or [], env.environ, env.cwd)
    result = load_topology(paths, target=target, variables=variable_inputs(args, env))
    if show_warnings:
        print_warnings(result.warnings, env)
    if result.errors:
        n = len(result.errors)
        raise InputError(f"{n} error{'s' if n != 1 else ''} in topology files", findings=result.errors)
    return result


def chosen_env(args, env: Environment) -> str | None:
    """The one environment of this run: ``--env NAME``, else ``TOPOFORM_ENV``, else None (defaults only)."""
    override = getattr(args, "_env_override", ...)
    if override is not ...:  # a fleet target's own environment (cli/fleet.py)
        return override
    envs = [e for e in (getattr(args, "envs", None) or []) if e is not None]
    if len(envs) > 1:
        raise UsageError("--env may be given once here (validate checks several environments)")
    if envs:
        return envs[0]
    return env.environ.get("TOPOFORM_ENV") or None


def variable_inputs(args, env: Environment, env_name: str | None = ...):
    """``--env`` / ``TOPOFORM_ENV``, ``--var`` and ``--var-file`` as :class:`topoform.variables.VariableInputs`.

    ``env_name`` overrides the environment (validate's loop over environments, fleet targets).
    """
    from ..variables import VariableInputs, parse_var

    if env_name is ...:
        env_name = chosen_env(args, env)
    cli_vars = tuple(parse_var(v) for v in (getattr(args, "vars", None) or []))
    return VariableInputs(env=env_name, cli_vars=cli_vars, var_files=tuple(getattr(args, "var_files", None) or ()),
                          cwd=env.cwd)


def broker_settings(args, env: Environment) -> BrokerSettings:
    """Connection settings from flags, then environment variables, then defaults (SPEC section 3).

    Credentials, strongest first: ``--username`` / ``--password-file``; ``TOPOFORM_USERNAME`` /
    ``TOPOFORM_PASSWORD_FILE`` / ``TOPOFORM_PASSWORD`` (setting both password variables is an
    error); the userinfo of ``--management-url`` (HTTP side) and ``--url``; ``guest``.
    Every URL is checked up front: a one-line UsageError that never quotes the URL.
    """
    environ = env.environ
    url, url_label = _pick(args, "url", "--url", environ, "TOPOFORM_URL")
    mgmt, mgmt_label = _pick(args, "management_url", "--management-url", environ, "TOPOFORM_MANAGEMENT_URL")
    # each may list several endpoints (a cluster): comma-separated, or the flag repeated
    urls = split_urls(url, schemes=("amqp", "amqps"), label=url_label) if url is not None else (DEFAULT_URL,)
    mgmts = split_urls(mgmt, schemes=("http", "https"), label=mgmt_label) if mgmt is not None else ()
    if len(urls) > 1 and len(mgmts) > 1 and len(urls) != len(mgmts):
        raise UsageError(f"{mgmt_label} lists {len(mgmts)} endpoints and {url_label} {len(urls)}: give one management "
                         "URL per AMQP URL, in the same order, or a single one (a load balancer)")
    ca = getattr(args, "ca_cert", None) or environ.get("TOPOFORM_CA_CERT") or None
    timeout = getattr(args, "timeout", None)
    label = "--timeout"
    if timeout is None and environ.get("TOPOFORM_TIMEOUT"):
        label = "TOPOFORM_TIMEOUT"
        try:
            timeout = float(environ["TOPOFORM_TIMEOUT"])
        except ValueError:
            raise UsageError("TOPOFORM_TIMEOUT must be a number of seconds") from None
    if timeout is None:
        timeout = 30.0
    if not timeout > 0 or timeout != timeout or timeout == float("inf"):
        raise UsageError(f"{label} must be a positive number of seconds")
    username = getattr(args, "username", None) or environ.get("TOPOFORM_USERNAME") or None
    password = _password(args, env)
    return BrokerSettings(url=urls[0], urls=urls, management_url=mgmts[0] if mgmts else None, management_urls=mgmts,
                          ca_cert=ca, timeout=timeout, username_override=username, password_override=password)


def _pick(args, attr: str, flag: str, environ, var: str) -> tuple[str | None, str]:
    value = getattr(args, attr, None)
    if value is not None:
        return value, flag
    return environ.get(var) or None, var


def _password(args, env: Environment) -> str | None:
    """The password from --password-file, TOPOFORM_PASSWORD_FILE or TOPOFORM_PASSWORD (None: use the URL's)."""
    path = getattr(args, "password_file", None)
    label = "--password-file"
    if path is None:
        file_var, plain = env.environ.get("TOPOFORM_PASSWORD_FILE"), env.environ.get("TOPOFORM_PASSWORD")
        if file_var and plain:
            raise UsageError("both TOPOFORM_PASSWORD and TOPOFORM_PASSWORD_FILE are set; set only one")
        if plain:
            return plain
        path, label = file_var or None, "TOPOFORM_PASSWORD_FILE"
    if path is None:
        return None
    full = path if os.path.isabs(path) else os.path.join(env.cwd, path)
    try:
        with open(full, "rb") as fh:
            data = fh.read(65537)
    except OSError as exc:
        raise UsageError(f"{label}: cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > 65536:
        raise UsageError(f"{label}: {path} is larger than 64 KiB; it should hold only the password")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{label}: {path} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise UsageError(f"{label}: {path} is empty", hint="write the password into it (one trailing newline is ignored)")
    return text


class BrokerVersionProbe:
    """A callable for ``live_target``: the broker's version from ``GET /api/overview``, asked once.

    Calling it asks the broker (only the first time it answers); None when the broker does
    not answer (the reads that follow report that). ``known()`` is what it answered, or
    None before it was asked or when it could not read: the live reads that follow then
    need not ask again (``read_live(..., version=probe.known())``).
    """

    def __init__(self, settings):
        self.settings = settings
        self._answer: tuple[str | None] | None = None  # (version,) once the broker answered

    def __call__(self) -> str | None:
        if self._answer is None:
            from ..broker.http import ManagementClient

            probe = ManagementClient(self.settings)
            try:
                self._answer = (str(probe.overview().get("rabbitmq_version") or "") or None,)
            except BrokerError as exc:
                if exc.code in ("broker-timeout", "not-rabbitmq"):  # the reads would wait as long again, or misread
                    raise
                return None  # unreachable, refused: reported by the reads that follow
            except Exception:  # noqa: BLE001 - unreachable: reported by the reads that follow
                return None
            finally:
                probe.close()
        return self._answer[0]

    def known(self) -> str | None:
        return self._answer[0] if self._answer is not None else None


def narrow_vhosts(wanted, vhosts: list[str]) -> list[str]:
    """The files' vhosts narrowed to ``--vhost`` (each must be one of them), or all of them."""
    if not wanted:
        return vhosts
    unknown = sorted(set(wanted) - set(vhosts))
    if unknown:
        raise UsageError(f"--vhost {unknown[0]!r} is not a vhost of the files (they have: "
                         f"{', '.join(vhosts) or 'none'})")
    return sorted(set(wanted))

def dump_json(data: Any) -> str:
    """Sorted, indented JSON: the one format every ``--json`` output uses."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
