"""AMQP connection failures are one-line errors as clear as the HTTP side's (issue 11, item 7).

Local sockets stand in for the broker: a closed port (refused), a port that accepts and
never answers (timeout, naming the seconds), a plain port spoken to with amqps (no TLS),
a TLS server with a self-signed certificate (verification failed, ``--ca-cert`` hint;
with ``--ca-cert`` the handshake passes and the AMQP handshake then times out). Wrong
credentials and missing or forbidden vhosts are checked on the real brokers in
tests/integration/test_secrets_broker.py.
"""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import run_cli
from topoform.broker import amqp
from topoform.broker.settings import BrokerSettings
from topoform.errors import BrokerError

SECRET = "pw@:/ é-ж😀-x"
ENC = "pw%40%3A%2F%20%C3%A9-%D0%B6%F0%9F%98%80-x"


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Listener:
    """Accepts connections on 127.0.0.1; ``on_accept(conn)`` decides what happens (default: nothing)."""

    def __init__(self, on_accept=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.on_accept = on_accept
        self.held: list = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)
            if self.on_accept:
                threading.Thread(target=self.on_accept, args=(conn, self), daemon=True).start()

    def close(self):
        self.stop.set()
        self.thread.join()
        for c in self.held:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


@pytest.fixture
def silent():
    listener = _Listener()
    yield listener.port
    listener.close()


@pytest.fixture
def plain():
    """A plain TCP service that answers anything with a line of text (not TLS)."""
    def answer(conn, _):
        try:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        except OSError:
            pass

    listener = _Listener(answer)
    yield listener.port
    listener.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a self-signed certificate (scripts/setup.sh installs it)")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return d


@pytest.fixture
def tls_silent(tls_files):
    """A TLS server with a self-signed certificate that completes the handshake and then says nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tls_files / "cert.pem"), str(tls_files / "key.pem"))

    def handshake(conn, listener):
        try:
            listener.held.append(ctx.wrap_socket(conn, server_side=True))
        except (OSError, ssl.SSLError):
            pass

    listener = _Listener(handshake)
    yield listener.port
    listener.close()


def _connect_error(url: str, **kw) -> BrokerError:
    settings = BrokerSettings(url=url, **kw)
    with pytest.raises(BrokerError) as info:
        amqp.connect(settings, "/")
    err = info.value
    text = f"{err.message} {err.hint}"
    assert "\n" not in text and SECRET not in text and ENC not in text and "ж" not in text
    return err


def test_connection_refused_names_host_and_port():
    port = _closed_port()
    err = _connect_error(f"amqp://u:{ENC}@127.0.0.1:{port}/")
    assert err.code == "unreachable"
    assert err.message == f"cannot connect to amqp://127.0.0.1:{port}: connection refused"


def test_a_port_that_never_answers_times_out_naming_the_seconds(silent):
    start = time.monotonic()
    err = _connect_error(f"amqp://u:{ENC}@127.0.0.1:{silent}/", timeout=0.5)
    assert time.monotonic() - start < 5
    assert err.code == "timeout"
    assert err.message == f"amqp://127.0.0.1:{silent} did not answer within 0.5s (the AMQP handshake timed out)"
    assert "--timeout" in err.hint


def test_amqps_to_a_plain_port_says_the_port_has_no_tls(plain):
    err = _connect_error(f"amqps://u:{ENC}@127.0.0.1:{plain}/", timeout=2)
    assert err.code == "tls" and "does not speak TLS" in err.message and "amqp://" in err.hint


def test_an_untrusted_certificate_is_a_verification_failure_with_a_ca_cert_hint(tls_silent):
    err = _connect_error(f"amqps://u:{ENC}@127.0.0.1:{tls_silent}/", timeout=2)
    assert err.code == "tls"
    assert err.message == (f"TLS failure connecting to amqps://127.0.0.1:{tls_silent}: certificate verification "
                           "failed (self-signed certificate)")
    assert "--ca-cert" in err.hint


def test_with_ca_cert_the_tls_handshake_passes(tls_silent, tls_files):
    # the certificate is now trusted: what fails is the AMQP handshake the silent server never answers
    err = _connect_error(f"amqps://u:{ENC}@127.0.0.1:{tls_silent}/", timeout=0.5,
                         ca_cert=str(tls_files / "cert.pem"))
    assert err.code == "timeout" and "the AMQP handshake timed out" in err.message


def test_an_unreadable_ca_cert_is_named(tmp_path):
    err = _connect_error(f"amqps://u:{ENC}@127.0.0.1:{_closed_port()}/", ca_cert=str(tmp_path / "missing.pem"))
    assert err.code == "tls" and "missing.pem" in err.message


def test_an_unknown_host_is_named():
    err = _connect_error(f"amqp://u:{ENC}@no-such-host.invalid:5672/")
    assert err.code == "unreachable" and "unknown host 'no-such-host.invalid'" in err.message


# ----------------------------------------------------------------------------- through the CLI
class _Vhosts(BaseHTTPRequestHandler):
    """A management API that knows one vhost 'v1': enough for apply to reach the AMQP lock."""

    def do_GET(self):  # noqa: N802
        body = [{"name": "v1"}] if self.path.startswith("/api/vhosts") else {"rabbitmq_version": "3.10.8"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def management():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Vhosts)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("kind", ["refused", "timeout", "no-tls", "untrusted"])
def test_apply_reports_amqp_failures_in_one_line_exit_1(kind, debug, management, silent, plain, tls_silent, tmp_path):
    port, scheme, expected = {
        "refused": (_closed_port(), "amqp", "connection refused"),
        "timeout": (silent, "amqp", "did not answer within 0.5s"),
        "no-tls": (plain, "amqps", "does not speak TLS"),
        "untrusted": (tls_silent, "amqps", "certificate verification failed"),
    }[kind]
    topo = tmp_path / "t.yaml"
    topo.write_text("vhosts:\n  v1:\n    queues:\n      q1:\n        durable: true\n")
    argv = ["apply", "--auto-approve", "-f", str(topo), "--timeout", "0.5", "--url",
            f"{scheme}://u:{ENC}@127.0.0.1:{port}/", "--management-url", management] + (["--debug"] if debug else [])
    r = run_cli(argv, cwd=tmp_path, secrets=(SECRET, ENC))
    assert r.code == 1, r
    errors = [line for line in r.err.splitlines() if line.startswith("topoform:")]
    assert len(errors) == 1 and expected in errors[0], r
    assert f"127.0.0.1:{port}" in errors[0] and "internal error" not in r.err
    if not debug:
        assert "Traceback" not in r.err
