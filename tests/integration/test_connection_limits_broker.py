"""Connection and channel limits (a vhost's or a user's ``max-connections``, a user's
``max-channels``) on the real broker.

An apply opens one connection per vhost for its lock and one or more for its work (a
large phase spreads over several, ``amqp.Pool``), and each queue migration running at
once (``--parallel N``) opens its own. A limit below that must not fail an apply that can
be done with fewer, and a limit that leaves too few must be reported as the limit it is,
not as missing permissions (which is what the broker's 530 NOT_ALLOWED looked like
before). The broker's words, identical on 3.10.8, 4.0.5 and 4.3.6: "access to vhost 'V'
refused for user 'U': connection limit (N) is reached" and "connection refused for user
'U': user connection limit (N) is reached". A channel beyond the user's ``max-channels``
makes the broker close the whole connection (530 "number of channels opened for user 'U'
has reached the maximum allowed user limit of (N)"; 4.3.6 prints N without brackets, 4.0.5
its node name for U): the apply goes on with as many channels as had opened.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from topoform.broker import amqp_pool
from topoform.broker.settings import BrokerSettings, quote_segment

sys.path.insert(0, str(Path(__file__).resolve().parent))

import migrate_support as ms  # noqa: E402


def _limit(admin, vhost: str, n: int) -> None:
    admin.put(f"/api/vhost-limits/{quote_segment(vhost)}/max-connections", {"value": n})


def _queues_yaml(vhost: str, n: int, extra: str = "") -> str:
    rows = "".join(f"\n      q{i:04d}: {{durable: true{extra}}}" for i in range(n))
    return f"vhosts:\n  {vhost}:\n    queues:{rows}\n"


def test_a_large_phase_runs_on_the_connections_a_vhost_limit_allows(vhost, admin, broker_env, cli, mgmt, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setattr(amqp_pool.Pool, "SPLIT_MIN", 50)  # 400 declares would want 4 connections
    _limit(admin, vhost, 2)  # the lock's and one for the work
    files = tmp_path / "t.yaml"
    files.write_text(_queues_yaml(vhost, 400))
    r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
    assert r.code == 0, (r.out[-1500:], r.err[-1500:])
    assert "Apply complete: 400 created" in r.out
    assert len(mgmt.queues(vhost)) == 400


@pytest.mark.parametrize("limit", ["vhost max-connections", "user max-channels"])
def test_parallel_migrations_beyond_a_limit_wait_for_each_other(vhost, admin, broker, broker_env, amqp, mgmt,
                                                                 tmp_path, test_password, limited_user, limit):
    names = [f"q{i:04d}" for i in range(4)]
    ch = amqp.channel()
    for q in names:
        ch.queue_declare(q, durable=True)
    ch.close()
    # no user_id in the messages: another user (the limited one) may not republish them
    messages = {q: ms.corpus(40, None, seed=i, priorities=False) for i, q in enumerate(names)}
    for q in names:
        ms.publish(amqp, q, messages[q])
    amqp.close()  # the test's own connection would count against a vhost limit
    if limit == "vhost max-connections":
        env, said = broker_env, "connection limit of vhost"
        _limit(admin, vhost, 3)  # the lock's and two migrations', where --parallel 4 asks for four
    else:
        _, env = limited_user("max-channels", 4)  # the lock's channel and too few for four migrations
        said = "maximum allowed user limit"
    files = tmp_path / "t.yaml"
    files.write_text(_queues_yaml(vhost, 4, ", arguments: {x-queue-type: quorum}"))
    proc = ms.start_apply(env, files, extra=("--parallel", "4"))
    out = proc.communicate(timeout=300)[0].decode(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    assert test_password not in out
    # the broker counts connections and channels a moment after they open, so migrations that
    # start at the same instant may all get in; when one is refused, it waited (no failure)
    if said in out:
        assert "at once from now on" in out or "again in" in out or "retrying" in out, out[-3000:]
    _limit(admin, vhost, -1)
    for q in names:
        assert mgmt.get(f"/api/queues/{vhost}/{q}")["type"] == "quorum"
    conn = ms_connect(broker, vhost)
    try:
        for q in names:
            assert ms.drain(conn, q, expect=40) == [ms.as_tuple(b, p) for b, p in messages[q]], q
    finally:
        conn.close()
    assert sorted(q["name"] for q in mgmt.queues(vhost)) == names


def ms_connect(broker, vhost):
    from topoform.broker import amqp as tf_amqp
    return tf_amqp.connect(broker, vhost, name="test reader")


def _apply_fails_naming(cli, env: dict, vhost: str, tmp_path, limit: str, kind: str = "connection") -> Path:
    """An apply of three queues exits 1 with ``limit`` (e.g. "vhost 'V' (1)") named as the cause,
    without retrying (a limit is not a lost connection)."""
    files = tmp_path / "t.yaml"
    files.write_text(_queues_yaml(vhost, 3))
    r = cli(["apply", "--auto-approve", "-f", files], environ=env)
    assert r.code == 1, (r.out, r.err)
    text = r.out + r.err
    assert f"the {kind} limit of {limit} is reached" in text, text[-2000:]
    assert "may not access" not in text and "Traceback" not in text and "retrying" not in text
    return files


def test_a_vhost_limit_too_low_for_an_apply_is_named_as_the_limit(vhost, admin, broker_env, cli, tmp_path):
    _limit(admin, vhost, 1)  # the lock takes it; the work gets none
    files = _apply_fails_naming(cli, broker_env, vhost, tmp_path, f"vhost '{vhost}' (1)")
    # raised, the next apply finishes the job
    _limit(admin, vhost, -1)
    r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
    assert r.code == 0 and "3 created" in r.out, (r.out[-1500:], r.err[-1500:])


@pytest.fixture
def limited_user(admin, vhost, test_password, broker):
    """``limited_user(limit, value)``: (name, CLI environment) of a new administrator with a user limit."""
    made = []

    def make(limit: str, value: int) -> tuple[str, dict]:
        name = f"tf-limited-{uuid.uuid4().hex[:8]}"
        admin.put(f"/api/users/{quote_segment(name)}", {"password": test_password, "tags": "administrator"})
        made.append(name)
        admin.put(f"/api/permissions/{quote_segment(vhost)}/{quote_segment(name)}",
                  {"configure": ".*", "write": ".*", "read": ".*"})
        admin.put(f"/api/user-limits/{quote_segment(name)}/{limit}", {"value": value})
        host, port = broker.amqp_host, broker.amqp_port
        mgmt_url = broker.http_base_clean.replace("://", f"://{name}:{test_password}@", 1)
        settings = BrokerSettings(url=f"amqp://{name}:{test_password}@{host}:{port}/", management_url=mgmt_url)
        return name, {"TOPOFORM_URL": settings.url, "TOPOFORM_MANAGEMENT_URL": settings.management_url, "CI": "true"}

    yield make
    for name in made:
        admin.delete(f"/api/users/{quote_segment(name)}")


def test_a_user_limit_too_low_for_an_apply_is_named_as_the_limit(vhost, limited_user, cli, tmp_path):
    name, env = limited_user("max-connections", 1)
    _apply_fails_naming(cli, env, vhost, tmp_path, f"user '{name}' (1)")


def test_a_user_channel_limit_narrows_the_channels_an_apply_uses(vhost, limited_user, cli, mgmt, tmp_path):
    # the broker closes the whole connection when a channel beyond the user's max-channels opens
    _, env = limited_user("max-channels", 5)  # the lock's channel and four for the work
    files = tmp_path / "t.yaml"
    files.write_text(_queues_yaml(vhost, 300))
    r = cli(["apply", "--auto-approve", "-f", files], environ=env)
    assert r.code == 0, (r.out[-1500:], r.err[-1500:])
    assert "4 channel(s) from now on" in r.out + r.err and "Apply complete: 300 created" in r.out
    assert len(mgmt.queues(vhost)) == 300


def test_a_user_channel_limit_too_low_for_an_apply_is_named_as_the_limit(vhost, limited_user, cli, tmp_path):
    name, env = limited_user("max-channels", 1)  # the lock's channel takes it
    _apply_fails_naming(cli, env, vhost, tmp_path, f"user '{name}' (1)", kind="channel")
