"""What a shovel inside the broker does with its URIs and queues, on each of 3.10.8, 4.0.5 and 4.3.6:
the evidence behind ``validate``'s shovel warnings (``topoform/config/load.py: check_shovels``).

* ``amqp://`` (no host, no path) is the broker's direct connection to its *default* vhost ``/``,
  whatever vhost the shovel is defined in: the shovel's messages leave the shovel's vhost;
* a ``src-queue`` or ``dest-queue`` that does not exist is declared by the broker itself, as a
  durable classic queue (so a typo makes a stray queue instead of an error).

The shovels are applied as the broker's bootstrap administrator: the broker checks that the user
who defines a shovel may connect to each vhost its URIs name, and only that user has ``/`` here.
The queue the shovel makes in ``/`` is deleted afterwards, once the shovels are gone.
"""
from __future__ import annotations

import time
from urllib.parse import quote

import pika
import yaml

from conftest import ADMIN_MANAGEMENT_URL, ADMIN_URL
from topoform.broker.settings import quote_segment


def _wait(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return None


def test_a_shovel_uri_without_a_vhost_works_in_vhost_slash_and_missing_queues_are_declared(
        admin, vhost, cli, tmp_path):
    stray = f"{vhost}.dest"  # the queue the shovel makes in vhost '/'
    local = f"amqp:///{quote(vhost, safe='')}"
    files = {"vhosts": {vhost: {
        "queues": {"src": {"durable": True}},
        "shovels": {
            "to-default": {"src-uri": local, "src-queue": "src", "dest-uri": "amqp://", "dest-queue": stray},
            "typo": {"src-uri": local, "src-queue": "ghost", "dest-uri": local, "dest-queue": "src"}}}}}
    (tmp_path / "topoform.yaml").write_text(yaml.safe_dump(files), encoding="utf-8")
    env = {"TOPOFORM_URL": ADMIN_URL, "TOPOFORM_MANAGEMENT_URL": ADMIN_MANAGEMENT_URL, "CI": "true"}

    checked = cli(["validate", "--json"], environ=env, cwd=tmp_path)
    assert checked.code == 0, checked
    found = {(f["code"], f["severity"]) for f in checked.json["findings"]}
    assert found == {("shovel-default-vhost", "warning"), ("shovel-undeclared-queue", "warning")}, checked.json

    try:
        applied = cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)
        assert applied.code == 0, applied
        # the typo's source queue: declared by the broker, durable and classic
        ghost = _wait(lambda: _queue(admin, vhost, "ghost"))
        assert ghost and ghost["durable"] is True and ghost.get("type", "classic") == "classic", ghost
        # a message into the shovel's own vhost comes out in vhost '/'
        conn = pika.BlockingConnection(pika.URLParameters(ADMIN_URL.rstrip("/") + "/" + quote(vhost, safe="")))
        try:
            conn.channel().basic_publish("", "src", b"where to?")
        finally:
            conn.close()
        assert _wait(lambda: _get_one(stray)) == b"where to?"
    finally:
        # the shovels first: a running one declares its queue in '/' again
        for name in files["vhosts"][vhost]["shovels"]:
            admin.request("DELETE", f"/api/parameters/shovel/{quote_segment(vhost)}/{name}", expect=(204, 404))
        _wait(lambda: not admin.request("GET", f"/api/shovels/{quote_segment(vhost)}").json())
        admin.request("DELETE", f"/api/queues/%2F/{quote_segment(stray)}", expect=(204, 404))
        assert _queue(admin, "/", stray) is None


def _queue(admin, vhost, name) -> dict | None:
    r = admin.request("GET", f"/api/queues/{quote_segment(vhost)}/{quote_segment(name)}", expect=(200, 404))
    return r.json() if r.status_code == 200 else None


def _get_one(queue: str) -> bytes | None:
    conn = pika.BlockingConnection(pika.URLParameters(ADMIN_URL))
    try:
        ch = conn.channel()
        try:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
        except pika.exceptions.ChannelClosedByBroker:
            return None  # not declared yet
        return body if method is not None else None
    finally:
        if conn.is_open:
            conn.close()
