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
import dataclasses
import json

from ..errors import BlockedPlanError, InputError, StalePlanError, UsageError
from .common import BrokerVersionProbe, broker_settings, dump_json, live_target, load_files, narrow_vhosts
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
                        help="delete or migrate queues that have consumers (no if-unused guard); start even "
                             "when the cluster has a resource alarm, or a node is down and the plan deletes or "
                             "recreates a quorum queue that lost members")
    parser.add_argument("--prune-users", action="store_true",
                        help="delete users not in the files (never the connected user or the last administrator)")
    parser.add_argument("--auto-approve", action="store_true", help="apply without asking for confirmation")
    parser.add_argument("--json", action="store_true",
                        help="print a report of what was done, failed and not attempted, with timings and the plan, "
                             "as JSON on stdout instead of the plan text (schemas/apply-report.schema.json)")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="only this vhost of the files (repeatable)")
    parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for another apply to finish (default 60)")
    parser.add_argument("--channels", type=int, default=64, help=argparse.SUPPRESS)  # AMQP channels per connection
    parser.add_argument("--connections", type=int, default=None, help=argparse.SUPPRESS)  # AMQP connections per vhost
    from .fleet import add_arguments as add_fleet_arguments

    from .plan import add_target_argument

    add_target_argument(parser)  # --target KIND:NAME (topoform/planner/target.py)
    add_fleet_arguments(parser)  # --targets FILE, --only NAME (cli/fleet.py)
    for action in parser._actions:  # fleet's --parallel (targets at once) also bounds queue migrations at once
        if action.dest == "parallel":
            action.default = None
            action.metavar = "N"
            action.help = ("with --migrate: run up to N queue migrations at once, each as safe as one alone "
                           "(default 1); with --targets: N targets at once (default 4)")
    return parser


def run(args, env: Environment) -> int:
    from ..perf import gc_for_apply

    if getattr(args, "targets", None):  # a fleet: each target's own run() sets the collector
        return _run(args, env, lambda: None)
    with gc_for_apply() as executing:  # paused while planning, a frozen heap while executing
        return _run(args, env, executing)


