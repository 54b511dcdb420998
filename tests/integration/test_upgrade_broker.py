"""upgrade-check against the real broker: a vhost with what 4.3 refuses or deprecates, checked ``--to 4.3``.

The set-up is the docs' example (docs/upgrade-check.md): a classic mirrored queue policy
(``ha-mode: all``), transient non-exclusive queues, a topic binding key with three ``#``,
plus ``x-queue-version: 1`` and ``x-queue-master-locator`` queues. Each broker accepts only
part of it (4.x refuses ha-*; 4.3 refuses the rest too): the test asserts each broker's
answer from the rules table, checks what the broker holds, then checks the refused
objects offline with ``--state`` (the broker's own export with those rows added).
"""
from __future__ import annotations

import json

import jsonschema
import pytest

from helpers import ROOT

from topoform.broker.settings import quote_segment
from topoform.versions import has

SCHEMA = json.loads((ROOT / "schemas" / "upgrade-check.schema.json").read_text())

HA = {"pattern": "^orders", "apply-to": "queues", "definition": {"ha-mode": "all"}}
KEY = "audit.#.#.#"
# name -> (HTTP body, the row under which the broker refuses it, or None)
QUEUES = {
    "orders": ({"durable": True}, None),
    "tmp.jobs": ({"durable": False, "auto_delete": False}, None),
    "tmp.replies": ({"durable": False, "auto_delete": True}, None),
    "cq.v1": ({"durable": True, "arguments": {"x-queue-version": 1}}, "queue_version_1_refused"),
    "locator": ({"durable": True, "arguments": {"x-queue-master-locator": "min-masters"}},
                "queue_master_locator_refused"),
}


def _setup(mgmt, vhost, version):
    """Create everything this broker accepts; returns the names of what it refused (as each version must)."""
    v = quote_segment(vhost)
    refused = set()
    r = mgmt.request("PUT", f"/api/policies/{v}/ha-all", HA, expect=())
    assert (r.status_code == 400) == has(version, "ha_policies_refused"), r.text
    if r.status_code == 400:
        refused.add("ha-all")
    for name, (body, row) in QUEUES.items():
        r = mgmt.request("PUT", f"/api/queues/{v}/{quote_segment(name)}", body, expect=())
        assert (r.status_code >= 400) == (row is not None and has(version, row)), (name, r.status_code, r.text)
        if r.status_code >= 400:
            refused.add(name)
    mgmt.put(f"/api/exchanges/{v}/events", {"type": "topic", "durable": True})
    r = mgmt.request("POST", f"/api/bindings/{v}/e/events/q/orders", {"routing_key": KEY}, expect=())
    assert (r.status_code >= 400) == has(version, "topic_max_two_hash"), (r.status_code, r.text)
    if r.status_code >= 400:
        refused.add("binding")
    return refused


def _by_rule(doc):
    out = {}
    for f in doc["findings"]:
        out.setdefault(f["rule"], []).append(f)
    return out


EXPECTED_ERRORS = {  # rule -> (kind, name) of the object it must name
    "ha_policies_refused": ("policy", "ha-all"),
    "queue_version_1_refused": ("queue", "cq.v1"),
    "queue_master_locator_refused": ("queue", "locator"),
    "topic_max_two_hash": ("binding", f"events -> orders [{KEY}]"),
}
REFUSED_NAME = {"ha_policies_refused": "ha-all", "queue_version_1_refused": "cq.v1",
                "queue_master_locator_refused": "locator", "topic_max_two_hash": "binding"}


