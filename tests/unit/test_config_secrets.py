"""Password hashing, hash checks and secret references (topoform/config/secrets.py)."""
from __future__ import annotations

import base64
import hashlib

import pytest

from topoform.config.secrets import (SHA256, SHA512, Ref, check_password, hash_password, has_credentials,
                                     parse_ref, redact_uri, resolve)
from topoform.errors import InputError

# a hash the 3.10.8 broker made for the password "guest" (GET /api/users, bootstrap user)
BROKER_GUEST_HASH = "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn"


def test_a_broker_made_hash_checks_against_its_password():
    assert check_password("guest", BROKER_GUEST_HASH, SHA256)
    assert not check_password("guest2", BROKER_GUEST_HASH, SHA256)


@pytest.mark.parametrize("algorithm, fn", [(SHA256, hashlib.sha256), (SHA512, hashlib.sha512)])
def test_hash_is_salt_plus_digest_of_salt_and_password(algorithm, fn):
    h = hash_password("pä@ss", algorithm, salt=b"\x01\x02\x03\x04")
    raw = base64.b64decode(h)
    assert raw[:4] == b"\x01\x02\x03\x04"
    assert raw[4:] == fn(b"\x01\x02\x03\x04" + "pä@ss".encode()).digest()
    assert check_password("pä@ss", h, algorithm) and not check_password("pä@ss", h, SHA256 if algorithm == SHA512
                                                                           else SHA512)


def test_fresh_salt_each_time_and_garbage_never_matches():
    assert hash_password("x") != hash_password("x")
    for bad in ("", None, "not base64!", base64.b64encode(b"short").decode()):
        assert not check_password("x", bad)


def test_references_resolve_and_name_what_is_missing(tmp_path):
    assert parse_ref({"env": "A"}) == Ref("env", "A")
    assert parse_ref({"file": "pw"}, str(tmp_path)) == Ref("file", str(tmp_path / "pw"))
    assert parse_ref("plain") is None and parse_ref({"env": "A", "file": "b"}) is None
    assert resolve(Ref("env", "A"), {"A": "s3cr3t-value"}) == "s3cr3t-value"
    with pytest.raises(InputError, match="environment variable NOPE is not set"):
        resolve(Ref("env", "NOPE"), {})
    (tmp_path / "pw").write_text("from-file\n")
    assert resolve(Ref("file", str(tmp_path / "pw")), {}) == "from-file"
    with pytest.raises(InputError, match="cannot read secret file .*missing"):
        resolve(Ref("file", str(tmp_path / "missing")), {})


def test_uri_credentials_are_found_and_redacted():
    assert has_credentials("amqp://u:p@h/v") and has_credentials(["amqp://", "amqp://u:p@h"])
    assert not has_credentials("amqp://") and not has_credentials("amqp://u@h")
    assert redact_uri("amqp://u:s3cret@host:5672/v") == "amqp://u:***@host:5672/v"
    assert redact_uri(["amqp://h", "amqps://a:b@c"]) == ["amqp://h", "amqps://a:***@c"]


def test_a_hash_the_broker_would_refuse_or_that_no_password_matches_is_named_without_its_value():
    from topoform.config.secrets import MD5, hash_problem

    good = hash_password("x", SHA512)
    assert hash_problem(good, SHA512) is None and hash_problem(hash_password("x"), None) is None
    assert hash_problem(hash_password("x", MD5), MD5) is None
    assert hash_problem("", None) is None  # no password: other means of authentication only
    for bad in ("abc", good[:-4] + "!!==", "zz top"):
        assert "not base64" in hash_problem(bad, SHA512) and bad not in hash_problem(bad, SHA512)
    assert "68" in hash_problem(hash_password("x"), SHA512) and "hashing_algorithm" in hash_problem(
        hash_password("x"), SHA512)


def test_a_literal_hash_in_the_files_is_hidden_in_any_output():
    from topoform.broker.settings import redact
    from topoform.load import load_text

    literal = hash_password("pw-for-the-redaction-test")
    loaded = load_text(f"users:\n  u: {{password_hash: {literal!r}}}\n")
    assert loaded.ok, [f.message for f in loaded.findings]
    assert literal not in redact(f"PUT /api/users/u answered 400: ['not_base64', '{literal}']")


def test_validate_never_quotes_a_plain_text_password_or_uri_it_refuses():
    from topoform.load import load_text

    loaded = load_text("users:\n  u: {password: PlainTextPw1, tags: admin}\nvhosts:\n  v:\n    shovels:\n"
                       "      s: {src-uri: 'amqp://x:UriSecret9@h/v', src-queue: q, dest-uri: 7, dest-queue: q}\n"
                       "    federation_upstreams:\n      up: {uri: 42}\n")
    messages = [f.message for f in loaded.findings]
    text = "\n".join(messages)
    assert "PlainTextPw1" not in text and "UriSecret9" not in text, text
    codes = {f.code for f in loaded.findings}
    assert "plain-text-secret" in codes, messages
    assert any(m.startswith("user 'u': the password must come from") for m in messages), messages
    assert any("'tags' in user 'u'" in m for m in messages), messages
