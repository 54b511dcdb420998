"""topoform as a Python library: load files, plan, apply, route a message.

For a service's own test suite (assert where its messages go) and for deployment
scripts (plan and apply without a subprocess). Every function behaves as the command of
the same name: :func:`plan` and :func:`apply` run the CLI in-process (same checks, same
guards, same redaction of passwords), :func:`load` and :func:`route` call the loader and
the router directly. Errors raise :class:`topoform.errors.TopoformError` subclasses with
a one-line ``message``; ``InputError.findings`` lists every problem in invalid files.

Example (see docs/api.md for more)::

    >>> from topoform import api
    >>> api.route("examples/topologies/topoform.yaml", "topic_logs", "quick.orange.rabbit").queues
    ('Q1', 'Q2')
"""
from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence, Union

from .errors import BlockedPlanError, InputError, TopoformError
from .model import Topology

__all__ = ["load", "plan", "apply", "route", "ApplyReport", "PlanError", "ApplyError"]

log = logging.getLogger("topoform")
log.addHandler(logging.NullHandler())  # a library logs; the application decides where it goes

Paths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


class PlanError(TopoformError):
    """``plan`` failed (files invalid, broker unreachable, ...); ``message`` says why, ``output`` is stderr."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


class ApplyError(TopoformError):
    """``apply`` failed or refused (stale plan, blocked changes, a broker error); nothing more was attempted."""

    def __init__(self, message: str, exit_code: int = 1, output: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.output = output


@dataclass(frozen=True)
class ApplyReport:
    """What :func:`apply` did: the exit code (0) and the command's output (its summary lines)."""

    exit_code: int
    output: str


def _paths(files: Paths) -> list[str]:
    if isinstance(files, (str, os.PathLike)):
        return [os.fspath(files)]
    return [os.fspath(f) for f in files]


def load(paths: Paths, *, rabbitmq_version: str | None = None) -> Topology:
    """Load topology files (or folders of them) as ``topoform validate`` does; return the Topology.

    Raises InputError when the files are invalid: ``exc.findings`` holds every error with
    its position. Warnings are logged on the ``topoform`` logger.

    >>> topology = load("examples/topologies/topoform.yaml")
    >>> topology.counts()["exchange"]
    3
    """
    return _load(paths, rabbitmq_version).topology


def _load(paths: Paths, rabbitmq_version: str | None):
    from .load import discover_files, load_topology

    found = discover_files(_paths(paths), os.environ, os.getcwd())
    result = load_topology(found, target=rabbitmq_version)
    for finding in result.warnings:
        log.warning("%s", finding.format())
    if result.errors:
        n = len(result.errors)
        raise InputError(f"{n} error{'s' if n != 1 else ''} in topology files: {result.errors[0].format()}",
                         findings=result.errors)
    return result


def _run(argv: list[str], environ: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    from .cli import Environment, main

    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, environ=dict(os.environ if environ is None else environ),
                      cwd=os.getcwd())
    code = main(argv, env)
    return code, out.getvalue(), err.getvalue()


def _last_error(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.startswith("topoform:")]
    return (lines[-1] if lines else stderr.strip().splitlines()[-1] if stderr.strip() else "failed").removeprefix(
        "topoform: error: ").removeprefix("topoform: ")


def _connection_args(url: str | None, management_url: str | None) -> list[str]:
    argv = []
    if url is not None:
        argv += ["--url", url]
    if management_url is not None:
        argv += ["--management-url", management_url]
    return argv


