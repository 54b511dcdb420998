"""Migrations at plan time: turn blocked changes into ``migrate`` changes with steps.

Owned by the migration work (issue 6). The planner calls :func:`expand_migration`
for every blocked exchange or queue change when ``--migrate`` is given, and
:func:`resume_changes` to recognize migrations interrupted on the broker.
Pure: no I/O, never imports broker, apply or cli.

**The broker is the state** (DESIGN principle 1). A queue migration leaves two
artifacts on the broker while it runs, and a later run reads from them alone where
it stopped:

* the temporary queue ``topoform.migrate.<queue>`` (classic, durable). Its arguments
  record what it is for: ``x-topoform-migrating`` (the queue's name),
  ``x-topoform-target`` (the properties the queue is being recreated with, as a JSON
  string) and ``x-topoform-before`` (the properties it had). Custom ``x-`` arguments
  are stored and shown by a classic queue but never checked (RABBITMQ-SEMANTICS 1.2).
* the journal queue ``topoform.journal.<queue>`` (classic, durable,
  ``x-max-length: 1``): it always holds the latest entry of the mover, which lets the
  next run tell whether the batch in flight when the tool died was acknowledged on
  its source (see ``topoform/apply/migrate.py``).

Which step a migration died in follows from the queue itself: the queue still has
its old properties (moving out), it is missing (deleted, not yet declared), or it
has the target properties (moving back). An exchange migration leaves one artifact,
the internal exchange ``topoform.migrate.<exchange>`` with the same arguments.

Names starting with ``topoform.migrate.`` and ``topoform.journal.`` are reserved for
these artifacts; :func:`is_migration_artifact` tells the planner to neither report
them as unmanaged nor prune them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from ..model import Args, Binding, Exchange, Queue, Resource, Topology
from .plan import Action, Change, Step

TEMP_PREFIX = "topoform.migrate."
JOURNAL_PREFIX = "topoform.journal."
ARG_MIGRATING = "x-topoform-migrating"
ARG_TARGET = "x-topoform-target"
ARG_BEFORE = "x-topoform-before"
ARG_ROLE = "x-topoform-role"  # "temporary" | "journal" | "rollback"
ROLE_ROLLBACK = "rollback"
MAX_NAME_BYTES = 255  # AMQP short string (SEMANTICS 1.5)

# The order of a queue migration's steps; ``apply/migrate.py`` runs them in this order.
QUEUE_OPS = ("declare_temp", "cancel_consumers", "move_out", "take_bindings", "drain_out", "delete_queue",
             "declare_queue", "move_back", "restore_bindings", "drain_back", "delete_temp")
# The phase each step belongs to: a run that finds the broker in a phase starts at its first step.
QUEUE_PHASE_OF = {"declare_temp": "out", "cancel_consumers": "out", "move_out": "out", "take_bindings": "out",
                  "drain_out": "out", "delete_queue": "out", "declare_queue": "gap", "move_back": "back",
                  "restore_bindings": "back", "drain_back": "back", "delete_temp": "back"}
# A rollback's own steps (``apply --migrate --rollback``); the others are the queue steps above.
ROLLBACK_OPS = ("begin_rollback", "declare_original", "end_rollback")
EXCHANGE_OPS = ("declare_temp_exchange", "copy_bindings", "delete_exchange", "declare_exchange",
                "restore_exchange_bindings", "delete_temp_exchange")
EXCHANGE_PHASE_OF = {"declare_temp_exchange": "out", "copy_bindings": "out", "delete_exchange": "out",
                     "declare_exchange": "gap", "restore_exchange_bindings": "back", "delete_temp_exchange": "back"}


# ---------------------------------------------------------------------- names and artifacts
def temp_queue_name(queue: str) -> str:
    return TEMP_PREFIX + queue


def journal_queue_name(queue: str) -> str:
    return JOURNAL_PREFIX + queue


def temp_exchange_name(exchange: str) -> str:
    return TEMP_PREFIX + exchange


def rollback_marker_name(queue: str) -> str:
    """The internal exchange that marks a rollback under way (exchanges and queues have separate names)."""
    return JOURNAL_PREFIX + queue


def is_reserved_name(name: str) -> bool:
    """Names topoform keeps for migration artifacts (queues and exchanges)."""
    return name.startswith(TEMP_PREFIX) or name.startswith(JOURNAL_PREFIX)


def is_migration_artifact(resource: Resource) -> bool:
    """True for the temporary queues, journals and exchanges a migration leaves, and their bindings.

    The planner must neither list these as unmanaged nor plan deletes of them: an
    interrupted migration's messages wait in them (see :func:`resume_changes`).

    >>> is_migration_artifact(Queue("/", "topoform.migrate.orders", durable=True,
    ...                              arguments=Args({"x-topoform-migrating": "orders"})))
    True
    """
    if isinstance(resource, (Queue, Exchange)):
        return is_reserved_name(resource.name) and ARG_MIGRATING in resource.arguments
    if isinstance(resource, Binding):
        names = [resource.source]
        if resource.destination_type in ("queue", "exchange"):
            names.append(resource.destination)
        return any(n.startswith(TEMP_PREFIX) for n in names)
    return False


def queue_properties(queue: Queue) -> dict:
    """The redeclarable properties of a queue as a plain dict (what the artifacts record)."""
    return {"durable": queue.durable, "auto_delete": queue.auto_delete, "arguments": queue.arguments.to_dict()}


def exchange_properties(exchange: Exchange) -> dict:
    return {"type": exchange.type, "durable": exchange.durable, "auto_delete": exchange.auto_delete,
            "internal": exchange.internal, "arguments": exchange.arguments.to_dict()}


def encode_record(props: Mapping) -> str:
    """JSON text stored in an artifact's arguments (sorted, so it is stable)."""
    return json.dumps(props, sort_keys=True, separators=(",", ":"))


