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


def corpus(n: int, user: str, seed: int = 7) -> list[tuple[bytes, pika.BasicProperties]]:
    """``n`` messages of mixed sizes with every property and assorted headers (ids repeat on purpose)."""
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
            priority=i % 10,
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


def as_tuple(body: bytes, props: pika.BasicProperties) -> tuple:
    return (body,) + tuple(repr(getattr(props, p)) for p in PROPS)


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


def start_apply(env: dict, topo, pause: str | None = None, pause_file=None) -> subprocess.Popen:
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
                             "--lock-timeout", "30", "-f", str(topo)], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
