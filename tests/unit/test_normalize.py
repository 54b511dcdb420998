"""Normalization: each trap of RABBITMQ-SEMANTICS.md section 0 has its own test.

Most false diffs come from skipping this step, so it is tested on its own, on the
objects the live reader and the loader actually produce.
"""
from topoform.broker.live import live_from_definitions
from topoform.broker.rows import queue_from_row
from topoform.model import Args, Binding, Queue, Vhost
from topoform.planner.normalize import (effective_queue_type, normalize_queue, normalize_topology,
                                        normalize_vhost, queues_equivalent, vhost_defaults)
from topoform.model import Topology


def q(name="q", **kw):
    kw.setdefault("durable", True)
    args = kw.pop("arguments", {})
    return Queue(vhost="v", name=name, arguments=Args(args), **kw)


# ---- x-queue-type: absent is classic (section 1.3), both directions
def test_absent_queue_type_equals_classic_declared_in_files():
    assert queues_equivalent(q(arguments={"x-queue-type": "classic"}), q())


def test_absent_queue_type_equals_classic_reported_by_broker():
    # 4.1+ brokers inject x-queue-type: classic into stored arguments
    assert queues_equivalent(q(), q(arguments={"x-queue-type": "classic"}))


def test_absent_queue_type_differs_from_quorum():
    assert not queues_equivalent(q(), q(arguments={"x-queue-type": "quorum"}))


def test_canonical_queue_always_carries_its_effective_type():
    assert normalize_queue(q()).arguments == {"x-queue-type": "classic"}
    assert normalize_queue(q(arguments={"x-queue-type": "quorum"})).arguments == {"x-queue-type": "quorum"}


# ---- vhost default queue type (section 1.6)
def test_vhost_default_quorum_makes_a_durable_declare_without_type_quorum():
    desired = q()
    live = q(arguments={"x-queue-type": "quorum"})  # what the broker stored after injecting it
    assert queues_equivalent(desired, live, default_queue_type="quorum")
    assert not queues_equivalent(desired, live, default_queue_type=None)


def test_vhost_default_quorum_does_not_apply_to_non_durable_or_exclusive_declares():
    assert effective_queue_type(q(durable=False), "quorum") == "classic"
    assert effective_queue_type(q(exclusive=True), "quorum") == "classic"
    assert effective_queue_type(q(auto_delete=True), "quorum") == "classic"  # BROKERS.md, on every version
    assert effective_queue_type(q(arguments={"x-queue-type": "classic"}), "quorum") == "classic"


def test_durable_auto_delete_queue_in_a_quorum_default_vhost_is_classic_and_no_difference():
    # the broker falls back to classic for an auto-delete declare (and 4.x stores the type)
    desired = q(auto_delete=True)
    assert queues_equivalent(desired, q(auto_delete=True, arguments={"x-queue-type": "classic"}), "quorum")
    assert queues_equivalent(desired, q(auto_delete=True), "quorum")
    assert not queues_equivalent(desired, q(auto_delete=True, arguments={"x-queue-type": "quorum"}), "quorum")


def test_existing_classic_queue_in_a_quorum_default_vhost_is_a_difference():
    # a redeclare without x-queue-type would get quorum injected and fail with 406
    assert not queues_equivalent(q(), q(), default_queue_type="quorum")


def test_vhost_defaults_are_the_settings_after_the_plan():
    desired = Topology.build([Vhost("v", default_queue_type="classic"), Vhost("new", default_queue_type="quorum"),
                              Vhost("kept")])
    live = Topology.build([Vhost("v", default_queue_type="quorum"), Vhost("kept", default_queue_type="stream")])
    assert vhost_defaults(desired, live) == {"v": "classic", "new": "quorum", "kept": "stream"}
    # a broker that sets it only at creation (3.10) keeps the live one; a vhost it creates takes the files'
    assert vhost_defaults(desired, live, updatable=False) == {"v": "quorum", "new": "quorum", "kept": "stream"}


