"""Non-administrators and plugins on a real broker (issue 11, items 5 and 6).

What a user may read differs from what it may do: only administrators may read
permission patterns (GET /api/users/U/permissions answers 401 to others, on 3.10 to
4.3); a non-administrator's GET /api/vhosts lists only the vhosts it has permissions on,
and on 4.3 the per-vhost listings answer 404 for a vhost it may not enter as for one that
does not exist. topoform must still say what is missing, and apply must stop before
changing anything.
"""
from __future__ import annotations

import secrets

import pytest
import yaml

from helpers import run_cli
from topoform.broker.settings import quote_segment


@pytest.fixture
def make_user(admin):
    made = []

    def _make(tags: str, vhost: str | None = None, **patterns):
        user, password = f"tf-perm-{secrets.token_hex(3)}", "pw-" + secrets.token_hex(10)
        admin.put(f"/api/users/{user}", {"password": password, "tags": tags})
        if vhost is not None:
            admin.put(f"/api/permissions/{quote_segment(vhost)}/{user}",
                      {"configure": ".*", "write": ".*", "read": ".*", **patterns})
        made.append(user)
        return user, password

    yield _make
    for user in made:
        admin.delete(f"/api/users/{user}")


def _env(broker, user, password):
    return {"TOPOFORM_URL": f"amqp://{user}:{password}@{broker.amqp_host}:{broker.amqp_port}/", "CI": "1",
            "TOPOFORM_MANAGEMENT_URL": broker.http_base_clean.replace("://", f"://{user}:{password}@", 1)}


def _files(tmp_path, vhost, body):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"vhosts": {vhost: body}}))
    return path


def test_a_vhost_without_permission_is_named_not_planned_as_new_nor_called_missing(vhost, broker, make_user,
                                                                                   tmp_path):
    user, password = make_user("management")  # no permission on the (existing) test vhost
    env = _env(broker, user, password)
    files = _files(tmp_path, vhost, {"queues": {"q": {"durable": True}}})
    plan = run_cli(["plan", "-f", files], environ=env, secrets=(password,))
    assert plan.code == 1, plan
    assert f"no permission on vhost '{vhost}'" in plan.err and "it exists" in plan.err
    assert "+ vhost" not in plan.out
    applied = run_cli(["apply", "--auto-approve", "-f", files], environ=env, secrets=(password,))
    assert applied.code == 1 and "no permission on it" in applied.err, applied
    assert "+ vhost" not in applied.out and "Plan:" not in applied.out, applied  # no plan it cannot carry out
    imp = run_cli(["import", "--vhost", vhost], environ=env, secrets=(password,))
    assert imp.code == 1, imp
    assert f"no permission on vhost '{vhost}'" in imp.err and "not found" not in imp.err
    # a vhost that does not exist is still "not found"
    imp = run_cli(["import", "--vhost", vhost + "-nope"], environ=env, secrets=(password,))
    assert imp.code == 1 and "not found" in imp.err, imp


def test_a_missing_policymaker_tag_stops_apply_before_any_change(vhost, broker, make_user, mgmt, tmp_path):
    user, password = make_user("management", vhost)
    files = _files(tmp_path, vhost, {"queues": {"orders": {"durable": True}},
                                     "policies": {"ttl": {"pattern": "^orders$", "definition": {"message-ttl": 5}}}})
    r = run_cli(["apply", "--auto-approve", "-f", files], environ=_env(broker, user, password), secrets=(password,))
    assert r.code == 1, r
    assert "needs the 'policymaker' or 'administrator' tag" in r.err and "has tags: management" in r.err
    assert "refused the credentials" not in r.err
    assert mgmt.get(f"/api/queues/{quote_segment(vhost)}") == []  # nothing changed, not even the queue
    assert mgmt.get(f"/api/policies/{quote_segment(vhost)}") == []


def test_a_policymaker_applies_and_is_told_patterns_were_not_checked(vhost, broker, make_user, mgmt, tmp_path):
    user, password = make_user("policymaker", vhost)
    files = _files(tmp_path, vhost, {"queues": {"orders": {"durable": True}},
                                     "policies": {"ttl": {"pattern": "^orders$", "definition": {"message-ttl": 5}}}})
    r = run_cli(["apply", "--auto-approve", "-f", files], environ=_env(broker, user, password), secrets=(password,))
    assert r.code == 0, r
    assert "permission patterns not checked" in r.err
    assert [p["name"] for p in mgmt.get(f"/api/policies/{quote_segment(vhost)}")] == ["ttl"]


