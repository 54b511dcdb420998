"""The router: exchange types, exchange-to-exchange chains and cycles, alternate
exchanges, internal exchanges, the default exchange, paths and errors.

Each case mirrors an observation in RABBITMQ-SEMANTICS.md sections 6 and 8.
"""
from __future__ import annotations

import pytest

from topoform.errors import TopoformError
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost
from topoform.routing import Hop, Route, Router, RouteResult, RoutingError, route

V = "/"


def X(name, type_="direct", arguments=None, **kw):
    return Exchange(V, name, type_, arguments=Args(arguments or {}), **kw)


def Q(name, **kw):
    return Queue(V, name, **kw)


def B(source, dest, key="", dest_type="queue", args=None):
    return Binding(V, source, dest, dest_type, key, Args(args or {}))


def E(source, dest, key="", args=None):
    return B(source, dest, key, "exchange", args)


def router(*resources, **kw) -> Router:
    return Router(Topology.build(resources), **kw)


TUTORIAL = [
    X("topic_logs", "topic"), Q("Q1", exclusive=True), Q("Q2", exclusive=True),
    B("topic_logs", "Q1", "*.orange.*"), B("topic_logs", "Q2", "*.*.rabbit"), B("topic_logs", "Q2", "lazy.#"),
]


@pytest.mark.parametrize("key,expected", [
    ("quick.orange.rabbit", ("Q1", "Q2")), ("lazy.orange.elephant", ("Q1", "Q2")),
    ("quick.orange.fox", ("Q1",)), ("lazy.brown.fox", ("Q2",)), ("lazy.pink.rabbit", ("Q2",)),
    ("quick.brown.fox", ()), ("orange", ()), ("quick.orange.male.rabbit", ()),
    ("lazy.orange.male.rabbit", ("Q2",)),
])
def test_tutorial_table_with_exclusive_queues(key, expected):
    res = router(*TUTORIAL).route(V, "topic_logs", key)
    assert res.queues == expected
    assert [r.queue for r in res.routes] == list(expected)
    assert res.unroutable is (expected == ())


def test_queue_matched_by_two_bindings_is_reported_once_with_one_path():
    res = router(*TUTORIAL).route(V, "topic_logs", "lazy.pink.rabbit")
    assert res.queues == ("Q2",)
    assert res.routes == (Route("Q2", (Hop("topic_logs", "Q2", "queue", "*.*.rabbit"),)),)


def test_result_api_shape_and_json_contract():
    res = router(*TUTORIAL).route(V, "topic_logs", "quick.orange.rabbit", headers={"h": 1})
    assert isinstance(res, RouteResult)
    assert issubclass(RoutingError, TopoformError)
    d = res.to_dict()
    assert list(d) == ["vhost", "exchange", "routing_key", "headers", "queues", "routes"]
    assert d["queues"] == ["Q1", "Q2"] and d["headers"] == {"h": 1}
    assert d["routes"][0] == {"queue": "Q1", "path": [
        {"source": "topic_logs", "destination": "Q1", "destination_type": "queue", "routing_key": "*.orange.*"}]}


# ---------------------------------------------------------------- direct, fanout, default

def test_direct_exact_bytes_and_several_queues_each_get_one():
    r = router(X("d"), Q("a"), Q("b"), Q("c"), B("d", "a", "Key"), B("d", "b", "Key"), B("d", "c", "*"),
               B("d", "c", "#"), B("d", "a", "", args={"x": 1}), B("d", "a", "", args={"x": 2}))
    assert r.route(V, "d", "Key").queues == ("a", "b")
    for other in ("key", "KEY", "Key ", " Key", "Ke", "Key.x"):
        assert r.route(V, "d", other).unroutable
    assert r.route(V, "d", "*").queues == ("c",)
    assert r.route(V, "d", "anything").unroutable
    assert r.route(V, "d", "").queues == ("a",)


