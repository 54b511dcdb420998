"""Helpers for the migration integration tests: a message corpus, draining, a context, a change."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pika

from topoform.apply.executor import ApplyContext
from topoform.broker.http import ManagementClient
from topoform.broker.live import read_live
from topoform.model import Args, Queue
from topoform.planner import migration
from topoform.planner.plan import Action, Change

PROPS = ("content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id", "reply_to",
         "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id")


def corpus(n: int, user: str, seed: int = 7, priorities: bool = True) -> list[tuple[bytes, pika.BasicProperties]]:
    """``n`` messages of mixed sizes with every property and assorted headers (ids repeat on purpose).

    With ``priorities`` the messages carry priorities 0..9, which quorum queues from 4.0 on
    deliver in priority order (see :func:`delivery_order`); without, none is set.
    """
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        size = rnd.choice((0, 1, 17, 200, 1500, 4096, 20000)) if i % 50 else 65536
        body = (f"{i:06d}:".encode() + rnd.randbytes(max(0, size - 7)))[:max(size, 7)]
        headers = None if i % 7 == 0 else ({} if i % 11 == 0 else
                                          {"seq": i, "kind": rnd.choice(["a", "b", "c"]),
                                           "nested": {"x": i % 3, "tags": ["t", i % 5]}, "flag": bool(i % 2)})
        props = pika.BasicProperties(
            content_type=rnd.choice(["application/json", "text/plain", None]),
            content_encoding="utf-8" if i % 3 else None,
            headers=headers,
            delivery_mode=2 if i % 4 else 1,
            priority=i % 10 if priorities else None,
            correlation_id=f"corr-{i % 100}",
            reply_to="replies" if i % 5 == 0 else None,
            expiration="86400000" if i % 13 == 0 else None,
            message_id=f"mid-{i % 1000}",  # repeats: user ids are not unique
            timestamp=1700000000 + i,
            type="evt" if i % 2 else None,
            user_id=user if i % 17 == 0 else None,
            app_id="tests",
        )
        out.append((body, props))
    return out


def publish(conn: pika.BlockingConnection, queue: str, messages, timeout: float = 120) -> None:
    """Publish ``messages`` to ``queue`` in order and wait until the queue holds them all."""
    ch = conn.channel()
    start = ch.queue_declare(queue, passive=True).method.message_count
    for body, props in messages:
        ch.basic_publish("", queue, body, props)
    deadline = time.monotonic() + timeout
    while ch.queue_declare(queue, passive=True).method.message_count < start + len(messages):
        assert time.monotonic() < deadline, f"queue {queue} did not receive all messages"
        time.sleep(0.05)
    ch.close()


def count(conn: pika.BlockingConnection, queue: str) -> int | None:
    ch = conn.channel()
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if ch.is_open:
            ch.close()


def _canonical(value):
    """Tables compared as maps: a quorum queue re-encodes a redelivered message's headers in
    another key order (AMQP field tables have no order); nested values and arrays stay exact."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def as_tuple(body: bytes, props: pika.BasicProperties) -> tuple:
    return (body,) + tuple(repr(_canonical(getattr(props, p))) for p in PROPS)


def drain(conn: pika.BlockingConnection, queue: str, expect: int | None = None, timeout: float = 60) -> list[tuple]:
    """Every message of ``queue`` in order (acknowledged), as comparable tuples."""
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    got = []
    deadline = time.monotonic() + timeout
    for method, props, body in ch.consume(queue, inactivity_timeout=1.0):
        if method is None:
            if expect is None or len(got) >= expect or time.monotonic() > deadline:
                break
            continue
        got.append(as_tuple(body, props))
        ch.basic_ack(method.delivery_tag)
    ch.cancel()
    ch.close()
    return got


