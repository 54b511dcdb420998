"""Issue 13's "Done when", every config kind at once, on each of 3.10.8, 4.0.5 and 4.3.6:

* apply into an empty broker state, then ``plan --detailed-exitcode`` exits 0;
* change every field the broker updates in place: one ``update`` per object naming exactly those
  fields; apply it, and the plan is empty again;
* ``import --config`` -> plan exits 0; ``export`` -> ``POST /api/definitions`` into an emptied
  broker state (vhost, users, global parameter deleted) -> plan exits 0;
* ``apply PLANFILE`` refuses a plan made before a config object it was based on changed (a user's
  tags, a vhost limit, a permission, ...), and not for a user the files do not name;
* order: users before permissions, queues before shovels and tighter vhost limits, federation
  upstreams before their sets and the policies that use them;
* the leak check: no 4-character piece of any secret (user passwords, their hashes, federation and
  shovel URI passwords, the connected user's password) in any output (also ``--debug``), plan file
  or imported file.

Users and the global parameter are global: unique ``tf-cfg-<hex>`` names, deleted in a ``finally``.
"""
from __future__ import annotations

import copy
import json
import secrets

import pytest
import yaml

from helpers import unique_vhost
from passwords import assert_no_piece
from topoform.broker.settings import quote_segment as q


def _token() -> str:
    while True:
        s = secrets.token_urlsafe(15)
        if s[0] != "-":
            return "Tf" + s