def test_fanout_ignores_keys_and_delivers_once_per_queue():
    r = router(X("f", "fanout"), Q("a"), Q("b"), B("f", "a", "x"), B("f", "a", "y"), B("f", "b"))
    assert r.route(V, "f", "whatever").queues == ("a", "b")
    assert r.route(V, "f", "").queues == ("a", "b")


def test_default_exchange_routes_to_queue_named_by_key_exactly():
    r = router(Q("orders"), Q("Orders"), Q("ex", exclusive=True))
    res = r.route(V, "", "orders")
    assert res.queues == ("orders",)
    assert res.routes[0].path == (Hop("", "orders", "queue", "orders", "default"),)
    assert r.route(V, "", "Orders ").unroutable
    assert r.route(V, "", "missing").unroutable
    assert r.route(V, "", "ex").queues == ("ex",)


def test_queues_in_another_vhost_do_not_count():
    t = Topology.build([Queue("other", "orders"), Queue(V, "x")])
    assert Router(t).route(V, "", "orders").unroutable
    assert Router(t).route("other", "", "orders").queues == ("orders",)


# ---------------------------------------------------------------- headers through the router

def test_headers_exchange_ignores_routing_key_and_version_switch():
    bindings = [X("h", "headers"), Q("n"), Q("any"), Q("all"),
                B("h", "n", "k", args={"x-match": "all", "n": 1}),
                B("h", "any", "k", args={"x-match": "any"}),
                B("h", "all", "k", args={})]
    r = router(*bindings)
    assert r.route(V, "h", "other", {"n": 1.0}).queues == ("all", "n")
    assert r.route(V, "h", "", None).queues == ("all",)
    r13 = router(*bindings, version="3.13")
    assert r13.route(V, "h", "other", {"n": 1.0}).queues == ("all",)
    assert r13.route(V, "h", "other", {"n": 1}).queues == ("all", "n")


def test_headers_binding_with_invalid_x_match_is_an_error():
    r = router(X("h", "headers"), Q("q"), B("h", "q", args={"x-match": "ALL"}))
    with pytest.raises(RoutingError, match="x-match"):
        r.route(V, "h", "")


# ---------------------------------------------------------------- exchange-to-exchange

def test_chain_carries_routing_key_unchanged():
    r = router(X("x1"), X("x2", "topic"), Q("q"), E("x1", "x2", "order.created"), E("x1", "x2", "other"),
               B("x2", "q", "order.*"))
    res = r.route(V, "x1", "order.created")
    assert res.queues == ("q",)
    assert res.routes[0].path == (Hop("x1", "x2", "exchange", "order.created"), Hop("x2", "q", "queue", "order.*"))
    assert r.route(V, "x1", "other").unroutable


def test_cycle_and_self_binding_deliver_once():
    r = router(X("ca", "fanout"), X("cb", "fanout"), Q("q"), E("ca", "cb"), E("cb", "ca"), E("ca", "ca"),
               B("ca", "q"), B("cb", "q"))
    for start in ("ca", "cb"):
        res = r.route(V, start, "k")
        assert res.queues == ("q",)
        assert len(res.routes[0].path) == 1  # shortest path: the direct binding


def test_diamond_delivers_once_and_path_is_shortest_and_deterministic():
    r = router(X("d0", "fanout"), X("d1", "fanout"), X("d2", "fanout"), X("d3", "fanout"), Q("q"), Q("far"),
               E("d0", "d2"), E("d0", "d1"), B("d1", "q"), B("d2", "q"), E("d2", "d3"), B("d3", "far"))
    res = r.route(V, "d0", "")
    assert res.queues == ("far", "q")
    far, q = res.routes
    assert [h.destination for h in q.path] == ["d1", "q"]  # d1 sorts before d2 at the same depth
    assert [h.destination for h in far.path] == ["d2", "d3", "far"]


def test_binding_to_missing_exchange_or_queue_is_dropped():
    t = Topology.build([X("s", "fanout"), Q("q"), E("s", "nope"), B("s", "q"), B("s", "ghost")])
    assert Router(t).route(V, "s", "").queues == ("q",)


