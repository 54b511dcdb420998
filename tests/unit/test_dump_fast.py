"""topoform.dump at libyaml speed writes exactly the bytes of the pure-Python emitter (issue 17)."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import topoform.dump as dump
from strategies_import_export import topologies
from topoform.dump import dump_topology
from topoform.model import Args, Binding, Exchange, Policy, Queue, RouteTest, Topology, Vhost

pytestmark = pytest.mark.skipif(dump._CDumper is None, reason="PyYAML built without libyaml: no C path to compare")


def _python_only(topology: Topology, **kw) -> str:
    """The reference: every decision and the whole document through PyYAML's Python emitter."""
    saved = dump._CDumper
    dump._CDumper = None
    try:
        return dump_topology(topology, **kw)
    finally:
        dump._CDumper = saved


_ASCII_TRICKY = ["/", "404", "on", "yes", "null", "~", "- x", "a: b", "#", "*", "'q'", '"q"', "x #y", "1.5",
                 "0o17", "0x1F", "1e5", ".inf", "true", "@at", "%p", "&a", "!t", "[l]", "{m}", " sp", "tab\there",
                 "back\\slash", "a,b", "?q", "-", "key:", "${VAR}", "line\nbreak", ""]


def _ascii_topology(seed: int, n: int = 60) -> Topology:
    """ASCII names of every awkward kind and of lengths around the 100-column flow limit."""
    rnd = random.Random(seed)

    def name(i: int) -> str:
        pick = rnd.random()
        if pick < 0.25:
            return rnd.choice(_ASCII_TRICKY[:-1]) + f"{i}"
        if pick < 0.5:  # lengths that put flow entries on both sides of 100 columns (and keys near 128)
            return f"n{i}." + "x" * rnd.randrange(20, 140)
        return f"obj.{i:04d}"

    def value():
        return rnd.choice([rnd.randrange(-10**12, 10**12), rnd.random() * 1e6, True, False, None,
                           rnd.choice(_ASCII_TRICKY), [1, "two", {"t": 3}], {"nested": {"k": "v" * rnd.randrange(1, 90)}}])

    v = "vh" if seed % 2 else "/"
    exchanges = [Exchange(v, name(i), rnd.choice(["direct", "topic", "fanout", "headers"]), True,
                          arguments=Args({"x-custom-a": value()} if i % 3 == 0 else {})) for i in range(n // 4)]
    queues = [Queue(v, name(1000 + i), True, arguments=Args(
        {"x-message-ttl": 60000 + i, **({"x-custom-b": value(), "x-custom-c": value()} if i % 2 else {})}))
        for i in range(n)]
    xs = {x.name: x for x in exchanges}
    qs = {q.name: q for q in queues}
    bindings = set()
    for i in range(2 * n):
        x = rnd.choice(exchanges)
        if i % 5 == 4:
            dest, dtype = rnd.choice(exchanges).name, "exchange"
        else:
            dest, dtype = rnd.choice(queues).name, "queue"
        args = Args({"x-match": "all", "n": i % 7, "s": rnd.choice(_ASCII_TRICKY)}) if x.type == "headers" else Args()
        bindings.add(Binding(v, x.name, dest, dtype, rnd.choice(["", f"rk.{i}", "#", "a.*." + "y" * rnd.randrange(60)]),
                             args))
    policies = [Policy(v, name(5000 + i), f"^p{i}\\.", "queues", i, Args({"message-ttl": 1000 + i}))
                for i in range(3)]
    tests = [RouteTest(v, exchanges[0].name, "rk.1", expect=(queues[0].name,))]
    return Topology.build([Vhost(v, description="d: x", tags=("a", "b")), *xs.values(), *qs.values(), *bindings,
                           *policies], tests=tests)


@pytest.mark.parametrize("seed", range(8))
def test_c_path_writes_the_same_bytes_as_the_python_emitter(seed):
    t = _ascii_topology(seed)
    assert dump_topology(t, header=["imported"]) == _python_only(t, header=["imported"])


def test_a_plain_large_topology_takes_the_c_path(monkeypatch):
    queues = [Queue("/", f"q.{i:05d}", True, arguments=Args({"x-message-ttl": i})) for i in range(2000)]
    exchanges = [Exchange("/", f"x.{i:03d}", "headers" if i % 2 else "topic", True) for i in range(100)]
    bindings = [Binding("/", f"x.{i % 100:03d}", f"q.{i % 2000:05d}", "queue", f"k.{i}",
                        Args({"x-match": "any", "n": i}) if i % 2 else Args()) for i in range(4000)]
    t = Topology.build([Vhost("/"), *queues, *exchanges, *bindings])
    reference = _python_only(t)

    def python_emitter_called(data):
        raise AssertionError("the pure-Python emitter was used")

    monkeypatch.setattr(dump, "_yaml", python_emitter_called)
    assert dump_topology(t) == reference


def test_long_lines_and_non_ascii_fall_back_to_the_python_emitter():
    long_key = "k" * 130  # libyaml writes keys of 128+ characters as "? key"
    t = Topology.build([Vhost("/"), Queue("/", long_key, True), Queue("/", "emoji-\U0001F600", True),
                        Queue("/", "é", True, arguments=Args({"x-custom-z": "日本"}))])
    text = dump_topology(t)
    assert text == _python_only(t)
    assert f"      {long_key}:\n" in text and "emoji-\U0001F600:" in text  # written as the Python emitter does


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies(), st.booleans())
def test_random_topologies_match_the_python_emitter(t, header):
    kw = {"header": ["a header"]} if header else {}
    assert dump_topology(t, **kw) == _python_only(t, **kw)
