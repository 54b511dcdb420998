"""``topoform apply`` against the real broker: converge, no-op, refuse, lock, fail cleanly, resume."""
from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import EXAMPLES, ROOT, Management, run_cli, wait_for

from topoform.apply.lock import LOCK_QUEUE, BrokerLock
from topoform.broker.settings import quote_segment


# ----------------------------------------------------------------------------- helpers
def retarget(source: Path, vhost: str, dest: Path) -> list[str]:
    """Copy an example topology with its vhosts renamed to ``vhost``, ``vhost-2``, ...; returns the names."""
    doc = yaml.safe_load(source.read_text())
    names = {}
    for i, old in enumerate(doc.get("vhosts") or {}):
        names[old] = vhost if i == 0 else f"{vhost}-{i + 1}"
    doc["vhosts"] = {names[old]: body for old, body in doc["vhosts"].items()}
    for test in doc.get("tests") or ():
        test["vhost"] = names.get(test.get("vhost", "/"), test.get("vhost"))
    doc.pop("include", None)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return list(names.values())


def big_topology(vhost: str, n_exchanges: int = 100, n_queues: int = 900, n_bindings: int = 1000) -> str:
    """About 2,000 objects: exchanges, queues (some with arguments), queue and e2e bindings."""
    rnd = random.Random(11)
    exchanges = {f"x{i:03d}": {"type": ("topic", "direct", "fanout", "headers")[i % 4], "durable": True}
                 for i in range(n_exchanges)}
    queues = {f"q{i:04d}": ({"durable": True, "arguments": {"x-message-ttl": 1000 + i}} if i % 3 == 0
                            else {"durable": True}) for i in range(n_queues)}
    bindings, seen = [], set()
    while len(bindings) < n_bindings:
        src = f"x{rnd.randrange(n_exchanges):03d}"
        if len(bindings) % 10 == 9:
            dst, dtype = f"x{rnd.randrange(n_exchanges):03d}", "exchange"
        else:
            dst, dtype = f"q{rnd.randrange(n_queues):04d}", "queue"
        key = f"k.{rnd.randrange(50)}"
        if (src, dst, dtype, key) in seen or src == dst:
            continue
        seen.add((src, dst, dtype, key))
        b = {"source": src, "destination": dst, "destination_type": dtype, "routing_key": key}
        if exchanges[src]["type"] == "headers":
            b["arguments"] = {"x-match": "any", "n": len(bindings) % 5}
        bindings.append(b)
    return yaml.safe_dump({"version": 1, "vhosts": {vhost: {"exchanges": exchanges, "queues": queues,
                                                             "bindings": bindings}}}, sort_keys=False)


def counts(mgmt: Management, vhost: str) -> tuple[int, int, int]:
    d = mgmt.definitions(vhost)
    return len(d["exchanges"]), len(d["queues"]), len(d["bindings"])


def spawn_apply(broker_env: dict, files: Path, *extra: str, quiet: bool = False) -> subprocess.Popen:
    """``topoform apply --auto-approve`` in a subprocess (``quiet``: output discarded, so no pipe can fill up)."""
    env = dict(os.environ, **broker_env)
    stream = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "topoform", "apply", "--auto-approve", "-f", str(files), *extra],
                            env=env, cwd=str(ROOT), stdout=stream, stderr=stream, text=True)


def wait_for_lock(mgmt: Management, vhost: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = (text or "" for text in proc.communicate())
            raise AssertionError(f"apply ended (exit {proc.returncode}) before it was seen holding the lock: "
                                 f"{out[-500:]} {err[-1000:]}")
        r = mgmt.request("GET", f"/api/queues/{quote_segment(vhost)}/{LOCK_QUEUE}", expect=())
        if r.status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("the apply never took its lock")


# ----------------------------------------------------------------------------- convergence
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_every_example_applies_into_an_empty_vhost_and_then_plans_empty(example, vhost, admin, broker_env, cli,
                                                                          mgmt, tmp_path):
    files = tmp_path / "topoform.yaml"
    names = retarget(example, vhost, files)
    try:
        r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
        assert r.code == 0, r
        assert "Apply complete:" in r.out and " in " in r.out.splitlines()[-1]
        r = cli(["plan", "--detailed-exitcode", "-f", files], environ=broker_env)
        assert r.code == 0, r
        doc = yaml.safe_load(files.read_text())
        for name in names:  # exclusive queues are never declared
            declared = {q["name"] for q in mgmt.queues(name)}
            exclusive = {q for q, body in (doc["vhosts"][name].get("queues") or {}).items()
                         if (body or {}).get("exclusive")}
            assert not declared & exclusive
    finally:
        for extra in names[1:]:
            admin.delete_vhost(extra)


def test_apply_twice_is_a_no_op(vhost, broker_env, cli, mgmt, tmp_path):
    files = tmp_path / "topoform.yaml"
    retarget(EXAMPLES / "service.yaml", vhost, files)
    assert cli(["apply", "--auto-approve", "-f", files], environ=broker_env).code == 0
    before = mgmt.definitions(vhost)
    r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
    assert r.code == 0, r
    assert "No changes" in r.out and "Apply complete" not in r.out
    assert mgmt.definitions(vhost) == before


def test_a_new_vhost_is_created_with_permissions_for_the_applying_user(vhost, admin, broker_env, cli, mgmt, tmp_path):
    new = vhost + "-new"
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {new: {"description": "made by apply", "queues": {"q": {}}}}}))
    try:
        r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
        assert r.code == 0, r
        assert [q["name"] for q in mgmt.queues(new)] == ["q"]
        assert mgmt.get(f"/api/vhosts/{quote_segment(new)}")["description"] == "made by apply"
        assert cli(["plan", "--detailed-exitcode", "-f", files], environ=broker_env).code == 0
    finally:
        admin.delete_vhost(new)


