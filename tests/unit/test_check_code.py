"""topoform check-code: the code's declarations against the files, with the broker's verdicts."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli
from scan_helpers import CODE

CHECK = CODE / "checkcode"
SERVICE = (CHECK / "service.py").read_text()
FILES = str(CHECK / "topology.yaml")


def check(tmp_path, text, *extra):
    f = tmp_path / "service.py"
    f.write_text(text)
    return run_cli(["check-code", str(f), "-f", FILES, *extra])


def variant(old: str, new: str) -> str:
    assert old in SERVICE
    return SERVICE.replace(old, new, 1)


def test_matching_code_agrees():
    res = run_cli(["check-code", str(CHECK / "service.py"), "-f", FILES])
    assert res.code == 0, res
    assert res.out.strip().endswith("10 declarations in 1 file, 10 agree, 0 disagreements, 0 unchecked "
                                    "(vhost '/', rules of RabbitMQ 4.3)")


@pytest.mark.parametrize("old, new, field, verdict, files_value, code_value", [
    # durability
    ('"orders.audit", durable=True', '"orders.audit", durable=False', "durable", "rejects", True, False),
    # one argument
    ('{"x-message-ttl": 60000}', '{"x-message-ttl": 30000}', "arguments.x-message-ttl", "rejects", 60000, 30000),
    # the argument's type: the broker compares types ("60000" is not 60000)
    ('{"x-message-ttl": 60000}', '{"x-message-ttl": "60000"}', "arguments.x-message-ttl", "rejects", 60000,
     "60000"),
    # queue type: the files have a quorum queue, the code declares a classic one
    ('"billing.invoices", durable=True, arguments={"x-queue-type": "quorum"}', '"billing.invoices", durable=True',
     "arguments.x-queue-type", "rejects", "quorum", "classic"),
    # an argument a quorum queue ignores on redeclare: the declare succeeds, the code's value is lost
    ('{"x-queue-type": "quorum"}', '{"x-queue-type": "quorum", "x-max-priority": 10}', "arguments.x-max-priority",
     "ignores", "(absent)", 10),
    # the exchange's type
    ('EXCHANGE, "topic", durable=True', 'EXCHANGE, "direct", durable=True', "type", "rejects", "topic", "direct"),
])
def test_declare_that_differs_is_caught_with_its_verdict(tmp_path, old, new, field, verdict, files_value,
                                                         code_value):
    res = check(tmp_path, variant(old, new), "--json")
    assert res.code == 3, res
    doc = json.loads(res.out)
    assert doc["format_version"] == 1 and doc["agree"] is False
    [d] = doc["disagreements"]
    line = next(i for i, text in enumerate(variant(old, new).splitlines(), 1) if new in text)
    assert (d["line"], d["code"], d["field"], d["verdict"]) == (line, "differs", field, verdict)
    assert (d["files_value"], d["code_value"]) == (files_value, code_value)


def test_human_output_names_the_place_and_the_broker_effect(tmp_path):
    res = check(tmp_path, variant('"orders.audit", durable=True', '"orders.audit", durable=False'))
    assert res.code == 3
    first = res.out.splitlines()[0]
    assert first == (f"{tmp_path / 'service.py'}:9: queue_declare: queue 'orders.audit' durable: the files have true, "
                     "the code declares false; the broker rejects this declare with 406 PRECONDITION_FAILED (the "
                     "service fails at start-up)")


@pytest.mark.parametrize("old, new, code, expect", [
    ('channel.queue_bind("orders.audit", EXCHANGE, "order.#")',
     'channel.queue_bind("orders.audit", EXCHANGE, "order.x")',
     "not-in-files", "binding orders -> orders.audit [order.x] is not in the files"),
    ('channel.queue_bind(result.method.queue, EXCHANGE, "order.*")',
     'channel.queue_bind(result.method.queue, EXCHANGE, "audit.*")',
     "not-in-files", "binding orders -> a server-named queue [audit.*] is not in the files"),
    ('channel.basic_publish(EXCHANGE, "order.paid", b"{}")', 'channel.basic_publish(EXCHANGE, "refund", b"{}")',
     "unroutable", "routing key 'refund' reaches no queue in the files"),
    ('channel.basic_publish(EXCHANGE, "order.paid", b"{}")', 'channel.basic_publish("payments", "x", b"{}")',
     "missing", "publishes to exchange 'payments', which is not in the files"),
    ('channel.basic_consume("orders.audit"', 'channel.basic_consume("orders.audti"',
     "missing", "consumes from queue 'orders.audti', which is not in the files (404 NOT_FOUND)"),
    ('channel.queue_declare("orders.audit", durable=True, arguments={"x-message-ttl": 60000})',
     'channel.queue_declare("payments.in", passive=True)',
     "missing", "queue 'payments.in' is not in the files: the passive declare fails with 404 NOT_FOUND"),
    ('channel.queue_declare("orders.audit", durable=True, arguments={"x-message-ttl": 60000})',
     'channel.queue_declare("orders.new", durable=True)',
     "not-in-files", "queue 'orders.new' is not in the files (the code would create it"),
])
def test_other_disagreements(tmp_path, old, new, code, expect):
    res = check(tmp_path, variant(old, new), "--json")
    assert res.code == 3, res
    found = [(d["code"], d["message"]) for d in json.loads(res.out)["disagreements"]]
    assert any(c == code and expect in m for c, m in found), found


def test_unresolved_values_are_unchecked_not_failures(tmp_path):
    text = variant('channel.basic_publish(EXCHANGE, "order.paid", b"{}")',
                   'import os\n    channel.basic_publish(EXCHANGE, os.environ["KEY"], b"{}")')
    res = check(tmp_path, text)
    assert res.code == 0, res
    assert "warning: basic_publish: not checked: routing_key is known only at run time (from the environment (KEY))" \
        in res.err


def test_errors(tmp_path):
    no_files = run_cli(["check-code", str(CHECK / "service.py"), "-f", str(tmp_path / "none.yaml")])
    assert no_files.code == 1
    wrong_vhost = run_cli(["check-code", str(CHECK / "service.py"), "-f", FILES, "--vhost", "shop", "--json"])
    assert wrong_vhost.code == 1
    assert json.loads(wrong_vhost.out)["error"]["message"] == "vhost 'shop' is not in the files (they define: '/')"


def test_the_example_service_agrees_with_its_topology():
    from helpers import ROOT

    example = ROOT / "examples" / "code-service"
    res = run_cli(["check-code", str(example), "-f", str(example / "topology.yaml")])
    assert res.code == 0, res
    assert "14 declarations in 2 files, 14 agree, 0 disagreements, 0 unchecked" in res.out
    assert run_cli(["validate", "-f", str(example / "topology.yaml")]).code == 0
    assert run_cli(["test", "-f", str(example / "topology.yaml")]).code == 0


def test_the_tutorial_programs_agree_with_the_tutorial_topology():
    """The shipped tutorial topology models each consumer's server-named queue as an exclusive one."""
    from helpers import EXAMPLES
    from scan_helpers import TUTORIALS

    res = run_cli(["check-code", str(TUTORIALS), "-f", str(EXAMPLES / "topoform.yaml"), "--json"])
    assert res.code == 0, res
    doc = json.loads(res.out)
    assert doc["summary"] == {"files": 13, "skipped": 0, "declarations": 32, "agree": 27, "disagree": 0,
                              "unchecked": 5}
    assert sorted(u["place"].rsplit("/", 1)[1] for u in doc["unchecked"]) == [
        "emit_log_direct.py:14", "emit_log_topic.py:14", "receive_logs_direct.py:21", "receive_logs_topic.py:21",
        "rpc_server.py:28"]


def test_a_disagreement_inside_a_helper_names_the_call_behind_it(tmp_path):
    (tmp_path / "topology.yaml").write_text("version: 1\nvhosts:\n  /:\n    queues:\n      good:\n"
                                            "        durable: true\n      bad:\n        durable: false\n")
    (tmp_path / "mq.py").write_text("def declare(ch, name):\n    ch.queue_declare(name, durable=True)\n")
    (tmp_path / "app.py").write_text("from mq import declare\ndeclare(None, 'good')\ndeclare(None, 'bad')\n")
    res = run_cli(["check-code", str(tmp_path), "-f", str(tmp_path / "topology.yaml")])
    assert res.code == 3, res
    assert f"mq.py:2 (called at {tmp_path / 'app.py'}:3): queue_declare: queue 'bad' durable" in res.out, res.out
    doc = json.loads(run_cli(["check-code", str(tmp_path), "-f", str(tmp_path / "topology.yaml"), "--json"]).out)
    assert [d["via"] for d in doc["disagreements"]] == [[f"{tmp_path / 'app.py'}:3"]]
