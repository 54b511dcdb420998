"""apply --prune and destroy of exchanges bound to each other: no 541 from the broker, on every version.

Two exchanges bound to each other and deleted at the same moment on two channels crash
one of the channels on 3.10.8 and 4.0.5 (``function_clause`` in ``rabbit_exchange``: the
other delete removed the binding's source first), which the broker answers with 541
INTERNAL_ERROR and the loss of the connection (rabbitmq-server#11951). Before the fix, 5
of 10 prunes of 400 exchanges with 1,600 such bindings failed on 3.10.8, 3 of 6 raw pipelined
deletes of them on 4.0.5 (none of 6 on 4.3.6); this test failed in 1 of 3 rounds and then
in 5 of 5 on 3.10.8, and in 1 of 3 on 4.0.5.
apply now unbinds exchange-to-exchange bindings whose destination is deleted before the
exchanges go (topoform/apply/executor.py, ``removed_with``); a binding whose destination
stays still goes with its source's delete.
"""
from __future__ import annotations

import random

import pytest

EXCHANGES = 300
BINDINGS = 1200


def _graph(seed: int) -> tuple[list[dict], list[dict]]:
    rnd = random.Random(seed)
    exchanges = [{"name": f"x{i}", "type": "direct", "durable": True, "auto_delete": False, "internal": False,
                  "arguments": {}} for i in range(EXCHANGES)]
    pairs: set = set()
    while len(pairs) < BINDINGS:
        a, b = rnd.randrange(EXCHANGES), rnd.randrange(EXCHANGES)
        if a != b:
            pairs.add((a, b))
    bindings = [{"source": f"x{a}", "destination": f"x{b}", "destination_type": "exchange", "routing_key": "k",
                 "arguments": {}} for a, b in sorted(pairs)]
    return exchanges, bindings


def _counts(mgmt, vhost: str) -> tuple[int, int]:
    xs = [x for x in mgmt.get(f"/api/exchanges/{vhost}") if x["name"] and not x["name"].startswith("amq.")]
    bs = [b for b in mgmt.get(f"/api/bindings/{vhost}") if b["source"]]
    return len(xs), len(bs)


@pytest.mark.parametrize("round_", range(5))
def test_prune_of_exchanges_bound_to_each_other_finishes_in_one_run(round_, vhost, cli, broker_env, tmp_path, mgmt):
    exchanges, bindings = _graph(round_)
    mgmt.request("POST", f"/api/definitions/{vhost}", {"exchanges": exchanges, "bindings": bindings})
    assert _counts(mgmt, vhost) == (EXCHANGES, BINDINGS)
    keep = tmp_path / "keep.yaml"  # x0 stays: bindings to it ride with their source's delete
    keep.write_text(f"vhosts:\n  {vhost}:\n    exchanges:\n      x0: {{type: direct, durable: true}}\n")
    r = cli(["apply", "--prune", "--auto-approve", "-f", keep], environ=broker_env)
    assert r.code == 0, r
    assert "INTERNAL_ERROR" not in r.out + r.err
    assert _counts(mgmt, vhost) == (1, 0)
    r = cli(["plan", "--prune", "--detailed-exitcode", "-f", keep], environ=broker_env)
    assert r.code == 0, r


def test_destroy_of_exchanges_bound_to_each_other_finishes_in_one_run(vhost, cli, broker_env, tmp_path, mgmt):
    import yaml

    exchanges, bindings = _graph(7)
    files = tmp_path / "graph.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {
        "exchanges": {x["name"]: {"type": "direct", "durable": True} for x in exchanges},
        "bindings": [{k: b[k] for k in ("source", "destination", "destination_type", "routing_key")}
                     for b in bindings]}}}))
    r = cli(["apply", "--auto-approve", "-f", files], environ=broker_env)
    assert r.code == 0, r
    assert _counts(mgmt, vhost) == (EXCHANGES, BINDINGS)
    r = cli(["destroy", "--auto-approve", "-f", files], environ=broker_env)
    assert r.code == 0, r
    assert "INTERNAL_ERROR" not in r.out + r.err
    assert _counts(mgmt, vhost) == (0, 0)
