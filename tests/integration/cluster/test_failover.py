"""A node lost in the middle of an apply: the apply carries on on another node of the URL list.

Issue 15, done-when: apply 5,000 objects with one node SIGKILLed half-way; the apply
completes on another node (or the next apply does), then ``plan --detailed-exitcode`` exits 0
against each node in turn. The objects are exchanges and exchange-to-exchange bindings:
cluster-wide metadata, so every one of them must survive the node (a classic queue would
live on the killed node only).
"""
from __future__ import annotations

import threading

import pytest

from helpers import Management
from topoform.apply import progress as progress_mod

N_EXCHANGES = 2_500  # + 2,500 bindings = 5,000 objects


def _topology(vhost: str) -> str:
    lines = ["version: 1", "vhosts:", f"  {vhost}:", "    exchanges:", "      hub: {type: topic, durable: true}"]
    lines += [f"      x{i:05d}: {{type: fanout, durable: true}}" for i in range(N_EXCHANGES - 1)]
    lines += ["    bindings:"]
    lines += [f"      - {{source: hub, destination: x{i:05d}, destination_type: exchange, routing_key: k.{i}}}"
              for i in range(N_EXCHANGES - 1)]
    lines += ["      - {source: x00000, destination: x00001, destination_type: exchange, routing_key: ''}"]
    return "\n".join(lines) + "\n"


def _counts(mgmt: Management, vhost: str) -> tuple[int, int]:
    d = mgmt.definitions(vhost)
    return len(d["exchanges"]), len(d["bindings"])


@pytest.mark.slow
def test_apply_survives_a_node_killed_half_way(cluster, cluster_vhost, cli, tmp_path, monkeypatch):
    files = tmp_path / "big.yaml"
    files.write_text(_topology(cluster_vhost))
    # node 1 first: the one topoform uses, and the one that dies
    env = cluster.env(nodes=["1", "2", "3"])
    killed = threading.Event()
    seen = {"at": None}
    original_done = progress_mod._Counting.done

    def done(self, change, count=1):
        original_done(self, change, count)
        if not killed.is_set() and self.count >= N_EXCHANGES:  # half of the 5,000
            seen["at"] = self.count
            cluster.kill(1)
            killed.set()

    monkeypatch.setattr(progress_mod._Counting, "done", done)
    try:
        r = cli(["apply", "--auto-approve", "-f", files], environ=env)
        assert killed.is_set(), f"the apply ended before node 1 was killed: {r!r}"
        assert not cluster.up(1)
        if r.code != 0:  # the documented fallback: the next apply finishes the job
            r = cli(["apply", "--auto-approve", "-f", files], environ=env)
        assert r.code == 0, r
        survivor = Management(cluster.settings(2))
        assert _counts(survivor, cluster_vhost) == (N_EXCHANGES, N_EXCHANGES)
        # a plan read with the dead node first in the list goes on to the next node
        p = cli(["plan", "--detailed-exitcode", "-f", files], environ=env)
        assert p.code == 0, p
        # the killed node comes back; every node now agrees there is nothing to do
        cluster.start_node(1)
        for n in cluster.nodes:
            p = cli(["plan", "--detailed-exitcode", "-f", files], environ=cluster.env(nodes=[n["name"]]))
            assert p.code == 0, (n["node"], p)
    finally:
        cluster.ensure_up()
