"""Benchmark: a no-change ``topoform plan`` against a large vhost, next to the floor.

For each size (default 1,000, 10,000 and 30,000 queues, with a tenth as many exchanges
and twice as many bindings), the script

1. generates the topology as YAML (half the bindings in the per-queue sugar, half in
   the general list) and as a definitions document, from the same data;
2. fills a fresh vhost with it through the broker's bulk import
   (``POST /api/definitions/VHOST``) and waits until every queue exists;
3. times, interleaved, ``--repeat`` rounds:

   * **floor**: one bare ``yaml.load(text, Loader=yaml.CSafeLoader)`` of the file plus
     one ``GET /api/definitions/VHOST`` (what any planner must pay);
   * **plan**: ``topoform plan -f FILE --detailed-exitcode`` run in-process through
     ``topoform.cli.main`` (load, read live, normalize, diff, render), asserting exit 0;

   * **offline**: ``topoform plan --state EXPORT`` of the same vhost's export (saved once):
     topoform's own work (load, read, normalize, diff, render) without the broker wait;

4. at 1,000 queues only, times a **per-object refresh** as the Terraform provider does
   it: one GET per queue, per exchange and per binding.

It prints a table with the ratio plan/floor (target: at most 1.5x at every size; plan and floor each the
median of the same interleaved rounds, and the best of each beside it),
and the growth per queue from the smallest to the largest size of the live plan, of the
offline plan and of the broker's own ``GET /api/definitions`` (linear growth means a
roughly constant time per object). The vhosts are deleted afterwards.

Usage (a live broker; defaults to guest on localhost)::

    .venv/bin/python benchmarks/bench_plan.py [--sizes 1000,10000,30000] [--repeat 3]
        [--url amqp://guest:guest@localhost:5672/] [--management-url http://...]
"""
from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

import requests
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_apply import Admin  # noqa: E402  (the benchmarks' shared management client)

from topoform.broker.settings import BrokerSettings, quote_segment  # noqa: E402
from topoform.cli import Environment, main  # noqa: E402

TARGET = 1.5
GROWTH_TARGET = 1.5  # issue 17: time per queue at the largest size / at the smallest
TYPES = ("topic", "direct", "fanout", "headers")


def generate(vhost: str, n_queues: int) -> tuple[str, dict]:
    """(YAML text, definitions document) describing the same topology."""
    n_exchanges, n_bindings = max(1, n_queues // 10), 2 * n_queues
    exchanges = [(f"ex.{i:05d}", TYPES[i % 4]) for i in range(n_exchanges)]
    queues = []
    for i in range(n_queues):
        args = {"x-message-ttl": 60000 + i} if i % 2 == 0 else {}
        if i % 7 == 0:
            args["x-max-length"] = 1000
        queues.append((f"q.{i:05d}", args))
    sugar, general = [], []
    for j in range(n_bindings):
        q = queues[j % n_queues][0]
        ex, etype = exchanges[(j * 7) % n_exchanges]
        key = "" if etype in ("fanout", "headers") else f"rk.{j}.#" if etype == "topic" else f"rk.{j}"
        args = {"x-match": "all", "shard": j % 5} if etype == "headers" else {}
        (sugar if j % 2 == 0 else general).append((ex, q, key, args))

    by_queue: dict[str, list] = {}
    for ex, q, key, args in sugar:
        by_queue.setdefault(q, []).append((ex, key, args))
    out = ["version: 1", "vhosts:", f"  {json.dumps(vhost)}:", "    exchanges:"]
    for name, etype in exchanges:
        out.append(f"      {name}:")
        out.append(f"        type: {etype}")
        out.append("        durable: true")
    out.append("    queues:")
    for name, args in queues:
        out.append(f"      {name}:")
        out.append("        durable: true")
        if args:
            out.append("        arguments:")
            out.extend(f"          {k}: {v}" for k, v in args.items())
        if name in by_queue:
            out.append("        bindings:")
            for ex, key, args in by_queue[name]:
                line = f"          - {{exchange: {ex}, routing_key: {json.dumps(key)}"
                if args:
                    line += ", arguments: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in args.items()) + "}"
                out.append(line + "}")
    out.append("    bindings:")
    for ex, q, key, args in general:
        line = f"      - {{source: {ex}, destination: {q}, routing_key: {json.dumps(key)}"
        if args:
            line += ", arguments: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in args.items()) + "}"
        out.append(line + "}")
    text = "\n".join(out) + "\n"

    definitions = {
        "exchanges": [{"name": n, "type": t, "durable": True, "auto_delete": False, "internal": False,
                       "arguments": {}} for n, t in exchanges],
        "queues": [{"name": n, "durable": True, "auto_delete": False, "arguments": a} for n, a in queues],
        "bindings": [{"source": ex, "destination": q, "destination_type": "queue", "routing_key": key,
                      "arguments": args} for ex, q, key, args in sugar + general],
        "policies": [],
    }
    return text, definitions


