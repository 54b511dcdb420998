"""Routing benchmark: the router's indexes against a regex-per-binding scan.

Prints figures, ratios, targets and PASS/FAIL (issue 3); asserts nothing else.

1. 100,000 topic bindings on one exchange: ``Router.route`` lookups per second
   against scanning every binding's regex (targets: >= 1,000x the scan and
   >= 100,000 lookups/s).
2. 100,000 topic bindings over 1,000 exchanges (100 each): ``Router.route``
   against a scan of the publishing exchange's own bindings (target: >= 2x).
3. One ``topoform test-route`` process on a 100,000-binding file (start, load,
   index, answer) against a process that only parses the same file with
   ``yaml.CSafeLoader`` (target: within 1.5x).

Both sides of every comparison answer the same questions, and the script checks
that they give the same answers before timing them.

    .venv/bin/python benchmarks/bench_routing.py [--quick]
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from topoform.model import Binding, Exchange, Queue, Topology  # noqa: E402
from topoform.routing import Router  # noqa: E402
from topoform.routing.match import topic_matches  # noqa: E402

VHOST = "/"


def topic_regex(binding_key: str) -> re.Pattern:
    """A binding key as a regex over ``"." + routing_key`` (``""`` for the empty key).

    Prefixing every routing word with its dot makes ``#`` (zero or more words) a
    plain repetition: literal ``w`` is ``\\.w``, ``*`` is ``\\.[^.]*``, ``#`` is
    ``(?:\\.[^.]*)*``. Checked against :func:`topic_matches` below.
    """
    parts = []
    for word in (binding_key.split(".") if binding_key else []):
        if word == "#":
            parts.append(r"(?:\.[^.]*)*")
        elif word == "*":
            parts.append(r"\.[^.]*")
        else:
            parts.append(r"\." + re.escape(word))
    return re.compile("".join(parts))


def scan_key(routing_key: str) -> str:
    return "." + routing_key if routing_key else ""


class Scan:
    """The naive router: one compiled regex per binding, every binding tried."""

    def __init__(self, bindings):
        self.by_exchange: dict[str, list] = {}
        for b in bindings:
            self.by_exchange.setdefault(b.source, []).append((topic_regex(b.routing_key).fullmatch, b.destination))

    def route(self, exchange: str, routing_key: str) -> tuple[str, ...]:
        key = scan_key(routing_key)
        return tuple(sorted({dest for match, dest in self.by_exchange.get(exchange, ()) if match(key)}))


# A realistic key space: DOMAIN.SERVICE.ENTITY.EVENT (20 x 50 x 100 x 20 = 2,000,000 keys).
POSITIONS = (20, 50, 100, 20)
PREFIX = ("d", "s", "e", "v")


def binding_key(rng: random.Random) -> str:
    """Mostly exact keys, some ``*`` in one position, some ``#`` tails and a few ``#`` inside."""
    words = [f"{PREFIX[p]}{rng.randrange(n)}" for p, n in enumerate(POSITIONS)]
    r = rng.random()
    if r < 0.20:
        words[rng.randrange(4)] = "*"
    elif r < 0.28:
        words = words[: rng.randint(2, 3)] + ["#"]
    elif r < 0.30:
        i = rng.randint(1, 2)
        words = words[:i] + ["#"] + words[i + 1:]
    return ".".join(words)


def routing_key(rng: random.Random) -> str:
    return ".".join(f"{PREFIX[p]}{rng.randrange(n)}" for p, n in enumerate(POSITIONS))


def topology_one_exchange(rng, n_bindings: int):
    res = [Exchange(VHOST, "events", "topic")]
    queues = [f"q{i}" for i in range(1000)]
    res += [Queue(VHOST, q) for q in queues]
    res += [Binding(VHOST, "events", rng.choice(queues), "queue", binding_key(rng)) for _ in range(n_bindings)]
    return Topology.build(res)


