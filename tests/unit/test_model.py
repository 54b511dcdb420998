"""Model: typed argument equality, identity keys, topology lookups."""
from topoform.model import Args, Binding, Exchange, Queue, Topology


def test_args_compare_types_like_the_broker():
    assert Args({"x-message-ttl": 60000}) != Args({"x-message-ttl": "60000"})
    assert Args({"a": 1}) != Args({"a": True})
    assert Args({"a": 1}) != Args({"a": 1.0})
    assert Args({"a": 1, "b": "x"}) == Args({"b": "x", "a": 1})
    assert hash(Args({"a": 1, "b": "x"})) == hash(Args({"b": "x", "a": 1}))


def test_args_nested_values_are_frozen_and_thaw_back():
    args = Args({"t": {"k": [1, "a"]}})
    assert args.to_dict() == {"t": {"k": [1, "a"]}}
    hash(args)


def test_queue_defaults_are_pikas_and_absent_queue_type_is_classic():
    q = Queue("/", "q")
    assert (q.durable, q.exclusive, q.auto_delete) == (False, False, False)
    assert q.queue_type == "classic"
    assert Queue("/", "q", arguments=Args({"x-queue-type": "quorum"})).queue_type == "quorum"


def test_binding_identity_includes_typed_arguments():
    a = Binding("/", "x", "q", routing_key="k", arguments=Args({"n": 1}))
    b = Binding("/", "x", "q", routing_key="k", arguments=Args({"n": "1"}))
    assert a.key != b.key and a != b
    assert a == Binding("/", "x", "q", routing_key="k", arguments=Args({"n": 1}))
    assert a.name == 'x -> q [k] {n=1}'
    assert Binding("/", "x", "y", "exchange", "k").name == "x -> exchange y [k]"


def test_topology_equality_and_lookups():
    x = Exchange("/", "x", "topic")
    q = Queue("/", "q", durable=True)
    b = Binding("/", "x", "q", routing_key="a.*")
    t1 = Topology.build([x, q, b])
    t2 = Topology.build([b, q, x])
    assert t1 == t2
    assert t1.bindings_from("/", "x") == [b]
    assert t1.bindings_to("/", "queue", "q") == [b]
    assert t1 != Topology.build([x, q])
    assert t1.in_vhosts(["other"]) == Topology()


def test_cached_properties_are_computed_once_and_kept_on_the_frozen_instance():
    import threading

    from topoform.model import Binding, cached_property

    calls = []

    class Counted:
        @cached_property
        def value(self):
            calls.append(1)
            return ("computed", len(calls))

    c = Counted()
    assert c.value == ("computed", 1) and c.value == ("computed", 1) and len(calls) == 1
    assert isinstance(Counted.__dict__["value"], cached_property) and Counted.value is Counted.__dict__["value"]

    b = Binding(vhost="/", source="x", destination="q", routing_key="k")
    assert "key" not in b.__dict__
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(b.key)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and b.__dict__["key"] == keys[0] and b.name == "x -> q [k]"
