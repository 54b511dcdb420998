"""Canonical forms for comparison, so that equal things compare equal.

Desired (files) and live (broker) objects go through the same functions before
they are compared. Each rule below comes from RABBITMQ-SEMANTICS.md section 0 and
has its own test in ``tests/unit/test_normalize.py``:

* ``x-queue-type``: absent means ``classic`` (1.3), *except* that a durable,
  non-exclusive, non-auto-delete declare without it in a vhost whose default queue type is quorum
  (or stream) creates a queue of that type (1.6). The canonical form therefore
  always carries the effective ``x-queue-type``. On the live side the broker stores
  the injected type, so a live queue without the key is classic.
* Every other argument: absent is *not* its default value (``x-overflow:
  drop-head`` differs from absent, 1.3). Nothing is filled in.
* Argument value types are kept (``60000`` vs ``"60000"`` vs ``60000.0`` differ);
  integer widths are one class (:class:`topoform.model.Args`), which matches both
  queue equivalence (1.3) and HTTP/definitions bindings, which are all ``long`` (9).
* An exclusive queue is stored non-durable whatever was declared (1.1).
* Vhost tags are an unordered set.
* A vhost default queue type the broker reports as not set (``undefined``) is not
  ``classic``: it differs from files that set ``classic``.
* Policy-applied values (``effective_policy_definition``) are never part of a
  queue's arguments: the live reader does not read them (11.3).

The canonical objects are for comparison only: plans carry the objects as the
files and the broker have them. Pure; imports only model.
"""
from __future__ import annotations

from typing import Mapping

from ..model import DQT_UNSET, Args, Exchange, Policy, Queue, Topology, Vhost, takes_default_queue_type

CLASSIC = "classic"


def effective_queue_type(queue: Queue, default_queue_type: str | None = None) -> str:
    """The type a declare of ``queue`` creates (or the type a live queue has).

    ``default_queue_type`` is the vhost's default (None when not set): it applies only
    to durable, non-exclusive, non-auto-delete declares without ``x-queue-type``
    (section 1.6; an auto-delete declare falls back to classic on 3.10.8, 4.0.5 and
    4.3.6, BROKERS.md: ``model.takes_default_queue_type``).
    """
    declared = queue.arguments.get("x-queue-type")
    if declared is not None:
        return declared if isinstance(declared, str) else str(declared)
    if takes_default_queue_type(queue.durable, queue.exclusive, queue.auto_delete, default_queue_type):
        return default_queue_type
    return CLASSIC


def normalize_queue(queue: Queue, default_queue_type: str | None = None) -> Queue:
    """The canonical queue: explicit effective ``x-queue-type``; exclusive implies non-durable."""
    qtype = effective_queue_type(queue, default_queue_type)
    args = queue.arguments
    if args.get("x-queue-type") != qtype or "x-queue-type" not in args:
        data = dict(args)
        data["x-queue-type"] = qtype
        args = Args(data)
    durable = queue.durable and not queue.exclusive
    if args is queue.arguments and durable == queue.durable:
        return queue
    return queue.replace(arguments=args, durable=durable)


_AGE_UNITS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


def max_age_seconds(value) -> int | None:
    """``x-max-age`` (``7D``, ``168h``, ...) in seconds as 4.3 compares it (Y = 365 days, M = 30
    days, measured on 4.3.6); None when it is not such a duration."""
    if isinstance(value, str) and len(value) > 1 and value[:-1].isdigit() and value[:-1].isascii() \
            and value[-1] in _AGE_UNITS:
        return int(value[:-1]) * _AGE_UNITS[value[-1]]
    return None


def same_max_age(desired: Queue, live: Queue) -> Queue:
    """``desired`` with the live queue's ``x-max-age`` text where both name the same duration
    (for a broker that compares it as a duration, versions row ``max_age_compared_as_duration``:
    the redeclare succeeds and keeps the stored text, so it is no change)."""
    want, have = desired.arguments.get("x-max-age"), live.arguments.get("x-max-age")
    if want == have or max_age_seconds(want) is None or max_age_seconds(want) != max_age_seconds(have):
        return desired
    return desired.replace(arguments=Args({**desired.arguments, "x-max-age": have}))


def normalize_exchange(exchange: Exchange) -> Exchange:
    """Exchanges need nothing beyond the reader's defaults; kept for symmetry and future quirks."""
    return exchange


def normalize_policy(policy: Policy) -> Policy:
    return policy


UNSET = DQT_UNSET  # a default queue type the broker reports as not set (3.10's word for it)


def normalize_vhost(vhost: Vhost) -> Vhost:
    """Tags are a set: sort them. A default queue type reported as not set (``undefined``
    or ``""``) stays ``undefined``: it is not ``classic`` (3.10 stores ``x-queue-type:
    classic`` on every queue of a vhost whose default is set to classic), so files that
    set ``classic`` get an update."""
    tags = tuple(sorted(set(vhost.tags))) if vhost.tags is not None else None
    dqt = UNSET if vhost.default_queue_type in (UNSET, "") else vhost.default_queue_type
    if tags == vhost.tags and dqt == vhost.default_queue_type:
        return vhost
    return vhost.replace(tags=tags, default_queue_type=dqt)


def _declared_default(vhost: Vhost) -> str | None:
    """The default queue type a declare sees (None: none is set, so classic)."""
    dqt = normalize_vhost(vhost).default_queue_type
    return None if dqt == UNSET else dqt


def queues_equivalent(desired: Queue, live: Queue, default_queue_type: str | None = None) -> bool:
    """True when redeclaring ``desired`` over ``live`` changes nothing (fast path first)."""
    if desired == live and (not default_queue_type or default_queue_type == CLASSIC):
        return True
    return normalize_queue(desired, default_queue_type) == normalize_queue(live)


def vhost_defaults(desired: Topology, live: Topology, updatable: bool = True) -> dict[str, str | None]:
    """Per vhost, the default queue type a declare will see once the plan is applied (vhost
    changes come first): the files' setting where they name one and the broker takes it (a
    vhost the plan creates; an existing one only when ``updatable``: 3.10 sets it only at
    creation), else the live one. Existing queues keep their type whatever the default
    becomes, so a queue the files leave without ``x-queue-type`` is compared with the type
    a declare would give it under this default."""
    out: dict[str, str | None] = {v.name: _declared_default(v) for v in live.vhosts.values()}
    for v in desired.vhosts.values():
        if v.name not in out or (updatable and v.default_queue_type is not None):
            out[v.name] = _declared_default(v)
    return out


def normalize_topology(topology: Topology, default_queue_types: Mapping[str, str | None] | None = None) -> Topology:
    """Every object of a topology in canonical form (for tests and whole-topology comparison)."""
    defaults = default_queue_types or {}
    resources = []
    for r in topology.resources():
        if isinstance(r, Queue):
            r = normalize_queue(r, defaults.get(r.vhost))
        elif isinstance(r, Vhost):
            r = normalize_vhost(r)
        resources.append(r)
    return Topology.build(resources, tests=topology.tests)
