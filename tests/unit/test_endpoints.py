"""Several endpoints (a cluster): --url / --management-url lists, failover order, redaction."""
from __future__ import annotations

import socket

import pytest
import requests

from helpers import run_cli
from topoform.broker import amqp
from topoform.broker.http import ManagementClient
from topoform.broker.settings import BrokerSettings, redact, split_urls
from topoform.errors import BrokerError, UsageError

A = ("amqp", "amqps")
PW = "s3cret-Pw-xyz"


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("values, expected", [
    ("amqp://h1:5672/", ("amqp://h1:5672/",)),
    ("amqp://h1:5672/,amqp://h2:5672/", ("amqp://h1:5672/", "amqp://h2:5672/")),
    ("amqp://h1/ , amqps://h2/", ("amqp://h1/", "amqps://h2/")),
    (["amqp://h1/", "amqp://h2/,amqp://h3/"], ("amqp://h1/", "amqp://h2/", "amqp://h3/")),
    (["amqp://h1/", "amqp://h1/"], ("amqp://h1/",)),  # duplicates dropped
    # a comma in a password splits nothing: only ",scheme://" starts a new entry
    ("amqp://u:pa,ss@h1/,amqp://u:pa,ss@h2/", ("amqp://u:pa,ss@h1/", "amqp://u:pa,ss@h2/")),
])
def test_lists_split_on_commas_before_a_scheme_and_repeated_flags(values, expected):
    assert split_urls(values, schemes=A, label="--url") == expected


@pytest.mark.parametrize("value, needle", [
    ("amqp://h1/,", "stray comma"),
    ("amqp://h1/,,amqp://h2/", "stray comma"),
    ("amqp://h1,h2:5672/", "a comma in the host"),
    ("   ", "is empty"),
    ("amqp://h1/,http://h2:15672", "(entry 2) must be an amqp or amqps URL"),
    ("amqp://u:p@ss@h1/,amqp://h2/", "(entry 1) cannot be parsed"),
])
def test_bad_lists_are_one_line_errors_that_quote_no_url(value, needle):
    with pytest.raises(UsageError) as err:
        split_urls(value, schemes=A, label="--url")
    assert needle in err.value.message
    assert "\n" not in err.value.message and "h1" not in err.value.message and "p@ss" not in err.value.message


def test_settings_pair_the_lists_and_move_both_sides_together():
    s = BrokerSettings(urls=(f"amqp://u:{PW}@n1:5681/", f"amqp://u:{PW}@n2:5682/", f"amqp://u:{PW}@n3:5683/"))
    assert s.url.endswith("@n1:5681/")
    assert [b.split("@")[-1] for b in s.http_bases] == ["n1:15672", "n2:15672", "n3:15672"]
    assert s.amqp_order() == [0, 1, 2] and s.http_order() == [0, 1, 2]
    s.use_amqp(2)
    assert s.amqp_order() == [2, 0, 1] and s.http_order() == [2, 0, 1]
    assert s.current().amqp_port == 5683 and s.current().http_base_clean == "http://n3:15672"
    assert PW not in repr(s) and PW not in s.describe() and "one of 3 endpoints" in s.describe()


def test_a_single_management_url_is_a_load_balancer_for_every_amqp_endpoint():
    s = BrokerSettings(urls=("amqp://n1/", "amqp://n2/"), management_url="http://lb:15672")
    assert s.http_bases == ("http://lb:15672",)
    s.use_amqp(1)
    assert s.http_order() == [0] and s.current().http_base_clean == "http://lb:15672"


def test_mismatched_list_lengths_are_refused():
    with pytest.raises(UsageError, match="one management URL per AMQP URL"):
        BrokerSettings(urls=("amqp://n1/", "amqp://n2/", "amqp://n3/"), management_urls=("http://n1:1", "http://n2:2"))


def test_replacing_url_with_another_gives_that_one_endpoint():
    import dataclasses

    s = BrokerSettings(urls=("amqp://n1/", "amqp://n2/"))
    t = dataclasses.replace(s, url="amqp://n2/")
    assert t.urls == s.urls and t.amqp_order() == [1, 0]
    u = dataclasses.replace(s, url="amqp://elsewhere/")
    assert u.urls == ("amqp://elsewhere/",)


