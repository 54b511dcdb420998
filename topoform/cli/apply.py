"""``topoform apply [PLANFILE]``: lock, plan (or check a saved plan), confirm, execute, summarize.

Order of events, each step needed by the next:

1. Take the apply lock on every managed vhost that exists (``--lock-timeout``), so
   that the plan executed is the one computed under the lock.
2. Read the live state. With PLANFILE, refuse the saved plan when the live
   fingerprint changed since ``plan --out`` (stale plan); otherwise plan again.
3. Print the plan. Blocked changes: exit 3, nothing touched. No changes: exit 0.
4. Confirm on a terminal; without one, ``--auto-approve`` is required (exit 1).
5. Execute (vhosts created here are locked as soon as they exist), with progress,
   then print the summary and the elapsed time. Any failure: exit 1.

Exit codes (SPEC section 3): 0 done, 3 blocked changes, 1 error.
"""
from __future__ import annotations

import argparse
import json

from ..errors import BlockedPlanError, InputError, StalePlanError, UsageError
from .common import broker_settings, live_target, load_files
from .env import Environment, ExitCode


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "apply", parents=[parents["common"], parents["files"], parents["broker"]],
        help="plan, confirm and carry out the changes on the broker",
        description="Compute the plan against the live broker (or take a plan saved by 'plan --out'), "
                    "show it, ask for confirmation and carry it out. Exit 0 done, 3 blocked changes "
                    "(nothing applied), 1 error.")
    parser.add_argument("planfile", nargs="?", metavar="PLANFILE",
                        help="a plan saved by 'topoform plan --out'; refused when the broker changed since")
    parser.add_argument("--prune", action="store_true", help="delete unmanaged objects in the managed vhosts")
    parser.add_argument("--migrate", action="store_true",
                        help="turn blocked queue and exchange changes into message-preserving recreations")
    parser.add_argument("--rollback", action="store_true",
                        help="with --migrate: put the queues of interrupted migrations back with their original "
                             "properties, messages and bindings, instead of finishing them (no other change)")
    parser.add_argument("--allow-data-loss", action="store_true",
                        help="allow deleting queues that hold messages (no if-empty guard)")
    parser.add_argument("--force", action="store_true",
                        help="delete or migrate queues that have consumers (no if-unused guard)")
    parser.add_argument("--prune-users", action="store_true",
                        help="delete users not in the files (never the connected user or the last administrator)")
    parser.add_argument("--auto-approve", action="store_true", help="apply without asking for confirmation")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="only this vhost of the files (repeatable)")
    parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for another apply to finish (default 60)")
    parser.add_argument("--channels", type=int, default=64, help=argparse.SUPPRESS)  # AMQP channels per vhost
    from .fleet import add_arguments as add_fleet_arguments

    add_fleet_arguments(parser)  # --targets FILE, --only NAME (cli/fleet.py)
    return parser


