"""What the broker answers for what ``validate`` now catches before apply, on 3.10.8, 4.0.5 and 4.3.6
(the evidence behind tests/unit/test_validate_added_checks.py):

* an integer beyond 64 bits: AMQP cannot carry it (apply used to fail half-done with an internal
  error), and over HTTP a policy takes it without a word: ``message-ttl`` then expires every message;
* a regular expression Python's re and PCRE both refuse is refused by the broker (policies, operator
  policies, permissions, topic permissions), and PCRE-only syntax is accepted;
* operator policies accept only some keys, per version; a shovel key the broker does not recognise is
  refused; a permission for a missing user is refused (plan now blocks it); 4.3 refuses a topic
  permission for a missing exchange, 3.10 and 4.0 take it; an upstream set naming a missing upstream
  is accepted; a user created without a password cannot log in with one.

Works only in vhosts and users named ``hval-*`` that the tests create and delete, as guest.
"""
from __future__ import annotations

import secrets
import textwrap
import time

import pytest
import requests
import yaml

from conftest import ADMIN_MANAGEMENT_URL, ADMIN_URL
from helpers import unique_vhost, wait_for
from topoform.broker.settings import quote_segment

BIG = 99999999999999999999999
ENV = {"TOPOFORM_URL": ADMIN_URL, "TOPOFORM_MANAGEMENT_URL": ADMIN_MANAGEMENT_URL, "CI": "true"}


@pytest.fixture
def hvhost(admin):
    name = unique_vhost("hval")
    admin.create_vhost(name)
    yield name
    admin.delete_vhost(name)


@pytest.fixture
def huser(admin):
    name = f"hval-{secrets.token_hex(4)}"
    admin.put(f"/api/users/{name}", {"password": "hval-" + secrets.token_hex(8), "tags": ""})
    yield name
    admin.delete(f"/api/users/{name}")


def _api(admin, method, path, body=None):
    return admin.request(method, "/api" + path, body, expect=())


def _validate(cli, tmp_path, admin, files: dict | str):
    f = tmp_path / "t.yaml"
    f.write_text(files if isinstance(files, str) else yaml.safe_dump(files))
    full = admin.get("/api/overview")["rabbitmq_version"]
    r = cli(["validate", "-f", f, "--rabbitmq-version", full, "--json"])
    assert r.code in (0, 1), r
    return r.json["findings"]


def _errors(findings, code=None):
    return [x for x in findings if x["severity"] == "error" and (code is None or x["code"] == code)]


# ---------------------------------------------------------------- integers beyond 64 bits
def test_a_huge_message_ttl_policy_is_accepted_and_drops_every_message(admin, hvhost, cli, tmp_path):
    v = quote_segment(hvhost)
    r = _api(admin, "PUT", f"/policies/{v}/huge", {"pattern": "^huge$", "apply-to": "queues",
                                                   "definition": {"message-ttl": BIG}})
    assert r.status_code in (201, 204), r.text  # the broker stores it without a word
    assert _api(admin, "GET", f"/policies/{v}/huge").json()["definition"]["message-ttl"] == BIG
    for q in ("huge", "plain"):
        assert _api(admin, "PUT", f"/queues/{v}/{q}", {"durable": True}).status_code in (201, 204)
    assert wait_for(lambda: _api(admin, "GET", f"/queues/{v}/huge").json().get("policy") == "huge")
    kept = {}
    for q in ("huge", "plain"):
        routed = _api(admin, "POST", f"/exchanges/{v}/amq.default/publish",
                      {"properties": {}, "routing_key": q, "payload": "x", "payload_encoding": "string"}).json()
        assert routed["routed"] is True
        time.sleep(0.5)
        got = _api(admin, "POST", f"/queues/{v}/{q}/get", {"count": 1, "ackmode": "ack_requeue_true",
                                                           "encoding": "auto"}).json()
        kept[q] = len(got)
    assert kept == {"huge": 0, "plain": 1}
    files = {"vhosts": {hvhost: {"policies": {"huge": {"pattern": "^huge$", "apply_to": "queues",
                                                       "definition": {"message-ttl": BIG}}}}}}
    [f] = _errors(_validate(cli, tmp_path, admin, files), "out-of-range")
    assert "message-ttl" in f["message"] and "expires every message" in f["message"]


