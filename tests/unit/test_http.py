"""ManagementClient: quoting, one session, TLS verification, and one-line redacted errors.

A local HTTP(S) server stands in for the broker, answering with the bodies RabbitMQ
3.10.8 sends (401 ``Login failed``, ``Not management user``, ``Not administrator user``).
"""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from topoform.broker.http import ManagementClient
from topoform.broker.settings import BrokerSettings
from topoform.errors import BrokerError

SECRET = "s3cr3t-pw"
OVERVIEW = {"rabbitmq_version": "4.3.6", "management_version": "4.3.6"}


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    seen: list = []

    def do_GET(self):  # noqa: N802
        self.seen.append((self.path, self.headers.get("Authorization")))
        status, body = self.routes.get(self.path.split("?")[0], (404, {"error": "Object Not Found", "reason": "Not Found"}))
        if status == "sequence":  # the next answer of a list, the last one repeated
            status, body = body.pop(0) if len(body) > 1 else body[0]
        if status == "hang":
            threading.Event().wait(1.5)
            return
        if status == "drop":  # close the connection without an answer, as a broker's idle timeout does
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.do_GET()

    do_PUT = do_POST

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"routes": {}, "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield srv, handler
    srv.shutdown()
    srv.server_close()


def _client(port, scheme="http", **kw) -> ManagementClient:
    return ManagementClient(BrokerSettings(management_url=f"{scheme}://admin:{SECRET}@127.0.0.1:{port}", **kw))


def _error(fn) -> BrokerError:
    with pytest.raises(BrokerError) as info:
        fn()
    err = info.value
    text = f"{err.message} {err.hint}"
    assert SECRET not in text and "\n" not in err.message
    return err


def test_get_returns_json_and_sends_credentials_once_per_session(server):
    srv, h = server
    h.routes["/api/overview"] = (200, {"rabbitmq_version": "3.10.8"})
    client = _client(srv.server_port)
    assert client.overview() == {"rabbitmq_version": "3.10.8"}
    assert client.get("/api/overview")["rabbitmq_version"] == "3.10.8"
    assert h.seen[0][1].startswith("Basic ")
    assert isinstance(client.session, requests.Session)


def test_the_version_is_read_without_the_overview_s_object_totals(server):
    """A plain GET /api/overview counts every object and rate first (12-48 ms on 4.3.6 at
    1,000 queues, against 4-8 ms): the version is what a plan waits for first."""
    srv, h = server
    h.routes["/api/overview"] = (200, {"rabbitmq_version": "4.3.6", "management_version": "4.3.6"})
    _client(srv.server_port).overview()
    path = h.seen[-1][0]
    assert path.startswith("/api/overview?") and "disable_stats=true" in path
    assert "columns=rabbitmq_version%2Cmanagement_version" in path


def test_vhost_names_are_quoted_as_one_segment(server):
    srv, h = server
    h.routes["/api/definitions/%2F"] = (200, {"queues": []})
    h.routes["/api/definitions/a%2Fb%20c"] = (200, {"queues": [1]})
    client = _client(srv.server_port)
    assert client.definitions("/") == {"queues": []}
    assert client.definitions("a/b c") == {"queues": [1]}


def test_queue_stats_asks_only_for_the_needed_columns(server):
    srv, h = server
    h.routes["/api/queues/v"] = (200, [])
    _client(srv.server_port).queue_stats("v")
    path = h.seen[-1][0]
    assert "columns=name%2Cexclusive%2Cmessages%2Cconsumers" in path


def test_vhost_names(server):
    srv, h = server
    h.routes["/api/vhosts"] = (200, [{"name": "b"}, {"name": "/"}])
    assert _client(srv.server_port).vhost_names() == ["/", "b"]


def test_wrong_password_is_one_line(server):
    srv, h = server
    h.routes["/api/overview"] = (401, {"error": "not_authorized", "reason": "Login failed"})
    err = _error(_client(srv.server_port).overview)
    assert err.code == "broker-auth" and "refused the credentials of user 'admin'" in err.message


