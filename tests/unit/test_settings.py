"""Broker settings: URL defaults (SPEC section 3) and password redaction."""
from topoform.broker.settings import BrokerSettings, redact


def test_management_url_defaults_to_amqp_host_on_15672():
    s = BrokerSettings(url="amqp://u:p%40ss@rabbit.example:5672/prod")
    assert s.http_base_clean == "http://rabbit.example:15672"
    assert s.http_credentials == ("u", "p@ss")


def test_amqps_uses_https_15671():
    s = BrokerSettings(url="amqps://u:p@rabbit.example/")
    assert s.http_base_clean == "https://rabbit.example:15671"
    assert s.amqp_port == 5671


def test_redact_hides_every_password():
    text = "failed amqp://user:hunter2@h:5672/ and http://a:b@c:15672/api"
    out = redact(text)
    assert "hunter2" not in out and ":b@" not in out
    assert "amqp://user:***@h:5672/" in out
    assert "hunter2" not in repr(BrokerSettings(url="amqp://user:hunter2@h/"))


import pytest  # noqa: E402

from topoform.broker.settings import check_url, forget_secrets, register_secret  # noqa: E402
from topoform.errors import UsageError  # noqa: E402


@pytest.mark.parametrize("text, hidden, kept", [
    # the LAST "@" before the host ends the userinfo: a password may hold "@"
    ("apply amqp://u:p@ss:w/rd%@localhost:5672/ now", ["p@ss", "ss:w", "rd%"], "amqp://u:***@localhost:5672/ now"),
    # a malformed URL ("scheme//") is still recognised
    ("bad http//user:pw12@host", ["pw12"], "http//user:***@host"),
    # a raw space in the password
    ("x amqp://u:pass word@h/ y", ["pass", "word"], "amqp://u:***@h/ y"),
    # no ":" in the userinfo: it may all be a password
    ("amqp://secret-only@h/", ["secret"], "amqp://***@h/"),
    # "x//" inside a password does not start another URL
    ("amqp://u:secretpart//more@h/", ["secretpart", "more"], "amqp://u:***@h/"),
    # two URLs on one line are redacted separately
    ("a amqp://u1:pw-one@h1/ and http://u2:pw-two@h2:15672/api", ["pw-one", "pw-two"],
     "amqp://u1:***@h1/ and http://u2:***@h2:15672/api"),
])
def test_redact_handles_passwords_with_special_characters(text, hidden, kept):
    out = redact(text)
    for piece in hidden:
        assert piece not in out
    assert kept in out


def test_redact_leaves_urls_without_userinfo_and_node_names_alone():
    text = "cannot connect to http://127.0.0.1:15672 (node rabbit@localhost)"
    assert redact(text) == text


def test_registered_secrets_are_hidden_anywhere_raw_or_percent_encoded():
    forget_secrets()
    try:
        register_secret("sé cret/@x")
        out = redact("pika said: sé cret/@x and s%C3%A9%20cret%2F%40x")
        assert "cret" not in out and out.count("***") == 2
    finally:
        forget_secrets()
    assert redact("sé cret/@x") == "sé cret/@x"


@pytest.mark.parametrize("url", [
    "amqp://user:p@ss:w/rd%@localhost:5672/",  # the example: "@", ":", "/" and "%" unencoded
    "amqp://user:p@ss@localhost/",              # two "@"
    "amqp://user:pa/ss@localhost/",             # "/" ends the host part early
    "amqp://user:pa#ss@localhost/",             # "#" starts a fragment
    "amqp://user:pa?ss@localhost/",             # "?" starts a query
    "amqp://user:pa:ss@localhost/",             # a second ":"
    "amqp://user:pa ss@localhost/",             # a space
    "amqp://user:pa%zzss@localhost/",           # a bad % escape
    "amqp://user:pa\"ss@localhost/",
    "amqp://user:pa\\ss@localhost/",
])
def test_unparseable_userinfo_is_one_line_without_any_of_it(url):
    with pytest.raises(UsageError) as info:
        check_url(url, schemes=("amqp", "amqps"), label="--url")
    text = info.value.message + info.value.hint
    assert "--url cannot be parsed" in info.value.message and "%40" in info.value.hint
    password = url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]  # the user ("user") is no secret
    for i in range(len(password) - 3):
        assert password[i:i + 4] not in text


@pytest.mark.parametrize("url, label, expected", [
    ("http://h:15672/", "--url", "must be an amqp or amqps URL, not an http URL"),
    ("amqp://h:5672/", "--management-url", "must be an http or https URL, not an amqp URL"),
    ("amqp//u:pw@h/", "--url", "cannot be parsed as a URL"),
    ("localhost:5672", "--url", "cannot be parsed as a URL"),
    ("amqp://h:56x72/", "--url", "the port must be a number"),
    ("amqp://h:70000/", "--url", "the port 70000 is out of range"),
    ("amqp://[::1/", "--url", "IPv6"),
    ("", "--url", "is empty"),
])
def test_urls_are_checked_up_front(url, label, expected):
    schemes = ("http", "https") if label == "--management-url" else ("amqp", "amqps")
    with pytest.raises(UsageError) as info:
        check_url(url, schemes=schemes, label=label)
    assert expected in info.value.message and info.value.message.startswith(label)


@pytest.mark.parametrize("url", ["amqp://localhost", "amqps://u:p%40ss%3A%2F@h:5671/v%2Fx", "amqp://[::1]:5672/",
                                 "amqp://u:é-ж@h/", "amqp://u:a'b&c=d+e!$()*,;@h/", "amqp:///"])
def test_valid_urls_pass(url):
    check_url(url, schemes=("amqp", "amqps"), label="--url")


def test_overrides_beat_the_userinfo_of_both_urls():
    s = BrokerSettings(url="amqp://a:pa@h/", management_url="http://m:pm@h:15672",
                       username_override="bob", password_override="pw-bob")
    assert (s.username, s.password) == ("bob", "pw-bob")
    assert s.http_credentials == ("bob", "pw-bob")
    only_pw = BrokerSettings(url="amqp://a:pa@h/", management_url="http://m:pm@h:15672", password_override="x")
    assert (only_pw.username, only_pw.password) == ("a", "x") and only_pw.http_credentials == ("m", "x")
    assert "pw-bob" not in repr(s)
