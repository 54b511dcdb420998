"""AMQP wrapper, offline: argument encoding, op building, reply formatting, connection errors."""
from __future__ import annotations

import struct
from decimal import Decimal

import pika
import pika.data
import pytest
from pika import exceptions as pex
from pika.compat import long

from topoform.broker import amqp
from topoform.broker.settings import BrokerSettings
from topoform.errors import BrokerError
from topoform.model import Args

SETTINGS = BrokerSettings(url="amqp://alice:pa55-w0rd-x@broker.example:5672/")


def test_integers_are_sent_as_long_deeply_and_bools_stay_bools():
    out = amqp.encode_args(Args({"ttl": 60000, "flag": True, "t": {"n": 1, "l": [2, "s", {"m": 3}]}}))
    assert type(out["ttl"]) is long
    assert out["flag"] is True
    assert type(out["t"]["n"]) is long and type(out["t"]["l"][0]) is long and type(out["t"]["l"][2]["m"]) is long
    assert out["t"]["l"][1] == "s"


def test_signedint_width_on_request_for_pika_created_bindings():
    out = amqp.encode_args({"n": 1, "big": 2 ** 40}, int_type=int)
    assert type(out["n"]) is int and type(out["big"]) is long


def test_decimal_is_refused_naming_the_argument():
    with pytest.raises(amqp.EncodingError, match=r"arguments\.x-foo"):
        amqp.encode_args({"x-foo": Decimal("1.5")})


def test_float_is_encoded_as_amqp_double():
    pieces = []
    pika.data.encode_table(pieces, {"f": 1.5, "nested": [2.25]})
    raw = b"".join(pieces)
    assert struct.pack(">cd", b"d", 1.5) in raw and struct.pack(">cd", b"d", 2.25) in raw
    # pika alone would decode doubles as truncated integers
    assert pika.data.decode_table(raw, 0)[0] == {"f": 1.5, "nested": [2.25]}


def test_has_integers_ignores_bools():
    assert not amqp.has_integers({"a": True, "b": "1"})
    assert amqp.has_integers({"a": [{"b": 3}]})


def test_exchange_destination_binds_use_exchange_bind():
    op = amqp.op_bind("src", "dst", "exchange", "k", {"a": 1}, vhost="v")
    assert op.method == "exchange_bind"
    assert op.kwargs["source"] == "src" and op.kwargs["destination"] == "dst"
    op = amqp.op_bind("src", "q", "queue", "k", {}, unbind=True)
    assert op.method == "queue_unbind" and op.kwargs == {"queue": "q", "exchange": "src", "routing_key": "k",
                                                         "arguments": {}}


def test_queue_declares_are_never_exclusive():
    op = amqp.op_declare_queue("q", durable=True, auto_delete=False, arguments={})
    assert op.kwargs["exclusive"] is False


def test_reply_is_quoted_as_the_broker_prints_it():
    assert amqp.format_reply(406, "PRECONDITION_FAILED - inequivalent arg 'durable'") == \
        "406 PRECONDITION_FAILED - inequivalent arg 'durable'"
    assert amqp.format_reply(404, "no queue 'q'") == "404 NOT_FOUND - no queue 'q'"
    err = amqp.AmqpError("queue 'q' in vhost 'v'", 403, "ACCESS_REFUSED - access to queue 'q' refused")
    assert str(err) == "queue 'q' in vhost 'v': 403 ACCESS_REFUSED - access to queue 'q' refused"


@pytest.mark.parametrize("raised, code", [
    (pex.ProbableAuthenticationError("ConnectionClosedByBroker: (403) ACCESS_REFUSED"), "auth-failed"),
    (pex.ProbableAccessDeniedError("vhost"), "access-refused"),
    (pex.AMQPConnectionError(ConnectionRefusedError(111, "Connection refused")), "unreachable"),
])
def test_connection_failures_are_one_line_without_the_password(monkeypatch, raised, code):
    def fail(params):
        raise raised

    monkeypatch.setattr(pika, "BlockingConnection", fail)
    with pytest.raises(BrokerError) as info:
        amqp.connect(SETTINGS, "v")
    assert info.value.code == code
    text = str(info.value) + info.value.hint
    assert "pa55-w0rd-x" not in text and "\n" not in text
    assert "broker.example:5672" in text


