"""Passwords with every special character on the real broker, and AMQP-side errors (issue 11, items 2 and 7).

A user is created through the management API with a password holding ``@ : / % # ? & =
+ space ' " \\``, ``é``, ``ж`` and ``😀``. ``plan``, ``apply`` and ``import`` work as that
user whichever way the password is given (environment, ``--password-file``,
``TOPOFORM_PASSWORD_FILE``, percent-encoded in the URLs): HTTP Basic goes out as UTF-8,
AMQP PLAIN too. Then every broker-side failure path: wrong password (401 on HTTP,
ACCESS_REFUSED on AMQP), users without tags or permissions (401 "Not management user",
530 NOT_ALLOWED, 403 ACCESS_REFUSED), a missing vhost, and AMQP refused / timeout / TLS
behind a working management API; each with and without ``--debug``. No 4-character piece
of any password, raw or percent-encoded, appears in stdout, stderr, plan files or logs.
"""
from __future__ import annotations

import logging
import secrets
import socket
from urllib.parse import quote

import pytest
import yaml

from helpers import run_cli, silent_server
from passwords import REQUIRED_ARGS, TAKES_FILES, assert_no_piece, broker_commands, make_passwords
from topoform.broker import amqp
from topoform.broker.settings import BrokerSettings, quote_segment
from topoform.errors import BrokerError

PASSWORD, WRONG = make_passwords(2, seed=11)


def _enc(s: str) -> str:
    return quote(s, safe="")


@pytest.fixture
def where(admin):
    """(AMQP host, AMQP port, management base URL without credentials) of the broker under test."""
    return admin.settings.amqp_host, admin.settings.amqp_port, admin.settings.http_base_clean


@pytest.fixture
def make_user(admin):
    """``make_user(tags, {vhost: (configure, write, read)})`` -> a new user whose password is PASSWORD."""
    made = []

    def _make(tags: str = "administrator", permissions: dict | None = None) -> str:
        name = f"tf-secret-{secrets.token_hex(4)}"
        admin.put(f"/api/users/{quote_segment(name)}", {"password": PASSWORD, "tags": tags})
        made.append(name)
        for vh, (c, w, r) in (permissions or {}).items():
            admin.put(f"/api/permissions/{quote_segment(vh)}/{quote_segment(name)}",
                      {"configure": c, "write": w, "read": r})
        return name

    yield _make
    for name in made:
        admin.delete(f"/api/users/{quote_segment(name)}")


def _topology(tmp_path, vhost: str):
    path = tmp_path / "topo.yaml"
    path.write_text(yaml.safe_dump({"vhosts": {vhost: {"queues": {"q-secret": {"durable": True}}}}}))
    return path


def _credentials(mode: str, user: str, password: str, where, tmp_path) -> tuple[list[str], dict]:
    host, port, base = where
    scheme, hostport = base.split("://", 1)
    if mode == "in-urls":
        return ([], {"TOPOFORM_URL": f"amqp://{_enc(user)}:{_enc(password)}@{host}:{port}/",
                     "TOPOFORM_MANAGEMENT_URL": f"{scheme}://{_enc(user)}:{_enc(password)}@{hostport}"})
    env = {"TOPOFORM_URL": f"amqp://{host}:{port}/", "TOPOFORM_MANAGEMENT_URL": base}
    pwfile = tmp_path / "password.txt"
    pwfile.write_text(password + "\n", encoding="utf-8")
    if mode == "env":
        return [], {**env, "TOPOFORM_USERNAME": user, "TOPOFORM_PASSWORD": password}
    if mode == "file-flag":
        return ["--username", user, "--password-file", str(pwfile)], env
    assert mode == "file-env"
    return [], {**env, "TOPOFORM_USERNAME": user, "TOPOFORM_PASSWORD_FILE": str(pwfile)}


def _run(argv, environ, tmp_path, *passwords, files=()):
    r = run_cli([str(a) for a in argv], environ={"CI": "1", **environ}, cwd=tmp_path)
    texts = [r.out, r.err] + [f.read_text(encoding="utf-8") for f in files if f.exists()]
    for pw in passwords:
        assert_no_piece(pw, *texts)
    return r


def _one_error(r, *expected: str) -> str:
    assert r.code == 1, r
    lines = [line for line in r.err.splitlines() if line.startswith("topoform:")]
    assert len(lines) == 1, r
    for e in expected:
        assert e in lines[0], r
    assert "internal error" not in r.err, r
    return lines[0]