def queue_from_record(vhost: str, name: str, text: Any) -> Queue | None:
    try:
        d = json.loads(text) if isinstance(text, (str, bytes)) else None
        if not isinstance(d, dict):
            return None
        return Queue(vhost=vhost, name=name, durable=bool(d.get("durable")), auto_delete=bool(d.get("auto_delete")),
                     arguments=Args(d.get("arguments") or {}))
    except (TypeError, ValueError):
        return None


def exchange_from_record(vhost: str, name: str, text: Any) -> Exchange | None:
    try:
        d = json.loads(text) if isinstance(text, (str, bytes)) else None
        if not isinstance(d, dict):
            return None
        return Exchange(vhost=vhost, name=name, type=str(d.get("type") or "direct"), durable=bool(d.get("durable")),
                        auto_delete=bool(d.get("auto_delete")), internal=bool(d.get("internal")),
                        arguments=Args(d.get("arguments") or {}))
    except (TypeError, ValueError):
        return None


def temp_queue_arguments(before: Queue, target: Queue) -> dict:
    """Arguments of the temporary queue: where it belongs and what the queue becomes."""
    # Classic whatever the vhost's default queue type: a quorum queue would refuse the if-empty
    # guard, put requeued messages back out of order and count them toward its delivery limit.
    return {ARG_MIGRATING: target.name, ARG_ROLE: "temporary", "x-queue-type": "classic",
            ARG_TARGET: encode_record(queue_properties(target)), ARG_BEFORE: encode_record(queue_properties(before))}


def journal_queue_arguments(queue: str) -> dict:
    # x-max-length 1 (drop-head): the journal always holds exactly its latest entry. Classic: it
    # is read with basic.get and requeued, which a quorum queue would count toward its delivery limit.
    return {ARG_MIGRATING: queue, ARG_ROLE: "journal", "x-max-length": 1, "x-queue-type": "classic"}