# pika's messages for the connection limits, as 3.10.8, 4.0.5 and 4.3.6 all send them (measured)
VHOST_LIMIT = ("Client was disconnected at a connection stage indicating a probable denial of access to the "
               "specified virtual host: ('ConnectionClosedByBroker: (530) \"NOT_ALLOWED - access to vhost \'v\' "
               "refused for user \'alice\': connection limit (3) is reached\"',)")
USER_LIMIT = ("Client was disconnected at a connection stage indicating a probable denial of access to the "
              "specified virtual host: ('ConnectionClosedByBroker: (530) \"NOT_ALLOWED - connection refused for "
              "user \'alice\': user connection limit (0) is reached\"',)")


@pytest.mark.parametrize("text, whose, limit, setter", [
    (VHOST_LIMIT, "vhost 'v'", "3", "set_vhost_limits -p 'v'"),
    (USER_LIMIT, "user 'alice'", "0", "set_user_limits 'alice'"),
])
def test_a_connection_limit_is_named_as_such_not_as_missing_permissions(monkeypatch, text, whose, limit, setter):
    def fail(params):
        raise pex.ProbableAccessDeniedError(text)

    monkeypatch.setattr(pika, "BlockingConnection", fail)
    with pytest.raises(BrokerError) as info:
        amqp.connect(SETTINGS, "v")
    err = info.value
    assert err.code == "connection-limit"
    assert f"the connection limit of {whose} ({limit}) is reached" in err.message
    assert "may not access" not in err.message and "set_permissions" not in err.hint
    assert setter in err.hint and "--parallel" in err.hint
    assert "\n" not in err.message and "pa55-w0rd-x" not in err.message + err.hint


def test_the_broker_reply_is_quoted_whole_even_when_it_holds_quotes():
    assert amqp._reply_in(VHOST_LIMIT) == (  # noqa: SLF001
        530, "NOT_ALLOWED - access to vhost 'v' refused for user 'alice': connection limit (3) is reached")
    assert amqp._reply_in("ConnectionClosedByBroker: (530) 'NOT_ALLOWED - vhost x not found'") == (  # noqa: SLF001
        530, "NOT_ALLOWED - vhost x not found")
    assert amqp._reply_in("(403) ACCESS_REFUSED - Login was refused") == (  # noqa: SLF001
        403, "ACCESS_REFUSED - Login was refused")
    assert amqp._reply_in("no reply here") == (None, "")  # noqa: SLF001


def test_connection_parameters_name_the_connection_and_use_tls_for_amqps():
    params = amqp.connection_parameters(SETTINGS, "v", name="topoform apply pid=1")
    assert params.client_properties["connection_name"] == "topoform apply pid=1"
    assert params.virtual_host == "v" and params.ssl_options is None
    tls = amqp.connection_parameters(BrokerSettings(url="amqps://u:p@h/"), "/", name="n")
    assert tls.ssl_options is not None and tls.port == 5671


def test_scrub_removes_a_literal_password():
    assert "pa55-w0rd-x" not in amqp.scrub("failed with pa55-w0rd-x inside", SETTINGS)


def _session_with_lanes(opened: int, unopened: int):
    session = amqp.Session(SETTINGS, "v", channels=32)
    session._result = amqp.BatchResult()  # noqa: SLF001 - as run() sets it up
    session._inflight_lost = []  # noqa: SLF001
    lanes = []
    for i in range(opened + unopened):
        lane = amqp._Lane()  # noqa: SLF001
        lane.opened = i < opened  # the connection's close has closed them all (open False)
        lanes.append(lane)
    session._lanes = lanes  # noqa: SLF001
    return session


