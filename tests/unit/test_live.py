"""The live reader: API responses and definitions exports -> LiveState."""
from __future__ import annotations

import json
import threading
import time

import pytest

from topoform.broker.live import (LiveState, QueueStats, live_from_definitions, read_live, read_state_file,
                                  to_definitions, topology_fingerprint)
from topoform.errors import InputError
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost

DEFS = {
    "rabbit_version": "3.10.8",
    "exchanges": [
        {"name": "ex", "type": "topic", "durable": True, "auto_delete": False, "internal": False,
         "arguments": {"alternate-exchange": "ae"}},
        {"name": "amq.topic", "type": "topic", "durable": True, "auto_delete": False, "internal": False,
         "arguments": {}},
    ],
    "queues": [
        {"name": "q1", "durable": True, "auto_delete": False, "arguments": {"x-message-ttl": 60000}},
        {"name": "amq.gen-LzimzEXf8wS_SRypUHUFbg", "durable": False, "auto_delete": False, "arguments": {}},
        {"name": "qq", "durable": True, "auto_delete": False, "arguments": {"x-queue-type": "quorum"}},
    ],
    "bindings": [
        {"source": "ex", "destination": "q1", "destination_type": "queue", "routing_key": "a.*", "arguments": {}},
        {"source": "", "destination": "q1", "destination_type": "queue", "routing_key": "q1", "arguments": {}},
        {"source": "ex", "destination": "amq.gen-LzimzEXf8wS_SRypUHUFbg", "destination_type": "queue",
         "routing_key": "x", "arguments": {}},
        {"source": "amq.topic", "destination": "ex", "destination_type": "exchange", "routing_key": "#",
         "arguments": {"n": 1}},
    ],
    "policies": [{"vhost": "v", "name": "p", "pattern": "^q", "apply-to": "queues",
                  "definition": {"max-length": 10}, "priority": 1}],
    "parameters": [],
}

QUEUE_LISTING = [
    {"name": "q1", "exclusive": False, "messages": 5, "consumers": 1},
    {"name": "qq", "exclusive": False},  # stats not emitted yet (quorum queues lag)
    {"name": "excl", "exclusive": True, "messages": 0, "consumers": 1},
    {"name": "amq.gen-LzimzEXf8wS_SRypUHUFbg", "exclusive": False, "messages": 0, "consumers": 0},
]


class FakeClient:
    def __init__(self, vhosts, defs, queues):
        self._vhosts, self._defs, self._queues = vhosts, defs, queues
        self.calls = []

    def vhosts(self):
        self.calls.append("vhosts")
        return self._vhosts

    def definitions(self, vhost):
        self.calls.append(("definitions", vhost))
        return self._defs[vhost]

    def queue_stats(self, vhost):
        self.calls.append(("queue_stats", vhost))
        return self._queues[vhost]

    def get(self, path, params=None):
        """The per-kind listings the reader asks for, made from the same data as the export:
        plus what listings have and exports do not (the default exchange, the exclusive
        queues of the queue listing)."""
        parts = path.split("/")
        if len(parts) != 4 or parts[2] not in ("exchanges", "queues", "bindings", "policies"):
            return []  # users, permissions, parameters, ...: none on this broker
        kind, vhost = parts[2], parts[3]
        self.calls.append((kind, vhost))
        defs = self._defs[vhost]
        if kind == "exchanges":
            return [{"name": "", "type": "direct", "durable": True, "auto_delete": False, "internal": False,
                     "arguments": {}}] + list(defs.get("exchanges", []))
        if kind == "queues":
            listed = {q["name"] for q in defs.get("queues", [])}
            extra = [{"name": r["name"], "durable": False, "auto_delete": False, "exclusive": True, "arguments": {}}
                     for r in self._queues.get(vhost, []) if r.get("exclusive") and r["name"] not in listed]
            return [dict(q, exclusive=False) for q in defs.get("queues", [])] + extra
        if kind == "bindings":
            return list(defs.get("bindings", []))
        if kind == "policies":
            return list(defs.get("policies", []))
        raise AssertionError(path)


