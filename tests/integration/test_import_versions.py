"""import -> plan --detailed-exitcode is 0 on every broker version (issue 10).

Each broker stores and exports the same declarations differently (BROKERS.md): 4.x adds
``x-queue-type`` to every queue, 4.3 leaves internal exchanges out of the vhost export,
vhost settings move around. Here the objects are declared over AMQP, the way
applications make them (not through topoform), in a vhost without a default queue type
and in one whose default is quorum; ``import`` must write files that plan no change,
and that name a queue type only where somebody chose one.
"""
from __future__ import annotations

import pika
import pytest
import yaml

from helpers import unique_vhost
from topoform.broker.settings import quote_segment
from topoform.versions import has


def _declare_everything(broker, vhost: str) -> None:
    params = pika.ConnectionParameters(host=broker.amqp_host, port=broker.amqp_port, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(broker.username, broker.password))
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.exchange_declare("events", "topic", durable=True)
        ch.exchange_declare("inner", "fanout", durable=True, internal=True)  # 4.3's export leaves it out
        ch.exchange_bind("inner", "events", "audit.#")
        ch.queue_declare("plain", durable=True)                              # type from the vhost default
        ch.queue_declare("transient", durable=False)                         # always classic
        ch.queue_declare("scratch", durable=True, auto_delete=True)           # classic: auto-delete is never defaulted
        ch.queue_declare("chosen-classic", durable=True, arguments={"x-queue-type": "classic"})
        ch.queue_declare("orders", durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 5})
        ch.queue_declare("log", durable=True, arguments={"x-queue-type": "stream", "x-max-age": "1D"})
        ch.queue_bind("orders", "events", "order.*")
        ch.queue_bind("log", "events", "#")
        ch.queue_bind("plain", "inner")
    finally:
        conn.close()


@pytest.mark.parametrize("default_queue_type", [None, "quorum"])
def test_import_of_what_applications_declared_plans_no_change(admin, broker, cli, broker_env, tmp_path,
                                                               default_queue_type, broker_version):
    from conftest import TEST_USER

    vhost = unique_vhost("tf-imp")
    body = {"description": "topoform test (temporary)"}
    if default_queue_type:
        body["defaultqueuetype"] = default_queue_type  # 3.10 reads only this spelling (SEMANTICS 1.6)
    admin.put(f"/api/vhosts/{quote_segment(vhost)}", body)
    try:
        admin.put(f"/api/permissions/{quote_segment(vhost)}/{quote_segment(TEST_USER)}",
                  {"configure": ".*", "write": ".*", "read": ".*"})
        _declare_everything(broker, vhost)
        out = tmp_path / "imported.yaml"
        r = cli(["import", "--vhost", vhost, "-o", out], environ=broker_env)
        assert r.code == 0, r
        data = yaml.safe_load(out.read_text())
        spec = data["vhosts"][vhost]
        queues = spec["queues"]
        assert set(queues) == {"plain", "transient", "scratch", "chosen-classic", "orders", "log"}
        assert spec["exchanges"]["inner"]["internal"] is True
        # a type is written only where the declare chose it (or where it differs from the implied one)
        assert "x-queue-type" not in (queues["plain"].get("arguments") or {})
        assert "x-queue-type" not in (queues["transient"].get("arguments") or {})
        assert "x-queue-type" not in (queues["scratch"].get("arguments") or {})
        # in a quorum-default vhost a durable declare gets quorum anyway: the type is implied there
        implied_quorum = default_queue_type == "quorum"
        assert queues["orders"]["arguments"].get("x-queue-type") == (None if implied_quorum else "quorum")
        assert queues["orders"]["arguments"]["x-delivery-limit"] == 5
        assert queues["log"]["arguments"]["x-queue-type"] == "stream"
        chosen = (queues["chosen-classic"].get("arguments") or {}).get("x-queue-type")
        if default_queue_type == "quorum" or not has(broker_version, "classic_queue_type_stored"):
            assert chosen == "classic"  # it matters there (quorum default), or 3.10 kept what was declared
        else:
            assert chosen is None       # 4.x stores classic on every queue: nothing to tell apart
        if default_queue_type:
            assert spec.get("default_queue_type") == default_queue_type
        plan = cli(["plan", "--detailed-exitcode", "-f", out], environ=broker_env)
        assert plan.code == 0, plan
    finally:
        admin.delete_vhost(vhost)