def rollback_marker_arguments(queue: str, original: Queue, forward: Queue | None) -> dict:
    """Arguments of the rollback marker: the properties the queue returns to, and those it was getting."""
    args = {ARG_MIGRATING: queue, ARG_ROLE: ROLE_ROLLBACK, ARG_TARGET: encode_record(queue_properties(original))}
    if forward is not None:
        args[ARG_BEFORE] = encode_record(queue_properties(forward))
    return args


def temp_exchange_arguments(before: Exchange, target: Exchange) -> dict:
    args = {ARG_MIGRATING: target.name, ARG_TARGET: encode_record(exchange_properties(target)),
            ARG_BEFORE: encode_record(exchange_properties(before))}
    ae = before.arguments.get("alternate-exchange")
    if isinstance(ae, str):
        args["alternate-exchange"] = ae  # unroutable messages take the same way out as before
    return args


# ---------------------------------------------------------------------- comparing queues
def _plain_args(queue: Queue) -> dict:
    args = queue.arguments.to_dict()
    if args.get("x-queue-type") == "classic":
        del args["x-queue-type"]  # absent means classic (SEMANTICS 1.3)
    return args


def same_queue(a: Queue, b: Queue) -> bool:
    """Would a declare of ``b`` find ``a`` equivalent in every field topoform manages?"""
    return (a.durable == b.durable and a.auto_delete == b.auto_delete and a.exclusive == b.exclusive
            and Args(_plain_args(a)) == Args(_plain_args(b)))


def same_exchange(a: Exchange, b: Exchange) -> bool:
    return (a.type, a.durable, a.auto_delete, a.internal) == (b.type, b.durable, b.auto_delete, b.internal) \
        and a.arguments == b.arguments


# ---------------------------------------------------------------------- refusals
def queue_refusal(before: Queue, after: Queue, stats: Any = None, *, force: bool = False) -> str | None:
    """Why a queue cannot be migrated (one sentence naming the field), or None when it can."""
    name = after.name
    if before.exclusive or after.exclusive:
        return (f"Queue {name} is exclusive: it belongs to its consumer's connection and is never migrated "
                "(field exclusive).")
    for side, q in (("live", before), ("desired", after)):
        if q.queue_type == "stream":
            return (f"Queue {name} is a stream ({side}): consumers track offsets into its log, which no "
                    "message move can preserve (field arguments.x-queue-type); recreate it by hand.")
    if after.queue_type == "quorum":
        if not after.durable:
            return f"Queue {name} cannot become a quorum queue while durable is false (field durable)."
        if after.auto_delete:
            return f"Queue {name} cannot become a quorum queue with auto_delete (field auto_delete)."
        if "x-max-priority" in after.arguments:
            return (f"Queue {name} cannot become a quorum queue with x-max-priority: quorum queues have no "
                    "priorities (field arguments.x-max-priority).")
    if len(temp_queue_name(name).encode("utf-8")) > MAX_NAME_BYTES:
        return (f"Queue {name} has a name too long for the temporary queue {TEMP_PREFIX}<name> "
                f"(at most {MAX_NAME_BYTES - len(TEMP_PREFIX)} bytes; field name).")
    messages = getattr(stats, "messages", None)
    limit = after.arguments.get("x-max-length")
    if isinstance(limit, int) and not isinstance(limit, bool) and isinstance(messages, int) and messages > limit:
        return (f"Queue {name} holds {messages} messages but the new x-max-length is {limit}: moving them "
                "back would drop or refuse the rest (field arguments.x-max-length).")
    consumers = getattr(stats, "consumers", None)
    if consumers and not force:
        them = "it" if consumers == 1 else "them"
        return (f"Queue {name} has {consumers} consumer{'' if consumers == 1 else 's'}: a migration deletes the "
                f"queue under {them} (field consumers); stop {them}, or use --force to cancel {them}.")
    return None