def test_user_without_management_tag(server):
    srv, h = server
    h.routes["/api/overview"] = (401, {"error": "not_authorised", "reason": "Not management user"})
    err = _error(_client(srv.server_port).overview)
    assert err.code == "broker-permission" and "management' tag" in err.message


def test_non_administrator_gets_the_definitions_rebuilt_from_the_listings(server):
    srv, h = server
    not_admin = (401, {"error": "not_authorised", "reason": "Not administrator user"})
    for v in ("v", "w"):
        h.routes[f"/api/definitions/{v}"] = not_admin
        h.routes[f"/api/exchanges/{v}"] = (200, [
            {"name": "", "type": "direct"}, {"name": "amq.topic", "type": "topic"},
            {"name": "x", "type": "topic", "durable": True, "auto_delete": False, "internal": False, "arguments": {}}])
        h.routes[f"/api/queues/{v}"] = (200, [
            {"name": "q", "durable": True, "auto_delete": False, "exclusive": False, "arguments": {"x-message-ttl": 5}},
            {"name": "mine", "durable": False, "auto_delete": False, "exclusive": True, "arguments": {}}])
        h.routes[f"/api/bindings/{v}"] = (200, [
            {"source": "", "destination": "q", "destination_type": "queue", "routing_key": "q", "arguments": {}},
            {"source": "x", "destination": "q", "destination_type": "queue", "routing_key": "a.#", "arguments": {}},
            {"source": "x", "destination": "mine", "destination_type": "queue", "routing_key": "b", "arguments": {}}])
        h.routes[f"/api/policies/{v}"] = (200, [{"name": "p", "pattern": "^q$", "apply-to": "queues",
                                                  "definition": {"max-length": 1}, "priority": 0}])
    client = _client(srv.server_port)
    defs = client.definitions("v")
    # what an export leaves out is left out: built-ins, exclusive queues, their and implicit bindings
    assert [x["name"] for x in defs["exchanges"]] == ["x"]
    assert defs["queues"] == [{"name": "q", "durable": True, "auto_delete": False, "arguments": {"x-message-ttl": 5}}]
    assert [(b["source"], b["destination"]) for b in defs["bindings"]] == [("x", "q")]
    assert [p["name"] for p in defs["policies"]] == ["p"]
    client.definitions("w")
    asked = [path.split("?")[0] for path, _ in h.seen]
    assert asked.count("/api/definitions/v") == 1 and "/api/definitions/w" not in asked  # refused once is enough


def test_not_found_and_other_statuses_quote_the_broker_reason(server):
    srv, h = server
    h.routes["/api/definitions/x"] = (400, {"error": "bad_request", "reason": "vhost_not_found"})
    err = _error(lambda: _client(srv.server_port).definitions("x"))
    assert "400" in err.message and "vhost_not_found" in err.message
    err = _error(lambda: _client(srv.server_port).get("/api/nothing"))
    assert err.code == "broker-not-found"


def test_non_json_answer(server):
    srv, h = server
    h.routes["/api/overview"] = (200, b"<html>hello</html>")
    err = _error(_client(srv.server_port).overview)
    assert "JSON" in err.message


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused():
    err = _error(_client(_free_port()).overview)
    assert err.code == "broker-unreachable" and "connection refused" in err.message
    assert "http://127.0.0.1:" in err.message


def test_timeout(server):
    srv, h = server
    h.routes["/api/overview"] = ("hang", None)
    err = _error(lambda: _client(srv.server_port, timeout=0.3).overview())
    assert err.code == "broker-timeout" and "0.3s" in err.message and "--timeout" in err.hint


def test_https_to_a_plain_http_port_is_a_tls_error(server):
    srv, h = server
    err = _error(_client(srv.server_port, scheme="https").overview)
    assert err.code == "broker-tls"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return d


