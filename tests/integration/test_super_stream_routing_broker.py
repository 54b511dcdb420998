"""Super streams route as the simulator predicts, on each of 3.10.8, 4.0.5 and 4.3.6 (issue 13).

``topoform apply`` creates two super streams (``partitions: 3`` and ``binding_keys: [eu, us,
apac]``) in the test vhost; the broker's exchanges, streams and bindings must be exactly the ones
the simulator models (:func:`topoform.routing.with_super_streams`). Then messages are published
over AMQP 0-9-1 to each super stream's exchange with routing keys that hit every partition,
none, and near misses (case, a dotted key, the empty key), in confirm mode with ``mandatory``:
the broker's return (unroutable) must agree with ``test-route``, and every partition, read
from its first offset with a stream consumer (``basic.qos`` prefetch and
``x-stream-offset: first``: a passive declare reports 0 messages on a stream), must hold
exactly the messages ``test-route --json`` predicts for it, each once.
"""
from __future__ import annotations

import collections
import time

import pika
import pytest
import yaml

from topoform.broker.settings import quote_segment
from topoform.load import load_topology
from topoform.routing import with_super_streams

KEYS = ["0", "1", "2", "1", "2", "2", "3", "", "eu", "us", "us", "apac", "apac", "apac", "EU", "eu.x", "00", " 1"]


def _files(vhost: str) -> dict:
    return {"vhosts": {vhost: {"super_streams": {
        "invoices": {"partitions": 3, "arguments": {"x-max-age": "1D"}},
        "regional": {"binding_keys": ["eu", "us", "apac"]}}}}}


def _connect(broker, vhost: str):
    params = pika.ConnectionParameters(host=broker.amqp_host, port=broker.amqp_port, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(broker.username, broker.password),
                                       heartbeat=0, blocked_connection_timeout=60)
    return pika.BlockingConnection(params)


def _read_stream(conn, queue: str, expected: int, timeout: float = 30.0) -> list[str]:
    """Every message of a stream from its first offset (waits for ``expected``, then 2 s more for extras)."""
    ch = conn.channel()
    ch.basic_qos(prefetch_count=50)
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    for method, _props, body in ch.consume(queue, auto_ack=False, arguments={"x-stream-offset": "first"},
                                           inactivity_timeout=2.0):
        if method is None:  # 2 s without a delivery
            if len(bodies) >= expected or time.monotonic() > deadline:
                break
            continue
        bodies.append(body.decode("utf-8"))
        ch.basic_ack(method.delivery_tag)
    ch.cancel()
    ch.close()
    return bodies


def test_super_streams_route_to_the_partitions_the_simulator_predicts(admin, broker, vhost, broker_env, cli,
                                                                      tmp_path, broker_version):
    (tmp_path / "topoform.yaml").write_text(yaml.safe_dump(_files(vhost), sort_keys=False), encoding="utf-8")
    r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r

    # the broker's objects are the ones the simulator models: names, stream type, keys and partition order
    loaded = load_topology([str(tmp_path / "topoform.yaml")])
    model = with_super_streams(loaded.topology, loaded.config)
    q = quote_segment(vhost)
    for name in ("invoices", "regional"):
        live = admin.get(f"/api/exchanges/{q}/{quote_segment(name)}")
        assert (live["type"], live["durable"], live["arguments"]) == ("direct", True, {"x-super-stream": True})
        have = sorted((b["routing_key"], b["destination"], b["arguments"]) for b in
                      admin.get(f"/api/exchanges/{q}/{quote_segment(name)}/bindings/source"))
        want = sorted((b.routing_key, b.destination, dict(b.arguments)) for b in model.bindings if b.source == name)
        assert have == want and len(want) == 3, (have, want)
        for _key, stream, _args in want:
            assert admin.get(f"/api/queues/{q}/{quote_segment(stream)}")["type"] == "stream"

    # predictions from the CLI, the way a user asks
    predicted: dict[tuple[str, str], list[str]] = {}
    for exchange in ("invoices", "regional"):
        for key in dict.fromkeys(KEYS):
            res = cli(["test-route", "--vhost", vhost, "--json", exchange, key], environ=broker_env, cwd=tmp_path)
            assert res.code == 0, res
            predicted[(exchange, key)] = res.json["queues"]
    assert predicted[("invoices", "2")] == ["invoices-2"] and predicted[("regional", "us")] == ["regional-us"]
    assert predicted[("invoices", "3")] == [] and predicted[("regional", "EU")] == []

    expected: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    conn = _connect(broker, vhost)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for exchange in ("invoices", "regional"):
            for i, key in enumerate(KEYS):
                body = f"{exchange}|{key}|{i}"
                try:
                    ch.basic_publish(exchange, key, body.encode("utf-8"), mandatory=True)
                    returned = False
                except pika.exceptions.UnroutableError:
                    returned = True
                assert returned == (predicted[(exchange, key)] == []), (exchange, key, predicted[(exchange, key)])
                for stream in predicted[(exchange, key)]:
                    expected[stream][body] += 1
        ch.close()
        streams = sorted(b.destination for b in model.bindings)
        assert len(streams) == 6 and all(expected[s] for s in streams), expected  # the keys reach every partition
        for stream in streams:
            want = expected.get(stream, collections.Counter())
            got = collections.Counter(_read_stream(conn, stream, sum(want.values())))
            assert got == want, f"RabbitMQ {broker_version}: stream {stream}: got {dict(got)}, predicted {dict(want)}"
    finally:
        if conn.is_open:
            conn.close()
