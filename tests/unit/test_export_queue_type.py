"""``export`` writes the x-queue-type a vhost's default queue type gives a queue that leaves it out
(3.10.8's definitions import ignores the default; tests/integration/test_plan_correctness_broker.py)."""
from __future__ import annotations

from topoform.broker.live import live_from_definitions
from topoform.export import export_definitions
from topoform.model import Args, Queue, Topology, Vhost
from topoform.planner import PlanOptions, make_plan


def _files(dqt):
    return Topology.build([
        Vhost("v", default_queue_type=dqt),
        Queue("v", "durable", durable=True),
        Queue("v", "transient"),
        Queue("v", "autodelete", durable=True, auto_delete=True),
        Queue("v", "stream", durable=True, arguments=Args({"x-queue-type": "stream"})),
    ])


def _types(topology):
    return {q["name"]: q["arguments"].get("x-queue-type") for q in export_definitions(topology).definitions["queues"]}


def test_a_queue_that_takes_the_default_is_exported_with_it():
    assert _types(_files("quorum")) == {"durable": "quorum", "transient": None, "autodelete": None,
                                        "stream": "stream"}
    assert _types(_files("stream"))["durable"] == "stream"


def test_no_default_or_classic_keeps_the_arguments_as_they_are():
    for dqt in (None, "classic", "undefined"):
        assert set(_types(_files(dqt)).values()) == {None, "stream"}, dqt


def test_the_export_plans_clean_against_the_files():
    files = _files("quorum")
    live = live_from_definitions(export_definitions(files).definitions, ["v"])
    assert make_plan(files, live, PlanOptions()).changes == ()
