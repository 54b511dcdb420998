"""validate's checks for what passed before and failed at apply: integers beyond 64 bits, regular
expressions the broker refuses, operator policy keys and apply-to per version, shovel key typos,
permissions for users and exchanges the files do not declare, upstream sets naming missing upstreams,
users without a password; and plan's blocked permission for a user the broker does not have.

What the brokers answer is measured in tests/integration/test_validate_checks_broker.py.
"""
from __future__ import annotations

import pytest

from topoform.broker.amqp import EncodingError, encode_args
from topoform.broker.live import live_from_definitions
from topoform.config.load import resolve
from topoform.load import load_text
from topoform.patterns import pcre_invalid, python_error
from topoform.planner import PlanOptions, make_plan

BIG = 99999999999999999999999


def _findings(text: str, version: str = "4.3", code: str | None = None):
    loaded = load_text(text, "t.yaml", target=version)
    return [f for f in loaded.findings if code is None or f.code == code]


def _vhost(body: str) -> str:
    return "vhosts:\n  v:\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())


# ---------------------------------------------------------------- integers beyond 64 bits
@pytest.mark.parametrize("body, where", [
    (f"queues: {{q: {{durable: true, arguments: {{x-message-ttl: {BIG}}}}}}}", "queue 'q' argument 'x-message-ttl'"),
    (f"queues: {{q: {{durable: true, arguments: {{x-custom: [1, {{n: -{BIG}}}]}}}}}}", "queue 'q' argument 'x-custom.1.n'"),
    (f"exchanges: {{e: {{arguments: {{x-foo: {BIG}}}}}}}", "exchange 'e' argument 'x-foo'"),
    ("exchanges: {e: {type: headers}}\nqueues: {q: {bindings: [{exchange: e, arguments: {n: 9223372036854775808}}]}}",
     "binding of exchange 'e' to 'q' argument 'n'"),
    (f"policies: {{p: {{pattern: ^q$, definition: {{message-ttl: {BIG}}}}}}}", "policy 'p' key 'message-ttl'"),
    (f"operator_policies: {{o: {{pattern: ^q$, definition: {{max-length: {BIG}}}}}}}", "operator policy 'o' key 'max-length'"),
])
def test_an_integer_beyond_64_bits_is_out_of_range(body, where):
    [f] = _findings(_vhost(body), code="out-of-range")
    assert f.is_error and f.message.startswith(where), f.message
    assert "-2^63..2^63-1" in f.message and f.position.line >= 3


def test_the_64_bit_bounds_themselves_pass_and_the_message_ttl_policy_says_what_the_broker_does():
    ok = _vhost("queues: {q: {durable: true, arguments: {x-max-length: 9223372036854775807, "
                "x-custom: -9223372036854775808}}}")
    assert _findings(ok, code="out-of-range") == []
    [f] = _findings(_vhost(f"policies: {{p: {{pattern: ^q$, definition: {{message-ttl: {BIG}}}}}}}"),
                    code="out-of-range")
    assert "expires every message at once" in f.message
    long = _findings(_vhost(f"queues: {{q: {{arguments: {{x-a: {'9' * 60}}}}}}}"), code="out-of-range")
    assert "(60 digits)" in long[0].message and "9" * 30 not in long[0].message


def test_the_amqp_encoder_refuses_a_huge_integer_with_its_own_error():
    assert encode_args({"x": 2 ** 63 - 1, "y": [-2 ** 63]}) == {"x": 2 ** 63 - 1, "y": [-2 ** 63]}
    with pytest.raises(EncodingError, match=r"arguments\.x-message-ttl: .* signed 64-bit"):
        encode_args({"x-message-ttl": BIG})
    with pytest.raises(EncodingError, match=r"arguments\.t\.n"):
        encode_args({"t": {"n": 2 ** 63}})


# ---------------------------------------------------------------- regular expressions
@pytest.mark.parametrize("pattern", ["(", ")", "[", "a{2,1}", "*a", "a**", "a{2}*", "(?<=a+)b", "\\", "a|*",
                                     "(?i", "[z-a]", "(a)\\2", "^?", "\\b*", "a{2}{3}", "a+*"])
def test_invalid_for_python_and_pcre_alike(pattern):
    assert pcre_invalid(pattern)


