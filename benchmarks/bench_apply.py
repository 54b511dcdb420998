"""Benchmark: ``topoform apply`` against the broker's bulk import and a naive pika loop.

Builds one fresh topology (default 10,000 queues, 1,000 exchanges, 20,000 bindings) and
creates it three times, each time in its own new, empty vhost, timing:

* ``topoform apply --auto-approve`` (a subprocess: load, lock, read, plan, execute);
* (a) the broker's bulk import of the same topology, ``POST /api/definitions/VHOST``;
* (b) a naive loop of synchronous pika declares and binds on one channel.

Prints the three wall times and the ratios, checks that topoform's result plans as
empty, and removes the vhosts. Targets: topoform <= 0.6x the bulk import and >= 3x
faster than the naive loop (exit 1 when missed, so CI can run it).

    .venv/bin/python benchmarks/bench_apply.py [--queues 10000 --exchanges 1000 --bindings 20000]
        [--url amqp://guest:guest@localhost:5672/] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pika
import requests
import yaml
from pika.compat import long

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from topoform.broker.settings import BrokerSettings, quote_segment, redact  # noqa: E402


def build_topology(n_queues: int, n_exchanges: int, n_bindings: int, seed: int = 7) -> dict:
    """Plain rows: exchanges, queues (half with a TTL), bindings (queue and e2e, some with args)."""
    rnd = random.Random(seed)
    types = ["topic", "direct", "fanout", "headers"]
    exchanges = [{"name": f"bx.{i:05d}", "type": types[i % 4], "durable": True, "auto_delete": False,
                  "internal": False, "arguments": {}} for i in range(n_exchanges)]
    queues = [{"name": f"bq.{i:05d}", "durable": True, "auto_delete": False,
               "arguments": ({"x-message-ttl": 60000 + i} if i % 2 else {})} for i in range(n_queues)]
    bindings = []
    seen = set()
    while len(bindings) < n_bindings:
        i = len(bindings)
        x = exchanges[rnd.randrange(n_exchanges)]
        if i % 20 == 19 and n_exchanges > 1:  # some exchange-to-exchange bindings
            dest = exchanges[rnd.randrange(n_exchanges)]["name"]
            dtype = "exchange"
            if dest == x["name"]:
                continue
        else:
            dest = queues[rnd.randrange(n_queues)]["name"]
            dtype = "queue"
        key = f"k.{rnd.randrange(1000)}.#" if x["type"] == "topic" else f"k{rnd.randrange(1000)}"
        args = {"x-match": "all", "n": i % 7} if x["type"] == "headers" else {}
        ident = (x["name"], dtype, dest, key, json.dumps(args, sort_keys=True))
        if ident in seen:
            continue
        seen.add(ident)
        bindings.append({"source": x["name"], "destination": dest, "destination_type": dtype,
                         "routing_key": key, "arguments": args})
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def to_yaml(topo: dict, vhost: str) -> str:
    doc = {"version": 1, "vhosts": {vhost: {
        "exchanges": {x["name"]: {"type": x["type"], "durable": True} for x in topo["exchanges"]},
        "queues": {q["name"]: ({"durable": True, "arguments": q["arguments"]} if q["arguments"] else {"durable": True})
                   for q in topo["queues"]},
        "bindings": [{k: v for k, v in b.items() if v != {}} for b in topo["bindings"]],
    }}}
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


class Admin:
    def __init__(self, settings: BrokerSettings):
        self.settings = settings
        self.base = settings.http_base_clean
        self.s = requests.Session()
        self.s.auth = settings.http_credentials

    def req(self, method, path, body=None, timeout=600):
        r = self.s.request(method, self.base + path, json=body, timeout=timeout)
        if r.status_code >= 400 and not (method == "DELETE" and r.status_code == 404):
            raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:200]}")
        return r

    def create_vhost(self, name: str) -> None:
        q = quote_segment(name)
        self.req("PUT", f"/api/vhosts/{q}", {"description": "topoform benchmark (temporary)"})
        self.req("PUT", f"/api/permissions/{q}/{quote_segment(self.settings.username)}",
                 {"configure": ".*", "write": ".*", "read": ".*"})
        for _ in range(200):
            st = self.req("GET", f"/api/vhosts/{q}").json().get("cluster_state", {})
            if st and all(v == "running" for v in st.values()):
                return
            time.sleep(0.05)

    def delete_vhost(self, name: str, timeout: float = 900) -> None:
        """Delete and wait until gone: the API answers after 60 s at most, the broker may need longer."""
        path = f"/api/vhosts/{quote_segment(name)}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.s.request("DELETE", self.base + path, timeout=120)
                if self.s.get(self.base + path, timeout=30).status_code == 404:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        print(f"warning: vhost {name} could not be deleted; remove it by hand", file=sys.stderr)

    def counts(self, name: str) -> tuple[int, int, int]:
        d = self.req("GET", f"/api/definitions/{quote_segment(name)}").json()
        return len(d["queues"]), len(d["exchanges"]), len(d["bindings"])


def bench_import(admin: Admin, topo: dict, vhost: str) -> float:
    body = {"queues": topo["queues"], "exchanges": topo["exchanges"], "bindings": topo["bindings"]}
    t0 = time.perf_counter()
    admin.req("POST", f"/api/definitions/{quote_segment(vhost)}", body)
    return time.perf_counter() - t0


def bench_naive(settings: BrokerSettings, topo: dict, vhost: str) -> float:
    params = pika.ConnectionParameters(host=settings.amqp_host, port=settings.amqp_port, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(settings.username, settings.password))
    t0 = time.perf_counter()
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    for x in topo["exchanges"]:
        ch.exchange_declare(x["name"], x["type"], durable=True)
    for q in topo["queues"]:
        ch.queue_declare(q["name"], durable=True, arguments={k: long(v) for k, v in q["arguments"].items()})
    for b in topo["bindings"]:
        args = {k: (long(v) if isinstance(v, int) else v) for k, v in b["arguments"].items()}
        if b["destination_type"] == "queue":
            ch.queue_bind(b["destination"], b["source"], b["routing_key"], arguments=args)
        else:
            ch.exchange_bind(b["destination"], b["source"], b["routing_key"], arguments=args)
    conn.close()
    return time.perf_counter() - t0


def run_topoform(args, env: dict, files: str, *extra: str) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "topoform", *extra, "-f", files]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT))
    return time.perf_counter() - t0, proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queues", type=int, default=10_000)
    ap.add_argument("--exchanges", type=int, default=1_000)
    ap.add_argument("--bindings", type=int, default=20_000)
    ap.add_argument("--url", default=os.environ.get("TOPOFORM_URL", "amqp://guest:guest@localhost:5672/"))
    ap.add_argument("--management-url", default=os.environ.get("TOPOFORM_MANAGEMENT_URL"))
    ap.add_argument("--keep", action="store_true", help="keep the vhosts (default: delete them)")
    ap.add_argument("--skip-naive", action="store_true", help="skip the naive loop (slow)")
    args = ap.parse_args()

    settings = BrokerSettings(url=args.url, management_url=args.management_url)
    admin = Admin(settings)
    topo = build_topology(args.queues, args.exchanges, args.bindings)
    tag = uuid.uuid4().hex[:6]
    vh = {name: f"tf-bench-{name}-{tag}" for name in ("topoform", "import", "naive")}
    print(f"topology: {len(topo['queues'])} queues, {len(topo['exchanges'])} exchanges, "
          f"{len(topo['bindings'])} bindings; broker {redact(settings.describe())}", flush=True)

    env = dict(os.environ, TOPOFORM_URL=args.url, CI="1")
    if args.management_url:
        env["TOPOFORM_MANAGEMENT_URL"] = args.management_url
    results: dict[str, float] = {}
    ok = True
    expected = (len(topo["queues"]), len(topo["exchanges"]), len(topo["bindings"]))
    with tempfile.TemporaryDirectory() as tmp:
        files = os.path.join(tmp, "topoform.yaml")
        Path(files).write_text(to_yaml(topo, vh["topoform"]))
        # One method at a time, each in a fresh vhost that is deleted before the next
        # method runs, so that every method sees the same broker.
        for name in ("import", "topoform", "naive"):
            if name == "naive" and args.skip_naive:
                continue
            admin.create_vhost(vh[name])
            try:
                if name == "import":
                    results["bulk import (POST /api/definitions/V)"] = seconds = bench_import(admin, topo, vh[name])
                    print(f"  bulk import:    {seconds:.2f}s", flush=True)
                elif name == "naive":
                    results["naive pika loop (one channel)"] = seconds = bench_naive(settings, topo, vh[name])
                    print(f"  naive loop:     {seconds:.2f}s", flush=True)
                else:
                    seconds, proc = run_topoform(args, env, files, "apply", "--auto-approve")
                    if proc.returncode != 0:
                        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
                        raise SystemExit(f"topoform apply failed with exit code {proc.returncode}")
                    results["topoform apply --auto-approve"] = seconds
                    print(f"  topoform apply: {seconds:.2f}s  ({proc.stdout.strip().splitlines()[-1]})", flush=True)
                    replan_s, replan = run_topoform(args, env, files, "plan", "--detailed-exitcode")
                    print(f"  re-plan after apply: exit {replan.returncode} in {replan_s:.2f}s "
                          f"({'no changes' if replan.returncode == 0 else 'CHANGES LEFT'})", flush=True)
                    ok &= replan.returncode == 0
                got = admin.counts(vh[name])
                print(f"  {name:9s} vhost holds {got[0]} queues, {got[1]} exchanges, {got[2]} bindings", flush=True)
                ok &= got == expected
            finally:
                if not args.keep:
                    admin.delete_vhost(vh[name])

    tf = results["topoform apply --auto-approve"]
    imp = results["bulk import (POST /api/definitions/V)"]
    print()
    print(f"{'method':42s} {'wall s':>8s}")
    for name, seconds in results.items():
        print(f"{name:42s} {seconds:8.2f}")
    ratio = tf / imp
    print(f"\ntopoform / bulk import = {ratio:.2f}x (target <= 0.60x): {'OK' if ratio <= 0.6 else 'MISSED'}")
    ok &= ratio <= 0.6
    if "naive pika loop (one channel)" in results:
        speedup = results["naive pika loop (one channel)"] / tf
        print(f"naive loop / topoform  = {speedup:.2f}x (target >= 3x):    {'OK' if speedup >= 3 else 'MISSED'}")
        ok &= speedup >= 3
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
