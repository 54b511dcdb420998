"""``apply PLANFILE`` and Ctrl-C during apply, on the real broker (issue 12 items 1 and 7).

* A plan saved by ``plan --out`` is applied with no prompt and no ``--auto-approve``
  (stdin is not a terminal); flags that would change it are refused before anything is
  touched; once the broker changed, the same file is refused as stale.
* SIGINT while ``apply --migrate`` is in the middle of a migration (the test hook pauses
  it after the messages moved out): exit 130, what was done and what was not, and the
  next ``apply --migrate`` finishes the migration with every message kept.

Nothing here differs between RabbitMQ versions except the quorum queue's own defaults,
which the test does not compare: it checks the queue type the broker reports.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pika

from helpers import ROOT
from topoform.broker.settings import quote_segment


def _names(mgmt, vhost: str) -> set[str]:
    return {q["name"] for q in mgmt.queues(vhost)}


def test_a_saved_plan_is_applied_without_a_prompt(vhost, broker_env, cli, mgmt, tmp_path):
    files = tmp_path / "t.yaml"
    files.write_text(f"vhosts:\n  {vhost}:\n    exchanges: {{events: {{type: topic, durable: true}}}}\n"
                     "    queues:\n      billing: {durable: true, bindings: [{exchange: events, routing_key: 'order.*'}]}\n")
    plan_file = tmp_path / "plan.json"
    r = cli(["plan", "-f", files, "--out", plan_file, "--format", "markdown"], environ=broker_env)
    assert r.code == 0 and r.out.startswith("### topoform plan") and "to create" in r.out, r
    for extra in (["--prune"], ["-f", str(files)], ["--migrate"], ["--var", "a=1"]):
        r = cli(["apply", plan_file, *extra], environ=broker_env)
        assert r.code == 1 and extra[0] in r.err and "nothing was applied" in r.err, r
    assert _names(mgmt, vhost) == set()  # refused flags touched nothing
    r = cli(["apply", plan_file], environ=broker_env)  # no --auto-approve, stdin not a terminal
    assert r.code == 0, r
    assert "Do you want" not in r.out and "Apply complete: 3 created" in r.out, r
    assert _names(mgmt, vhost) == {"billing"}
    r = cli(["apply", plan_file], environ=broker_env)  # the broker has changed since (by this very apply)
    assert r.code == 1 and "stale" in r.err, r


def _topology(vhost: str, queue_args: str) -> str:
    return (f"vhosts:\n  {vhost}:\n    exchanges:\n      events: {{type: topic, durable: true}}\n"
            f"    queues:\n      orders:\n        durable: true\n        arguments: {{{queue_args}}}\n"
            "        bindings: [{exchange: events, routing_key: 'order.*'}]\n")


def _ctrl_c_works() -> None:
    """In the child before exec: SIGINT back to its default action. A test run started as a
    background job of a non-interactive shell inherits SIGINT ignored, and Python then never
    turns Ctrl-C into KeyboardInterrupt: the apply would sleep through it (seen when CI was
    started with ``(bash -c '...' &)``)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_migration_stops_cleanly_and_the_next_apply_finishes_it(vhost, broker, broker_env, cli,
                                                                                  mgmt, amqp, tmp_path):
    topo = tmp_path / "t.yaml"
    topo.write_text(_topology(vhost, ""))
    assert cli(["apply", "-f", topo, "--auto-approve"], environ=broker_env).code == 0
    ch = amqp.channel()
    for i in range(200):
        ch.basic_publish("events", "order.created", f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
    deadline = time.monotonic() + 30
    while ch.queue_declare("orders", passive=True).method.message_count < 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    topo.write_text(_topology(vhost, "x-queue-type: quorum") + "      more: {durable: true}\n")
    marker = tmp_path / "paused"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPOFORM_")}
    env.update(broker_env, TOPOFORM_TEST_PAUSE_AT="take_bindings", TOPOFORM_TEST_PAUSE_FILE=str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "topoform", "apply", "--migrate", "--auto-approve",
                             "--lock-timeout", "30", "-f", str(topo)], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_works)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, f"apply ended before the pause: {proc.communicate()}"
            assert time.monotonic() < deadline, "the pause point was not reached"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "Interrupted: 1 of 2 changes done, 1 not done" in err, err
    assert "Done: create queue 'more'" in err and "Not done: migrate queue 'orders'" in err, err
    assert "'topoform apply --migrate' finishes it" in err and "Traceback" not in err + out, err
    assert broker.password not in out + err
    # the lock was released: the next apply starts at once and finishes the migration
    r = cli(["apply", "--migrate", "--auto-approve", "--lock-timeout", "0", "-f", topo], environ=broker_env)
    assert r.code == 0, r
    q = mgmt.get(f"/api/queues/{quote_segment(vhost)}/orders")
    assert q["arguments"].get("x-queue-type") == "quorum" or q.get("type") == "quorum"
    deadline = time.monotonic() + 30
    while ch.queue_declare("orders", passive=True).method.message_count != 200:
        assert time.monotonic() < deadline, "the migrated queue does not hold the 200 messages"
        time.sleep(0.1)
    assert {n for n in _names(mgmt, vhost) if not n.startswith("topoform.")} == {"orders", "more"}
    r = cli(["plan", "-f", topo, "--detailed-exitcode"], environ=broker_env)
    assert r.code == 0, r