def run(args, env: Environment) -> int:
    from ..apply.executor import ApplyContext, ApplyOptions, apply_plan
    from ..apply.lock import BrokerLock, holder_from_management
    from ..apply.progress import LineProgress, TerminalProgress
    from ..broker.http import ManagementClient
    from ..broker.live import read_live

    if args.lock_timeout < 0:
        raise UsageError("--lock-timeout must be zero or more seconds")
    from .fleet import check_flags, run_fleet

    check_flags(args)
    if getattr(args, "targets", None):  # a fleet: this command once per target, in parallel (cli/fleet.py)
        return run_fleet(run, args, env, "apply")
    if getattr(args, "rollback", False) and not args.migrate:
        raise UsageError("--rollback needs --migrate (it rolls back interrupted migrations)")
    if getattr(args, "rollback", False) and args.planfile:
        raise UsageError("--rollback plans again from the broker; do not pass a PLANFILE")
    settings = broker_settings(args, env)
    saved = _read_planfile(args.planfile, env) if args.planfile else None
    desired = config = None
    if saved is not None:
        if args.files:
            raise UsageError("apply PLANFILE takes its changes from the plan; do not pass -f as well")
        from .common import chosen_env

        wanted_env = chosen_env(args, env)
        if wanted_env is not None and saved.env != wanted_env:  # SPEC section 9
            made = f"environment '{saved.env}'" if saved.env else "no environment (variable defaults)"
            raise UsageError(f"the plan in {args.planfile} was made for {made}, not '{wanted_env}'; nothing was applied",
                             hint=f"run 'topoform plan --env {wanted_env} --out FILE' and apply that plan")
        vhosts = list(saved.vhosts)
        if args.vhosts:
            raise UsageError("--vhost cannot narrow a saved plan; pass it to 'topoform plan' instead")
    else:
        probe = ManagementClient(settings)  # the broker's own version decides the rules

        def version() -> str | None:
            try:
                return str(probe.overview().get("rabbitmq_version") or "") or None
            except Exception:  # noqa: BLE001 - unreachable: reported by the reads that follow
                return None
            finally:
                probe.close()

        loaded = load_files(args, env, target=live_target(args, env, version))
        desired = loaded.topology
        from ..config.load import resolve as resolve_secrets

        config = resolve_secrets(loaded.config, env.environ)  # missing secrets: an error before any change
        vhosts = desired.vhost_names()
        if args.vhosts:
            unknown = sorted(set(args.vhosts) - set(vhosts))
            if unknown:
                raise UsageError(f"--vhost {unknown[0]!r} is not a vhost of the files (they have: "
                                 f"{', '.join(vhosts) or 'none'})")
            vhosts = sorted(set(args.vhosts))

    client = ManagementClient(settings)
    from ..apply.lock import describe_holder

    owner = saved.owner if saved is not None else (loaded.ownership.owner if loaded.ownership else None)
    lock = BrokerLock(settings, timeout=args.lock_timeout, lookup_holder=holder_from_management(client),
                      holder=describe_holder(settings, owner=owner),
                      on_wait=lambda v, who: env.err(f"Waiting for the apply lock on vhost '{v}' "
                                                     f"(held by {who or 'another apply'}) ..."))
    from ..apply.preflight import Preflight

    preflight = Preflight(client, settings)  # may this user do it all? (tags, permissions, plugins)
    try:
        existing = set(client.vhost_names())
        _stop_on_problems(preflight.check_access(vhosts, existing), env)
        lock.acquire([v for v in vhosts if v in existing])
        live = read_live(client, vhosts)
        if saved is not None:
            if saved.fingerprint != live.fingerprint:
                raise StalePlanError(
                    f"the plan in {args.planfile} is stale: the broker changed since it was made",
                    hint="run 'topoform plan --out FILE' again and review it")
            plan = saved
        else:
            if args.prune and not args.allow_data_loss:
                live = _exact_counts_for_prune(settings, desired, live)
            plan = _make_plan(desired, live, args, vhosts, config, settings.username, loaded)

        _print_plan(plan, env)
        if plan.blocked:
            n = len(plan.blocked)
            raise BlockedPlanError(f"the plan holds {n} blocked change{'s' if n != 1 else ''}; nothing was applied"
                                   + ("" if args.migrate else " (see the reasons above; --migrate may help)"))
        if not plan.changes:
            return ExitCode.OK
        _stop_on_problems(preflight.check_plan(plan), env)  # before asking, and before the first change
        if not args.auto_approve:
            if not env.stdin_isatty:
                raise UsageError("apply needs confirmation, but stdin is not a terminal; nothing was applied",
                                 hint="review the plan, then run again with --auto-approve")
            answer = env.ask("\nDo you want to apply these changes? Only 'yes' will be accepted: ")
            if answer.strip() != "yes":
                env.err("Apply cancelled; nothing was applied.")
                return ExitCode.ERROR

        options = ApplyOptions(allow_data_loss=args.allow_data_loss or bool(plan.options.get("allow_data_loss")),
                               force=args.force or bool(plan.options.get("force")),
                               channels=max(1, args.channels))
        progress = TerminalProgress(env.stdout) if env.stdout_isatty else LineProgress(env.stdout)
        ctx = ApplyContext(settings=settings, client=client, options=options, lock=lock, progress=progress)
        ctx.environ = env.environ  # a saved plan's secret references are read again (topoform/config/apply.py)
        if desired is not None:
            ctx.exclusive_queues.update((q.vhost, q.name) for q in desired.queues.values() if q.exclusive)
        result = apply_plan(plan, ctx)
    finally:
        lock.release()
        client.close()

    return _summarize(result, env)


def _stop_on_problems(report, env: Environment) -> None:
    """Print every preflight problem (one line each) and stop; print notes and go on."""
    for note in report.notes:
        env.err(f"note: {note}")
    for problem in report.problems:
        env.err(f"missing: {problem}")
    if report.problems:
        n = len(report.problems)
        from ..apply.preflight import PreflightError

        raise PreflightError(f"apply stopped before changing anything: {n} thing{'s' if n != 1 else ''} missing "
                             "(listed above)", problems=report.problems,
                             hint="grant the missing tags and permissions, or enable the plugins, then run again")


