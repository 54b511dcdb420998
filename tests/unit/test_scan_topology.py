"""topoform scan: conflicts with the broker's verdict, the topology YAML, route tests, the command line."""
from __future__ import annotations

import json

from helpers import run_cli
from scan_helpers import SERVICES, TUTORIALS

from topoform.load import load_text
from topoform.scan import scan_paths


def test_cross_service_conflicts_name_both_places_the_field_and_the_verdict():
    result = scan_paths([str(SERVICES)], cwd=str(SERVICES))
    got = [(str(c.place), str(c.other), c.field, c.verdict) for c in result.conflicts]
    root = str(SERVICES)
    assert got == [
        (f"{root}/frontend/notifier.ts:10", f"{root}/notifications/tasks.py:7", "arguments.x-owner", "ignores"),
        (f"{root}/billing/worker.py:25", f"{root}/orders/publisher.py:24", "arguments.x-message-ttl", "rejects"),
    ]
    by_field = {c.field: c.message for c in result.conflicts}
    assert by_field["arguments.x-message-ttl"].endswith(
        "arguments.x-message-ttl 30000 vs 60000; the broker rejects the second declare with 406 "
        "PRECONDITION_FAILED (the service that starts second crashes)")
    assert "silently ignores" in by_field["arguments.x-owner"]


def test_scan_cli_exit_3_on_conflicts_and_yaml_that_validates(tmp_path):
    out = tmp_path / "topology.yaml"
    res = run_cli(["scan", "services", "-o", str(out)], cwd=SERVICES.parent)
    assert res.code == 3, res
    assert "services/billing/worker.py:25: queue 'orders.audit' is declared differently at " \
           "services/billing/worker.py:25 and services/orders/publisher.py:24" in res.err
    text = out.read_text()
    loaded = load_text(text, str(out))
    assert loaded.ok, [f.format() for f in loaded.errors]
    topology = loaded.topology
    # the first declaration (in file order) is written; every place is named in a comment
    assert topology.queue("/", "orders.audit").arguments == {"x-message-ttl": 30000}
    assert "# declared at services/billing/worker.py:25, services/orders/publisher.py:24\n      orders.audit:" in text
    assert "# declared at services/frontend/gateway.js:11, services/legacy/consumer.py:13, " \
           "services/orders/publisher.py:14\n      orders:" in text
    assert "# bound at services/orders/publisher.py:53" in text
    # server-named queues are run-time (exclusive) queues
    assert topology.queue("/", "billing.worker.server-named").exclusive
    # route tests from publishes, with the queues the simulator reaches
    tests = {(t.exchange, t.routing_key): t.expect for t in topology.tests}
    assert tests[("orders", "order.created")] == ("gateway.requests", "orders.audit")
    assert tests[("billing", "invoice.created")] == ("billing.worker.server-named",)
    assert tests[("orders", "refund.requested")] == ()
    assert ("orders", "order.cancelled.") not in {(e, k[:15]) for e, k in tests}  # unresolved key: no test
    assert run_cli(["test", "-f", str(out)]).code == 0


def test_scan_report_json():
    res = run_cli(["scan", "tutorials", "--json", "--rabbitmq-version", "3.10"], cwd=TUTORIALS.parent)
    assert res.code == 0, res
    doc = json.loads(res.out)
    assert doc["format_version"] == 1
    assert doc["rabbitmq_version"] == "3.10" and doc["rabbitmq_version_source"] == "flag"
    assert doc["conflicts"] == []
    assert doc["summary"] == {"files": 13, "skipped": 0, "declarations": 32, "unresolved": 5, "conflicts": 0}
    argv = [i for i in doc["issues"] if i["code"] == "unresolved" and "sys.argv" in i["message"]]
    assert sorted(i["place"] for i in argv) == ["tutorials/emit_log_direct.py:14", "tutorials/emit_log_topic.py:14",
                                                "tutorials/receive_logs_direct.py:21",
                                                "tutorials/receive_logs_topic.py:21"]
    assert doc["topology"] == {"vhost": 0, "exchange": 3, "queue": 7, "binding": 1, "policy": 0, "test": 4}


def test_scan_output_directory_vhost_and_refusing_to_overwrite(tmp_path):
    res = run_cli(["scan", str(TUTORIALS / "send.py"), "-o", f"{tmp_path}/", "--vhost", "shop"])
    assert res.code == 0, res
    written = tmp_path / "shop.yaml"
    assert load_text(written.read_text()).topology.queue("shop", "hello") is not None
    written.write_text("# edited\n")
    again = run_cli(["scan", str(TUTORIALS / "send.py"), "-o", str(written), "--vhost", "shop"])
    assert again.code == 1 and "exists and differs" in again.err and "--force" in again.err
    assert run_cli(["scan", str(TUTORIALS / "send.py"), "-o", str(written), "--force"]).code == 0


