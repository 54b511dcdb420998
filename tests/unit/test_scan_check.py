"""topoform scan / check-code on the tester's cases: plugin exchanges, amq.* declares, helpers' conflicts."""
from __future__ import annotations

import json

from helpers import run_cli

DELAYED = (
    "import aio_pika\n"
    "async def main(channel):\n"
    "    ex = await channel.declare_exchange('aio.delayed', 'x-delayed-message', durable=True,\n"
    "                                        arguments={'x-delayed-type': 'direct'})\n"
    "    q = await channel.declare_queue('aio.q', durable=True)\n"
    "    await q.bind(ex, routing_key='k1')\n"
    "    await ex.publish(aio_pika.Message(b''), 'k1')  # topoform: unroutable-ok\n"
    "    await ex.publish(aio_pika.Message(b''), 'k2')\n")


def test_a_publish_to_a_plugin_exchange_is_unchecked_against_the_file_scan_wrote(tmp_path):
    (tmp_path / "p.py").write_text(DELAYED)
    assert run_cli(["scan", "p.py", "-o", "t.yaml"], cwd=tmp_path).code == 0
    res = run_cli(["check-code", "p.py", "-f", "t.yaml", "--json"], cwd=tmp_path)
    doc = json.loads(res.out)
    assert res.code == 0, res
    assert doc["disagreements"] == []
    got = [(u["line"], u["code"], u["message"]) for u in doc["unchecked"]]
    why = ("Exchange.publish: not checked: exchange 'aio.delayed' has type 'x-delayed-message', which the route "
           "simulator cannot follow (it simulates direct, fanout, topic, headers)")
    assert got == [(7, "unsimulated", why), (8, "unsimulated", why)]


def test_a_publish_through_a_bound_plugin_exchange_is_unchecked(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "version: 1\nvhosts:\n  /:\n    exchanges:\n      front: {type: fanout, durable: true}\n"
        "      delayed: {type: x-delayed-message, durable: true, arguments: {x-delayed-type: direct}}\n"
        "    bindings:\n      - {source: front, destination: delayed, destination_type: exchange}\n")
    (tmp_path / "p.py").write_text("ch.basic_publish('front', 'k', b'')\n")
    res = run_cli(["check-code", "p.py", "-f", "t.yaml"], cwd=tmp_path)
    assert res.code == 0, res
    assert "exchange 'delayed' (reached from 'front') has type 'x-delayed-message'" in res.err
