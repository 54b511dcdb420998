"""Benchmark: the per-kind listings the live reader uses, with and without the broker's sort.

For each size (default 1,000 and 10,000 queues, with a tenth as many exchanges and twice as
many bindings: the topology of ``bench_plan.py``), the script fills a fresh vhost through
the broker's bulk import, then times, interleaved over ``--repeat`` rounds, each listing of
``topoform.broker.http.LISTINGS`` as topoform sends it (``sort=`` empty: the broker does not
sort the rows) and the same request with the broker's default sort (by vhost and name, or
by source and destination for bindings). It checks that both answers hold the same rows,
and prints the best and median time of each and the ratio unsorted/sorted. The vhosts are
deleted afterwards.

The reader never needs the broker's order (rows are keyed by name, and the plan orders its
changes itself), so the sort is pure cost: it is what ``LISTINGS`` leaves out.

Usage (a live broker; defaults to guest on localhost, 3.10.8 on 5672)::

    .venv/bin/python benchmarks/bench_listings.py [--sizes 1000,10000] [--repeat 3]
        [--url amqp://guest:guest@localhost:5672/] [--management-url http://...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import bench_plan as bp  # noqa: E402
from topoform.broker.http import listing_requests  # noqa: E402
from topoform.broker.settings import BrokerSettings  # noqa: E402

KINDS = ("exchanges", "queues", "bindings")


def _get(http: bp.Http, path: str, params: dict) -> tuple[float, list]:
    t0 = time.perf_counter()
    r = http.s.get(http.base + path, params=params, timeout=600)
    r.raise_for_status()
    rows = r.json()
    return time.perf_counter() - t0, rows


def _rows_key(rows: list) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def measure(http: bp.Http, vhost: str, repeat: int) -> tuple[dict, dict, bool]:
    """{(kind, "unsorted"|"sorted"): [seconds, ...]}, {kind: rows}, and whether every pair held
    the same rows."""
    times: dict[tuple[str, str], list[float]] = {}
    counts: dict[str, int] = {}
    same = True
    requests_ = listing_requests(vhost)
    for _ in range(repeat):
        for kind in KINDS:
            path, params = requests_[kind]
            assert params.get("sort") == "", f"{kind}: topoform's listing is expected to ask for no sort"
            sorted_params = {k: v for k, v in params.items() if k != "sort"}
            t_u, unsorted_rows = _get(http, path, params)
            t_s, sorted_rows = _get(http, path, sorted_params)
            times.setdefault((kind, "unsorted"), []).append(t_u)
            times.setdefault((kind, "sorted"), []).append(t_s)
            same &= _rows_key(unsorted_rows) == _rows_key(sorted_rows)
            counts[kind] = len(unsorted_rows)
    return times, counts, same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--url", default=os.environ.get("TOPOFORM_URL", "amqp://guest:guest@localhost:5672/"))
    ap.add_argument("--management-url", default=os.environ.get("TOPOFORM_MANAGEMENT_URL"))
    args = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--sizes: expected numbers separated by commas, got {args.sizes!r}") from None
    if not sizes or args.repeat < 1:
        raise SystemExit("--sizes needs at least one size and --repeat at least 1")
    settings = BrokerSettings(url=args.url, management_url=args.management_url)
    http = bp.Http(settings)
    version = http.call("GET", "/api/overview?columns=rabbitmq_version").json().get("rabbitmq_version")
    print(f"broker {version} ({settings.http_base_clean}); sizes {sizes}; {args.repeat} rounds", flush=True)
    ok = True
    print(f"{'queues':>7} {'listing':10} {'rows':>7} {'unsorted best/median':>22} {'sorted best/median':>20} "
          f"{'unsorted/sorted (medians)':>26}")
    for n in sizes:
        vhost = f"tf-bench-listings-{uuid.uuid4().hex[:8]}"
        _text, defs = bp.generate(vhost, n)
        try:
            bp.fill(http, vhost, defs, settings.username)
            times, counts, same = measure(http, vhost, args.repeat)
            ok &= same
            for kind in KINDS:
                u, s = times[(kind, "unsorted")], times[(kind, "sorted")]
                print(f"{n:7d} {kind:10} {counts[kind]:7d} {min(u):10.3f}/{statistics.median(u):.3f} s "
                      f"{min(s):9.3f}/{statistics.median(s):.3f} s {statistics.median(u) / statistics.median(s):25.2f}x",
                      flush=True)
            print(f"{n:7d} same rows with and without the sort: {'yes' if same else 'NO'}", flush=True)
        finally:
            bp.delete_vhost(http, vhost)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
