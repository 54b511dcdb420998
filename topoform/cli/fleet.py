"""``plan``/``apply --targets FILE [--only NAME]...``: one run per target, in parallel (SPEC section 9).

Each target gets its own copy of the arguments (its URLs, CA bundle, environment) and
its own environment variables (its password as ``TOPOFORM_PASSWORD``, nothing
inherited from the caller's ``TOPOFORM_URL`` / ``TOPOFORM_PASSWORD*``), runs the
ordinary single-broker command with captured output in a bounded thread pool, and
its failure is its own: every other target still runs. Text output: one section per
target, in the targets file's order, then one line per target. ``--json``:
``{"format_version": 1, "targets": {NAME: PLAN-or-ERROR}}``. Exit code: the worst
of all (1 over 3 over 2 over 0).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import io
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ..broker.settings import redact
from ..errors import BlockedPlanError, InputError, TopoformError, UsageError
from ..fleet import read_targets, resolve_password, select, worst_exit
from .common import dump_json
from .env import Environment, ExitCode

MAX_PARALLEL = 8
_INHERITED = ("TOPOFORM_URL", "TOPOFORM_MANAGEMENT_URL", "TOPOFORM_PASSWORD", "TOPOFORM_PASSWORD_FILE",
              "TOPOFORM_CA_CERT", "TOPOFORM_ENV")


def add_arguments(parser) -> None:
    parser.add_argument("--targets", metavar="FILE",
                        help="run against every broker of a fleet file (targets: {NAME: {url, management_url, "
                             "password: {env: VAR}, env, ca_cert}}), in parallel")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="with --targets: only the targets matching NAME (a glob; repeatable)")
    parser.add_argument("--parallel", type=int, default=4, help=argparse.SUPPRESS)


def check_flags(args) -> None:
    if getattr(args, "only", None) and not getattr(args, "targets", None):
        raise UsageError("--only needs --targets FILE")
    if getattr(args, "targets", None):
        for flag, attr in (("--url", "url"), ("--management-url", "management_url"), ("--password-file", "password_file"),
                           ("--state", "state")):
            if getattr(args, attr, None):
                raise UsageError(f"{flag} cannot be combined with --targets (each target has its own)")
        if len(getattr(args, "envs", None) or []) > 1:
            raise UsageError("--env may be given once with --targets (a target's own env wins)")


def _run_one(run, args, env: Environment) -> tuple[int, str | None, str, str]:
    """One target's command: (exit code, error code or None, message, hint); its output goes to ``env``."""
    try:
        return int(run(args, env)), None, "", ""
    except BlockedPlanError as exc:
        env.err(f"topoform: {redact(exc.message)}")
        return ExitCode.BLOCKED, None, "", ""
    except TopoformError as exc:
        return ExitCode.ERROR, exc.code, redact(exc.message), redact(exc.hint or "")
    except Exception as exc:  # noqa: BLE001 - one target's bug must not stop the others
        return ExitCode.ERROR, "internal-error", redact(f"internal error: {type(exc).__name__}: {exc}"), ""


