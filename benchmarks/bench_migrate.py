#!/usr/bin/env python3
"""Migration throughput next to a plain move loop, in the same run on the same broker.

    .venv/bin/python benchmarks/bench_migrate.py [--messages 20000] [--size 1024] [--url URL]

Both measurements use the same messages in a fresh vhost (deleted afterwards):

Each round measures both (alternating, so that other load on a shared broker hits
both alike); the medians are reported.

1. **plain loop**: one consumer (prefetch 1000) on queue A, every message republished
   to queue B through the default exchange on a confirm-mode channel, each source
   message acknowledged once its copy is confirmed (the usual efficient
   consume-and-publish-with-confirms loop; no journal, no stamps, no topology work).
2. **migration**: ``topoform.apply.migrate.run_migration`` turning a classic queue
   holding the same messages into a quorum queue: both moves (out and back), the
   journal, the stamps, the bindings and the declares/deletes all included.

Throughput is messages moved per second; for the migration every message is moved
twice, so it is ``2 * N / elapsed``. The script prints both and their ratio; the
target is a ratio of at least 0.8. Exit code 0 when it is met, 1 otherwise.
Passwords never appear in the output.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pika  # noqa: E402
import requests  # noqa: E402

from topoform.apply.executor import ApplyContext  # noqa: E402
from topoform.apply.migrate import run_migration  # noqa: E402
from topoform.broker import amqp  # noqa: E402
from topoform.broker.http import ManagementClient  # noqa: E402
from topoform.broker.live import read_live  # noqa: E402
from topoform.broker.settings import BrokerSettings, quote_segment  # noqa: E402
from topoform.model import Args, Queue  # noqa: E402
from topoform.planner.migration import expand_migration  # noqa: E402
from topoform.planner.plan import Action, Change  # noqa: E402


def fill(conn: pika.BlockingConnection, queue: str, n: int, size: int, quorum: bool = False) -> None:
    ch = conn.channel()
    body = os.urandom(size)
    for i in range(n):
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, message_id=str(i),
                                                                headers={"i": i}))
    wait_count(ch, queue, n)
    ch.close()


def wait_count(ch, queue: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while ch.queue_declare(queue, passive=True).method.message_count < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"queue {queue} did not reach {n} messages")
        time.sleep(0.05)


def plain_loop(conn: pika.BlockingConnection, src: str, dst: str, n: int, prefetch: int = 1000) -> float:
    """Move ``n`` messages src -> dst: consume, publish with confirms, ack each after its confirm."""
    impl = conn._impl  # noqa: SLF001 - asynchronous confirms (a blocking publish waits per message)
    state = {"open": 0, "ready": 0, "moved": 0, "seq": 0}
    tag_of_seq: dict[int, int] = {}
    consumer = {}

    def opened(_ch):
        state["open"] += 1

    cch = impl.channel(on_open_callback=opened)
    pch = impl.channel(on_open_callback=opened)
    while state["open"] < 2:
        conn.process_data_events(time_limit=0.01)

    def on_confirm(frame):
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        seqs = [s for s in tag_of_seq if s <= tag] if multiple else [tag]
        for s in sorted(seqs):
            dtag = tag_of_seq.pop(s, None)
            if dtag is not None:
                cch.basic_ack(dtag)
                state["moved"] += 1

    def on_message(_ch, method, props, body):
        state["seq"] += 1
        tag_of_seq[state["seq"]] = method.delivery_tag
        pch.basic_publish("", dst, body, props, mandatory=True)

    pch.confirm_delivery(ack_nack_callback=on_confirm, callback=lambda f: state.__setitem__("ready", 1))
    cch.basic_qos(prefetch_count=prefetch)
    while not state["ready"]:
        conn.process_data_events(time_limit=0.01)
    started = time.perf_counter()
    consumer["tag"] = cch.basic_consume(src, on_message, auto_ack=False)
    while state["moved"] < n:
        conn.process_data_events(time_limit=0.01)
    elapsed = time.perf_counter() - started
    cch.close()
    pch.close()
    conn.process_data_events(time_limit=0)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1024, help="body size in bytes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--url", default=os.environ.get("TOPOFORM_URL", "amqp://guest:guest@localhost:5672/"))
    parser.add_argument("--management-url", default=os.environ.get("TOPOFORM_MANAGEMENT_URL"))
    args = parser.parse_args(argv)
    settings = BrokerSettings(url=args.url, management_url=args.management_url)
    vhost = f"tf-bench-{uuid.uuid4().hex[:8]}"
    http = requests.Session()
    http.auth = settings.http_credentials
    base = settings.http_base_clean
    q = quote_segment(vhost)
    http.put(f"{base}/api/vhosts/{q}", json={}).raise_for_status()
    http.put(f"{base}/api/permissions/{q}/{quote_segment(settings.username)}",
             json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    time.sleep(0.5)
    n = args.messages
    try:
        conn = amqp.connect(settings, vhost, name="topoform benchmark")
        ch = conn.channel()
        client = ManagementClient(settings)
        plain_rates, migrate_rates, checks = [], [], []
        for round_ in range(args.rounds):
            # alternate the two measurements so that load from other broker users hits both alike
            a, b, m = f"bench.a{round_}", f"bench.b{round_}", f"bench.m{round_}"
            for name in (a, b, m):
                ch.queue_declare(name, durable=True)
            ch.exchange_declare("bench.x", "direct", durable=True)
            ch.queue_bind(m, "bench.x", "k")
            fill(conn, a, n, args.size)
            plain_rates.append(n / plain_loop(conn, a, b, n))
            fill(conn, m, n, args.size)
            live = read_live(client, [vhost])
            after = Queue(vhost, m, durable=True, arguments=Args({"x-queue-type": "quorum"}))
            change = expand_migration(Change(Action.BLOCKED, "queue", vhost, m, before=live.topology.queue(vhost, m),
                                             after=after, diff=("arguments.x-queue-type",)),
                                      live.topology, live.topology, live.queue_stats)
            started = time.perf_counter()
            run_migration(change, ApplyContext(settings=settings, client=client))
            migrate_rates.append(2 * n / (time.perf_counter() - started))
            checks.append(ch.queue_declare(m, passive=True).method.message_count)
            for name in (a, b, m):
                ch.queue_delete(name)
            print(f"round {round_ + 1}: plain {plain_rates[-1]:7.0f} msg/s, migration {migrate_rates[-1]:7.0f} msg/s, "
                  f"ratio {migrate_rates[-1] / plain_rates[-1]:.2f}")
        plain_rate, migrate_rate = statistics.median(plain_rates), statistics.median(migrate_rates)
        ratio = statistics.median(m_ / p_ for m_, p_ in zip(migrate_rates, plain_rates))
        print(f"messages: {n} x {args.size} bytes (persistent), {args.rounds} rounds, broker "
              f"{settings.amqp_host}:{settings.amqp_port}")
        print(f"plain consume+publish-with-confirms loop (classic -> classic): {plain_rate:9.0f} msg/s (median)")
        print(f"migration classic -> quorum, both moves included:             {migrate_rate:9.0f} msg/s (median)")
        print(f"ratio: {ratio:.2f} (median of the rounds' ratios; target >= 0.80); "
              f"messages in the migrated queues: {checks}")
        conn.close()
        client.close()
        return 0 if ratio >= 0.8 and all(c == n for c in checks) else 1
    finally:
        http.delete(f"{base}/api/vhosts/{q}")


if __name__ == "__main__":
    sys.exit(main())