def fill(http: Admin, vhost: str, definitions: dict) -> float:
    q = quote_segment(vhost)
    http.create_vhost(vhost)
    t0 = time.perf_counter()
    # the API limits a request body (about 20 MB): import in chunks (the import is additive);
    # small ones, because a request the broker does not finish within its 60 s idle limit is
    # cut off with the import half done (3.10.8, 10,000 queues into a vhost holding 10,000)
    chunk = 2_000
    http.req("POST", f"/api/definitions/{q}", {"exchanges": definitions["exchanges"], "queues": [],
                                                "bindings": [], "policies": definitions["policies"]})
    for key in ("queues", "bindings"):
        rows = definitions[key]
        for i in range(0, len(rows), chunk):
            for attempt in range(3):  # the import is additive: a chunk cut off is sent again
                try:
                    http.req("POST", f"/api/definitions/{q}", {key: rows[i:i + chunk]})
                    break
                except requests.RequestException as exc:
                    print(f"  import of {key} {i}..{i + chunk} cut off ({type(exc).__name__}); again", flush=True)
                    time.sleep(5 * (attempt + 1))
            else:
                raise SystemExit(f"the broker did not take the {key} rows {i}..{i + chunk}")
    want = len(definitions["queues"])
    for _ in range(600):
        # count with the cheap listing: a broker still busy with the import may cut the
        # export's request off (seen on 3.10.8 at 30,000 queues)
        try:
            got = len(http.req("GET", f"/api/queues/{q}?columns=name&disable_stats=true", timeout=120).json())
        except requests.RequestException:
            got = -1
        if got >= want:
            break
        time.sleep(1)
    return time.perf_counter() - t0


def time_floor(path: str, http: Admin, vhost: str) -> tuple[float, float | None]:
    """(bare parse seconds, one GET /api/definitions/VHOST seconds); the floor is their sum.

    The GET is None when the broker cuts the export off (3.10.8 at 30,000 queues closes the
    connection without an answer): there is no floor to compare with at that size.
    """
    t0 = time.perf_counter()
    with open(path, encoding="utf-8") as fh:
        yaml.load(fh.read(), Loader=yaml.CSafeLoader)
    t1 = time.perf_counter()
    try:
        http.req("GET", f"/api/definitions/{quote_segment(vhost)}").json()
    except requests.RequestException:
        return t1 - t0, None
    return t1 - t0, time.perf_counter() - t1


def time_listings(http: Admin, vhost: str) -> float:
    """The per-kind listings topoform reads (topoform/broker/http.py LISTINGS), issued at once."""
    from concurrent.futures import ThreadPoolExecutor

    from topoform.broker.http import listing_requests

    requests_ = listing_requests(vhost)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(requests_)) as pool:
        list(pool.map(lambda item: http.s.get(http.base + item[0], params=item[1], timeout=600).json(),
                      requests_.values()))
    return time.perf_counter() - t0


def _s(value: float | None, width: int = 0) -> str:
    return f"{value:.3f}s".rjust(width) if value is not None else "cut off".rjust(width)


def _x(a: float, b: float | None, width: int = 0) -> str:
    return f"{a / b:.2f}x".rjust(width) if b else "-".rjust(width)


