"""A classic-to-quorum migration of 10,000 messages with one cluster node stopped during the move.

Issue 15, done-when: every message exactly once and in order. Two cases:

* ``other``: a node topoform is not connected to (a member of the new quorum queue) stops
  during the move: the apply carries on and finishes in the same run.
* ``own``: the node topoform is connected to stops during the move, taking with it the
  migration's temporary classic queue and journal (classic queues live on the node that
  declared them). topoform moves to the next URL; the migration cannot finish while its
  temporary queue's node is down, so the apply stops with a clear error (or finishes, should
  the node be back in time); once the node is back, the next ``apply --migrate`` finishes it.

The source queue lives on node 2, which never stops. Messages carry no priorities (a quorum
queue from 4.0 on delivers by priority, which is not FIFO).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pika
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import migrate_support as ms  # noqa: E402

from helpers import Management  # noqa: E402
from topoform.apply import migrate_move  # noqa: E402

N = 10_000
STOP_AT = "move_out:4:confirmed"  # batch 4 of 10 (1,000 each) confirmed in the temporary queue, not yet acked


def _conn(cluster, n, vhost):
    x = cluster.node(n)
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="localhost", port=x["amqp"], virtual_host=vhost, heartbeat=0,
        credentials=pika.PlainCredentials(cluster.user, cluster.password)))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["other", "own"])
def test_classic_to_quorum_with_a_node_stopped_mid_move(cluster, cluster_vhost, cli, tmp_path, monkeypatch, which):
    stop = "3" if which == "other" else "1"
    conn = _conn(cluster, 2, cluster_vhost)
    try:
        ch = conn.channel()
        ch.exchange_declare("events", "topic", durable=True)
        ch.queue_declare("orders", durable=True)  # classic, on node 2
        ch.queue_bind("orders", "events", "order.*")
        ch.close()
        messages = ms.corpus(N, cluster.user, seed=15, priorities=False)
        ms.publish(conn, "orders", messages, timeout=300)
    finally:
        conn.close()
    topo = tmp_path / "topology.yaml"
    topo.write_text(f"""version: 1
vhosts:
  {cluster_vhost}:
    exchanges:
      events: {{type: topic, durable: true}}
    queues:
      orders:
        durable: true
        arguments: {{x-queue-type: quorum}}
        bindings:
          - {{exchange: events, routing_key: "order.*"}}
""")
    stopped = []
    original_pause = migrate_move.pause

    def pause(point, environ=None):
        if point == STOP_AT and not stopped:
            cluster.stop_node(stop)
            stopped.append(point)
        return original_pause(point, environ)

    monkeypatch.setattr(migrate_move, "pause", pause)
    env = cluster.env(nodes=["1", "2", "3"])  # topoform starts on node 1
    try:
        r = cli(["apply", "--migrate", "--auto-approve", "--lock-timeout", "60", "-f", topo], environ=env)
        assert stopped, f"the move never reached {STOP_AT}: {r!r}"
        if which == "other":
            assert r.code == 0, r
        else:
            assert "Traceback" not in r.err
            print(f"apply with its own node stopped: exit {r.code}; {r.err[-1500:]}")
            cluster.start_node(stop)
            if r.code != 0:
                r = cli(["apply", "--migrate", "--auto-approve", "--lock-timeout", "60", "-f", topo], environ=env)
                assert r.code == 0, r
        cluster.ensure_up()
        mgmt = Management(cluster.settings(2))
        info = mgmt.get(f"/api/queues/{cluster_vhost}/orders")
        assert info["type"] == "quorum"
        assert not [q["name"] for q in mgmt.queues(cluster_vhost) if q["name"].startswith("topoform.")]
        conn = _conn(cluster, 2, cluster_vhost)
        try:
            got = ms.drain(conn, "orders", expect=N, timeout=300)
        finally:
            conn.close()
        expected = [ms.as_tuple(b, p) for b, p in messages]
        # a quorum queue may add a header table (x-delivery-count) to a message it redelivered
        got = [t[:3] + (("None",) if t[3] == "{}" else (t[3],)) + t[4:] for t in got]
        expected = [t[:3] + (("None",) if t[3] == "{}" else (t[3],)) + t[4:] for t in expected]
        assert len(got) == N, f"{len(got)} messages instead of {N}"
        assert sorted(got) == sorted(expected), "not every message exactly once"
        assert got == expected, "order changed"
    finally:
        cluster.ensure_up()