def test_scan_errors_are_one_line(tmp_path):
    missing = run_cli(["scan", str(tmp_path / "nope")])
    assert missing.code == 1 and missing.err.strip().endswith(f"no such file or directory: {tmp_path / 'nope'}")
    assert "Traceback" not in missing.err
    (tmp_path / "README.md").write_text("no code\n")
    empty = run_cli(["scan", str(tmp_path), "--json"])
    assert empty.code == 1 and json.loads(empty.out)["error"]["code"] == "usage"
    bad_version = run_cli(["scan", str(TUTORIALS), "--rabbitmq-version", "2.8"])
    assert bad_version.code == 1 and "--rabbitmq-version" in bad_version.err


def test_credentials_in_the_code_never_reach_the_output(tmp_path):
    (tmp_path / "svc.py").write_text(
        "ch.queue_declare(queue=lookup('amqp://svc:s3cr3t-pw@broker:5672/'), durable=True)\n"
        "ch.queue_declare('q', arguments={'x-dead-letter-exchange': pick('amqp://svc:s3cr3t-pw@broker/')})\n")
    for argv in (["scan", str(tmp_path)], ["scan", str(tmp_path), "--json"],
                 ["scan", str(tmp_path), "-o", str(tmp_path / "out.yaml")]):
        res = run_cli(argv)
        assert res.code == 0, res
        assert "s3cr3t-pw" not in res.out + res.err
        assert "computed by lookup(" in res.out + res.err
    assert "s3cr3t-pw" not in (tmp_path / "out.yaml").read_text()


def test_a_passive_declare_is_listed_by_name_only(tmp_path):
    (tmp_path / "svc.py").write_text(
        "import aio_pika\n"
        "async def main(channel):\n"
        "    await channel.declare_exchange('payments', aio_pika.ExchangeType.TOPIC, durable=True)\n"
        "    await channel.get_exchange('payments')\n"
        "    await channel.get_queue('jobs')\n")
    res = run_cli(["scan", "svc.py"], cwd=tmp_path)
    lines = res.out.splitlines()
    assert "svc.py:4: passive exchange 'payments'  [aio-pika get_exchange]" in lines, res.out
    assert "svc.py:5: passive queue 'jobs'  [aio-pika get_queue]" in lines, res.out
    assert "svc.py:3: exchange 'payments' (topic; durable)  [aio-pika declare_exchange]" in lines, res.out


def test_a_conflict_between_two_calls_of_one_helper_names_the_calls(tmp_path):
    (tmp_path / "helpers.py").write_text(
        "def declare_worker_queue(ch, name, ttl=60000):\n"
        "    ch.queue_declare(queue=name, durable=True, arguments={'x-message-ttl': ttl})\n")
    (tmp_path / "svc_a.py").write_text("from helpers import declare_worker_queue\n"
                                       "declare_worker_queue(ch, 'work.images')\n")
    (tmp_path / "svc_b.py").write_text("import helpers\n\nhelpers.declare_worker_queue(ch, 'work.images', ttl=30000)\n")
    res = run_cli(["scan", "."], cwd=tmp_path)
    assert res.code == 3, res
    assert ("helpers.py:2: queue 'work.images' is declared differently at helpers.py:2 (called at svc_a.py:2) and "
            "helpers.py:2 (called at svc_b.py:3): arguments.x-message-ttl 60000 vs 30000") in res.err, res.err
    conflict, = json.loads(run_cli(["scan", ".", "--json"], cwd=tmp_path).out)["conflicts"]
    assert (conflict["place"], conflict["via"], conflict["other_place"], conflict["other_via"]) == (
        "helpers.py:2", ["svc_a.py:2"], "helpers.py:2", ["svc_b.py:3"])


def test_no_source_files_names_every_extension_the_scan_reads(tmp_path):
    from topoform.scan import source_extensions

    (tmp_path / "README.md").write_text("no code\n")
    res = run_cli(["scan", str(tmp_path)])
    assert res.code == 1
    for ext in source_extensions():
        assert f"*{ext}" in res.err, (ext, res.err)
    assert "*.jsx" in res.err and "*.mts" in res.err  # read by the JavaScript scanner, once left out


def test_a_file_reached_twice_through_a_symlink_is_scanned_once(tmp_path):
    svc = tmp_path / "svc"
    svc.mkdir()
    (svc / "worker.py").write_text("ch.queue_declare('jobs', durable=True)\n")
    (svc / "alias.py").symlink_to(svc / "worker.py")
    res = run_cli(["scan", str(svc), "--json"])
    assert res.code == 0, res  # a file never conflicts with itself
    out = json.loads(res.out)
    assert out["summary"]["declarations"] == 1 and len(out["files"]) == 1, out
    twice = run_cli(["scan", str(svc / "worker.py"), str(svc), "--json"])
    assert json.loads(twice.out)["summary"]["declarations"] == 1


