"""One rule for queue deletes the executor refuses at run time, applied by the planner too
(``rules.queue_delete_refusal``): plan --prune and destroy show them ``blocked`` (exit 3), so
apply never stops halfway with "deleted only with --allow-data-loss"."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from topoform.apply import executor
from topoform.apply.executor import ApplyContext, ApplyOptions, delete_queue
from topoform.broker.live import LiveState, QueueStats
from topoform.cli.destroy import destroy_plan
from topoform.errors import TopoformError
from topoform.model import Args, Queue, Topology, Vhost
from topoform.planner import PlanOptions, make_plan
from topoform.planner.plan import Action, Change
from topoform.planner.rules import queue_delete_refusal

STREAM = Queue(vhost="v", name="s", durable=True, arguments=Args({"x-queue-type": "stream"}))
QUORUM = Queue(vhost="v", name="qq", durable=True, arguments=Args({"x-queue-type": "quorum"}))
CLASSIC = Queue(vhost="v", name="c", durable=True)


def _live(*queues, stats=None):
    return LiveState(topology=Topology.build([Vhost("v"), *queues]), queue_stats=stats or {})


def _prune(live, **kw):
    return make_plan(Topology.build([Vhost("v")]), live, PlanOptions(prune=True, **kw))


def test_the_rule():
    assert "stream" in queue_delete_refusal("s", "stream", 0, 0)  # an empty-looking stream too
    assert queue_delete_refusal("s", "stream", 0, 0, allow_data_loss=True) is None
    assert "holds 2 messages" in queue_delete_refusal("q", "quorum", 2, 0)
    assert "may hold messages" in queue_delete_refusal("q", "classic", None, None)
    assert queue_delete_refusal("q", "classic", 0, 0) is None
    assert "1 consumer;" in queue_delete_refusal("q", "classic", 0, 1)
    assert queue_delete_refusal("q", "classic", 0, 1, force=True) is None
    assert queue_delete_refusal("q", "classic", 5, 1, allow_data_loss=True, force=True) is None


def test_prune_blocks_a_stream_whose_stats_say_empty_and_deletes_it_with_allow_data_loss():
    live = _live(STREAM, stats={STREAM.key: QueueStats(messages=0, consumers=0)})
    plan = _prune(live)
    assert [(c.action, c.name) for c in plan.changes] == [(Action.BLOCKED, "s")]
    assert "--allow-data-loss" in plan.changes[0].reason and "stream" in plan.changes[0].reason
    plan = _prune(live, allow_data_loss=True)
    assert [(c.action, c.name) for c in plan.changes] == [(Action.DELETE, "s")]


def test_prune_blocks_a_queue_with_consumers_without_force():
    live = _live(CLASSIC, QUORUM, stats={CLASSIC.key: QueueStats(0, 2), QUORUM.key: QueueStats(0, 1)})
    plan = _prune(live)
    assert {c.name: c.action for c in plan.changes} == {"c": Action.BLOCKED, "qq": Action.BLOCKED}
    assert "2 consumers" in {c.name: c.reason for c in plan.changes}["c"]
    plan = _prune(live, force=True)
    assert {c.name: c.action for c in plan.changes} == {"c": Action.DELETE, "qq": Action.DELETE}


def test_destroy_applies_the_same_rule():
    files = Topology.build([Vhost("v"), STREAM, QUORUM])
    live = _live(STREAM, QUORUM, stats={STREAM.key: QueueStats(0, 0), QUORUM.key: QueueStats(0, 3)})
    plan, _ = destroy_plan(files, live, vhosts=["v"])
    assert {c.name: c.action for c in plan.changes if c.kind == "queue"} == {"s": Action.BLOCKED, "qq": Action.BLOCKED}
    plan, _ = destroy_plan(files, live, vhosts=["v"], allow_data_loss=True, force=True)
    assert {c.name: c.action for c in plan.changes if c.kind == "queue"} == {"s": Action.DELETE, "qq": Action.DELETE}


class _Session:
    def __init__(self, counts):
        self.counts = counts

    def queue_counts(self, name):
        return self.counts


def _ctx(counts, **options):
    ctx = ApplyContext(settings=SimpleNamespace(), client=None, options=ApplyOptions(**options))
    ctx._sessions["v"] = _Session(counts)
    return ctx


@pytest.mark.parametrize("queue, counts, options, text", [
    (STREAM, (0, 0), {}, "stream"),
    (QUORUM, (4, 0), {}, "holds 4 messages"),
    (QUORUM, (0, 1), {"allow_data_loss": True}, "1 consumer"),
])
def test_the_executor_refuses_with_the_same_rule(queue, counts, options, text):
    with pytest.raises(TopoformError) as err:
        delete_queue(Change(Action.DELETE, "queue", "v", queue.name, before=queue), _ctx(counts, **options))
    assert err.value.code == "delete-refused" and text in str(err.value)
    assert executor.queue_delete_refusal is queue_delete_refusal  # one source of truth


def test_the_executor_deletes_what_the_rule_allows():
    ops = delete_queue(Change(Action.DELETE, "queue", "v", "qq", before=QUORUM), _ctx((0, 0)))
    assert len(ops) == 1
    ops = delete_queue(Change(Action.DELETE, "queue", "v", "s", before=STREAM), _ctx((0, 0), allow_data_loss=True))
    assert len(ops) == 1
