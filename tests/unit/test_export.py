"""topoform.export: Topology -> the broker's definitions JSON, read back identically by the live reader."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings

from helpers import run_cli
from strategies_import_export import topologies
from topoform.broker.live import live_from_definitions
from topoform.export import export_definitions
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost


def _sample() -> Topology:
    return Topology.build([
        Vhost("/"), Vhost("orders", description="Orders", tags=("a", "b"), default_queue_type="quorum"),
        Exchange("/", "logs", "topic", durable=True, arguments=Args({"alternate-exchange": "ae"})),
        Exchange("/", "ae", "fanout", durable=True, internal=True),
        Queue("/", "q1", durable=True, arguments=Args({"x-message-ttl": 60000, "x-custom": "60000"})),
        Queue("/", "consumer-owned", exclusive=True),
        Binding("/", "logs", "q1", routing_key="a.#"),
        Binding("/", "logs", "consumer-owned", routing_key="b.#"),
        Binding("/", "logs", "ae", "exchange", "c", Args({"n": 1})),
        Policy("/", "ttl", "^short\\.", "queues", 3, Args({"message-ttl": 1000})),
        Queue("orders", "o", durable=True, arguments=Args({"x-queue-type": "quorum"})),
    ])


def test_rows_have_the_broker_field_names():
    d = export_definitions(_sample()).definitions
    assert set(d) == {"vhosts", "queues", "exchanges", "bindings", "policies"}
    assert d["vhosts"] == [{"name": "/"}, {"name": "orders", "metadata": {
        "description": "Orders", "tags": ["a", "b"], "default_queue_type": "quorum"}}]
    assert d["exchanges"][0] == {"name": "ae", "vhost": "/", "type": "fanout", "durable": True,
                                 "auto_delete": False, "internal": True, "arguments": {}}
    assert {"name": "q1", "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-custom": "60000", "x-message-ttl": 60000}} in d["queues"]
    assert d["policies"] == [{"vhost": "/", "name": "ttl", "pattern": "^short\\.", "apply-to": "queues",
                              "definition": {"message-ttl": 1000}, "priority": 3}]
    assert {"source": "logs", "vhost": "/", "destination": "ae", "destination_type": "exchange",
            "routing_key": "c", "arguments": {"n": 1}} in d["bindings"]


def test_exclusive_queues_and_their_bindings_are_left_out_with_notes():
    e = export_definitions(_sample())
    assert "consumer-owned" not in {q["name"] for q in e.definitions["queues"]}
    assert "consumer-owned" not in {b["destination"] for b in e.definitions["bindings"]}
    assert len(e.notes) == 2
    assert "exclusive queue 'consumer-owned'" in e.notes[0]
    assert "1 binding to exclusive queues" in e.notes[1]


def test_vhost_filter():
    d = export_definitions(_sample(), ["orders"]).definitions
    assert [v["name"] for v in d["vhosts"]] == ["orders"]
    assert {q["vhost"] for q in d["queues"]} == {"orders"}
    assert d["bindings"] == [] and d["policies"] == []


def test_output_is_json_serialisable_and_stable():
    t = _sample()
    a = json.dumps(export_definitions(t).definitions)
    b = json.dumps(export_definitions(Topology.build(reversed(list(t.resources())))).definitions)
    assert a == b


def test_the_live_reader_reads_an_export_back_as_the_same_topology():
    t = _sample()
    back = live_from_definitions(export_definitions(t).definitions, None).topology
    expected = Topology.build(r for r in t.resources()
                              if not (isinstance(r, Queue) and r.exclusive)
                              and not (isinstance(r, Binding) and r.destination == "consumer-owned"))
    assert back == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(topologies())
def test_random_exports_read_back_identically(t):
    exported = export_definitions(t)
    back = live_from_definitions(json.loads(json.dumps(exported.definitions)), None).topology
    exclusive = {(q.vhost, q.name) for q in t.queues.values() if q.exclusive}
    expected = Topology.build(
        [r.replace(tags=tuple(t.strip() for t in r.tags if t.strip()))  # the broker trims tags, keeps their order
         if isinstance(r, Vhost) and r.tags is not None else r
         for r in t.resources()
         if not (isinstance(r, Queue) and r.exclusive)
         and not (isinstance(r, Binding) and r.destination_type == "queue" and (r.vhost, r.destination) in exclusive)])
    assert back == expected


def test_cli_export_writes_json_and_notes(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("vhosts:\n  /:\n    exchanges: {x: {type: fanout, durable: true}}\n"
                 "    queues:\n      q: {durable: true, bindings: [{exchange: x}]}\n      mine: {exclusive: true}\n")
    r = run_cli(["export", "-f", f])
    assert r.code == 0, r
    d = json.loads(r.out)
    assert [q["name"] for q in d["queues"]] == ["q"]
    assert "note: left out exclusive queue 'mine'" in r.err
    out = tmp_path / "defs.json"
    r = run_cli(["export", "-f", f, "-o", out])
    assert r.code == 0, r
    assert json.loads(out.read_text()) == d
    assert "1 queue," in r.err


def test_cli_export_usage_errors_exit_1(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("vhosts: {/: {}}\n")
    r = run_cli(["export", "-f", f, "--vhost", "nope"])
    assert r.code == 1 and "not in the files" in r.err and "Traceback" not in r.err
    r = run_cli(["export", "-f", tmp_path / "missing.yaml"])
    assert r.code == 1 and "Traceback" not in r.err
    r = run_cli(["export", "--bogus"])
    assert r.code == 1