def _run(args, env: Environment, executing) -> int:
    from ..apply.executor import ApplyContext, ApplyOptions, apply_plan
    from ..apply.lock import BrokerLock, holder_from_management
    from ..apply.progress import LineProgress, TerminalProgress
    from ..broker.http import ManagementClient
    from ..broker.live import read_live

    if args.lock_timeout < 0:
        raise UsageError("--lock-timeout must be zero or more seconds")
    from .fleet import check_flags, run_fleet

    check_flags(args)
    from ..planner.target import parse_targets

    parse_targets(getattr(args, "target_specs", None))  # a bad --target is refused before any work
    if getattr(args, "targets", None):  # a fleet: this command once per target, in parallel (cli/fleet.py)
        return run_fleet(run, args, env, "apply")
    if getattr(args, "parallel", None) is not None and args.parallel < 1:
        raise UsageError("--parallel must be 1 or more")
    if getattr(args, "rollback", False) and not args.migrate:
        raise UsageError("--rollback needs --migrate (it rolls back interrupted migrations)")
    if getattr(args, "rollback", False) and args.planfile:
        raise UsageError("--rollback plans again from the broker; do not pass a PLANFILE")
    settings = broker_settings(args, env)
    saved = _read_planfile(args.planfile, env) if args.planfile else None
    if saved is not None:
        refuse_plan_flags(args)  # the plan was the review: nothing may change it now
    desired = config = None
    if saved is not None:
        from .common import chosen_env

        wanted_env = chosen_env(args, env)
        if wanted_env is not None and saved.env != wanted_env:  # SPEC section 9
            made = f"environment '{saved.env}'" if saved.env else "no environment (variable defaults)"
            raise UsageError(f"the plan in {args.planfile} was made for {made}, not '{wanted_env}'; nothing was applied",
                             hint=f"run 'topoform plan --env {wanted_env} --out FILE' and apply that plan")
        vhosts = list(saved.vhosts)
        if args.vhosts:
            raise UsageError("--vhost cannot narrow a saved plan; pass it to 'topoform plan' instead")
        if getattr(args, "target_specs", None):
            raise UsageError("--target cannot narrow a saved plan; pass it to 'topoform plan' instead")
    else:
        # the broker's own version decides the rules
        probe = BrokerVersionProbe(settings)
        loaded = load_files(args, env, target=live_target(args, env, probe))
        desired = loaded.topology
        from ..config.load import resolve as resolve_secrets

        config = resolve_secrets(loaded.config, env.environ)  # missing secrets: an error before any change
        vhosts = narrow_vhosts(args.vhosts, desired.vhost_names())

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
        version = probe.known() if saved is None else check_broker(saved, client, args.planfile)
        existing = set(client.vhost_names())
        _stop_on_problems(preflight.check_access(vhosts, existing), env)
        lock.acquire([v for v in vhosts if v in existing])
        live = read_live(client, vhosts, version=version)  # the version asked once
        if saved is not None:
            from ..config.hook import saved_plan_fingerprint  # topology + the config objects of its basis

            if saved.fingerprint != saved_plan_fingerprint(saved, live):
                raise StalePlanError(
                    f"the plan in {args.planfile} is stale: the broker changed since it was made",
                    hint="run 'topoform plan --out FILE' again and review it")
            if saved.broker is None:  # plan --state (or diff): never read from a broker
                made = (f"offline from the definitions export {saved.state_file} ('plan --state')"
                        if saved.state_file else "without a broker")
                env.err(f"note: the plan in {args.planfile} was made {made}; it is applied because this broker's "
                        "state matches the one it was made from (same fingerprint)")
            plan = saved
        else:
            if args.prune and not args.allow_data_loss:
                live = _exact_counts_for_prune(settings, desired, live)
            plan = _make_plan(desired, live, args, vhosts, config, settings.username, loaded)
            from .plan import narrow_to_targets

            plan = narrow_to_targets(plan, args, desired, config)  # --target KIND:NAME
        plan, health = _cluster_health(plan, client, desired, live, env, args, saved)

        as_json = bool(getattr(args, "json", False))
        if plan.changes and not plan.blocked:
            # before the plan is shown, and before the first change (a saved plan's secrets are read
            # again: all there?): a plan this user cannot carry out is never printed as if it could be
            # (a vhost the user cannot see reads as '+ vhost' though it exists)
            _stop_on_problems(preflight.check_plan(plan, environ=env.environ), env)
        if not as_json:
            _print_plan(plan, env)
        if plan.blocked:
            n = len(plan.blocked)
            raise BlockedPlanError(f"the plan holds {n} blocked change{'s' if n != 1 else ''}; nothing was applied"
                                   + ("" if args.migrate else " (see the reasons above; --migrate may help)"))
        if not plan.changes:
            if as_json:
                env.out(dump_json(apply_report(plan)))
            return ExitCode.OK
        _refuse_on_cluster(health, plan, args)  # alarms; a node down and a quorum queue at risk (--force)
        if not args.auto_approve and saved is None:  # a saved plan was reviewed already: no prompt
            if as_json:  # the prompt would land in the JSON document
                raise UsageError("apply --json does not ask for confirmation; nothing was applied",
                                 hint="review the plan ('topoform plan --json'), then run again with --auto-approve")
            if env.no_prompt_reason():  # no terminal, or CI=true: never a prompt
                raise UsageError(f"apply needs confirmation, but {env.no_prompt_reason()}; nothing was applied",
                                 hint="review the plan, then run again with --auto-approve")
            answer = env.ask("\nDo you want to apply these changes? Only 'yes' will be accepted: ")
            if answer.strip() != "yes":
                env.err("Apply cancelled; nothing was applied.")
                return ExitCode.ERROR

        options = ApplyOptions(allow_data_loss=args.allow_data_loss or bool(plan.options.get("allow_data_loss")),
                               force=args.force or bool(plan.options.get("force")),
                               channels=max(1, args.channels),
                               connections=max(1, args.connections or ApplyOptions.connections),
                               parallel=max(1, getattr(args, "parallel", None) or 1))
        progress = TerminalProgress(env.stdout) if env.stdout_isatty else LineProgress(env.stdout)
        if as_json:  # stdout holds only the report
            progress = LineProgress(env.stderr)
        ctx = ApplyContext(settings=settings, client=client, options=options, lock=lock, progress=progress)
        ctx.environ = env.environ  # a saved plan's secret references are read again (topoform/config/apply.py)
        if desired is not None:
            ctx.exclusive_queues.update((q.vhost, q.name) for q in desired.queues.values() if q.exclusive)
        try:
            executing()
            result = _apply_placed(plan, ctx, health, apply_plan)  # quorum leaders spread over the nodes
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop cleanly, say what was done and how to finish (exit 130)
            return report_interruption(plan, progress, env, as_json, saved_plan=saved is not None)
    finally:
        lock.release()
        client.close()

    if as_json:
        env.out(dump_json(apply_report(plan, result)))
        _summarize(result, dataclasses.replace(env, stdout=env.stderr))  # the text summary goes to stderr
    return _summarize(result, env) if not as_json else (ExitCode.OK if result.ok else ExitCode.ERROR)


