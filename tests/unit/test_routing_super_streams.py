"""Super streams in the routing simulator, ``test-route`` and ``graph --route``; ``topoform test``
with the chosen environment's values (``--env``, ``TOPOFORM_ENV``, ``--var``).

The broker-backed proof that the predictions hold is
tests/integration/test_super_stream_routing_broker.py.
"""
from __future__ import annotations

import yaml
from hypothesis import given, settings, strategies as st

from helpers import run_cli
from topoform.config.model import make
from topoform.load import load_text
from topoform.model import Args, Exchange, Topology, Vhost
from topoform.routing import Router, with_super_streams

FILES = """
vhosts:
  shop:
    queues:
      plain: {durable: true}
    super_streams:
      invoices: {partitions: 3, arguments: {x-max-age: 7D}}
      regional: {binding_keys: [eu, us, apac]}
"""


def _loaded(text: str = FILES):
    loaded = load_text(text)
    assert loaded.ok, loaded.errors
    return loaded


def test_partitions_are_streams_bound_with_their_order():
    loaded = _loaded()
    t = with_super_streams(loaded.topology, loaded.config)
    x = t.exchange("shop", "invoices")
    assert (x.type, x.durable, dict(x.arguments)) == ("direct", True, {"x-super-stream": True})
    bindings = sorted((b.routing_key, b.destination, dict(b.arguments)) for b in t.bindings if b.source == "invoices")
    assert bindings == [(str(i), f"invoices-{i}", {"x-stream-partition-order": i}) for i in range(3)]
    q = t.queue("shop", "invoices-2")
    assert dict(q.arguments) == {"x-max-age": "7D", "x-queue-type": "stream"} and q.durable
    regional = sorted((b.arguments["x-stream-partition-order"], b.routing_key, b.destination)
                      for b in t.bindings if b.source == "regional")
    assert regional == [(0, "eu", "regional-eu"), (1, "us", "regional-us"), (2, "apac", "regional-apac")]
    assert t.queue("shop", "plain") is not None and loaded.topology.exchange("shop", "invoices") is None


def test_router_sends_each_key_to_its_partition_and_others_nowhere():
    loaded = _loaded()
    router = Router(with_super_streams(loaded.topology, loaded.config))
    assert router.route("shop", "invoices", "1").queues == ("invoices-1",)
    assert router.route("shop", "regional", "apac").queues == ("regional-apac",)
    for key in ("3", "", "01", "EU", "eu.x", " eu"):
        assert router.route("shop", "invoices", key).unroutable and router.route("shop", "regional", key).unroutable
    hop, = router.route("shop", "regional", "us").routes[0].path
    assert (hop.source, hop.destination, hop.routing_key) == ("regional", "regional-us", "us")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=1, max_value=12), key=st.one_of(st.integers(min_value=-2, max_value=14).map(str),
                                                               st.text(max_size=3)))
def test_partition_count_routing_is_direct(n, key):
    obj = make("super_stream", "v", "s", {"partitions": n, "arguments": Args({})})
    t = with_super_streams(Topology(vhosts={("vhost", "v"): Vhost("v")}), [obj])
    expected = (f"s-{key}",) if key in {str(i) for i in range(n)} else ()
    assert Router(t).route("v", "s", key).queues == expected


def test_files_own_exchange_wins_and_no_super_streams_is_the_same_topology():
    loaded = _loaded()
    assert with_super_streams(loaded.topology, None) is loaded.topology
    own = Topology.build([Vhost("shop"), Exchange("shop", "invoices", "fanout")])
    merged = with_super_streams(own, loaded.config)
    assert merged.exchange("shop", "invoices").type == "fanout"


def _write(tmp_path, text: str = FILES):
    (tmp_path / "topoform.yaml").write_text(text, encoding="utf-8")