def test_a_403_in_the_run_names_the_change_and_says_what_to_check(vhost, broker, make_user, mgmt, tmp_path):
    """A non-administrator's patterns cannot be read before the run: the broker's 403 names the change, and
    the failure line and the JSON report carry a hint to the user's permissions."""
    import json

    user, password = make_user("policymaker", vhost, configure="^(app\\.|topoform\\.lock$)")
    files = _files(tmp_path, vhost, {"queues": {"app.q": {"durable": True}, "secret.q": {"durable": True}}})
    r = run_cli(["apply", "--auto-approve", "-f", files], environ=_env(broker, user, password), secrets=(password,))
    assert r.code == 1, r
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("Apply failed at queue secret.q: ") and "403 ACCESS_REFUSED" in last, r
    assert f"(hint: check the permissions of user '{user}' in vhost '{vhost}'" in last, r
    r = run_cli(["apply", "--auto-approve", "--json", "-f", files], environ=_env(broker, user, password),
                secrets=(password,))
    assert r.code == 1, r
    failed = json.loads(r.out)["failed"]
    assert [f["name"] for f in failed] == ["secret.q"] and failed[0]["code"] == "broker-refused"
    assert "configure" in failed[0]["hint"]
    assert [q["name"] for q in mgmt.get(f"/api/queues/{quote_segment(vhost)}?columns=name")] == ["app.q"]


def test_an_administrator_with_narrow_patterns_gets_every_missing_permission_at_once(vhost, broker, make_user, mgmt,
                                                                                     tmp_path):
    user, password = make_user("administrator", vhost, configure="^(app\\.|topoform\\.lock$)", write="^app\\.",
                               read="^app\\.")
    files = _files(tmp_path, vhost, {
        "exchanges": {"app.x": {"type": "topic"}, "secret.x": {"type": "topic"}},
        "queues": {"app.q": {"durable": True, "bindings": [{"exchange": "secret.x", "routing_key": "k"}]},
                   "secret.q": {"durable": True}}})
    r = run_cli(["apply", "--auto-approve", "-f", files], environ=_env(broker, user, password), secrets=(password,))
    assert r.code == 1, r
    assert "no configure permission for exchange 'secret.x', queue 'secret.q'" in r.err
    assert "no read permission for exchange 'secret.x'" in r.err
    assert "2 things missing" in r.err
    assert mgmt.get(f"/api/exchanges/{quote_segment(vhost)}?columns=name") and \
        not any(x["name"].startswith(("app.", "secret.")) for x in mgmt.get(f"/api/exchanges/{quote_segment(vhost)}"))


def test_an_enabled_plugin_lets_its_policy_apply(vhost, broker_env, cli, mgmt, tmp_path):
    """The test brokers run rabbitmq_federation: the preflight finds it (the missing case is a unit test)."""
    nodes = mgmt.get("/api/nodes")
    assert all("rabbitmq_federation" in n.get("enabled_plugins", []) for n in nodes)
    files = _files(tmp_path, vhost, {"policies": {"fed": {"pattern": "^fed\\.", "apply_to": "exchanges",
                                                          "definition": {"federation-upstream-set": "all"}}}})
    v = cli(["validate", "-f", files])
    assert v.code == 0 and "needs the rabbitmq_federation plugin" in v.err, v
    r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
    assert r.code == 0, r
    assert mgmt.get(f"/api/policies/{quote_segment(vhost)}/fed")["definition"] == {"federation-upstream-set": "all"}


def test_an_administrator_without_permission_on_an_existing_vhost_is_stopped_before_the_lock(vhost, broker,
                                                                                             make_user, mgmt,
                                                                                             tmp_path):
    user, password = make_user("administrator")  # sees every vhost, may enter none
    files = _files(tmp_path, vhost, {"queues": {"q": {"durable": True}}})
    r = run_cli(["apply", "--auto-approve", "-f", files], environ=_env(broker, user, password), secrets=(password,))
    assert r.code == 1, r
    assert f"missing: user '{user}' has no permission on vhost '{vhost}' (it exists)" in r.err
    assert "+ vhost" not in r.out  # stopped before planning a create for a vhost that exists
    assert mgmt.get(f"/api/queues/{quote_segment(vhost)}") == []
