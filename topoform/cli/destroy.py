"""``topoform destroy``: delete every object the files manage, children first, with prune's guards.

What goes (each only when it exists on the broker): the files' bindings, shovels, super streams,
policies and operator policies, queues, topic permissions, exchanges, federation upstream sets and
upstreams, vhost limits, permissions, global parameters, user limits and users. What stays: the
vhosts themselves (they may hold others' objects), built-in exchanges, exclusive queues, objects
outside ``owns`` or declared ``external``, anything not in the files, the connected user and its
permissions, and the last administrator (that delete is blocked). With ``--vhost`` only those
vhosts' objects go (users and global parameters are global: they stay unless no ``--vhost`` is
given, or ``--target`` names them).

Guards as ``apply --prune``: a queue (or a super stream's partition) that holds messages, or whose
count the broker has not reported, is a blocked change without ``--allow-data-loss`` (exit 3,
nothing deleted); the broker's if-unused guard refuses a queue with consumers without ``--force``.
Confirmation as ``apply``: a prompt on a terminal, ``--auto-approve`` (``--yes``) otherwise.
``--dry-run`` prints the plan and stops. Exit codes: 0 done (or nothing to destroy), 3 blocked
changes, 1 error.

:func:`destroy_plan` is pure (no I/O), so the selection and order are tested offline.
"""
from __future__ import annotations

import argparse

from ..errors import BlockedPlanError, UsageError
from ..model import Topology
from ..planner.plan import Action, Change, Plan
from .common import BrokerVersionProbe, broker_settings, live_target, load_files, narrow_vhosts
from .env import Environment, ExitCode

# Deletion order (children first). The executor runs a plan in its order, one phase per run of
# consecutive changes of one (action, kind). Shovels stop before the queues they move messages
# between; bindings go before their exchanges and queues; federation policies before the upstreams
# they use; super streams (exchange, partitions and bindings together) before other queues;
# permissions before their users.
DESTROY_ORDER = ("shovel", "binding", "super_stream", "policy", "operator_policy", "queue",
                 "topic_permission", "exchange", "federation_upstream_set", "federation_upstream",
                 "vhost_limit", "permission", "global_parameter", "user_limit", "user")
_ORDER = {k: i for i, k in enumerate(DESTROY_ORDER)}
GLOBAL_KINDS = ("user", "user_limit", "global_parameter")
REASON = ""  # a plain delete needs no words; the ones below say what goes with it


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "destroy", parents=[parents["common"], parents["files"], parents["broker"]],
        help="delete every object the files manage (children first; guards as apply --prune)",
        description="Delete from the broker every object the topology files manage, in reverse dependency "
                    "order: bindings, shovels and policies before queues and exchanges, permissions before "
                    "users. Vhosts, objects outside 'owns' or 'external', the connected user and the last "
                    "administrator stay. Exit 0 done, 3 blocked changes (nothing deleted), 1 error.")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="only this vhost of the files (repeatable; users and global parameters then stay)")
    from .plan import add_target_argument

    add_target_argument(parser)
    parser.add_argument("--allow-data-loss", action="store_true",
                        help="delete queues (and super streams) that hold messages")
    parser.add_argument("--force", action="store_true", help="delete queues that have consumers (no if-unused guard)")
    parser.add_argument("--auto-approve", "--yes", "-y", dest="auto_approve", action="store_true",
                        help="destroy without asking for confirmation")
    parser.add_argument("--dry-run", action="store_true", help="print what would be deleted and stop")
    from .plan_output import add_format_arguments

    add_format_arguments(parser, summary=False, json_flag=True)
    parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for another apply to finish (default 60)")
    parser.add_argument("--channels", type=int, default=64, help=argparse.SUPPRESS)
    return parser


