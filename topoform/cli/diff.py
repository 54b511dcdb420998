"""``topoform diff OLD NEW``: the plan that would take OLD to NEW, offline.

Each side is a topology file, a folder of them, or a definitions export (a ``.json``
file: ``GET /api/definitions``, ``rabbitmqctl export_definitions`` or ``topoform
export``). OLD plays the broker (a LiveState built from it), NEW the files; the plan is
``make_plan``'s, so it reads and exits exactly as ``plan`` does: 0 the same, 2 changes,
3 blocked changes, 1 error. The managed vhosts are NEW's; a vhost only in OLD is
mentioned on stderr and not compared (``plan`` never deletes a vhost either).
"""
from __future__ import annotations

import os

from ..errors import InputError, UsageError
from .common import load_files, target_resolver
from .env import Environment, ExitCode
from .plan_output import add_format_arguments, output_format, print_plan


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "diff", parents=[parents["common"], parents["target"]],
        help="show the plan that would take OLD to NEW (files, folders or definitions exports; offline)",
        description="Compare two topologies offline and print the plan that would take OLD to NEW. Each side "
                    "is a topology file, a folder of them, or a definitions export (.json). Exit 0 the same, "
                    "2 changes, 3 blocked changes, 1 error.")
    parser.add_argument("old", metavar="OLD", help="the current topology: file, folder or definitions export")
    parser.add_argument("new", metavar="NEW", help="the wanted topology: file, folder or definitions export")
    parser.add_argument("--prune", action="store_true", help="plan deleting what OLD has and NEW does not")
    parser.add_argument("--allow-data-loss", action="store_true",
                        help="with --prune, allow deleting queues (their message counts are unknown offline)")
    parser.add_argument("--migrate", action="store_true",
                        help="turn blocked queue and exchange changes into migrations")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="only this vhost of NEW (repeatable)")
    add_format_arguments(parser, json_flag=True)
    return parser


def is_export(path: str) -> bool:
    return path.lower().endswith(".json") and not os.path.isdir(path)


def _full(path: str, cwd: str) -> str:
    return path if os.path.isabs(path) else os.path.join(cwd, path)


def _export_version(path: str) -> str | None:
    import json

    from ..broker.live import export_version

    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return export_version(data) if isinstance(data, dict) else None


def _load_yaml(path: str, args, env: Environment, state_version: str | None, *, warnings: bool = True):
    """A file or folder as a loaded topology (InputError with every finding when invalid)."""
    import argparse

    sub = argparse.Namespace(**{**vars(args), "files": [path]})
    return load_files(sub, env, target=target_resolver(args, env, state_version), show_warnings=warnings)


def desired_side(path: str, args, env: Environment, old_version: str | None):
    """NEW as the desired Topology."""
    return _desired(path, args, env, old_version)[0]


def _desired(path: str, args, env: Environment, old_version: str | None):
    """NEW as ``(Topology, ConfigState)``: the config kinds (users, permissions, limits, ...) too. An
    export's config objects are all managed (the export describes them completely)."""
    from dataclasses import replace

    from ..broker.live import as_declared, read_state_file

    full = _full(path, env.cwd)
    if is_export(path):
        state = read_state_file(full, None)
        config = state.config
        if config is not None:
            config = replace(config, managed=frozenset((o.kind, o.vhost or o.name) for o in config.objects.values()))
        return as_declared(state), config
    loaded = _load_yaml(path, args, env, old_version)
    return loaded.topology, loaded.config


def live_side(path: str, args, env: Environment, vhosts: list[str]):
    """OLD as the LiveState the planner compares NEW with."""
    from ..broker.live import LiveState, read_state_file, topology_fingerprint

    full = _full(path, env.cwd)
    if is_export(path):
        return read_state_file(full, vhosts)
    loaded = _load_yaml(path, args, env, None, warnings=False)  # OLD is what exists: warnings are NEW's
    topology = loaded.topology
    present = set(topology.vhost_names())
    return LiveState(topology=topology, missing_vhosts=frozenset(v for v in vhosts if v not in present),
                     fingerprint=topology_fingerprint(topology), source="state-file",
                     version=loaded.rabbitmq_version, config=loaded.config)


def diff_plan(args, env: Environment):
    """``(plan, old_only_vhosts)`` for ``diff OLD NEW``."""
    from ..planner import PlanOptions, make_plan

    for label, path in (("OLD", args.old), ("NEW", args.new)):
        if not os.path.exists(_full(path, env.cwd)):
            raise InputError(f"{label} {path} does not exist")
    old_version = _export_version(_full(args.old, env.cwd)) if is_export(args.old) else None
    desired, config = _desired(args.new, args, env, old_version)
    vhosts = list(desired.vhost_names())
    narrowed = None
    if args.vhosts:
        unknown = sorted(set(args.vhosts) - set(vhosts))
        if unknown:
            raise UsageError(f"--vhost {unknown[0]!r} is not a vhost of NEW (it has: {', '.join(vhosts) or 'none'})")
        narrowed = tuple(sorted(set(args.vhosts)))
        vhosts = list(narrowed)
    live = live_side(args.old, args, env, vhosts)
    if is_export(args.old):
        from ..broker.live import read_state_file

        everything = read_state_file(_full(args.old, env.cwd), None).vhosts if _is_global(args.old, env) else ()
    else:
        everything = live.topology.vhost_names()
    old_only = sorted(set(everything) - set(desired.vhost_names()))
    options = PlanOptions(prune=args.prune, migrate=args.migrate, allow_data_loss=args.allow_data_loss,
                          vhosts=narrowed)
    return make_plan(desired, live, options, config=config), old_only


def _is_global(path: str, env: Environment) -> bool:
    import json

    try:
        with open(_full(path, env.cwd), "rb") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "vhosts" in data


def run(args, env: Environment) -> int:
    output_format(args)
    if args.allow_data_loss and not args.prune:
        raise UsageError("--allow-data-loss only matters with --prune")
    plan, old_only = diff_plan(args, env)
    for v in old_only:
        env.err(f"note: vhost {v!r} is only in OLD; diff compares the vhosts of NEW")
    # no broker here: OLD and NEW are both files or exports
    print_plan(plan, args, env, title="topoform diff", same="OLD and NEW describe the same topology.")
    if plan.blocked:
        return ExitCode.BLOCKED
    return ExitCode.CHANGES if plan.has_changes else ExitCode.OK