def test_a_huge_queue_argument_is_a_validate_error_and_apply_changes_nothing(admin, cli, tmp_path):
    name = unique_vhost("hval")
    f = tmp_path / "t.yaml"
    f.write_text(f"vhosts:\n  {name}:\n    queues:\n      q: {{durable: true, arguments: {{x-message-ttl: {BIG}}}}}\n")
    try:
        r = cli(["apply", "-f", f, "--auto-approve"], environ=ENV)
        assert r.code == 1, r
        assert "internal error" not in r.err and "int too large" not in r.err
        assert "x-message-ttl" in r.err and "-2^63..2^63-1" in r.err
        assert _api(admin, "GET", f"/vhosts/{quote_segment(name)}").status_code == 404  # nothing half-done
        # the broker's own answer over HTTP, where the number can be sent at all
        admin.create_vhost(name)
        r = _api(admin, "PUT", f"/queues/{quote_segment(name)}/q", {"durable": True,
                                                                     "arguments": {"x-message-ttl": BIG}})
        assert r.status_code == 400 and "value_too_large" in r.text
    finally:
        admin.delete_vhost(name)


# ---------------------------------------------------------------- regular expressions
PATTERNS = ["(", ")", "[", "a{2,1}", "*a", "a**", "a{2}*", "(?<=a+)b", "\\", "a|*", "(?i", "[z-a]", "(a)\\2",
            "a++", "(?<=ab|c)d", "\\Qa(\\E", "\\p{L}", "(*UTF)a", "(?<n>a)", "a{,3}", "[[:alpha:]]", "(?P<n>a)",
            "^(?!amq\\.).*", "x(?#c)", "^?", "\\b*", "a{2}{3}", "a+*", "(?=a)*", "\\d*+", "a{1,2}+", "()*"]


def test_validate_calls_a_pattern_invalid_only_where_the_broker_refuses_it(admin, hvhost, huser, cli, tmp_path):
    v = quote_segment(hvhost)
    assert _api(admin, "PUT", f"/exchanges/{v}/t", {"type": "topic"}).status_code in (201, 204)
    refused_by_broker, called_invalid = set(), set()
    for i, pattern in enumerate(PATTERNS):
        answers = [
            _api(admin, "PUT", f"/policies/{v}/p{i}", {"pattern": pattern, "definition": {"max-length": 1}}),
            _api(admin, "PUT", f"/operator-policies/{v}/o{i}", {"pattern": pattern,
                                                                "definition": {"max-length": 1}}),
            _api(admin, "PUT", f"/permissions/{v}/{huser}", {"configure": pattern, "write": "", "read": ""}),
            _api(admin, "PUT", f"/topic-permissions/{v}/{huser}", {"exchange": "t", "write": pattern, "read": ""}),
        ]
        codes = {a.status_code >= 400 for a in answers}
        assert len(codes) == 1, (pattern, [a.status_code for a in answers])  # all four agree
        if codes == {True}:
            refused_by_broker.add(pattern)
            assert "invalid_regexp" in answers[2].text  # the reason comes as an Erlang char list
        files = {"users": {huser: {"password": {"env": "P"}}}, "vhosts": {hvhost: {
            "exchanges": {"t": {"type": "topic"}},
            "policies": {"p": {"pattern": pattern, "definition": {"max-length": 1}}},
            "operator_policies": {"o": {"pattern": pattern, "definition": {"max-length": 1}}},
            "permissions": {huser: {"configure": pattern, "write": "", "read": ""}},
            "topic_permissions": {huser: {"t": {"write": pattern, "read": ""}}}}}}
        errors = _errors(_validate(cli, tmp_path, admin, files), "invalid-pattern")
        assert len(errors) in (0, 4), (pattern, errors)
        if errors:
            called_invalid.add(pattern)
    assert called_invalid <= refused_by_broker
    assert called_invalid == {"(", ")", "[", "a{2,1}", "*a", "a**", "a{2}*", "(?<=a+)b", "\\", "a|*", "(?i",
                              "[z-a]", "(a)\\2", "^?", "\\b*", "a{2}{3}", "a+*"}
    assert {"\\Qa(\\E", "\\p{L}", "(*UTF)a", "(?<n>a)", "(?<=ab|c)d", "a++"}.isdisjoint(refused_by_broker)