def exchange_refusal(before: Exchange, after: Exchange) -> str | None:
    if before.is_builtin or after.is_builtin:
        return f"Exchange {after.name!r} is built in and cannot be recreated (field name)."
    if len(temp_exchange_name(after.name).encode("utf-8")) > MAX_NAME_BYTES:
        return (f"Exchange {after.name} has a name too long for the temporary exchange {TEMP_PREFIX}<name> "
                "(field name).")
    return None


# ---------------------------------------------------------------------- steps
def _binding_label(b: Binding) -> str:
    return b.name


def queue_steps(before: Queue, target: Queue, live: Topology, stats: Any = None, *,
                start: str = "out") -> tuple[Step, ...]:
    """The ordered steps of a queue migration, from the phase ``start`` on (``out``, ``gap``, ``back``)."""
    q, temp, journal = target.name, temp_queue_name(target.name), journal_queue_name(target.name)
    bindings = [_binding_label(b) for b in live.bindings_to(target.vhost, "queue", q)]
    # bindings already taken by the temporary queue (an interrupted migration) return to the queue too
    returning = sorted(set(bindings) | {_binding_label(replace(b, destination=q))
                                        for b in live.bindings_to(target.vhost, "queue", temp)})
    messages = getattr(stats, "messages", None)
    consumers = getattr(stats, "consumers", None) or 0
    steps: list[Step] = []
    steps.append(Step("declare_temp", {"queue": temp, "journal": journal,
                                       "arguments": temp_queue_arguments(before, target)}))
    if consumers:
        steps.append(Step("cancel_consumers", {"queue": q, "consumers": consumers}))
    steps.append(Step("move_out", {"from": q, "to": temp, "messages": messages}))
    steps.append(Step("take_bindings", {"from": q, "to": temp, "bindings": bindings}))
    steps.append(Step("drain_out", {"from": q, "to": temp}))
    steps.append(Step("delete_queue", {"queue": q}))
    steps.append(Step("declare_queue", {"queue": q, **queue_properties(target)}))
    steps.append(Step("move_back", {"from": temp, "to": q}))
    steps.append(Step("restore_bindings", {"from": temp, "to": q, "bindings": returning}))
    steps.append(Step("drain_back", {"from": temp, "to": q}))
    steps.append(Step("delete_temp", {"queue": temp, "journal": journal}))
    first = {"out": 0, "gap": QUEUE_OPS.index("declare_queue"), "back": QUEUE_OPS.index("move_back")}[start]
    return tuple(s for s in steps if QUEUE_OPS.index(s.op) >= first)


def exchange_steps(before: Exchange, target: Exchange, live: Topology, *, start: str = "out") -> tuple[Step, ...]:
    x, temp = target.name, temp_exchange_name(target.name)
    src = [b.name for b in live.bindings_from(target.vhost, x)]
    dst = [b.name for b in live.bindings_to(target.vhost, "exchange", x)]
    if start != "out":  # the exchange is gone or recreated: its bindings wait on the temporary exchange
        src = [b.name for b in live.bindings_from(target.vhost, temp)]
        dst = [b.name for b in live.bindings_to(target.vhost, "exchange", temp)]
    steps = (
        Step("declare_temp_exchange", {"exchange": temp, "type": before.type,
                                       "arguments": temp_exchange_arguments(before, target)}),
        Step("copy_bindings", {"from": x, "to": temp, "source_bindings": src, "destination_bindings": dst}),
        Step("delete_exchange", {"exchange": x}),
        Step("declare_exchange", {"exchange": x, **exchange_properties(target)}),
        Step("restore_exchange_bindings", {"from": temp, "to": x, "count": len(src) + len(dst)}),
        Step("delete_temp_exchange", {"exchange": temp}),
    )
    first = {"out": 0, "gap": EXCHANGE_OPS.index("declare_exchange"),
             "back": EXCHANGE_OPS.index("restore_exchange_bindings")}[start]
    return tuple(s for s in steps if EXCHANGE_OPS.index(s.op) >= first)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _queue_reason(target: Queue, stats: Any, diff: Iterable[str], resumed_from: str | None = None) -> str:
    messages = getattr(stats, "messages", None)
    consumers = getattr(stats, "consumers", None) or 0
    held = (f"its {_plural(messages, 'message')}" if isinstance(messages, int)
            else "its messages (count not known yet)")
    fields = ", ".join(diff)
    text = (f"Recreates queue {target.name}{' to change ' + fields if fields else ''}: moves {held} to "
            f"{temp_queue_name(target.name)} with publisher confirms, deletes and redeclares the queue, restores "
            "its bindings and moves the messages back; messages published meanwhile reach the temporary queue "
            "through the same bindings.")
    if consumers:
        text += (f" --force: the {_plural(consumers, 'consumer')} will be cancelled (their connections are "
                 "closed, their unacknowledged messages return to the queue and are moved too).")
    return text


