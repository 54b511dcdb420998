"""Real-world-shaped definitions files: broker -> import -> apply into a second vhost -> same broker state.

Each case is a definitions file as people keep them (rows listed twice, only parameters
and limits, vhost tags in a chosen order, no default queue type, policies, internal
exchanges). It is loaded with ``POST /api/definitions`` (the global endpoint, its vhost
renamed to a fresh unique name, so the vhost row's settings are applied too), then
``topoform import`` writes it as YAML, ``topoform apply`` creates that YAML in a SECOND
fresh vhost, and both vhosts must compare equal object by object: exchanges (internal
ones from ``GET /api/exchanges/V``: 4.3 leaves them out of the vhost's definitions),
queues, bindings, policies, and the vhost settings of ``GET /api/vhosts/V``
(default_queue_type, tags in order, description).

The same file read offline (``import --state``) must plan no change against the loaded
vhost, except where the broker itself is not deterministic (rows listed twice with
different settings: it declares them concurrently, either row may win), where the
import says so instead.
"""
from __future__ import annotations

import copy
import json
import time

import pytest
import yaml

from conftest import TEST_USER
from helpers import unique_vhost
from topoform.broker.settings import quote_segment


def _q(name, durable=True, **arguments):
    return {"name": name, "durable": durable, "auto_delete": False, "arguments": arguments}


def _x(name, type_="direct", internal=False, **arguments):
    return {"name": name, "type": type_, "durable": True, "auto_delete": False, "internal": internal,
            "arguments": arguments}


def _b(source, destination, key="", destination_type="queue", **arguments):
    return {"source": source, "destination": destination, "destination_type": destination_type,
            "routing_key": key, "arguments": arguments}


def _p(name, pattern, definition, apply_to="queues", priority=0):
    return {"name": name, "pattern": pattern, "apply-to": apply_to, "definition": definition, "priority": priority}


# name -> (vhost row settings, definitions body); every row gets the case's vhost name
CASES = {
    "duplicate-rows": ({"description": "rows listed twice"}, {
        "exchanges": [_x("orders", "topic"), _x("orders", "fanout")],
        "queues": [_q("work", **{"x-max-length": 10}), _q("work", **{"x-max-length": 20}), _q("same"), _q("same")],
        "bindings": [_b("orders", "work", "a.*"), _b("orders", "work", "a.*")],
        "policies": [_p("cap", "^a", {"max-length": 5}), _p("cap", "^b", {"max-length": 6})],
    }),
    "parameters-only": ({"description": "limits and parameters"}, {
        "parameters": [{"component": "federation-upstream", "name": "origin",
                        "value": {"uri": "amqp://localhost:1", "ack-mode": "on-confirm"}},
                       {"component": "vhost-limits", "name": "limits", "value": {"max-queues": 100}}],
    }),
    "vhost-tags": ({"description": "Orders (EU)", "tags": ["prod", "eu-west", "alpha"]}, {
        "queues": [_q("orders")],
    }),
    "unset-default-queue-type": ({"description": ""}, {  # no default_queue_type anywhere
        "queues": [_q("plain"), _q("transient", durable=False), _q("lazy", **{"x-max-length": 3})],
        "exchanges": [_x("events", "topic")],
        "bindings": [_b("events", "plain", "#")],
    }),
    "quorum-default": ({"description": "quorum by default", "default_queue_type": "quorum"}, {
        "queues": [_q("jobs"), _q("scratch", durable=False), _q("old", **{"x-queue-type": "classic"})],
    }),
    "policies": ({"description": "policies"}, {
        "queues": [_q("short.a"), _q("fed.b")],
        "policies": [_p("ttl", "^short\\.", {"message-ttl": 60000, "max-length": 100}, priority=2),
                     _p("federate", "^fed\\.", {"federation-upstream-set": "all"}, apply_to="exchanges"),
                     _p("overflow", ".*", {"overflow": "reject-publish"}, apply_to="all", priority=-1)],
    }),
    "internal-exchanges": ({"description": "internal exchanges"}, {
        "exchanges": [_x("public", "topic", **{"alternate-exchange": "unrouted"}), _x("unrouted", "fanout", True),
                      _x("inner", "headers", True)],
        "queues": [_q("dead"), _q("matched")],
        "bindings": [_b("unrouted", "dead"), _b("public", "inner", "#", "exchange"),
                     _b("inner", "matched", "", **{"x-match": "all", "kind": "a"})],
    }),
}


