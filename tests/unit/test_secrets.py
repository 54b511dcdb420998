"""No piece of a password in any output, whatever the password holds and however a command fails.

Passwords are generated to hold every character class that breaks URLs or quoting
(``@ : / % # ? & = + space ' " \\``), Latin-1 (``é``) and other Unicode (``ж``, ``😀``).
Every command that takes broker settings runs, in-process, through every failure path
that needs no broker: unparseable and malformed URLs, misspelled flags, connection
refused, a server that never answers, TLS to a plain port, 401 and 403 from a fake
management API, an internal error, each with and without ``--debug``. No 4-character
piece of the password, raw or percent-encoded, may appear in stdout, stderr, the plan
file (``--out``) or the log records. The broker-side paths (wrong password, missing
permission, AMQP failures behind a working management API) are in
tests/integration/test_secrets_broker.py.
"""
from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from helpers import run_cli, silent_server
from passwords import REQUIRED_ARGS, SPECIALS, TAKES_FILES, assert_no_piece, broker_commands, make_passwords

PASSWORDS = make_passwords()


def test_every_command_that_connects_is_covered():
    commands = set(broker_commands())
    assert {"plan", "apply", "import"} <= commands
    from topoform.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    for name in commands:  # the argv built for each command takes -f exactly when the command does
        assert ("-f" in sub.choices[name]._option_string_actions) == (name in TAKES_FILES), name  # noqa: SLF001


def test_generated_passwords_hold_every_character_class():
    for pw in PASSWORDS:
        assert all(c in pw for c in SPECIALS)
        assert any(ord(c) > 0xFFFF for c in pw) and any(0x80 <= ord(c) <= 0xFF for c in pw)


def test_no_piece_could_be_a_port_an_address_or_a_date_by_chance():
    """Ports, addresses and times in outputs are digits and ``.:/- ``; no piece may be only those."""
    import re

    from passwords import pieces

    for seed, n in ((0, 3), (11, 2), (13, 2)):  # the seeds the unit and broker tests use
        for pw in make_passwords(n, seed):
            assert not [p for p in pieces(pw) if re.fullmatch(r"[0-9.:/\- ]+", p)]


# ----------------------------------------------------------------------------- local servers
def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def silent_port():
    """A port that accepts connections and never answers (a firewall, a wrong service)."""
    with silent_server() as port:
        yield port


class _Fixed(BaseHTTPRequestHandler):
    """Answers every request with one status and body; records the Authorization headers."""

    status = 401
    body: dict = {}
    seen: list = []

    def _answer(self):
        self.seen.append(self.headers.get("Authorization"))
        data = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _answer  # noqa: N815

    def log_message(self, *a):
        pass