# ---------------------------------------------------------------------- the plan (pure)
def destroy_plan(desired: Topology, live, *, config=None, vhosts, ownership=None, connected_user: str | None = None,
                 allow_data_loss: bool = False, force: bool = False, include_global: bool = True) -> tuple[Plan, list]:
    """``(plan, notes)``: a delete (or a blocked delete) for each object of the files that the broker has.

    ``desired``: the files' topology; ``config``: their ConfigState; ``live``: a LiveState of ``vhosts``
    (with ``queue_stats`` and ``config``). ``notes``: what is kept on purpose, for people.
    """
    from ..config import live as config_live
    from ..planner.rules import data_loss_reason, queue_delete_refusal

    wanted = set(vhosts)
    have = live.topology
    stats = live.queue_stats or {}
    source = getattr(live, "source", "broker")
    present = {v for v in wanted if v not in live.missing_vhosts and ("vhost", v) in have.vhosts}
    changes: list[Change] = []
    notes: list[str] = []

    def in_scope(obj) -> bool:
        if obj.vhost not in present:
            return False
        scope = ownership.scope(obj.vhost) if ownership is not None else None
        return scope is None or scope.in_scope(obj)

    def delete(obj, reason: str = REASON) -> None:
        changes.append(Change(Action.DELETE, obj.kind, obj.vhost, obj.display_name, before=obj, reason=reason))

    def data_loss(obj, names) -> str | None:
        if allow_data_loss:
            return None
        for name in names:
            s = stats.get(("queue", obj.vhost, name))
            why = data_loss_reason(name, s.messages if s is not None else None, source)
            if why:
                return why
        return None

    # super streams (config kind) own an exchange, partition streams and bindings: planned as one
    streams = config_live.super_streams(have, sorted(present))
    stream_parts = set()
    for s in streams.values():
        stream_parts.add(("exchange", s.vhost, s.name))
        stream_parts.update(("queue", s.vhost, b.destination) for b in have.bindings_from(s.vhost, s.name))

    for p in desired.policies.values():
        live_p = have.policies.get(p.key)
        if live_p is not None and in_scope(live_p):
            delete(live_p)
    for x in desired.exchanges.values():
        live_x = have.exchanges.get(x.key)
        if live_x is None or live_x.is_builtin or x.key in stream_parts or not in_scope(live_x):
            continue
        delete(live_x, "The broker drops its bindings too.")
    for q in desired.queues.values():
        live_q = have.queues.get(q.key)
        if live_q is None or live_q.exclusive or q.key in stream_parts or not in_scope(live_q):
            continue
        s = stats.get(live_q.key)  # the executor's own rule, so apply never stops halfway
        why = queue_delete_refusal(live_q.name, live_q.queue_type, s.messages if s is not None else None,
                                   s.consumers if s is not None else None, allow_data_loss=allow_data_loss,
                                   force=force, source=source)
        if why:
            changes.append(Change(Action.BLOCKED, "queue", live_q.vhost, live_q.name, before=live_q, reason=why))
        else:
            delete(live_q)
    live_bindings = {b.key: b for b in have.bindings}
    for b in desired.bindings:
        live_b = live_bindings.get(b.key)
        if live_b is None or not live_b.source or ("exchange", b.vhost, b.source) in stream_parts:
            continue
        if in_scope(live_b):
            delete(live_b)

    # the config kinds: the files' objects that the broker has
    live_config = getattr(live, "config", None)
    have_config = dict(live_config.objects) if live_config is not None else {}
    have_config.update(streams)
    admins = {o.name for o in have_config.values() if o.kind == "user" and "administrator" in (o.fields.get("tags") or ())}
    for key in sorted((config.objects if config is not None else {}), key=repr):
        want = config.objects[key]
        h = have_config.get(key)
        if h is None:
            continue
        if want.kind in GLOBAL_KINDS:
            if not include_global:
                continue
        elif want.vhost not in present:
            continue
        user = h.fields.get("user") if h.kind == "topic_permission" else h.name
        if h.kind in ("user", "permission", "topic_permission") and connected_user is not None and user == connected_user:
            notes.append(f"{h.kind} {h.name!r} stays: it is the connected user's" + (
                "" if h.kind == "user" else f" (vhost '{h.vhost}')"))
            continue
        if h.kind == "user" and h.name in admins:
            if len(admins) <= 1:
                changes.append(Change(Action.BLOCKED, "user", h.vhost, h.name, before=h,
                                      reason="Deleting it would leave the broker without an administrator."))
                continue
            admins.discard(h.name)
        if h.kind == "super_stream":
            keys = list(h.fields["binding_keys"]) if "binding_keys" in h.fields else [
                str(i) for i in range(h.fields.get("partitions") or 0)]
            why = data_loss(h, [f"{h.name}-{k}" for k in keys])
            if why:
                changes.append(Change(Action.BLOCKED, h.kind, h.vhost, h.name, before=h,
                                      reason=f"Super stream {h.name}: {why}"))
                continue
        delete(h, "Its permissions go with it." if h.kind == "user"
               else REASON)

    ordered = tuple(sorted(changes, key=lambda c: (_ORDER.get(c.kind, len(_ORDER)), c.vhost, c.name, repr(c.key))))
    fingerprint = live.narrow(sorted(wanted)).fingerprint if hasattr(live, "narrow") else live.fingerprint
    options = {"destroy": True, "allow_data_loss": allow_data_loss, "force": force, "vhosts": sorted(wanted)}
    return Plan(changes=ordered, fingerprint=fingerprint, vhosts=tuple(sorted(wanted)), options=options), notes