def report_interruption(plan, progress, env: Environment, as_json: bool, *, saved_plan: bool = False,
                        command: str = "apply") -> int:
    """What an apply or destroy stopped by Ctrl-C or SIGTERM prints (what was done, what not, how to
    finish; with --json also the report, status "interrupted"); its exit code, 130."""
    from ..apply.executor import ApplyResult
    from ..apply.progress import interruption_lines

    progress.finish()
    for line in interruption_lines(plan.changes, progress.completed, saved_plan=saved_plan, command=command):
        env.err(line)
    if as_json:
        done = {id(c) for c in progress.completed}
        stopped = ApplyResult(done=list(progress.completed),
                              not_attempted=[c for c in plan.changes if id(c) not in done])
        env.out(dump_json(apply_report(plan, stopped, status="interrupted")))
    return 130


def apply_report(plan, result=None, status: str | None = None) -> dict:
    """The ``apply --json`` document (schemas/apply-report.schema.json): what was done, failed, skipped and
    not attempted, the timings per step (one per phase of consecutive changes of one action and kind), and
    the plan carried out. ``result`` None: the plan had no changes. Messages are redacted."""
    from ..broker.settings import redact
    from ..planner.render import render_json

    def ref(change) -> dict:
        return {"action": change.action.value, "kind": change.kind, "vhost": change.vhost, "name": change.name}

    counts = result.counts() if result is not None else {"create": 0, "update": 0, "delete": 0, "migrate": 0}
    status = status or ("no-changes" if result is None else ("applied" if result.ok else "failed"))
    return {
        "format_version": 1,
        "status": status,
        "ok": status in ("applied", "no-changes"),
        "counts": counts,
        "done": [ref(c) for c in result.done] if result is not None else [],
        "failed": [ref(f.change) | _failure_fields(f) for f in result.failed] if result is not None else [],
        "skipped": [ref(c) | {"reason": redact(why)} for c, why in result.skipped] if result is not None else [],
        "not_attempted": [ref(c) for c in result.not_attempted] if result is not None else [],
        "timings": {"total_seconds": round(result.elapsed, 6) if result is not None else 0.0,
                    "steps": [{"action": s.action, "kind": s.kind, "changes": s.changes,
                               "seconds": round(s.seconds, 6)} for s in getattr(result, "steps", ())]},
        "plan": render_json(plan),
    }


# Flags that would change what a saved plan does, refused with PLANFILE: (args attribute, flag as shown).
# A matching --env is a check, not a change (refused only when it names another environment).
# --allow-data-loss and --force widen what the plan's changes may do (drop messages, ignore consumers and
# alarms): a plan made with them records them in its options, and apply honours that.
PLAN_FLAGS = (("files", "-f/--file"), ("prune", "--prune"), ("migrate", "--migrate"),
              ("allow_data_loss", "--allow-data-loss"), ("force", "--force"),
              ("prune_users", "--prune-users"), ("vars", "--var"), ("var_files", "--var-file"))
# (--vhost and --target are refused with their own messages in run(); --rollback too.)


def refuse_plan_flags(args) -> None:
    """A one-line UsageError naming every flag given that would change the saved plan."""
    given = [flag for attr, flag in PLAN_FLAGS if getattr(args, attr, None)]
    if given:
        raise UsageError(f"apply PLANFILE carries out the saved plan as reviewed; {', '.join(given)} would change "
                         f"it; nothing was applied", hint="pass them to 'topoform plan --out FILE' and apply that plan")


