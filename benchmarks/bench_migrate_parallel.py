#!/usr/bin/env python3
"""Many migrations in one apply: ``apply --migrate --parallel N`` next to one plain move loop.

    .venv/bin/python benchmarks/bench_migrate_parallel.py [--queues 50] [--messages 2000]
        [--parallel 8] [--size 256] [--no-ceiling] [--no-reference] [--url URL] [--management-url URL]

In a fresh vhost (deleted afterwards):

1. **plain loop** (the baseline): one consume-and-publish-with-confirms loop
   (``bench_migrate.plain_loop``: prefetch 1000, each message acknowledged once its copy
   is confirmed) moving ``queues * messages / 5`` messages from one classic queue to
   another: messages per second of a single such loop;
2. **apply**: ``queues`` classic queues of ``messages`` persistent messages each, bound
   to an exchange, and files that want them quorum; ``topoform apply --migrate
   --auto-approve --parallel N`` (in-process) migrates them all. Messages per second =
   every message migrated (counted once, although each is moved twice: out to the
   temporary queue and back) over the whole apply (load, read, plan, every step).

3. **the broker's own mover** (for reference, when the shovel plugin is enabled; skip with
   ``--no-ceiling``): ``parallel`` dynamic shovels at once (``ack-mode: on-confirm``,
   ``src-delete-after: queue-length``), each moving ``messages`` messages from a classic
   queue to a quorum queue inside the broker, no client in the path. Half its moves per
   second is what a two-move migration could reach if the broker did all the moving: the
   ceiling that the target is to be read against on this machine.

4. **for reference** (skip with ``--no-reference``): the same plain loop moving into a
   *quorum* queue (the move a migration to quorum makes), and the same ``queues``
   migrated by ``apply --migrate --parallel 1`` (one migration at a time, as before
   ``--parallel``): the gain that running migrations at once brings.

Checks that every queue is quorum afterwards, holds all its messages in their original
order, and kept its binding. Target (issue 17): the apply's messages per second at least
3x the plain (classic to classic) loop's. Exit 0 when met and correct, 1 otherwise.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
import pika  # noqa: E402

from bench_migrate import fill, plain_loop  # noqa: E402
from topoform.broker import amqp  # noqa: E402
from topoform.broker.settings import BrokerSettings, quote_segment  # noqa: E402
from topoform.cli import Environment, main as cli_main  # noqa: E402

TARGET = 3.0


def files_text(vhost: str, names: list[str]) -> str:
    out = ["version: 1", "vhosts:", f"  {vhost}:", "    exchanges:", "      mx:", "        type: direct",
           "        durable: true", "    queues:"]
    for name in names:
        out += [f"      {name}:", "        durable: true", "        arguments: {x-queue-type: quorum}",
                "        bindings:", f"          - {{exchange: mx, routing_key: {name}}}"]
    return "\n".join(out) + "\n"


def check(ch, names: list[str], n: int, http, base: str, vhost: str) -> list[str]:
    """Problems found: wrong type, count, order or binding."""
    problems = []
    q = quote_segment(vhost)
    for name in names:
        row = http.get(f"{base}/api/queues/{q}/{quote_segment(name)}", timeout=60).json()
        if (row.get("arguments") or {}).get("x-queue-type") != "quorum":
            problems.append(f"{name}: not quorum")
        binds = http.get(f"{base}/api/queues/{q}/{quote_segment(name)}/bindings", timeout=60).json()
        if not any(b.get("source") == "mx" and b.get("routing_key") == name for b in binds):
            problems.append(f"{name}: lost its binding")
        seen = []
        ch.basic_qos(prefetch_count=n + 10)
        for method, props, _ in ch.consume(name, auto_ack=True, inactivity_timeout=3):
            if method is None:
                break
            seen.append(int(props.message_id))
            if len(seen) >= n:
                break
        ch.cancel()
        if seen != list(range(n)):
            problems.append(f"{name}: {len(seen)} messages, in order: {seen == sorted(seen)}")
    return problems


def shovel_ceiling(ch, conn, http, base: str, vhost: str, count: int, n: int, size: int) -> float | None:
    """Moves per second of ``count`` dynamic shovels at once, classic -> quorum, inside the broker.

    None when the broker has no shovel plugin (``GET /api/shovels`` is not there).
    """
    q = quote_segment(vhost)
    if http.get(f"{base}/api/shovels/{q}", timeout=60).status_code != 200:
        return None
    names = [f"ceiling.{i:02d}" for i in range(count)]
    for name in names:
        ch.queue_declare(name, durable=True)
        ch.queue_declare(name + ".q", durable=True, arguments={"x-queue-type": "quorum"})
        fill(conn, name, n, size)
    uri = f"amqp:///{q}"  # the local broker, this vhost (a bare amqp:// would be the default vhost)
    started = time.perf_counter()
    for name in names:
        http.put(f"{base}/api/parameters/shovel/{q}/{quote_segment(name)}", timeout=60, json={"value": {
            "src-protocol": "amqp091", "src-uri": uri, "src-queue": name,
            "dest-protocol": "amqp091", "dest-uri": uri, "dest-queue": name + ".q",
            "ack-mode": "on-confirm", "src-delete-after": "queue-length", "src-prefetch-count": 1000}}).raise_for_status()
    left = set(names)
    while left and time.perf_counter() - started < 600:
        for name in sorted(left):
            if ch.queue_declare(name + ".q", passive=True).method.message_count >= n:
                left.discard(name)
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    for name in names:
        http.delete(f"{base}/api/parameters/shovel/{q}/{quote_segment(name)}", timeout=60)
        ch.queue_delete(name)
        ch.queue_delete(name + ".q")
    return None if left else count * n / elapsed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queues", type=int, default=50)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--size", type=int, default=256, help="body size in bytes")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the broker's own mover (dynamic shovels)")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the loop into a quorum queue and the --parallel 1 run")
    ap.add_argument("--url", default=os.environ.get("TOPOFORM_URL", "amqp://guest:guest@localhost:5672/"))
    ap.add_argument("--management-url", default=os.environ.get("TOPOFORM_MANAGEMENT_URL"))
    args = ap.parse_args(argv)
    settings = BrokerSettings(url=args.url, management_url=args.management_url)
    vhost = f"tf-bench-mp-{uuid.uuid4().hex[:6]}"
    http = requests.Session()
    http.auth = settings.http_credentials
    base = settings.http_base_clean
    q = quote_segment(vhost)
    http.put(f"{base}/api/vhosts/{q}", json={}).raise_for_status()
    http.put(f"{base}/api/permissions/{q}/{quote_segment(settings.username)}",
             json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    time.sleep(0.5)
    names = [f"mq.{i:03d}" for i in range(args.queues)]
    n = args.messages
    try:
        conn = amqp.connect(settings, vhost, name="topoform benchmark")
        ch = conn.channel()
        loop_n = max(n, args.queues * n // 5)
        for name in ("loop.a", "loop.b"):
            ch.queue_declare(name, durable=True)
        fill(conn, "loop.a", loop_n, args.size)
        loop_rate = loop_n / plain_loop(conn, "loop.a", "loop.b", loop_n)
        for name in ("loop.a", "loop.b"):
            ch.queue_delete(name)
        print(f"plain consume+publish-with-confirms loop: {loop_n} messages, {loop_rate:8.0f} msg/s", flush=True)
        ceiling = None if args.no_ceiling else shovel_ceiling(ch, conn, http, base, vhost, args.parallel, n, args.size)
        if ceiling is not None:
            print(f"the broker's own mover: {args.parallel} shovels at once, classic -> quorum: {ceiling:8.0f} moves/s; "
                  f"a two-move migration at that speed: {ceiling / 2:.0f} msg/s = {ceiling / 2 / loop_rate:.2f}x "
                  "the plain loop (the ceiling on this machine)", flush=True)

        quorum_rate = None
        if not args.no_reference:
            ch.queue_declare("loop.c", durable=True)
            ch.queue_declare("loop.q", durable=True, arguments={"x-queue-type": "quorum"})
            fill(conn, "loop.c", loop_n, args.size)
            quorum_rate = loop_n / plain_loop(conn, "loop.c", "loop.q", loop_n)
            for name in ("loop.c", "loop.q"):
                ch.queue_delete(name)
            print(f"the same loop into a quorum queue (classic -> quorum): {loop_n} messages, {quorum_rate:8.0f} msg/s",
                  flush=True)

        environ = {"TOPOFORM_URL": args.url, "TOPOFORM_TIMEOUT": "600"}
        if args.management_url:
            environ["TOPOFORM_MANAGEMENT_URL"] = args.management_url

        def migrate_all(queues: list[str], parallel: int) -> float | None:
            """Seconds for one ``apply --migrate --parallel`` of ``queues`` (filled, bound); None on failure."""
            ch.exchange_declare("mx", "direct", durable=True)
            for name in queues:
                ch.queue_declare(name, durable=True)
                ch.queue_bind(name, "mx", name)
            for name in queues:
                fill(conn, name, n, args.size)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "topology.yaml")
                Path(path).write_text(files_text(vhost, queues))
                env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), environ=environ, cwd=tmp)
                started = time.perf_counter()
                code = cli_main(["apply", "--migrate", "--auto-approve", "--parallel", str(parallel), "-f", path], env)
                elapsed = time.perf_counter() - started
            if code != 0:
                print(env.stdout.getvalue()[-1500:], env.stderr.getvalue()[-1500:])
                return None
            return elapsed

        serial_rate = None
        if not args.no_reference:
            one = [f"mq1.{i:03d}" for i in range(args.queues)]
            elapsed = migrate_all(one, 1)
            if elapsed is None:
                return 1
            serial_rate = args.queues * n / elapsed
            problems = check(ch, one, n, http, base, vhost)
            for name in one:
                ch.queue_delete(name)
            print(f"apply --migrate --parallel 1: {args.queues} queues x {n} messages classic -> quorum in "
                  f"{elapsed:.1f}s: {serial_rate:8.0f} msg/s migrated; checks: {problems[:3] or 'ok'}", flush=True)
            if problems:
                return 1

        elapsed = migrate_all(names, args.parallel)
        if elapsed is None:
            return 1
        total = args.queues * n
        rate = total / elapsed
        problems = check(ch, names, n, http, base, vhost)
        print(f"apply --migrate --parallel {args.parallel}: {args.queues} queues x {n} messages classic -> quorum "
              f"in {elapsed:.1f}s: {rate:8.0f} msg/s migrated ({2 * rate:.0f} moves/s)")
        ratio = rate / loop_rate
        ok = ratio >= TARGET and not problems
        print(f"ratio: {ratio:.2f}x the plain loop (target >= {TARGET:.0f}x, each message counted once): "
              f"{'PASS' if ratio >= TARGET else 'FAIL'}; checks: {'all queues quorum, every message in order, bindings kept' if not problems else problems[:5]}")
        if quorum_rate is not None and serial_rate is not None:
            print(f"for reference: {rate / quorum_rate:.2f}x the loop into a quorum queue; "
                  f"{rate / serial_rate:.2f}x apply --migrate --parallel 1 of the same queues")
        try:
            conn.close()
        except (pika.exceptions.AMQPError, OSError):
            pass
        return 0 if ok else 1
    finally:
        http.delete(f"{base}/api/vhosts/{q}", timeout=600)


if __name__ == "__main__":
    sys.exit(main())