# ---------------------------------------------------------------------- the command
def run(args, env: Environment) -> int:
    from ..apply.executor import ApplyContext, ApplyOptions, apply_plan
    from ..apply.lock import BrokerLock, describe_holder, holder_from_management
    from ..apply.preflight import Preflight
    from ..apply.progress import LineProgress, TerminalProgress
    from ..broker.http import ManagementClient
    from ..broker.live import read_live
    from ..planner.target import narrow_plan, parse_targets
    from .apply import _exact_counts_for_prune, _stop_on_problems
    from .plan_output import output_format, render_plan

    fmt = output_format(args)
    targets = parse_targets(args.target_specs)
    if args.lock_timeout < 0:
        raise UsageError("--lock-timeout must be zero or more seconds")
    settings = broker_settings(args, env)
    probe = BrokerVersionProbe(settings)
    loaded = load_files(args, env, target=live_target(args, env, probe))
    desired = loaded.topology
    vhosts = narrow_vhosts(args.vhosts, desired.vhost_names())
    as_json = fmt == "json"
    client = ManagementClient(settings)
    owner = loaded.ownership.owner if loaded.ownership else None
    lock = BrokerLock(settings, timeout=args.lock_timeout, lookup_holder=holder_from_management(client),
                      holder=describe_holder(settings, owner=owner),
                      on_wait=lambda v, who: env.err(f"Waiting for the apply lock on vhost '{v}' "
                                                     f"(held by {who or 'another apply'}) ..."))
    preflight = Preflight(client, settings)
    result = None
    try:
        existing = set(client.vhost_names())
        _stop_on_problems(preflight.check_access(vhosts, existing), env)
        _stop_on_problems(preflight.check_invisible(vhosts, existing), env)
        if not args.dry_run:
            lock.acquire([v for v in vhosts if v in existing])
        live = read_live(client, vhosts, version=probe.known())  # the version was asked once already
        if not args.allow_data_loss:  # exact counts for the queues the stats have not reported yet
            others = Topology.build([q for q in live.topology.queues.values() if q.key not in desired.queues])
            live = _exact_counts_for_prune(settings, others, live)
        plan, notes = destroy_plan(desired, live, config=loaded.config, vhosts=vhosts, ownership=loaded.ownership,
                                   connected_user=settings.username, allow_data_loss=args.allow_data_loss,
                                   force=args.force, include_global=not args.vhosts or bool(targets))
        if targets:
            known = [r for r in desired.resources() if r.vhost in set(vhosts)]
            known += [o for o in loaded.config.objects.values() if not o.vhost or o.vhost in set(vhosts)] \
                if loaded.config is not None else []
            plan = narrow_plan(plan, targets, known=known)
        if loaded.environment is not None or owner is not None:
            import dataclasses

            plan = dataclasses.replace(plan, env=loaded.environment, owner=owner)
        for note in notes:
            env.err(f"note: {note}")
        acting = bool(plan.changes) and not plan.blocked and not args.dry_run
        from . import apply as apply_cli

        if as_json and acting and args.auto_approve and hasattr(apply_cli, "apply_report"):
            pass  # stdout gets one document: the apply report, which holds the plan
        elif plan.changes or fmt != "text":  # an empty text plan would say "the broker matches the files"
            env.stdout.write(render_plan(plan, fmt, color=env.color and fmt == "text", title="topoform destroy"))
        if plan.blocked:
            n = len(plan.blocked)
            raise BlockedPlanError(f"the plan holds {n} blocked change{'s' if n != 1 else ''}; nothing was deleted")
        if not plan.changes or args.dry_run:
            if not plan.changes and fmt == "text":
                env.out("Nothing to destroy: the broker has none of the objects the files manage.")
            return ExitCode.OK
        _stop_on_problems(preflight.check_plan(plan), env)
        if not args.auto_approve:
            if as_json:
                raise UsageError("destroy --json does not ask for confirmation; nothing was deleted",
                                 hint="review the plan ('topoform destroy --dry-run'), then run again with "
                                      "--auto-approve")
            if env.no_prompt_reason():  # no terminal, or CI=true: never a prompt
                raise UsageError(f"destroy needs confirmation, but {env.no_prompt_reason()}; nothing was deleted",
                                 hint="review the plan (--dry-run), then run again with --auto-approve")
            n = len(plan.changes)
            answer = env.ask(f"\nDo you really want to delete these {n} object{'s' if n != 1 else ''}? "
                             "Only 'yes' will be accepted: ")
            if answer.strip() != "yes":
                env.err("Destroy cancelled; nothing was deleted.")
                return ExitCode.ERROR
        options = ApplyOptions(allow_data_loss=args.allow_data_loss, force=args.force, channels=max(1, args.channels))
        out = env.stderr if as_json else env.stdout
        progress = TerminalProgress(out) if env.stdout_isatty and not as_json else LineProgress(out)
        ctx = ApplyContext(settings=settings, client=client, options=options, lock=lock, progress=progress)
        ctx.environ = env.environ
        try:
            result = apply_plan(plan, ctx)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what was deleted and what not, lock released (exit 130)
            return apply_cli.report_interruption(plan, progress, env, as_json, command="destroy")
    finally:
        lock.release()
        client.close()
    if as_json:  # stdout holds one document: the apply report (schemas/apply-report.schema.json)
        import dataclasses

        report = getattr(apply_cli, "apply_report", None)
        if report is not None:
            from .common import dump_json

            env.out(dump_json(report(plan, result)))
        return _summarize(result, dataclasses.replace(env, stdout=env.stderr))
    return _summarize(result, env)


def _summarize(result, env: Environment) -> int:
    from .apply import report_outcome

    return report_outcome(result, env, "Destroy", f"{result.counts()['delete']} deleted", "topoform destroy --dry-run")

__all__ = ["register", "run", "destroy_plan", "DESTROY_ORDER"]