def write_state(http: Admin, vhost: str, path: str, state: str) -> None:
    """The vhost's export for the offline plan; where the broker cuts its export off, the files'
    own ``topoform export`` (the same state: the plan of those files against it is no change)."""
    try:
        text = http.req("GET", f"/api/definitions/{quote_segment(vhost)}").text
    except requests.RequestException:
        env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), environ={}, cwd=os.path.dirname(path))
        if main(["export", "-f", path, "-o", state], env) != 0:
            raise SystemExit(f"topoform export failed: {env.stderr.getvalue()[-500:]}")
        print("  (the broker cut its export off: the offline plan reads the files' own export)", flush=True)
        return
    with open(state, "w", encoding="utf-8") as fh:
        fh.write(text)


def time_plan(path: str, environ: dict) -> float:
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), environ=environ, cwd=os.path.dirname(path))
    t0 = time.perf_counter()
    code = main(["plan", "-f", path, "--detailed-exitcode"], env)
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"plan was not a no-change plan (exit {code}):\n{env.stdout.getvalue()[-2000:]}"
                         f"{env.stderr.getvalue()[-2000:]}")
    return elapsed


def time_offline(path: str, state: str) -> float:
    """``plan --state`` of the same export: topoform's own work, without waiting for the broker."""
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), environ={}, cwd=os.path.dirname(path))
    t0 = time.perf_counter()
    code = main(["plan", "-f", path, "--state", state, "--detailed-exitcode"], env)
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"offline plan was not a no-change plan (exit {code})")
    return elapsed


def time_per_object(http: Admin, vhost: str, definitions: dict) -> float:
    """Terraform-provider style refresh: one GET per object."""
    v = quote_segment(vhost)
    t0 = time.perf_counter()
    for e in definitions["exchanges"]:
        http.req("GET", f"/api/exchanges/{v}/{quote_segment(e['name'])}")
    for q in definitions["queues"]:
        http.req("GET", f"/api/queues/{v}/{quote_segment(q['name'])}")
    for b in definitions["bindings"]:
        http.req("GET", f"/api/bindings/{v}/e/{quote_segment(b['source'])}/q/{quote_segment(b['destination'])}")
    return time.perf_counter() - t0


