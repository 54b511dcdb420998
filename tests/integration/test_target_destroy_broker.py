"""``apply --target`` and ``destroy`` on the real brokers (issue 12 items 3 and 5), config kinds included.

Each test works in its own vhost (the ``vhost`` fixture) with uniquely named users (``tf-td-<hex>``),
deleted afterwards. Run on each of 3.10, 4.0 and 4.3 (``TOPOFORM_TEST_BROKER``); the one difference
met here (4.x reports an ``x-queue-type`` it added itself) is why queue arguments are compared by key.
"""
from __future__ import annotations

import json
import secrets
import time

import pytest
import yaml
from json_schemas import validate

from topoform.broker.settings import quote_segment as q


def _write(tmp_path, data):
    (tmp_path / "topoform.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _queues(admin, vhost):
    return {x["name"] for x in admin.get(f"/api/queues/{q(vhost)}?columns=name")}


def _exchanges(admin, vhost):
    return {x["name"] for x in admin.get(f"/api/exchanges/{q(vhost)}?columns=name") if x["name"] and
            not x["name"].startswith("amq.")}


def _user_exists(admin, name) -> bool:
    return admin.request("GET", f"/api/users/{q(name)}", expect=(200, 404)).status_code == 200


@pytest.fixture
def users(admin):
    names = [f"tf-td-{secrets.token_hex(4)}" for _ in range(2)]
    yield names
    for name in names:
        admin.request("DELETE", f"/api/users/{q(name)}", expect=(204, 404))


def _wait_messages(admin, vhost, queue, n, timeout=30.0):
    """Until the management stats report ``n`` messages in ``queue`` (they lag by about 5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.get(f"/api/queues/{q(vhost)}/{q(queue)}")
        if row.get("messages") == n:
            return
        time.sleep(0.5)
    raise AssertionError(f"queue {queue} never reported {n} messages")


def test_apply_target_leaves_other_changes_unapplied(admin, vhost, broker_env, cli, tmp_path, users):
    user, _ = users
    _write(tmp_path, {
        "users": {user: {"tags": ["monitoring"], "password_hash": "", "limits": {"max-channels": 7}}},
        "vhosts": {vhost: {
            "exchanges": {"orders": {"type": "topic", "durable": True}, "other": {"type": "fanout", "durable": True}},
            "queues": {"orders.created": {"durable": True}, "audit": {"durable": True}},
            "bindings": [{"source": "orders", "destination": "orders.created", "routing_key": "created"},
                         {"source": "other", "destination": "audit"}],
            "permissions": {user: {"configure": "^orders", "write": ".*", "read": ".*"}},
            "operator_policies": {"cap": {"pattern": ".*", "apply_to": "queues", "definition": {"max-length": 9}}}}}})
    r = cli(["apply", "--auto-approve", "--target", "queue:orders.created"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert _queues(admin, vhost) == {"orders.created"}
    assert _exchanges(admin, vhost) == {"orders"}  # the binding's missing source came along
    bindings = admin.get(f"/api/queues/{q(vhost)}/orders.created/bindings")
    assert [b["routing_key"] for b in bindings if b["source"] == "orders"] == ["created"]
    assert not _user_exists(admin, user)
    # a permission brings its missing user (and the user its limits), nothing else
    r = cli(["apply", "--auto-approve", "--target", f"permission:{user}"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert _user_exists(admin, user)
    perms = admin.get(f"/api/permissions/{q(vhost)}/{q(user)}")
    assert perms["configure"] == "^orders"
    assert admin.get(f"/api/operator-policies/{q(vhost)}") == []
    assert _queues(admin, vhost) == {"orders.created"}
    # the rest is still to do
    r = cli(["plan", "--detailed-exitcode", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 2, r
    left = {(c["kind"], c["name"]) for c in json.loads(r.out)["changes"]}
    assert left == {("exchange", "other"), ("queue", "audit"), ("binding", "other -> audit []"),
                    ("operator_policy", "cap")}


def test_a_blocked_change_outside_the_targets_does_not_block(admin, vhost, broker_env, cli, tmp_path):
    admin.put(f"/api/queues/{q(vhost)}/q1", {"durable": True, "arguments": {"x-message-ttl": 5000}})
    _write(tmp_path, {"vhosts": {vhost: {"queues": {"q1": {"durable": True, "arguments": {"x-message-ttl": 1000}},
                                                    "q2": {"durable": True}}}}})
    r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3 and "q2" not in _queues(admin, vhost), r
    r = cli(["plan", "--target", "queue:q2", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path)
    assert r.code == 2 and "q1" not in r.out, r
    r = cli(["apply", "--auto-approve", "--target", "queue:q2"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert _queues(admin, vhost) == {"q1", "q2"}
    # untouched (4.x adds its own x-queue-type: classic to what the broker reports)
    assert admin.get(f"/api/queues/{q(vhost)}/q1")["arguments"]["x-message-ttl"] == 5000
    r = cli(["apply", "--auto-approve", "--target", "queue:q*"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r  # a blocked change inside the targets still blocks


def test_destroy_empties_the_managed_objects_with_prune_guards(admin, broker, vhost, broker_env, cli, tmp_path,
                                                               users):
    user, other_user = users
    _write(tmp_path, {
        "users": {user: {"tags": ["monitoring"], "password_hash": "", "limits": {"max-connections": 5}}},
        "vhosts": {vhost: {
            "exchanges": {"orders": {"type": "topic", "durable": True}},
            "queues": {"orders.created": {"durable": True}, "full": {"durable": True}},
            "bindings": [{"source": "orders", "destination": "orders.created", "routing_key": "created"},
                         {"source": "orders", "destination": "full", "routing_key": "full"}],
            "policies": {"ttl": {"pattern": "^orders", "apply_to": "queues", "definition": {"message-ttl": 60000}}},
            "limits": {"max-queues": 100},
            "permissions": {user: {"configure": ".*", "write": ".*", "read": ".*"}},
            "topic_permissions": {user: {"orders": {"write": ".*", "read": ".*"}}},
            "operator_policies": {"cap": {"pattern": ".*", "apply_to": "queues", "definition": {"max-length": 100}}},
            "federation_upstreams": {"up": {"uri": "amqp://localhost:1", "expires": 3600000}}}}})
    r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    # someone else's objects in the same vhost: never destroyed
    admin.put(f"/api/queues/{q(vhost)}/unmanaged", {"durable": True})
    admin.put(f"/api/users/{q(other_user)}", {"password": "", "tags": ""})
    admin.put(f"/api/permissions/{q(vhost)}/{q(other_user)}", {"configure": "", "write": "", "read": ""})
    admin.request("POST", f"/api/exchanges/{q(vhost)}/orders/publish",
                  {"properties": {}, "routing_key": "full", "payload": "x", "payload_encoding": "string"})
    _wait_messages(admin, vhost, "full", 1)

    r = cli(["destroy", "--allow-data-loss"], environ=broker_env, cwd=tmp_path)  # no terminal, no --auto-approve
    assert r.code == 1 and "needs confirmation" in r.err, r
    terminal = {k: v for k, v in broker_env.items() if k != "CI"}  # a person at a terminal (CI never prompts)
    r = cli(["destroy", "--allow-data-loss"], environ=terminal, cwd=tmp_path, stdin="no\n", stdin_isatty=True)
    assert r.code == 1 and "cancelled" in r.err, r
    assert _queues(admin, vhost) == {"orders.created", "full", "unmanaged"} and _user_exists(admin, user)
    r = cli(["destroy", "--dry-run", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r  # the queue with a message is blocked
    doc = json.loads(r.out)
    validate(doc, "destroy.schema.json")
    assert [(c["kind"], c["name"]) for c in doc["changes"] if c["action"] == "blocked"] == [("queue", "full")]
    kinds = {c["kind"] for c in doc["changes"]}
    assert {"binding", "queue", "exchange", "policy", "vhost_limit", "permission", "topic_permission",
            "operator_policy", "federation_upstream", "user", "user_limit"} <= kinds
    r = cli(["destroy", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3 and "nothing was deleted" in r.err, r
    assert _queues(admin, vhost) == {"orders.created", "full", "unmanaged"} and _user_exists(admin, user)

    r = cli(["destroy", "--auto-approve", "--allow-data-loss"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0 and "Destroy complete" in r.out, r
    assert _queues(admin, vhost) == {"unmanaged"}
    assert _exchanges(admin, vhost) == set()
    assert admin.get(f"/api/policies/{q(vhost)}") == []
    assert admin.get(f"/api/operator-policies/{q(vhost)}") == []
    assert admin.get(f"/api/parameters/federation-upstream/{q(vhost)}") == []
    assert admin.request("GET", f"/api/vhost-limits/{q(vhost)}").json() in ([], [{"vhost": vhost, "value": {}}])
    assert not _user_exists(admin, user)
    perms = {p["user"] for p in admin.get(f"/api/vhosts/{q(vhost)}/permissions")}
    assert other_user in perms and broker.username in perms and user not in perms  # the connected user's stays
    assert _user_exists(admin, other_user)
    assert admin.request("GET", f"/api/vhosts/{q(vhost)}").status_code == 200  # the vhost itself stays
    r = cli(["destroy", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0 and "Nothing to destroy" in r.out, r


def test_destroy_with_vhost_and_target(admin, vhost, broker_env, cli, tmp_path, users):
    user, _ = users
    _write(tmp_path, {"users": {user: {"tags": [], "password_hash": ""}},
                      "vhosts": {vhost: {"queues": {"a": {"durable": True}, "b": {"durable": True}},
                                         "permissions": {user: {"configure": ".*", "write": ".*", "read": ".*"}}}}})
    assert cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path).code == 0
    r = cli(["destroy", "--auto-approve", "--target", "queue:a"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert _queues(admin, vhost) == {"b"} and _user_exists(admin, user)
    r = cli(["destroy", "--auto-approve", "--vhost", vhost], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert _queues(admin, vhost) == set()
    assert _user_exists(admin, user)  # --vhost: the global kinds stay
    assert user not in {p["user"] for p in admin.get(f"/api/vhosts/{q(vhost)}/permissions")}
    r = cli(["destroy", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0 and not _user_exists(admin, user), r


def test_destroy_super_streams_and_shovels_without_their_secrets(admin, broker, vhost, broker_env, cli, tmp_path,
                                                                 test_password):
    from urllib.parse import quote

    from passwords import assert_no_piece

    uri = (f"amqp://{quote(broker.username, safe='')}:{quote(broker.password, safe='')}@{broker.amqp_host}:"
           f"{broker.amqp_port}/{quote(vhost, safe='')}")
    _write(tmp_path, {"vhosts": {vhost: {
        "queues": {"old": {"durable": True}, "new": {"durable": True}},
        "shovels": {"mv": {"src-uri": {"env": "TF_TD_URI"}, "src-queue": "old",
                           "dest-uri": {"env": "TF_TD_URI"}, "dest-queue": "new"}},
        "super_streams": {"invoices": {"partitions": 2}}}}})
    runs = [cli(["apply", "--auto-approve"], environ={**broker_env, "TF_TD_URI": uri}, cwd=tmp_path)]
    assert runs[0].code == 0, runs[0]
    assert {"invoices-0", "invoices-1", "old", "new"} <= _queues(admin, vhost)
    # destroy reads no secret: the variable may be unset
    runs.append(cli(["destroy", "--dry-run", "--json"], environ=broker_env, cwd=tmp_path))
    doc = json.loads(runs[-1].out)
    validate(doc, "destroy.schema.json")
    order = [c["kind"] for c in doc["changes"]]
    assert order.index("shovel") < order.index("queue") and "super_stream" in order
    assert not {c["name"] for c in doc["changes"]} & {"invoices-0", "invoices-1"}  # one super_stream change
    runs.append(cli(["destroy", "--auto-approve", "--allow-data-loss"], environ=broker_env, cwd=tmp_path))
    assert runs[-1].code == 0, runs[-1]
    assert _queues(admin, vhost) == set() and _exchanges(admin, vhost) == set()
    assert admin.get(f"/api/parameters/shovel/{q(vhost)}") == []
    assert_no_piece(test_password[3:], *[t for r in runs for t in (r.out, r.err)])