def _exchange_reason(target: Exchange, live: Topology, diff: Iterable[str]) -> str:
    x, temp = target.name, temp_exchange_name(target.name)
    n = len(live.bindings_from(target.vhost, x)) + len(live.bindings_to(target.vhost, "exchange", x))
    fields = ", ".join(diff)
    return (f"Recreates exchange {x}{' to change ' + fields if fields else ''}: deletes it, declares it again and "
            f"restores its {_plural(n, 'binding')} (as source and destination). Alternate path during the gap: "
            f"the internal exchange {temp} carries the same bindings meanwhile, so messages arriving through "
            f"exchange-to-exchange bindings are still routed; messages published to {x} itself between the "
            "delete and the declare are refused with 404 NOT_FOUND (publishers should retry).")


# ---------------------------------------------------------------------- the planner's entry points
def expand_migration(change: Change, desired: Topology, live: Topology,
                     queue_stats: Mapping[tuple, Any], *, force: bool = False) -> Change:
    """Return a MIGRATE change with its steps, or ``change`` (still blocked) with a reason why not.

    ``change`` is a blocked exchange or queue change whose ``before`` is the live object
    and ``after`` the desired one. ``queue_stats`` maps queue keys to objects with
    ``messages`` and ``consumers``; ``force`` allows migrating a queue with consumers
    (they are cancelled, which the reason says). Pure.
    """
    if change.action is not Action.BLOCKED or change.before is None or change.after is None:
        return change
    # A migration of this object already under way on the broker: finishing it is the change.
    # (Its consumers were cancelled when it started; stats lag ~5 s and may still count the
    # killed run's own consumer, so no --force is needed to resume.)
    for resume in resume_changes(desired, live, queue_stats):
        if (resume.kind, resume.vhost, resume.name) == (change.kind, change.vhost, change.name):
            return resume
    if change.kind == "queue":
        before, after = change.before, change.after
        stats = queue_stats.get(before.key)
        refusal = queue_refusal(before, after, stats, force=force)
        if refusal:
            return replace(change, reason=_refused(change.reason, refusal))
        return replace(change, action=Action.MIGRATE, reason=_queue_reason(after, stats, change.diff),
                       steps=queue_steps(before, after, live, stats))
    if change.kind == "exchange":
        before, after = change.before, change.after
        refusal = exchange_refusal(before, after)
        if refusal:
            return replace(change, reason=_refused(change.reason, refusal))
        return replace(change, action=Action.MIGRATE, reason=_exchange_reason(after, live, change.diff),
                       steps=exchange_steps(before, after, live))
    return change


def _refused(reason: str, refusal: str) -> str:
    """The blocked change's reason with --migrate's refusal in place of its advice to use --migrate."""
    head, advice, _ = (reason or "").rpartition("; use --migrate to ")
    if not advice:
        return f"{reason} {refusal}".strip()
    return f"{head}; --migrate cannot either: {refusal}"