def _write(tmp_path, data, name="topoform.yaml"):
    (tmp_path / name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _files(vhost, user, gp, remote_vhost):
    """Every config kind; URIs point at a vhost that does not exist (the links just retry)."""
    return {
        "users": {user: {"tags": ["monitoring"], "password": {"env": "TF_FLD_PW"},
                         "limits": {"max-connections": 10, "max-channels": 20}}},
        "global_parameters": {gp: {"team": "orders"}},
        "vhosts": {vhost: {
            "exchanges": {"tx": {"type": "topic", "durable": True},
                          "fed.x": {"type": "direct", "durable": True}},
            "queues": {"a": {"durable": True}, "b": {"durable": True}, "c": {"durable": True}},
            "policies": {"federate": {"pattern": "^fed\\.", "apply_to": "exchanges",
                                      "definition": {"federation-upstream-set": "origins"}}},
            "limits": {"max-queues": 100, "max-connections": 50},
            "permissions": {user: {"configure": "^a", "write": "^a", "read": "^a"}},
            "topic_permissions": {user: {"tx": {"write": "^a", "read": "^a"}}},
            "operator_policies": {"cap": {"pattern": "^a", "apply_to": "queues", "priority": 1,
                                          "definition": {"max-length": 1000}}},
            "federation_upstreams": {"origin": {"uri": {"env": "TF_FLD_UP"}, "expires": 600000,
                                                "ack-mode": "on-confirm", "prefetch-count": 100, "max-hops": 1}},
            "federation_upstream_sets": {"origins": [{"upstream": "origin"}]},
            "shovels": {"mv": {"src-uri": {"env": "TF_FLD_UP"}, "src-queue": "a",
                               "dest-uri": {"env": "TF_FLD_UP"}, "dest-queue": "b", "prefetch-count": 10}},
            "super_streams": {"inv": {"partitions": 2, "arguments": {"x-max-age": "1D"}}},
        }},
    }


def _change_every_field(files, vhost, user, gp):
    """Every field the broker updates in place, changed; returns the expected ``{(kind, name): diff}``."""
    v = files["vhosts"][vhost]
    u = files["users"][user]
    u["tags"] = ["monitoring", "policymaker"]
    u["password"] = {"env": "TF_FLD_PW2"}
    u["limits"] = {"max-connections": 11, "max-channels": 21}
    files["global_parameters"][gp] = {"team": "billing"}
    v["limits"] = {"max-queues": 90, "max-connections": 40}
    v["permissions"][user] = {"configure": "^b", "write": "^b", "read": "^b"}
    v["topic_permissions"][user]["tx"] = {"write": "^b", "read": "^b"}
    v["operator_policies"]["cap"] = {"pattern": "^b", "apply_to": "all", "priority": 2,
                                     "definition": {"max-length": 999}}
    v["federation_upstreams"]["origin"] = {"uri": {"env": "TF_FLD_UP2"}, "expires": 700000, "ack-mode": "on-publish",
                                           "prefetch-count": 50, "max-hops": 2}
    v["federation_upstream_sets"]["origins"] = [{"upstream": "origin", "exchange": "fed.y"}]
    v["shovels"]["mv"] = {"src-uri": {"env": "TF_FLD_UP2"}, "src-queue": "b", "dest-uri": {"env": "TF_FLD_UP2"},
                          "dest-queue": "c", "prefetch-count": 20}
    return {
        ("user", user): ["password", "tags"],
        ("user_limit", user): ["limits.max-channels", "limits.max-connections"],
        ("global_parameter", gp): ["value.team"],
        ("vhost_limit", "limits"): ["limits.max-connections", "limits.max-queues"],
        ("permission", user): ["configure", "read", "write"],
        ("topic_permission", f"{user}@tx"): ["read", "write"],
        ("operator_policy", "cap"): ["apply_to", "definition.max-length", "pattern", "priority"],
        ("federation_upstream", "origin"): ["ack-mode", "expires", "max-hops", "prefetch-count", "uri"],
        ("federation_upstream_set", "origins"): ["upstreams"],
        ("shovel", "mv"): ["dest-queue", "dest-uri", "prefetch-count", "src-queue", "src-uri"],
    }


@pytest.fixture
def names(admin):
    user, gp = f"tf-cfg-{secrets.token_hex(4)}", f"tf-cfg-{secrets.token_hex(4)}"
    vhost, remote = unique_vhost("tf-cfg-fld"), unique_vhost("tf-cfg-none")
    yield vhost, user, gp, remote
    admin.delete_vhost(vhost)
    admin.delete(f"/api/users/{q(user)}")
    admin.delete(f"/api/global-parameters/{q(gp)}")


def _uri(broker, vhost, user, password):
    from urllib.parse import quote

    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{broker.amqp_host}:{broker.amqp_port}/" \
           f"{quote(vhost, safe='')}"


def test_every_kind_applies_updates_in_place_and_round_trips(admin, broker, broker_env, cli, tmp_path, names,
                                                             test_password):
    vhost, user, gp, remote = names
    pw, pw2, up, up2 = (_token() for _ in range(4))
    env = {**broker_env, "TF_FLD_PW": pw, "TF_FLD_PW2": pw2,
           "TF_FLD_UP": _uri(broker, remote, "tf-nobody", up), "TF_FLD_UP2": _uri(broker, remote, "tf-nobody", up2)}
    files = _files(vhost, user, gp, remote)
    _write(tmp_path, files)
    runs = []

    def run(*argv, ok=(0,), **kw):
        r = cli(list(argv), environ=env, cwd=tmp_path, **kw)
        runs.append(r)
        assert r.code in ok, r
        return r

    # order of a first apply into an empty broker state (issue item 4)
    order = [(c["kind"], c["name"]) for c in run("plan", "--json", ok=(0, 2)).json["changes"]]
    at = {kind_name: i for i, kind_name in enumerate(order)}
    assert at[("user", user)] < at[("permission", user)] and at[("user", user)] < at[("topic_permission", f"{user}@tx")]
    assert at[("exchange", "tx")] < at[("topic_permission", f"{user}@tx")]
    assert at[("queue", "a")] < at[("shovel", "mv")] and at[("queue", "b")] < at[("shovel", "mv")]
    assert at[("federation_upstream", "origin")] < at[("federation_upstream_set", "origins")] < at[("policy", "federate")]
    assert at[("queue", "c")] < at[("vhost_limit", "limits")]  # a new limit may refuse queues: after them

    run("apply", "--auto-approve")
    run("plan", "--detailed-exitcode")
    hash1 = admin.get(f"/api/users/{q(user)}")["password_hash"]

    # every in-place field changed: one update per object, naming exactly its fields
    want = copy.deepcopy(files)
    expected = _change_every_field(want, vhost, user, gp)
    _write(tmp_path, want)
    r = run("plan", "--json", "--debug", "--out", "p.json", ok=(0, 2))
    got = {(c["kind"], c["name"]): sorted(c["diff"]) for c in r.json["changes"]}
    assert {c["action"] for c in r.json["changes"]} == {"update"}, r.json["changes"]
    assert got == expected
    run("plan", ok=(0, 2))  # the text form too, for the leak check
    run("apply", "p.json", "--auto-approve", "--debug")
    run("plan", "--detailed-exitcode")
    assert admin.get(f"/api/users/{q(user)}")["tags"] in (["monitoring", "policymaker"], "monitoring,policymaker")
    hash2 = admin.get(f"/api/users/{q(user)}")["password_hash"]

    # import -> plan: no changes (the URIs come back as variables import names)
    r = run("import", "--vhost", vhost, "--config", "-o", "imported.yaml")
    imported = yaml.safe_load((tmp_path / "imported.yaml").read_text())
    imported["users"] = {user: want["users"][user]}  # import writes no password: the files' reference
    imported["global_parameters"] = want["global_parameters"]
    _write(tmp_path, imported, "imported.yaml")
    import re

    for variable in re.findall(r"\b(TOPOFORM_SECRET_[A-Z0-9_]+)\b", r.err):
        env[variable] = env["TF_FLD_UP2"]
    run("plan", "-f", "imported.yaml", "--detailed-exitcode")

    # export -> the broker emptied of it -> POST /api/definitions -> plan: no changes
    run("export", "-o", "defs.json")
    defs = json.loads((tmp_path / "defs.json").read_text())
    admin.delete_vhost(vhost)
    admin.delete(f"/api/users/{q(user)}")
    admin.delete(f"/api/global-parameters/{q(gp)}")
    admin.request("POST", "/api/definitions", defs)
    run("plan", "--detailed-exitcode", "--debug")

    texts = [t for r in runs for t in (r.out, r.err)] + [
        (tmp_path / n).read_text() for n in ("p.json", "imported.yaml")]
    for secret in (pw, pw2, up, up2, test_password[3:]):
        assert_no_piece(secret, *texts)
    for stored in (hash1, hash2):  # the hashes: only the export (which says to keep it secret) has them
        assert all(stored[i:i + 8] not in t for t in texts for i in range(0, len(stored) - 8, 4))
    assert_no_piece(pw2, (tmp_path / "defs.json").read_text())


# (what changes behind a saved plan's back, the admin call that changes it)
STALE = [
    ("a user's tags", lambda a, v, u: a.put(f"/api/users/{q(u)}", {"password": "x-" + _token(), "tags": "management"})),
    ("a vhost limit", lambda a, v, u: a.put(f"/api/vhost-limits/{q(v)}/max-queues", {"value": 77})),
    ("a permission", lambda a, v, u: a.put(f"/api/permissions/{q(v)}/{q(u)}",
                                           {"configure": ".*", "write": "^a", "read": "^a"})),
    ("an operator policy", lambda a, v, u: a.put(f"/api/operator-policies/{q(v)}/cap", {
        "pattern": "^a", "apply-to": "queues", "priority": 1, "definition": {"max-length": 5}})),
]


def test_a_saved_plan_is_stale_after_a_config_change(admin, broker, broker_env, cli, tmp_path, names):
    vhost, user, gp, remote = names
    other = f"tf-cfg-{secrets.token_hex(4)}"
    env = {**broker_env, "TF_FLD_PW": _token()}
    files = {"users": {user: {"tags": ["monitoring"], "password": {"env": "TF_FLD_PW"}}},
             "vhosts": {vhost: {"queues": {"a": {"durable": True}},
                                "limits": {"max-queues": 100},
                                "permissions": {user: {"configure": "^a", "write": "^a", "read": "^a"}},
                                "operator_policies": {"cap": {"pattern": "^a", "apply_to": "queues", "priority": 1,
                                                              "definition": {"max-length": 1000}}}}}}
    _write(tmp_path, files)
    assert cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path).code == 0
    files["vhosts"][vhost]["queues"]["b"] = {"durable": True}  # the saved plan's one change
    _write(tmp_path, files)
    try:
        # a user the files do not name changes: the saved plan still applies
        r = cli(["plan", "--out", "p.json"], environ=env, cwd=tmp_path)
        assert r.code == 0, r
        admin.put(f"/api/users/{q(other)}", {"password": _token(), "tags": ""})
        r = cli(["apply", "p.json", "--auto-approve"], environ=env, cwd=tmp_path)
        assert r.code == 0, r
        for what, change in STALE:
            files["vhosts"][vhost]["queues"] = {"a": {"durable": True}, "b": {"durable": True},
                                                what.replace(" ", "-").replace("'", ""): {"durable": True}}
            _write(tmp_path, files)
            r = cli(["plan", "--json", "--out", "p.json"], environ=env, cwd=tmp_path)
            assert [(c["kind"], c["action"]) for c in r.json["changes"]] == [("queue", "create")], (what, r)
            change(admin, vhost, user)
            r = cli(["apply", "p.json", "--auto-approve"], environ=env, cwd=tmp_path)
            assert r.code == 1 and "stale" in r.err and len(r.err.strip().splitlines()) == 1, (what, r)
            # nothing was applied
            queues = {x["name"] for x in admin.get(f"/api/queues/{q(vhost)}")}
            assert what.replace(" ", "-").replace("'", "") not in queues, what
            r = cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)  # back to the files
            assert r.code == 0, (what, r)
    finally:
        admin.delete(f"/api/users/{q(other)}")


