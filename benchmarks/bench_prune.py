"""Benchmark: ``apply --prune`` of a vhost's queues with their bindings, next to the queues alone.

Fills two fresh vhosts through the broker's bulk import with the same 10,000 queues and
1,000 exchanges (``--queues``; a tenth as many exchanges); the first also gets 20,000
bindings (twice as many). Files that name both vhosts and nothing in them make
``topoform apply --prune --auto-approve`` delete everything (in-process, the whole
command: load, lock, read with counts, plan, execute). Timed:

* **prune with bindings**: the first vhost (queues, exchanges and their bindings);
* **prune of the queues alone**: the second (the same queues and exchanges, no bindings);
* **a plain client** (for reference; ``--skip-client`` to leave it out), on two more vhosts
  filled like the first two: a hand-written pipelined pika client unbinds the
  exchange-to-exchange bindings, then deletes the queues, then the exchanges, as apply does
  (``bench_apply.run_pipelined``: 64 channels, ``nowait``; the queues with ``if-empty`` and
  ``if-unused`` as apply sends them), the other bindings left to the broker: what deleting
  the same objects costs with no reading or planning at all.

Deleting a queue or an exchange removes its bindings (SEMANTICS 6), so apply leaves
them to the broker instead of unbinding them one by one first (issue 17). Target: the
first at most 1.2x the second. The ratio to the plain client is printed beside it: it
shows how much of the difference is the broker removing the bindings (work no client can
skip: the plain client's own with/without ratio) and how much is topoform's. The order
alternates between ``--repeat`` rounds (median reported) so that other load hits each
alike. The vhosts are deleted afterwards.

    .venv/bin/python benchmarks/bench_prune.py [--queues 10000] [--repeat 1] [--skip-client]
        [--url amqp://guest:guest@localhost:5672/] [--management-url http://...]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_apply import Admin, bench_import, build_topology, longs, run_pipelined  # noqa: E402
from topoform.broker.settings import BrokerSettings, redact  # noqa: E402
from topoform.cli import Environment, main as cli_main  # noqa: E402

TARGET = 1.2


def prune(path: str, vhost: str, environ: dict) -> tuple[float, str]:
    Path(path).write_text(f"version: 1\nvhosts:\n  {vhost}: {{}}\n")
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), environ=environ, cwd=os.path.dirname(path))
    t0 = time.perf_counter()
    code = cli_main(["apply", "--prune", "--auto-approve", "-f", path], env)
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"apply --prune failed (exit {code}):\n{env.stdout.getvalue()[-1500:]}"
                         f"{env.stderr.getvalue()[-1500:]}")
    last = [line for line in env.stdout.getvalue().splitlines() if line.startswith("Apply complete")]
    return elapsed, (last[-1] if last else "")


def plain_client(settings: BrokerSettings, topo: dict, vhost: str) -> tuple[float, str]:
    """Unbind the exchange-to-exchange bindings, delete the queues, then the exchanges, pipelined;
    the broker removes the other bindings. The unbinds first, as apply does: deleting two exchanges
    bound to each other at once crashes a channel on 3.10 and 4.0 (541; executor.removed_with)."""
    e2e = [("exchange_unbind", dict(destination=b["destination"], source=b["source"], routing_key=b["routing_key"],
                                    arguments=longs(b["arguments"])))
           for b in topo["bindings"] if b["destination_type"] == "exchange"]
    phases = [e2e, [("queue_delete", dict(queue=q["name"], if_empty=True, if_unused=True)) for q in topo["queues"]],
              [("exchange_delete", dict(exchange=x["name"])) for x in topo["exchanges"]]]
    return run_pipelined(settings, vhost, [p for p in phases if p]), \
        f"pipelined pika: {len(e2e)} exchange.unbind, then queue.delete, then exchange.delete"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queues", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-client", action="store_true", help="leave out the plain pipelined client")
    ap.add_argument("--url", default=os.environ.get("TOPOFORM_URL", "amqp://guest:guest@localhost:5672/"))
    ap.add_argument("--management-url", default=os.environ.get("TOPOFORM_MANAGEMENT_URL"))
    args = ap.parse_args(argv)
    settings = BrokerSettings(url=args.url, management_url=args.management_url)
    admin = Admin(settings)
    full = build_topology(args.queues, max(1, args.queues // 10), 2 * args.queues)
    bare = {**full, "bindings": []}
    environ = {"TOPOFORM_URL": args.url, "TOPOFORM_TIMEOUT": "600", "CI": "1"}
    if args.management_url:
        environ["TOPOFORM_MANAGEMENT_URL"] = args.management_url
    print(f"{len(full['queues'])} queues, {len(full['exchanges'])} exchanges, {len(full['bindings'])} bindings "
          f"(and the same without bindings); broker {redact(settings.describe())}", flush=True)
    times: dict[str, list[float]] = {"bindings": [], "alone": [], "client": [], "client-alone": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            tag = uuid.uuid4().hex[:6]
            order = [("bindings", full), ("alone", bare)]
            if not args.skip_client:
                order += [("client", full), ("client-alone", bare)]
            if round_ % 2:
                order.reverse()
            for label, topo in order:
                vhost = f"tf-bench-prune-{label}-{tag}"
                admin.create_vhost(vhost)
                try:
                    bench_import(admin, topo, vhost)
                    # queue stats appear within ~5 s; without them prune counts by passive declares
                    time.sleep(6)
                    if label.startswith("client"):
                        seconds, summary = plain_client(settings, topo, vhost)
                    else:
                        seconds, summary = prune(os.path.join(tmp, f"{label}.yaml"), vhost, environ)
                    left = admin.counts(vhost)
                    if left != (0, 0, 0):
                        raise SystemExit(f"{vhost} still holds {left} (queues, exchanges, bindings) after the "
                                         f"{label} run")
                    times[label].append(seconds)
                    print(f"  round {round_ + 1}: {label:12s} {seconds:7.2f}s  ({summary})", flush=True)
                finally:
                    admin.delete_vhost(vhost)
    a, b = statistics.median(times["bindings"]), statistics.median(times["alone"])
    ratio = a / b
    print(f"\nprune with {len(full['bindings'])} bindings: {a:.2f}s; the queues alone: {b:.2f}s (medians)")
    print(f"ratio {ratio:.2f}x (target <= {TARGET}x): {'PASS' if ratio <= TARGET else 'FAIL'}")
    if times["client"]:
        c, d = statistics.median(times["client"]), statistics.median(times["client-alone"])
        print(f"plain client deleting the same queues and exchanges: {c:.2f}s with the bindings in place, "
              f"{d:.2f}s without; its own ratio {c / d:.2f}x (the broker removing the bindings)")
        print(f"prune with bindings / plain client with bindings: {a / c:.2f}x; "
              f"prune of the queues alone / plain client alone: {b / d:.2f}x")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
