"""``topoform plan``: diff the files against the live broker (or a definitions export).

Prints the plan as text (or ``--json``), saves it with ``--out FILE`` (the JSON plan
with the fingerprint of the live state it was computed from, for ``apply PLANFILE``).

Exit codes (SPEC section 3): 0 ok; with ``--detailed-exitcode`` 0 no changes and 2
changes; 3 the plan holds blocked changes (whatever the flags); 1 error.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tempfile

from ..errors import InputError, UsageError
from ..perf import gc_paused
from .common import broker_settings, dump_json, live_target, load_files, narrow_vhosts, state_target
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
    add_target_argument(parser)  # --target KIND:NAME (topoform/planner/target.py)
    parser.add_argument("--out", metavar="FILE", help="save the plan (JSON, with the live state's fingerprint, the "
                                                      "broker and a digest of its content) for 'topoform apply "
                                                      "FILE'; - writes it to stdout (the text plan then goes to "
                                                      "stderr)")
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
        reader.prefetch_nodes()  # for the cluster's health notes, read after the plan
    try:
        with gc_paused():
            return _compute(args, env, reader)
    finally:
        if reader is not None:
            reader.close()
            reader.client.close()


def _offline_user(args, env: Environment) -> str | None:
    """With ``--state``: the user apply would connect as (flags, environment, else guest), whose own
    permissions are topoform's access, never reported as unmanaged; None when the settings are unusable."""
    from ..errors import TopoformError

    try:
        return broker_settings(args, env).username
    except TopoformError:
        return None


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
        vhosts = narrow_vhosts(args.vhosts, vhosts)
        narrowed = tuple(vhosts)
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
    user = reader.client.settings.username if reader is not None else _offline_user(args, env)
    plan = make_plan(desired, live, options, config=config, connected_user=user, ownership=loaded.ownership)
    from ..config.hook import seal  # the fingerprint covers the config objects the plan was based on

    plan = seal(plan, config, live, options)
    plan = narrow_to_targets(plan, args, desired, config)  # --target KIND:NAME
    if reader is not None:  # quorum queue members, leaders, alarms, quorum-critical nodes (topoform/cluster.py)
        plan, _health = cluster_health(plan, reader.client, desired, live, env, args, nodes_answer=reader.nodes)
        plan = dataclasses.replace(plan, broker=reader.identity())  # apply PLANFILE refuses another broker
    else:
        plan = dataclasses.replace(plan, state_file=os.path.basename(args.state))  # apply PLANFILE says so
    return _stamp(plan, loaded), desired, live


def cluster_health(plan, client, desired, live, env: Environment, args=None, *, critical: bool = True,
                   nodes_answer=None):
    """Read the cluster, print its notes (stderr) and add the member changes: ``(plan, health)``.

    Notes: nodes down, alarms, quorum queue members offline or missing, leaders concentrated
    on one node, quorum-critical nodes; ``x-quorum-initial-group-size`` above the cluster size.
    Member changes (update queue, steps ``add_member``) where the broker can add them (4.0+);
    not with ``--target``. Shared with apply. ``health`` None: the nodes could not be read.
    ``nodes_answer``: the nodes listing started earlier (``LiveReader.nodes``), or None: read now.
    """
    from .. import cluster
    from ..broker.cluster_read import read_health

    health = read_health(client, plan.vhosts or desired.vhost_names(), critical=critical, nodes_answer=nodes_answer)
    if health is None:
        return plan, None
    for line in cluster.group_size_warnings(desired.queues.values(), len(health.nodes)):
        env.err(f"warning: {line}")
    for line in cluster.health_notes(health, vhosts=plan.vhosts or None):
        env.err(line)
    if args is not None and getattr(args, "target_specs", None):
        return plan, health
    managed = {(q.vhost, q.name): q for q in live.topology.queues.values() if q.key in desired.queues}
    busy = {(c.vhost, c.name) for c in plan.changes if c.kind == "queue"}
    changes = [c for c in cluster.member_changes(health, managed) if (c.vhost, c.name) not in busy]
    if changes:
        from ..planner.plan import order_changes

        plan = dataclasses.replace(plan, changes=order_changes(plan.changes + tuple(changes)))
    return plan, health


def add_target_argument(parser) -> None:
    """``--target KIND:NAME`` (shared with apply and destroy)."""
    parser.add_argument("--target", dest="target_specs", action="append", metavar="KIND:NAME",
                        help="only this object, its bindings and what it needs that does not exist yet (repeatable; "
                             "NAME may be a glob; KIND as in the plan JSON: queue, exchange, binding, policy, user, "
                             "permission, shovel, ...)")


