"""``topoform plan``: diff the files against the live broker (or a definitions export).

Prints the plan as text (or ``--json``), saves it with ``--out FILE`` (the JSON plan
with the fingerprint of the live state it was computed from, for ``apply PLANFILE``).

Exit codes (SPEC section 3): 0 ok; with ``--detailed-exitcode`` 0 no changes and 2
changes; 3 the plan holds blocked changes (whatever the flags); 1 error.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

from ..errors import InputError, UsageError
from ..perf import gc_paused
from .common import broker_settings, dump_json, live_target, load_files, state_target
from .env import Environment, ExitCode
from .plan_output import add_format_arguments, output_format, print_plan


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "plan", parents=[parents["common"], parents["files"], parents["broker"], parents["target"]],
        help="show what would change on the broker (or against a definitions export)",
        description="Compare the topology files with the live broker's managed vhosts (or with a definitions "
                    "export given by --state) and show the changes apply would make. Exit 0 ok (with "
                    "--detailed-exitcode: 0 no changes, 2 changes), 3 blocked changes, 1 error.")
    parser.add_argument("--state", metavar="FILE",
                        help="plan offline against a definitions export (JSON of GET /api/definitions[/VHOST] "
                             "or rabbitmqctl export_definitions) instead of the live broker")
    parser.add_argument("--prune", action="store_true", help="delete objects of the managed vhosts that are not "
                                                             "in the files (never built-ins or exclusive queues)")
    parser.add_argument("--migrate", action="store_true",
                        help="turn blocked queue and exchange changes into message-preserving recreations")
    parser.add_argument("--allow-data-loss", action="store_true",
                        help="with --prune, allow deleting queues that hold messages")
    parser.add_argument("--force", action="store_true", help="with --migrate, also migrate queues that have consumers")
    parser.add_argument("--prune-users", action="store_true",
                        help="delete users not in the files (never the connected user or the last administrator)")
    parser.add_argument("--rollback", action="store_true",
                        help="with --migrate: show what 'apply --migrate --rollback' would do to interrupted "
                             "migrations")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="only this vhost of the files (repeatable)")
    parser.add_argument("--out", metavar="FILE", help="save the plan (JSON, with the live state's fingerprint) "
                                                      "for 'topoform apply FILE'")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON (the format --out saves); "
                                                            "same as --format json")
    add_format_arguments(parser)
    parser.add_argument("--detailed-exitcode", action="store_true",
                        help="exit 2 when there are changes, 0 when there are none")
    from .fleet import add_arguments as add_fleet_arguments

    add_fleet_arguments(parser)  # --targets FILE, --only NAME (cli/fleet.py)
    return parser


def compute_plan(args, env: Environment):
    """Load the files, read the live state and plan: ``(plan, desired, live)``. Shared with apply."""
    from ..broker.live import LiveReader

    reader = None
    if not getattr(args, "state", None):
        from ..broker.http import ManagementClient

        reader = LiveReader(ManagementClient(broker_settings(args, env)))
        # Start reading the broker now, so the reads overlap the loading of the files.
        reader.prefetch(_guess_vhosts(args, env), stats=_needs_counts(args))
    try:
        with gc_paused():
            return _compute(args, env, reader)
    finally:
        if reader is not None:
            reader.close()
            reader.client.close()


def _compute(args, env: Environment, reader):
    from ..broker.live import read_state_file
    from ..planner import PlanOptions, make_plan

    # offline (--state): the target version is the flag, env, files, then the export's own version field
    if getattr(args, "state", None):
        target = state_target(args, env)
    else:  # against the broker its own version decides
        target = live_target(args, env, lambda: reader.version)
    loaded = load_files(args, env, target=target)
    desired = loaded.topology
    vhosts = desired.vhost_names()
    narrowed = None
    if getattr(args, "vhosts", None):
        unknown = sorted(set(args.vhosts) - set(vhosts))
        if unknown:
            raise UsageError(f"--vhost {unknown[0]!r} is not a vhost of the files (they have: "
                             f"{', '.join(vhosts) or 'none'})")
        narrowed = tuple(sorted(set(args.vhosts)))
        vhosts = list(narrowed)
    options = PlanOptions(prune=args.prune, migrate=args.migrate, allow_data_loss=args.allow_data_loss,
                          force=args.force, vhosts=narrowed, prune_users=getattr(args, "prune_users", False))
    from ..config.load import resolve as resolve_secrets

    config = resolve_secrets(loaded.config, env.environ)  # a missing variable or file: an error now, naming it
    if getattr(args, "state", None):
        path = args.state if os.path.isabs(args.state) else os.path.join(env.cwd, args.state)
        live = read_state_file(path, vhosts)
    else:
        live = reader.read(vhosts, stats=_needs_counts(args))
        if live.missing_vhosts:  # missing, or only invisible to a user without permission on it?
            from ..apply.preflight import refuse_invisible_vhosts

            refuse_invisible_vhosts(reader.client, reader.client.settings, live.missing_vhosts, "plan")
        if not _needs_counts(args) and _has_migration_artifacts(live):
            # an interrupted migration is resumed from what it left: that needs the counts
            live = dataclasses.replace(live, queue_stats=reader.read_stats(live.vhosts))
    user = reader.client.settings.username if reader is not None else None
    plan = make_plan(desired, live, options, config=config, connected_user=user, ownership=loaded.ownership)
    return _stamp(plan, loaded), desired, live


def _stamp(plan, loaded):
    """The environment and owner the plan was made for (SPEC section 9); shared with apply."""
    owner = loaded.ownership.owner if loaded.ownership is not None else None
    if loaded.environment is None and owner is None:
        return plan
    return dataclasses.replace(plan, env=loaded.environment, owner=owner)


def _needs_counts(args) -> bool:
    """Message and consumer counts matter only to queue deletes (--prune) and migrations."""
    return bool(getattr(args, "prune", False) or getattr(args, "migrate", False))


def _has_migration_artifacts(live) -> bool:
    from ..planner import migration

    check = getattr(migration, "is_migration_artifact", None)
    return bool(check) and (any(check(q) for q in live.topology.queues.values())
                            or any(check(x) for x in live.topology.exchanges.values()))  # a rollback's marker


def _guess_vhosts(args, env: Environment) -> set[str]:
    """Vhost names the files probably declare, from a quick scan of their text (no YAML parse).

    Only a guess, used to start the broker reads early: block-style keys one level under
    a top-level ``vhosts:``. Includes, flow style and anything unusual are simply missed
    (those vhosts are read after loading). Never raises.
    """
    import glob

    import yaml

    from ..load import discover_files

    try:
        paths = discover_files(getattr(args, "files", None) or [], env.environ, env.cwd)
    except Exception:  # noqa: BLE001 - the loader reports discovery errors properly
        return set()
    names: set[str] = set()
    for path in paths:
        files = sorted(glob.glob(os.path.join(path, "*.y*ml"))) if os.path.isdir(path) else [path]
        for file in files:
            try:
                with open(file, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                continue
            names.update(_scan_vhost_keys(text, yaml))
    return names


def _scan_vhost_keys(text: str, yaml) -> set[str]:
    found: set[str] = set()
    in_vhosts, indent = False, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        col = len(line) - len(line.lstrip(" "))
        if col == 0:
            in_vhosts, indent = stripped.startswith("vhosts:") and stripped.rstrip() == "vhosts:", None
            continue
        if not in_vhosts:
            continue
        if indent is None:
            indent = col
        if col == indent and ":" in stripped:
            try:
                node = yaml.safe_load(stripped)
            except yaml.YAMLError:
                continue
            if isinstance(node, dict):
                found.update(str(k) for k in node)
    return found


def run(args, env: Environment) -> int:
    from ..planner.render import render_json

    output_format(args)  # a contradictory --json --format is refused before any work
    from .fleet import check_flags, run_fleet

    check_flags(args)
    if getattr(args, "targets", None):  # a fleet: this command once per target, in parallel (cli/fleet.py)
        return run_fleet(run, args, env, "plan")
    if args.rollback and not args.migrate:
        raise UsageError("--rollback needs --migrate (it rolls back interrupted migrations)")
    plan, _desired, _live = compute_plan(args, env)
    if args.rollback:
        from .apply import rollback_plan

        plan = rollback_plan(plan, _live)
    print_plan(plan, args, env)  # --format text|json|markdown, --summary (cli/plan_output.py)
    if args.out:
        _save(args.out, dump_json(render_json(plan)) + "\n", env)
        env.err(f"Saved the plan to {args.out}; run 'topoform apply {args.out}' to carry it out.")
    if plan.blocked:
        return ExitCode.BLOCKED
    if args.detailed_exitcode and plan.has_changes:
        return ExitCode.CHANGES
    return ExitCode.OK


def _save(path: str, text: str, env: Environment) -> None:
    """Write atomically: a plan file is either complete or absent."""
    full = path if os.path.isabs(path) else os.path.join(env.cwd, path)
    directory = os.path.dirname(full) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=".topoform-plan-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, full)
    except OSError as exc:
        raise InputError(f"cannot write the plan to {path}: {exc.strerror or exc}") from None