# ----------------------------------------------------------------------------- refusals
def test_a_blocked_plan_changes_nothing_on_the_broker(vhost, amqp, broker_env, cli, mgmt, tmp_path):
    amqp.channel().queue_declare("orders", durable=True, arguments={"x-message-ttl": 60000})
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {
        "exchanges": {"events": {"type": "topic"}},
        "queues": {"orders": {"durable": True, "arguments": {"x-message-ttl": 30000}},
                   "fresh": {"bindings": [{"exchange": "events", "routing_key": "a.#"}]}},
        "policies": {"p": {"pattern": "^x", "definition": {"message-ttl": 5}}}}}}))
    before = mgmt.definitions(vhost)
    r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
    assert r.code == 3, r
    assert "x-message-ttl" in r.out and "blocked" in r.err
    assert mgmt.definitions(vhost) == before


def test_without_a_terminal_apply_requires_auto_approve(vhost, broker_env, cli, mgmt, tmp_path):
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {"queues": {"q": {}}}}}))
    r = cli(["apply", "-f", files], environ=broker_env)
    assert r.code == 1 and "--auto-approve" in r.err and "not a terminal" in r.err
    assert mgmt.queues(vhost) == []
    r = cli(["apply", "-f", files], environ=broker_env, stdin="yes\n", stdin_isatty=True)
    assert r.code == 1 and "CI=true" in r.err and mgmt.queues(vhost) == [], r  # a pipeline never prompts
    terminal = {k: v for k, v in broker_env.items() if k != "CI"}  # a person at a terminal
    r = cli(["apply", "-f", files], environ=terminal, stdin="no\n", stdin_isatty=True)
    assert r.code == 1 and "cancelled" in r.err and mgmt.queues(vhost) == []
    r = cli(["apply", "-f", files], environ=terminal, stdin="yes\n", stdin_isatty=True)
    assert r.code == 0, r
    assert [q["name"] for q in mgmt.queues(vhost)] == ["q"]


def test_a_saved_plan_is_applied_and_a_stale_one_refused(vhost, amqp, broker_env, cli, mgmt, tmp_path):
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {"queues": {"a": {"durable": True}}}}}))
    plan_file = tmp_path / "plan.json"
    assert cli(["plan", "-f", files, "--out", plan_file], environ=broker_env).code == 0
    amqp.channel().queue_declare("intruder", durable=True)  # the broker changes after the plan
    r = cli(["apply", "--auto-approve", plan_file], environ=broker_env)
    assert r.code == 1 and "stale" in r.err, r
    assert {q["name"] for q in mgmt.queues(vhost)} == {"intruder"}
    assert cli(["plan", "-f", files, "--out", plan_file], environ=broker_env).code == 0
    r = cli(["apply", "--auto-approve", plan_file], environ=broker_env)
    assert r.code == 0, r
    assert {q["name"] for q in mgmt.queues(vhost)} == {"intruder", "a"}


# ----------------------------------------------------------------------------- failures
def _management_url(broker, user: str, password: str) -> str:
    """The test broker's management URL with these credentials (each test broker has its own port)."""
    return broker.http_base_clean.replace("://", f"://{user}:{password}@", 1)


