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