def test_apply_planfile_with_a_missing_secret_changes_nothing(admin, broker_env, cli, tmp_path, names):
    vhost, user, gp, remote = names
    files = {"users": {user: {"tags": [], "password": {"env": "TF_FLD_PW"}}},
             "vhosts": {vhost: {"queues": {"a": {"durable": True}},
                                "permissions": {user: {"configure": "", "write": "", "read": ".*"}}}}}
    _write(tmp_path, files)
    pw = _token()
    r = cli(["plan", "--out", "p.json"], environ={**broker_env, "TF_FLD_PW": pw}, cwd=tmp_path)
    assert r.code == 2 or r.code == 0, r
    r = cli(["apply", "p.json", "--auto-approve"], environ=broker_env, cwd=tmp_path)  # the variable is gone
    assert r.code == 1 and "TF_FLD_PW" in r.err and "before changing anything" in r.err, r
    assert "Traceback" not in r.err and pw not in r.out + r.err
    assert user not in {u["name"] for u in admin.get("/api/users")}
    assert vhost not in {v["name"] for v in admin.get("/api/vhosts")}  # nothing half-done
    r = cli(["apply", "p.json", "--auto-approve"], environ={**broker_env, "TF_FLD_PW": pw}, cwd=tmp_path)
    assert r.code == 0, r
    assert user in {u["name"] for u in admin.get("/api/users")}