def delivery_order(conn: pika.BlockingConnection, messages, queues) -> list[tuple]:
    """The order a consumer receives ``messages`` in after they passed through queues declared with
    ``queues`` (a list of ``(durable, arguments)``), published in order and drained in turn.

    A migration keeps the order in which consumers receive the messages. That is FIFO for
    classic queues and for 3.10's quorum queues, but quorum queues from 4.0 on deliver by
    message priority (4.0: high, above 4, and normal at 2:1; 4.3: strictly by priority,
    measured), so the expected order is what a queue of the same kind does with the same
    messages: measured on the broker under test, never assumed.
    """
    seq = [(b, p) for b, p in messages]
    for i, (durable, args) in enumerate(queues):
        name = f"reference-order-{os.getpid()}-{i}-{random.randrange(1 << 30)}"
        ch = conn.channel()
        ch.queue_declare(name, durable=durable, arguments=args)
        ch.close()
        publish(conn, name, seq)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        got = []
        for method, props, body in ch.consume(name, inactivity_timeout=1.0):
            if method is None:
                if len(got) >= len(seq):
                    break
                continue
            got.append((body, props))
            ch.basic_ack(method.delivery_tag)
        ch.cancel()
        ch.queue_delete(name)
        ch.close()
        assert len(got) == len(seq)
        seq = got
    return [as_tuple(b, p) for b, p in seq]


def context(settings) -> ApplyContext:
    return ApplyContext(settings=settings, client=ManagementClient(settings))


def queue_change(settings, vhost: str, name: str, after: Queue, force: bool = False) -> Change:
    """The migrate change the planner would make for ``name`` -> ``after`` (or the resume change)."""
    client = ManagementClient(settings)
    try:
        live = read_live(client, [vhost])
    finally:
        client.close()
    resumes = migration.resume_changes(live.topology, live.topology, live.queue_stats)
    for r in resumes:
        if r.name == name:
            return r
    before = live.topology.queue(vhost, name)
    blocked = Change(Action.BLOCKED, "queue", vhost, name, before=before, after=after, diff=("arguments",))
    change = migration.expand_migration(blocked, live.topology, live.topology, live.queue_stats, force=force)
    return change


def queue(vhost: str, name: str, durable=True, **args) -> Queue:
    return Queue(vhost=vhost, name=name, durable=durable, arguments=Args(args))


ROOT = Path(__file__).resolve().parents[2]


def start_apply(env: dict, topo, pause: str | None = None, pause_file=None, extra=()) -> subprocess.Popen:
    """``topoform apply --migrate --auto-approve -f TOPO`` as a subprocess (output on its stdout).

    ``pause`` names a step at which migrate.py stops and creates ``pause_file`` (the test
    hook ``TOPOFORM_TEST_PAUSE_AT``), so a test can SIGKILL it exactly there.
    """
    env = dict(os.environ, **env)
    env.pop("TOPOFORM_TEST_PAUSE_AT", None)
    env.pop("TOPOFORM_TEST_PAUSE_FILE", None)
    if pause:
        env["TOPOFORM_TEST_PAUSE_AT"] = pause
        env["TOPOFORM_TEST_PAUSE_FILE"] = str(pause_file)
    return subprocess.Popen([sys.executable, "-m", "topoform", "apply", "--migrate", "--auto-approve",
                             "--lock-timeout", "30", "-f", str(topo), *extra], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_pause(proc: subprocess.Popen, marker: Path, point: str, timeout: float = 120) -> None:
    """Wait until a run started with ``pause=point`` stopped there (created ``marker``)."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"apply ended before reaching {point}: {proc.communicate()[0][-3000:]!r}"
        assert time.monotonic() < deadline, f"pause point {point} not reached"
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> str:
    proc.send_signal(9)
    return proc.communicate(timeout=30)[0].decode(errors="replace")


def settle_total(conn, queues, expect: int, timeout: float = 15) -> int:
    """Wait until the killed run's unacknowledged messages are back: the queues hold ``expect`` in all."""
    deadline = time.monotonic() + timeout
    while True:
        total = sum(count(conn, q) or 0 for q in queues)
        if total >= expect or time.monotonic() > deadline:
            return total
        time.sleep(0.1)