def test_a_user_without_configure_permission_gets_an_error_naming_the_object(vhost, admin, broker, cli, mgmt,
                                                                              tmp_path):
    user, password = f"tf-noconf-{secrets.token_hex(3)}", "pw-" + secrets.token_hex(10)
    admin.put(f"/api/users/{user}", {"password": password, "tags": "administrator"})
    admin.put(f"/api/permissions/{quote_segment(vhost)}/{user}", {"configure": "^(allowed\\.|topoform\\.lock$)",
                                                                   "write": ".*", "read": ".*"})
    try:
        files = tmp_path / "t.yaml"
        files.write_text(yaml.safe_dump({"vhosts": {vhost: {
            "exchanges": {"allowed.x": {"type": "topic"}, "secret.x": {"type": "topic"}},
            "queues": {"allowed.q": {"bindings": [{"exchange": "allowed.x", "routing_key": "k"}]}}}}}))
        env = {"TOPOFORM_URL": f"amqp://{user}:{password}@{broker.amqp_host}:{broker.amqp_port}/", "CI": "1",
               "TOPOFORM_MANAGEMENT_URL": _management_url(broker, user, password)}
        r = run_cli(["apply", "--auto-approve", "-f", files], environ=env, secrets=(password,))
        assert r.code == 1, r
        # the preflight (an administrator may read its own permissions) stops before any change
        assert f"missing: vhost '{vhost}': user '{user}' has no configure permission for exchange 'secret.x'" in r.err
        assert "apply stopped before changing anything" in r.err.strip().splitlines()[-1], r
        assert counts(mgmt, vhost) == (0, 0, 0)
        # once allowed, the next apply finishes what is left
        admin.put(f"/api/permissions/{quote_segment(vhost)}/{user}", {"configure": ".*", "write": ".*", "read": ".*"})
        r = run_cli(["apply", "--auto-approve", "-f", files], environ=env, secrets=(password,))
        assert r.code == 0, r
        assert counts(mgmt, vhost) == (2, 1, 1)
    finally:
        admin.delete(f"/api/users/{user}")


def test_wrong_credentials_give_a_one_line_error(vhost, broker, tmp_path):
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {"queues": {"q": {"durable": True}}}}}))
    wrong = "wrong-" + secrets.token_hex(8)
    env = {"TOPOFORM_URL": f"amqp://{broker.username}:{wrong}@{broker.amqp_host}:{broker.amqp_port}/", "CI": "1",
           "TOPOFORM_MANAGEMENT_URL": _management_url(broker, broker.username, wrong)}
    r = run_cli(["apply", "--auto-approve", "-f", files], environ=env, secrets=(wrong,))
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r
    assert broker.username in lines[0]


def test_a_refused_queue_delete_keeps_its_messages(vhost, amqp, broker_env, cli, mgmt, tmp_path):
    ch = amqp.channel()
    ch.queue_declare("full", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", "full", b"keep me")
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {"queues": {"other": {}}}}}))
    # the planner may not have seen the message yet (stats lag): the broker's if-empty guard holds anyway
    r = cli(["apply", "--auto-approve", "--prune", "-f", files], environ=broker_env)
    assert r.code in (1, 3), r
    assert "full" in (r.out + r.err)
    assert ch.queue_declare("full", passive=True).method.message_count == 1


# ----------------------------------------------------------------------------- lock and concurrency
def test_a_held_lock_makes_apply_wait_then_fail_naming_the_holder(vhost, broker, broker_env, cli, tmp_path):
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {"queues": {"q": {}}}}}))
    holder = BrokerLock(broker, holder="topoform apply by user 'ci' pid=4242 host=runner-7")
    holder.acquire([vhost])
    try:
        started = time.monotonic()
        r = cli(["apply", "--auto-approve", "--lock-timeout", "1", "-f", files], environ=broker_env)
        assert r.code == 1, r
        assert time.monotonic() - started >= 1.0
        assert "locked" in r.err and "pid=4242 host=runner-7" in r.err and f"vhost '{vhost}'" in r.err
    finally:
        holder.release()
    r = cli(["apply", "--auto-approve", "--lock-timeout", "5", "-f", files], environ=broker_env)
    assert r.code == 0, r


