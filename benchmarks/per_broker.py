"""Run the apply and plan benchmarks on every test broker and print their ratios per broker.

For each broker of ``scripts/brokers.tsv`` (3.10.8, 4.0.5, 4.3.6; ``--brokers`` to
choose), runs ``bench_apply.py`` (topoform apply next to the broker's bulk import of the
same topology, in the same run) and ``bench_plan.py`` (a no-change plan next to its
floor: a bare YAML parse plus the broker's own ``GET /api/definitions/VHOST``; the
largest ratio over ``--plan-sizes`` counts), one
broker after the other so they do not compete for the two cores, and prints a summary:

    broker  apply/import  target  plan/floor  target
    3.10    0.41x         <=0.60  1.21x       <=1.50
    ...

Exit 0 when every ratio meets its target, 1 otherwise (each benchmark's own output is
printed as it runs). Start the brokers first: ``bash scripts/broker.sh``.

    .venv/bin/python benchmarks/per_broker.py [--brokers 3.10,4.0,4.3] [--queues 10000]
        [--plan-sizes 10000] [--repeat 3] [--apply-repeat 2]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TSV = HERE.parent / "scripts" / "brokers.tsv"
APPLY_TARGET, PLAN_TARGET = 0.6, 1.5


def brokers() -> dict[str, tuple[int, int]]:
    out = {}
    for line in TSV.read_text().splitlines():
        cols = line.split()
        if cols and not cols[0].startswith("#"):
            out[cols[0]] = (int(cols[2]), int(cols[3]))
    return out


def run(cmd: list[str]) -> tuple[int, str]:
    """Run a benchmark, echoing its output as it comes; returns (exit code, whole output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print("    " + line, end="", flush=True)
        lines.append(line)
    return proc.wait(), "".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default=",".join(brokers()))
    ap.add_argument("--queues", type=int, default=10_000, help="apply benchmark size (exchanges /10, bindings x2)")
    ap.add_argument("--plan-sizes", default="1000,10000", help="plan benchmark sizes")
    ap.add_argument("--repeat", type=int, default=3, help="plan runs per size (the median counts)")
    ap.add_argument("--apply-repeat", type=int, default=1,
                    help="apply rounds (import, pipelined, topoform in turn; the medians count)")
    ap.add_argument("--skip-pipelined", action="store_true", help="skip bench_apply's pipelined pika baseline")
    args = ap.parse_args()
    extra = ["--skip-pipelined"] if args.skip_pipelined else []
    table = brokers()
    rows = []
    extras: dict[str, tuple[str, str]] = {}
    for name in [b.strip() for b in args.brokers.split(",") if b.strip()]:
        if name not in table:
            raise SystemExit(f"unknown broker {name!r}; known: {', '.join(table)}")
        amqp, http = table[name]
        url, mgmt = f"amqp://guest:guest@localhost:{amqp}/", f"http://guest:guest@localhost:{http}"
        print(f"== RabbitMQ {name} (AMQP {amqp}, HTTP {http})", flush=True)
        print("  -- apply", flush=True)
        code_a, out_a = run([sys.executable, str(HERE / "bench_apply.py"), "--skip-naive", "--url", url, *extra,
                             "--management-url", mgmt, "--queues", str(args.queues),
                             "--exchanges", str(args.queues // 10), "--bindings", str(args.queues * 2),
                             "--repeat", str(args.apply_repeat)])
        print("  -- plan", flush=True)
        code_p, out_p = run([sys.executable, str(HERE / "bench_plan.py"), "--url", url, "--management-url", mgmt,
                             "--sizes", args.plan_sizes, "--repeat", str(args.repeat)])
        m_apply = re.search(r"topoform / bulk import = ([0-9.]+)x", out_a)
        m_pipe = re.search(r"topoform / pipelined pika = ([0-9.]+)x", out_a)
        m_cpu = re.search(r"broker CPU during topoform : .*= ([0-9.]+) of", out_a)
        extras[name] = (m_pipe.group(1) + "x" if m_pipe else "-", m_cpu.group(1) if m_cpu else "-")
        plan_ratios = re.findall(r"target at (\d+) queues: plan within [0-9.]+x of the floor: ([0-9.]+)x", out_p)
        rows.append((name, float(m_apply.group(1)) if m_apply else None,
                     max((float(r) for _, r in plan_ratios), default=None), code_a, code_p))

    print()
    print(f"{'broker':7s} {'apply/import':>12s} {'target':>7s} {'plan/floor':>11s} {'target':>7s} "
          f"{'apply/pipelined':>15s} {'broker cores':>12s}")
    ok = True
    for name, apply_ratio, plan_ratio, code_a, code_p in rows:
        a = f"{apply_ratio:.2f}x" if apply_ratio is not None else "failed"
        p = f"{plan_ratio:.2f}x" if plan_ratio is not None else "failed"
        pipe, cores = extras.get(name, ("-", "-"))
        print(f"{name:7s} {a:>12s} {'<=' + str(APPLY_TARGET):>7s} {p:>11s} {'<=' + str(PLAN_TARGET):>7s} "
              f"{pipe:>15s} {cores:>12s}")
        ok &= apply_ratio is not None and apply_ratio <= APPLY_TARGET and code_a == 0
        ok &= plan_ratio is not None and plan_ratio <= PLAN_TARGET
    print("all targets met" if ok else "TARGETS MISSED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