def _read(vhosts=("v",), source="listings"):
    from topoform.broker.live import LiveReader

    client = FakeClient([{"name": "v", "description": "d", "tags": ["b", "a"], "default_queue_type": "undefined"},
                         {"name": "other", "description": "", "tags": [], "default_queue_type": "quorum"}],
                        {"v": DEFS}, {"v": QUEUE_LISTING})
    with LiveReader(client, source=source) as reader:
        return reader.read(list(vhosts)), client


@pytest.mark.parametrize("source", ["listings", "definitions"])
def test_both_read_sources_give_the_same_state(source):
    listings, _ = _read(source="listings")
    other, _ = _read(source=source)
    assert other.topology == listings.topology and other.fingerprint == listings.fingerprint
    assert other.queue_stats == listings.queue_stats


def test_read_live_builds_the_managed_vhosts_topology():
    live, client = _read()
    t = live.topology
    assert set(t.vhosts) == {("vhost", "v")}
    assert t.vhosts[("vhost", "v")] == Vhost("v", description="d", tags=("b", "a"), default_queue_type="undefined")
    assert t.exchanges == {("exchange", "v", "ex"): Exchange("v", "ex", "topic", durable=True,
                                                             arguments=Args({"alternate-exchange": "ae"}))}
    assert set(t.queues) == {("queue", "v", "q1"), ("queue", "v", "qq")}
    assert t.bindings == {Binding("v", "ex", "q1", routing_key="a.*"),
                          Binding("v", "amq.topic", "ex", "exchange", "#", Args({"n": 1}))}
    assert t.policies[("policy", "v", "p")] == Policy("v", "p", "^q", "queues", 1, Args({"max-length": 10}))


def test_read_live_reads_only_the_requested_vhosts_with_few_requests():
    _live, client = _read()
    listings = [(k, "v") for k in ("exchanges", "queues", "bindings", "policies")]
    assert sorted(map(str, client.calls)) == sorted(map(str, ["vhosts", *listings, ("queue_stats", "v")]))
    _live, client = _read(source="definitions")
    assert sorted(map(str, client.calls)) == sorted(map(str, ["vhosts", ("definitions", "v"), ("queue_stats", "v")]))


def test_never_managed_objects_are_skipped_and_counted():
    # the listings hold the built-in exchanges and the default-exchange bindings of every
    # queue, which a real export never lists: they are left out without a count
    live, _ = _read()
    assert dict(live.skipped) == {"exclusive queues": 1, "server-named queues": 1, "bindings to skipped queues": 1}
    live, _ = _read(source="definitions")
    assert dict(live.skipped) == {"built-in exchanges": 1, "exclusive queues": 1, "server-named queues": 1,
                                  "default-exchange bindings": 1, "bindings to skipped queues": 1}


def test_queue_stats_only_where_known():
    live, _ = _read()
    assert live.queue_stats == {("queue", "v", "q1"): QueueStats(messages=5, consumers=1)}


def test_a_missing_vhost_is_reported_not_an_error():
    live, client = _read(("v", "nope"))
    assert live.missing_vhosts == {"nope"}
    assert not any(call[1] == "nope" for call in client.calls if isinstance(call, tuple))


def test_none_reads_every_vhost():
    client = FakeClient([{"name": "a"}, {"name": "b"}], {"a": {}, "b": {}}, {"a": [], "b": []})
    live = read_live(client, None)
    assert live.vhosts == ("a", "b") and live.missing_vhosts == frozenset()