@pytest.fixture
def tls_server(tls_files):
    handler = type("H", (_Handler,), {"routes": {"/api/overview": (200, OVERVIEW)}, "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tls_files / "cert.pem"), str(tls_files / "key.pem"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_https_verifies_certificates_by_default(tls_server):
    err = _error(_client(tls_server.server_port, scheme="https").overview)
    assert err.code == "broker-tls" and "certificate verification failed" in err.message
    assert "--ca-cert" in err.hint


def test_ca_cert_makes_a_self_signed_broker_trusted(tls_server, tls_files):
    client = _client(tls_server.server_port, scheme="https", ca_cert=str(tls_files / "cert.pem"))
    assert client.overview() == OVERVIEW


def test_unreadable_ca_cert(tls_server, tmp_path):
    err = _error(_client(tls_server.server_port, scheme="https", ca_cert=str(tmp_path / "missing.pem")).overview)
    assert err.code == "broker-tls" and "missing.pem" in err.message


@pytest.mark.parametrize("password", ["pé-ascii-latin1", "pж-cyrillic", "p😀-emoji", "a@b:c/d%e#f?g&h=i+j k'\"\\"])
def test_basic_auth_sends_the_password_as_utf8(server, password):
    # requests encodes a str password as Latin-1: "é" reached the broker garbled (401), "ж" raised
    import base64

    srv, h = server
    h.routes["/api/overview"] = (200, OVERVIEW)
    client = ManagementClient(BrokerSettings(management_url=f"http://127.0.0.1:{srv.server_port}",
                                             username_override="üser", password_override=password))
    assert client.overview() == OVERVIEW
    sent = base64.b64decode(h.seen[0][1].split(" ", 1)[1])
    assert sent == f"üser:{password}".encode("utf-8")


CRASH = {"error": "Internal Server Error", "reason": "badarg"}


def test_a_get_answered_500_is_asked_again_and_a_lasting_one_is_a_one_line_error(server, monkeypatch):
    """The API answers 500 while one of its workers crashes on a passing state (4.3.6, the
    statistics of a quorum queue declared right after a classic queue of the same name)."""
    from topoform.broker import http as http_mod

    pauses = []
    monkeypatch.setattr(http_mod.time, "sleep", pauses.append)
    srv, h = server
    h.routes["/api/queues/v"] = ("sequence", [(500, CRASH), (503, CRASH), (200, [{"name": "q"}])])
    client = _client(srv.server_port)
    assert client.get("/api/queues/v") == [{"name": "q"}]
    assert pauses == [0.25, 0.5] and len(h.seen) == 3
    h.routes["/api/queues/w"] = (500, CRASH)
    err = _error(lambda: client.get("/api/queues/w"))
    assert "500" in err.message and "/api/queues/w" in err.message
    assert len(pauses) == 2 + len(client.GET_RETRY_PAUSES)
    h.routes["/api/queues/x"] = (404, {"error": "Object Not Found", "reason": "Not Found"})
    before = len(h.seen)
    _error(lambda: client.get("/api/queues/x"))
    assert len(h.seen) == before + 1  # other statuses are answers, not retried


def test_a_request_the_server_drops_unanswered_is_sent_once_more_when_idempotent(server):
    srv, h = server
    h.routes["/api/overview"] = ("sequence", [("drop", None), (200, {"rabbitmq_version": "4.3.6"})])
    assert _client(srv.server_port).overview()["rabbitmq_version"] == "4.3.6"
    assert [p.split("?")[0] for p, _ in h.seen] == ["/api/overview", "/api/overview"]

    h.routes["/api/vhosts/v"] = ("sequence", [("drop", None), (201, {})])
    client = _client(srv.server_port)
    assert client.request("PUT", "/api/vhosts/v", {"description": "x"}).status_code == 201


def test_a_post_the_server_drops_is_not_resent_and_a_lasting_drop_is_one_line(server):
    srv, h = server
    h.routes["/api/exchanges/v/e/publish"] = ("sequence", [("drop", None), (200, {"routed": True})])
    err = _error(lambda: _client(srv.server_port).request("POST", "/api/exchanges/v/e/publish", {"payload": "m"}))
    assert err.code == "broker-unreachable"
    assert len(h.seen) == 1  # a publish may have been carried out: never sent twice

    h.seen.clear()
    h.routes["/api/overview"] = ("drop", None)
    err = _error(_client(srv.server_port).overview)
    assert err.code == "broker-unreachable" and len(h.seen) == 2
