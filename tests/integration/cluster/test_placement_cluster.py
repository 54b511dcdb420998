"""Quorum queue placement on the 3-node cluster (issue 15): the quorum queues one apply
declares have their leaders spread over the nodes (no node leads more than half), whichever
node the apply was pointed at, and arguments stay exactly as the files wrote them."""
from __future__ import annotations

import pytest

from helpers import Management
from topoform.broker.settings import quote_segment

N_QUEUES = 6


def _files(tmp_path, vhost: str, extra: str = "") -> str:
    lines = ["version: 1", "vhosts:", f"  {vhost}:", "    queues:"]
    lines += [f"      q{i}: {{durable: true, arguments: {{x-queue-type: quorum}}}}" for i in range(N_QUEUES)]
    path = tmp_path / "qq.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return str(path)


def _leaders(mgmt: Management, vhost: str) -> dict[str, str]:
    rows = mgmt.get(f"/api/queues/{quote_segment(vhost)}?columns=name,leader,members,arguments")
    return {r["name"]: r for r in rows}


@pytest.mark.parametrize("nodes", [["2"], ["3", "1", "2"]], ids=["one-url", "url-list"])
def test_one_apply_spreads_quorum_leaders_over_the_nodes(cluster, cluster_vhost, cli, tmp_path, nodes):
    files = _files(tmp_path, cluster_vhost)
    env = cluster.env(nodes=nodes)  # one URL: the other nodes are found from the listeners
    r = cli(["apply", "--auto-approve", "-f", files], environ=env)
    assert r.code == 0, r
    rows = _leaders(Management(cluster.settings(nodes[0])), cluster_vhost)
    assert len(rows) == N_QUEUES
    counts: dict[str, int] = {}
    for row in rows.values():
        counts[row["leader"]] = counts.get(row["leader"], 0) + 1
        assert row["arguments"] == {"x-queue-type": "quorum"}  # no locator argument added: no drift
        assert len(row["members"]) == 3
    assert max(counts.values()) * 2 <= N_QUEUES, counts  # no node leads more than half
    assert len(counts) == 3, counts  # 6 queues on 3 nodes: each leads some
    r = cli(["plan", "--detailed-exitcode", "-f", files], environ=env)
    assert r.code == 0, r
    assert "leads" not in r.err  # no concentration reported


def test_group_size_above_the_cluster_is_a_plan_warning(cluster, cluster_vhost, cli, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(f"version: 1\nvhosts:\n  {cluster_vhost}:\n    queues:\n      big: {{durable: true, arguments: "
                    "{x-queue-type: quorum, x-quorum-initial-group-size: 5}}\n")
    r = cli(["plan", "-f", path], environ=cluster.env(nodes=["1"]))
    assert r.code == 0, r
    assert "x-quorum-initial-group-size 5 is more than the cluster's 3 nodes" in r.err, r
