"""What a broker version adds to what it reports, undone by the live reader (broker/versioned.py)."""
from __future__ import annotations

import pytest

from topoform.broker import versioned
from topoform.broker.live import as_declared, live_from_definitions
from topoform.model import Args, Queue

Q = dict(vhost="v", name="q")


@pytest.mark.parametrize("durable, exclusive, auto_delete, dqt, implied", [
    (True, False, False, None, "classic"),
    (True, False, False, "undefined", "classic"),
    (True, False, False, "quorum", "quorum"),
    (False, False, False, "quorum", "classic"),   # transient declares fall back to classic
    (True, True, False, "quorum", "classic"),
    (True, False, True, "quorum", "classic"),
    (True, False, False, "classic", "classic"),
])
def test_implied_queue_type_follows_the_vhost_default_for_durable_declares(durable, exclusive, auto_delete, dqt,
                                                                           implied):
    assert versioned.implied_queue_type(durable, exclusive, auto_delete, dqt) == implied


@pytest.mark.parametrize("version, dqt, stored, kept", [
    ((4, 0), None, "classic", False),       # 4.x adds classic to every classic queue
    ((4, 3), "classic", "classic", False),
    ((4, 3), "quorum", "quorum", False),    # durable declare without a type in a quorum vhost
    ((4, 3), "quorum", "classic", True),    # somebody chose classic there: keep it
    ((4, 3), None, "quorum", True),
    ((3, 10), None, "classic", True),       # 3.10 stores what was declared where no default is set
    ((3, 10), "undefined", "classic", True),
    ((3, 10), "classic", "classic", False),  # ...and adds the default where one is set
    (None, "classic", "classic", True),     # unknown version: read as written
])
def test_a_stored_queue_type_is_dropped_only_where_the_broker_added_it(version, dqt, stored, kept):
    q = Queue(**Q, durable=True, arguments=Args({"x-queue-type": stored, "x-message-ttl": 5}))
    out = versioned.drop_implied_queue_type(q, dqt, version)
    assert ("x-queue-type" in out.arguments) is kept
    assert out.arguments["x-message-ttl"] == 5


def test_rules_version_is_none_for_unknown_or_junk():
    assert versioned.rules_version(None) is None
    assert versioned.rules_version("garbage") is None
    assert versioned.rules_version("4.3.6") == (4, 3)
    assert versioned.rules_version("3.9.1") == (3, 9)


def test_internal_exchanges_missing_from_a_43_export_are_merged_from_the_listing():
    defs = {"exchanges": [{"name": "x", "type": "topic"}], "bindings": [{"source": "inner", "destination": "x"}]}
    listing = [{"name": "x", "type": "topic", "internal": False},
               {"name": "inner", "type": "fanout", "internal": True, "durable": True}]
    merged = versioned.merge_internal_exchanges(defs, listing)
    assert [e["name"] for e in merged["exchanges"]] == ["x", "inner"]
    assert versioned.merge_internal_exchanges(merged, listing)["exchanges"] == merged["exchanges"]  # idempotent
    assert versioned.needs_exchange_listing((4, 3)) and not versioned.needs_exchange_listing((4, 0))
    assert not versioned.needs_exchange_listing(None)


def test_a_4x_export_imports_like_the_same_3_10_export():
    rows = lambda args: [{"name": "q", "vhost": "v", "durable": True, "auto_delete": False,  # noqa: E731
                          "arguments": args}]
    new = {"rabbitmq_version": "4.0.5", "vhosts": [{"name": "v"}], "queues": rows({"x-queue-type": "classic"})}
    old = {"rabbit_version": "3.10.8", "vhosts": [{"name": "v"}], "queues": rows({})}
    a, b = live_from_definitions(new, None), live_from_definitions(old, None)
    assert as_declared(a) == as_declared(b) == b.topology  # import writes the same files
    assert a.topology != b.topology  # the planner sees what each broker stores
    assert a.version == "4.0.5" and b.version == "3.10.8"


def test_bindings_of_queues_a_43_export_leaves_out_are_dropped_and_counted():
    defs = {"queues": [{"name": "q"}], "bindings": [
        {"source": "x", "destination": "q", "destination_type": "queue"},
        {"source": "x", "destination": "mine", "destination_type": "queue"},   # exclusive: not listed
        {"source": "x", "destination": "y", "destination_type": "exchange"}]}
    out, dropped = versioned.drop_bindings_to_unlisted_queues(defs)
    assert dropped == 1 and [b["destination"] for b in out["bindings"]] == ["q", "y"]