def _global_file(case: str, vhost: str) -> dict:
    """The case as a global definitions file for ``vhost`` (what ``rabbitmqctl export_definitions`` writes)."""
    settings, body = CASES[case]
    row = {"name": vhost, **settings, "metadata": dict(settings)}
    out: dict = {"vhosts": [row], "permissions": [
        {"user": u, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"} for u in (TEST_USER, "guest")]}
    for kind, rows in body.items():
        out[kind] = [dict(copy.deepcopy(r), vhost=vhost) for r in rows]
    return out


def _vhost_settings(admin, vhost: str) -> dict:
    v = admin.get(f"/api/vhosts/{quote_segment(vhost)}")
    return {k: v.get(k) for k in ("default_queue_type", "tags", "description")}


def _objects(admin, vhost: str) -> dict:
    """The vhost's managed objects, by kind and name, as the broker stores them."""
    q = quote_segment(vhost)
    defs = admin.get(f"/api/definitions/{q}")
    exchanges = {x["name"]: x for x in defs.get("exchanges") or ()}
    for x in admin.get(f"/api/exchanges/{q}"):  # 4.3 leaves internal exchanges out of the definitions
        if x.get("internal") and x["name"] not in exchanges:
            exchanges[x["name"]] = x
    keep = ("type", "durable", "auto_delete", "arguments")
    # A queue's stored arguments lack x-queue-type where 3.10 made it classic without one
    # (its definitions import does so even under a quorum default, which no declare can
    # reproduce there): compare with the type the broker reports for it filled in.
    types = {r["name"]: r.get("type") for r in admin.get(f"/api/queues/{q}?columns=name,type")}
    quorum_default = admin.get(f"/api/vhosts/{q}").get("default_queue_type") in ("quorum", "stream")
    out = {
        "exchanges": {n: {**{k: x.get(k) for k in keep}, "internal": bool(x.get("internal"))}
                      for n, x in exchanges.items()},
        "queues": {r["name"]: {"durable": r.get("durable"), "auto_delete": r.get("auto_delete"),
                               "arguments": {"x-queue-type": types[r["name"]], **(r.get("arguments") or {})},
                               # elsewhere the stored arguments themselves must be equal
                               "stored": None if quorum_default else r.get("arguments")}
                   for r in defs.get("queues") or ()},
        "bindings": sorted(json.dumps({k: b.get(k) for k in ("source", "destination", "destination_type",
                                                             "routing_key", "arguments")}, sort_keys=True)
                           for b in defs.get("bindings") or ()),
        "policies": {p["name"]: {k: p.get(k) for k in ("pattern", "apply-to", "definition", "priority")}
                     for p in defs.get("policies") or ()},
    }
    return out


def _load(admin, case: str, vhost: str) -> None:
    admin.request("POST", "/api/definitions", _global_file(case, vhost), expect=(200, 201, 204))
    for _ in range(100):  # the vhost's processes start asynchronously
        states = admin.get(f"/api/vhosts/{quote_segment(vhost)}").get("cluster_state") or {}
        if states and all(s == "running" for s in states.values()):
            return
        time.sleep(0.1)


@pytest.fixture
def two_vhosts(admin):
    names = [unique_vhost("tf-rt-a"), unique_vhost("tf-rt-b")]
    yield names
    for n in names:
        admin.delete_vhost(n)


@pytest.mark.parametrize("case", sorted(CASES))
def test_import_then_apply_into_a_second_vhost_gives_the_same_broker_state(case, two_vhosts, admin, broker_env,
                                                                           broker_version, cli, tmp_path):
    a, b = two_vhosts
    _load(admin, case, a)
    before = _vhost_settings(admin, a)
    settings = CASES[case][0]
    assert before["tags"] == settings.get("tags", [])  # the broker keeps the order given
    if "default_queue_type" not in settings:
        # unset: 3.10 says so ("undefined"); 4.x reports its node default, classic
        assert before["default_queue_type"] == ("undefined" if broker_version < (4, 0) else "classic")

    imported = tmp_path / "a.yaml"
    r = cli(["import", "--vhost", a, "-o", imported], environ=broker_env)
    assert r.code == 0, r
    text = imported.read_text()
    doc = yaml.safe_load(text)
    body = doc["vhosts"][a]
    if before["default_queue_type"] == "undefined":
        assert "default_queue_type" not in body, text  # import writes only what is set
    if settings.get("tags"):
        assert body["tags"] == settings["tags"], text
    assert cli(["plan", "--detailed-exitcode", "-f", imported], environ=broker_env).code == 0

    second = tmp_path / "b.yaml"
    second.write_text(text.replace(a, b))
    r = cli(["apply", "--auto-approve", "-f", second], environ=broker_env)
    assert r.code == 0, r

    assert _vhost_settings(admin, b) == before
    want, got = _objects(admin, a), _objects(admin, b)
    for kind in want:
        assert got[kind] == want[kind], kind
    assert cli(["plan", "--detailed-exitcode", "-f", second], environ=broker_env).code == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_file_read_offline_plans_no_change_against_what_the_broker_loaded(case, two_vhosts, admin, broker_env,
                                                                              cli, tmp_path):
    a, _ = two_vhosts
    _load(admin, case, a)
    state = tmp_path / "defs.json"
    version = admin.get("/api/overview")["rabbitmq_version"]
    state.write_text(json.dumps({"rabbit_version": version, **_global_file(case, a)}))  # as exports carry it
    out = tmp_path / "offline.yaml"
    r = cli(["import", "--state", state, "--vhost", a, "-o", out], environ=broker_env)
    assert r.code == 0, r
    header = out.read_text()
    assert "permissions: 2" in header  # counted, not imported
    if case == "parameters-only":
        assert "parameters: 1" in header and "vhost limits: 1" in header
    if case == "duplicate-rows":
        # the broker declares rows concurrently: either may win; the import keeps the first and says so
        assert "queue 'work'" in r.err and "either row" in r.err and "keeps the first" in r.err
        assert "policy 'cap'" in r.err and "keeps the last row" in r.err
        loaded = _objects(admin, a)
        assert loaded["policies"]["cap"]["pattern"] == "^b"  # the last row, as the import says
        assert loaded["queues"]["work"]["arguments"].get("x-max-length") in (10, 20)
        return
    plan = cli(["plan", "--detailed-exitcode", "-f", out], environ=broker_env)
    assert plan.code == 0, plan


def test_a_file_with_only_parameters_and_limits_has_nothing_to_import(admin, cli, tmp_path, two_vhosts):
    a, _ = two_vhosts
    f = _global_file("parameters-only", a)
    del f["vhosts"]
    f["global_parameters"] = [{"name": "cluster_name", "value": "rabbit@example"}]
    state = tmp_path / "params.json"
    state.write_text(json.dumps(f))
    r = cli(["import", "--state", state, "-o", tmp_path / "out.yaml"])
    assert r.code == 0, r
    assert "nothing to import" in r.err and "parameters: 1" in r.err and "vhost limits: 1" in r.err
    assert "global parameters: 1" in r.err and "permissions: 2" in r.err
    assert not (tmp_path / "out.yaml").exists()
