"""A vhost's default_queue_type change: queues that leave x-queue-type out are judged by the default
the vhost will have after the plan, so the plan made before the change already says what the next
one will (and reverting plans clean); on a broker that sets it only at creation (3.10) the change
is blocked (measured: tests/integration/test_plan_correctness_broker.py)."""
from __future__ import annotations

from topoform.broker.live import LiveState
from topoform.model import Args, Queue, Topology, Vhost
from topoform.planner import PlanOptions, make_plan
from topoform.planner.plan import Action

QUORUM_LIVE = Queue("v", "orders", durable=True, arguments=Args({"x-queue-type": "quorum"}))
CLASSIC_LIVE = Queue("v", "orders", durable=True, arguments=Args({"x-queue-type": "classic"}))


def _plan(files_dqt, live_dqt, live_queue, version="4.3.6", explicit=None):
    args = Args({"x-queue-type": explicit}) if explicit else Args({})
    desired = Topology.build([Vhost("v", default_queue_type=files_dqt), Queue("v", "orders", durable=True,
                                                                              arguments=args)])
    live = LiveState(topology=Topology.build([Vhost("v", default_queue_type=live_dqt), live_queue]), version=version)
    return {(c.kind, c.action) for c in make_plan(desired, live, PlanOptions()).changes}, \
        make_plan(desired, live, PlanOptions())


def test_after_the_change_the_queue_is_judged_by_the_new_default_so_both_plans_agree():
    before, plan = _plan("classic", "quorum", QUORUM_LIVE)  # the plan that changes the default
    assert before == {("vhost", Action.UPDATE), ("queue", Action.BLOCKED)}
    reason = [c.reason for c in plan.changes if c.kind == "queue"][0]
    assert "changes from quorum to classic" in reason and "x-queue-type: quorum" in reason
    after, _ = _plan("classic", "classic", QUORUM_LIVE)  # the plan after applying the vhost update
    assert after == {("queue", Action.BLOCKED)}


def test_keeping_the_type_explicitly_plans_the_change_clean():
    changes, _ = _plan("classic", "quorum", QUORUM_LIVE, explicit="quorum")
    assert changes == {("vhost", Action.UPDATE)}
    changes, _ = _plan("classic", "classic", QUORUM_LIVE, explicit="quorum")
    assert changes == set()


def test_reverting_the_default_is_not_blocked():
    # the broker's default is classic (changed earlier), the files go back to quorum: the quorum queue fits
    changes, _ = _plan("quorum", "classic", QUORUM_LIVE)
    assert changes == {("vhost", Action.UPDATE)}
    # and a queue made under the new default fits the files that name it
    changes, _ = _plan("quorum", "quorum", QUORUM_LIVE)
    assert changes == set()


def test_on_3_10_the_change_is_blocked_and_the_live_default_judges_the_queues():
    changes, plan = _plan("classic", "quorum", QUORUM_LIVE, version="3.10.8")
    assert changes == {("vhost", Action.BLOCKED)}  # the queue still fits the default the vhost keeps
    reason = plan.changes[0].reason
    assert "RabbitMQ 3.10" in reason and "only when it creates the vhost" in reason and "'quorum'" in reason
    changes, _ = _plan("quorum", "undefined", CLASSIC_LIVE, version="3.10.8")
    assert ("vhost", Action.BLOCKED) in changes
    changes, _ = _plan("quorum", "quorum", QUORUM_LIVE, version="3.10.8")
    assert changes == set()