# ----------------------------------------------------------------------------- the password works
@pytest.mark.parametrize("mode", ["env", "file-flag", "file-env", "in-urls"])
def test_a_password_with_every_special_character_works_for_every_command(mode, make_user, vhost, where, admin,
                                                                          tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    user = make_user("administrator", {vhost: (".*", ".*", ".*")})
    extra, env = _credentials(mode, user, PASSWORD, where, tmp_path)
    topo = _topology(tmp_path, vhost)
    plan_file = tmp_path / "plan.json"

    r = _run(["plan", "-f", topo, "--out", plan_file, "--detailed-exitcode", *extra], env, tmp_path, PASSWORD,
             files=[plan_file])
    assert r.code == 2 and "q-secret" in r.out, r
    r = _run(["apply", "--auto-approve", "-f", topo, *extra], env, tmp_path, PASSWORD)
    assert r.code == 0, r
    assert any(q["name"] == "q-secret" for q in admin.queues(vhost))
    r = _run(["import", "--vhost", vhost, *extra], env, tmp_path, PASSWORD)
    assert r.code == 0 and "q-secret" in r.out, r
    r = _run(["apply", plan_file, "--auto-approve", *extra], env, tmp_path, PASSWORD)
    assert r.code == 1 and "stale" in r.err, r  # the saved plan is stale now: read and compared as that user
    r = _run(["plan", "-f", topo, "--detailed-exitcode", *extra], env, tmp_path, PASSWORD)
    assert r.code == 0, r
    for command, argv in _commands(tmp_path, vhost).items():  # any other command that connects
        if command not in ("plan", "apply", "import"):
            r = _run([*argv, *extra], env, tmp_path, PASSWORD)
            assert r.code in (0, 3), r  # 3: a finding about the target version, not a connection failure
    assert_no_piece(PASSWORD, caplog.text)


def test_the_amqp_side_accepts_the_password_as_utf8(make_user, vhost, broker):
    user = make_user("administrator", {vhost: (".*", ".*", ".*")})
    settings = BrokerSettings(url=f"amqp://{broker.amqp_host}:{broker.amqp_port}/", username_override=user,
                              password_override=PASSWORD)
    conn = amqp.connect(settings, vhost)
    try:
        assert conn.is_open
    finally:
        conn.close()


# ----------------------------------------------------------------------------- failure paths on the broker
def _commands(tmp_path, vhost):
    """The argv of every command that connects (found in the CLI), reaching as far as the broker."""
    topo = _topology(tmp_path, vhost)
    out = {}
    for command in broker_commands():
        argv = [command] + (["-f", topo] if command in TAKES_FILES else []) + REQUIRED_ARGS.get(command, [])
        if command == "plan":
            argv += ["--out", tmp_path / "plan.json"]
        if command in ("import", "upgrade-check"):
            argv += ["--vhost", vhost]
        out[command] = argv
    return out


COMMANDS = broker_commands()


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_password_is_one_line_without_either_password(command, debug, make_user, vhost, where, tmp_path,
                                                             caplog):
    caplog.set_level(logging.DEBUG)
    user = make_user("administrator", {vhost: (".*", ".*", ".*")})
    for mode in ("env", "in-urls"):
        extra, env = _credentials(mode, user, WRONG, where, tmp_path)
        argv = _commands(tmp_path, vhost)[command] + extra + (["--debug"] if debug else [])
        r = _run(argv, env, tmp_path, PASSWORD, WRONG, files=[tmp_path / "plan.json"])
        _one_error(r, "refused the credentials", f"user '{user}'")
    assert_no_piece(WRONG, caplog.text)


@pytest.mark.parametrize("debug", [False, True])
def test_a_wrong_amqp_password_behind_a_working_management_api(debug, make_user, vhost, where, tmp_path):
    """HTTP authenticates (its own URL's userinfo); AMQP gets the wrong password: ACCESS_REFUSED, named."""
    user = make_user("administrator", {vhost: (".*", ".*", ".*")})
    host, port, base = where
    scheme, hostport = base.split("://", 1)
    env = {"TOPOFORM_URL": f"amqp://{_enc(user)}:{_enc(WRONG)}@{host}:{port}/",
           "TOPOFORM_MANAGEMENT_URL": f"{scheme}://{_enc(user)}:{_enc(PASSWORD)}@{hostport}"}
    argv = _commands(tmp_path, vhost)["apply"] + (["--debug"] if debug else [])
    r = _run(argv, env, tmp_path, PASSWORD, WRONG)
    _one_error(r, f"the broker at amqp://{host}:{port} refused the credentials of user '{user}'", "ACCESS_REFUSED")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_user_without_tags_is_told_so(command, debug, make_user, vhost, where, tmp_path):
    user = make_user("", {vhost: (".*", ".*", ".*")})
    extra, env = _credentials("env", user, PASSWORD, where, tmp_path)
    argv = _commands(tmp_path, vhost)[command] + extra + (["--debug"] if debug else [])
    r = _run(argv, env, tmp_path, PASSWORD, files=[tmp_path / "plan.json"])
    _one_error(r, "management")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_management_user_without_permission_on_the_vhost_leaks_nothing(command, debug, make_user, vhost, where,
                                                                         tmp_path):
    # what is reported is item 6's business; here: exit 1, no traceback without --debug, no password
    user = make_user("management")
    extra, env = _credentials("file-flag", user, PASSWORD, where, tmp_path)
    argv = _commands(tmp_path, vhost)[command] + extra + (["--debug"] if debug else [])
    r = _run(argv, env, tmp_path, PASSWORD, files=[tmp_path / "plan.json"])
    if command == "plan":
        assert r.code in (0, 1, 2), r  # a vhost the user cannot see may plan as a create
    else:
        assert r.code == 1, r
    if not debug:
        assert "Traceback" not in r.err


@pytest.mark.parametrize("debug", [False, True])
def test_an_administrator_without_permission_on_the_vhost_gets_not_allowed(debug, make_user, vhost, where, tmp_path):
    user = make_user("administrator")  # sees every vhost over HTTP, may not open this one over AMQP
    extra, env = _credentials("env", user, PASSWORD, where, tmp_path)
    argv = _commands(tmp_path, vhost)["apply"] + extra + (["--debug"] if debug else [])
    r = _run(argv, env, tmp_path, PASSWORD)
    # apply's permission check (item 6) may find it first; otherwise the AMQP connection says NOT_ALLOWED
    line = _one_error(r)
    assert vhost in r.err and user in r.err, r
    if "NOT_ALLOWED" in line:
        assert f"user '{user}' may not access vhost '{vhost}'" in line and "set_permissions" in line
    else:
        assert "permission" in r.err, r


@pytest.mark.parametrize("debug", [False, True])
def test_an_amqp_403_is_one_line(debug, make_user, vhost, where, tmp_path):
    user = make_user("administrator", {vhost: ("^$", ".*", ".*")})  # may configure nothing
    extra, env = _credentials("env", user, PASSWORD, where, tmp_path)
    argv = _commands(tmp_path, vhost)["apply"] + extra + (["--debug"] if debug else [])
    r = _run(argv, env, tmp_path, PASSWORD)
    line = _one_error(r)  # apply's permission check (item 6) may find it before the broker's 403
    assert "403 ACCESS_REFUSED" in line or "configure" in r.err, r


def test_a_missing_vhost_and_a_forbidden_one_are_told_apart(make_user, vhost, broker):
    user = make_user("administrator")
    settings = BrokerSettings(url=f"amqp://{broker.amqp_host}:{broker.amqp_port}/", username_override=user,
                              password_override=PASSWORD)
    missing = f"tf-missing-{secrets.token_hex(4)}"
    with pytest.raises(BrokerError) as info:
        amqp.connect(settings, missing)
    assert info.value.code == "vhost-not-found"
    assert info.value.message.startswith(f"vhost '{missing}' does not exist on amqp://")
    assert "530 NOT_ALLOWED" in info.value.message
    with pytest.raises(BrokerError) as info:
        amqp.connect(settings, vhost)
    assert info.value.code == "access-refused" and f"may not access vhost '{vhost}'" in info.value.message
    for err in (info.value,):
        assert_no_piece(PASSWORD, err.message, err.hint)


# ----------------------------------------------------------------------------- AMQP failures, HTTP fine
@pytest.fixture
def silent_port():
    with silent_server(64) as port:
        yield port


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("kind", ["refused", "timeout", "tls"])
def test_amqp_failures_behind_a_working_management_api(kind, debug, make_user, vhost, where, silent_port, tmp_path):
    user = make_user("administrator", {vhost: (".*", ".*", ".*")})
    host, port, base = where
    url, expected = {
        "refused": (f"amqp://127.0.0.1:{(closed := _closed_port())}/", f"cannot connect to amqp://127.0.0.1:{closed}: "
                                                                         "connection refused"),
        "timeout": (f"amqp://127.0.0.1:{silent_port}/", f"amqp://127.0.0.1:{silent_port} did not answer within 1s"),
        "tls": (f"amqps://{host}:{port}/", f"TLS failure connecting to amqps://{host}:{port}: the server does not "
                                           "speak TLS on this port"),
    }[kind]
    env = {"TOPOFORM_URL": url, "TOPOFORM_MANAGEMENT_URL": base, "TOPOFORM_USERNAME": user,
           "TOPOFORM_PASSWORD": PASSWORD}
    argv = _commands(tmp_path, vhost)["apply"] + ["--timeout", "1"] + (["--debug"] if debug else [])
    r = _run(argv, env, tmp_path, PASSWORD)
    _one_error(r, expected)
    if not debug:
        assert "Traceback" not in r.err