def test_two_concurrent_applies_never_interleave(vhost, broker, broker_env, tmp_path):
    files = tmp_path / "big.yaml"
    files.write_text(big_topology(vhost))
    # The test holds the lock first, so both applies are certainly running and contending
    # when it frees (without it, on a quiet broker the first apply can finish before the
    # second one has even started, and nothing would be shown).
    holder = BrokerLock(broker, holder="topoform test holder pid=1 host=test")
    holder.acquire([vhost])
    logs, procs = [], []
    try:
        for i in range(2):
            out, err = tmp_path / f"out{i}.txt", tmp_path / f"err{i}.txt"
            logs.append((out, err))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "topoform", "apply", "--auto-approve", "--lock-timeout", "120", "-f", str(files)],
                env=dict(os.environ, **broker_env), cwd=str(ROOT), stdout=out.open("w"), stderr=err.open("w")))
        deadline = time.monotonic() + 60
        while not all("Waiting for the apply lock" in err.read_text() for _, err in logs):
            assert time.monotonic() < deadline, [err.read_text() for _, err in logs]
            assert all(p.poll() is None for p in procs), [err.read_text() for _, err in logs]
            time.sleep(0.05)
    finally:
        holder.release()
    for p in procs:
        assert p.wait(timeout=180) == 0, [err.read_text() for _, err in logs]
    outs = [out.read_text() for out, _ in logs]
    errs = [err.read_text() for _, err in logs]
    # exactly one applied everything; the other waited for it, then planned on the finished state
    done = [o for o in outs if "Apply complete: 2000 created" in o]
    idle = [o for o in outs if "No changes" in o and "Apply complete" not in o]
    assert len(done) == 1 and len(idle) == 1, outs
    assert all("pid=" in e for e in errs)
    for text in outs + errs:
        assert broker.password not in text


def test_killed_applies_at_random_points_converge_on_the_next_run(vhost, broker_env, cli, mgmt, tmp_path):
    files = tmp_path / "big.yaml"
    files.write_text(big_topology(vhost))
    rnd = random.Random(20240501)
    progress = []
    for _ in range(5):
        proc = spawn_apply(broker_env, files, quiet=True)
        if rnd.random() < 0.2:  # while starting up
            time.sleep(rnd.uniform(0.0, 0.5))
        else:  # once it holds the lock: reading, planning, executing
            try:
                wait_for_lock(mgmt, vhost, proc)
            except AssertionError:
                pass  # it already finished
            if rnd.random() < 0.5:  # once it has started creating (on a loaded machine the plan alone takes
                before = progress[-1] if progress else 0  # longer than any fixed pause)
                wait_for(lambda: proc.poll() is not None or sum(counts(mgmt, vhost)) > before, timeout=20, step=0.05)
            time.sleep(rnd.uniform(0.0, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        progress.append(sum(counts(mgmt, vhost)))
    print("objects on the broker after each kill:", progress)
    assert any(0 < n < 2000 for n in progress), progress  # at least one kill landed mid-apply
    r = cli(["apply", "--auto-approve", "--lock-timeout", "10", "-f", files], environ=broker_env)
    assert r.code == 0, (progress, r)
    r = cli(["plan", "--detailed-exitcode", "-f", files], environ=broker_env)
    assert r.code == 0, (progress, r)
    assert counts(mgmt, vhost) == (100, 900, 1000)
    assert mgmt.get(f"/api/queues/{quote_segment(vhost)}?columns=name,exclusive") and \
        LOCK_QUEUE not in {q["name"] for q in mgmt.queues(vhost)}


def test_a_connection_closed_mid_apply_is_retried(vhost, admin, broker, mgmt):
    from topoform.apply.executor import ApplyContext, ApplyOptions, apply_plan
    from topoform.apply.progress import Progress
    from topoform.broker import amqp as amqp_mod
    from topoform.broker.http import ManagementClient
    from topoform.model import Queue
    from topoform.planner.plan import Action, Change, Plan

    queues = [Queue(vhost, f"r{i:04d}", durable=True) for i in range(600)]
    plan = Plan(changes=tuple(Change(Action.CREATE, "queue", vhost, q.name, after=q) for q in queues))
    name = amqp_mod.holder_name("apply")

    class CloseOnce(Progress):
        closed = False
        notes: list = []

        def done(self, change, count=1):
            if self.closed or change.name != "r0100":
                return
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not self.closed:  # the listing lags a little behind
                for conn in admin.get("/api/connections?columns=name,client_properties,vhost"):
                    if conn.get("vhost") == vhost and (conn.get("client_properties") or {}).get(
                            "connection_name") == name:
                        admin.request("DELETE", f"/api/connections/{quote_segment(conn['name'])}",
                                      expect=(200, 204, 404))
                        self.closed = True
                time.sleep(0.05)

        def note(self, text):
            self.notes.append(text)

    progress = CloseOnce()
    ctx = ApplyContext(settings=broker, client=ManagementClient(broker), options=ApplyOptions(channels=4),
                       progress=progress)
    result = apply_plan(plan, ctx)
    assert progress.closed
    assert result.ok, result.failed
    assert len(result.done) == 600
    assert any("lost" in n and "retrying" in n for n in progress.notes), progress.notes
    assert len(mgmt.queues(vhost)) == 600