def test_fingerprint_is_stable_and_ignores_message_counts():
    a, _ = _read()
    listing = [dict(r, messages=99) if "messages" in r else r for r in QUEUE_LISTING]
    client = FakeClient([{"name": "v", "description": "d", "tags": ["b", "a"], "default_queue_type": "undefined"}],
                        {"v": dict(DEFS, queues=list(reversed(DEFS["queues"])))}, {"v": listing})
    b = read_live(client, ["v"])
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("sha256:")


def test_fingerprint_changes_with_the_configuration():
    t1 = Topology.build([Queue("v", "q", arguments=Args({"x": 1}))])
    t2 = Topology.build([Queue("v", "q", arguments=Args({"x": "1"}))])
    assert topology_fingerprint(t1) != topology_fingerprint(t2)


def test_narrow_recomputes_the_fingerprint():
    client = FakeClient([{"name": "a"}, {"name": "b"}],
                        {"a": {"queues": [{"name": "qa"}]}, "b": {"queues": [{"name": "qb"}]}}, {"a": [], "b": []})
    both = read_live(client, None)
    only_a = read_live(client, ["a"])
    assert both.narrow(["a"]).fingerprint == only_a.fingerprint != both.fingerprint


# ---- definitions exports (--state)
def _global_export():
    rows = {k: [dict(r, vhost="v") for r in DEFS[k]] for k in ("exchanges", "queues", "bindings")}
    return {"rabbit_version": "3.10.8", "vhosts": [{"name": "v"}, {"name": "/"}], "users": [],
            "policies": DEFS["policies"], **rows}


def test_global_export_reads_like_the_broker():
    live, _ = _read()
    offline = live_from_definitions(_global_export(), ["v"])
    assert offline.topology.queues == live.topology.queues
    assert offline.topology.bindings == live.topology.bindings
    assert offline.topology.exchanges == live.topology.exchanges
    assert offline.queue_stats == {} and offline.source == "state-file"


def test_global_export_reports_missing_vhosts():
    assert live_from_definitions(_global_export(), ["v", "gone"]).missing_vhosts == {"gone"}


def test_export_vhost_metadata_from_3_11_is_read():
    d = {"vhosts": [{"name": "v", "metadata": {"description": "x", "tags": ["t"], "default_queue_type": "quorum"}}]}
    assert live_from_definitions(d, ["v"]).topology.vhosts[("vhost", "v")] == Vhost("v", "x", ("t",), "quorum")


def test_single_vhost_export_is_read_as_the_one_managed_vhost():
    live = live_from_definitions(DEFS, ["v"])
    assert ("queue", "v", "q1") in live.topology.queues


def test_single_vhost_export_with_several_vhosts_is_an_input_error():
    with pytest.raises(InputError, match="single-vhost export"):
        live_from_definitions(DEFS, ["v", "w"])


def test_not_an_export():
    with pytest.raises(InputError, match="not a RabbitMQ definitions export"):
        live_from_definitions({"hello": 1}, ["v"])


