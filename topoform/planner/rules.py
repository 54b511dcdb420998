"""The broker's verdicts on changes, as a table; reasons for blocked changes; the data-loss rule.

Every row says what RabbitMQ 3.10 does when an existing exchange or queue is
redeclared with one field changed, and points at its evidence in
``/work/shared/RABBITMQ-SEMANTICS.md`` (the section numbers below). The verdicts:

* ``rejects`` - the redeclare fails with 406 PRECONDITION_FAILED; an application that
  declares the object at start-up would crash.
* ``locks``   - the redeclare fails with 405 RESOURCE_LOCKED (exclusivity).
* ``ignores`` - the redeclare succeeds and the broker silently keeps the old value.
* ``in-place`` - the object can be changed where it is (policies, vhost settings).

``tests/integration/test_rules_broker.py`` replays every ``rejects`` and ``ignores``
row against a real broker, so the table cannot drift from reality unnoticed.

For queue arguments the verdict depends on the type of the *existing* queue
(section 1.2): a redeclare checks only that type's list of keys and ignores every
other key, including keys of another queue type and custom ``x-foo`` keys.

Pure: imports only model and plan.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

REJECTS = "rejects"
LOCKS = "locks"
IGNORES = "ignores"
IN_PLACE = "in-place"

QUEUE_TYPES = ("classic", "quorum", "stream")


@dataclass(frozen=True)
class Rule:
    """One row: what the broker does when ``field`` of an existing ``kind`` changes.

    ``queue_types`` restricts a queue row to existing queues of those types (empty: all).
    ``policy_key`` names the policy key that can carry the same setting, if any.
    ``evidence`` is the section of RABBITMQ-SEMANTICS.md that proves the verdict;
    ``verified`` says whether it was observed on a broker (else read in the source).
    """

    kind: str
    field: str
    verdict: str
    evidence: str
    queue_types: tuple[str, ...] = ()
    policy_key: str | None = None
    verified: bool = True
    since: str | None = None  # the first RabbitMQ version the row holds for (None: 3.10, the oldest)
    until: str | None = None  # the first version it no longer holds for (None: still holds)

    def holds(self, version: tuple[int, int] | None) -> bool:
        """Whether the row describes ``version`` (``None``: any version)."""
        if version is None:
            return True
        parse = lambda text: tuple(int(p) for p in text.split("."))  # noqa: E731
        if self.since is not None and tuple(version) < parse(self.since):
            return False
        return not (self.until is not None and tuple(version) >= parse(self.until))

    def applies(self, kind: str, field: str, queue_type: str | None) -> bool:
        if self.kind != kind:
            return False
        if self.field != field and not (self.field.endswith(".*") and field.startswith(self.field[:-1])):
            return False
        return not self.queue_types or (queue_type or "classic") in self.queue_types


# Versions a row is limited to (the rest hold on 3.10.8, 4.0.5 and 4.3.6 alike, BROKERS.md).
# From 4.3 a declare with x-queue-master-locator is refused outright (the connection is
# closed, 541: deprecated feature not permitted), so no redeclare verdict exists there;
# validate reports it as an error for 4.3 instead (topoform.versions row
# queue_master_locator_refused).
ARGUMENT_VERSIONS: dict[str, tuple[str | None, str | None]] = {
    "x-queue-master-locator": (None, "4.3"),
}

# Queue arguments: (argument, classic, quorum, stream, policy key, evidence, verified).
# R = checked on redeclare (406), I = ignored (old value kept). Section 1.2 of the semantics file.
R, I = REJECTS, IGNORES
QUEUE_ARGUMENTS: tuple[tuple, ...] = (
    ("x-message-ttl", R, R, I, "message-ttl", "1.2", True),
    ("x-expires", R, R, I, "expires", "1.2", True),
    ("x-max-length", R, R, I, "max-length", "1.2", True),
    ("x-max-length-bytes", R, R, R, "max-length-bytes", "1.2", True),
    ("x-overflow", R, R, I, "overflow", "1.2", True),
    ("x-dead-letter-exchange", R, R, I, "dead-letter-exchange", "1.2", True),
    ("x-dead-letter-routing-key", R, R, I, "dead-letter-routing-key", "1.2", True),
    ("x-single-active-consumer", R, R, I, None, "1.2", True),
    ("x-queue-type", R, R, R, None, "1.2, 1.3", True),
    ("x-max-priority", R, I, I, None, "1.2", True),
    ("x-queue-mode", R, I, I, "queue-mode", "1.2", True),
    ("x-queue-version", R, I, I, "queue-version", "1.2", True),
    ("x-queue-master-locator", R, I, I, "queue-master-locator", "1.2", True),
    ("x-delivery-limit", I, R, I, "delivery-limit", "1.2", True),
    ("x-dead-letter-strategy", I, R, I, "dead-letter-strategy", "1.2 [source]", False),
    ("x-max-in-memory-length", I, R, I, "max-in-memory-length", "1.2 [source]", False),
    ("x-max-in-memory-bytes", I, R, I, "max-in-memory-bytes", "1.2 [source]", False),
    ("x-quorum-initial-group-size", I, R, I, None, "1.2 [source]", False),
    ("x-queue-leader-locator", I, R, R, "queue-leader-locator", "1.2 [source]", False),
    ("x-max-age", I, I, R, "max-age", "1.2", True),
    ("x-stream-max-segment-size-bytes", I, I, R, "stream-max-segment-size-bytes", "1.2", True),
    ("x-initial-cluster-size", I, I, R, "initial-cluster-size", "1.2 [source]", False),
)
del R, I


def _queue_argument_rules() -> list[Rule]:
    rows = []
    for arg, classic, quorum, stream, policy_key, evidence, verified in QUEUE_ARGUMENTS:
        for qtype, verdict in (("classic", classic), ("quorum", quorum), ("stream", stream)):
            # stream rows are from the source only: 3.10.8 experiments covered classic and quorum
            since, until = ARGUMENT_VERSIONS.get(arg, (None, None))
            rows.append(Rule("queue", f"arguments.{arg}", verdict, f"§{evidence}", (qtype,), policy_key,
                             verified and qtype != "stream", since, until))
    return rows


RULES: tuple[Rule, ...] = (
    # ---- queues: properties (section 1.1; exclusivity 4.1)
    Rule("queue", "durable", REJECTS, "§1.1, §1.4"),
    Rule("queue", "auto_delete", REJECTS, "§1.1, §1.4"),
    Rule("queue", "exclusive", LOCKS, "§1.1, §4.1"),
    # ---- queues: arguments checked or ignored per queue type (section 1.2)
    *_queue_argument_rules(),
    Rule("queue", "arguments.*", IGNORES, "§1.2 (any other key)"),
    # ---- exchanges (section 2)
    Rule("exchange", "type", REJECTS, "§2"),
    Rule("exchange", "durable", REJECTS, "§2"),
    Rule("exchange", "auto_delete", REJECTS, "§2"),
    Rule("exchange", "internal", REJECTS, "§2"),
    Rule("exchange", "arguments.alternate-exchange", REJECTS, "§2", policy_key="alternate-exchange"),
    Rule("exchange", "arguments.*", IGNORES, "§2 (every other argument)"),
    # ---- objects the broker changes in place (sections 10.1, 10.5, 11)
    Rule("policy", "pattern", IN_PLACE, "§10.1, §11"),
    Rule("policy", "apply_to", IN_PLACE, "§10.1, §11"),
    Rule("policy", "priority", IN_PLACE, "§10.1, §11"),
    Rule("policy", "definition.*", IN_PLACE, "§10.1, §11"),
    Rule("vhost", "description", IN_PLACE, "§10.5"),
    Rule("vhost", "tags", IN_PLACE, "§10.5"),
    Rule("vhost", "default_queue_type", IN_PLACE, "§1.6, §10.5"),
)


def rule_for(kind: str, field: str, queue_type: str | None = None, version: tuple[int, int] | None = None) -> Rule:
    """The first row of :data:`RULES` that covers the field for ``version`` (``None``: any)
    (exact rows come before ``.*`` rows)."""
    for rule in RULES:
        if rule.applies(kind, field, queue_type) and rule.holds(version):
            return rule
    # An unknown property of an exchange or queue cannot be changed by a redeclare either.
    return Rule(kind, field, REJECTS if kind in ("exchange", "queue") else IN_PLACE, "(no row)", verified=False)


@dataclass(frozen=True)
class Verdict:
    """The classification of one changed object: its action and the one-sentence reason."""

    action: str  # "update" | "blocked"
    reason: str
    rules: tuple[Rule, ...] = ()


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def classify_change(kind: str, name: str, paths: Iterable[str], queue_type: str | None = None,
                    default_queue_type: str | None = None, version: tuple[int, int] | None = None) -> Verdict:
    """Classify a changed object from its differing field paths.

    ``queue_type`` is the existing (live) queue's type, which decides which arguments a
    redeclare checks. ``default_queue_type`` is the vhost's, mentioned when it is the
    reason a declare without ``x-queue-type`` would create another type.
    """
    paths = sorted(paths)
    rules = tuple(rule_for(kind, p, queue_type, version) for p in paths)
    if all(r.verdict == IN_PLACE for r in rules):
        return Verdict("update", "", rules)
    rejected = [p for p, r in zip(paths, rules) if r.verdict == REJECTS]
    locked = [p for p, r in zip(paths, rules) if r.verdict == LOCKS]
    ignored = [p for p, r in zip(paths, rules) if r.verdict == IGNORES]
    policy_keys = sorted({r.policy_key for r in rules if r.policy_key and r.verdict == REJECTS})
    noun = "queue" if kind == "queue" else "exchange"
    clauses = []
    if locked:
        clauses.append(f"cannot change {_join(locked)} in place: the broker answers 405 RESOURCE_LOCKED "
                       f"to the app that declares the {noun}")
    if rejected:
        clauses.append(f"cannot change {_join(rejected)} in place: the broker rejects the redeclare with "
                       f"406 PRECONDITION_FAILED (an app that redeclares the {noun} would crash)")
    if ignored:
        whose = f"a {queue_type} queue" if kind == "queue" and queue_type else f"an {noun}"
        text = (f"the broker would silently keep the old value of {_join(ignored)} "
                f"({whose} ignores {'it' if len(ignored) == 1 else 'them'} on redeclare)")
        clauses.append(text if clauses else "cannot change in place: " + text)
    if "arguments.x-queue-type" in paths and default_queue_type and default_queue_type != "classic":
        clauses.append(f"the vhost's default queue type {default_queue_type} applies to a durable declare "
                       "without x-queue-type")
    if policy_keys:
        clauses.append(f"a policy can carry {_join(policy_keys)} instead")
    action = "recreate the queue and move its messages" if kind == "queue" else "recreate the exchange and its bindings"
    reason = f"{_capital('; '.join(clauses))}; use --migrate to {action}."
    return Verdict("blocked", reason, rules)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------- data loss
def data_loss_reason(name: str, messages: int | None, source: str = "broker") -> str | None:
    """Why deleting a queue is blocked without ``--allow-data-loss``, or None when it is empty.

    ``messages`` is None when the count is unknown: a ``--state`` export has no counts,
    and stats of a new queue appear only after about 5 s (section 10.3). Unknown is
    treated as "may hold messages".
    """
    if messages == 0:
        return None
    if messages is None:
        why = ("the state file has no message counts" if source == "state-file"
               else "the broker has not reported its message count yet")
        return f"Queue {name} may hold messages ({why}); deleting it could lose them (use --allow-data-loss)."
    held = "1 message; deleting it would lose it" if messages == 1 else f"{messages} messages; deleting it would lose them"
    return f"Queue {name} holds {held} (use --allow-data-loss)."


def queue_delete_refusal(name: str, queue_type: str | None, messages: int | None, consumers: int | None, *,
                         allow_data_loss: bool = False, force: bool = False, source: str = "broker") -> str | None:
    """Why deleting queue ``name`` is refused, or None: the one rule of the planner (``plan
    --prune``, ``destroy``: the change is ``blocked``) and of the executor (run time, with
    the exact counts of a passive declare).

    * a stream, without ``--allow-data-loss``: its message count cannot be read before the
      delete (a passive declare always says 0, the broker ignores ``if-empty``), so it is
      refused whatever the statistics say (an empty-looking stream too);
    * messages held or unknown (``messages`` None), without ``--allow-data-loss``
      (:func:`data_loss_reason`);
    * consumers, without ``--force``: a classic queue's delete carries ``if-unused`` (406),
      the executor refuses the others itself. ``consumers`` None (unknown) does not refuse:
      the run-time guards still hold.
    """
    if not allow_data_loss:
        if (queue_type or "classic") == "stream":
            return (f"Queue {name} is a stream: its message count cannot be read (a passive declare says 0 and "
                    "the broker ignores if-empty), so it is deleted only with --allow-data-loss.")
        why = data_loss_reason(name, messages, source)
        if why:
            return why
    if consumers and not force:
        return (f"Queue {name} has {consumers} consumer{'s' if consumers != 1 else ''}; it is deleted only with "
                "--force (the broker refuses the delete of a queue in use).")
    return None


def rows_for_replay() -> list[Rule]:
    """The rows an integration test can replay on a broker: every verified reject/ignore row."""
    return [r for r in RULES if r.verified and r.verdict in (REJECTS, IGNORES, LOCKS)]


def table() -> list[Mapping]:
    """The table as plain rows (docs and ``--debug`` output)."""
    return [{"kind": r.kind, "field": r.field, "queue_types": list(r.queue_types), "verdict": r.verdict,
             "policy_key": r.policy_key, "evidence": r.evidence, "verified": r.verified,
             "since": r.since, "until": r.until} for r in RULES]