# 3.10.8 and 4.0.5 print the limit in brackets, 4.3.6 without; 4.0.5 names its node instead of the user
@pytest.mark.parametrize("text", [
    "NOT_ALLOWED - number of channels opened for user 'alice' has reached the maximum allowed user limit of (4)",
    "NOT_ALLOWED - number of channels opened for user 'rabbit40@localhost' has reached the maximum allowed user "
    "limit of (4)",
    "NOT_ALLOWED - number of channels opened for user 'alice' has reached the maximum allowed user limit of 4",
])
def test_a_user_channel_limit_narrows_the_session_to_the_channels_that_opened(text):
    session = _session_with_lanes(opened=3, unopened=5)
    with pytest.raises(amqp.ConnectionLost) as info:  # retried by the executor, with 3 channels
        session._connection_failed(pex.ConnectionClosedByBroker(530, text))  # noqa: SLF001
    assert session.width == 3
    assert "3 channel(s) from now on" in info.value.message
    session = _session_with_lanes(opened=0, unopened=4)
    with pytest.raises(BrokerError) as info:
        session._connection_failed(pex.ConnectionClosedByBroker(530, text))  # noqa: SLF001
    err = info.value
    assert err.code == "channel-limit" and not isinstance(err, amqp.ConnectionLost)
    assert "the channel limit of user 'alice' (4) is reached" in err.message and "max-channels" in err.hint


def test_more_channels_opened_than_the_limit_allows_narrow_to_the_limit_beside_the_lock():
    # 4.x counts a user's channels with some delay: 9 had opened when the limit of 5 closed the connection
    session = _session_with_lanes(opened=9, unopened=20)
    text = "NOT_ALLOWED - number of channels opened for user 'alice' has reached the maximum allowed user limit of 5"
    with pytest.raises(amqp.ConnectionLost) as info:
        session._connection_failed(pex.ConnectionClosedByBroker(530, text))  # noqa: SLF001
    assert session.width == 4 and "4 channel(s) from now on" in info.value.message


def test_other_connection_closes_do_not_narrow_the_session():
    session = _session_with_lanes(opened=3, unopened=5)
    with pytest.raises(amqp.ConnectionLost):
        session._connection_failed(pex.ConnectionClosedByBroker(320, "CONNECTION_FORCED - broker forced"))  # noqa: SLF001
    assert session.width == 32


def test_limit_code_tells_a_limit_from_other_refusals():
    assert amqp.limit_code(530, "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum "
                                "allowed user limit of (4)") == "channel-limit"
    assert amqp.limit_code(530, "NOT_ALLOWED - access to vhost 'v' refused for user 'u': connection limit (3) "
                                "is reached") == "connection-limit"
    assert amqp.limit_code(530, "NOT_ALLOWED - connection refused for user 'u': user connection limit (0) "
                                "is reached") == "connection-limit"
    assert amqp.limit_code(530, "NOT_ALLOWED - vhost v not found") is None
    assert amqp.limit_code(406, "PRECONDITION_FAILED - connection limit (3) is reached") is None


@pytest.mark.parametrize("text, expected", [
    ("NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of (4)",
     amqp.ReachedLimit("channel-limit", True, "4")),
    ("NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of 12",
     amqp.ReachedLimit("channel-limit", True, "12")),
    ("NOT_ALLOWED - access to vhost 'it''s' refused for user 'u': connection limit (3) is reached",
     amqp.ReachedLimit("connection-limit", False, "3")),
    ("NOT_ALLOWED - connection refused for user 'u': user connection limit (0) is reached",
     amqp.ReachedLimit("connection-limit", True, "0")),
    ("NOT_ALLOWED - access to vhost 'v' refused for user 'u'", None),
])
def test_reached_limit_reads_whose_limit_and_its_number(text, expected):
    assert amqp.reached_limit(530, text) == expected
    assert amqp.reached_limit(406, text) is None


