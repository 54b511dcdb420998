"""upgrade-check: the pure checks (topoform/upgrade.py) on hand-made states, and the CLI offline (--state, -f)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from helpers import ROOT, run_cli

from topoform import upgrade as U
from topoform.broker.live import LiveState, to_definitions
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost
from topoform.versions import BEHAVIOURS

V = "app"
SCHEMA = json.loads((ROOT / "schemas" / "upgrade-check.schema.json").read_text())


def live(*resources, version="3.10.8") -> LiveState:
    return LiveState(topology=Topology.build([Vhost(name=V), *resources]), version=version)


def run(to, *resources, version="3.10.8", used=None) -> U.Report:
    report = U.check(to, live=live(*resources, version=version), deprecated_used=used)
    jsonschema.validate(report.to_dict(), SCHEMA)
    return report


def found(report, rule=None, kind=None, name=None):
    return [f for f in report.findings if (rule is None or f.rule == rule) and (kind is None or f.kind == kind)
            and (name is None or f.name == name)]


DURABLE = Queue(vhost=V, name="orders", durable=True)
TOPIC = Exchange(vhost=V, name="events", type="topic", durable=True)
HA = Policy(vhost=V, name="ha-all", pattern="^orders", apply_to="queues", definition=Args({"ha-mode": "all"}))


def test_every_rule_row_is_checked_or_has_a_reason():
    keys = {b.key for b in BEHAVIOURS}
    covered = U.rows_covered()
    assert keys - covered - set(U.NOT_CHECKED) == set()
    assert covered <= keys | set(U.LOCAL_RULES)  # no check names a row that does not exist
    assert not covered & set(U.NOT_CHECKED)
    assert all(reason for reason in U.NOT_CHECKED.values())


def test_ha_policy_is_an_error_from_40_with_the_quorum_plan():
    report = run("4.3", DURABLE, HA)
    [f] = found(report, "ha_policies_refused")
    assert (f.severity, f.vhost, f.kind, f.name) == ("error", V, "policy", "ha-all")
    assert "ha-mode" in f.message and "4.3" in f.message
    assert "quorum" in f.remedy and "orders" in f.remedy and "'topoform apply --migrate --prune'" in f.remedy
    text = "\n".join(f.plan)
    assert "-/+ queue orders" in text and '"quorum"' in text and "- " in text and "policy ha-all" in text
    assert report.breaks and report.summary["errors"] >= 1
    assert found(run("4.0", DURABLE, HA), "ha_policies_refused")
    assert not found(run("3.13", DURABLE, HA), "ha_policies_refused")


@pytest.mark.parametrize("default", ["undefined", "classic", None])
def test_ha_policy_plan_with_a_vhost_default_that_does_not_make_quorum_queues(default):
    state = LiveState(topology=Topology.build([Vhost(name=V, default_queue_type=default), DURABLE, HA]),
                      version="3.10.8")  # 3.10 lists an unset default queue type as "undefined"
    [f] = found(U.check("4.3", live=state), "ha_policies_refused")
    assert "-/+ queue orders" in "\n".join(f.plan)


def test_ha_policy_with_other_keys_is_updated_not_deleted_and_skips_auto_delete_queues():
    policy = HA.replace(definition=Args({"ha-mode": "all", "ha-sync-mode": "automatic", "message-ttl": 5000}))
    auto = Queue(vhost=V, name="orders.auto", durable=True, auto_delete=True)
    [f] = found(run("4.3", DURABLE, auto, policy), "ha_policies_refused")
    assert "ha-mode, ha-sync-mode" in f.message
    text = "\n".join(f.plan)
    assert "~   policy ha-all" in text and "-/+ queue orders" in text and "orders.auto" not in text
    assert "cannot be quorum" in f.remedy and "orders.auto" in f.remedy


def test_ha_policy_mirrors_only_the_queues_it_wins_for():
    other = Policy(vhost=V, name="ttl", pattern="^orders$", apply_to="queues", priority=9,
                   definition=Args({"message-ttl": 1}))
    [f] = found(run("4.3", DURABLE, HA, other), "ha_policies_refused")
    assert "queue orders" not in "\n".join(f.plan)


def test_vhost_default_queue_type_decides_what_a_queue_is():
    qv = Vhost(name=V, default_queue_type="quorum")
    typeless = Queue(vhost=V, name="orders", durable=True)  # a quorum queue: the vhost's default
    report = U.check("4.3", live=LiveState(topology=Topology.build([qv, typeless, HA]), version="3.10.8"))
    [f] = found(report, "ha_policies_refused")
    assert "queue orders" not in "\n".join(f.plan) and "orders" not in f.remedy  # nothing mirrored to move
    assert found(report, "quorum_default_delivery_limit", name="orders")


def test_transient_queue_is_a_warning_from_40_with_the_durable_plan():
    tmp = Queue(vhost=V, name="tmp", durable=False)
    report = run("4.3", tmp)
    [f] = found(report, "transient_nonexcl_deprecated")
    assert (f.severity, f.kind, f.name) == ("warning", "queue", "tmp")
    assert "durable: false -> true" in "\n".join(f.plan)
    assert not report.breaks
    assert found(run("4.0", tmp), "transient_nonexcl_deprecated")
    assert not found(run("3.13", tmp), "transient_nonexcl_deprecated")
    exclusive = Queue(vhost=V, name="mine", durable=False, exclusive=True)
    assert not found(run("4.3", exclusive), "transient_nonexcl_deprecated")


def test_three_hash_topic_key_is_an_error_on_43_only():
    collapsible = Binding(vhost=V, source="events", destination="orders", routing_key="a.#.#.#")
    hard = Binding(vhost=V, source="events", destination="orders", routing_key="#.x.#.y.#")
    report = run("4.3", DURABLE, TOPIC, collapsible, hard)
    [c] = found(report, "topic_max_two_hash", name=collapsible.name)
    [h] = found(report, "topic_max_two_hash", name=hard.name)
    assert c.severity == h.severity == "error" and "3 '#'" in c.message
    assert "'a.#'" in c.remedy and "+   binding events -> orders [a.#]" in "\n".join(c.plan)
    assert "'topoform apply --prune'" in c.remedy
    assert "binding events -> orders [a.#.#.#]" in "\n".join(c.plan)
    assert h.plan == () and "test-route" in h.remedy
    assert not found(run("4.0", DURABLE, TOPIC, collapsible, hard), "topic_max_two_hash")


def test_three_hash_key_matters_only_on_topic_exchanges():
    direct = Exchange(vhost=V, name="d", type="direct", durable=True)
    b = Binding(vhost=V, source="d", destination="orders", routing_key="#.#.#")
    assert not found(run("4.3", DURABLE, direct, b), "topic_max_two_hash")
    builtin = Binding(vhost=V, source="amq.topic", destination="orders", routing_key="#.#.#")
    assert found(run("4.3", DURABLE, builtin), "topic_max_two_hash")


@pytest.mark.parametrize("key, expected", [("a.#.#.#", "a.#"), ("#.#", "#"), ("#.a.#", "#.a.#"), ("", ""),
                                           ("#.#.x.#.#", "#.x.#")])
def test_collapse_hashes(key, expected):
    assert U.collapse_hashes(key) == expected


def test_queue_version_1_refused_on_43_and_policy_key_warned():
    q = Queue(vhost=V, name="v1", durable=True, arguments=Args({"x-queue-version": 1}))
    p = Policy(vhost=V, name="cq", pattern=".", definition=Args({"queue-version": 1}))
    report = run("4.3", q, p, version="4.0.5")
    [fq] = found(report, "queue_version_1_refused", kind="queue")
    [fp] = found(report, "queue_version_1_refused", kind="policy")
    assert fq.severity == "error" and "x-queue-version: 1 -> (absent)" in "\n".join(fq.plan)
    assert fp.severity == "warning" and "- " in "\n".join(fp.plan)
    assert not found(run("4.0", q, p, version="3.10.8"), "queue_version_1_refused")
    q2 = q.replace(arguments=Args({"x-queue-version": 2}))
    assert not found(run("4.3", q2, version="4.0.5"), "queue_version_1_refused")


def test_master_locator_deprecated_on_40_refused_on_43_with_the_replacement_the_current_version_allows():
    q = Queue(vhost=V, name="loc", durable=True, arguments=Args({"x-queue-master-locator": "min-masters"}))
    [w] = found(run("4.0", q), "queue_master_locator_deprecated")
    assert w.severity == "warning"
    [e] = found(run("4.3", q, version="3.10.8"), "queue_master_locator_refused")
    assert e.severity == "error"
    # 3.10 refuses x-queue-leader-locator on classic queues: the fix removes the argument
    assert "x-queue-leader-locator" not in "\n".join(e.plan) and "Remove" in e.remedy
    [e40] = found(run("4.3", q, version="4.0.5"), "queue_master_locator_refused")
    assert 'arguments.x-queue-leader-locator: (absent) -> "balanced"' in "\n".join(e40.plan)
    p = Policy(vhost=V, name="locp", pattern=".", definition=Args({"queue-master-locator": "client-local"}))
    [pe] = found(run("4.3", p, version="4.0.5"), "queue_master_locator_refused")
    assert pe.kind == "policy" and 'queue-leader-locator: (absent) -> "client-local"' in "\n".join(pe.plan)


def test_headers_integer_bindings_change_routing_only_across_313():
    hx = Exchange(vhost=V, name="h", type="headers", durable=True)
    b = Binding(vhost=V, source="h", destination="orders", arguments=Args({"x-match": "all", "n": 1, "ok": True,
                                                                         "f": 1.5}))
    [f] = found(run("4.0", DURABLE, hx, b, version="3.10.8"), "headers_numeric_strict")
    assert f.severity == "warning" and "n=1" in f.message and "ok" not in f.message and "f=" not in f.message
    assert not found(run("4.3", DURABLE, hx, b, version="4.0.5"), "headers_numeric_strict")
    only_bool = b.replace(arguments=Args({"x-match": "all", "ok": True}))
    assert not found(run("4.0", DURABLE, hx, only_bool), "headers_numeric_strict")


def test_exchange_types_unknown_or_plugin_on_the_target():
    local = Exchange(vhost=V, name="lr", type="x-local-random", durable=True)
    [e] = found(run("3.13", local, version="4.0.5"), "local_random_exchange")
    assert e.severity == "error"
    assert not found(run("4.3", local, version="4.0.5"), "local_random_exchange")
    modulus = Exchange(vhost=V, name="mh", type="x-modulus-hash", durable=True)
    [w] = found(run("4.0", modulus), "modulus_hash_exchange")
    assert w.severity == "warning" and "rabbitmq_sharding" in w.message
    delayed = Exchange(vhost=V, name="dl", type="x-delayed-message", durable=True)
    [d] = found(run("4.3", delayed), kind="exchange")
    assert d.severity == "warning" and "rabbitmq_delayed_message_exchange" in d.message


def test_quorum_queue_default_delivery_limit_warned_when_crossing_40():
    qq = Queue(vhost=V, name="qq", durable=True, arguments=Args({"x-queue-type": "quorum"}))
    assert found(run("4.0", qq), "quorum_default_delivery_limit")
    assert not found(run("4.3", qq, version="4.0.5"), "quorum_default_delivery_limit")
    limited = qq.replace(arguments=Args({"x-queue-type": "quorum", "x-delivery-limit": 5}))
    assert not found(run("4.0", limited), "quorum_default_delivery_limit")
    policy = Policy(vhost=V, name="dl", pattern="^qq$", definition=Args({"delivery-limit": 50}))
    assert not found(run("4.0", qq, policy), "quorum_default_delivery_limit")


def test_downgrade_leader_locator_on_classic_queue_refused_before_40():
    q = Queue(vhost=V, name="ll", durable=True, arguments=Args({"x-queue-leader-locator": "balanced"}))
    [f] = found(run("3.13", q, version="4.0.5"), "classic_queue_leader_locator")
    assert f.severity == "error" and "x-queue-leader-locator: \"balanced\" -> (absent)" in "\n".join(f.plan)
    assert not found(run("4.3", q, version="4.0.5"), "classic_queue_leader_locator")


def test_downgrade_apply_to_queue_type_refused():
    p = Policy(vhost=V, name="cq", pattern=".", apply_to="classic_queues", definition=Args({"max-length": 1}))
    [f] = found(run("3.10", p, version="4.0.5"), "policy_apply_to_queue_types")
    assert f.severity == "error"


def test_deprecated_features_in_use():
    used = [{"name": "classic_queue_mirroring", "deprecation_phase": "removed"},
            {"name": "transient_nonexcl_queues", "deprecation_phase": "permitted_by_default"},
            {"name": "global_qos", "deprecation_phase": "permitted_by_default"}]
    report = run("4.3", version="4.0.5", used=used)
    by_name = {f.name: f for f in found(report, kind="deprecated-feature")}
    assert by_name["classic_queue_mirroring"].severity == "error"
    assert by_name["transient_nonexcl_queues"].severity == "warning"
    assert by_name["global_qos"].severity == "warning" and "release notes" in by_name["global_qos"].message
    assert report.breaks


def test_clean_state_does_not_break_and_sorts_errors_first():
    report = run("4.3", DURABLE, TOPIC, Queue(vhost=V, name="tmp"), version="4.3.6")
    assert not report.breaks and report.summary["errors"] == 0
    mixed = run("4.3", DURABLE, HA, Queue(vhost=V, name="tmp"))
    severities = [f.severity for f in mixed.findings]
    assert severities == sorted(severities)  # "error" < "warning"
    d = mixed.to_dict()
    assert d["format_version"] == 1 and d["from"] == "3.10" and d["to"] == "4.3"


def test_files_findings_carry_their_position_and_no_plan():
    topo = Topology.build([Vhost(name=V), DURABLE, HA])
    report = U.check("4.3", files=topo, files_locate=lambda key: "t.yaml:3:5" if key == HA.key else "")
    [f] = found(report, "ha_policies_refused")
    assert f.source == "files" and f.location == "t.yaml:3:5" and f.plan == ()
    assert report.from_version is None
    jsonschema.validate(report.to_dict(), SCHEMA)


# ---------------------------------------------------------------- the command, offline

def _export(tmp_path: Path, *resources, version="3.10.8") -> Path:
    doc = to_definitions(Topology.build([Vhost(name=V), *resources]))
    doc["rabbit_version"] = version
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(doc))
    return path


def test_cli_state_file_breaks_exit_3_with_schema_valid_json(tmp_path):
    path = _export(tmp_path, DURABLE, HA, Queue(vhost=V, name="tmp"))
    r = run_cli(["upgrade-check", "--to", "4.3", "--state", str(path), "--json"], cwd=tmp_path)
    assert r.code == 3, r
    doc = r.json
    jsonschema.validate(doc, SCHEMA)
    assert doc["from"] == "3.10" and doc["to"] == "4.3" and doc["vhosts"] == [V]
    rules = {(f["rule"], f["severity"], f["source"]) for f in doc["findings"]}
    assert ("ha_policies_refused", "error", "state-file") in rules
    assert ("transient_nonexcl_deprecated", "warning", "state-file") in rules


def test_cli_text_and_exit_0_when_only_warnings(tmp_path):
    path = _export(tmp_path, DURABLE, Queue(vhost=V, name="tmp"), version="4.0.5")
    r = run_cli(["upgrade-check", "--to", "4.3", "--state", str(path)], cwd=tmp_path)
    assert r.code == 0, r
    assert "RabbitMQ 4.0 -> 4.3" in r.out and "WARNING" in r.out and "queue tmp" in r.out
    assert "0 errors" in r.out and "nothing breaks" in r.out


def test_cli_vhost_narrows_and_unknown_vhost_is_an_error(tmp_path):
    doc = to_definitions(Topology.build([Vhost(name=V), Vhost(name="other"), HA,
                                         Queue(vhost="other", name="tmp")]))
    doc["rabbit_version"] = "3.10.8"
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc))
    r = run_cli(["upgrade-check", "--to", "4.3", "--state", str(path), "--vhost", "other", "--json"], cwd=tmp_path)
    assert r.code == 0, r
    assert {f["vhost"] for f in r.json["findings"]} - {""} == {"other"}  # "": broker-wide findings
    r = run_cli(["upgrade-check", "--to", "4.3", "--state", str(path), "--vhost", "nope"], cwd=tmp_path)
    assert r.code == 1 and "nope" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("argv, words", [
    (["upgrade-check", "--to", "5.1", "--state", "x.json"], "--to: unsupported RabbitMQ version 5.1"),
    (["upgrade-check", "--to", "banana", "--state", "x.json"], "--to: invalid RabbitMQ version"),
    (["upgrade-check", "--to", "4.3", "--state", "missing.json"], "no such file"),
    (["upgrade-check", "--state", "x.json"], "--to"),
])
def test_cli_errors_are_one_line_exit_1(tmp_path, argv, words):
    r = run_cli(argv, cwd=tmp_path)
    assert r.code == 1, r
    assert words in r.err and "Traceback" not in r.err


def test_cli_files_are_checked_too_with_positions(tmp_path):
    path = _export(tmp_path, DURABLE)
    (tmp_path / "t.yaml").write_text(
        "vhosts:\n  app:\n    queues:\n      orders: {durable: true}\n    policies:\n      ha-all:\n"
        "        pattern: '^orders'\n        definition: {ha-mode: all}\n")
    r = run_cli(["upgrade-check", "--to", "4.3", "--state", str(path), "-f", "t.yaml", "--json"], cwd=tmp_path)
    assert r.code == 3, r
    [f] = [f for f in r.json["findings"] if f["rule"] == "ha_policies_refused"]
    assert f["source"] == "files" and "t.yaml:6:" in f["location"]


def test_upgrade_module_is_pure():
    """topoform.upgrade does no I/O: no transports, no CLI (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys, json, topoform.upgrade; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] "
            "in ('requests', 'pika', 'topoform'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    bad = [m for m in loaded if m in ("requests", "pika") or m.startswith(("topoform.cli", "topoform.broker.http",
                                                                           "topoform.broker.amqp", "topoform.apply"))]
    assert not bad and "topoform.upgrade" in loaded
