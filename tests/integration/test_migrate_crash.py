"""Crash safety: ``apply --migrate`` killed with SIGKILL at step boundaries and inside the
moves, ten times in all; one more ``apply --migrate`` must leave every message exactly once.

The CLI runs as a subprocess. ``TOPOFORM_TEST_PAUSE_AT`` (a test hook in
``topoform/apply/migrate.py``) makes it stop at a given point and create
``TOPOFORM_TEST_PAUSE_FILE``; the test then kills it. Two more kills happen at
random moments while messages are moving, chosen by watching the queues.

Two variants: a classic queue becoming quorum (its messages carry priorities, which
quorum queues from 4.0 on deliver by, so the expected order is measured through
reference queues), and a quorum queue whose TTL changes (a quorum source: what a killed
run held comes back to a quorum queue, which counts it as a delivery).
"""
from __future__ import annotations

import random
import signal
import sys
import time
from pathlib import Path

import pytest

from topoform.broker import amqp as tf_amqp

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


QQ = {"x-queue-type": "quorum"}
VARIANTS = {  # name: (arguments before, arguments after, messages, priorities in the corpus, mover batch)
    "classic-to-quorum": ({}, QQ, N, True, None),
    # the same schedule at a quarter of the size: batches of 250 (test hook TOPOFORM_TEST_BATCH)
    "quorum-ttl-change": ({**QQ, "x-message-ttl": 3_600_000}, {**QQ, "x-message-ttl": 7_200_000}, N // 4, False,
                          250),
}


def _topology(vhost: str, arguments: dict) -> str:
    args = ", ".join(f"{k}: {v}" for k, v in arguments.items())
    return f"""
vhosts:
  {vhost}:
    exchanges:
      events: {{type: topic, durable: true}}
    queues:
      orders:
        durable: true
        arguments: {{{args}}}
        bindings:
          - {{exchange: events, routing_key: "order.*"}}
"""


def _no_empty_table(t):
    # A quorum queue adds x-delivery-count to a message it redelivers after a kill, creating a
    # header table where there was none; removing it cannot tell an empty table from none (docs).
    return t[:3] + (("None",) if t[3] == "{}" else (t[3],)) + t[4:]


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_killed_ten_times_then_one_more_apply_leaves_every_message_once(broker, broker_env, vhost, amqp, mgmt,
                                                                        tmp_path, test_password, variant):
    before_args, after_args, n, priorities, batch = VARIANTS[variant]
    if batch:
        broker_env = {**broker_env, "TOPOFORM_TEST_BATCH": str(batch)}
    scale = n / N
    ch = amqp.channel()
    ch.exchange_declare("events", "topic", durable=True)
    ch.queue_declare("orders", durable=True, arguments=tf_amqp.encode_args(before_args))
    ch.queue_bind("orders", "events", "order.*")
    ch.close()
    messages = ms.corpus(n, broker.username, seed=11, priorities=priorities)
    expected = ms.delivery_order(amqp, messages, [(True, tf_amqp.encode_args(before_args)),
                                                  (True, tf_amqp.encode_args(after_args))])
    ms.publish(amqp, "orders", messages)
    topo = tmp_path / "topology.yaml"
    topo.write_text(_topology(vhost, after_args))
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
            threshold = (ms.count(amqp, dst) or 0) + int(rnd.randint(1500, 3500) * scale)
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
            if total >= n or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert total >= n, f"after kill {kills[-1]}: only {total} messages left"
    assert len(kills) == 10

    final = ms.start_apply(broker_env, topo)
    out = final.communicate(timeout=300)[0].decode(errors="replace")
    assert final.returncode == 0, out[-3000:]
    assert test_password not in out
    info = mgmt.get(f"/api/queues/{vhost}/orders")
    assert info["arguments"] == after_args
    names = [q["name"] for q in mgmt.queues(vhost)]
    assert names == ["orders"], names
    got = ms.drain(amqp, "orders", expect=n)
    if variant != "classic-to-quorum":
        got, expected = [_no_empty_table(t) for t in got], [_no_empty_table(t) for t in expected]
    assert len(got) == n, f"{len(got)} messages instead of {n} after kills {kills}"
    assert sorted(got) == sorted(expected), "the final queue does not hold each message exactly once"
    assert got == expected, "order changed"
    # and the files are now satisfied: a second apply has nothing to do
    again = ms.start_apply(broker_env, topo)
    out = again.communicate(timeout=120)[0].decode(errors="replace")
    assert again.returncode == 0 and "migrate" not in out.split("Plan:")[-1].split("\n")[0].replace(
        "0 to migrate", ""), out
