"""Benchmark: one fleet apply against the three test brokers vs the three applies one after the other.

Creates a topology of ``--queues`` durable queues (each bound to a topic exchange) in a
fresh, uniquely named vhost on every broker of scripts/brokers.tsv (3.10, 4.0, 4.3,
guest:guest), then times:

* fleet: ``topoform apply --targets FLEET --auto-approve`` (all three in parallel);
* sequential: ``topoform apply --url ... --auto-approve`` for each broker in turn, into a
  second fresh vhost.

Prints both wall times, the sum of the sequential ones and the speed-up; deletes every
vhost it created. Exit 0 when both runs converged, 1 otherwise. Usage::

    .venv/bin/python benchmarks/bench_fleet.py [--queues 300]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from topoform.cli import main  # noqa: E402
from topoform.cli.env import Environment  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def brokers() -> dict[str, tuple[int, int]]:
    out = {}
    with open(os.path.join(ROOT, "scripts", "brokers.tsv")) as fh:
        for line in fh:
            cols = line.split()
            if cols and not cols[0].startswith("#"):
                out[cols[0]] = (int(cols[2]), int(cols[3]))
    return out


def vhost_call(method: str, http: int, vhost: str) -> None:
    r = requests.request(method, f"http://localhost:{http}/api/vhosts/{requests.utils.quote(vhost, safe='')}",
                         auth=("guest", "guest"), json={} if method == "PUT" else None, timeout=60)
    if r.status_code not in (200, 201, 204, 404):
        raise SystemExit(f"{method} vhost {vhost} on :{http} -> {r.status_code}")


def run(argv, environ) -> int:
    env = Environment(environ=environ, cwd=os.getcwd())
    return main([str(a) for a in argv], env)


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=300)
    args = parser.parse_args()
    table = brokers()
    tag = secrets.token_hex(4)
    fleet_vhost, seq_vhost = f"bench-fleet-{tag}", f"bench-seq-{tag}"
    with tempfile.TemporaryDirectory() as tmp:
        topo = os.path.join(tmp, "topology.yaml")
        lines = ["variables: {vhost: {}}", "vhosts:", '  "${vhost}":', "    exchanges: {events: {type: topic, durable: true}}",
                 "    queues:"]
        lines += [f"      q{i}: {{durable: true, bindings: [{{exchange: events, routing_key: 'k.{i}'}}]}}"
                  for i in range(args.queues)]
        with open(topo, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        targets = os.path.join(tmp, "targets.yaml")
        with open(targets, "w") as fh:
            fh.write("targets:\n")
            for name, (amqp, http) in table.items():
                fh.write(f"  b{name.replace('.', '')}: {{url: 'amqp://guest@localhost:{amqp}/', management_url: "
                         f"'http://localhost:{http}/', password: {{env: BENCH_PW}}}}\n")
        environ = {"BENCH_PW": "guest"}
        for _name, (_amqp, http) in table.items():
            vhost_call("PUT", http, fleet_vhost)
            vhost_call("PUT", http, seq_vhost)
        try:
            t0 = time.perf_counter()
            fleet_code = run(["apply", "-f", topo, "--var", f"vhost={json.dumps(fleet_vhost)}", "--targets", targets,
                              "--auto-approve"], environ)
            fleet_wall = time.perf_counter() - t0
            each = {}
            seq_codes = []
            for name, (amqp, http) in table.items():
                t1 = time.perf_counter()
                seq_codes.append(run(["apply", "-f", topo, "--var", f"vhost={json.dumps(seq_vhost)}",
                                      "--url", f"amqp://guest:guest@localhost:{amqp}/",
                                      "--management-url", f"http://guest:guest@localhost:{http}/", "--auto-approve"],
                                     {}))
                each[name] = time.perf_counter() - t1
        finally:
            for _name, (_amqp, http) in table.items():
                vhost_call("DELETE", http, fleet_vhost)
                vhost_call("DELETE", http, seq_vhost)
    total = sum(each.values())
    print(f"{args.queues} queues + {args.queues} bindings per broker, {len(table)} brokers")
    for name, secs in each.items():
        print(f"  sequential apply on {name}: {secs:7.2f} s")
    print(f"sum of sequential applies:   {total:7.2f} s")
    print(f"fleet apply (parallel):      {fleet_wall:7.2f} s  ({total / fleet_wall:.2f}x faster)")
    ok = fleet_code == 0 and all(c == 0 for c in seq_codes)
    print("converged" if ok else f"FAILED: fleet exit {fleet_code}, sequential exits {seq_codes}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main_())
