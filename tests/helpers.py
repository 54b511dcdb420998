"""Test utilities shared by unit and integration tests (no fixtures here: see conftest.py)."""
from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import requests

from topoform.broker.settings import BrokerSettings, quote_segment
from topoform.broker.http import _RESENDABLE, _dropped_by_server
from topoform.cli import Environment, main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "topologies"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:  # shows up in assertion failures
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


def run_cli(argv, *, environ: Mapping[str, str] | None = None, cwd: str | Path = ".", stdin: str = "",
            stdin_isatty: bool = False, stdout_isatty: bool = False, secrets: tuple[str, ...] = ()) -> CliResult:
    """Run ``topoform ARGV`` in-process with captured streams.

    Every output is checked for each string in ``secrets`` (the test broker password):
    no password may ever appear in any output.
    """
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, stdin=io.StringIO(stdin), environ=dict(environ or {}),
                      cwd=str(cwd), stdin_isatty=stdin_isatty, stdout_isatty=stdout_isatty)
    code = main([str(a) for a in argv], env)
    result = CliResult(code, out.getvalue(), err.getvalue())
    for secret in secrets:
        assert secret not in result.out and secret not in result.err, f"password leaked in output of {argv}"
    return result


class Management:
    """A small management-API client for tests (set-up and inspection only)."""

    def __init__(self, settings: BrokerSettings):
        self.settings = settings
        self.base = settings.http_base_clean
        self.session = requests.Session()
        self.session.auth = settings.http_credentials
        self.session.headers["content-type"] = "application/json"

    def request(self, method: str, path: str, body: Any = None, expect=(200, 201, 204), **kw):
        data = None if body is None else json.dumps(body)
        try:
            r = self.session.request(method, self.base + path, data=data, timeout=120, **kw)
        except requests.exceptions.ConnectionError as exc:
            # the broker closed a kept-alive connection as the request went out (idle timeout):
            # resend it once on a new connection, as topoform's own client does
            if method not in _RESENDABLE or not _dropped_by_server(exc):
                raise
            r = self.session.request(method, self.base + path, data=data, timeout=120, **kw)
        if expect and r.status_code not in expect:
            raise AssertionError(f"{method} {path} -> {r.status_code} {r.text[:300]}")
        return r

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw).json()

    def put(self, path: str, body: Any = None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, expect=(200, 204, 404), **kw)

    def create_vhost(self, name: str, user: str | None = None) -> None:
        q = quote_segment(name)
        self.put(f"/api/vhosts/{q}", {"description": "topoform test (temporary)"})
        for u in {user or self.settings.http_credentials[0], "guest"}:
            self.put(f"/api/permissions/{q}/{quote_segment(u)}", {"configure": ".*", "write": ".*", "read": ".*"},
                     expect=(200, 201, 204, 404))
        # the vhost's processes start asynchronously; wait until it is usable
        for _ in range(100):
            r = self.request("GET", f"/api/vhosts/{q}", expect=())
            states = r.json().get("cluster_state", {}) if r.status_code == 200 else {}
            if states and all(s == "running" for s in states.values()):
                return
            time.sleep(0.1)

    def delete_vhost(self, name: str) -> None:
        """Delete a test vhost, its federation links stopped first: on 4.0.5, deleting a vhost while
        an exchange's federation link was (re)starting crashed the federation plugin's supervisor
        for good (tests/integration/test_federation_uris.py), failing every later federation test."""
        q = quote_segment(name)
        try:
            links = self.get(f"/api/federation-links/{q}")
        except (AssertionError, ValueError):  # no federation plugin, or no such vhost
            links = []
        if links:
            for policy in self.get(f"/api/policies/{q}"):
                if any(k.startswith("federation-upstream") for k in policy.get("definition", {})):
                    self.delete(f"/api/policies/{q}/{quote_segment(policy['name'])}")
            wait_for(lambda: not self.get(f"/api/federation-links/{q}"), timeout=30)
        self.delete(f"/api/vhosts/{q}")

    def queues(self, vhost: str) -> list[dict]:
        return self.get(f"/api/queues/{quote_segment(vhost)}")

    def definitions(self, vhost: str) -> dict:
        return self.get(f"/api/definitions/{quote_segment(vhost)}")


def wait_for(predicate, timeout: float = 30.0, step: float = 0.3):
    """``predicate()``'s first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def unique_vhost(prefix: str = "tf-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def silent_server(backlog: int = 256):
    """A local port that accepts connections and never answers (a firewall, a wrong service); yields it."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(backlog)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for conn in held:
            conn.close()
        srv.close()