def check_broker(saved, client, planfile: str) -> str | None:
    """Refuse a saved plan made for another broker than ``client``'s (its cluster name, else its management
    URL) or for another version of it (upgraded since: the plan's rules may no longer hold); return the
    broker's version (None: unknown). A plan that records no broker (``plan --state``) is not checked here."""
    from ..broker.live import broker_identity

    try:
        overview = client.overview()
    except Exception:  # noqa: BLE001 - unreadable: the reads that follow report it
        overview = {}
    now = broker_identity(client, overview)
    made = saved.broker
    if not made:
        return now.get("rabbitmq_version")
    same_cluster = (made.get("cluster_name") == now.get("cluster_name") if made.get("cluster_name")
                    and now.get("cluster_name") else made.get("management_url") == now.get("management_url"))
    if not same_cluster:
        # each URL is followed by a space: a cluster name's "@" after it must not read as its userinfo
        raise UsageError(f"the plan in {planfile} was made for another broker: {_describe(made)} (this is "
                         f"{_describe(now)} ); nothing was applied",
                         hint="point --url/--management-url at the broker the plan was made for, or run "
                              "'topoform plan --out FILE' against this one")
    if made.get("rabbitmq_version") and now.get("rabbitmq_version") and \
            made["rabbitmq_version"] != now["rabbitmq_version"]:
        raise StalePlanError(f"the plan in {planfile} was made for RabbitMQ {made['rabbitmq_version']}, the broker "
                             f"runs {now['rabbitmq_version']} now; nothing was applied",
                             hint="run 'topoform plan --out FILE' again and review it")
    return now.get("rabbitmq_version")


def _describe(broker) -> str:
    """``cluster NAME at URL`` (the URL last: see check_broker)."""
    name, url = broker.get("cluster_name"), broker.get("management_url")
    return " ".join(p for p in (f"cluster {name}" if name else "", f"at {url}" if url else "")) or "an unknown broker"


def _cluster_health(plan, client, desired, live, env: Environment, args, saved):
    """The cluster's notes and, for a plan made now, its member changes (cli/plan.py); ``(plan, health)``."""
    from ..apply.executor import HANDLERS
    from ..broker.cluster_read import add_members
    from ..planner.plan import Action

    HANDLERS.setdefault((Action.UPDATE, "queue"), add_members)  # quorum members (topoform/cluster.py)
    if saved is not None or desired is None:
        from .. import cluster
        from ..broker.cluster_read import read_health

        health = read_health(client, plan.vhosts, critical=False)  # quorum-critical: plan and upgrade-check
        for line in cluster.health_notes(health, vhosts=plan.vhosts or None) if health is not None else ():
            env.err(line)
        return plan, health
    from .plan import cluster_health

    return cluster_health(plan, client, desired, live, env, args, critical=False)


def _refuse_on_cluster(health, plan, args) -> None:
    """Refuse to start on a resource alarm, or with a node down when the plan deletes or
    recreates a quorum queue that has lost members; ``--force`` overrides (docs/clusters.md)."""
    from .. import cluster
    from ..errors import TopoformError

    if health is None or args.force or plan.options.get("force"):
        return
    reasons = cluster.apply_refusals(health, plan.changes)
    if reasons:
        raise TopoformError("apply refused to start, nothing was changed: " + "; ".join(reasons),
                            code="cluster-unsafe", hint="wait for the alarm to clear or the node to return, "
                                                        "or pass --force to apply anyway")


def _placement(plan, ctx, health):
    """(endpoints, where each placeable change goes) when the plan has new quorum queues and
    the cluster has two or more running nodes whose AMQP endpoints are known; else None."""
    from .. import cluster
    from ..broker.cluster_read import amqp_endpoints
    from ..errors import BrokerError

    if health is None or len(health.running) < 2:
        return None
    keys = [(c.vhost, c.name) for c in plan.changes if cluster.placeable(c)]
    if not keys:
        return None
    try:
        endpoints = amqp_endpoints(ctx.settings, ctx.client.get("/api/overview", params={"columns": "listeners"}),
                                   health.running)
    except BrokerError:
        return None
    if len(endpoints) < 2:
        return None
    leaders = [sum(1 for q in health.queues.values() if node and q.leader == node) for _s, node in endpoints]
    return endpoints, cluster.assign_endpoints(keys, len(endpoints), leaders)