def topology_many_exchanges(rng, n_bindings: int, n_exchanges: int):
    exchanges = [f"x{i}" for i in range(n_exchanges)]
    queues = [f"q{i}" for i in range(1000)]
    res = [Exchange(VHOST, x, "topic") for x in exchanges] + [Queue(VHOST, q) for q in queues]
    per = n_bindings // n_exchanges
    for x in exchanges:
        res += [Binding(VHOST, x, rng.choice(queues), "queue", binding_key(rng)) for _ in range(per)]
    return Topology.build(res), exchanges


def timed(fn, items, min_seconds: float = 0.3, rounds: int = 5) -> float:
    """Calls per CPU-second of ``fn(item)`` over ``items``: the best of ``rounds`` runs of at
    least ``min_seconds`` each. CPU time (``process_time``), because on a shared machine
    wall time mostly measures the other processes; best-of and with the cyclic garbage
    collector paused, like ``timeit`` (the same for both sides of a comparison)."""
    best = 0.0
    gc.collect()
    for _ in range(rounds):
        gc.disable()
        done, start = 0, time.process_time()
        while True:
            for item in items:
                fn(item)
            done += len(items)
            elapsed = time.process_time() - start
            if elapsed >= min_seconds:
                break
        gc.enable()
        best = max(best, done / elapsed)
    return best


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def check_regex_translation():
    keys = ["", ".", "..", "a", "a.b", "a..b", "a.", ".a", "a.b.c", "#", "*", "a*b", "b.a"]
    patterns = ["", "#", "*", "#.#", "*.#", "#.*", "a.#", "a.*", "a.#.b", "#.a.#", "*.*", ".", "a*b", "#a", "a..b"]
    for p in patterns:
        rx = topic_regex(p)
        for k in keys:
            assert bool(rx.fullmatch(scan_key(k))) == topic_matches(p, k), (p, k)


def bench_one_exchange(n_bindings: int, quick: bool) -> bool:
    rng = random.Random(1)
    topology = topology_one_exchange(rng, n_bindings)
    keys = [routing_key(rng) for _ in range(2000)]
    gc.disable()
    t0 = time.perf_counter()
    router = Router(topology)
    router.index_for(VHOST, "events")
    build = time.perf_counter() - t0
    gc.enable()
    scan = Scan(topology.bindings)
    sample = keys[: (5 if quick else 20)]
    for k in sample:
        assert router.route(VHOST, "events", k).queues == scan.route("events", k), k
    matched = statistics.mean(len(router.route(VHOST, "events", k).queues) for k in keys[:200])
    naive = timed(lambda k: scan.route("events", k), sample, min_seconds=1.0, rounds=2)
    del scan  # each side is timed without the other's 100,000 objects on the heap
    gc.collect()
    engine = timed(lambda k: router.route(VHOST, "events", k), keys)
    trie = router.index_for(VHOST, "events")
    raw = timed(trie.lookup, keys)
    ratio = engine / naive
    ok = ratio >= 1000 and engine >= 100_000
    print(f"[1] {len(topology.bindings):,} topic bindings on one exchange "
          f"(index built in {build * 1000:.0f} ms; {matched:.1f} queues per message on average)")
    print(f"    router.route():          {engine:12,.0f} lookups/s")
    print(f"    trie lookup alone:       {raw:12,.0f} lookups/s")
    print(f"    regex scan per binding:  {naive:12,.1f} lookups/s")
    print(f"    ratio {ratio:,.0f}x (target >= 1,000x) and {engine:,.0f}/s (target >= 100,000/s): {verdict(ok)}")
    return ok