@dataclass(frozen=True)
class Interrupted:
    """A migration (or a rollback) found half-done on the broker."""

    kind: str  # "queue" | "exchange"
    vhost: str
    name: str
    phase: str  # "out" (old object still there), "gap" (object missing), "back" (object has the target form)
    before: Resource  # the recorded properties before the migration (or the live object)
    target: Resource  # the recorded target properties (of a rollback: the original properties)
    temp: Resource | None  # the temporary queue or exchange (None: a rollback between its two halves)
    rollback: bool = False  # a rollback is under way (the marker exchange exists): it is what gets finished
    step: str = ""  # the step it stopped in, as far as the topology shows it


def _queue_step(live: Topology, vhost: str, name: str, phase: str) -> str:
    """The step a queue migration stopped in, told from where the bindings are."""
    temp = temp_queue_name(name)
    on_queue = live.bindings_to(vhost, "queue", name)
    on_temp = [b for b in live.bindings_to(vhost, "queue", temp) if not b.source.startswith(JOURNAL_PREFIX)]
    if phase == "out":
        return "take_bindings" if on_queue and on_temp else ("move_out" if on_queue else "drain_out/delete_queue")
    if phase == "gap":
        return "declare_queue"
    return "restore_bindings" if on_queue and on_temp else ("drain_back/delete_temp" if on_queue or not on_temp
                                                             else "move_back")


def find_interrupted(live: Topology) -> list[Interrupted]:
    """Every interrupted migration or rollback visible in ``live``, sorted by (kind, vhost, name)."""
    found: list[Interrupted] = []
    markers = {}
    for x in live.exchanges.values():
        name = x.arguments.get(ARG_MIGRATING)
        if (x.arguments.get(ARG_ROLE) == ROLE_ROLLBACK and isinstance(name, str)
                and x.name == rollback_marker_name(name)):
            markers[(x.vhost, name)] = x
    # per kind: candidates, how its temporary object is marked and named, how records read back
    kinds = (
        ("queue", live.queues.values(), lambda t: t.arguments.get(ARG_ROLE) == "temporary",
         temp_queue_name, queue_from_record, same_queue, live.queue),
        ("exchange", live.exchanges.values(), lambda t: ARG_MIGRATING in t.arguments,
         temp_exchange_name, exchange_from_record, same_exchange, live.exchange),
    )
    seen = set()
    for kind, candidates, is_marked, temp_name, from_record, same, lookup in kinds:
        for temp in candidates:
            if not (temp.name.startswith(TEMP_PREFIX) and is_marked(temp)):
                continue
            name = temp.arguments.get(ARG_MIGRATING)
            if not isinstance(name, str) or temp.name != temp_name(name):
                continue
            target = from_record(temp.vhost, name, temp.arguments.get(ARG_TARGET))
            recorded = from_record(temp.vhost, name, temp.arguments.get(ARG_BEFORE))
            if target is None:
                continue
            current = lookup(temp.vhost, name)
            if current is None:
                phase, before = "gap", recorded or target
            elif same(current, target):
                phase, before = "back", recorded or current
            else:
                phase, before = "out", current
            marker = markers.get((temp.vhost, name)) if kind == "queue" else None
            if marker is not None:
                original = queue_from_record(temp.vhost, name, marker.arguments.get(ARG_TARGET)) or before
                before, target = (current or target), original
            step = _queue_step(live, temp.vhost, name, phase) if kind == "queue" else ""
            found.append(Interrupted(kind, temp.vhost, name, phase, before, target, temp,
                                     rollback=marker is not None, step=step))
            seen.add((kind, temp.vhost, name))
    for (vhost, name), marker in markers.items():
        if ("queue", vhost, name) in seen:
            continue
        original = queue_from_record(vhost, name, marker.arguments.get(ARG_TARGET))
        current = live.queue(vhost, name)
        if original is None:
            continue
        phase = "gap" if current is None else ("back" if same_queue(current, original) else "out")
        found.append(Interrupted("queue", vhost, name, phase, current or original, original, None, rollback=True,
                                 step="end_rollback" if phase == "back" else "declare_temp"))
    return sorted(found, key=lambda i: (i.kind, i.vhost, i.name))


