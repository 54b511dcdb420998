"""Benchmark: ``topoform apply`` on the 3-node test cluster next to the broker's bulk import.

The same topology as benchmarks/bench_apply.py (default here 2,000 queues, 200 exchanges,
4,000 bindings: a cluster's metadata store replicates every change), created twice in the
same run, each time in its own new, empty vhost that is deleted before the next method:

* the broker's bulk import, ``POST /api/definitions/VHOST`` on node 1;
* ``topoform apply --auto-approve`` (a subprocess) given every node as a URL list.

Prints both wall times and the ratio topoform / bulk import, checks that topoform's result
plans as empty against every node in turn (``plan --detailed-exitcode``) and that both vhosts
hold every object. No target: the ratio is what a cluster costs compared with the bulk import
there (compare it with bench_apply.py's single-node ratio). Start the cluster with
``scripts/cluster.sh start``; its ports come from scripts/cluster.tsv.

    .venv/bin/python benchmarks/bench_cluster.py [--queues 2000 --exchanges 200 --bindings 4000] [--keep]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_apply import Admin, bench_import, build_topology, to_yaml  # noqa: E402

from topoform.broker.settings import BrokerSettings  # noqa: E402

CRED = os.environ.get("TOPOFORM_TEST_CREDENTIALS", "guest:guest")


def cluster_nodes() -> list[dict]:
    rows = []
    for line in (ROOT / "scripts" / "cluster.tsv").read_text().splitlines():
        cols = line.split()
        if cols and not cols[0].startswith("#"):
            rows.append({"name": cols[0], "amqp": int(cols[2]), "http": int(cols[3]), "node": cols[7]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queues", type=int, default=2_000)
    ap.add_argument("--exchanges", type=int, default=200)
    ap.add_argument("--bindings", type=int, default=4_000)
    ap.add_argument("--keep", action="store_true", help="keep the vhosts (default: delete them)")
    args = ap.parse_args()

    nodes = cluster_nodes()
    urls = [f"amqp://{CRED}@localhost:{n['amqp']}/" for n in nodes]
    mgmts = [f"http://{CRED}@localhost:{n['http']}" for n in nodes]
    settings = BrokerSettings(url=urls[0], management_url=mgmts[0])
    admin = Admin(settings)
    try:
        running = [n["name"] for n in admin.req("GET", "/api/nodes").json() if n.get("running")]
    except SystemExit as exc:
        print(f"bench_cluster: the cluster does not answer ({exc}); run scripts/cluster.sh start", file=sys.stderr)
        return 2
    topo = build_topology(args.queues, args.exchanges, args.bindings)
    expected = (len(topo["queues"]), len(topo["exchanges"]), len(topo["bindings"]))
    tag = uuid.uuid4().hex[:6]
    vh = {name: f"tf-bench-cluster-{name}-{tag}" for name in ("import", "topoform")}
    print(f"cluster: {len(running)} running nodes ({', '.join(sorted(running))}); topology: {expected[0]} queues, "
          f"{expected[1]} exchanges, {expected[2]} bindings", flush=True)
    env = dict(os.environ, TOPOFORM_URL=",".join(urls), TOPOFORM_MANAGEMENT_URL=",".join(mgmts), CI="1")
    results: dict[str, float] = {}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        files = os.path.join(tmp, "topoform.yaml")
        Path(files).write_text(to_yaml(topo, vh["topoform"]))
        for name in ("import", "topoform"):
            try:
                if name == "import":
                    admin.create_vhost(vh[name])
                    results[name] = bench_import(admin, topo, vh[name])
                else:
                    t0 = time.perf_counter()
                    proc = subprocess.run([sys.executable, "-m", "topoform", "apply", "--auto-approve", "-f", files],
                                          env=env, capture_output=True, text=True, cwd=str(ROOT))
                    results[name] = time.perf_counter() - t0
                    last = (proc.stdout.strip().splitlines() or [""])[-1]
                    print(f"  topoform apply: exit {proc.returncode} ({last})", flush=True)
                    if proc.returncode != 0:
                        print(proc.stderr[-2000:], file=sys.stderr)
                        ok = False
                    for n, m in zip(nodes, mgmts):
                        one = dict(env, TOPOFORM_URL=urls[nodes.index(n)], TOPOFORM_MANAGEMENT_URL=m)
                        p = subprocess.run([sys.executable, "-m", "topoform", "plan", "--detailed-exitcode", "-f",
                                            files], env=one, capture_output=True, text=True, cwd=str(ROOT))
                        print(f"  re-plan against {n['node']}: exit {p.returncode}", flush=True)
                        ok = ok and p.returncode == 0
                held = admin.counts(vh[name])
                print(f"  {name:9s} vhost holds {held[0]} queues, {held[1]} exchanges, {held[2]} bindings", flush=True)
                ok = ok and held == expected
            finally:
                if not args.keep:
                    admin.delete_vhost(vh[name])
    print()
    print(f"{'method':45s} {'wall s':>8s}")
    print(f"{'bulk import (POST /api/definitions/V), node 1':45s} {results['import']:8.2f}")
    print(f"{'topoform apply --auto-approve, 3 URLs':45s} {results['topoform']:8.2f}")
    print(f"\ntopoform / bulk import on the cluster = {results['topoform'] / results['import']:.2f}x")
    if not ok:
        print("bench_cluster: a check failed (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