@pytest.mark.parametrize("code, text, expected", [
    (403, "ACCESS_REFUSED - access to exchange 'secret.x' in vhost 'v' refused for user 'ci'",
     "check the permissions of user 'ci' in vhost 'v' (rabbitmqctl list_user_permissions 'ci')"),
    (404, "NOT_FOUND - no exchange 'gone' in vhost 'v'", "deleted since the plan was made?"),
    (405, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'q' in vhost 'v'", "exclusive queue"),
    (406, "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost 'v': received the value "
          "'5' of type 'signedint' but current is none", "--migrate"),
    (530, "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of 3",
     "raise the user's max-channels (rabbitmqctl set_user_limits)"),
])
def test_a_refusal_carries_a_hint_from_the_brokers_reply(code, text, expected):
    err = amqp.AmqpError("exchange 'x' in vhost 'v'", code, text)
    assert expected in err.hint
    assert amqp.AmqpError("queue 'q'", code, text, hint="given").hint == "given"


def test_a_refusal_without_known_advice_has_no_hint():
    assert amqp.AmqpError("queue 'q'", 406, "PRECONDITION_FAILED - queue 'q' in vhost 'v' not empty").hint == ""
    assert amqp.AmqpError("queue 'q'", 541, "INTERNAL_ERROR").hint == ""


@pytest.mark.parametrize("limit, user, vhost, expected", [
    (amqp.ReachedLimit("channel-limit", True, "3"), "ci", None,
     "raise the user's max-channels (rabbitmqctl set_user_limits 'ci' '{\"max-channels\": N}') "
     "or close other channels of user 'ci'"),
    (amqp.ReachedLimit("connection-limit", False, "2"), "ci", "orders",
     "raise the vhost's max-connections (rabbitmqctl set_vhost_limits -p 'orders' '{\"max-connections\": N}') "
     "or close other connections of vhost 'orders'"),
    (amqp.ReachedLimit("connection-limit", True, "0"), "alice", "v",
     "raise the user's max-connections (rabbitmqctl set_user_limits 'alice' '{\"max-connections\": N}') "
     "or close other connections of user 'alice'"),
    (amqp.ReachedLimit("channel-limit", True, "3"), None, None,
     "raise the user's max-channels (rabbitmqctl set_user_limits) or close other channels of the user"),
])
def test_every_limit_refusal_is_worded_one_way(limit, user, vhost, expected):
    assert amqp.limit_hint(limit, user, vhost) == expected


def test_the_three_places_a_limit_is_met_give_the_same_advice(monkeypatch):
    """Connecting, a refused operation, and a channel the executor could not open all use limit_hint."""
    def fail(params):
        raise pex.ProbableAccessDeniedError(USER_LIMIT)

    monkeypatch.setattr(pika, "BlockingConnection", fail)
    with pytest.raises(BrokerError) as info:
        amqp.connect(SETTINGS, "v")
    user_limit = amqp.ReachedLimit("connection-limit", True, "0")
    assert info.value.hint.endswith(amqp.limit_hint(user_limit, SETTINGS.username, "v"))
    refused = amqp.AmqpError("queue 'q'", 530, "NOT_ALLOWED - number of channels opened for user 'u' has reached "
                                               "the maximum allowed user limit of 3")
    assert refused.hint == amqp.limit_hint(amqp.ReachedLimit("channel-limit", True, "3"))
    session = _session_with_lanes(opened=0, unopened=2)
    with pytest.raises(BrokerError) as info:
        session._connection_failed(pex.ConnectionClosedByBroker(530, refused.reply_text))  # noqa: SLF001
    assert info.value.hint == amqp.limit_hint(amqp.ReachedLimit("channel-limit", True, "3"), session.settings.username)
    assert session.settings.username in info.value.hint