def bench_many_exchanges(n_bindings: int, n_exchanges: int) -> bool:
    rng = random.Random(2)
    topology, exchanges = topology_many_exchanges(rng, n_bindings, n_exchanges)
    messages = [(rng.choice(exchanges), routing_key(rng)) for _ in range(5000)]
    gc.disable()
    t0 = time.perf_counter()
    router = Router(topology)
    for x in exchanges:
        router.index_for(VHOST, x)
    build = time.perf_counter() - t0
    gc.enable()
    scan = Scan(topology.bindings)
    for x, k in messages[:500]:
        assert router.route(VHOST, x, k).queues == scan.route(x, k), (x, k)
    naive = timed(lambda m: scan.route(m[0], m[1]), messages, rounds=3)
    del scan
    gc.collect()
    engine = timed(lambda m: router.route(VHOST, m[0], m[1]), messages)
    ratio = engine / naive
    ok = ratio >= 2
    print(f"[2] {len(topology.bindings):,} topic bindings over {n_exchanges:,} exchanges "
          f"(all indexes built in {build * 1000:.0f} ms)")
    print(f"    router.route():             {engine:12,.0f} lookups/s")
    print(f"    regex scan of the exchange: {naive:12,.0f} lookups/s")
    print(f"    ratio {ratio:,.1f}x (target >= 2x): {verdict(ok)}")
    return ok


def write_big_file(path: Path, n_bindings: int) -> str:
    rng = random.Random(3)
    lines = ["version: 1", "vhosts:", "  /:", "    exchanges:", "      events: {type: topic}", "    queues:"]
    queues = [f"q{i}" for i in range(1000)]
    lines += [f"      {q}: {{}}" for q in queues]
    lines.append("    bindings:")
    for _ in range(n_bindings):
        lines.append(f'      - {{source: events, destination: {rng.choice(queues)}, '
                     f'routing_key: "{binding_key(rng)}"}}')
    path.write_text("\n".join(lines) + "\n")
    return routing_key(rng)


def run_timed(argv: list[str], repeat: int) -> tuple[float, subprocess.CompletedProcess]:
    best, proc = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t0)
    return best, proc


def bench_process(n_bindings: int, repeat: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        key = write_big_file(path, n_bindings)
        size = path.stat().st_size
        parse = [sys.executable, "-c",
                 "import sys, yaml; yaml.load(open(sys.argv[1], encoding='utf-8'), Loader=yaml.CSafeLoader)",
                 str(path)]
        route = [sys.executable, "-m", "topoform", "test-route", "-f", str(path), "events", key]
        t_parse, p = run_timed(parse, repeat)
        assert p.returncode == 0, p.stderr
        t_route, r = run_timed(route, repeat)
        assert r.returncode == 0, r.stderr[-2000:]
        in_process = _load_breakdown(path, key)
    ratio = t_route / t_parse
    ok = ratio <= 1.5
    print(f"[3] one `topoform test-route` on a {n_bindings:,}-binding file ({size / 1e6:.1f} MB), best of {repeat}")
    print(f"    bare CSafeLoader parse process: {t_parse:6.2f} s")
    print(f"    topoform test-route process:    {t_route:6.2f} s   ({in_process})")
    print(f"    ratio {ratio:.2f}x (target <= 1.5x): {verdict(ok)}")
    return ok


def _load_breakdown(path: Path, key: str) -> str:
    """Where the in-process time goes: load_topology, index build, the answer."""
    from topoform.load import load_topology

    gc.disable()  # as the test-route command does
    t0 = time.perf_counter()
    result = load_topology([str(path)])
    t1 = time.perf_counter()
    router = Router(result.topology)
    router.index_for(VHOST, "events")
    t2 = time.perf_counter()
    router.route(VHOST, "events", key)
    t3 = time.perf_counter()
    gc.enable()
    return f"in-process: load {t1 - t0:.2f} s, index {t2 - t1:.2f} s, answer {(t3 - t2) * 1e6:.0f} us"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller process test, fewer repeats")
    ap.add_argument("--bindings", type=int, default=100_000)
    args = ap.parse_args()
    check_regex_translation()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f}; "
          f"rates are per CPU-second, best of 5")
    results = [bench_one_exchange(args.bindings, args.quick),
               bench_many_exchanges(args.bindings, 1000),
               bench_process(args.bindings, 1 if args.quick else 3)]
    print("overall:", verdict(all(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
