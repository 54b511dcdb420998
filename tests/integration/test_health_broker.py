"""What topoform/cluster.py reads and calls, on each test broker (3.10.8, 4.0.5, 4.3.6):
a quorum queue's members / online / leader fields, the node listing's alarm fields, the
quorum-critical check of a single node, and where POST .../replicas/add exists (4.0+)."""
from __future__ import annotations

from topoform import cluster as C
from topoform.broker import cluster_read as R
from topoform.broker.http import ManagementClient
from topoform.broker.settings import quote_segment


def test_the_fields_and_routes_the_cluster_logic_relies_on(broker, mgmt, vhost):
    version = R.parse_version(mgmt.get("/api/overview")["rabbitmq_version"])
    node = mgmt.get("/api/overview")["node"]
    mgmt.put(f"/api/queues/{quote_segment(vhost)}/qq", {"durable": True, "arguments": {"x-queue-type": "quorum"}})
    client = ManagementClient(broker)
    try:
        rows = client.get(f"/api/queues/{quote_segment(vhost)}", params={"columns": R.QUEUE_COLUMNS})
        q = C.parse_queues(rows)[(vhost, "qq")]
        assert q.members == (node,) and q.online == (node,) and q.leader == node
        raw = next(r for r in rows if r["name"] == "qq")
        assert raw["leader"] == node
        assert raw.get("node") == (None if version < (4, 0) else node)  # 3.10: only "leader"

        nodes = C.parse_nodes(client.get("/api/nodes", params={"columns": R.NODE_COLUMNS}))
        assert [(n.name, n.running, n.alarms) for n in nodes] == [(node, True, ())]
        health = R.read_health(client, [vhost])
        assert health is not None and not health.is_cluster and C.apply_refusals(health, []) == []

        r = client.request("GET", "/api/health/checks/node-is-quorum-critical", expect=(200, 503))
        assert r.status_code == 200 and C.parse_quorum_critical(200, r.json()) == ()

        add = client.request("POST", f"/api/queues/quorum/{quote_segment(vhost)}/qq/replicas/add", {"node": node},
                             expect=(), accept="*/*")
        if version >= C.ADD_MEMBER_SINCE:
            assert add.status_code == 204  # already a member: accepted, nothing changes
        else:
            assert add.status_code == 405  # no such route on 3.10: the plan names the CLI command instead
        assert C.parse_queues(client.get(f"/api/queues/{quote_segment(vhost)}",
                                         params={"columns": R.QUEUE_COLUMNS}))[(vhost, "qq")].members == (node,)
    finally:
        client.close()