# ---- absent is not the default value (section 1.3)
def test_absent_argument_differs_from_its_default_value():
    for key, value in (("x-overflow", "drop-head"), ("x-single-active-consumer", False), ("x-queue-mode", "default")):
        assert not queues_equivalent(q(arguments={key: value}), q()), key


# ---- value types (section 1.3)
def test_integer_and_string_values_differ():
    assert not queues_equivalent(q(arguments={"x-message-ttl": 60000}), q(arguments={"x-message-ttl": "60000"}))


def test_integer_and_float_values_differ():
    assert not queues_equivalent(q(arguments={"x-message-ttl": 60000}), q(arguments={"x-message-ttl": 60000.0}))


def test_bool_and_integer_values_differ_although_python_says_true_equals_1():
    assert not queues_equivalent(q(arguments={"x-foo": True}), q(arguments={"x-foo": 1}))


def test_json_integers_from_the_api_equal_yaml_integers():
    live = queue_from_row({"name": "q", "durable": True, "auto_delete": False,
                           "arguments": {"x-message-ttl": 60000}}, "v")
    assert queues_equivalent(q(arguments={"x-message-ttl": 60000}), live)


# ---- binding integer width (section 9)
def test_binding_integer_width_is_one_class_in_the_model():
    # HTTP and definitions bindings are all long; the files' ints are ints: one binding
    desired = Binding("v", "h", "q", arguments=Args({"x-match": "all", "n": 1}))
    live = live_from_definitions({"bindings": [{"source": "h", "vhost": "v", "destination": "q",
                                                 "destination_type": "queue", "routing_key": "",
                                                 "arguments": {"n": 1, "x-match": "all"}}],
                                   "vhosts": [{"name": "v"}]}, ["v"]).topology
    assert set(live.bindings) == {desired}


# ---- exclusive queues (sections 1.1, 4.1)
def test_exclusive_queue_is_stored_non_durable():
    assert normalize_queue(q(exclusive=True, durable=True)).durable is False
    assert queues_equivalent(q(exclusive=True, durable=True), q(exclusive=True, durable=False))


def test_exclusive_queues_are_missing_from_exports_so_never_read():
    live = live_from_definitions({"vhosts": [{"name": "v"}],
                                  "queues": [{"name": "ex", "vhost": "v", "durable": False, "auto_delete": False,
                                              "exclusive": True, "arguments": {}}]}, ["v"])
    assert live.topology.queues == {}
    assert live.skipped == {"exclusive queues": 1}


# ---- arguments of another queue type are still compared (section 1.2)
def test_argument_of_another_queue_type_is_still_a_difference():
    assert not queues_equivalent(q(arguments={"x-delivery-limit": 5}), q())


# ---- policy-applied values never enter arguments (section 11.3)
def test_policy_values_are_not_folded_into_arguments():
    live = queue_from_row({"name": "q", "durable": True, "auto_delete": False, "arguments": {},
                           "policy": "p", "effective_policy_definition": {"message-ttl": 5}}, "v")
    assert live.arguments == {}
    assert queues_equivalent(q(), live)


# ---- server-only fields dropped, declare defaults filled
def test_server_only_fields_are_dropped_and_defaults_filled():
    live = queue_from_row({"name": "q", "node": "rabbit@x", "state": "running", "messages": 3,
                           "type": "classic", "vhost": "v"}, "v")
    assert live == Queue(vhost="v", name="q")


def test_vhost_tags_are_a_set():
    assert normalize_vhost(Vhost("v", tags=("b", "a", "b"))) == Vhost("v", tags=("a", "b"))
    # reported as not set is not "classic" (3.10 stores x-queue-type: classic under a classic default)
    assert normalize_vhost(Vhost("v", default_queue_type="undefined")).default_queue_type == "undefined"
    assert normalize_vhost(Vhost("v", default_queue_type="")).default_queue_type == "undefined"
    assert normalize_vhost(Vhost("v")).default_queue_type is None  # not reported: unknown


def test_normalize_topology_is_idempotent():
    t = Topology.build([Vhost("v"), q(), q("e", exclusive=True)])
    once = normalize_topology(t, {"v": "quorum"})
    assert normalize_topology(once, {"v": "quorum"}) == once
