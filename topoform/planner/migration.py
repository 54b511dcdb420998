"""Migrations at plan time: turn blocked changes into ``migrate`` changes with steps.

Owned by the migration work (issue 6). The planner calls :func:`expand_migration`
for every blocked exchange or queue change when ``--migrate`` is given, and
:func:`resume_changes` to recognize migrations interrupted on the broker.
Pure: no I/O, never imports broker, apply or cli.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..model import Topology
from .plan import Change


def expand_migration(change: Change, desired: Topology, live: Topology,
                     queue_stats: Mapping[tuple, Any], *, force: bool = False) -> Change:
    """Return a MIGRATE change with its steps, or ``change`` (still blocked) with a reason why not."""
    return change


def resume_changes(desired: Topology, live: Topology, queue_stats: Mapping[tuple, Any]) -> list[Change]:
    """Changes that finish migrations interrupted on the broker (found from what they left there)."""
    return []