def test_a_saved_plan_keeps_its_guards_and_its_broker(vhost, broker, broker_env, cli, mgmt, tmp_path):
    """A queue that gains a message after 'plan --prune --out' is not deleted: 'apply PLANFILE
    --allow-data-loss' is refused, and the plan's own delete keeps its if-empty guard. The plan
    records the broker it was made for (no credentials) and a digest of its content."""
    from conftest import brokers_table

    mgmt.put(f"/api/queues/{quote_segment(vhost)}/old", {"durable": True})
    files = tmp_path / "t.yaml"
    files.write_text(f"vhosts:\n  {vhost}:\n    queues:\n      kept: {{durable: true}}\n")
    plan_file = tmp_path / "plan.json"
    deadline = time.monotonic() + 60  # the plan deletes it once the broker's statistics report it empty
    while True:
        r = cli(["plan", "-f", files, "--prune", "--out", plan_file], environ=broker_env)
        if r.code != 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.code == 0 and "-   queue old" in r.out, r
    saved = plan_file.read_text()
    made = json.loads(saved)["broker"]
    assert made["management_url"] == broker.http_base_clean and made["cluster_name"] and made["rabbitmq_version"]
    assert broker.password not in saved and json.loads(saved)["digest"].startswith("sha256:")
    mgmt.request("POST", f"/api/exchanges/{quote_segment(vhost)}/amq.default/publish",
                 {"properties": {}, "routing_key": "old", "payload": "late", "payload_encoding": "string"})
    for extra in (["--allow-data-loss"], ["--force"]):
        r = cli(["apply", plan_file, *extra], environ=broker_env)
        assert r.code == 1 and extra[0] in r.err and "nothing was applied" in r.err, r
    assert _names(mgmt, vhost) == {"old"}
    r = cli(["apply", plan_file], environ=broker_env)  # the delete's if-empty guard holds
    assert r.code == 1 and "old" in _names(mgmt, vhost), r
    # the same plan against another of the test brokers: refused before anything is read
    here = mgmt.get("/api/overview")["cluster_name"]
    for name, ports in brokers_table().items():
        other = {**broker_env, "TOPOFORM_URL": f"amqp://guest:guest@localhost:{ports['amqp']}/",
                 "TOPOFORM_MANAGEMENT_URL": f"http://guest:guest@localhost:{ports['http']}/"}
        if broker.http_base_clean.endswith(f":{ports['http']}"):
            continue  # this very broker
        r = cli(["apply", plan_file], environ=other)
        assert r.code == 1 and "was made for another broker" in r.err and here in r.err, r
        assert "guest:guest" not in r.err
        break