def test_redaction_covers_every_url_of_a_list():
    text = f"amqp://u:{PW}@n1:5681/,amqp://v:{PW}x@n2:5682/, http://w:other-pw-1@n3:15683"
    out = redact(text)
    assert PW not in out and "other-pw-1" not in out
    assert out.count("***") == 3 and "n1:5681" in out and "n3:15683" in out


class _FakeSession(requests.Session):
    """Refuses connections to the hosts in ``down``; answers 200 {"node": host, "rabbitmq_version": ...} elsewhere."""

    def __init__(self, down):
        super().__init__()
        self.down, self.calls = set(down), []

    def request(self, method, url, **kw):
        host = url.split("//", 1)[1].split("/", 1)[0]
        self.calls.append((method, host, kw.get("auth")))
        if host in self.down:
            raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")
        r = requests.Response()
        r.status_code, r._content, r.url = 200, ('{"node": "%s", "rabbitmq_version": "4.3.6"}' % host).encode(), url
        return r


def test_http_fails_over_to_the_next_endpoint_and_stays_there():
    s = BrokerSettings(urls=(f"amqp://u:{PW}@n1/", f"amqp://u:{PW}@n2/", f"amqp://u:{PW}@n3/"))
    session = _FakeSession(down={"n1:15672"})
    client = ManagementClient(s, session=session)
    assert client.get("/api/overview")["node"] == "n2:15672"
    assert client.base == "http://n2:15672" and s.amqp_order()[0] == 1  # the AMQP side follows
    session.down.add("n2:15672")
    assert client.get("/api/overview")["node"] == "n3:15672"
    session.down.clear()  # n1 back: reads still follow the writes on n3
    assert client.get("/api/overview")["node"] == "n3:15672"
    assert all(auth == (b"u", PW.encode()) for _m, _h, auth in session.calls)


def test_http_with_no_endpoint_answering_names_them_all():
    s = BrokerSettings(urls=("amqp://n1/", "amqp://n2/"))
    client = ManagementClient(s, session=_FakeSession(down={"n1:15672", "n2:15672"}))
    with pytest.raises(BrokerError) as err:
        client.get("/api/overview")
    assert err.value.code == "broker-unreachable"
    assert "none of the 2 management endpoints answered (http://n1:15672, http://n2:15672)" in err.value.message


def test_amqp_tries_each_endpoint_then_names_them_all():
    p1, p2 = _closed_port(), _closed_port()
    s = BrokerSettings(urls=(f"amqp://u:{PW}@127.0.0.1:{p1}/", f"amqp://u:{PW}@127.0.0.1:{p2}/"), timeout=3)
    with pytest.raises(BrokerError) as err:
        amqp.connect(s, "/")
    assert err.value.code == "unreachable"
    assert f"127.0.0.1:{p1}" in err.value.message and f"127.0.0.1:{p2}" in err.value.message
    assert PW not in err.value.message


def test_cli_takes_repeated_flags_and_comma_lists_and_rejects_bad_ones(tmp_path):
    (tmp_path / "t.yaml").write_text("version: 1\nvhosts:\n  v: {}\n")
    p1, p2 = _closed_port(), _closed_port()
    r = run_cli(["plan", "-f", tmp_path / "t.yaml", "--url", f"amqp://u:{PW}@127.0.0.1:{p1}/",
                 "--url", f"amqp://u:{PW}@127.0.0.1:{p2}/", "--management-url",
                 f"http://u:{PW}@127.0.0.1:{p1},http://u:{PW}@127.0.0.1:{p2}", "--timeout", "3"], secrets=(PW,))
    assert r.code != 0 and "none of the 2 management endpoints answered" in r.err and "Traceback" not in r.err
    assert f"127.0.0.1:{p1}" in r.err and f"127.0.0.1:{p2}" in r.err
    r = run_cli(["plan", "-f", tmp_path / "t.yaml"], environ={"TOPOFORM_URL": f"amqp://u:{PW}@127.0.0.1:{p1}/,"},
                secrets=(PW,))
    assert r.code != 0 and "TOPOFORM_URL has an empty entry" in r.err and "Traceback" not in r.err
