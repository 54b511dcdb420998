"""What the broker's version changes in what it reports, and how the reader undoes it.

The live reader calls these so that the same configuration reads as the same
:class:`~topoform.model.Topology` from 3.10, 4.0 and 4.3 alike (rows of
:mod:`topoform.versions`, measured in BROKERS.md):

* ``classic_queue_type_stored``: 4.x stores ``x-queue-type`` on every queue, also when
  the declare had none (``classic``, or the vhost's default queue type for a durable
  declare). The reader drops a stored ``x-queue-type`` that is exactly what a declare
  *without* it would get, so a file that never named the type plans no change, and
  ``import`` writes only the types somebody chose. 3.10 does the same where the vhost
  has a default queue type set; where none is set it stores what was declared, and the
  reader keeps it. A source that names no version (a hand-made state file) is read as
  written.
* ``exports_omit_internal_exchanges``: 4.3's ``GET /api/definitions/VHOST`` leaves
  internal exchanges out (their bindings stay in); they are read from the exchange
  listing and merged in. It also lists the bindings of exclusive queues, which it
  leaves out: those bindings are dropped (and counted as skipped).

Pure functions: the version is data passed in. Imports nothing from planner, apply or cli.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .. import versions
from ..model import DQT_UNSET, EMPTY_ARGS, Args, Queue, Resource, takes_default_queue_type

__all__ = ["rules_version", "implied_queue_type", "drop_implied_queue_type", "normalize_resources",
           "needs_exchange_listing", "merge_internal_exchanges", "drop_bindings_to_unlisted_queues"]

UNSET = DQT_UNSET  # a default queue type the broker reports as not set


def rules_version(version: str | None) -> tuple[int, int] | None:
    """The (major, minor) whose rules apply to a broker reporting ``version``.

    Unknown (``None``, or text that is not a version): ``None``, and the reader then
    undoes nothing version-specific (a state file without a version field is read as
    written). A version outside the supported range keeps its own number (the rows'
    ranges still answer for it); the CLI warns about it.
    """
    if not version:
        return None
    try:
        return versions.parse_version(str(version), supported_only=False)
    except Exception:  # noqa: BLE001 - junk: unknown
        return None


def _has(version: tuple[int, int] | None, key: str) -> bool:
    return version is not None and versions.has(version, key)


def implied_queue_type(durable: bool, exclusive: bool, auto_delete: bool, default_queue_type: str | None) -> str:
    """The type a declare without ``x-queue-type`` gets (SEMANTICS 2; BROKERS.md 'the same').

    A durable, non-exclusive, non-auto-delete declare gets the vhost's default queue type
    when one is set; every other declare (and every declare where none is set) is classic.
    """
    if takes_default_queue_type(durable, exclusive, auto_delete, default_queue_type):
        return str(default_queue_type)
    return "classic"


def drop_implied_queue_type(queue: Queue, default_queue_type: str | None, version: tuple[int, int] | None) -> Queue:
    """``queue`` without a stored ``x-queue-type`` that the broker added itself (see module doc)."""
    stored = queue.arguments.get("x-queue-type") if queue.arguments else None
    if not isinstance(stored, str):
        return queue
    dqt_set = default_queue_type not in (None, "", UNSET)
    if version is None or not (_has(version, "classic_queue_type_stored") or dqt_set):
        return queue
    if stored != implied_queue_type(queue.durable, queue.exclusive, queue.auto_delete, default_queue_type):
        return queue
    rest = [(k, v) for k, v in queue.arguments.items() if k != "x-queue-type"]
    return queue.replace(arguments=Args(rest) if rest else EMPTY_ARGS)


def normalize_resources(resources: Iterable[Resource], default_queue_types: Mapping[str, str | None],
                        version: tuple[int, int] | None) -> list[Resource]:
    """Every queue with its broker-added ``x-queue-type`` dropped; other resources unchanged."""
    out = []
    for r in resources:
        if type(r) is Queue and r.arguments:
            r = drop_implied_queue_type(r, default_queue_types.get(r.vhost), version)
        out.append(r)
    return out


def needs_exchange_listing(version: tuple[int, int] | None) -> bool:
    """Whether a vhost's definitions export misses exchanges that the listing has (4.3+)."""
    return _has(version, "exports_omit_internal_exchanges")


def merge_internal_exchanges(definitions: Mapping[str, Any], exchange_rows: Sequence[Mapping]) -> dict:
    """``definitions`` with the internal exchanges of the listing it lacks (by name) added."""
    have = {str(r.get("name")) for r in definitions.get("exchanges") or ()}
    # amq.* ones are built in and never managed (4.3 has an internal amq.rabbitmq.trace)
    extra = [dict(r) for r in exchange_rows if r.get("internal") and str(r.get("name")) not in have
             and not str(r.get("name")).startswith("amq.")]
    if not extra:
        return dict(definitions)
    merged = dict(definitions)
    merged["exchanges"] = list(definitions.get("exchanges") or ()) + extra
    return merged


def drop_bindings_to_unlisted_queues(definitions: Mapping[str, Any]) -> tuple[dict, int]:
    """4.3's vhost export lists the bindings of exclusive queues but not the queues: a
    binding to a queue the export does not list is to a queue the reader never manages.
    Returns the definitions without those bindings and how many were dropped."""
    listed = {str(r.get("name")) for r in definitions.get("queues") or ()}
    kept, dropped = [], 0
    for row in definitions.get("bindings") or ():
        if (row.get("destination_type") or "queue") == "queue" and row.get("source") \
                and str(row.get("destination")) not in listed:
            dropped += 1
            continue
        kept.append(row)
    if not dropped:
        return dict(definitions), 0
    out = dict(definitions)
    out["bindings"] = kept
    return out, dropped

