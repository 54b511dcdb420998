"""The management URL pointing at the wrong server, offline: a server that accepts and never answers
fails after about --timeout seconds in all (the version probe's timeout is not followed by the
reads' own), and a JSON server that is not RabbitMQ's management API (``{}``, ``[]``,
``{"foo": 1}`` to every path) is a one-line error, never a TypeError or KeyError."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import run_cli, silent_server

SECRET = "s3cr3t-pw-9"


@pytest.fixture
def silent_port():
    with silent_server() as port:
        yield port


def _files(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("vhosts:\n  v:\n    queues:\n      q: {durable: true}\n")
    return path


COMMANDS = [["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["upgrade-check", "--to", "4.0"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_a_management_api_that_never_answers_fails_after_the_timeout_not_twice_it(silent_port, tmp_path, argv):
    environ = {"TOPOFORM_URL": f"amqp://u:{SECRET}@127.0.0.1:{silent_port}/",
               "TOPOFORM_MANAGEMENT_URL": f"http://u:{SECRET}@127.0.0.1:{silent_port}", "CI": "true"}
    started = time.monotonic()
    r = run_cli([*argv, "-f", _files(tmp_path), "--timeout", "1"], environ=environ, secrets=(SECRET,))
    elapsed = time.monotonic() - started
    assert r.code == 1, r
    assert r.err.strip().splitlines()[-1].startswith(
        f"topoform: error: the management API at http://127.0.0.1:{silent_port} did not answer within 1s"), r
    assert elapsed < 1.7, f"{elapsed:.2f}s for --timeout 1"  # it took 2 s: the probe's timeout, then the read's


def _json_server(body: bytes):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_POST = do_DELETE = do_GET

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return srv


@pytest.mark.parametrize("body", [{}, [], {"foo": 1}, None, "x", [1, 2], [{"a": 1}], {"name": "x"}],
                         ids=json.dumps)
@pytest.mark.parametrize("argv", [*COMMANDS, ["import", "--vhost", "v"], ["plan", "--json"]], ids=" ".join)
def test_a_json_server_that_is_not_rabbitmq_is_a_one_line_error(tmp_path, body, argv):
    srv = _json_server(json.dumps(body).encode())
    try:
        base = f"http://127.0.0.1:{srv.server_port}"
        environ = {"TOPOFORM_URL": f"amqp://u:{SECRET}@127.0.0.1:1/", "TOPOFORM_MANAGEMENT_URL":
                   base.replace("://", f"://u:{SECRET}@"), "CI": "true"}
        files = [] if argv[0] == "import" else ["-f", _files(tmp_path)]
        r = run_cli([*argv, *files], environ=environ, secrets=(SECRET,))
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.code == 1, r
    assert "internal error" not in r.err and "Traceback" not in r.err
    last = r.err.strip().splitlines()[-1]
    assert last.startswith(f"topoform: error: {base} does not look like the RabbitMQ management API: GET /api/"), r
    if "--json" in argv:
        assert r.json["error"]["detail"] == "not-rabbitmq" and r.json["error"]["code"] == "broker", r