def run_fleet(run, args, env: Environment, command: str) -> int:
    """Run ``run(args, env)`` once per target; print the sections (or the JSON) and return the worst exit code."""
    targets = select(read_targets(args.targets, env.cwd), args.only)
    as_json = bool(getattr(args, "json", False)) or getattr(args, "format", None) == "json"
    if command == "apply" and not args.auto_approve:
        raise UsageError("apply --targets needs --auto-approve (review the fleet with 'plan --targets' first)")
    base_environ = {k: v for k, v in env.environ.items() if k not in _INHERITED}
    saved = _read_fleet_plan(args.planfile, env) if command == "apply" and getattr(args, "planfile", None) else None
    if saved is not None:
        if args.files:
            raise UsageError("apply PLANFILE takes its changes from the plan; do not pass -f as well")
    workdir = tempfile.mkdtemp(prefix=".topoform-fleet-")
    default_env = None
    if getattr(args, "envs", None):
        default_env = args.envs[0]
    elif env.environ.get("TOPOFORM_ENV"):
        default_env = env.environ["TOPOFORM_ENV"]

    def one(target):
        out, err = io.StringIO(), io.StringIO()
        sub_env = dataclasses.replace(env, stdout=out, stderr=err, stdin_isatty=False, stdout_isatty=False,
                                      environ=dict(base_environ))
        sub = copy.copy(args)
        sub.targets = None
        sub.only = None
        sub.url, sub.management_url, sub.password_file = target.url, target.management_url, None
        sub.ca_cert = target.ca_cert or getattr(args, "ca_cert", None)
        if target.username:
            sub.username = target.username
        sub._env_override = target.env or default_env
        if command == "plan" and getattr(args, "out", None):
            sub.out = os.path.join(workdir, f"{len(target.name)}-{abs(hash(target.name))}.json")
        if saved is not None:
            if target.name not in saved:
                return (ExitCode.ERROR, "no-plan", f"{args.planfile} holds no plan for target '{target.name}'", "",
                        "", "")
            sub.planfile = os.path.join(workdir, f"{len(target.name)}-{abs(hash(target.name))}.json")
            with open(sub.planfile, "w", encoding="utf-8") as fh:
                json.dump(saved[target.name], fh)
        try:
            password = resolve_password(target, env.environ)
        except TopoformError as exc:
            return ExitCode.ERROR, exc.code, exc.message, exc.hint, out.getvalue(), err.getvalue()
        if password is not None:
            sub_env.environ["TOPOFORM_PASSWORD"] = password
        code, err_code, message, hint = _run_one(run, sub, sub_env)
        texts = [message, hint, out.getvalue(), err.getvalue()]
        for tmp, shown in ((getattr(sub, "out", None), None), (getattr(sub, "planfile", None), getattr(args, "planfile", None))):
            if tmp and tmp.startswith(workdir):  # the per-target temporary plan: never shown
                texts = ["\n".join(line for line in t.split("\n") if not (shown is None and tmp in line)) if t else t
                         for t in texts]
                texts = [t.replace(tmp, f"{shown} (target {target.name})") if t and shown else t for t in texts]
        message, hint, stdout, stderr = texts
        return code, err_code, message, hint, stdout, stderr

    workers = max(1, min(getattr(args, "parallel", 4) or 4, MAX_PARALLEL, len(targets)))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="topoform-target") as pool:
            results = list(pool.map(one, targets))
        if command == "plan" and getattr(args, "out", None):
            _save_fleet_plan(args.out, targets, results, workdir, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    codes = [r[0] for r in results]
    if as_json:
        docs = {}
        for target, (code, err_code, message, hint, out, _err) in zip(targets, results):
            doc = None
            if err_code is None and out.strip():
                try:
                    doc = json.loads(out)
                except ValueError:
                    doc = None
            if doc is None:
                doc = {"format_version": 1, "error": {"code": err_code or "error",
                                                      "message": message or _last_line(_err) or "failed",
                                                      "hint": hint or None}}  # null when none, as error documents
            docs[target.name] = doc
        env.out(dump_json({"format_version": 1, "targets": docs}))
    else:
        for target, (code, err_code, message, hint, out, err) in zip(targets, results):
            env.out(f"=== target {target.name}" + (f" (environment {target.env or default_env})"
                                                     if (target.env or default_env) else "") + " ===")
            if out.strip():
                env.out(out.rstrip("\n"))
            for line in err.rstrip("\n").splitlines():
                env.err(f"[{target.name}] {line}")
            if err_code is not None:
                env.err(f"[{target.name}] topoform: error: {message}" + (f" (hint: {hint})" if hint else ""))
        env.out("")
        env.out(f"Fleet {command}:")
        for target, (code, err_code, message, *_rest) in zip(targets, results):
            env.out(f"  {target.name}: {_verdict(command, code)}" + (f": {message}" if err_code is not None else ""))
    return worst_exit(codes)


def _read_fleet_plan(path: str, env: Environment) -> dict:
    """A plan saved by ``plan --targets FILE --out PLANFILE``: target name -> that target's plan document."""
    full = path if os.path.isabs(path) else os.path.join(env.cwd, path)
    try:
        with open(full, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not a plan file saved by 'topoform plan --targets ... --out' "
                         f"({type(exc).__name__ if isinstance(exc, RecursionError) else exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict) or data.get("format_version") != 1:
        raise InputError(f"{path}: not a fleet plan (saved by 'plan --targets FILE --out PLANFILE'); without "
                         "--targets, 'apply PLANFILE' takes a single broker's plan")
    return data["targets"]


def _save_fleet_plan(out: str, targets, results, workdir: str, env: Environment) -> None:
    """One plan per target (the targets that planned), written atomically."""
    from .plan import _save

    plans = {}
    for target in targets:
        part = os.path.join(workdir, f"{len(target.name)}-{abs(hash(target.name))}.json")
        if os.path.exists(part):
            with open(part, encoding="utf-8") as fh:
                plans[target.name] = json.load(fh)
    _save(out, dump_json({"format_version": 1, "targets": plans}) + "\n", env)
    missing = [t.name for t in targets if t.name not in plans]
    env.err(f"Saved the plans of {len(plans)} target{'s' if len(plans) != 1 else ''} to {out}"
            + (f" (none for {', '.join(missing)}: they failed)" if missing else "")
            + f"; run 'topoform apply {out} --targets FILE' to carry them out.")


def _last_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def _verdict(command: str, code: int) -> str:
    if code == ExitCode.OK:
        return "done" if command == "apply" else "ok"
    if code == ExitCode.CHANGES:
        return "changes"
    if code == ExitCode.BLOCKED:
        return "blocked"
    return "failed"
