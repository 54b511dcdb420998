"""Benchmark: ``topoform import --state`` of a large export against bare json + libyaml.

Writes a broker-wide definitions export with 50,000 objects by default (10,000 queues,
1,000 exchanges, 39,000 bindings; half the queues with arguments, a tenth of the
bindings on headers exchanges with arguments) and times, interleaved, best of
``--repeat``:

* **baseline**: a bare ``json.load`` of the file plus a bare
  ``yaml.dump(data, Dumper=yaml.CSafeDumper)`` of the loaded data (what any tool that
  turns the export into YAML at C speed must pay);
* **import**: ``topoform import --state FILE -o OUT --force`` in-process (read, dedupe,
  model, normalize, write the topology YAML, byte for byte what PyYAML's Python emitter
  writes; see topoform/dump.py).

Target (issue 17): import at most 2x the baseline. Exit 1 when missed. Offline: no broker.

    .venv/bin/python benchmarks/bench_import.py [--objects 50000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import gc
import io
import json
import os
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from topoform.cli import Environment, main  # noqa: E402

TARGET = 2.0
TYPES = ("topic", "direct", "fanout", "headers")


def export(n_objects: int, vhost: str = "bench") -> dict:
    n_queues = n_objects // 5
    n_exchanges = max(4, n_objects // 50)
    n_bindings = n_objects - n_queues - n_exchanges
    exchanges = [{"name": f"ex.{i:05d}", "vhost": vhost, "type": TYPES[i % 4], "durable": True, "auto_delete": False,
                  "internal": False, "arguments": {}} for i in range(n_exchanges)]
    queues = [{"name": f"q.{i:06d}", "vhost": vhost, "durable": True, "auto_delete": False,
               "arguments": {"x-message-ttl": 60000 + i, "x-queue-type": "classic"} if i % 2 else {}}
              for i in range(n_queues)]
    bindings = []
    for j in range(n_bindings):
        ex = exchanges[(j * 7) % n_exchanges]
        key = "" if ex["type"] in ("fanout", "headers") else f"rk.{j}"
        bindings.append({"source": ex["name"], "vhost": vhost, "destination": f"q.{j % n_queues:06d}",
                         "destination_type": "queue", "routing_key": key,
                         "arguments": {"x-match": "all", "shard": j % 5} if ex["type"] == "headers" else {}})
    return {"rabbit_version": "3.10.8", "vhosts": [{"name": vhost}], "exchanges": exchanges, "queues": queues,
            "bindings": bindings, "policies": [], "users": [], "permissions": []}


def time_baseline(path: str) -> float:
    t0 = time.perf_counter()
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    yaml.dump(data, Dumper=yaml.CSafeDumper)
    return time.perf_counter() - t0


def time_import(path: str, out: str) -> float:
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), environ={}, cwd=os.path.dirname(path))
    t0 = time.perf_counter()
    code = main(["import", "--state", path, "-o", out, "--force"], env)
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"import failed (exit {code}): {env.stderr.getvalue()[-500:]}")
    return elapsed


def main_cli(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="topoform-bench-import-") as tmp:
        path = os.path.join(tmp, "export.json")
        doc = export(args.objects)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        n = sum(len(doc[k]) for k in ("exchanges", "queues", "bindings"))
        print(f"export: {len(doc['queues'])} queues, {len(doc['exchanges'])} exchanges, {len(doc['bindings'])} "
              f"bindings ({n} objects, {os.path.getsize(path) / 1e6:.1f} MB)", flush=True)
        out = os.path.join(tmp, "topology.yaml")
        base, imp = [], []
        for _ in range(args.repeat):
            gc.collect()
            base.append(time_baseline(path))
            gc.collect()
            imp.append(time_import(path, out))
            print(f"  baseline {base[-1]:.2f}s  import {imp[-1]:.2f}s", flush=True)
        b, i = min(base), min(imp)
        print(f"\n{'method':48s} {'best s':>7s}")
        print(f"{'json.load + yaml.dump(CSafeDumper)':48s} {b:7.2f}")
        print(f"{'topoform import --state':48s} {i:7.2f}")
        ratio = i / b
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"import / baseline = {ratio:.2f}x (target <= {TARGET}x): {verdict}")
        return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main_cli())