def plan(files: Paths, url: str | None = None, state: str | os.PathLike | None = None, *,
         management_url: str | None = None, prune: bool = False, migrate: bool = False,
         allow_data_loss: bool = False, force: bool = False, vhosts: Iterable[str] | None = None,
         prune_users: bool = False,
         rabbitmq_version: str | None = None, environ: Mapping[str, str] | None = None):
    """The plan that makes the broker (``url``) or a definitions export (``state``) match ``files``.

    Returns a :class:`topoform.planner.plan.Plan` (``.changes``, ``.summary``,
    ``.blocked``, ``.has_changes``); a plan with blocked changes is returned, not raised.
    Without ``url`` and ``state`` the connection comes from ``environ`` (default: the
    process environment: ``TOPOFORM_URL`` ...), as for the command. Raises PlanError.
    """
    from .planner.plan import Plan

    if url is not None and state is not None:
        raise ValueError("pass url or state, not both")
    argv = ["plan", "--json"]
    for f in _paths(files):
        argv += ["-f", f]
    if state is not None:
        argv += ["--state", os.fspath(state)]
    argv += _connection_args(url, management_url)
    for flag, on in (("--prune", prune), ("--migrate", migrate), ("--allow-data-loss", allow_data_loss),
                     ("--force", force), ("--prune-users", prune_users)):
        if on:
            argv.append(flag)
    for v in vhosts or ():
        argv += ["--vhost", v]
    if rabbitmq_version is not None:
        argv += ["--rabbitmq-version", rabbitmq_version]
    code, out, err = _run(argv, environ)
    for line in err.splitlines():
        if line.startswith(("warning", "note")) or ": warning:" in line:
            log.warning("%s", line)
    if code not in (0, 3):
        raise PlanError(_json_error(out) or _last_error(err), output=err)
    return Plan.from_dict(json.loads(out))


def _json_error(out: str) -> str | None:
    """The message of a ``{"format_version": 1, "error": {...}}`` document, if the command printed one."""
    try:
        data = json.loads(out)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return str(error.get("message")) if isinstance(error, dict) and error.get("message") else None


def apply(plan, url: str | None = None, *, management_url: str | None = None, lock_timeout: float = 60.0,
          environ: Mapping[str, str] | None = None) -> ApplyReport:
    """Carry out a plan from :func:`plan` (against the broker it was made for), as ``apply PLANFILE``.

    No prompt (the plan was the review). Refused, with nothing changed, when the broker
    changed since the plan was made (stale) or when the plan holds blocked changes.
    Raises ApplyError (``exit_code`` 3 for blocked changes, 1 otherwise).
    """
    from .cli.common import dump_json

    if plan.blocked:
        n = len(plan.blocked)
        raise BlockedPlanError(f"the plan holds {n} blocked change{'s' if n != 1 else ''}; nothing was applied")
    fd, path = tempfile.mkstemp(prefix="topoform-plan-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dump_json(plan.to_dict()) + "\n")
        argv = ["apply", path, "--auto-approve", "--lock-timeout", str(lock_timeout)]
        argv += _connection_args(url, management_url)
        code, out, err = _run(argv, environ)
    finally:
        os.unlink(path)
    if code != 0:
        raise ApplyError(_last_error(err), exit_code=code, output=out + err)
    return ApplyReport(exit_code=code, output=out)


def route(files_or_topology: Paths | Topology, exchange: str, routing_key: str = "",
          headers: Mapping[str, Any] | None = None, vhost: str | None = None, *,
          rabbitmq_version: str | None = None):
    """Where a message published to ``exchange`` with ``routing_key`` (and ``headers``) goes, offline.

    ``files_or_topology`` is a path, a list of paths or a loaded Topology. ``vhost``
    defaults to the only vhost of the files, else ``/``. Returns a RouteResult:
    ``.queues`` (sorted, each once; empty when unroutable), ``.routes`` (the bindings
    that led to each queue), ``.unroutable``, ``.to_dict()``.

    >>> route("examples/topologies/topoform.yaml", "topic_logs", "lazy.brown.fox").queues
    ('Q2',)
    """
    from .routing.simulate import route as simulate
    from .versions import DEFAULT

    if isinstance(files_or_topology, Topology):
        topology, version = files_or_topology, rabbitmq_version or DEFAULT
    else:
        loaded = _load(files_or_topology, rabbitmq_version)
        topology, version = loaded.topology, loaded.rabbitmq_version
    if vhost is None:
        names = topology.vhost_names()
        vhost = names[0] if len(names) == 1 else "/"
    return simulate(topology, vhost, exchange, routing_key, headers, version=version)