def test_a_non_administrator_is_stopped_before_any_change(admin, broker, broker_env, cli, tmp_path, names):
    """A policymaker may not manage users or global parameters: named before anything changes."""
    vhost, user, gp, remote = names
    me, password = f"tf-cfg-pm-{secrets.token_hex(4)}", _token()
    admin.create_vhost(vhost, user=broker.username)
    admin.put(f"/api/users/{q(me)}", {"password": password, "tags": "policymaker"})
    try:
        admin.put(f"/api/permissions/{q(vhost)}/{q(me)}", {"configure": ".*", "write": ".*", "read": ".*"})
        files = {"users": {user: {"tags": [], "password": {"env": "TF_FLD_PW"}}},
                 "global_parameters": {gp: 1},
                 "vhosts": {vhost: {"queues": {"a": {"durable": True}}}}}
        _write(tmp_path, files)
        env = {"CI": "1", "TF_FLD_PW": _token(), "TOPOFORM_URL": f"amqp://{broker.amqp_host}:{broker.amqp_port}/",
               "TOPOFORM_MANAGEMENT_URL": broker.http_base_clean, "TOPOFORM_USERNAME": me,
               "TOPOFORM_PASSWORD": password}
        r = cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)
        assert r.code == 1, r
        assert ("administrator" in r.err or "cannot read" in r.err) and "Traceback" not in r.err, r
        assert_no_piece(password, r.out, r.err)
        assert user not in {u["name"] for u in admin.get("/api/users")}
        assert admin.get(f"/api/queues/{q(vhost)}") == []  # nothing half-done
        # what it may read but not change (operator policies: administrators only) is named by the preflight
        _write(tmp_path, {"vhosts": {vhost: {"queues": {"a": {"durable": True}},
                                             "operator_policies": {"cap": {"pattern": "^a", "apply_to": "queues",
                                                                           "definition": {"max-length": 5}}}}}})
        r = cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)
        assert r.code == 1 and "operator_policy 'cap'" in r.err and "'administrator' tag" in r.err, r
        assert admin.get(f"/api/queues/{q(vhost)}") == [] and admin.get(f"/api/operator-policies/{q(vhost)}") == []
    finally:
        admin.delete(f"/api/users/{q(me)}")