_PHASE_TEXT = {
    "queue": {"out": "the queue still has its old properties; messages are being moved out",
              "gap": "the queue was deleted and not declared again yet",
              "back": "the queue was recreated; messages are being moved back"},
    "exchange": {"out": "the exchange still has its old properties; its bindings are being copied",
                 "gap": "the exchange was deleted and not declared again yet",
                 "back": "the exchange was recreated; its bindings are being restored"},
}


def _count_text(queue_stats: Mapping[tuple, Any], vhost: str, names: Iterable[str], live: Topology) -> str:
    parts = []
    for q in names:
        if live.queue(vhost, q) is None:
            parts.append(f"{q}: absent")
            continue
        n = getattr(queue_stats.get(("queue", vhost, q)), "messages", None)
        parts.append(f"{q}: {_plural(n, 'message') if isinstance(n, int) else 'count not known yet'}")
    return "; ".join(parts)


def rollback_steps(item: Interrupted) -> tuple[Step, ...]:
    """What ``apply --migrate --rollback`` does to a queue migration found in ``item`` (display only:
    the run decides from the broker). The run carries the queue steps plus ``begin_rollback``
    (declares the marker), ``declare_original`` and ``end_rollback``."""
    q, temp = item.name, temp_queue_name(item.name)
    original = item.target if item.rollback else item.before
    back = [Step("move_back", {"from": temp, "to": q}), Step("restore_bindings", {"from": temp, "to": q}),
            Step("drain_back", {"from": temp, "to": q}), Step("delete_temp", {"queue": temp})]
    begin = Step("begin_rollback", {"marker": rollback_marker_name(q), **queue_properties(original)})
    end = Step("end_rollback", {"marker": rollback_marker_name(q)})
    declare = Step("declare_original", {"queue": q, **queue_properties(original)})
    again = [Step(op, {"queue": q}) for op in ("declare_temp", "move_out", "take_bindings", "drain_out",
                                                "delete_queue", "declare_queue")]
    if item.temp is None:  # between the two halves of a rollback: Q has the new properties, or is missing
        return tuple(([begin, declare] if item.phase == "gap" else [begin] + again + back) + [end])
    if item.phase == "out" and not item.rollback:
        first = [Step("move_out", {"from": q, "to": temp}), Step("take_bindings", {"from": q, "to": temp}),
                 Step("drain_out", {"from": q, "to": temp})]
        return tuple(first + [begin] + back + [end])
    if item.phase == "gap":
        return tuple([begin, declare] + back + [end])
    if item.phase == "back" and not item.rollback:  # Q has the new properties: finish, then migrate back
        return tuple([begin] + back + again + back + [end])
    return tuple([begin] + back + [end])


def _rollback_change(item: Interrupted, live: Topology, queue_stats: Mapping[tuple, Any], why: str) -> Change:
    original = item.target if item.rollback else item.before
    current = live.queue(item.vhost, item.name)
    where = _count_text(queue_stats, item.vhost, (item.name, temp_queue_name(item.name)), live)
    reason = (f"{why} queue {item.name} to its original properties (step {item.step or item.phase}; "
              f"messages: {where}): every message goes back to the queue in order, with every binding; "
              f"the marker exchange {rollback_marker_name(item.name)} records the rollback until it is done.")
    return Change(action=Action.MIGRATE, kind="queue", vhost=item.vhost, name=item.name,
                  before=current or item.before, after=original,
                  diff=tuple(_diff_fields(current or item.before, original)), reason=reason,
                  steps=rollback_steps(item))