def _serve(status: int, body: dict):
    handler = type("H", (_Fixed,), {"status": status, "body": body, "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return srv, handler


@pytest.fixture(scope="module")
def servers():
    """A fake management API answering 401 to everything, and one answering 403."""
    s401 = _serve(401, {"error": "not_authorized", "reason": "Login failed"})
    s403 = _serve(403, {"error": "not_authorised", "reason": "Access refused."})
    yield {"401": s401, "403": s403}
    for srv, _ in (s401, s403):
        srv.shutdown()
        srv.server_close()


# ----------------------------------------------------------------------------- scenarios
def _user_url(scheme: str, host: str, secret: str | None) -> str:
    userinfo = f"tfuser:{secret}@" if secret is not None else "tfuser@"
    return f"{scheme}://{userinfo}{host}/"


def _scenarios(pw: str, ports: dict, tmp_path) -> list[tuple[str, list[str], dict, str]]:
    """(name, extra argv, environ, what the error line says)."""
    enc = quote(pw, safe="")
    pwfile = tmp_path / "pw.txt"
    pwfile.write_text(pw + "\n", encoding="utf-8")
    closed, silent = ports["closed"], ports["silent"]
    amqp_closed = f"amqp://127.0.0.1:{closed}/"
    out = [
        # the password unencoded in a URL: unparseable, from a flag or from the environment
        ("raw-url", ["--url", f"amqp://tfuser:{pw}@127.0.0.1:{closed}/"], {}, "--url cannot be parsed"),
        ("raw-url-env", [], {"TOPOFORM_URL": f"amqp://tfuser:{pw}@127.0.0.1:{closed}/"},
         "TOPOFORM_URL cannot be parsed"),
        ("raw-management-url", ["--url", amqp_closed, "--management-url", f"http://tfuser:{pw}@127.0.0.1:{closed}"],
         {}, "--management-url cannot be parsed"),
        ("malformed-url", ["--url", f"amqp//tfuser:{enc}@127.0.0.1:{closed}/"], {}, "--url cannot be parsed"),
        ("malformed-management-url", ["--management-url", f"http//tfuser:{enc}@127.0.0.1"], {},
         "--management-url cannot be parsed"),
        ("wrong-scheme", ["--url", f"http://tfuser:{enc}@127.0.0.1:{closed}/"], {}, "must be an amqp or amqps URL"),
        # misspelled flags: argparse would echo the value
        ("misspelled-flag", ["--urll", f"amqp://tfuser:{enc}@127.0.0.1:{closed}/"], {}, "unrecognized arguments"),
        ("misspelled-flag-raw", ["--urll", f"amqp://tfuser:{pw}@127.0.0.1:{closed}/"], {}, "unrecognized arguments"),
        # (argparse takes "-x=a b" with a space for a positional: apply reads it as its PLANFILE)
        ("misspelled-flag-equals", [f"--management-urll=http://tfuser:{pw}@h"], {},
         ("unrecognized arguments", "cannot read plan file", "cannot read the plan file")),
        ("misspelled-password-flag", ["--pasword", pw], {}, "unrecognized arguments"),
        # apply takes a stray word as its PLANFILE: it must not echo it
        ("stray-value", ["--url", amqp_closed, pw], {},
         ("unrecognized arguments", "cannot read plan file", "cannot read the plan file")),
    ]
    credentials = {
        "in-url": ([], {}, enc),
        "env": ([], {"TOPOFORM_USERNAME": "tfuser", "TOPOFORM_PASSWORD": pw}, None),
        "file-flag": (["--username", "tfuser", "--password-file", str(pwfile)], {}, None),
        "file-env": ([], {"TOPOFORM_PASSWORD_FILE": str(pwfile)}, None),
    }
    for cname, (cargs, cenv, in_url) in credentials.items():
        def url(scheme, hostport, in_url=in_url):
            return _user_url(scheme, hostport, in_url)

        out += [
            (f"refused/{cname}", cargs + ["--url", url("amqp", f"127.0.0.1:{closed}"),
                                         "--management-url", url("http", f"127.0.0.1:{closed}")], cenv,
             "connection refused"),
            (f"timeout/{cname}", cargs + ["--timeout", "0.2", "--url", url("amqp", f"127.0.0.1:{silent}"),
                                         "--management-url", url("http", f"127.0.0.1:{silent}")], cenv,
             "did not answer within 0.2s"),
            (f"tls/{cname}", cargs + ["--url", url("amqps", f"127.0.0.1:{ports['401']}"),
                                     "--management-url", url("https", f"127.0.0.1:{ports['401']}")], cenv,
             "TLS failure"),
            (f"401/{cname}", cargs + ["--url", url("amqp", f"127.0.0.1:{closed}"),
                                     "--management-url", url("http", f"127.0.0.1:{ports['401']}")], cenv,
             "refused the credentials of user 'tfuser'"),
            (f"403/{cname}", cargs + ["--url", url("amqp", f"127.0.0.1:{closed}"),
                                     "--management-url", url("http", f"127.0.0.1:{ports['403']}")], cenv,
             "is not allowed to GET"),
        ]
    return out


def _command_argv(command: str, topo) -> list[str]:
    return [command] + (["-f", str(topo)] if command in TAKES_FILES else []) + REQUIRED_ARGS.get(command, [])


@pytest.fixture
def topo(tmp_path):
    path = tmp_path / "topo.yaml"
    path.write_text("vhosts:\n  v1:\n    queues:\n      q1:\n        durable: true\n")
    return path


def _check_run(result, pw: str, expected: str, debug: bool, *, extra_texts=()) -> None:
    assert result.code == 1, result
    assert_no_piece(pw, result.out, result.err, *extra_texts)
    error_lines = [line for line in result.err.splitlines() if line.startswith("topoform:")]
    assert len(error_lines) == 1, result
    alternatives = expected if isinstance(expected, tuple) else (expected,)
    assert any(e in error_lines[0] for e in alternatives), result
    usage = ("unrecognized", "parsed", "must be an", "plan file")
    if not debug or any(u in e for u in usage for e in alternatives):
        assert "Traceback" not in result.err, result


@pytest.mark.parametrize("pw_index", range(len(PASSWORDS)))
@pytest.mark.parametrize("command", broker_commands())
def test_no_piece_of_the_password_on_any_failure_path(command, pw_index, servers, silent_port, topo, tmp_path,
                                                       caplog):
    caplog.set_level(logging.DEBUG)
    pw = PASSWORDS[pw_index]
    ports = {"closed": _closed_port(), "silent": silent_port,
             "401": servers["401"][0].server_port, "403": servers["403"][0].server_port}
    plan_file = tmp_path / "plan.json"
    for name, extra, environ, expected in _scenarios(pw, ports, tmp_path):
        for debug in (False, True):
            argv = _command_argv(command, topo) + extra + (["--debug"] if debug else [])
            if command == "plan" and not name.startswith(("misspelled", "stray")):
                argv += ["--out", str(plan_file)]
            result = run_cli(argv, environ={"CI": "1", **environ}, cwd=tmp_path)
            texts = [caplog.text]
            if plan_file.exists():
                texts.append(plan_file.read_text(encoding="utf-8"))
            try:
                _check_run(result, pw, expected, debug, extra_texts=texts)
            except AssertionError as exc:
                raise AssertionError(f"{command} {name} debug={debug}: {exc}") from None


@pytest.mark.parametrize("command", broker_commands())
@pytest.mark.parametrize("exc_type", [RuntimeError, ValueError, KeyError])
def test_an_internal_error_quoting_the_url_and_password_shows_neither(command, exc_type, monkeypatch, topo, tmp_path,
                                                                      caplog):
    """An unexpected exception whose text holds the URL and the password (say, a library echoing its input)."""
    from topoform.broker import http

    caplog.set_level(logging.DEBUG)
    pw = PASSWORDS[0]

    def boom(self, method, path, *a, **kw):
        s = self.settings
        raise exc_type(f"boom at {s.url} user {s.username} password {s.password} "
                       f"encoded {quote(s.password, safe='')} as repr {s.password!r}")

    monkeypatch.setattr(http.ManagementClient, "request", boom)
    url = f"amqp://tfuser:{quote(pw, safe='')}@127.0.0.1:{_closed_port()}/"
    for environ in ({"TOPOFORM_URL": url}, {"TOPOFORM_URL": "amqp://127.0.0.1/", "TOPOFORM_PASSWORD": pw}):
        for debug in (False, True):
            argv = _command_argv(command, topo) + (["--debug"] if debug else [])
            result = run_cli(argv, environ=environ, cwd=tmp_path)
            _check_run(result, pw, f"internal error: {exc_type.__name__}", debug, extra_texts=[caplog.text])
            assert ("Traceback" in result.err) == debug


# ----------------------------------------------------------------------------- credentials without a URL
def _sent_credentials(handler) -> tuple[str, str]:
    header = handler.seen[-1]
    user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode("utf-8").partition(":")
    return user, password


@pytest.mark.parametrize("case, argv, environ, expected", [
    ("url only", [], {}, ("url-user", "url-pw")),
    ("env beats url", [], {"TOPOFORM_USERNAME": "env-user", "TOPOFORM_PASSWORD": "env-pw"}, ("env-user", "env-pw")),
    ("env password file beats url", [], {"TOPOFORM_PASSWORD_FILE": "pw.txt"}, ("url-user", "file-pw")),
    ("flags beat env", ["--username", "flag-user", "--password-file", "pw2.txt"],
     {"TOPOFORM_USERNAME": "env-user", "TOPOFORM_PASSWORD": "env-pw"}, ("flag-user", "file-pw2")),
    ("password flag beats both variables", ["--password-file", "pw2.txt"],
     {"TOPOFORM_PASSWORD": "env-pw", "TOPOFORM_PASSWORD_FILE": "pw.txt"}, ("url-user", "file-pw2")),
])
def test_credential_precedence(case, argv, environ, expected, servers, tmp_path):
    srv, handler = servers["401"]
    (tmp_path / "pw.txt").write_text("file-pw\n")
    (tmp_path / "pw2.txt").write_text("file-pw2\r\n")
    url = f"http://url-user:url-pw@127.0.0.1:{srv.server_port}"
    r = run_cli(["import", "--management-url", url, *argv], environ=environ, cwd=tmp_path)
    assert r.code == 1 and "refused the credentials" in r.err, r
    assert _sent_credentials(handler) == expected, case


def test_password_file_keeps_everything_but_one_trailing_newline(servers, tmp_path):
    srv, handler = servers["401"]
    pw = PASSWORDS[1]
    (tmp_path / "pw").write_text(f" {pw}\n\n", encoding="utf-8")  # a leading space and a second newline are kept
    r = run_cli(["import", "--management-url", f"http://127.0.0.1:{srv.server_port}", "--password-file", "pw"],
                cwd=tmp_path)
    assert r.code == 1
    assert _sent_credentials(handler) == ("guest", f" {pw}\n")
    assert_no_piece(pw, r.out, r.err)


@pytest.mark.parametrize("setup, argv, environ, expected", [
    (None, ["--password-file", "missing.txt"], {}, "--password-file: cannot read missing.txt: No such file"),
    (None, [], {"TOPOFORM_PASSWORD_FILE": "missing.txt"}, "TOPOFORM_PASSWORD_FILE: cannot read missing.txt"),
    ("dir", ["--password-file", "adir"], {}, "--password-file: cannot read adir"),
    ("empty", ["--password-file", "empty.txt"], {}, "--password-file: empty.txt is empty"),
    ("latin1", ["--password-file", "latin1.txt"], {}, "is not UTF-8 text"),
    (None, [], {"TOPOFORM_PASSWORD": "a", "TOPOFORM_PASSWORD_FILE": "b"}, "set only one"),
    (None, [], {"TOPOFORM_TIMEOUT": "soon"}, "TOPOFORM_TIMEOUT must be a number"),
    (None, ["--timeout", "0"], {}, "--timeout must be a positive number"),
])
def test_bad_credential_sources_are_one_line_usage_errors(setup, argv, environ, expected, tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "latin1.txt").write_bytes("pé".encode("latin-1"))
    r = run_cli(["import", "--management-url", f"http://127.0.0.1:{_closed_port()}", *argv], environ=environ,
                cwd=tmp_path)
    assert r.code == 1 and r.err.count("\n") == 1 and expected in r.err, r
    assert "Traceback" not in r.err


def test_usage_error_with_debug_is_still_one_line(tmp_path):
    r = run_cli(["import", "--debug", "--url", f"amqp://u:{PASSWORDS[0]}@h/"], cwd=tmp_path)
    assert r.code == 1 and r.err.count("\n") == 1 and "Traceback" not in r.err, r


def test_ambiguous_abbreviation_does_not_echo_its_value(tmp_path):
    pw = PASSWORDS[2]
    r = run_cli(["import", f"--u=amqp://tfuser:{pw}@h/"], cwd=tmp_path)
    # abbreviations are refused ("unrecognized arguments"; "ambiguous option" where argparse allows them)
    assert r.code == 1 and "--u=VALUE" in r.err, r
    assert_no_piece(pw, r.out, r.err)


def test_a_password_typed_where_the_command_goes_is_not_echoed(tmp_path):
    pw = PASSWORDS[0]
    r = run_cli([pw, "--url", "amqp://localhost/"], cwd=tmp_path)
    assert r.code == 1 and "invalid choice: VALUE" in r.err, r
    assert_no_piece(pw, r.out, r.err)
    r = run_cli(["plann"], cwd=tmp_path)
    assert "invalid choice: 'plann'" in r.err  # a plain word is still shown