def narrow_to_targets(plan, args, desired, config):
    """The plan narrowed by ``--target`` (topoform/planner/target.py); unchanged without it. Shared with apply."""
    specs = getattr(args, "target_specs", None)
    if not specs:
        return plan
    from ..planner.target import narrow_plan, parse_targets

    wanted = set(plan.vhosts)
    known = [r for r in desired.resources() if r.vhost in wanted]
    if config is not None:
        known += [o for o in config.objects.values() if not o.vhost or o.vhost in wanted]
    return narrow_plan(plan, parse_targets(specs), known=known)


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


_VHOSTS_LINE = re.compile(r"^vhosts:[ \t]*(?:#.*)?$", re.M)
_TOP_LEVEL = re.compile(r"^[^\s#]", re.M)  # a line at column 0 that is not a comment ends the block
_FIRST_KEY = re.compile(r"^( +)[^ #\r\n]", re.M)


def _scan_vhost_keys(text: str, yaml) -> set[str]:
    """The keys one level under each top-level block-style ``vhosts:`` (regular expressions over
    the text: a 10,000-queue file is 128,000 lines, too many to look at one by one in Python)."""
    found: set[str] = set()
    for top in _VHOSTS_LINE.finditer(text):
        end = _TOP_LEVEL.search(text, top.end())
        block = text[top.end():end.start() if end else len(text)]
        first = _FIRST_KEY.search(block)
        if first is None:
            continue
        width = len(first.group(1))
        for line in re.finditer(rf"^ {{{width}}}([^ #\r\n][^\r\n]*)$", block, re.M):
            stripped = line.group(1).strip()
            if ":" not in stripped:
                continue
            try:
                node = yaml.safe_load(stripped)
            except yaml.YAMLError:
                continue
            if isinstance(node, dict):
                found.update(str(k) for k in node)
    return found


def run(args, env: Environment) -> int:
    output_format(args)  # a contradictory --json --format is refused before any work
    from .fleet import check_flags, run_fleet

    check_flags(args)
    from ..planner.target import parse_targets

    parse_targets(getattr(args, "target_specs", None))  # a bad --target is refused before any work
    check_out(args)
    if getattr(args, "targets", None):  # a fleet: this command once per target, in parallel (cli/fleet.py)
        return run_fleet(run, args, env, "plan")
    if args.rollback and not args.migrate:
        raise UsageError("--rollback needs --migrate (it rolls back interrupted migrations)")
    # The collector stays paused from the load to the printed plan and the exit code: switched back
    # on in between, its first collection rescanned everything loaded, read and planned (20 ms at
    # 1,000 queues); switched on only once _plan_and_print has returned, it finds that freed.
    with gc_paused():
        return _plan_and_print(args, env)


def check_out(args) -> None:
    """``--out FILE``: not empty; ``-`` (stdout) only for one broker, and only beside the text plan
    (which then goes to stderr) or ``--format json`` (the same document)."""
    out = getattr(args, "out", None)
    if out is None:
        return
    if not out.strip():
        raise UsageError("--out needs a file name (or - for standard output)")
    if out != "-":
        return
    if getattr(args, "targets", None):
        raise UsageError("--out - cannot be used with --targets: the fleet's plans go to one file",
                         hint="give --out FILE")
    if output_format(args) == "markdown" or getattr(args, "summary", False):
        what = "--summary" if getattr(args, "summary", False) else "--format markdown"
        raise UsageError(f"--out - writes the plan JSON to standard output; {what} cannot go there too",
                         hint="give --out FILE, or leave out " + what)


def _plan_and_print(args, env: Environment) -> int:
    from ..planner.render import render_json

    plan, _desired, _live = compute_plan(args, env)
    if args.rollback:
        from .apply import rollback_plan

        plan = rollback_plan(plan, _live)
    if args.out == "-":  # the saved plan on stdout (as 'import/export -o -'); the text plan on stderr
        if output_format(args) == "text":
            print_plan(plan, args, dataclasses.replace(env, stdout=env.stderr))
        env.out(dump_json(render_json(plan)))
    else:
        print_plan(plan, args, env)  # --format text|json|markdown, --summary (cli/plan_output.py)
    if args.out and args.out != "-":
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
