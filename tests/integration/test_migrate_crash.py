"""Crash safety: ``apply --migrate`` killed with SIGKILL at step boundaries and inside the
moves, ten times in all; one more ``apply --migrate`` must leave every message exactly once.

The CLI runs as a subprocess. ``TOPOFORM_TEST_PAUSE_AT`` (a test hook in
``topoform/apply/migrate.py``) makes it stop at a given point and create
``TOPOFORM_TEST_PAUSE_FILE``; the test then kills it. Two more kills happen at
random moments while messages are moving, chosen by watching the queues.
"""
from __future__ import annotations

import random
import signal
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

import migrate_support as ms  # noqa: E402

N = 10_000

# Each point is reached by the run that follows the previous kill (a resume starts at the
# phase the broker shows, and numbers its batches from 0 again).
SCHEDULE = [
    ("random", "move_out"),      # a random moment while messages move out
    "move_out:1:confirmed",      # between the destination's confirm and the source's ack
    "move_out:2:published",      # batch published, confirms not awaited
    "take_bindings",             # every message out, bindings still on the queue
    "delete_queue",              # bindings moved, queue not yet deleted
    "declare_queue",             # queue deleted, not declared again
    "move_back:1:confirmed",     # moving back: confirm received, ack not sent
    ("random", "move_back"),     # a random moment while messages move back
    "move_back:2:journaled",     # journal written, batch not published
    "restore_bindings",          # every message back, bindings on the temporary queue
]


def _topology(vhost: str) -> str:
    return f"""
vhosts:
  {vhost}:
    exchanges:
      events: {{type: topic, durable: true}}
    queues:
      orders:
        durable: true
        arguments: {{x-queue-type: quorum}}
        bindings:
          - {{exchange: events, routing_key: "order.*"}}
"""


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    return out


def test_killed_ten_times_then_one_more_apply_leaves_every_message_once(broker, broker_env, vhost, amqp, mgmt,
                                                                        tmp_path, test_password):
    ch = amqp.channel()
    ch.exchange_declare("events", "topic", durable=True)
    ch.queue_declare("orders", durable=True)
    ch.queue_bind("orders", "events", "order.*")
    ch.close()
    messages = ms.corpus(N, broker.username, seed=11)
    ms.publish(amqp, "orders", messages)
    topo = tmp_path / "topology.yaml"
    topo.write_text(_topology(vhost))
    rnd = random.Random(5)
    kills = []
    for item in SCHEDULE:
        marker = tmp_path / "paused"
        if marker.exists():
            marker.unlink()
        if isinstance(item, tuple):  # kill at a random moment while messages move
            proc = ms.start_apply(broker_env, topo)
            src, dst = (("orders", "topoform.migrate.orders") if item[1] == "move_out"
                        else ("topoform.migrate.orders", "orders"))
            threshold = (ms.count(amqp, dst) or 0) + rnd.randint(1500, 3500)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                moved = ms.count(amqp, dst)
                if moved is not None and moved >= threshold and (ms.count(amqp, src) or 0) > 0:
                    break
                time.sleep(0.01)
            assert proc.poll() is None, "the migration finished before the random kill"
            out = _kill(proc)
            kills.append(f"random during {item[1]} at {moved}")
        else:
            proc = ms.start_apply(broker_env, topo, pause=item, pause_file=marker)
            deadline = time.monotonic() + 120
            while not marker.exists():
                assert proc.poll() is None, f"apply ended before reaching {item}: {proc.communicate()[0][-3000:]!r}"
                assert time.monotonic() < deadline, f"pause point {item} not reached"
                time.sleep(0.02)
            out = _kill(proc)
            kills.append(item)
        assert test_password not in out
        # the broker requeues the killed connection's unacknowledged batch a moment after the kill
        deadline = time.monotonic() + 15
        while True:
            total = sum(ms.count(amqp, q) or 0 for q in ("orders", "topoform.migrate.orders"))
            if total >= N or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert total >= N, f"after kill {kills[-1]}: only {total} messages left"
    assert len(kills) == 10

    final = ms.start_apply(broker_env, topo)
    out = final.communicate(timeout=300)[0].decode(errors="replace")
    assert final.returncode == 0, out[-3000:]
    assert test_password not in out
    info = mgmt.get(f"/api/queues/{vhost}/orders")
    assert info["arguments"] == {"x-queue-type": "quorum"}
    names = [q["name"] for q in mgmt.queues(vhost)]
    assert names == ["orders"], names
    got = ms.drain(amqp, "orders", expect=N)
    expected = [ms.as_tuple(b, p) for b, p in messages]
    assert len(got) == N, f"{len(got)} messages instead of {N} after kills {kills}"
    assert sorted(got) == sorted(expected), "the final queue does not hold each message exactly once"
    assert got == expected, "order changed"
    # and the files are now satisfied: a second apply has nothing to do
    again = ms.start_apply(broker_env, topo)
    out = again.communicate(timeout=120)[0].decode(errors="replace")
    assert again.returncode == 0 and "migrate" not in out.split("Plan:")[-1].split("\n")[0].replace(
        "0 to migrate", ""), out