def test_state_file_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="cannot read state file"):
        read_state_file(str(tmp_path / "missing.json"), ["v"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"queues": [\n  {"name": }\n]}')
    with pytest.raises(InputError, match=r"bad.json:2:\d+: invalid JSON"):
        read_state_file(str(bad), ["v"])


def test_state_file_round_trip(tmp_path):
    t = Topology.build([Vhost("v"), Queue("v", "q", durable=True, arguments=Args({"x-max-length": 3})),
                        Exchange("v", "x", "fanout"), Binding("v", "x", "q", arguments=Args({"a": [1, "b"]})),
                        Policy("v", "p", "^q", "queues", 0, Args({"max-length": 1}))])
    path = tmp_path / "state.json"
    path.write_text(json.dumps(to_definitions(t)))
    live = read_state_file(str(path), ["v"])
    assert live.topology == t
    assert isinstance(live, LiveState)


def test_read_without_counts_skips_the_queue_listing():
    client = FakeClient([{"name": "v"}], {"v": DEFS}, {"v": QUEUE_LISTING})
    live = read_live(client, ["v"], stats=False)
    assert ("queue_stats", "v") not in client.calls and live.queue_stats == {}
    assert set(live.topology.queues) == {("queue", "v", "q1"), ("queue", "v", "qq")}


def test_prefetched_reads_are_reused_and_wrong_guesses_ignored():
    from topoform.broker.live import LiveReader

    client = FakeClient([{"name": "v"}], {"v": DEFS}, {"v": QUEUE_LISTING})
    with LiveReader(client) as reader:
        reader.prefetch(["v", "guessed-wrong"], stats=False)
        client._defs["guessed-wrong"] = None  # would fail if used
        live = reader.read(["v"], stats=True)
        assert reader.read_stats(["v"]) == dict(live.queue_stats)
    assert client.calls.count(("queues", "v")) == 1 and client.calls.count(("queue_stats", "v")) == 1
    assert ("queue", "v", "q1") in live.queue_stats


def test_an_argument_naming_an_object_called_undefined_is_not_a_void():
    # found by hypothesis: the API renders a void as "undefined", but an alternate exchange
    # (or dead-letter exchange) named "undefined" is a name, never a void
    defs = {"exchanges": [{"name": "x", "type": "direct", "arguments": {"alternate-exchange": "undefined",
                                                                        "x-other": "undefined"}}],
            "vhosts": [{"name": "v"}]}
    defs["exchanges"][0]["vhost"] = "v"
    (x,) = live_from_definitions(defs, None).topology.exchanges.values()
    assert x.arguments["alternate-exchange"] == "undefined" and x.arguments["x-other"] is None


class _SlowVersionClient(FakeClient):
    """A broker whose ``GET /api/overview`` answers only when the test lets it."""

    def __init__(self, *a, version="4.3.6"):
        super().__init__(*a)
        self.release = threading.Event()
        self.version = version

    def overview(self):
        assert self.release.wait(10), "the test never let the overview answer"
        return {"rabbitmq_version": self.version}


@pytest.mark.parametrize("version, reads", [("4.3.6", ("definitions", "v")), ("3.10.8", ("queues", "v"))])
def test_a_prefetch_never_waits_for_the_version_and_still_reads_what_the_version_chooses(version, reads):
    """The read source (the export from 4.0, the listings before) depends on the version; the
    prefetch used to wait for GET /api/overview there, before the files began to load."""
    from topoform.broker.live import LiveReader

    client = _SlowVersionClient([{"name": "v"}], {"v": DEFS}, {"v": QUEUE_LISTING}, version=version)
    with LiveReader(client) as reader:
        started = time.perf_counter()
        reader.prefetch(["v"], stats=False)
        assert time.perf_counter() - started < 5  # returned while the version was still unanswered
        assert not client.release.is_set()
        client.release.set()
        live = reader.read(["v"], stats=False)
    assert reads in client.calls
    assert ("definitions", "v") not in client.calls or ("queues", "v") not in client.calls  # one source, not both
    assert set(live.topology.queues) == {("queue", "v", "q1"), ("queue", "v", "qq")}
    assert live.version == version


def test_the_nodes_listing_is_read_once_whether_prefetched_or_not():
    from topoform.broker.live import LiveReader

    class Nodes(FakeClient):
        def get(self, path, params=None):
            if path == "/api/nodes":
                self.calls.append(("nodes", params.get("columns")))
                return [{"name": "rabbit@a", "running": True}]
            return super().get(path, params)

    client = Nodes([{"name": "v"}], {"v": DEFS}, {"v": QUEUE_LISTING})
    with LiveReader(client) as reader:
        reader.prefetch_nodes()
        reader.prefetch_nodes()
        assert reader.nodes() == [{"name": "rabbit@a", "running": True}]
        assert reader.nodes() == [{"name": "rabbit@a", "running": True}]
    assert client.calls == [("nodes", "name,running,mem_alarm,disk_free_alarm")]