def test_test_route_cli_predicts_the_partition(tmp_path):
    _write(tmp_path)
    r = run_cli(["test-route", "--vhost", "shop", "--json", "invoices", "2"], cwd=tmp_path)
    assert r.code == 0, r
    assert r.json["queues"] == ["invoices-2"]
    assert r.json["routes"][0]["path"] == [{"source": "invoices", "destination": "invoices-2",
                                            "destination_type": "queue", "routing_key": "2"}]
    r = run_cli(["test-route", "--vhost", "shop", "regional", "eu", "--expect", "regional-eu"], cwd=tmp_path)
    assert r.code == 0 and r.out.startswith("regional-eu"), r
    r = run_cli(["test-route", "--vhost", "shop", "regional", "mars", "--expect", "regional-eu"], cwd=tmp_path)
    assert r.code == 3 and "unroutable" in r.out, r


def test_graph_draws_and_highlights_a_super_stream(tmp_path):
    _write(tmp_path)
    r = run_cli(["graph", "--format", "dot", "--route", "regional", "us"], cwd=tmp_path)
    assert r.code == 0, r
    assert "route: regional [us] -> regional-us" in r.err
    assert "direct, super stream" in r.out and "regional-apac" in r.out


# ---------------------------------------------------------------- test --env

ENV_FILES = """
variables:
  region: {default: eu}
vhosts:
  shop:
    exchanges:
      events: {type: direct, durable: true}
    queues:
      regional: {durable: true, bindings: [{exchange: events, routing_key: "orders.${region}"}]}
tests:
  - {name: eu order, vhost: shop, exchange: events, routing_key: orders.eu, expect: [regional]}
"""


def test_test_runs_with_the_chosen_environment(tmp_path):
    _write(tmp_path, ENV_FILES)
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "us.yaml").write_text(yaml.safe_dump({"variables": {"region": "us"}}))
    (tmp_path / "environments" / "eu.yaml").write_text(yaml.safe_dump({"variables": {"region": "eu"}}))
    assert run_cli(["test"], cwd=tmp_path).code == 0
    assert run_cli(["test", "--env", "eu"], cwd=tmp_path).code == 0
    r = run_cli(["test", "--env", "us"], cwd=tmp_path)
    assert r.code == 3 and "FAIL  eu order" in r.out and "[] (unroutable)" in r.out, r
    r = run_cli(["test", "--json"], cwd=tmp_path, environ={"TOPOFORM_ENV": "us"})
    assert r.code == 3 and r.json["summary"] == {"passed": 0, "failed": 1}, r
    # --var beats the environment
    assert run_cli(["test", "--env", "us", "--var", "region=eu"], cwd=tmp_path).code == 0
    r = run_cli(["test", "--env", "nowhere"], cwd=tmp_path)
    assert r.code == 1 and "nowhere" in r.err and len(r.err.strip().splitlines()) <= 2 and "Traceback" not in r.err


def test_tests_entries_may_name_a_super_stream_and_its_partitions(tmp_path):
    tests = """tests:
  - {vhost: shop, exchange: invoices, routing_key: "1", expect: [invoices-1]}
  - {vhost: shop, exchange: regional, routing_key: apac, expect: [regional-apac]}
  - {vhost: shop, exchange: regional, routing_key: mars, expect: []}
"""
    _write(tmp_path, FILES + tests)
    r = run_cli(["test"], cwd=tmp_path)
    assert r.code == 0 and "3 passed, 0 failed" in r.out, r
    _write(tmp_path, FILES + tests.replace("expect: [regional-apac]", "expect: [regional-eu]"))
    r = run_cli(["test"], cwd=tmp_path)
    assert r.code == 3 and "actual:   [regional-apac]" in r.out, r
    _write(tmp_path, FILES + tests.replace("expect: [invoices-1]", "expect: [invoices-9]"))
    r = run_cli(["validate"], cwd=tmp_path)
    assert r.code == 1 and "expects queue 'invoices-9', which is not declared" in r.err, r
