"""Plan/apply correctness on the real brokers (scenario tester's report): each plan tells what
apply will do, and a plan after apply is clean. Run on each of 3.10, 4.0 and 4.3
(``TOPOFORM_TEST_BROKER``).

Each test works in its own vhost named ``hpl-<hex>``, as a user ``hpl-test-<hex>`` of its own
(administrator, random password), both deleted afterwards.
"""
from __future__ import annotations

import json
import secrets
import time

import pika
import pytest
import yaml
from helpers import unique_vhost

from topoform.broker.settings import BrokerSettings
from topoform.broker.settings import quote_segment as q

HPL_USER = f"hpl-test-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def broker(admin, test_password):
    admin.put(f"/api/users/{q(HPL_USER)}", {"password": test_password, "tags": "administrator"})
    host, port = admin.settings.amqp_host, admin.settings.amqp_port
    mgmt = admin.settings.http_base_clean.replace("://", f"://{HPL_USER}:{test_password}@", 1)
    yield BrokerSettings(url=f"amqp://{HPL_USER}:{test_password}@{host}:{port}/", management_url=mgmt)
    admin.delete(f"/api/users/{q(HPL_USER)}")


def _new_vhost(admin, name=None):
    name = name or unique_vhost("hpl")
    admin.create_vhost(name, user=HPL_USER)
    return name


@pytest.fixture
def vhost(admin, broker):
    name = _new_vhost(admin)
    yield name
    admin.delete_vhost(name)


def _write(tmp_path, data):
    (tmp_path / "topoform.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8")


def _queues(admin, vhost) -> dict:
    return {x["name"]: x for x in admin.get(f"/api/queues/{q(vhost)}")}


def _wait_stats(admin, vhost, queue, timeout=30.0) -> dict:
    """The queue's row once the management stats report its message count (they lag about 5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.get(f"/api/queues/{q(vhost)}/{q(queue)}")
        if "messages" in row:
            return row
        time.sleep(0.5)
    raise AssertionError(f"queue {queue} never reported its message count")


def _changes(result) -> dict:
    return {(c["kind"], c["name"]): c for c in json.loads(result.out)["changes"]}


# ---------------------------------------------------------------------- 1: deletes the executor refuses
def test_a_stream_delete_is_blocked_in_plan_and_destroy_and_apply_changes_nothing(
        admin, vhost, broker_env, cli, tmp_path):
    admin.put(f"/api/queues/{q(vhost)}/st", {"durable": True, "arguments": {"x-queue-type": "stream"}})
    assert _wait_stats(admin, vhost, "st")["messages"] == 0  # the statistics say empty: still refused
    _write(tmp_path, {"vhosts": {vhost: {"queues": {"keep": {"durable": True}}}}})
    r = cli(["plan", "--prune", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r
    st = _changes(r)[("queue", "st")]
    assert st["action"] == "blocked" and "--allow-data-loss" in st["reason"] and "stream" in st["reason"]
    r = cli(["apply", "--prune", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r
    assert set(_queues(admin, vhost)) == {"st"}  # refused before doing anything: "keep" not created either

    _write(tmp_path, {"vhosts": {vhost: {"queues": {"st": {"durable": True,
                                                           "arguments": {"x-queue-type": "stream"}}}}}})
    r = cli(["destroy", "--dry-run", "--json"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r
    assert _changes(r)[("queue", "st")]["action"] == "blocked"
    r = cli(["destroy", "--auto-approve"], environ=broker_env, cwd=tmp_path)
    assert r.code == 3, r
    assert set(_queues(admin, vhost)) == {"st"}
    r = cli(["destroy", "--auto-approve", "--allow-data-loss"], environ=broker_env, cwd=tmp_path)
    assert r.code == 0, r
    assert set(_queues(admin, vhost)) == set()


def test_a_queue_delete_with_consumers_is_blocked_without_force(admin, broker, vhost, broker_env, cli, tmp_path):
    params = pika.ConnectionParameters(host=broker.amqp_host, port=broker.amqp_port, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(broker.username, broker.password))
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        for name, args in (("cq", {}), ("qq", {"x-queue-type": "quorum"})):
            ch.queue_declare(name, durable=True, arguments=args)
            ch.basic_consume(name, lambda *a: None)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                _queues(admin, vhost)[n].get("consumers") != 1 for n in ("cq", "qq")):
            time.sleep(0.5)
        _write(tmp_path, {"vhosts": {vhost: {}}})
        r = cli(["plan", "--prune", "--json"], environ=broker_env, cwd=tmp_path)
        assert r.code == 3, r
        changes = _changes(r)
        for name in ("cq", "qq"):
            assert changes[("queue", name)]["action"] == "blocked" and "--force" in changes[("queue", name)]["reason"]
        r = cli(["apply", "--prune", "--auto-approve"], environ=broker_env, cwd=tmp_path)
        assert r.code == 3, r
        assert set(_queues(admin, vhost)) == {"cq", "qq"}
    finally:
        conn.close()
