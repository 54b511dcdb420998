"""topoform export against a real broker: export, bulk-import into an empty vhost, plan reports no changes.

The files are generated for the test's vhost (every example topology, moved into it, and
the randomized 200-queue state), exported with ``topoform export``, loaded into the empty
vhost with ``POST /api/definitions`` (what ``load_definitions`` does at boot), and then
``plan --detailed-exitcode`` must exit 0.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker_states import example_cases, randomized_topology
from conftest import TEST_USER
from helpers import EXAMPLES
from topoform.dump import dump_topology
from topoform.load import load_topology
from topoform.model import Topology, Vhost


def _example_in(filename: str, example_vhost: str, vhost: str) -> Topology:
    """The whole example vhost (exclusive queues and vhost settings included), renamed into ``vhost``."""
    t = load_topology([str(Path(EXAMPLES, filename))]).topology.in_vhosts([example_vhost])
    out = [r.replace(name=vhost) if isinstance(r, Vhost) else r.replace(vhost=vhost) for r in t.resources()]
    return Topology.build(out, tests=[])


def _export_load_plan(mgmt, cli, broker_env, tmp_path, t: Topology) -> dict:
    files = tmp_path / "topology.yaml"
    files.write_text(dump_topology(t))
    out = tmp_path / "definitions.json"
    r = cli(["export", "-f", files, "-o", out])
    assert r.code == 0, r
    definitions = json.loads(out.read_text())
    mgmt.request("POST", "/api/definitions", definitions, expect=(200, 201, 204))
    plan = cli(["plan", "--detailed-exitcode", "-f", files], environ=broker_env)
    assert plan.code == 0, plan
    return definitions


@pytest.mark.parametrize("filename, example_vhost", example_cases())
def test_export_of_every_example_loads_into_an_empty_vhost_with_no_changes_left(
        mgmt, vhost, cli, broker_env, tmp_path, filename, example_vhost):
    t = _example_in(filename, example_vhost, vhost)
    definitions = _export_load_plan(mgmt, cli, broker_env, tmp_path, t)
    exclusive = {q.name for q in t.queues.values() if q.exclusive}
    assert not exclusive & {q["name"] for q in definitions["queues"]}
    live = {q["name"] for q in mgmt.get(f"/api/queues/{mgmt_quote(vhost)}")}
    assert live == {q.name for q in t.queues.values() if not q.exclusive}


def test_export_of_a_randomized_topology_loads_into_an_empty_vhost_with_no_changes_left(
        mgmt, vhost, cli, broker_env, tmp_path):
    t = randomized_topology(vhost, seed=11)
    definitions = _export_load_plan(mgmt, cli, broker_env, tmp_path, t)
    assert len(definitions["queues"]) == 200
    defs = mgmt.definitions(vhost)
    assert len(defs["queues"]) == 200 and len(defs["bindings"]) == len(t.bindings)


def test_export_creates_vhosts_with_their_settings(admin, mgmt, vhost, cli, broker_env, tmp_path):
    # 3.10 applies a vhost's default_queue_type only when the import creates the vhost
    # (as at boot), so start without it; the fixture still removes it afterwards.
    admin.delete_vhost(vhost)
    t = Topology.build([Vhost(vhost, description="seeded by topoform export", tags=("a", "b"),
                              default_queue_type="quorum")])
    files = tmp_path / "topology.yaml"
    files.write_text(dump_topology(t))
    r = cli(["export", "-f", files])
    assert r.code == 0, r
    mgmt.request("POST", "/api/definitions", json.loads(r.out), expect=(200, 201, 204))
    q = mgmt_quote(vhost)  # permissions are not topoform's: grant the test user its own again
    admin.put(f"/api/permissions/{q}/{mgmt_quote(TEST_USER)}", {"configure": ".*", "write": ".*", "read": ".*"})
    plan = cli(["plan", "--detailed-exitcode", "-f", files], environ=broker_env)
    assert plan.code == 0, plan
    row = mgmt.get(f"/api/vhosts/{mgmt_quote(vhost)}")
    assert row["description"] == "seeded by topoform export"
    assert row["tags"] == ["a", "b"] and row["default_queue_type"] == "quorum"


def mgmt_quote(name: str) -> str:
    from topoform.broker.settings import quote_segment

    return quote_segment(name)
