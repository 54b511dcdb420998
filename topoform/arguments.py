"""The one table of known queue and exchange arguments and policy keys, per queue type and version.

Pure data and small lookups (imports only :mod:`topoform.versions`). The loader's
checks read it for "argument not accepted by this queue type", for the per-version
refusals and deprecations, and for typo suggestions; a unit test keeps the JSON
Schema's lists of known arguments and policy keys equal to this table.

>>> allowed("x-max-priority", "quorum", "4.3"), allowed("x-queue-leader-locator", "classic", "3.10")
(False, False)
>>> suggest("x-mesage-ttl", "queue"), suggest("alternate_exchange", "exchange")
('x-message-ttl', 'alternate-exchange')
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

from .versions import SUPPORTED, VersionLike, at_least, behaviour, has

QUEUE_TYPES = ("classic", "quorum", "stream")
_ALL = SUPPORTED[0]  # accepted on every supported version


@dataclass(frozen=True)
class Argument:
    """A declare argument. ``types`` maps each queue type that accepts it to the first
    version that does (queue arguments); exchange arguments have ``kind="exchange"``.

    ``refused_by`` / ``deprecated_by`` name rows of :data:`topoform.versions.BEHAVIOURS`
    under which the target broker refuses or deprecates the argument itself.
    """

    name: str
    kind: str = "queue"
    types: Mapping[str, str] = field(default_factory=dict)
    policy_key: str | None = None
    refused_by: str | None = None
    deprecated_by: str | None = None
    remedy: str = ""


@dataclass(frozen=True)
class PolicyKey:
    """A policy definition key, with the behaviour rows under which the broker refuses or deprecates it."""

    name: str
    refused_by: str | None = None
    deprecated_by: str | None = None
    remedy: str = ""
    plugin: str | None = None


def _q(name: str, types, policy_key: str | None = None, **kw) -> Argument:
    spec = {t: _ALL for t in types} if not isinstance(types, dict) else types
    return Argument(name=name, kind="queue", types=spec, policy_key=policy_key, **kw)


_CQ, _QQ, _SQ = "classic", "quorum", "stream"
_LOCATOR_REMEDY = "use x-queue-leader-locator (policy key queue-leader-locator) instead"

QUEUE_ARGUMENTS: tuple[Argument, ...] = (
    _q("x-queue-type", (_CQ, _QQ, _SQ)),
    _q("x-message-ttl", (_CQ, _QQ), "message-ttl"),
    _q("x-expires", (_CQ, _QQ), "expires"),
    _q("x-max-length", (_CQ, _QQ), "max-length"),
    _q("x-max-length-bytes", (_CQ, _QQ, _SQ), "max-length-bytes"),
    _q("x-overflow", (_CQ, _QQ, _SQ), "overflow"),
    _q("x-dead-letter-exchange", (_CQ, _QQ), "dead-letter-exchange"),
    _q("x-dead-letter-routing-key", (_CQ, _QQ), "dead-letter-routing-key"),
    _q("x-single-active-consumer", (_CQ, _QQ)),
    _q("x-max-priority", (_CQ,)),
    _q("x-queue-mode", (_CQ,), "queue-mode"),
    _q("x-queue-version", (_CQ,), "queue-version"),
    _q("x-queue-master-locator", (_CQ,), "queue-master-locator", refused_by="queue_master_locator_refused",
       deprecated_by="queue_master_locator_deprecated", remedy=_LOCATOR_REMEDY),
    _q("x-queue-leader-locator", {_CQ: behaviour("classic_queue_leader_locator").since, _QQ: _ALL, _SQ: _ALL},
       "queue-leader-locator"),
    _q("x-delivery-limit", (_QQ,), "delivery-limit"),
    _q("x-dead-letter-strategy", (_QQ,), "dead-letter-strategy"),
    _q("x-max-in-memory-length", (_QQ,), "max-in-memory-length"),
    _q("x-max-in-memory-bytes", (_QQ,), "max-in-memory-bytes"),
    _q("x-quorum-initial-group-size", (_QQ, _SQ)),
    _q("x-max-age", (_SQ,), "max-age"),
    _q("x-stream-max-segment-size-bytes", (_SQ,), "stream-max-segment-size-bytes"),
    _q("x-initial-cluster-size", (_SQ,), "initial-cluster-size"),
)

EXCHANGE_ARGUMENTS: tuple[Argument, ...] = (
    Argument("alternate-exchange", kind="exchange", policy_key="alternate-exchange"),
)

_HA_REMEDY = "classic mirrored queues are gone: remove the ha-* keys and use quorum queues (apply --migrate)"

POLICY_KEYS: tuple[PolicyKey, ...] = (
    *(PolicyKey(a.policy_key) for a in QUEUE_ARGUMENTS + EXCHANGE_ARGUMENTS
      if a.policy_key and a.policy_key != "queue-master-locator"),
    PolicyKey("queue-master-locator", refused_by="queue_master_locator_refused",
              deprecated_by="queue_master_locator_deprecated", remedy="use queue-leader-locator instead"),
    *(PolicyKey(k, refused_by="ha_policies_refused", remedy=_HA_REMEDY)
      for k in ("ha-mode", "ha-params", "ha-sync-mode", "ha-sync-batch-size", "ha-promote-on-shutdown",
                "ha-promote-on-failure")),
    PolicyKey("federation-upstream", plugin="rabbitmq_federation"),
    PolicyKey("federation-upstream-set", plugin="rabbitmq_federation"),
)


@dataclass(frozen=True)
class OperatorPolicyKey:
    """A key operator policies accept: from ``since`` (a version), before ``until`` (None: still),
    and the behaviour rows under which the broker refuses or deprecates it as for policies."""

    name: str
    since: str = _ALL
    until: str | None = None
    refused_by: str | None = None
    deprecated_by: str | None = None
    remedy: str = ""

    def accepted(self, version: VersionLike) -> bool:
        return at_least(version, self.since) and (self.until is None or not at_least(version, self.until))


# Operator policies accept only these keys; any other is refused (400 "not recognised policy
# settings"). Measured on 3.10.8, 4.0.5 and 4.3.6 (tests/integration/test_operator_policy_broker.py);
# the versions in between from the source (operator_policy_validator in rabbit_policies.erl,
# rabbit_quorum_queue.erl and rabbit_classic_queue.erl of v3.11.0 to v4.3.0).
OPERATOR_POLICY_KEYS: tuple[OperatorPolicyKey, ...] = (
    *(OperatorPolicyKey(k) for k in ("expires", "message-ttl", "max-length", "max-length-bytes",
                                     "max-in-memory-length", "max-in-memory-bytes", "delivery-limit")),
    *(OperatorPolicyKey(k, since="3.13") for k in ("overflow", "queue-version", "target-group-size")),
    *(OperatorPolicyKey(k, since="3.12", until="4.0", remedy=_HA_REMEDY) for k in ("ha-mode", "ha-params",
                                                                                   "ha-sync-mode")),
    OperatorPolicyKey("queue-master-locator", since="4.0", refused_by="queue_master_locator_refused",
                      deprecated_by="queue_master_locator_deprecated", remedy="use queue-leader-locator in a policy "
                                                                               "instead"),
)
_OPERATOR = {k.name: k for k in OPERATOR_POLICY_KEYS}


def operator_policy_key(name: str) -> OperatorPolicyKey | None:
    return _OPERATOR.get(name)


def suggest_operator_policy_key(name: str) -> str | None:
    """The operator policy key ``name`` probably misspells (``max_length``, ``x-max-length``), or None."""
    fixed = name.replace("_", "-").lower()
    for candidate in (fixed, fixed[2:] if fixed.startswith("x-") else None):
        if candidate and candidate != name and candidate in _OPERATOR:
            return candidate
    close = difflib.get_close_matches(name.lower(), list(_OPERATOR), n=1, cutoff=0.8)
    return close[0] if close else None


# apply-to values; the queue-type ones exist from 3.12 (row policy_apply_to_queue_types)
APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")
APPLY_TO_QUEUE_TYPES = ("classic_queues", "quorum_queues", "streams")

_QUEUE = {a.name: a for a in QUEUE_ARGUMENTS}
_EXCHANGE = {a.name: a for a in EXCHANGE_ARGUMENTS}
_POLICY = {k.name: k for k in POLICY_KEYS}


def queue_argument(name: str) -> Argument | None:
    return _QUEUE.get(name)


def exchange_argument(name: str) -> Argument | None:
    return _EXCHANGE.get(name)


def policy_key(name: str) -> PolicyKey | None:
    return _POLICY.get(name)


def allowed(name: str, queue_type: str, version: VersionLike) -> bool:
    """Whether a queue of ``queue_type`` accepts the known argument ``name`` on ``version``.

    Unknown arguments are allowed: the broker ignores arguments it does not know.
    """
    arg = _QUEUE.get(name)
    if arg is None:
        return True
    since = arg.types.get(queue_type)
    return since is not None and at_least(version, since)


@lru_cache(maxsize=256)
def not_allowed(queue_type: str, version: VersionLike) -> tuple[str, ...]:
    """The known arguments a ``queue_type`` queue refuses at creation on ``version``."""
    return tuple(a.name for a in QUEUE_ARGUMENTS if not allowed(a.name, queue_type, version))


def refused(entry: Argument | PolicyKey | OperatorPolicyKey, version: VersionLike) -> bool:
    return bool(entry.refused_by) and has(version, entry.refused_by)


def deprecated(entry: Argument | PolicyKey | OperatorPolicyKey, version: VersionLike) -> bool:
    return bool(entry.deprecated_by) and has(version, entry.deprecated_by) and not refused(entry, version)


def suggest(name: str, kind: str) -> str | None:
    """A known argument that ``name`` is probably a misspelling of, or None.

    ``kind`` is ``queue`` or ``exchange``. A known name spelled with ``_`` for ``-``, or
    without the ``x-`` prefix (a policy key used as an argument), is found exactly;
    otherwise the closest known name (difflib, ratio 0.85 or more). The suggestion may
    be of the other kind (``alternate-exchange`` on a queue, or a queue argument given
    exactly on an exchange): callers say so.
    """
    own = _QUEUE if kind == "queue" else _EXCHANGE
    other = _EXCHANGE if kind == "queue" else _QUEUE
    if name in own:
        return None
    if name in other:
        return name  # right name, wrong kind of object
    fixed = name.replace("_", "-").lower()
    for candidate in (fixed, "x-" + fixed, fixed[2:] if fixed.startswith("x-") else None):
        if candidate and candidate != name and (candidate in own or candidate in other):
            return candidate
    close = difflib.get_close_matches(name.lower(), list(own) + list(other), n=1, cutoff=0.85)
    return close[0] if close else None


__all__ = ["QUEUE_TYPES", "Argument", "PolicyKey", "QUEUE_ARGUMENTS", "EXCHANGE_ARGUMENTS", "POLICY_KEYS",
           "APPLY_TO", "APPLY_TO_QUEUE_TYPES", "OperatorPolicyKey", "OPERATOR_POLICY_KEYS",
           "operator_policy_key", "suggest_operator_policy_key", "queue_argument", "exchange_argument", "policy_key", "allowed",
           "not_allowed", "refused", "deprecated", "suggest"]
