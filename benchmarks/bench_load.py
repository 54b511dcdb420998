"""Benchmark: the whole topology load against a bare libyaml parse of the same file.

Generates a file with 10,000 queues, 1,000 exchanges and 20,000 bindings (half in the
per-queue ``bindings:`` sugar, half in the general list) in a temporary directory, then
times, in the same run and interleaved:

* bare: ``yaml.load(text, Loader=yaml.CSafeLoader)``;
* whole: ``topoform.load.load_topology([path])`` (read, parse, duplicate keys, schema,
  model, references, broker rules).

Prints the best of N for each (wall and cpu time), the ratio and PASS/FAIL against the
1.3x target (on wall time). For reference it also times the bare parse with the cyclic
garbage collector paused, as the loader does: that ratio is the loader's own overhead.
Exit status 0 on PASS, 1 on FAIL. Usage::

    .venv/bin/python benchmarks/bench_load.py [--repeat 7] [--keep FILE]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from topoform.load import load_topology  # noqa: E402

TARGET = 1.3
N_QUEUES, N_EXCHANGES, N_BINDINGS = 10_000, 1_000, 20_000
TYPES = ("topic", "direct", "fanout", "headers")


def generate(n_queues: int = N_QUEUES, n_exchanges: int = N_EXCHANGES, n_bindings: int = N_BINDINGS) -> str:
    """A realistic large topology as YAML text (block style, as people write it)."""
    out = ["version: 1", "vhosts:", "  /:", "    exchanges:"]
    for i in range(n_exchanges):
        t = TYPES[i % 4]
        out.append(f"      ex.{i:04d}:")
        out.append(f"        type: {t}")
        out.append("        durable: true")
        if i % 10 == 0 and i + 1 < n_exchanges:
            out.append("        arguments:")
            out.append(f"          alternate-exchange: ex.{i + 1:04d}")
    out.append("    queues:")
    sugar = min(n_queues, n_bindings // 2)
    for i in range(n_queues):
        out.append(f"      queue.{i:05d}:")
        out.append("        durable: true")
        if i % 3 == 0:
            out.append("        arguments:")
            out.append("          x-queue-type: quorum")
            out.append("          x-delivery-limit: 5")
        elif i % 3 == 1:
            out.append("        arguments:")
            out.append("          x-message-ttl: 60000")
            out.append("          x-max-length: 10000")
        if i < sugar:
            ex = i % n_exchanges
            out.append("        bindings:")
            if TYPES[ex % 4] == "headers":
                out.append(f"          - exchange: ex.{ex:04d}")
                out.append(f"            arguments: {{x-match: all, format: f{i % 7}}}")
            else:
                out.append(f"          - {{exchange: ex.{ex:04d}, routing_key: \"orders.{i}.*\"}}")
    out.append("    bindings:")
    for j in range(n_bindings - sugar):
        ex = (j * 7) % n_exchanges
        if j % 20 == 0 and ex + 1 < n_exchanges:
            out.append(f"      - {{source: ex.{ex:04d}, destination: ex.{ex + 1:04d}, destination_type: exchange, "
                       f"routing_key: \"e2e.{j}\"}}")
        else:
            out.append(f"      - source: ex.{ex:04d}")
            out.append(f"        destination: queue.{(j * 13) % n_queues:05d}")
            out.append(f"        routing_key: \"events.{j}.#\"")
    out.append("    policies:")
    out.append("      limits: {pattern: \"^queue\\\\.\", apply_to: queues, definition: {max-length: 100000}}")
    return "\n".join(out) + "\n"


def measure(fn) -> tuple[float, float]:
    """(wall seconds, cpu seconds) of one call; cpu time is steadier on a busy machine."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each (best is kept)")
    parser.add_argument("--keep", metavar="FILE", help="also write the generated topology here")
    args = parser.parse_args(argv)

    text = generate()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        if args.keep:
            with open(args.keep, "w", encoding="utf-8") as fh:
                fh.write(text)

        def bare():
            # read the file too: the whole load reads it, so both sides pay for the I/O
            with open(path, encoding="utf-8") as fh:
                return yaml.load(fh.read(), Loader=yaml.CSafeLoader)

        def bare_no_gc():
            # for reference: the bare parse with the same collector pause the loader uses
            gc.disable()
            try:
                return bare()
            finally:
                gc.enable()

        def whole():
            return load_topology([path])

        result = whole()  # warm-up: imports, schema compilation; also a correctness check
        counts = result.topology.counts()
        if result.errors or (counts["queue"], counts["exchange"], counts["binding"]) != (
                N_QUEUES, N_EXCHANGES, N_BINDINGS):
            print(f"generated file did not load as expected: {counts}, {len(result.errors)} errors", file=sys.stderr)
            for f in result.errors[:5]:
                print(f.format(), file=sys.stderr)
            return 1
        bare()
        timings = {"bare": [], "bare_no_gc": [], "whole": []}
        fns = {"bare": bare, "bare_no_gc": bare_no_gc, "whole": whole}
        for _ in range(args.repeat):  # interleave so drift in machine load hits every side
            for name, fn in fns.items():
                timings[name].append(measure(fn))
        best = {name: (min(t[0] for t in ts), min(t[1] for t in ts)) for name, ts in timings.items()}
    b, w = best["bare"][0], best["whole"][0]
    ratio = w / b
    cpu_ratio = best["whole"][1] / best["bare"][1]
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"file: {len(text) / 1e6:.1f} MB, {N_QUEUES} queues, {N_EXCHANGES} exchanges, {N_BINDINGS} bindings, "
          f"{len(result.warnings)} warnings; best of {args.repeat}, wall (cpu)")
    for label, name in (("bare yaml.load(CSafeLoader)", "bare"), ("  same, collector paused", "bare_no_gc"),
                        ("whole load_topology", "whole")):
        print(f"{label + ':':30s}{best[name][0] * 1000:9.1f} ms ({best[name][1] * 1000:.1f} ms cpu)")
    print(f"whole / bare (with its collector pause too): "
          f"{best['whole'][0] / best['bare_no_gc'][0]:.2f}x wall, {best['whole'][1] / best['bare_no_gc'][1]:.2f}x cpu")
    print(f"ratio: {ratio:.2f}x wall, {cpu_ratio:.2f}x cpu (target <= {TARGET}x): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