def _apply_placed(plan, ctx, health, apply_plan):
    """Run the plan; on a cluster, each new quorum queue is declared through a connection to
    the node that leads the fewest quorum queues (its leader is the declaring node), the
    rest through the first endpoint. Segments run in order (topoform/cluster.py)."""
    from .. import cluster
    from ..apply.executor import ApplyContext

    placement = _placement(plan, ctx, health)
    if placement is None:
        return apply_plan(plan, ctx)
    endpoints, assigned = placement
    segments = cluster.split_for_placement(plan.changes, assigned)
    result = None
    for i, (index, changes) in enumerate(segments):
        part = dataclasses.replace(plan, changes=changes)
        if index == 0:
            run_ctx = ctx
        else:
            run_ctx = ApplyContext(settings=endpoints[index][0], client=ctx.client, options=ctx.options,
                                   lock=ctx.lock, progress=ctx.progress)
            run_ctx.environ = getattr(ctx, "environ", None)
            run_ctx.exclusive_queues.update(ctx.exclusive_queues)
        got = apply_plan(part, run_ctx)
        if result is None:
            result = got
        else:
            for name in ("done", "failed", "not_attempted", "skipped", "steps"):
                getattr(result, name, []).extend(getattr(got, name, []))
            result.elapsed += got.elapsed
        if not got.ok:
            for _index, later in segments[i + 1:]:
                result.not_attempted.extend(later)
            break
    return result


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
                             hint="grant the missing tags and permissions, enable the plugins, or set the "
                                  "secrets' variables and files, then run again")


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

    full = path if os.path.isabs(path) else os.path.join(env.cwd, path)
    try:
        with open(full, encoding="utf-8") as fh:
            json.load(fh)  # not JSON: the message below says what it looks like
    except OSError as exc:
        if not os.path.exists(full) and ("@" in path or "://" in path):
            # a stray word of an unquoted URL (a password with a space) must not be echoed
            raise InputError("cannot read the plan file: no such file (its name is not shown: it looks like "
                             "part of a URL)", hint="quote a URL whose password holds spaces, or use "
                             "--password-file") from None
        raise InputError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        topology = path.endswith((".yaml", ".yml"))
        raise InputError(f"{path}: not a plan file saved by 'topoform plan --out' (it is not JSON"
                         + ("; it looks like a topology file" if topology else "") + ")",
                         hint="apply topology files with 'topoform apply -f FILE', or save a plan with "
                              "'topoform plan --out FILE'") from None
    from .show import read_plan_file  # the checks every reader of a saved plan makes (one line each)

    return read_plan_file(path, env.cwd)


def _summarize(result, env: Environment) -> int:
    counts = result.counts()
    return report_outcome(result, env, "Apply", f"{counts['create']} created, {counts['update']} updated, "
                          f"{counts['delete']} deleted, {counts['migrate']} migrated", "topoform plan")


def _hinted(failure) -> str:
    return f" (hint: {failure.hint})" if failure.hint else ""


def _failure_fields(failure) -> dict:
    """A ``failed`` entry's own fields: the message, and the error's code and hint when known."""
    from ..broker.settings import redact
    fields: dict = {"message": redact(failure.message)}
    if failure.code:
        fields["code"] = failure.code
    if failure.hint:
        fields["hint"] = redact(failure.hint)
    return fields


def report_outcome(result, env: Environment, verb: str, done_text: str, remains_cmd: str) -> int:
    """The closing lines of an apply or destroy run (skipped changes, then complete or failed), its exit code."""
    elapsed = f"{result.elapsed:.1f}s"
    for change, why in result.skipped:
        env.out(f"Skipped {change.kind} {change.name} in vhost '{change.vhost}': {why}.")
    if result.ok:
        env.out(f"{verb} complete: {done_text} in {elapsed}.")
        return ExitCode.OK
    first = result.failed[0]
    for other in result.failed[1:]:
        env.err(f"Also failed: {other.change.kind} {other.change.name}: {other.message}{_hinted(other)}")
    env.err(f"{verb} failed at {first.change.kind} {first.change.name}: {first.message}{_hinted(first)}. "
            f"Done: {len(result.done)}. Not attempted: {len(result.not_attempted)}. "
            f"Run '{remains_cmd}' to see what remains. ({elapsed})")
    return ExitCode.ERROR
