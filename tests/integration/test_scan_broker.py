"""The RabbitMQ tutorials as pika programs: the scan's topology is what a live broker holds after running them.

Each program of ``tests/data/code/tutorials`` runs unchanged in a subprocess, pointed at
the test's own vhost through ``AMQP_URL``. Consumers stay up (their exclusive,
server-named queues live as long as their connections); the RPC client runs before the
server, so it keeps waiting with its callback queue in place. Then the broker is read:
``read_live`` for the durable objects, the queue and binding listings for the run-time
(exclusive) queues, each matched to the program that created it. The scan must hold
exactly the same objects, its server-named queues standing for the broker's
``amq.gen-*`` ones, and must say at the right line that the binding keys come from the
command line.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from topoform.broker.http import ManagementClient
from topoform.broker.live import read_live
from topoform.broker.rows import queue_from_row
from topoform.broker.settings import quote_segment
from topoform.planner.normalize import normalize_queue
from topoform.scan import scan_paths
from topoform.scan.model import ServerNamed

TUTORIALS = Path(__file__).resolve().parent.parent / "data" / "code" / "tutorials"

# (program, command-line arguments, what to wait for: a line it prints, or None = until it exits)
PROGRAMS = [
    ("send.py", [], None),
    ("receive.py", [], "Waiting for messages"),
    ("new_task.py", ["A", "task..."], None),
    ("worker.py", [], "Waiting for messages"),
    ("receive_logs.py", [], "Waiting for logs"),
    ("emit_log.py", ["info: hello"], None),
    ("receive_logs_direct.py", ["warning", "error"], "Waiting for logs"),
    ("emit_log_direct.py", ["error", "disk full"], None),
    ("receive_logs_topic.py", ["*.orange.*", "lazy.#"], "Waiting for logs"),
    ("emit_log_topic.py", ["quick.orange.rabbit", "hi"], None),
    ("rpc_client.py", [], "Requesting fib(30)"),  # before the server: it keeps waiting, its queue stays
    ("rpc_server.py", [], "Awaiting RPC requests"),
]
# The scan's line for each program whose binding keys come from sys.argv.
ARGV_BINDINGS = {"receive_logs_direct.py": 21, "receive_logs_topic.py": 21}


def _wait_for(proc: subprocess.Popen, text: str | None, timeout: float = 30.0) -> None:
    """Until the program prints ``text`` (or, for None, exits 0); fails after ``timeout`` seconds."""
    if text is None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{proc.args} did not finish within {timeout}s") from None
        assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}: {proc.stderr.read()}"
        return
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
            if text in line:
                return
        lines.put(None)  # the program stopped

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"{proc.args} did not print {text!r} within {timeout}s: {''.join(seen)}") from None
        if line is None:
            raise AssertionError(f"{proc.args} stopped before printing {text!r}: {''.join(seen)}")
        seen.append(line)
        if text in line:
            return


def _exclusive(mgmt, vhost: str) -> dict[str, dict]:
    rows = mgmt.get(f"/api/queues/{quote_segment(vhost)}?columns=name,durable,exclusive,auto_delete,arguments,"
                    "owner_pid_details")
    return {r["name"]: r for r in rows if r.get("exclusive")}


def test_tutorials_scan_to_what_the_broker_holds(broker, vhost, mgmt, broker_version):
    version = f"{broker_version[0]}.{broker_version[1]}"
    result = scan_paths([str(TUTORIALS)], vhost=vhost, version=version)
    assert not result.conflicts
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               AMQP_URL=f"amqp://{quote(broker.username, safe='')}:{quote(broker.password, safe='')}@"
                        f"{broker.amqp_host}:{broker.amqp_port}/{quote(vhost, safe='')}")
    running: list[subprocess.Popen] = []
    owners: dict[str, str] = {}  # live exclusive queue -> the program that declared it
    try:
        for program, argv, ready in PROGRAMS:
            before = set(_exclusive(mgmt, vhost))
            proc = subprocess.Popen([sys.executable, program, *argv], cwd=TUTORIALS, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            running.append(proc)
            _wait_for(proc, ready)
            for name in set(_exclusive(mgmt, vhost)) - before:
                owners[name] = program
        # ---- the durable part, as topoform reads it
        client = ManagementClient(broker)
        try:
            live = read_live(client, [vhost], stats=False).topology
        finally:
            client.close()
        exclusive = _exclusive(mgmt, vhost)
        bindings = mgmt.get(f"/api/bindings/{quote_segment(vhost)}")
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            for stream in (proc.stdout, proc.stderr):
                stream.close()

    scanned = result.topology
    runtime = {k: q for k, q in scanned.queues.items() if q.exclusive}
    durable_part = {k: q for k, q in scanned.queues.items() if not q.exclusive}
    # exchanges and named queues: exactly the broker's
    assert {k: x for k, x in scanned.exchanges.items()} == dict(live.exchanges)
    assert {k: normalize_queue(q) for k, q in durable_part.items()} == \
        {k: normalize_queue(q) for k, q in live.queues.items()}
    assert {b for b in scanned.bindings if (b.vhost, b.destination) not in
            {(k[1], k[2]) for k in runtime}} == set(live.bindings)

    # run-time queues: one live amq.gen-* queue per server-named queue, declared by the same program
    by_program = {}
    for decl in result.declarations:
        if decl.server_named:
            by_program[Path(decl.place.path).name] = decl.server_named
    assert sorted(owners.values()) == sorted(by_program)
    for live_name, program in owners.items():
        assert live_name.startswith("amq.gen-")
        ref = by_program[program]
        row = exclusive[live_name]
        live_queue = queue_from_row(row, vhost).replace(name=ref)
        assert normalize_queue(scanned.queue(vhost, ref)) == normalize_queue(live_queue), program
        live_keys = sorted((b["source"], b["routing_key"]) for b in bindings
                           if b["destination"] == live_name and b["source"])
        scanned_keys = sorted((b.source, live_name if b.routing_key == ref else b.routing_key)
                              for b in scanned.bindings if b.destination == ref)
        if program in ARGV_BINDINGS:
            # the keys come from the command line: the scan writes no binding and says so at that line
            assert scanned_keys == []
            argv = next(a for p, a, _ in PROGRAMS if p == program)
            source = next(s for s, _ in live_keys)
            assert live_keys == sorted((source, k) for k in argv)
            found = [i for i in result.issues if i.code == "unresolved" and i.place.path.endswith(program)
                     and i.field == "routing_key"]
            assert [i.place.line for i in found] == [ARGV_BINDINGS[program]], found
            assert "command line (sys.argv)" in found[0].message
        else:
            assert scanned_keys == live_keys, program
    # every server-named queue the scan found is a queue in its topology, marked exclusive
    assert set(by_program.values()) == {k[2] for k in runtime}
    assert all(isinstance(d.fields["name"], ServerNamed) for d in result.declarations
               if d.kind == "queue" and d.server_named)


def test_scan_output_validates_and_tests_pass_on_this_version(tmp_path, broker_version, cli):
    version = f"{broker_version[0]}.{broker_version[1]}"
    out = tmp_path / "tutorials.yaml"
    res = cli(["scan", str(TUTORIALS), "-o", str(out), "--rabbitmq-version", version])
    assert res.code == 0, res
    assert cli(["validate", "-f", str(out), "--rabbitmq-version", version]).code == 0
    tested = cli(["test", "-f", str(out), "--rabbitmq-version", version])
    assert tested.code == 0 and "4 passed, 0 failed" in tested.out, tested