@pytest.mark.parametrize("pattern", ["a++", "(?<=ab|c)d", "\\Qa(\\E", "\\p{L}", "(*UTF)a", "(?<n>a)", "a{,3}",
                                     "[[:alpha:]]", "(?P<n>a)", "^(?!amq\\.).*", "x(?#c)", "\\k<x>", "[\\d-z]",
                                     "(*UTF)(", "\\Q(\\E", ".*", "", "(?=a)*", "\\d*+", "a{1,2}+", "()*"])
def test_valid_pcre_or_not_certain_is_not_called_invalid(pattern):
    assert pcre_invalid(pattern) is None


def test_python_only_errors_are_doubts():
    assert python_error("\\Qa\\E") and pcre_invalid("\\Qa\\E") is None
    assert python_error("^a$") is None


def test_policy_and_operator_policy_patterns_error_or_warn():
    text = _vhost("policies: {p: {pattern: '(', definition: {max-length: 1}}, "
                  "p2: {pattern: '\\Qa\\E', definition: {max-length: 1}}}\n"
                  "operator_policies: {o: {pattern: '[', definition: {max-length: 1}}}")
    got = {(f.severity, f.message.split(" pattern")[0]) for f in _findings(text, code="invalid-pattern")}
    assert got == {("error", "policy 'p'"), ("warning", "policy 'p2'"), ("error", "operator policy 'o'")}


def test_permission_and_topic_permission_regexes_are_checked_at_their_key():
    text = ("users: {u: {password: {env: P}}}\n" + _vhost(
        "exchanges: {t: {type: topic}}\n"
        "permissions: {u: {configure: '(', write: '.*', read: '\\Qx\\E'}}\n"
        "topic_permissions: {u: {t: {write: '.*', read: '[z-a]'}}}"))
    found = _findings(text, code="invalid-pattern")
    errors = sorted(f.message.split(": ", 1)[1].split(" ")[0] for f in found if f.is_error)
    assert errors == ["configure", "read"]
    [doubt] = [f for f in found if not f.is_error]
    assert "read '\\Qx\\E'" in doubt.message
    assert {f.position.line for f in found if f.is_error} == {5, 6}


# ---------------------------------------------------------------- operator policies per version
OP = "operator_policies: {{o: {{pattern: ^q$, apply_to: {apply_to}, definition: {{{key}: {value}}}}}}}"


ALL = ("3.10", "3.12", "3.13", "4.0", "4.3")


@pytest.mark.parametrize("key, value, refused_on", [
    ("max-length", 1, ()), ("delivery-limit", 3, ()), ("max-in-memory-bytes", 5, ()),
    ("overflow", "reject-publish", ("3.10", "3.12")), ("queue-version", 2, ("3.10", "3.12")),
    ("target-group-size", 3, ("3.10", "3.12")),
    ("ha-mode", "all", ("3.10", "4.0", "4.3")), ("queue-master-locator", "min-masters", ("3.10", "3.12", "3.13", "4.3")),
    ("dead-letter-exchange", "x", ALL), ("max-lenght", 1, ALL),
])
def test_operator_policy_keys_per_version(key, value, refused_on):
    text = _vhost(OP.format(apply_to="queues", key=key, value=value))
    for version in ALL:
        errors = [f for f in _findings(text, version) if f.is_error]
        if version in refused_on:
            assert [f.code for f in errors] == ["policy-key-refused"], (version, errors)
            assert f"operator policy 'o' key '{key}'" in errors[0].message
        else:
            assert errors == [], (version, errors)


def test_operator_policy_typo_hint_deprecation_and_apply_to():
    [typo] = _findings(_vhost(OP.format(apply_to="queues", key="max-lenght", value=1)), code="policy-key-refused")
    assert typo.hint == "did you mean 'max-length'?"
    [dep] = _findings(_vhost(OP.format(apply_to="queues", key="queue-master-locator", value="x")), "4.0",
                      code="policy-key-deprecated")
    assert dep.severity == "warning"
    text = _vhost(OP.format(apply_to="quorum_queues", key="max-length", value=1))
    assert [f.code for f in _findings(text, "3.10") if f.is_error] == ["apply-to-unsupported"]
    assert [f for f in _findings(text, "3.12") if f.is_error] == []


# ---------------------------------------------------------------- shovels, users, permissions, upstream sets
SHOVEL = "shovels: {{s: {{src-uri: 'amqp:///v', dest-uri: 'amqp:///v', dest-queue: b, {extra}}}}}\nqueues: {{a: {{}}, b: {{}}}}"


