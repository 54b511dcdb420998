"""topoform import against a real broker: import, then plan reports no changes.

Every example topology and a randomized state (200 queues, arguments of every type,
exchange-to-exchange and headers bindings, policies) are bulk-imported into the test's
vhost; ``topoform import`` must then write files that ``plan --detailed-exitcode``
accepts with exit 0, and that load back as exactly the state that was put there.
"""
from __future__ import annotations

import json

import pytest
import yaml

from broker_states import example_cases, example_state, randomized_topology, vhost_definitions
from topoform.broker import versioned
from topoform.broker.settings import quote_segment
from topoform.versions import has
from topoform.load import load_topology
from topoform.model import Topology


def _post(mgmt, vhost: str, t: Topology) -> None:
    mgmt.request("POST", f"/api/definitions/{quote_segment(vhost)}", vhost_definitions(t, vhost), expect=(200, 201, 204))


def _objects(t: Topology) -> tuple:
    """Everything but vhost settings (the test vhost's description comes from the fixture)."""
    return (dict(t.exchanges), dict(t.queues), t.bindings, dict(t.policies))


def _as_imported(t: Topology, version: tuple[int, int]) -> tuple:
    """What import writes for a state put on a broker of ``version``: 4.x stores x-queue-type
    classic on every classic queue, so an explicit classic that a declare implies anyway
    cannot be told apart there (broker/versioned.py)."""
    dqts = {v.name: v.default_queue_type for v in t.vhosts.values()}
    return _objects(Topology.build(versioned.normalize_resources(t.resources(), dqts, version)))


def _import_and_plan(cli, broker_env, tmp_path, vhost: str) -> Topology:
    out = tmp_path / "imported.yaml"
    r = cli(["import", "--vhost", vhost, "-o", out], environ=broker_env)
    assert r.code == 0, r
    loaded = load_topology([str(out)])
    assert not loaded.errors, [f.format() for f in loaded.errors]
    plan = cli(["plan", "--detailed-exitcode", "-f", out], environ=broker_env)
    assert plan.code == 0, plan
    fmt = cli(["fmt", "--check", "-f", out])  # an import is in fmt's canonical form as written
    assert fmt.code == 0, fmt
    return loaded.topology


@pytest.mark.parametrize("filename, example_vhost", example_cases())
def test_import_of_every_example_then_plan_reports_no_changes(mgmt, vhost, cli, broker_env, tmp_path,
                                                             filename, example_vhost, broker_version):
    state = example_state(filename, example_vhost, vhost)
    _post(mgmt, vhost, state)
    imported = _import_and_plan(cli, broker_env, tmp_path, vhost)
    assert _objects(imported) == _as_imported(state, broker_version)


def test_import_of_a_randomized_state_then_plan_reports_no_changes(mgmt, vhost, cli, broker_env, tmp_path,
                                                                  broker_version):
    state = randomized_topology(vhost)
    assert len(state.queues) == 200
    _post(mgmt, vhost, state)
    imported = _import_and_plan(cli, broker_env, tmp_path, vhost)
    assert _objects(imported) == _as_imported(state, broker_version)
    text = (tmp_path / "imported.yaml").read_text()
    assert "x-custom-" in text and "destination_type: exchange" in text
    # typed values survive: a string that looks like a number stays quoted
    assert '"60000"' in text


def test_import_skips_never_managed_objects_and_says_how_many(mgmt, vhost, cli, broker_env, tmp_path, amqp,
                                                             broker_version):
    ch = amqp.channel()
    ch.exchange_declare("ex", "direct", durable=True)
    ch.queue_declare("kept", durable=True)
    ch.queue_bind("kept", "ex", "k")
    ch.queue_declare("runtime-only", exclusive=True)
    ch.queue_bind("runtime-only", "ex", "r")
    server_named = ch.queue_declare("", exclusive=True).method.queue
    assert server_named.startswith("amq.gen-")
    r = cli(["import", "--vhost", vhost], environ=broker_env)
    assert r.code == 0, r
    assert "runtime-only" not in r.out and "amq.gen-" not in r.out and "amq.direct" not in r.out
    header = r.out.splitlines()[:2]
    assert header[0].startswith("# Imported by `topoform import` from the broker at http")
    # the same on every version (the reader's per-kind listings hide 4.3's export quirks)
    assert header[1] == "# Skipped 2 never-managed objects: exclusive queues: 2.", header
    data = yaml.safe_load(r.out)
    assert data["vhosts"][vhost]["queues"]["kept"]["bindings"] == [{"exchange": "ex", "routing_key": "k"}]
    out = tmp_path / "t.yaml"
    out.write_text(r.out)
    assert cli(["plan", "--detailed-exitcode", "-f", out], environ=broker_env).code == 0


def test_import_to_a_directory_writes_one_file_per_vhost(mgmt, vhost, cli, broker_env, tmp_path):
    state = example_state(*example_cases()[0], vhost)
    _post(mgmt, vhost, state)
    target = tmp_path / "imported"
    target.mkdir()
    r = cli(["import", "--vhost", vhost, "-o", target], environ=broker_env)
    assert r.code == 0, r
    files = sorted(p.name for p in target.iterdir())
    assert files == [f"{vhost}.yaml"]
    assert cli(["plan", "--detailed-exitcode", "-f", target], environ=broker_env).code == 0


def test_import_from_a_state_file_matches_the_live_import(mgmt, vhost, cli, broker_env, tmp_path, broker_version):
    state = example_state(*example_cases()[0], vhost)
    _post(mgmt, vhost, state)
    export = tmp_path / "defs.json"  # the single-vhost export: no vhost names in it
    export.write_text(json.dumps(mgmt.definitions(vhost)))
    offline = cli(["import", "--state", export, "--vhost", vhost])
    assert offline.code == 0, offline
    live = cli(["import", "--vhost", vhost], environ=broker_env)
    assert live.code == 0, live
    # an export holds no vhost settings (description, tags): compare the objects
    from topoform.load import load_text
    assert (_objects(load_text(offline.out).topology) == _objects(load_text(live.out).topology)
            == _as_imported(state, broker_version))
    assert f"the definitions export {export}" in offline.out.splitlines()[0]


def test_import_of_a_missing_vhost_is_an_error(cli, broker_env, vhost):
    r = cli(["import", "--vhost", vhost + "-missing"], environ=broker_env)
    assert r.code == 1
    assert "not found" in r.err and "Traceback" not in r.err


def test_import_from_an_unreachable_broker_is_one_line_without_password(cli):
    env = {"TOPOFORM_URL": "amqp://someone:s3cret-pw@127.0.0.1:1/", "TOPOFORM_TIMEOUT": "2"}
    r = cli(["import"], environ=env)
    assert r.code == 1
    assert "s3cret-pw" not in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