# ---------------------------------------------------------------- operator policy keys
OPERATOR_KEYS = {"message-ttl": 1000, "expires": 1000, "max-length": 10, "max-length-bytes": 10, "delivery-limit": 5,
                 "max-in-memory-length": 5, "max-in-memory-bytes": 5, "overflow": "reject-publish",
                 "queue-version": 2, "target-group-size": 3, "queue-master-locator": "min-masters", "ha-mode": "all",
                 "dead-letter-exchange": "x", "queue-leader-locator": "balanced", "max-age": "1D", "max-lenght": 1}


@pytest.mark.parametrize("key", sorted(OPERATOR_KEYS))
def test_operator_policy_key_errors_are_exactly_what_the_broker_refuses(key, admin, hvhost, cli, tmp_path):
    value = OPERATOR_KEYS[key]
    r = _api(admin, "PUT", f"/operator-policies/{quote_segment(hvhost)}/o",
             {"pattern": "^x$", "apply-to": "queues", "definition": {key: value}})
    files = {"vhosts": {hvhost: {"operator_policies": {"o": {"pattern": "^x$", "apply_to": "queues",
                                                             "definition": {key: value}}}}}}
    errors = _errors(_validate(cli, tmp_path, admin, files))
    if r.status_code >= 400:
        assert [e["code"] for e in errors] == ["policy-key-refused"], (r.text, errors)
    else:
        assert errors == [], errors


@pytest.mark.parametrize("apply_to", ["quorum_queues", "streams"])
def test_operator_policy_apply_to_is_checked_as_for_policies(apply_to, admin, hvhost, cli, tmp_path):
    r = _api(admin, "PUT", f"/operator-policies/{quote_segment(hvhost)}/o",
             {"pattern": "^x$", "apply-to": apply_to, "definition": {"max-length": 1}})
    files = {"vhosts": {hvhost: {"operator_policies": {"o": {"pattern": "^x$", "apply_to": apply_to,
                                                             "definition": {"max-length": 1}}}}}}
    errors = _errors(_validate(cli, tmp_path, admin, files))
    assert bool(errors) == (r.status_code >= 400), (r.status_code, errors)


# ---------------------------------------------------------------- shovels, permissions, upstream sets, users
def test_a_shovel_key_the_broker_does_not_know_is_refused(admin, hvhost, cli, tmp_path):
    v = quote_segment(hvhost)
    base = {"src-uri": f"amqp:///{v}", "dest-uri": f"amqp:///{v}", "dest-queue": "b"}
    r = _api(admin, "PUT", f"/parameters/shovel/{v}/s", {"value": {**base, "src-queue": "a", "src-queu": "a"}})
    assert r.status_code == 400 and "Unrecognised terms" in r.text
    r = _api(admin, "PUT", f"/parameters/shovel/{v}/s", {"value": {**base, "src-queue": "a", "zzz-frobnicate": 1}})
    assert r.status_code == 400 and "Unrecognised terms" in r.text
    ok = _api(admin, "PUT", f"/parameters/shovel/{v}/s", {"value": {**base, "src-queue": "a"}})
    assert ok.status_code in (201, 204), ok.text
    _api(admin, "DELETE", f"/parameters/shovel/{v}/s")
    files = {"vhosts": {hvhost: {"queues": {"a": {"durable": True}, "b": {"durable": True}},
                                 "shovels": {"s": {**base, "src-queu": "a"}}}}}
    [f] = _errors(_validate(cli, tmp_path, admin, files), "shovel-unknown-key")
    assert f["hint"] == "did you mean 'src-queue'?"