def test_a_shovel_key_typo_is_an_error_an_unknown_key_a_warning():
    [typo] = _findings(_vhost(SHOVEL.format(extra="src-queu: a")), code="shovel-unknown-key")
    assert typo.is_error and typo.hint == "did you mean 'src-queue'?" and "'src-queu'" in typo.message
    [other] = _findings(_vhost(SHOVEL.format(extra="src-queue: a, zzz-frobnicate: 1")), code="shovel-unknown-key")
    assert other.severity == "warning"
    assert _findings(_vhost(SHOVEL.format(extra="src-queue: a, src-predeclared: true, ack-mode: on-confirm")),
                     code="shovel-unknown-key") == []


def test_a_user_without_password_is_a_warning():
    [f] = _findings("users: {svc: {tags: [monitoring]}, other: {password: {env: P}}, hashed: {password_hash: ''}}",
                    code="user-without-password")
    assert f.severity == "warning" and "'svc'" in f.message and f.position.line == 1


def test_permissions_for_users_and_exchanges_not_in_the_files_are_warnings():
    text = ("users: {known: {password: {env: P}}}\n" + _vhost(
        "exchanges: {t: {type: topic}}\n"
        "permissions: {known: {configure: '', write: '', read: ''}, ghost: {configure: '', write: '', read: ''}}\n"
        "topic_permissions: {known: {t: {write: '.*', read: '.*'}, amq.topic: {write: '.*', read: '.*'}, "
        "nowhere: {write: '.*', read: '.*'}}}"))
    users = _findings(text, code="permission-unknown-user")
    assert [f.message.split(" in vhost")[0] for f in users] == ["permission of user 'ghost'"]
    [ex] = _findings(text, code="topic-permission-undeclared-exchange")
    assert "'nowhere'" in ex.message and "4.3" in ex.message and ex.severity == "warning"
    assert all(not f.is_error for f in users + [ex])


def test_an_upstream_set_naming_an_upstream_not_in_the_files():
    unmanaged = _findings(_vhost("federation_upstream_sets: {s: [{upstream: nope}]}"), code="undeclared-upstream")
    assert [f.severity for f in unmanaged] == ["warning"] and "must exist on the broker" in unmanaged[0].message
    managed = _findings(_vhost("federation_upstreams: {}\nfederation_upstream_sets: {s: [{upstream: nope}]}"),
                        code="undeclared-upstream")
    assert [f.severity for f in managed] == ["error"]


# ---------------------------------------------------------------- plan: a permission for a user nobody has
def _plan(text: str, users: list[str] | None):
    loaded = load_text(text)
    assert loaded.ok, [f.format() for f in loaded.errors]
    export = {"vhosts": [{"name": "v"}]}
    if users is not None:
        export["users"] = [{"name": u, "password_hash": "", "tags": ["administrator"]} for u in users]
    live = live_from_definitions(export, ["v"])
    return make_plan(loaded.topology, live, PlanOptions(), config=resolve(loaded.config, {"P": "pw"}),
                     connected_user="admin")


def test_a_permission_for_a_user_neither_in_the_files_nor_on_the_broker_is_blocked():
    text = ("users: {made: {password: {env: P}}}\n" + _vhost(
        "permissions: {ghost: {configure: '.*', write: '', read: ''}, made: {configure: '', write: '', read: ''}, "
        "admin: {configure: '', write: '', read: ''}}\n"
        "topic_permissions: {ghost: {amq.topic: {write: '.*', read: '.*'}}}"))
    plan = _plan(text, ["admin"])
    got = {(c.kind, c.name): c.action.value for c in plan.changes if c.kind in ("permission", "topic_permission")}
    assert got == {("permission", "ghost"): "blocked", ("permission", "made"): "create",
                   ("permission", "admin"): "create", ("topic_permission", "ghost@amq.topic"): "blocked"}
    reason = next(c.reason for c in plan.changes if c.name == "ghost")
    assert "User 'ghost' does not exist on the broker" in reason and "vhost_or_user_not_found" in reason
    # users not read (an export without them): nothing to decide, the permission is planned as before
    plan = _plan(text, None)
    assert {c.action.value for c in plan.changes if c.kind == "permission"} == {"create"}
