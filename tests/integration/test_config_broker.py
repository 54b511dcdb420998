"""Users, permissions, limits, operator policies, global parameters, federation, shovels and super
streams on the real brokers (issue 13; SPEC section 8), on each of 3.10.8, 4.0.5 and 4.3.6.

Each test applies into its own vhost, then checks ``plan --detailed-exitcode`` exits 0, changes
every field the broker updates in place and sees an ``update``, and that ``import --config`` of
the result plans no changes. Users are global: they get unique ``tf-cfg-<hex>`` names and are
deleted in a ``finally``. No 4-character piece of any secret (passwords, URI credentials)
appears in any output or plan file.
"""
from __future__ import annotations

import secrets
import time
from urllib.parse import quote

import pika
import pytest
import requests
import yaml

from passwords import assert_no_piece, make_passwords
from topoform.broker.settings import quote_segment

PW1, PW2 = make_passwords(2, seed=13)


def _write(tmp_path, data, name="topoform.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _amqp_login(broker, vhost: str, user: str, password: str) -> bool:
    params = pika.ConnectionParameters(host=broker.amqp_host, port=broker.amqp_port, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(user, password), heartbeat=0,
                                       connection_attempts=1, socket_timeout=5)
    try:
        pika.BlockingConnection(params).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def _http_login(admin, user: str, password: str) -> bool:
    r = requests.get(admin.settings.http_base_clean + "/api/whoami", auth=(user.encode("utf-8"), password.encode("utf-8")), timeout=10)
    return r.status_code == 200 and r.json().get("name") == user


def _outputs(*results) -> list[str]:
    return [t for r in results for t in (r.out, r.err)]


@pytest.fixture
def user_name(admin):
    name = f"tf-cfg-{secrets.token_hex(4)}"
    yield name
    admin.delete(f"/api/users/{quote_segment(name)}")


# ---------------------------------------------------------------------- priority 1: users and permissions
def test_user_permissions_topic_permissions_and_limits(admin, broker, vhost, broker_env, cli, tmp_path, user_name):
    env = {**broker_env, "TF_CFG_PW": PW1}
    files = {"users": {user_name: {"tags": ["monitoring"], "password": {"env": "TF_CFG_PW"},
                                   "limits": {"max-connections": 10}}},
             "vhosts": {vhost: {"exchanges": {"tx": {"type": "topic", "durable": True}},
                                "permissions": {user_name: {"configure": "^orders\\.", "write": ".*", "read": ".*"}},
                                "topic_permissions": {user_name: {"tx": {"write": "^orders\\.", "read": ".*"}}}}}}
    _write(tmp_path, files)
    seen = []
    r = cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)
    seen.append(r)
    assert r.code == 0, r
    r = cli(["plan", "--detailed-exitcode"], environ=env, cwd=tmp_path)
    seen.append(r)
    assert r.code == 0, r
    live = admin.get(f"/api/users/{quote_segment(user_name)}")
    assert live["tags"] in (["monitoring"], "monitoring")
    assert live["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert _amqp_login(broker, vhost, user_name, PW1) and _http_login(admin, user_name, PW1)
    assert not _amqp_login(broker, vhost, user_name, PW2)

    # in-place updates: tags (password kept), limits, permissions, topic permissions
    files["users"][user_name]["tags"] = ["monitoring", "policymaker"]
    files["users"][user_name]["limits"] = {"max-connections": 20, "max-channels": 30}
    files["vhosts"][vhost]["permissions"][user_name]["configure"] = "^billing\\."
    files["vhosts"][vhost]["topic_permissions"][user_name]["tx"]["write"] = "^billing\\."
    _write(tmp_path, files)
    r = cli(["plan", "--json", "--out", "plan.json"], environ=env, cwd=tmp_path)
    seen.append(r)
    got = {(c["kind"], c["action"]): c["diff"] for c in r.json["changes"]}
    assert got == {("user", "update"): ["tags"], ("user_limit", "update"): ["limits.max-channels",
                                                                              "limits.max-connections"],
                   ("permission", "update"): ["configure"], ("topic_permission", "update"): ["write"]}, got
    r = cli(["apply", "plan.json", "--auto-approve"], environ=env, cwd=tmp_path)
    seen.append(r)
    assert r.code == 0, r
    assert _amqp_login(broker, vhost, user_name, PW1) and _http_login(admin, user_name, PW1)
    assert admin.get(f"/api/permissions/{quote_segment(vhost)}/{quote_segment(user_name)}")["configure"] \
        == "^billing\\."
    r = cli(["plan", "--detailed-exitcode"], environ=env, cwd=tmp_path)
    seen.append(r)
    assert r.code == 0, r

    # a changed password: the plan says so without either value; apply sends only a hash
    env2 = {**env, "TF_CFG_PW": PW2}
    r = cli(["plan", "--detailed-exitcode", "--out", "plan2.json"], environ=env2, cwd=tmp_path)
    seen.append(r)
    assert r.code == 2 and "password: changes" in r.out, r
    r = cli(["apply", "--auto-approve"], environ=env2, cwd=tmp_path)
    seen.append(r)
    assert r.code == 0, r
    assert _amqp_login(broker, vhost, user_name, PW2) and not _amqp_login(broker, vhost, user_name, PW1)
    assert cli(["plan", "--detailed-exitcode"], environ=env2, cwd=tmp_path).code == 0

    # import -> plan: no changes
    r = cli(["import", "--vhost", vhost, "--config", "-o", "imported.yaml"], environ=env2, cwd=tmp_path)
    seen.append(r)
    assert r.code == 0, r
    imported = yaml.safe_load((tmp_path / "imported.yaml").read_text())
    assert imported["vhosts"][vhost]["permissions"][user_name]["configure"] == "^billing\\."
    r = cli(["plan", "-f", "imported.yaml", "--detailed-exitcode"], environ=env2, cwd=tmp_path)
    seen.append(r)
    assert r.code == 0, r
    assert cli(["fmt", "--check", "-f", "imported.yaml"], cwd=tmp_path).code == 0  # canonical as written

    texts = _outputs(*seen) + [(tmp_path / n).read_text() for n in ("plan.json", "plan2.json", "imported.yaml")]
    assert_no_piece(PW1, *texts)
    assert_no_piece(PW2, *texts)
    stored = admin.get(f"/api/users/{quote_segment(user_name)}")["password_hash"]
    assert all(stored[i:i + 8] not in t for t in texts for i in range(0, len(stored) - 8, 4))


def test_missing_secret_is_an_error_at_plan_time(vhost, broker_env, cli, tmp_path, user_name):
    _write(tmp_path, {"users": {user_name: {"password": {"env": "TF_CFG_NOT_SET"}}}, "vhosts": {vhost: {}}})
    r = cli(["plan"], environ=broker_env, cwd=tmp_path)
    assert r.code == 1 and "TF_CFG_NOT_SET" in r.err, r
    _write(tmp_path, {"users": {user_name: {"password": {"file": "nope.pw"}}}, "vhosts": {vhost: {}}})
    r = cli(["plan"], environ=broker_env, cwd=tmp_path)
    assert r.code == 1 and "nope.pw" in r.err, r


def test_password_from_file_and_given_hash(admin, broker, vhost, broker_env, cli, tmp_path, user_name):
    from topoform.config.secrets import SHA512, hash_password

    (tmp_path / "pw").write_text(PW1 + "\n", encoding="utf-8")
    other = user_name + "-h"
    files = {"users": {user_name: {"password": {"file": "pw"}, "hashing_algorithm": "sha512"},
                       other: {"password_hash": hash_password(PW2, SHA512), "hashing_algorithm": SHA512}},
             "vhosts": {vhost: {"permissions": {u: {"configure": "", "write": "", "read": ".*"}
                                                for u in (user_name, other)}}}}
    _write(tmp_path, files)
    try:
        r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
        assert r.code == 0, r
        assert admin.get(f"/api/users/{quote_segment(user_name)}")["hashing_algorithm"] == SHA512
        assert _amqp_login(broker, vhost, user_name, PW1) and _amqp_login(broker, vhost, other, PW2)
        assert cli(["plan", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path).code == 0
        assert_no_piece(PW1, r.out, r.err)
    finally:
        admin.delete(f"/api/users/{quote_segment(other)}")


def test_a_hash_the_broker_refuses_or_no_password_matches_is_a_validate_error(admin, broker, vhost, cli, tmp_path,
                                                                                user_name):
    """The broker answers 400 not_base64, quoting the hash, to a hash that is not base64; it takes
    one of the wrong length, which no password then matches. validate says so, never quoting it."""
    from topoform.config.secrets import SHA512, hash_password

    not_b64 = hash_password(PW2)[:-3] + "!x="
    short = hash_password(PW2)  # sha256 length, declared sha512
    refused = admin.request("PUT", f"/api/users/{quote_segment(user_name)}",
                            {"password_hash": not_b64, "tags": ""}, expect=(400,))
    assert "not_base64" in refused.text and not_b64 in refused.text  # the broker quotes it
    admin.put(f"/api/users/{quote_segment(user_name)}",
              {"password_hash": short, "hashing_algorithm": SHA512, "tags": ""})
    admin.put(f"/api/permissions/{quote_segment(vhost)}/{quote_segment(user_name)}",
              {"configure": "", "write": "", "read": ".*"})
    assert not _amqp_login(broker, vhost, user_name, PW2)  # taken, and no password matches
    _write(tmp_path, {"users": {user_name: {"password_hash": not_b64},
                                user_name + "-2": {"password_hash": short, "hashing_algorithm": "sha512"}}})
    r = cli(["validate", "--json"], cwd=tmp_path)
    assert r.code == 1, r
    assert sorted(f["code"] for f in r.json["findings"]) == ["bad-password-hash"] * 2, r.json
    assert not_b64 not in r.out + r.err and short not in r.out + r.err


def test_prune_users_spares_the_connected_user(admin, broker, vhost, broker_env, cli, tmp_path, user_name):
    admin.put(f"/api/users/{quote_segment(user_name)}", {"password": PW1, "tags": ""})
    _write(tmp_path, {"vhosts": {vhost: {}}})
    r = cli(["plan", "--prune-users", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    deletes = {c["name"] for c in r.json["changes"] if c["kind"] == "user" and c["action"] == "delete"}
    assert user_name in deletes and broker.username not in deletes
    r = cli(["plan", "--json"], environ=broker_env, cwd=tmp_path)
    assert not [c for c in r.json["changes"] if c["kind"] == "user"]  # users only when named


# ---------------------------------------------------------------------- priority 2: limits, operator policies, global parameters
def test_vhost_limits_operator_policies_and_global_parameters(admin, vhost, broker_env, cli, tmp_path):
    gp = f"tf-cfg-{secrets.token_hex(4)}"
    files = {"global_parameters": {gp: {"team": "orders"}},
             "vhosts": {vhost: {"queues": {"q1": {"durable": True}, "q2": {"durable": True}},
                                "limits": {"max-queues": 10, "max-connections": 20},
                                "operator_policies": {"cap": {"pattern": ".*", "apply_to": "queues", "priority": 1,
                                                              "definition": {"max-length": 1000}}}}}}
    _write(tmp_path, files)
    try:
        r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
        assert r.code == 0, r
        assert cli(["plan", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path).code == 0
        assert admin.get(f"/api/vhost-limits/{quote_segment(vhost)}")[0]["value"] == {"max-queues": 10,
                                                                                     "max-connections": 20}
        files["global_parameters"][gp] = {"team": "billing"}
        files["vhosts"][vhost]["limits"] = {"max-queues": 5}
        files["vhosts"][vhost]["operator_policies"]["cap"].update(priority=2, definition={"max-length": 500})
        _write(tmp_path, files)
        r = cli(["plan", "--json"], environ=broker_env, cwd=tmp_path)
        got = {(c["kind"], c["action"]): c["diff"] for c in r.json["changes"]}
        assert got == {("global_parameter", "update"): ["value.team"],
                       ("vhost_limit", "update"): ["limits.max-connections", "limits.max-queues"],
                       ("operator_policy", "update"): ["definition.max-length", "priority"]}, got
        r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
        assert r.code == 0, r
        assert admin.get(f"/api/vhost-limits/{quote_segment(vhost)}")[0]["value"] == {"max-queues": 5}
        assert cli(["plan", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path).code == 0

        # a limit that would refuse the files' own queues is blocked, with the reason
        files["vhosts"][vhost]["limits"] = {"max-queues": 1}
        _write(tmp_path, files)
        r = cli(["plan", "--json"], environ=broker_env, cwd=tmp_path)
        assert r.code == 3 and "max-queues 1" in r.out, r
        files["vhosts"][vhost]["limits"] = {"max-queues": 5}
        _write(tmp_path, files)

        # an operator policy the files do not name: listed; deleted with --prune
        admin.put(f"/api/operator-policies/{quote_segment(vhost)}/extra",
                  {"pattern": "^x", "apply-to": "queues", "priority": 0, "definition": {"max-length": 1}})
        r = cli(["plan", "--prune", "--json"], environ=broker_env, cwd=tmp_path)
        assert [(c["kind"], c["action"], c["name"]) for c in r.json["changes"]] == [
            ("operator_policy", "delete", "extra")]
        assert cli(["apply", "--prune", "--auto-approve"], environ=broker_env, cwd=tmp_path).code == 0

        r = cli(["import", "--vhost", vhost, "--config", "-o", "imported.yaml"], environ=broker_env, cwd=tmp_path)
        assert r.code == 0, r
        imported = yaml.safe_load((tmp_path / "imported.yaml").read_text())
        imported["global_parameters"] = {gp: {"team": "billing"}}
        _write(tmp_path, imported, "imported.yaml")
        r = cli(["plan", "-f", "imported.yaml", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path)
        assert r.code == 0, r
    finally:
        admin.delete(f"/api/global-parameters/{quote_segment(gp)}")


# ---------------------------------------------------------------------- priority 3: federation and shovels
def _uri(broker, vhost: str) -> str:
    return (f"amqp://{quote(broker.username, safe='')}:{quote(broker.password, safe='')}@{broker.amqp_host}:"
            f"{broker.amqp_port}/{quote(vhost, safe='')}")


def _connect(broker, vhost):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=broker.amqp_host, port=broker.amqp_port, virtual_host=vhost, heartbeat=0,
        credentials=pika.PlainCredentials(broker.username, broker.password)))


def _wait_for_message(broker, vhost, queue, publish, timeout=30.0) -> bytes | None:
    conn = _connect(broker, vhost)
    try:
        ch = conn.channel()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publish()
            for _ in range(10):
                method, _props, body = ch.basic_get(queue, auto_ack=True)
                if method is not None:
                    return body
                time.sleep(0.2)
        return None
    finally:
        conn.close()


def _publisher(broker, vhost, exchange, key, body):
    def publish():
        conn = _connect(broker, vhost)
        try:
            conn.channel().basic_publish(exchange, key, body)
        finally:
            conn.close()
    return publish


def test_federation_upstream_and_policy_move_messages(admin, broker, vhost, broker_env, cli, tmp_path, test_password):
    from helpers import unique_vhost

    upstream_vhost = unique_vhost("tf-cfg-up")
    admin.create_vhost(upstream_vhost, user=broker.username)
    env = {**broker_env, "TF_CFG_UPSTREAM": _uri(broker, upstream_vhost)}
    files = {"vhosts": {
        upstream_vhost: {"exchanges": {"fed.x": {"type": "direct", "durable": True}}},
        vhost: {"exchanges": {"fed.x": {"type": "direct", "durable": True}},
                "queues": {"local": {"durable": True, "bindings": [{"exchange": "fed.x", "routing_key": "k"}]}},
                "federation_upstreams": {"origin": {"uri": {"env": "TF_CFG_UPSTREAM"}, "expires": 600000,
                                                    "ack-mode": "on-confirm"}},
                "federation_upstream_sets": {"all-origins": [{"upstream": "origin"}]},
                "policies": {"federate": {"pattern": "^fed\\.", "apply_to": "exchanges",
                                          "definition": {"federation-upstream-set": "all-origins"}}}}}}
    _write(tmp_path, files)
    try:
        runs = [cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)]
        assert runs[0].code == 0, runs[0]
        runs.append(cli(["plan", "--detailed-exitcode", "--out", "p.json"], environ=env, cwd=tmp_path))
        assert runs[-1].code == 0, runs[-1]
        body = _wait_for_message(broker, vhost, "local",
                                 _publisher(broker, upstream_vhost, "fed.x", "k", b"federated"))
        assert body == b"federated"
        files["vhosts"][vhost]["federation_upstreams"]["origin"]["expires"] = 700000
        _write(tmp_path, files)
        runs.append(cli(["plan", "--json"], environ=env, cwd=tmp_path))
        assert [(c["kind"], c["action"], c["diff"]) for c in runs[-1].json["changes"]] == [
            ("federation_upstream", "update", ["expires"])]
        runs.append(cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path))
        assert runs[-1].code == 0
        runs.append(cli(["import", "--vhost", vhost, "--config", "-o", "imported.yaml"], environ=env, cwd=tmp_path))
        assert runs[-1].code == 0, runs[-1]
        imported = (tmp_path / "imported.yaml").read_text()
        runs.append(cli(["plan", "-f", "imported.yaml", "--vhost", vhost, "--detailed-exitcode"],
                        environ={**env, **_import_env(runs[-1].err, env["TF_CFG_UPSTREAM"])}, cwd=tmp_path))
        assert runs[-1].code == 0, runs[-1]
        assert_no_piece(test_password[3:], *_outputs(*runs), imported, (tmp_path / "p.json").read_text())
    finally:
        admin.delete_vhost(upstream_vhost)


def _import_env(stderr: str, value: str) -> dict:
    """The variables ``import`` asked for (it names them, never their values)."""
    import re

    return {name: value for name in re.findall(r"\b(TOPOFORM_SECRET_[A-Z0-9_]+)\b", stderr)}


def test_shovel_moves_messages(admin, broker, vhost, broker_env, cli, tmp_path, test_password):
    env = {**broker_env, "TF_CFG_SRC": _uri(broker, vhost)}
    files = {"vhosts": {vhost: {
        "queues": {"old": {"durable": True}, "new": {"durable": True}},
        "shovels": {"drain": {"src-uri": {"env": "TF_CFG_SRC"}, "src-queue": "old",
                              "dest-uri": {"env": "TF_CFG_SRC"}, "dest-queue": "new"}}}}}
    _write(tmp_path, files)
    runs = [cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)]
    assert runs[0].code == 0, runs[0]
    runs.append(cli(["plan", "--detailed-exitcode"], environ=env, cwd=tmp_path))
    assert runs[-1].code == 0, runs[-1]
    body = _wait_for_message(broker, vhost, "new", _publisher(broker, vhost, "", "old", b"shovelled"))
    assert body == b"shovelled"
    files["vhosts"][vhost]["shovels"]["drain"]["prefetch-count"] = 50
    _write(tmp_path, files)
    runs.append(cli(["plan", "--json"], environ=env, cwd=tmp_path))
    assert [(c["kind"], c["action"], c["diff"]) for c in runs[-1].json["changes"]] == [
        ("shovel", "update", ["prefetch-count"])]
    runs.append(cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path))
    assert runs[-1].code == 0
    assert cli(["plan", "--detailed-exitcode"], environ=env, cwd=tmp_path).code == 0
    assert_no_piece(test_password[3:], *_outputs(*runs))


# ---------------------------------------------------------------------- priority 4: super streams
def test_super_stream_partitions(admin, broker, vhost, broker_env, cli, tmp_path):
    files = {"vhosts": {vhost: {"super_streams": {"invoices": {"partitions": 3,
                                                               "arguments": {"x-max-age": "7D"}}}}}}
    _write(tmp_path, files)
    r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    q = quote_segment(vhost)
    assert admin.get(f"/api/exchanges/{q}/invoices")["arguments"] == {"x-super-stream": True}
    bindings = sorted((b["routing_key"], b["destination"], b["arguments"]["x-stream-partition-order"])
                      for b in admin.get(f"/api/exchanges/{q}/invoices/bindings/source"))
    assert bindings == [("0", "invoices-0", 0), ("1", "invoices-1", 1), ("2", "invoices-2", 2)]
    for i in range(3):
        queue = admin.get(f"/api/queues/{q}/invoices-{i}")
        assert queue["type"] == "stream" and queue["arguments"]["x-max-age"] == "7D"
    r = cli(["plan", "--prune", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    files["vhosts"][vhost]["super_streams"]["invoices"]["partitions"] = 4
    _write(tmp_path, files)
    r = cli(["plan", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3 and [(c["kind"], c["action"], c["diff"]) for c in r.json["changes"]] == [
        ("super_stream", "blocked", ["partitions"])], r


# ---------------------------------------------------------------------- definitions round trip
def test_export_loads_into_the_broker_and_plans_no_changes(admin, broker, broker_env, cli, tmp_path, user_name,
                                                           test_password):
    import json

    from helpers import unique_vhost

    vhost = unique_vhost("tf-cfg-exp")
    env = {**broker_env, "TF_CFG_PW": PW1, "TF_CFG_SRC": _uri(broker, vhost)}
    files = {"users": {user_name: {"tags": ["monitoring"], "password": {"env": "TF_CFG_PW"},
                                   "limits": {"max-connections": 7}}},
             "vhosts": {vhost: {
                 "queues": {"a": {"durable": True}, "b": {"durable": True}},
                 "exchanges": {"tx": {"type": "topic", "durable": True}},
                 "limits": {"max-queues": 50},
                 "permissions": {user_name: {"configure": "", "write": ".*", "read": ".*"},
                                 broker.username: {"configure": ".*", "write": ".*", "read": ".*"}},
                 "topic_permissions": {user_name: {"tx": {"write": "^a", "read": ".*"}}},
                 "operator_policies": {"cap": {"pattern": "^a", "apply_to": "queues",
                                               "definition": {"max-length": 10}}},
                 "federation_upstreams": {"up": {"uri": {"env": "TF_CFG_SRC"}, "expires": 60000}},
                 "shovels": {"mv": {"src-uri": {"env": "TF_CFG_SRC"}, "src-queue": "a",
                                    "dest-uri": {"env": "TF_CFG_SRC"}, "dest-queue": "b"}},
                 "super_streams": {"inv": {"binding_keys": ["eu", "us"]}}}}}
    _write(tmp_path, files)
    try:
        r = cli(["export", "-o", "defs.json"], environ=env, cwd=tmp_path)
        assert r.code == 0, r
        assert "keep the file secret" in r.err
        defs = json.loads((tmp_path / "defs.json").read_text())
        assert [u["name"] for u in defs["users"]] == [user_name]
        admin.request("POST", "/api/definitions", defs)
        r = cli(["plan", "--detailed-exitcode"], environ=env, cwd=tmp_path)
        assert r.code == 0, r
        assert _amqp_login(broker, vhost, user_name, PW1)
        assert_no_piece(PW1, r.out, r.err, (tmp_path / "defs.json").read_text())
    finally:
        admin.delete_vhost(vhost)