def resume_changes(desired: Topology, live: Topology, queue_stats: Mapping[tuple, Any]) -> list[Change]:
    """Changes that finish migrations interrupted on the broker (found from what they left there).

    Each is a MIGRATE change toward the target recorded on the broker (not the files':
    if they changed meanwhile, the next plan shows the rest). A rollback under way is
    finished as a rollback. It supersedes whatever the planner would otherwise plan for
    that queue or exchange and for the bindings that have it as an end: see
    :func:`superseded`. Resuming needs no ``--force``: the queue's consumers were
    already cancelled when it started. The reason says the step, where the messages
    are (management counts, up to about 5 s old) and what the next apply does. Pure.
    """
    out: list[Change] = []
    for item in find_interrupted(live):
        if item.rollback:
            out.append(_rollback_change(item, live, queue_stats, "Finishes the interrupted rollback of"))
            continue
        state = _PHASE_TEXT[item.kind][item.phase]
        if item.kind == "queue":
            # no cancel_consumers step: the killed run's consumer may still show in lagging stats;
            # the run checks the broker's own consumer count and refuses real ones without --force
            steps = queue_steps(item.before, item.target, live, None, start=item.phase)
            where = _count_text(queue_stats, item.vhost, (item.name, item.temp.name), live)
            held = f"; step {item.step}; messages: {where}"
            undo = (" The next 'apply --migrate' finishes it; 'apply --migrate --rollback' instead puts the queue "
                    "back with its original properties, messages and bindings.")
        else:
            steps = exchange_steps(item.before, item.target, live, start=item.phase)
            held, undo = "", " The next 'apply --migrate' finishes it."
        diff = tuple(_diff_fields(item.before, item.target))
        reason = (f"Finishes the interrupted migration of {item.kind} {item.name} ({state}{held}); "
                  f"the broker records its target in {item.temp.name}.{undo}")
        wanted = (desired.queue(item.vhost, item.name) if item.kind == "queue"
                  else desired.exchange(item.vhost, item.name))
        if wanted is not None and not (same_queue(wanted, item.target) if item.kind == "queue"
                                       else same_exchange(wanted, item.target)):
            reason += " The files now want other properties: the next plan shows that change."
        out.append(Change(action=Action.MIGRATE, kind=item.kind, vhost=item.vhost, name=item.name,
                          before=item.before, after=item.target, diff=diff, reason=reason, steps=steps))
    return out


def rollback_changes(live: Topology, queue_stats: Mapping[tuple, Any]) -> list[Change]:
    """``apply --migrate --rollback``: one change per interrupted queue migration, putting it back. Pure.

    Exchange migrations hold no messages and are only ever finished (their resume change)."""
    out = []
    for item in find_interrupted(live):
        if item.kind == "queue":
            out.append(_rollback_change(item, live, queue_stats,
                                        "Finishes the interrupted rollback of" if item.rollback else "Rolls back"))
    return out


def _diff_fields(before: Resource, after: Resource) -> list[str]:
    fields = []
    for f in ("type", "durable", "auto_delete", "internal"):
        if hasattr(before, f) and getattr(before, f) != getattr(after, f):
            fields.append(f)
    b_args, a_args = before.arguments, after.arguments  # type: ignore[attr-defined]
    for k in sorted(set(b_args) | set(a_args)):
        if Args({k: b_args[k]} if k in b_args else {}) != Args({k: a_args[k]} if k in a_args else {}):
            fields.append(f"arguments.{k}")
    return fields


def superseded(changes: Iterable[Change], resumes: Iterable[Change]) -> list[Change]:
    """``changes`` without those that a resume change replaces, and without migration artifacts.

    Dropped: any change to an object being resumed (its resume change carries the
    target), any change to a binding that has it as source or destination (the
    migration restores those itself), and any change to a migration artifact.
    """
    busy = {(r.kind, r.vhost, r.name) for r in resumes}
    kept = []
    for c in changes:
        subject = c.subject
        if subject is not None and is_migration_artifact(subject):
            continue
        if (c.kind, c.vhost, c.name) in busy:
            continue
        if c.kind == "binding" and isinstance(subject, Binding):
            ends = {("exchange", subject.vhost, subject.source),
                    (subject.destination_type, subject.vhost, subject.destination)}
            if ends & busy:
                continue
        kept.append(c)
    return kept