def test_a_syntax_error_says_which_python_read_the_file(tmp_path):
    import sys

    (tmp_path / "new.py").write_text("def f(:\n    pass\n")
    (tmp_path / "latin.py").write_bytes(b"x = '\xe9'\n")
    res = run_cli(["scan", str(tmp_path)])
    lines = res.err.splitlines()
    syntax = [x for x in lines if "new.py" in x]
    assert syntax and f"(read as Python {sys.version_info.major}.{sys.version_info.minor})" in syntax[0], res.err
    decoding = [x for x in lines if "latin.py" in x]
    assert decoding and "read as Python" not in decoding[0], res.err  # not a matter of the Python version


def test_notes_are_shown_in_the_text_output_after_the_warnings(tmp_path):
    (tmp_path / "svc.py").write_text(
        "ch.exchange_declare('amq.topic', exchange_type='topic', durable=True)\n"
        "ch.queue_declare(queue=name_from_env(), durable=True)\n")
    res = run_cli(["scan", str(tmp_path)])
    assert res.code == 0, res
    lines = [x for x in res.err.splitlines() if x.strip()]
    note = [i for i, x in enumerate(lines) if "note: " in x and "amq.topic" in x]
    warning = [i for i, x in enumerate(lines) if "warning: " in x]
    assert note and warning and max(warning) < note[0], res.err


def test_declares_the_broker_refuses_are_reported_at_the_code(tmp_path):
    (tmp_path / "svc.py").write_text(
        "ch.queue_declare('jobs', arguments={'x-queue-type': 'quorum'})\n"  # pika's durable=False
        "ch.queue_declare('prio', durable=True, arguments={'x-queue-type': 'quorum', 'x-max-priority': 10})\n"
        "ch.queue_declare('ok', durable=True, arguments={'x-queue-type': 'quorum'})\n")
    res = run_cli(["scan", str(tmp_path), "--json"])
    assert res.code == 0, res
    found = {(i["place"], i["code"]) for i in json.loads(res.out)["issues"]}
    assert found == {(f"{tmp_path}/svc.py:1", "quorum-not-durable"),
                     (f"{tmp_path}/svc.py:2", "argument-not-for-queue-type")}, found
    text = run_cli(["scan", str(tmp_path)])
    assert "svc.py:1: warning: quorum queue 'jobs' must be durable; the broker refuses it" in text.err, text.err


def test_a_binding_key_that_loses_messages_is_reported_at_the_bind(tmp_path):
    (tmp_path / "svc.py").write_text(
        "ch.exchange_declare('events', exchange_type='topic', durable=True)\n"
        "ch.queue_declare('audit', durable=True)\n"
        "ch.queue_bind('audit', 'events', routing_key='order.*created')\n"
        "ch.queue_bind('audit', 'events', routing_key='order.#')\n")
    res = run_cli(["scan", str(tmp_path), "--json"])
    issues = [i for i in json.loads(res.out)["issues"] if i["code"] == "suspicious-binding-key"]
    assert [i["place"] for i in issues] == [f"{tmp_path}/svc.py:3"], issues
    assert "did you mean 'order.*.created'?" in issues[0]["message"]


def test_an_unresolved_object_is_not_judged_by_the_defaults_it_is_written_with(tmp_path):
    (tmp_path / "svc.py").write_text(
        "import os\n"
        "ch.queue_declare('jobs', durable=os.environ['DURABLE'] == '1', arguments={'x-queue-type': 'quorum'})\n")
    res = run_cli(["scan", str(tmp_path), "--json"])
    codes = [i["code"] for i in json.loads(res.out)["issues"]]
    assert "quorum-not-durable" not in codes and "unresolved" in codes, codes


def test_refusals_are_found_for_names_and_values_json_would_not_carry_exactly(tmp_path):
    # a float JSON writes without a dot (1e+20) and a name with a YAML 1.1 line break (U+2028)
    # go to the loader in block style: their findings still name the right declare
    (tmp_path / "svc.py").write_text(
        "ch.queue_declare('big', durable=True, arguments={'x-message-ttl': 1e20})\n"
        "ch.queue_declare('odd\\u2028name', arguments={'x-queue-type': 'quorum'})\n", encoding="utf-8")
    res = run_cli(["scan", str(tmp_path), "--json"])
    found = {(i["place"].rsplit(":", 1)[-1], i["code"]) for i in json.loads(res.out)["issues"]}
    assert ("2", "quorum-not-durable") in found, found
    assert any(line == "1" for line, _ in found), found  # a float TTL is not an integer: refused