def run(sizes: list[int], repeat: int, settings: BrokerSettings, environ: dict, keep: bool) -> int:
    http = Admin(settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="topoform-bench-") as tmp:
        for n in sizes:
            vhost = f"tf-bench-{n}-{uuid.uuid4().hex[:6]}"
            text, definitions = generate(vhost, n)
            path = os.path.join(tmp, f"plan-{n}.yaml")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"[{n} queues] filling vhost {vhost} "
                  f"({len(definitions['exchanges'])} exchanges, {len(definitions['bindings'])} bindings)...",
                  flush=True)
            try:
                import_s = fill(http, vhost, definitions)
                time_plan(path, environ)  # warm-up: imports, first connection
                parses, gets, plans, listings = [], [], [], []
                for _ in range(repeat):
                    gc.collect()
                    parse_s, get_s = time_floor(path, http, vhost)
                    parses.append(parse_s)
                    gets.append(get_s)
                    listings.append(time_listings(http, vhost))
                    gc.collect()
                    plans.append(time_plan(path, environ))
                # like against like: the floor and the plan are each the median of the same interleaved
                # rounds (a best-of floor against a median plan set a noisy machine's luckiest moment
                # against its typical one); the best of each is printed beside it
                answered = [p + g for p, g in zip(parses, gets) if g is not None]
                floor = statistics.median(answered) if answered else None
                best_floor = min(answered) if answered else None
                got = [g for g in gets if g is not None]
                best_get = min(got) if got else None
                state = os.path.join(tmp, f"state-{n}.json")
                write_state(http, vhost, path, state)
                offline = min(time_offline(path, state) for _ in range(repeat))
                per_object = time_per_object(http, vhost, definitions) if n <= 1000 else None
                rows.append((n, len(definitions["exchanges"]), len(definitions["bindings"]), floor,
                             statistics.median(plans), per_object, import_s, offline, best_get, min(listings)))
                plan_s = statistics.median(plans)
                print(f"  import {import_s:.1f}s  floor {_s(floor)} (median of "
                      f"{', '.join(_s(a) for a in answered) or '-'}; parse {statistics.median(parses):.3f}s + GET "
                      f"{_s(statistics.median(got) if got else None)})  plan {plan_s:.3f}s (median of "
                      f"{', '.join(f'{p:.3f}' for p in plans)})  ratio {_x(plan_s, floor)}  best against best "
                      f"{_x(min(plans), best_floor)}  listings {min(listings):.3f}s  offline {offline:.3f}s"
                      + (f"  per-object refresh {per_object:.2f}s" if per_object else ""), flush=True)
            finally:
                if not keep:
                    http.delete_vhost(vhost)

    print()
    print(f"{'queues':>7} {'exchanges':>9} {'bindings':>8} {'floor s':>8} {'(GET s)':>8} {'listings':>8} {'plan s':>8} "
          f"{'ratio':>6} {'us/queue':>9} {'offline s':>9} {'us/queue':>9} {'per-object refresh s':>21}")
    for n, ne, nb, floor, plan, per_object, _, offline, get, lst in rows:
        print(f"{n:>7} {ne:>9} {nb:>8} {_s(floor, 8)} {_s(get, 8)} {lst:>8.3f} {plan:>8.3f} {_x(plan, floor, 6)} "
              f"{plan / n * 1e6:>9.1f} {offline:>9.3f} {offline / n * 1e6:>9.1f} "
              f"{(f'{per_object:.2f}' if per_object else '-'):>21}")
    print("(plan = median of the runs; floor = median of the same rounds' parse + GET /api/definitions/V; listings = the per-kind "
          "listings topoform reads, at once; offline = plan --state of the same export: topoform's own work)")
    status = 0
    for n, _, _, floor, plan, *_ in rows:  # issue 10: at every size
        if floor is None:
            print(f"target at {n} queues: plan within {TARGET}x of the floor: no floor (the broker cut its own "
                  f"export off; topoform's plan read the listings in {plan:.3f}s)")
            continue
        verdict = "PASS" if plan <= TARGET * floor else "FAIL"
        status |= verdict == "FAIL"
        print(f"target at {n} queues: plan within {TARGET}x of the floor: {plan / floor:.2f}x {verdict}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        n0, n1 = first[0], last[0]
        for label, i in (("plan", 4), ("offline plan", 7), ("GET /api/definitions (broker)", 8), ("listings (broker)", 9)):
            if first[i] is None or last[i] is None:
                print(f"growth of {label}: not measured (the broker cut its export off)")
                continue
            growth = (last[i] / n1) / (first[i] / n0)
            print(f"growth of {label}: time per queue at {n1} / at {n0} = {growth:.2f} (1.0 = linear)")
        growth = (last[4] / n1) / (first[4] / n0)
        verdict = "PASS" if growth <= GROWTH_TARGET else "FAIL"
        status |= verdict == "FAIL"
        print(f"target (issue 17): plan time per queue at {n1} at most {GROWTH_TARGET}x that at {n0}: {growth:.2f}x {verdict}")
        fastest = min(t for t in (last[8], last[9]) if t is not None)
        bound = last[7] + fastest
        verdict = "PASS" if last[4] <= 2 * bound else "FAIL"
        status |= verdict == "FAIL"
        print(f"target (issue 17): plan at {n1} at most 2x offline plan + fastest read ({last[7]:.3f} + "
              f"{fastest:.3f} s): {last[4] / bound:.2f}x {verdict}")
    per = [r for r in rows if r[5]]
    if per:
        n, _, _, _, plan, per_object, *_ = per[0]
        print(f"per-object refresh at {n} queues: {per_object:.2f}s, {per_object / plan:.0f}x the plan's {plan:.3f}s")
    return status


def main_cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,30000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=os.environ.get("TOPOFORM_URL", "amqp://guest:guest@localhost:5672/"))
    parser.add_argument("--management-url", default=os.environ.get("TOPOFORM_MANAGEMENT_URL"))
    parser.add_argument("--keep", action="store_true", help="keep the vhosts (for inspection)")
    args = parser.parse_args(argv)
    settings = BrokerSettings(url=args.url, management_url=args.management_url)
    # a loaded broker can take longer than the default 30 s to build a 30,000-queue export
    environ = {"TOPOFORM_URL": args.url, "TOPOFORM_TIMEOUT": "600"}
    if args.management_url:
        environ["TOPOFORM_MANAGEMENT_URL"] = args.management_url
    sizes = [int(s) for s in args.sizes.split(",") if s]
    return run(sizes, args.repeat, settings, environ, args.keep)


if __name__ == "__main__":
    sys.exit(main_cli())