# ---------------------------------------------------------------- alternate exchanges

def ae(name, target, type_="direct"):
    return X(name, type_, arguments={"alternate-exchange": target})


def test_alternate_exchange_used_only_when_own_bindings_match_nothing():
    r = router(ae("main", "ae"), X("ae", "fanout"), Q("q_main"), Q("q_ae"), B("main", "q_main", "ok"),
               B("ae", "q_ae"))
    assert r.route(V, "main", "ok").queues == ("q_main",)
    res = r.route(V, "main", "nope")
    assert res.queues == ("q_ae",)
    assert res.routes[0].path == (Hop("main", "ae", "exchange", "nope", "alternate-exchange"),
                                  Hop("ae", "q_ae", "queue", ""))


def test_alternate_exchange_not_used_when_a_binding_matches_a_dead_end():
    r = router(ae("src", "src-ae"), X("dead-end", "fanout"), X("src-ae", "fanout"), Q("q"),
               E("src", "dead-end", "k"), B("src-ae", "q"))
    assert r.route(V, "src", "k").unroutable
    assert r.route(V, "src", "other").queues == ("q",)


def test_alternate_exchange_chains_loops_and_missing():
    r = router(ae("c1", "c2"), ae("c2", "c3"), X("c3", "fanout"), Q("q"), B("c3", "q"),
               ae("l1", "l2"), ae("l2", "l1"), ae("m", "missing"), ae("e", "empty"), X("empty"))
    res = r.route(V, "c1", "k")
    assert res.queues == ("q",)
    assert [h.via for h in res.routes[0].path] == ["alternate-exchange", "alternate-exchange", "binding"]
    assert r.route(V, "l1", "k").unroutable
    assert r.route(V, "m", "k").unroutable
    assert r.route(V, "e", "k").unroutable


def test_alternate_exchange_of_intermediate_exchange_is_used():
    r = router(X("top", "fanout"), ae("mid", "mid-ae"), X("mid-ae", "fanout"), Q("q"), E("top", "mid"),
               B("mid-ae", "q"))
    assert r.route(V, "top", "k").queues == ("q",)


def test_alternate_exchange_argument_wins_over_policy_and_policy_alone_works():
    common = [X("pae-a", "fanout"), X("pae-b", "fanout"), Q("qa"), Q("qb"), B("pae-a", "qa"), B("pae-b", "qb"),
              Policy(V, "p", "^src", apply_to="exchanges", definition=Args({"alternate-exchange": "pae-b"})),
              Policy(V, "low", "^src", apply_to="all", priority=-1, definition=Args({"alternate-exchange": "pae-a"})),
              Policy(V, "queues-only", "^src", apply_to="queues", priority=9,
                     definition=Args({"alternate-exchange": "pae-a"}))]
    r = router(*common, ae("src-arg", "pae-a"), X("src-pol"))
    assert r.route(V, "src-arg", "k").queues == ("qa",)
    assert r.route(V, "src-pol", "k").queues == ("qb",)


# ---------------------------------------------------------------- internal and built-in exchanges

def test_internal_exchange_refuses_publish_but_routes_through_e2e_and_as_ae():
    r = router(X("int", "fanout", internal=True), X("front", "fanout"), ae("main", "int"), Q("q"),
               E("front", "int"), B("int", "q"))
    with pytest.raises(RoutingError, match="internal exchange 'int'.*403"):
        r.route(V, "int", "k")
    assert r.route(V, "front", "k").queues == ("q",)
    assert r.route(V, "main", "k").queues == ("q",)


def test_builtin_exchanges_exist_in_every_known_vhost():
    r = router(Q("q"), B("amq.topic", "q", "a.#"), B("amq.match", "q", args={"x-match": "any", "k": "v"}))
    assert r.route(V, "amq.topic", "a.b").queues == ("q",)
    assert r.route(V, "amq.match", "", {"k": "v"}).queues == ("q",)
    assert r.route(V, "amq.direct", "q").unroutable
    with pytest.raises(RoutingError, match="403"):
        r.route(V, "amq.rabbitmq.trace", "x")


