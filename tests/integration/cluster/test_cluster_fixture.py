"""The test cluster itself: three nodes, joined, each answering as the test user."""
from __future__ import annotations

from helpers import Management
from topoform.broker.settings import quote_segment


def test_every_node_answers_and_sees_the_whole_cluster(cluster):
    names = sorted(n["node"] for n in cluster.nodes)
    assert len(names) == 3
    for n in cluster.nodes:
        mgmt = Management(cluster.settings(n["name"]))  # the test user, not guest
        overview = mgmt.get("/api/overview")
        assert overview["node"] == n["node"]
        assert overview["rabbitmq_version"].startswith(n["version"] + ".")
        running = sorted(x["name"] for x in mgmt.get("/api/nodes") if x.get("running"))
        assert running == names


def test_a_vhost_made_on_one_node_is_on_every_node(cluster, cluster_vhost):
    for n in cluster.nodes:
        got = Management(cluster.settings(n["name"])).get(f"/api/vhosts/{quote_segment(cluster_vhost)}")
        assert got["name"] == cluster_vhost
        assert sorted(got.get("cluster_state", {})) == sorted(x["node"] for x in cluster.nodes)
