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


AMQ = ("ch.exchange_declare(exchange='amq.topic', exchange_type='topic')\n"           # durable=False: 406
       "ch.exchange_declare('amq.direct', 'fanout', durable=True)\n"                  # another type: 406
       "ch.exchange_declare('amq.custom', 'direct', durable=True)\n"                  # reserved prefix: 403
       "ch.exchange_declare('amq.fanout', 'fanout', durable=True)\n"                  # the built-in as it is
       "ch.exchange_declare('amq.headers', passive=True)\n"                           # passive: fine
       "ch.exchange_declare('amq.rabbitmq.trace', 'topic', durable=True, internal=True)\n")


def test_amq_declares_other_than_the_built_ins_as_they_are_are_refused(tmp_path):
    (tmp_path / "a.py").write_text(AMQ)
    res = run_cli(["scan", "a.py", "--json"], cwd=tmp_path)
    assert res.code == 0, res
    issues = [(i["place"], i["code"], i["severity"]) for i in json.loads(res.out)["issues"]]
    assert issues == [("a.py:1", "refused", "warning"), ("a.py:2", "refused", "warning"),
                      ("a.py:3", "refused", "warning"), ("a.py:4", "builtin", "note"),
                      ("a.py:6", "builtin", "note")]
    text = run_cli(["scan", "a.py"], cwd=tmp_path).err
    assert ("a.py:1: warning: exchange_declare: built-in exchange 'amq.topic' has durable true, the code declares "
            "false; the broker rejects the declare with 406 PRECONDITION_FAILED (inequivalent arg 'durable'") in text
    assert "a.py:2: warning: exchange_declare: built-in exchange 'amq.direct' has type 'direct'" in text
    assert "a.py:3: warning: exchange_declare: exchange 'amq.custom': names starting with 'amq.' are reserved" in text
    (tmp_path / "t.yaml").write_text("version: 1\nvhosts:\n  /: {}\n")
    res = run_cli(["check-code", "a.py", "-f", "t.yaml", "--json"], cwd=tmp_path)
    doc = json.loads(res.out)
    assert res.code == 3, res
    assert [(d["line"], d["code"]) for d in doc["disagreements"]] == [(1, "refused"), (2, "refused"), (3, "refused")]
    assert "403 ACCESS_REFUSED" in doc["disagreements"][2]["message"]
    assert doc["summary"]["agree"] == 3


def test_binds_and_publishes_to_an_amq_name_that_is_no_built_in_need_the_exchange(tmp_path):
    (tmp_path / "a.py").write_text("ch.queue_declare('q', durable=True)\n"
                                   "ch.queue_bind('q', 'amq.custom', 'k')\n"
                                   "ch.basic_publish('amq.custom', 'k', b'')\n"
                                   "ch.basic_publish('amq.direct', 'q', b'')\n")
    (tmp_path / "t.yaml").write_text("version: 1\nvhosts:\n  /:\n    queues:\n      q: {durable: true}\n")
    doc = json.loads(run_cli(["check-code", "a.py", "-f", "t.yaml", "--json"], cwd=tmp_path).out)
    assert [(d["line"], d["code"]) for d in doc["disagreements"]] == [(2, "missing"), (3, "missing"),
                                                                      (4, "unroutable")]


def test_a_bind_to_a_queue_the_code_declares_itself_names_the_declare_not_a_404(tmp_path):
    (tmp_path / "svc.py").write_text(
        "ch.exchange_declare('events', exchange_type='topic')\n"
        "ch.queue_declare('audit', durable=True)\n"
        "ch.queue_bind('audit', 'events', routing_key='order.#')\n"
        "ch.queue_bind('other', 'events', routing_key='order.#')\n")
    (tmp_path / "t.yaml").write_text("version: 1\nvhosts:\n  /:\n    exchanges:\n      events: {type: topic}\n")
    res = run_cli(["check-code", "svc.py", "-f", "t.yaml", "--json"], cwd=tmp_path)
    assert res.code == 3, res
    got = {d["line"]: d["message"] for d in json.loads(res.out)["disagreements"]}
    assert got[3] == "queue_bind: queue 'audit' is not in the files (the code declares it at svc.py:2: add it to the files)"
    assert got[4] == "queue_bind: queue 'other' is not in the files (the bind fails with 404 NOT_FOUND)"