def test_prune_users_never_deletes_the_last_administrator(admin, broker, broker_env, cli, tmp_path, names):
    """Plan only: the files demote every administrator but one the test makes; --prune-users may not delete
    that one (another administrator appearing meanwhile would be deleted instead: exactly one is blocked)."""
    vhost, user, gp, remote = names
    admin.put(f"/api/users/{q(user)}", {"password": _token(), "tags": "administrator"})
    demoted = sorted(u["name"] for u in admin.get("/api/users")
                     if "administrator" in (u["tags"] if isinstance(u["tags"], list) else u["tags"].split(","))
                     and u["name"] != user)
    _write(tmp_path, {"users": {name: {"tags": []} for name in demoted}, "vhosts": {vhost: {}}})
    r = cli(["plan", "--prune-users", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r
    blocked = [c for c in r.json["changes"] if c["kind"] == "user" and c["action"] == "blocked"]
    assert len(blocked) == 1 and "without an administrator" in blocked[0]["reason"], blocked
    deleted = {c["name"] for c in r.json["changes"] if c["kind"] == "user" and c["action"] == "delete"}
    assert broker.username not in deleted and blocked[0]["name"] not in demoted
    if blocked[0]["name"] != user:  # another administrator appeared meanwhile: then this one goes
        assert user in deleted
    # without --prune-users a user the files do not name is left alone
    r = cli(["plan", "--json"], environ=broker_env, cwd=tmp_path)
    assert not [c for c in r.json["changes"] if c["kind"] == "user" and c["name"] == user]


def test_a_tighter_vhost_limit_waits_for_the_applys_own_queues(admin, broker_env, cli, tmp_path, names):
    """Live: queues a, b, x (x not in the files, pruned) under max-queues 10. The files add c and lower the
    limit to 4 (3 queues and apply's lock queue): set first, the broker would refuse c (a, b, x and the lock
    are 4 already); set after the queues it is accepted, and the prune then removes x. A limit with no room
    for the lock is blocked with the reason (every later apply would fail to take the lock)."""
    vhost, user, gp, remote = names
    files = {"vhosts": {vhost: {"queues": {n: {"durable": True} for n in ("a", "b", "x")},
                                "limits": {"max-queues": 10}}}}
    _write(tmp_path, files)
    assert cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path).code == 0
    files["vhosts"][vhost] = {"queues": {n: {"durable": True} for n in ("a", "b", "c")}, "limits": {"max-queues": 3}}
    _write(tmp_path, files)
    r = cli(["plan", "--prune", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3 and "apply lock" in r.out, r
    files["vhosts"][vhost]["limits"] = {"max-queues": 4}
    _write(tmp_path, files)
    r = cli(["plan", "--prune", "--json"], environ=broker_env, cwd=tmp_path)
    order = [(c["kind"], c["action"], c["name"]) for c in r.json["changes"]]
    assert order.index(("queue", "create", "c")) < order.index(("vhost_limit", "update", "limits")), order
    r = cli(["apply", "--prune", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert sorted(x["name"] for x in admin.get(f"/api/queues/{q(vhost)}")) == ["a", "b", "c"]
    assert admin.get(f"/api/vhost-limits/{q(vhost)}")[0]["value"] == {"max-queues": 4}
    assert cli(["plan", "--prune", "--detailed-exitcode"], environ=broker_env, cwd=tmp_path).code == 0
    # a raise goes first: a, b, c and the lock fill max-queues 4, so adding d needs the new limit before it
    files["vhosts"][vhost] = {"queues": {n: {"durable": True} for n in ("a", "b", "c", "d")},
                              "limits": {"max-queues": 5}}
    _write(tmp_path, files)
    r = cli(["plan", "--json"], environ=broker_env, cwd=tmp_path)
    order = [(c["kind"], c["action"], c["name"]) for c in r.json["changes"]]
    assert order.index(("vhost_limit", "update", "limits")) < order.index(("queue", "create", "d")), order
    r = cli(["apply", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert len(admin.get(f"/api/queues/{q(vhost)}")) == 4