def test_a_permission_for_a_missing_user_is_refused_and_plan_blocks_it(admin, hvhost, cli, tmp_path):
    v = quote_segment(hvhost)
    ghost = f"hval-ghost-{secrets.token_hex(3)}"
    for path, body in ((f"/permissions/{v}/{ghost}", {"configure": ".*", "write": ".*", "read": ".*"}),
                       (f"/topic-permissions/{v}/{ghost}", {"exchange": "amq.topic", "write": ".*", "read": ".*"})):
        r = _api(admin, "PUT", path, body)
        assert r.status_code == 400 and "vhost_or_user_not_found" in r.text
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump({"vhosts": {hvhost: {"permissions": {ghost: {"configure": ".*", "write": ".*",
                                                                             "read": ".*"}}}}}))
    r = cli(["plan", "-f", f, "--json"], environ=ENV)
    assert r.code == 3, r
    [change] = [c for c in r.json["changes"] if c["kind"] == "permission"]
    assert change["action"] == "blocked" and "does not exist on the broker" in change["reason"]
    assert any(x["code"] == "permission-unknown-user" for x in _validate(cli, tmp_path, admin, f.read_text()))


def test_a_topic_permission_for_a_missing_exchange(admin, hvhost, huser, broker_version, cli, tmp_path):
    v = quote_segment(hvhost)
    r = _api(admin, "PUT", f"/topic-permissions/{v}/{huser}", {"exchange": "hval-missing", "write": ".*",
                                                                "read": ".*"})
    if broker_version >= (4, 3):
        assert r.status_code == 400 and "no_such_exchange" in r.text
    else:
        assert r.status_code in (201, 204), r.text
    files = {"users": {huser: {"password": {"env": "P"}}},
             "vhosts": {hvhost: {"topic_permissions": {huser: {"hval-missing": {"write": ".*", "read": ".*"}}}}}}
    found = _validate(cli, tmp_path, admin, files)
    assert [x["severity"] for x in found if x["code"] == "topic-permission-undeclared-exchange"] == ["warning"]


def test_an_upstream_set_naming_a_missing_upstream_is_accepted(admin, hvhost, cli, tmp_path):
    v = quote_segment(hvhost)
    r = _api(admin, "PUT", f"/parameters/federation-upstream-set/{v}/s", {"value": [{"upstream": "hval-none"}]})
    assert r.status_code in (201, 204), r.text
    files = {"vhosts": {hvhost: {"federation_upstream_sets": {"s": [{"upstream": "hval-none"}]}}}}
    found = [x for x in _validate(cli, tmp_path, admin, files) if x["code"] == "undeclared-upstream"]
    assert [x["severity"] for x in found] == ["warning"]


def test_a_user_created_without_a_password_cannot_log_in_with_one(admin, cli, tmp_path):
    user = f"hval-nopw-{secrets.token_hex(3)}"
    f = tmp_path / "t.yaml"
    f.write_text(textwrap.dedent(f"""\
        users:
          {user}: {{tags: [monitoring]}}
        """))
    try:
        found = _validate(cli, tmp_path, admin, f.read_text())
        assert [x["severity"] for x in found if x["code"] == "user-without-password"] == ["warning"]
        r = cli(["apply", "-f", f, "--auto-approve"], environ=ENV)
        assert r.code == 0, r
        assert admin.get(f"/api/users/{user}")["password_hash"] == ""
        base = ADMIN_MANAGEMENT_URL.split("@")[-1]
        for pw in ("", "guest", user):
            assert requests.get(f"http://{base}/api/whoami", auth=(user, pw), timeout=30).status_code == 401
    finally:
        admin.delete(f"/api/users/{user}")
