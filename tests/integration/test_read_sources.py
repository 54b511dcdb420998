"""Both ways of reading a vhost give the same state, on every broker version (issue 17).

The reader takes the per-kind listings (exchanges, queues, bindings, policies, with
columns and no stats) where they cost the broker less (3.10), and the vhost's
definitions export where that is cheaper (4.0+); 4.3's export also has quirks the reader
undoes (internal exchanges left out, bindings of exclusive queues left in). Whatever the
source, the topology, its fingerprint and the skipped counts must be the same.
"""
from __future__ import annotations

import pika
import pytest

from topoform.broker.http import ManagementClient
from topoform.broker.live import LiveReader
from topoform.broker.settings import quote_segment
from topoform.versions import has

LONG = pika.compat.long if hasattr(pika.compat, "long") else int


@pytest.fixture
def rich_vhost(amqp, vhost, admin):
    ch = amqp.channel()
    ch.exchange_declare("events", "topic", durable=True, arguments={"alternate-exchange": "unrouted"})
    ch.exchange_declare("unrouted", "fanout", durable=True)
    ch.exchange_declare("inner", "fanout", durable=True, internal=True)
    ch.exchange_declare("h", "headers", durable=True)
    ch.exchange_bind("inner", "events", "audit.#")
    ch.exchange_bind("h", "events", "#")
    ch.queue_declare("plain", durable=True)
    ch.queue_declare("transient", durable=False)
    ch.queue_declare("orders", durable=True, arguments={"x-queue-type": "quorum", "x-message-ttl": LONG(60000)})
    ch.queue_declare("log", durable=True, arguments={"x-queue-type": "stream"})
    ch.queue_declare("mine", exclusive=True)  # never managed: neither it nor its binding
    ch.queue_bind("orders", "events", "order.*")
    ch.queue_bind("plain", "inner")
    ch.queue_bind("log", "events", "#")
    ch.queue_bind("mine", "events", "order.#")
    ch.queue_bind("transient", "h", "", arguments={"x-match": "any", "n": LONG(1), "s": "1"})
    admin.put(f"/api/policies/{quote_segment(vhost)}/cap",
              {"pattern": "^plain$", "definition": {"max-length": 10}, "priority": 1, "apply-to": "queues"})
    return vhost, ch  # the channel keeps the exclusive queue alive


@pytest.mark.parametrize("stats", [False, True])
def test_listings_and_export_read_the_same_state(rich_vhost, broker, stats, broker_version):
    vhost, _keep = rich_vhost
    states = {}
    for source in ("listings", "definitions", "auto"):
        client = ManagementClient(broker)
        try:
            with LiveReader(client, source=source) as reader:
                states[source] = reader.read([vhost], stats=stats)
        finally:
            client.close()
    a, b, auto = states["listings"], states["definitions"], states["auto"]
    assert a.topology == b.topology == auto.topology
    assert a.fingerprint == b.fingerprint == auto.fingerprint
    assert dict(a.skipped) == {"exclusive queues": 1}  # the queue listing names them
    if stats:  # the export does not: only the stats listing tells it about them
        assert dict(b.skipped) == {"exclusive queues": 1}
    assert ("exchange", vhost, "inner") in a.topology.exchanges
    assert not any(x.destination == "mine" for x in a.topology.bindings)
    if stats:
        assert a.queue_stats.keys() == b.queue_stats.keys()


def test_auto_takes_the_cheaper_read_of_the_version(rich_vhost, broker, broker_version):
    vhost, _keep = rich_vhost
    client = ManagementClient(broker)
    try:
        with LiveReader(client) as reader:
            expected = "definitions" if has(broker_version, "definitions_export_cheaper") else "listings"
            assert reader._source() == expected
    finally:
        client.close()


def test_the_unsorted_listings_hold_the_sorted_listings_rows(rich_vhost, broker):
    """The reader asks the broker not to sort its listings (``sort=`` empty; 27% of the queue
    and binding listings at 10,000 queues on 3.10.8): the rows must be the same ones."""
    import json

    from topoform.broker.http import listing_requests

    vhost, _keep = rich_vhost
    client = ManagementClient(broker)
    try:
        for kind, (path, params) in listing_requests(vhost).items():
            if kind == "policies":
                continue
            assert params.get("sort") == "", kind
            unsorted = client.get(path, params=params)
            ordered = client.get(path, params={k: v for k, v in params.items() if k != "sort"})
            rows = [sorted(json.dumps(r, sort_keys=True) for r in answer) for answer in (unsorted, ordered)]
            assert rows[0] and rows[0] == rows[1], kind
    finally:
        client.close()
