"""``topoform plan`` against the real broker.

* Every example topology, applied by hand through pika (and HTTP for policies and
  vhost settings), plans to no changes: exit 0 with ``--detailed-exitcode``.
* Runtime objects (exclusive and server-named queues, default-exchange bindings) are
  never reported; a missing vhost is a create; a queue holding messages is not pruned.
* Broker errors are one line, exit 1, and never show the password.
"""
from __future__ import annotations

import json
import time

import pika
import pytest
import yaml

from helpers import EXAMPLES, Management, unique_vhost
from topoform.broker.settings import BrokerSettings, quote_segment
from topoform.load import load_topology
from topoform.model import Topology, thaw

LONG = getattr(pika.compat, "long", int)


def _amqp_args(args) -> dict:
    return {k: LONG(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in thaw(args).items()}


def _yaml_for(topology: Topology, rename: dict[str, str]) -> str:
    """The topology as a topology file, with vhosts renamed (general binding form)."""
    doc: dict = {"version": 1, "vhosts": {}}

    def vh(name):
        return doc["vhosts"].setdefault(rename[name], {})

    for v in topology.vhosts.values():
        spec = vh(v.name)
        for f in ("description", "tags", "default_queue_type"):
            if getattr(v, f) is not None:
                spec[f] = list(getattr(v, f)) if f == "tags" else getattr(v, f)
    for e in topology.exchanges.values():
        vh(e.vhost).setdefault("exchanges", {})[e.name] = {
            "type": e.type, "durable": e.durable, "auto_delete": e.auto_delete, "internal": e.internal,
            "arguments": thaw(e.arguments)}
    for q in topology.queues.values():
        vh(q.vhost).setdefault("queues", {})[q.name] = {
            "durable": q.durable, "exclusive": q.exclusive, "auto_delete": q.auto_delete, "arguments": thaw(q.arguments)}
    for b in sorted(topology.bindings, key=lambda b: repr(b.key)):
        vh(b.vhost).setdefault("bindings", []).append({
            "source": b.source, "destination": b.destination, "destination_type": b.destination_type,
            "routing_key": b.routing_key, "arguments": thaw(b.arguments)})
    for p in topology.policies.values():
        vh(p.vhost).setdefault("policies", {})[p.name] = {
            "pattern": p.pattern, "apply_to": p.apply_to, "priority": p.priority, "definition": thaw(p.definition)}
    return yaml.safe_dump(doc, sort_keys=True, allow_unicode=True)


def _apply_by_hand(topology: Topology, rename: dict, admin: Management, broker: BrokerSettings, user: str):
    """Create everything the way an application (pika) and an operator (HTTP) would."""
    connections = []
    for v in topology.vhosts.values():
        name = rename[v.name]
        body = {}
        if v.description is not None:
            body["description"] = v.description
        if v.tags is not None:
            body["tags"] = ",".join(v.tags)
        if v.default_queue_type is not None:
            body["defaultqueuetype"] = v.default_queue_type
        admin.create_vhost(name, user=user)
        if body:
            admin.put(f"/api/vhosts/{quote_segment(name)}", body)
    for old, name in rename.items():
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            host=broker.amqp_host, port=broker.amqp_port, virtual_host=name, heartbeat=0,
            credentials=pika.PlainCredentials(broker.username, broker.password)))
        connections.append(conn)
        ch = conn.channel()
        for e in sorted(topology.exchanges.values(), key=lambda e: e.name):
            if e.vhost == old and not e.is_builtin:
                ch.exchange_declare(e.name, e.type, durable=e.durable, auto_delete=e.auto_delete,
                                    internal=e.internal, arguments=_amqp_args(e.arguments))
        for q in sorted(topology.queues.values(), key=lambda q: q.name):
            if q.vhost == old:  # exclusive ones too, as consumers would: they live while conn is open
                ch.queue_declare(q.name, durable=q.durable, exclusive=q.exclusive, auto_delete=q.auto_delete,
                                 arguments=_amqp_args(q.arguments))
        for b in topology.bindings:
            if b.vhost != old:
                continue
            if b.destination_type == "queue":
                ch.queue_bind(b.destination, b.source, b.routing_key, arguments=_amqp_args(b.arguments))
            else:
                ch.exchange_bind(b.destination, b.source, b.routing_key, arguments=_amqp_args(b.arguments))
        for p in topology.policies.values():
            if p.vhost == old:
                admin.put(f"/api/policies/{quote_segment(name)}/{quote_segment(p.name)}",
                          {"pattern": p.pattern, "apply-to": p.apply_to, "priority": p.priority,
                           "definition": thaw(p.definition)})
    return connections


EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml")) if EXAMPLES.exists() else []


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_example_applied_by_hand_plans_no_changes(example, admin, broker, broker_env, cli, tmp_path):
    from conftest import TEST_USER

    result = load_topology([str(EXAMPLES / example)])
    assert result.ok, result.errors
    topology = result.topology
    rename = {v: unique_vhost("tf-ex") for v in topology.vhost_names()}
    (tmp_path / "topoform.yaml").write_text(_yaml_for(topology, rename))
    connections = []
    try:
        connections = _apply_by_hand(topology, rename, admin, broker, TEST_USER)
        r = cli(["plan", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path)
        assert r.code == 0, r
        assert "No changes" in r.out
        r = cli(["plan", "--prune", "--detailed-exitcode", "--json"], environ=broker_env, cwd=tmp_path)
        assert r.code == 0 and r.json["changes"] == [] and r.json["unmanaged"] == [], r
    finally:
        for c in connections:
            if c.is_open:
                c.close()
        for name in rename.values():
            admin.delete_vhost(name)


def _write(tmp_path, vhost, body: str):
    (tmp_path / "topoform.yaml").write_text(f"vhosts:\n  {json.dumps(vhost)}:\n" + body)


def test_runtime_objects_are_never_reported(vhost, amqp, broker_env, cli, tmp_path):
    ch = amqp.channel()
    ch.exchange_declare("events", "topic", durable=True)
    ch.queue_declare("orders", durable=True)
    ch.queue_bind("orders", "events", "order.*")
    excl = ch.queue_declare("", exclusive=True).method.queue  # amq.gen-*, exclusive
    ch.queue_declare("session", exclusive=True)
    ch.queue_bind("session", "events", "#")
    ch.queue_declare("", durable=True)  # server-named, not exclusive
    assert excl.startswith("amq.gen-")
    _write(tmp_path, vhost, "    exchanges: {events: {type: topic, durable: true}}\n"
                            "    queues: {orders: {durable: true, bindings: [{exchange: events, routing_key: 'order.*'}]}}\n")
    r = cli(["plan", "--prune", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0 and "No changes" in r.out, r


def test_missing_vhost_is_a_create(admin, broker_env, cli, tmp_path):
    name = unique_vhost("tf-missing")
    _write(tmp_path, name, "    queues: {q: {durable: true}}\n")
    r = cli(["plan", "--detailed-exitcode", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 2, r
    assert [(c["action"], c["kind"]) for c in r.json["changes"]] == [("create", "vhost"), ("create", "queue")]
    admin.delete_vhost(name)  # in case anything created it


def _wait_for_stats(mgmt, vhost, queue, messages, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the same listing the reader uses
        rows = mgmt.get(f"/api/queues/{quote_segment(vhost)}?columns=name,messages,consumers")
        row = next((r for r in rows if r["name"] == queue), {})
        if row.get("messages") == messages and "consumers" in row:
            return
        time.sleep(0.5)
    raise AssertionError(f"stats of {queue} never showed {messages} messages")


def test_prune_blocks_deleting_a_queue_with_messages(vhost, amqp, mgmt, broker_env, cli, tmp_path):
    ch = amqp.channel()
    ch.queue_declare("full", durable=True)
    ch.queue_declare("empty", durable=True)
    ch.basic_publish("", "full", b"keep me")
    _wait_for_stats(mgmt, vhost, "full", 1)
    _wait_for_stats(mgmt, vhost, "empty", 0)
    _write(tmp_path, vhost, "    queues: {}\n")
    r = cli(["plan", "--prune"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r
    assert "queue full" in r.out and "holds 1 message" in r.out
    assert "-   queue empty" in r.out
    r = cli(["plan", "--prune", "--allow-data-loss", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0 and sorted(c["action"] for c in r.json["changes"]) == ["delete", "delete"], r


def test_live_plan_and_state_file_plan_agree(vhost, amqp, mgmt, broker_env, cli, tmp_path):
    ch = amqp.channel()
    ch.exchange_declare("x", "headers", durable=True, arguments={"alternate-exchange": "ae"})
    ch.queue_declare("q", durable=True, arguments={"x-message-ttl": LONG(60000), "x-foo": "a"})
    ch.queue_bind("q", "x", "", arguments={"x-match": "all", "n": LONG(1)})
    _write(tmp_path, vhost, "    exchanges: {x: {type: headers, durable: true, arguments: {alternate-exchange: ae}}}\n"
                            "    queues: {q: {durable: true, arguments: {x-message-ttl: 30000, x-foo: a}}}\n"
                            "    bindings: [{source: x, destination: q, arguments: {x-match: all, n: 1}}]\n")
    live = cli(["plan", "--json"], environ=broker_env, cwd=tmp_path)
    (tmp_path / "state.json").write_text(json.dumps(mgmt.definitions(vhost)))
    offline = cli(["plan", "--json", "--state", "state.json"], cwd=tmp_path)
    assert live.code == offline.code == 3
    assert live.json["changes"] == offline.json["changes"]
    (change,) = live.json["changes"]
    assert change["diff"] == ["arguments.x-message-ttl"] and change["action"] == "blocked"


def test_saved_plan_holds_no_password(vhost, broker_env, cli, tmp_path, test_password):
    _write(tmp_path, vhost, "    queues: {q: {durable: true}}\n")
    r = cli(["plan", "--out", "plan.json", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path)
    assert r.code == 2, r
    text = (tmp_path / "plan.json").read_text()
    assert test_password not in text and json.loads(text)["fingerprint"].startswith("sha256:")


def test_wrong_password_is_one_line_without_the_password(vhost, broker, broker_env, cli, tmp_path, test_password):
    _write(tmp_path, vhost, "    queues: {q: {durable: true}}  # durable: no 4.x deprecation warning line\n")
    env = dict(broker_env, TOPOFORM_MANAGEMENT_URL=broker.management_url.replace(test_password, test_password + "x"))
    r = cli(["plan"], environ=env, cwd=tmp_path)
    assert r.code == 1 and r.err.count("\n") == 1 and "refused the credentials" in r.err, r
    assert test_password not in r.err


@pytest.mark.parametrize("tags,expect", [("", "lacks the 'management' tag")])
def test_user_without_the_needed_tag(tags, expect, admin, broker, vhost, cli, tmp_path, test_password):
    user = f"tf-plan-{tags or 'none'}-{vhost[-6:]}"
    password = test_password + "-u"
    admin.put(f"/api/users/{quote_segment(user)}", {"password": password, "tags": tags})
    try:
        admin.put(f"/api/permissions/{quote_segment(vhost)}/{quote_segment(user)}",
                  {"configure": ".*", "write": ".*", "read": ".*"})
        _write(tmp_path, vhost, "    queues: {q: {durable: true}}\n")
        url = broker.http_base_clean.replace("://", f"://{user}:{password}@", 1)
        r = cli(["plan"], environ={"TOPOFORM_MANAGEMENT_URL": url}, cwd=tmp_path)
        assert r.code == 1 and expect in r.err and r.err.count("\n") == 1, r
        assert password not in r.out + r.err
    finally:
        admin.delete(f"/api/users/{quote_segment(user)}")


def test_connection_refused_is_one_line(cli, tmp_path, broker):
    _write(tmp_path, "v", "    queues: {q: {}}\n")
    r = cli(["plan", "--management-url", "http://topoform-test:secret-pw@127.0.0.1:1/"], cwd=tmp_path)
    assert r.code == 1 and "connection refused" in r.err and "secret-pw" not in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("tags", ["management", "monitoring"])
def test_non_administrator_reads_the_same_state_and_plans(tags, admin, broker, vhost, amqp, cli, tmp_path,
                                                          test_password):
    """3.10 refuses GET /api/definitions/V to non-administrators (401); the listings give the same state."""
    from topoform.broker.http import ManagementClient
    from topoform.broker.live import read_live

    ch = amqp.channel()
    ch.exchange_declare("x", "topic", durable=True, arguments={"alternate-exchange": "ae"})
    ch.exchange_declare("ae", "fanout", durable=True)
    ch.exchange_declare("h", "headers", durable=True)
    ch.queue_declare("q", durable=True, arguments={"x-message-ttl": LONG(60000), "x-custom": "1"})
    ch.queue_declare("mine", exclusive=True)  # runtime: never reported, nor its binding
    ch.queue_bind("q", "x", "a.#")
    ch.queue_bind("mine", "x", "b.*")
    ch.exchange_bind("h", "x", "#")
    ch.queue_bind("q", "h", "", arguments={"x-match": "any", "n": LONG(1), "s": "1"})
    admin.put(f"/api/policies/{quote_segment(vhost)}/ttl",
              {"pattern": "^q$", "definition": {"max-length": 10}, "priority": 1, "apply-to": "queues"})

    user = f"tf-plan-{tags}-{vhost[-6:]}"
    password = test_password + "-u"
    admin.put(f"/api/users/{quote_segment(user)}", {"password": password, "tags": tags})
    try:
        admin.put(f"/api/permissions/{quote_segment(vhost)}/{quote_segment(user)}",
                  {"configure": ".*", "write": ".*", "read": ".*"})
        url = broker.http_base_clean.replace("://", f"://{user}:{password}@", 1)
        as_admin = read_live(ManagementClient(broker), [vhost], stats=False)
        as_user = read_live(ManagementClient(BrokerSettings(management_url=url)), [vhost], stats=False)
        assert as_user.topology == as_admin.topology
        assert as_user.fingerprint == as_admin.fingerprint
        assert {q.name for q in as_user.topology.queues.values()} == {"q"}

        # import as the administrator, then plan as the user: nothing to change
        files = tmp_path / "t.yaml"
        r = cli(["import", "--vhost", vhost, "-o", files], environ={"TOPOFORM_URL": broker.url,
                                                                    "TOPOFORM_MANAGEMENT_URL": broker.management_url})
        assert r.code == 0, r
        r = cli(["plan", "--detailed-exitcode", "-f", files], environ={"TOPOFORM_MANAGEMENT_URL": url})
        assert r.code == 0, r
        assert password not in r.out + r.err
    finally:
        admin.delete(f"/api/users/{quote_segment(user)}")