# ---------------------------------------------------------------- CC / BCC and errors

def test_cc_and_bcc_headers_add_routing_keys_and_queue_gets_one_copy():
    r = router(X("d"), Q("a"), Q("b"), B("d", "a", "k1"), B("d", "a", "k2"), B("d", "b", "k3"))
    assert r.route(V, "d", "k1", {"CC": ["k2"]}).queues == ("a",)
    assert r.route(V, "d", "zz", {"CC": ("k1",), "BCC": ["k3"]}).queues == ("a", "b")
    assert r.route(V, "", "zz", {"CC": ["a", "b"]}).queues == ("a", "b")
    with pytest.raises(RoutingError, match="CC"):
        r.route(V, "d", "k1", {"CC": "k2"})


def test_unknown_vhost_and_exchange_are_errors():
    r = router(*TUTORIAL)
    with pytest.raises(RoutingError, match="vhost 'nope'"):
        r.route("nope", "topic_logs", "a")
    with pytest.raises(RoutingError, match="no exchange 'missing'.*404"):
        r.route(V, "missing", "a")


def test_unsupported_exchange_type_is_an_error_when_reached():
    r = router(X("hash", "x-consistent-hash"), X("front", "fanout"), E("front", "hash"))
    with pytest.raises(RoutingError, match="x-consistent-hash"):
        r.route(V, "front", "k")


def test_vhost_known_from_vhost_resource_only():
    t = Topology.build([Vhost("empty")])
    assert Router(t).route("empty", "", "q").unroutable
    assert Router(t).route("empty", "amq.fanout", "q").unroutable


def test_module_level_route_helper_and_invalid_version():
    t = Topology.build(TUTORIAL)
    assert route(t, V, "topic_logs", "lazy.x").queues == ("Q2",)
    with pytest.raises(RoutingError, match="version"):
        Router(t, version="three")


def test_bcc_is_removed_before_headers_matching_but_still_routes():
    r = router(X("h", "headers"), X("d"), Q("has-bcc"), Q("k"),
               B("h", "has-bcc", args={"x-match": "all", "BCC": None}), B("d", "k", "k"))
    assert r.route(V, "h", "", {"BCC": ["x"]}).unroutable
    res = r.route(V, "d", "zz", {"BCC": ["k"]})
    assert res.queues == ("k",) and res.headers == {"BCC": ["k"]}


def test_results_compare_by_content_and_routes_are_stable():
    t = Topology.build(TUTORIAL)
    a = Router(t).route(V, "topic_logs", "quick.orange.rabbit")
    b = Router(t).route(V, "topic_logs", "quick.orange.rabbit")
    assert a == b and a.routes is a.routes
    assert a != Router(t).route(V, "topic_logs", "lazy.x")


def test_path_prefers_smallest_key_among_bindings_of_one_exchange_to_one_destination():
    bindings = [X("t", "topic"), X("mid", "fanout"), Q("q"), B("t", "q", "a.#"), B("t", "q", "#"), B("t", "q", "a.b"),
                E("t", "mid", "a.*"), E("t", "mid", "#.b"), B("mid", "q")]
    res = router(*bindings).route(V, "t", "a.b")
    assert res.routes[0].path == (Hop("t", "q", "queue", "#"),)
    first = Router(Topology.build(reversed(bindings))).route(V, "t", "a.b")
    assert first.routes == res.routes


def test_routing_package_imports_no_yaml_broker_or_cli():
    import subprocess
    import sys

    code = ("import sys, topoform.routing; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('yaml', 'pika', 'requests', 'jsonschema', 'deepdiff') or m.startswith(('topoform.cli', 'topoform.broker', "
            "'topoform.load'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
