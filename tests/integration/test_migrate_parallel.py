"""Parallel migrations (``apply --migrate --parallel N``) are each as safe as one alone.

Six classic queues become quorum in one apply, three at a time. The run is killed with
SIGKILL five times: once at a random moment while at least two migrations are moving
messages at once (which also shows that they do run in parallel), three times at a step
that the first migration to get there pauses at (the others are wherever they are), and
once more at a random moment. One more ``apply --migrate --parallel 3`` must then leave
each queue quorum, with its bindings, holding every one of its messages exactly once and
in order, and nothing of the migrations behind.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import migrate_support as ms  # noqa: E402

QUEUES = [f"q{i}" for i in range(6)]
N = 600  # messages per queue; batches of 50 (test hook TOPOFORM_TEST_BATCH): 12 batches a move
PAUSES = ["delete_queue", "move_back:1:confirmed", "restore_bindings"]


def _topology(vhost: str) -> str:
    queues = "".join(f"""
      {q}:
        durable: true
        arguments: {{x-queue-type: quorum}}
        bindings:
          - {{exchange: events, routing_key: "{q}.*"}}""" for q in QUEUES)
    return f"""
vhosts:
  {vhost}:
    exchanges:
      events: {{type: topic, durable: true}}
    queues:{queues}
"""


def _temps(amqp) -> dict[str, int]:
    """The migrations' temporary queues that exist now, with their message counts."""
    out = {}
    for q in QUEUES:
        n = ms.count(amqp, f"topoform.migrate.{q}")
        if n is not None:
            out[q] = n
    return out


def test_parallel_migrations_killed_five_times_then_one_more_apply_leave_every_message_once(
        broker, broker_env, vhost, amqp, mgmt, tmp_path, test_password):
    env = {**broker_env, "TOPOFORM_TEST_BATCH": "50"}
    ch = amqp.channel()
    ch.exchange_declare("events", "topic", durable=True)
    for q in QUEUES:
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, "events", f"{q}.*")
    ch.close()
    # no priorities: quorum queues from 4.0 deliver by priority; without, FIFO on every version
    messages = {q: ms.corpus(N, broker.username, seed=100 + i, priorities=False) for i, q in enumerate(QUEUES)}
    for q in QUEUES:
        ms.publish(amqp, q, messages[q])
    topo = tmp_path / "topology.yaml"
    topo.write_text(_topology(vhost))
    extra = ("--parallel", "3")
    rnd = random.Random(17)
    kills: list[str] = []
    most_at_once = 0

    def settle() -> None:
        # the broker requeues a killed connection's unacknowledged batches a moment after the kill
        names = QUEUES + [f"topoform.migrate.{q}" for q in QUEUES]
        total = ms.settle_total(amqp, names, len(QUEUES) * N)
        assert total >= len(QUEUES) * N, f"after kill {kills[-1]}: only {total} messages left"

    # 1. a random moment while at least two migrations move messages at once
    proc = ms.start_apply(env, topo, extra=extra)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        busy = {q: n for q, n in _temps(amqp).items() if n > 0}
        most_at_once = max(most_at_once, len(busy))
        if len(busy) >= 2 and sum(busy.values()) >= rnd.randint(100, 500):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the apply finished before two migrations were seen moving at once"
    assert most_at_once >= 2, "the migrations did not run at once"
    out = ms.kill(proc)
    kills.append(f"random, {most_at_once} migrations moving")
    assert test_password not in out
    settle()

    # 2-4. where the first migration to get there pauses; the others are wherever they are
    for point in PAUSES:
        marker = tmp_path / f"paused-{point.replace(':', '-')}"
        proc = ms.start_apply(env, topo, pause=point, pause_file=marker, extra=extra)
        ms.wait_pause(proc, marker, point)
        out = ms.kill(proc)
        kills.append(point)
        assert test_password not in out
        settle()

    # 5. a random moment of a resuming run
    proc = ms.start_apply(env, topo, extra=extra)
    time.sleep(rnd.uniform(0.3, 1.2))
    if proc.poll() is None:
        out = ms.kill(proc)
        kills.append("random")
        settle()
    else:
        out = proc.communicate()[0].decode(errors="replace")
    assert test_password not in out

    print(f"kills: {kills}")
    final = ms.start_apply(env, topo, extra=extra)
    out = final.communicate(timeout=300)[0].decode(errors="replace")
    assert final.returncode == 0, (kills, out[-3000:])
    assert test_password not in out
    names = sorted(q["name"] for q in mgmt.queues(vhost))
    assert names == QUEUES, names
    leftovers = [x["name"] for x in mgmt.get(f"/api/exchanges/{vhost}") if x["name"].startswith("topoform.")]
    assert not leftovers, leftovers
    for q in QUEUES:
        info = mgmt.get(f"/api/queues/{vhost}/{q}")
        assert info["arguments"].get("x-queue-type") == "quorum", (q, info["arguments"])
        bindings = [(b["source"], b["routing_key"]) for b in mgmt.get(f"/api/queues/{vhost}/{q}/bindings")
                    if b["source"]]
        assert bindings == [("events", f"{q}.*")], (q, bindings)
        got = ms.drain(amqp, q, expect=N)
        expected = [ms.as_tuple(b, p) for b, p in messages[q]]
        assert len(got) == N, f"{q}: {len(got)} messages instead of {N} after kills {kills}"
        assert sorted(got) == sorted(expected), f"{q}: not every message exactly once after kills {kills}"
        assert got == expected, f"{q}: order changed after kills {kills}"
    # the files are now satisfied: a second apply has nothing to migrate
    again = ms.start_apply(env, topo, extra=extra)
    out = again.communicate(timeout=120)[0].decode(errors="replace")
    assert again.returncode == 0, out[-2000:]
    assert "0 to migrate" in out or "No changes" in out, out[-2000:]