def test_upgrade_check_to_43_lists_what_breaks(cli, broker_env, mgmt, vhost, broker_version):
    refused = _setup(mgmt, vhost, broker_version)
    r = cli(["upgrade-check", "--to", "4.3", "--vhost", vhost, "--json"], environ=broker_env)
    doc = r.json
    jsonschema.validate(doc, SCHEMA)
    assert doc["from"] == "%d.%d" % broker_version and doc["to"] == "4.3" and doc["vhosts"] == [vhost]
    assert {f["vhost"] for f in doc["findings"]} <= {vhost, ""}
    rules = _by_rule(doc)
    held = {rule for rule in EXPECTED_ERRORS if REFUSED_NAME[rule] not in refused}
    for rule in EXPECTED_ERRORS:
        if rule in held:
            [f] = [f for f in rules.get(rule, []) if f["vhost"] == vhost]
            assert (f["severity"], f["kind"], f["name"]) == ("error", *EXPECTED_ERRORS[rule]), f
            assert f["remedy"] and f["source"] == "broker"
        else:
            assert not [f for f in rules.get(rule, []) if f["vhost"] == vhost]
    # the transient non-exclusive queues (both of them: auto-delete or not) are deprecated on 4.3
    transient = {f["name"] for f in rules.get("transient_nonexcl_deprecated", []) if f["kind"] == "queue"}
    assert transient == {"tmp.jobs", "tmp.replies"}
    [jobs] = [f for f in rules["transient_nonexcl_deprecated"] if f["name"] == "tmp.jobs"]
    assert any("durable: false -> true" in line for line in jobs["plan"])
    if "ha_policies_refused" in held:  # 3.10: the plan moves the mirrored queue to quorum and drops the policy
        [ha] = rules["ha_policies_refused"]
        plan = "\n".join(ha["plan"])
        assert "-/+ queue orders" in plan and '"quorum"' in plan and "policy ha-all" in plan
    # the broker's own list of deprecated features in use, where it has one (4.0+)
    features = {f["name"] for f in doc["findings"] if f["kind"] == "deprecated-feature"}
    if broker_version >= (4, 0):
        # measured: 4.0.5 and 4.3.6 list transient_nonexcl_queues while such a queue exists; 4.0.5 never lists
        # queue_master_locator, even with x-queue-master-locator queues and policies (the objects are found anyway)
        assert "transient_nonexcl_queues" in features
    else:
        assert not features  # 3.10: no deprecated features subsystem (404)
    # headers routing changes from 3.13: only a 3.10 broker gets that warning (none here: no headers bindings)
    assert r.code == (3 if held else 0), r
    text = cli(["upgrade-check", "--to", "4.3", "--vhost", vhost], environ=broker_env)
    assert text.code == r.code and f"RabbitMQ {doc['from']} -> 4.3" in text.out and "tmp.jobs" in text.out


def test_upgrade_check_state_file_holds_what_the_broker_refused(cli, broker_env, mgmt, vhost, broker_version,
                                                              tmp_path):
    """What this broker could not create is checked offline: its export with those rows added."""
    _setup(mgmt, vhost, broker_version)
    export = mgmt.definitions(vhost)
    names = {q["name"] for q in export["queues"]}
    for name, (body, _row) in QUEUES.items():
        if name not in names:
            export["queues"].append({"name": name, "durable": body["durable"],
                                     "auto_delete": body.get("auto_delete", False),
                                     "arguments": body.get("arguments", {})})
    if not any(p["name"] == "ha-all" for p in export.get("policies", [])):
        export.setdefault("policies", []).append({"name": "ha-all", "vhost": vhost, "priority": 0, **HA})
    if not any(b.get("routing_key") == KEY for b in export.get("bindings", [])):
        export.setdefault("bindings", []).append({"source": "events", "destination": "orders",
                                                  "destination_type": "queue", "routing_key": KEY,
                                                  "arguments": {}})
    export["rabbit_version"] = "3.10.8"  # checked as the 3.10 broker that held them
    export.pop("rabbitmq_version", None)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    r = cli(["upgrade-check", "--to", "4.3", "--state", str(path), "--vhost", vhost, "--json"], environ={})
    assert r.code == 3, r
    doc = r.json
    jsonschema.validate(doc, SCHEMA)
    assert doc["from"] == "3.10"
    rules = _by_rule(doc)
    for rule, (kind, name) in EXPECTED_ERRORS.items():
        [f] = rules[rule]
        assert (f["severity"], f["kind"], f["name"], f["source"]) == ("error", kind, name, "state-file"), f
    assert {f["name"] for f in rules["transient_nonexcl_deprecated"]} == {"tmp.jobs", "tmp.replies"}


@pytest.mark.parametrize("to", ["3.10", "4.0"])
def test_upgrade_check_to_other_versions(cli, broker_env, mgmt, vhost, broker_version, to):
    """The same vhost against 3.10 and 4.0: what 4.3 alone refuses is no error there."""
    refused = _setup(mgmt, vhost, broker_version)
    r = cli(["upgrade-check", "--to", to, "--vhost", vhost, "--json"], environ=broker_env)
    doc = r.json
    jsonschema.validate(doc, SCHEMA)
    rules = _by_rule(doc)
    assert not rules.get("topic_max_two_hash") and not rules.get("queue_version_1_refused")
    ha = "ha-all" not in refused and to == "4.0"
    assert bool(rules.get("ha_policies_refused")) == ha
    if to == "3.10":
        assert not rules.get("transient_nonexcl_deprecated")
    assert r.code == (3 if ha else 0), r
