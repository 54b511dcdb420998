"""x-max-age: equal durations are equal only where the broker says so (4.3 compares them as
durations, 3.10 and 4.0 as text: tests/integration/test_plan_correctness_broker.py)."""
from __future__ import annotations

import pytest

from topoform.broker.live import LiveState
from topoform.model import Args, Queue, Topology, Vhost
from topoform.planner import PlanOptions, make_plan
from topoform.planner.normalize import max_age_seconds


def _stream(age):
    return Queue("v", "s", durable=True, arguments=Args({"x-queue-type": "stream", "x-max-age": age}))


def _actions(files, live, version):
    plan = make_plan(Topology.build([Vhost("v"), _stream(files)]),
                     LiveState(topology=Topology.build([Vhost("v"), _stream(live)]), version=version), PlanOptions())
    return [(c.action.value, c.diff) for c in plan.changes]


def test_durations_in_seconds():
    assert max_age_seconds("7D") == max_age_seconds("168h") == 604800
    assert max_age_seconds("1Y") == max_age_seconds("365D") and max_age_seconds("1M") == max_age_seconds("30D")
    assert max_age_seconds("1Y") != max_age_seconds("12M")
    for bad in ("7", "D", "7d", "7 D", 7, None, "١D"):
        assert max_age_seconds(bad) is None, bad


@pytest.mark.parametrize("files, live", [("168h", "7D"), ("7D", "168h"), ("60m", "1h"), ("1m", "60s"),
                                         ("365D", "1Y"), ("360D", "12M")])
def test_equal_durations_are_no_change_on_4_3_and_blocked_before(files, live):
    assert _actions(files, live, "4.3.6") == []
    for version in ("3.10.8", "4.0.5"):
        assert _actions(files, live, version) == [("blocked", ("arguments.x-max-age",))], version


@pytest.mark.parametrize("files, live", [("12M", "1Y"), ("31D", "1M"), ("8D", "7D")])
def test_different_durations_stay_blocked_on_4_3(files, live):
    assert _actions(files, live, "4.3.6") == [("blocked", ("arguments.x-max-age",))]