def _exact_counts_for_prune(settings, desired, live):
    """The live state with exact message counts for every queue ``--prune`` would delete
    whose count the statistics have not reported yet (they lag about 5 s; a new quorum
    queue may report none at all for a while): a passive declare answers with the queue's
    own count. Streams are left unknown (a passive declare always says 0 for them), so
    they stay blocked without --allow-data-loss."""
    import dataclasses

    from ..broker import amqp
    from ..broker.live import QueueStats
    from ..errors import BrokerError

    unknown: dict[str, list] = {}
    for key, q in live.topology.queues.items():
        if key in live.queue_stats or key in desired.queues or q.exclusive:
            continue
        if (q.arguments.get("x-queue-type") if q.arguments else None) == "stream":
            continue
        unknown.setdefault(q.vhost, []).append(q)
    if not unknown:
        return live
    stats = dict(live.queue_stats)
    for vhost, queues in sorted(unknown.items()):
        try:
            with amqp.Session(settings, vhost, channels=1) as session:
                for q in queues:
                    counts = session.queue_counts(q.name)
                    if counts is not None:
                        stats[q.key] = QueueStats(messages=counts[0], consumers=counts[1])
        except BrokerError:
            continue  # counts stay unknown: the plan blocks those deletes, as before
    return dataclasses.replace(live, queue_stats=stats)


def _make_plan(desired, live, args, vhosts, config=None, user=None, loaded=None):
    from ..planner import PlanOptions, make_plan

    options = PlanOptions(prune=args.prune, migrate=args.migrate, allow_data_loss=args.allow_data_loss,
                          force=args.force, vhosts=tuple(sorted(set(args.vhosts))) if args.vhosts else None,
                          prune_users=getattr(args, "prune_users", False))
    plan = make_plan(desired, live, options, config=config, connected_user=user,
                     ownership=loaded.ownership if loaded is not None else None)
    if loaded is not None:
        from .plan import _stamp

        plan = _stamp(plan, loaded)
    if getattr(args, "rollback", False):
        plan = rollback_plan(plan, live)
    return plan


def rollback_plan(plan, live):
    """The plan of ``--rollback``: only the rollbacks of the interrupted queue migrations (shared with plan)."""
    import dataclasses

    from ..planner import migration

    wanted = set(plan.vhosts)
    changes = tuple(c for c in migration.rollback_changes(live.topology, live.queue_stats)
                    if not wanted or c.vhost in wanted)
    return dataclasses.replace(plan, changes=changes, unmanaged=())


def _print_plan(plan, env: Environment) -> None:
    from ..planner.render import render_text

    text = render_text(plan, color=env.color)
    env.out(text.rstrip("\n"))


def _read_planfile(path: str, env: Environment):
    import os

    from ..planner.plan import Plan

    full = path if os.path.isabs(path) else os.path.join(env.cwd, path)
    try:
        with open(full, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        if not os.path.exists(full) and ("@" in path or "://" in path):
            # a stray word of an unquoted URL (a password with a space) must not be echoed
            raise InputError("cannot read the plan file: no such file (its name is not shown: it looks like "
                             "part of a URL)", hint="quote a URL whose password holds spaces, or use "
                             "--password-file") from None
        raise InputError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a plan file saved by 'topoform plan --out' ({exc})") from None
    if isinstance(data, dict) and "targets" in data and "changes" not in data:
        raise InputError(f"{path} holds one plan per target of a fleet; pass the fleet file with --targets FILE")
    try:
        return Plan.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a usable plan file: {exc}") from None


def _summarize(result, env: Environment) -> int:
    counts = result.counts()
    elapsed = f"{result.elapsed:.1f}s"
    for change, why in result.skipped:
        env.out(f"Skipped {change.kind} {change.name} in vhost '{change.vhost}': {why}.")
    if result.ok:
        env.out(f"Apply complete: {counts['create']} created, {counts['update']} updated, "
                f"{counts['delete']} deleted, {counts['migrate']} migrated in {elapsed}.")
        return ExitCode.OK
    first = result.failed[0]
    for other in result.failed[1:]:
        env.err(f"Also failed: {other.change.kind} {other.change.name}: {other.message}")
    env.err(f"Apply failed at {first.change.kind} {first.change.name}: {first.message}. "
            f"Done: {len(result.done)}. Not attempted: {len(result.not_attempted)}. "
            f"Run 'topoform plan' to see what remains. ({elapsed})")
    return ExitCode.ERROR
