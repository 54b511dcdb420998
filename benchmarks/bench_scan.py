"""Benchmark: ``topoform scan`` of a generated codebase against a bare ``ast.parse`` of the same files.

Generates 2,000 Python modules (about 120 lines each: imports, constants, a class, helper
functions with loops and comprehensions, and a start-up function with pika, aio-pika or
kombu declarations using constants, f-strings, local argument dicts and loops) in a
temporary directory, then times, in the same run and interleaved:

* bare: read each file and ``ast.parse`` it;
* whole: ``topoform.scan.scan_paths([dir])`` (discover, read, parse, resolve, build the
  topology, compare declarations, route tests).

Prints files per second for each (best of N, wall and process CPU time), the ratios and
PASS/FAIL against the 1.5x target on CPU time (on a shared machine, wall time mostly
measures the neighbours). Exit status 0 on PASS, 1 on FAIL. Usage::

    .venv/bin/python benchmarks/bench_scan.py [--files 2000] [--repeat 5] [--keep DIR]
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from topoform.scan import scan_paths  # noqa: E402

TARGET = 1.5

_COMMON = '''"""Service module {i}: order handling, generated for the scan benchmark."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

SERVICE = "svc{svc}"
EXCHANGE = "events.{svc}"
QUEUE = f"{{SERVICE}}.work.{i}"
TTL_MS = 60 * 1000
RETRIES = {i} % 5 + 1


@dataclass
class Order:
    id: str
    amount: float
    items: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def total(self) -> float:
        return sum(item.get("price", 0) * item.get("qty", 1) for item in self.items)

    def to_json(self) -> str:
        return json.dumps({{"id": self.id, "amount": self.amount, "items": self.items, "meta": self.meta}})


class Handler:
    RETRY_QUEUE = QUEUE + ".retry"

    def __init__(self, channel, limit: int = 100):
        self.channel = channel
        self.limit = limit
        self.seen: set[str] = set()

    def handle(self, body: bytes) -> bool:
        try:
            data = json.loads(body)
        except ValueError:
            log.warning("bad message %r", body[:40])
            return False
        order = Order(data["id"], float(data.get("amount", 0)), data.get("items", []))
        if order.id in self.seen:
            return True
        self.seen.add(order.id)
        if len(self.seen) > self.limit:
            self.seen = {{o for o in list(self.seen)[-self.limit:]}}
        return order.total() >= 0


def batches(items, size=10):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def summarize(orders):
    by_customer = {{}}
    for order in orders:
        by_customer.setdefault(order.meta.get("customer"), []).append(order)
    return {{k: round(sum(o.amount for o in v), 2) for k, v in by_customer.items() if k}}


def retry_delay(attempt: int) -> int:
    if attempt <= 0:
        return 0
    return min(2 ** attempt * 100, 30_000)
'''

_PIKA = '''

def setup(channel):
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True)
    args = {{"x-message-ttl": TTL_MS, "x-dead-letter-exchange": EXCHANGE + ".dlx"}}
    args["x-max-length"] = 1000 * RETRIES
    channel.queue_declare(queue=QUEUE, durable=True, arguments=args)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key=f"order.{i}.*")
    channel.queue_declare(Handler.RETRY_QUEUE, durable=True)
    for key in ("created", "paid"):
        channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key="order." + key)
    channel.queue_declare(os.environ.get("EXTRA_QUEUE", "extra"), durable=True)
    channel.basic_publish(exchange=EXCHANGE, routing_key="order.{i}.created", body=b"{{}}")
    channel.basic_consume(queue=QUEUE, on_message_callback=Handler(channel).handle)
'''

_AIO = '''

async def setup(channel):
    exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)
    queue = await channel.declare_queue(QUEUE, durable=True, arguments={{"x-queue-type": "quorum"}})
    await queue.bind(exchange, routing_key="order.{i}.paid")
    replies = await channel.declare_queue(exclusive=True)
    await replies.bind(exchange, routing_key="reply.{i}")
    await exchange.publish(None, routing_key="order.{i}.paid")
'''

_KOMBU = '''

from kombu import Exchange, Queue

events = Exchange(EXCHANGE, type="topic")
work = Queue(QUEUE, exchange=events, routing_key="order.{i}.shipped", message_ttl=60)
'''


def generate(directory: str, n: int) -> None:
    for i in range(n):
        svc = i // 50
        text = _COMMON.format(i=i, svc=svc)
        text += (_PIKA, _PIKA, _AIO, _KOMBU)[i % 4].format(i=i, svc=svc)
        sub = os.path.join(directory, f"svc{svc:03d}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"module_{i:04d}.py"), "w", encoding="utf-8") as fh:
            fh.write(text)


def bare(directory: str) -> int:
    count = 0
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(root, name), "rb") as fh:
                    ast.parse(fh.read().decode("utf-8"))
                count += 1
    return count


def whole(directory: str) -> int:
    return len(scan_paths([directory]).files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    args = parser.parse_args()
    directory = args.keep or tempfile.mkdtemp(prefix="topoform-bench-scan-")
    try:
        generate(directory, args.files)
        result = scan_paths([directory])
        declarations = len(result.declarations)
        wall = {"bare": float("inf"), "whole": float("inf")}
        cpu = dict(wall)
        for _ in range(args.repeat):
            for label, fn in (("bare", bare), ("whole", whole)):
                start, start_cpu = time.perf_counter(), time.process_time()
                count = fn(directory)
                wall[label] = min(wall[label], time.perf_counter() - start)
                cpu[label] = min(cpu[label], time.process_time() - start_cpu)
                assert count == args.files, (label, count)
        print(f"files: {args.files}, declarations found: {declarations}, conflicts: {len(result.conflicts)}")
        for label, text in (("bare", "bare ast.parse"), ("whole", "whole scan")):
            print(f"{text:<15}: {args.files / wall[label]:6.0f} files/s wall ({wall[label]:.3f} s), "
                  f"{args.files / cpu[label]:6.0f} files/s cpu ({cpu[label]:.3f} s)")
        ratio, ratio_wall = cpu["whole"] / cpu["bare"], wall["whole"] / wall["bare"]
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        # CPU time decides: on a shared machine wall time mostly measures the neighbours
        print(f"ratio          : {ratio:.2f}x cpu, {ratio_wall:.2f}x wall (target <= {TARGET}x on cpu): {verdict}")
        return 0 if ratio <= TARGET else 1
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
