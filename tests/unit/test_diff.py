"""Field-level differences with the dotted paths users see."""
from topoform.model import Args, Binding, Exchange, Policy, Queue, Vhost
from topoform.planner.diff import ABSENT, FieldDiff, diff_bindings, diff_mappings, field_diffs, get_path


def test_changed_argument_is_named_by_its_dotted_path():
    live = Queue("v", "q", arguments=Args({"x-message-ttl": 60000}))
    desired = Queue("v", "q", arguments=Args({"x-message-ttl": 30000}))
    assert field_diffs(live, desired) == (FieldDiff("arguments.x-message-ttl", 60000, 30000),)


def test_added_and_removed_arguments_show_absent():
    live = Queue("v", "q", arguments=Args({"a": 1}))
    desired = Queue("v", "q", arguments=Args({"b": 2}))
    assert field_diffs(live, desired) == (FieldDiff("arguments.a", 1, ABSENT), FieldDiff("arguments.b", ABSENT, 2))


def test_type_change_is_a_difference():
    live = Queue("v", "q", arguments=Args({"x-message-ttl": 60000}))
    desired = Queue("v", "q", arguments=Args({"x-message-ttl": "60000"}))
    assert [f.path for f in field_diffs(live, desired)] == ["arguments.x-message-ttl"]


def test_bool_versus_int_is_a_difference():
    live = Exchange("v", "x", arguments=Args({"x-foo": 1}))
    desired = Exchange("v", "x", arguments=Args({"x-foo": True}))
    assert [f.path for f in field_diffs(live, desired)] == ["arguments.x-foo"]


def test_nested_table_change_is_reported_at_the_argument():
    live = Queue("v", "q", arguments=Args({"x-t": {"a": [1, 2]}}))
    desired = Queue("v", "q", arguments=Args({"x-t": {"a": [1, 3]}}))
    assert [f.path for f in field_diffs(live, desired)] == ["arguments.x-t"]


def test_several_properties_are_all_listed_sorted():
    live = Exchange("v", "x", type="direct", durable=True)
    desired = Exchange("v", "x", type="topic", durable=False, internal=True)
    assert [f.path for f in field_diffs(live, desired)] == ["durable", "internal", "type"]


def test_policy_definition_paths():
    live = Policy("v", "p", "^a", definition=Args({"max-length": 1}))
    desired = Policy("v", "p", "^b", priority=2, definition=Args({"max-length": 2}))
    assert [f.path for f in field_diffs(live, desired)] == ["definition.max-length", "pattern", "priority"]


def test_unset_vhost_settings_are_not_differences():
    live = Vhost("v", description="x", tags=("a",), default_queue_type=None)
    desired = Vhost("v", description=None, tags=("a",), default_queue_type="quorum")
    assert field_diffs(live, desired, ignore_unset=True) == ()
    assert [f.path for f in field_diffs(live, Vhost("v", description="y"), ignore_unset=True)] == ["description"]


def test_diff_mappings_reports_each_side():
    a, b, c = Queue("v", "a"), Queue("v", "b"), Queue("v", "c", durable=True)
    found = diff_mappings("queue", {a.key: a, c.key: c}, {b.key: b, c.key: Queue("v", "c")})
    kinds = sorted((d.key[2], d.only_desired, d.only_live) for d in found)
    assert kinds == [("a", True, False), ("b", False, True), ("c", False, False)]


def test_bindings_are_a_set_difference():
    b1, b2 = Binding("v", "x", "q", routing_key="a"), Binding("v", "x", "q", routing_key="b")
    found = diff_bindings([b1], [b2])
    assert {(d.desired, d.live) for d in found} == {(b1, None), (None, b2)}


def test_get_path_reads_fields_and_arguments():
    queue = Queue("v", "q", durable=True, arguments=Args({"x-a": [1]}))
    assert get_path(queue, "durable") is True
    assert get_path(queue, "arguments.x-a") == [1]
    assert get_path(queue, "arguments.x-b") is ABSENT
    assert get_path(None, "durable") is ABSENT
