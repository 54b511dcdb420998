"""Migrations of queues of large messages: the mover holds a bounded number of bytes.

The mover used to take 1,000 messages per batch and 2,000 in flight whatever their size: a
classic queue of 100 messages of 8 MB migrated with the whole queue in the client's memory
(1,037 MB resident, measured on 4.3.6; 170 MB now). Batches now hold about 16 MiB of bodies
(``migrate_move.BATCH_BYTES``): the size comes from the broker's statistics when they are up
to date, else the first batch (8 messages) measures it and the consumer starts again with
the window that fits. A killed run's journal keeps its window, and a resumed run never takes
fewer than the batch left in flight.

Each variant is killed four times, right after the measuring batch and later, moving out and back,
then one more apply must leave every message once and in order. The queue is filled right
before the first run, so its statistics are not up to date yet and the first batch measures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pika
import pytest

from topoform.broker import amqp as tf_amqp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import migrate_support as ms  # noqa: E402

N = 150
SIZE = 256 * 1024  # 64 per batch (16 MiB over 256 KiB): more than the measuring batch
QQ = {"x-queue-type": "quorum"}
VARIANTS = {
    "classic-to-quorum": ({}, QQ),
    "quorum-ttl-change": ({**QQ, "x-message-ttl": 3_600_000}, {**QQ, "x-message-ttl": 7_200_000}),
}
# the first run measures in batch 0 and starts its consumer again before batch 1; the next ones
# take the window from the journal (the statistics may still lag): its first batch is 64
SCHEDULE = ["move_out:1:published", "move_out:0:confirmed", "move_back:0:journaled", "move_back:1:confirmed"]


def _topology(vhost: str, arguments: dict) -> str:
    args = ", ".join(f"{k}: {v}" for k, v in arguments.items())
    return f"vhosts:\n  {vhost}:\n    queues:\n      big:\n        durable: true\n        arguments: {{{args}}}\n"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_large_messages_move_in_small_batches_and_survive_kills(broker, broker_env, vhost, amqp, tmp_path, variant):
    before, after = VARIANTS[variant]
    ch = amqp.channel()
    ch.queue_declare("big", durable=True, arguments=tf_amqp.encode_args(before))
    ch.close()
    messages = [(f"{i:06d}".encode() + bytes([i % 251]) * (SIZE - 6),
                 pika.BasicProperties(delivery_mode=2, message_id=str(i))) for i in range(N)]
    ms.publish(amqp, "big", messages)
    topo = tmp_path / "topology.yaml"
    topo.write_text(_topology(vhost, after))
    outputs = []
    for point in SCHEDULE:
        marker = tmp_path / "paused"
        marker.unlink(missing_ok=True)
        proc = ms.start_apply(broker_env, topo, pause=point, pause_file=marker)
        ms.wait_pause(proc, marker, point)
        outputs.append(ms.kill(proc))
        total = ms.settle_total(amqp, ("big", "topoform.migrate.big"), N)
        assert total >= N, f"after a kill at {point}: {total} messages left"
    final = ms.start_apply(broker_env, topo)
    out = final.communicate(timeout=300)[0].decode(errors="replace")
    assert final.returncode == 0, out[-3000:]
    outputs.append(out)
    (tmp_path / "outputs.txt").write_text("\n=====\n".join(outputs))
    assert "64 message(s) per batch (large messages)" in "".join(outputs), outputs
    ch = amqp.channel()
    got = []
    while True:
        method, props, body = ch.basic_get("big", auto_ack=True)
        if method is None:
            break
        assert len(body) == SIZE
        got.append(int(props.message_id))
        assert body == messages[got[-1]][0]
    ch.close()
    assert got == list(range(N)), f"{len(got)} messages, not each once in order"
    assert ms.count(amqp, "topoform.migrate.big") is None
