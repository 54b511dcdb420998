"""``topoform destroy``'s plan (topoform/cli/destroy.py ``destroy_plan``), offline: what goes (the
files' objects the broker has), in which order, and what stays (unmanaged, external, outside
``owns``, the connected user and its permissions, the last administrator); the data-loss guard;
``--vhost`` keeping the global kinds; ``--target`` narrowing; the command's usage errors."""
from __future__ import annotations

import dataclasses

import pytest
from helpers import run_cli

from topoform.broker.live import QueueStats, live_from_definitions
from topoform.cli.destroy import DESTROY_ORDER, destroy_plan
from topoform.load import load_text
from topoform.planner.plan import Action
from topoform.planner.target import narrow_plan, parse_targets

FILES = """
users:
  app: {tags: [monitoring], password_hash: "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn"}
  boss: {tags: [administrator], password_hash: "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn"}
  me: {tags: [administrator], password_hash: "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn"}
global_parameters: {cluster_name: eu}
vhosts:
  shop:
    exchanges:
      orders: {type: topic, durable: true}
    queues:
      q1: {durable: true}
      q2: {durable: true}
      gone: {durable: true}
    bindings:
      - {source: orders, destination: q1, routing_key: a}
    policies:
      ttl: {pattern: "^q", apply_to: queues, definition: {message-ttl: 1000}}
    limits: {max-queues: 100}
    permissions:
      app: {configure: ".*", write: ".*", read: ".*"}
      me: {configure: ".*", write: ".*", read: ".*"}
    topic_permissions:
      app: {orders: {write: ".*", read: ".*"}}
    operator_policies:
      cap: {pattern: ".*", apply_to: queues, definition: {max-length: 9}}
    federation_upstreams:
      up1: {uri: "amqp://remote", expires: 1000}
    federation_upstream_sets:
      ups: [{upstream: up1}]
    shovels:
      mv: {src-uri: "amqp://", src-queue: q1, dest-uri: "amqp://", dest-queue: q2}
    super_streams:
      invoices: {partitions: 2}
"""


def _q(name, **kw):
    return {"name": name, "vhost": "shop", "durable": True, "auto_delete": False, "arguments": {}, **kw}


def _definitions(extra_admin=True):
    users = [{"name": n, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": t}
             for n, t in (("app", ["monitoring"]), ("boss", ["administrator"]), ("me", ["administrator"]),
                          ("bystander", []))]
    if not extra_admin:
        users = [u if u["name"] != "me" else {**u, "tags": []} for u in users]
    return {
        "vhosts": [{"name": "shop"}],
        "users": users,
        "global_parameters": [{"name": "cluster_name", "value": "eu"}],
        "queues": [_q("q1"), _q("q2"), _q("unmanaged"),
                   _q("invoices-0", arguments={"x-queue-type": "stream"}),
                   _q("invoices-1", arguments={"x-queue-type": "stream"})],
        "exchanges": [{"name": n, "vhost": "shop", "type": t, "durable": True, "auto_delete": False,
                       "internal": False, "arguments": a}
                      for n, t, a in (("orders", "topic", {}), ("other", "fanout", {}),
                                      ("invoices", "direct", {"x-super-stream": True}))],
        "bindings": [{"source": "orders", "vhost": "shop", "destination": "q1", "destination_type": "queue",
                      "routing_key": "a", "arguments": {}},
                     {"source": "orders", "vhost": "shop", "destination": "unmanaged", "destination_type": "queue",
                      "routing_key": "b", "arguments": {}}]
        + [{"source": "invoices", "vhost": "shop", "destination": f"invoices-{i}", "destination_type": "queue",
            "routing_key": str(i), "arguments": {"x-stream-partition-order": i}} for i in range(2)],
        "policies": [{"name": "ttl", "vhost": "shop", "pattern": "^q", "apply-to": "queues", "priority": 0,
                      "definition": {"message-ttl": 1000}}],
        "permissions": [{"user": u, "vhost": "shop", "configure": ".*", "write": ".*", "read": ".*"}
                        for u in ("app", "me", "bystander")],
        "topic_permissions": [{"user": "app", "vhost": "shop", "exchange": "orders", "write": ".*", "read": ".*"}],
        "parameters": [
            {"vhost": "shop", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 100}},
            {"vhost": "shop", "component": "operator_policy", "name": "cap",
             "value": {"pattern": ".*", "apply-to": "queues", "priority": 0, "definition": {"max-length": 9}}},
            {"vhost": "shop", "component": "federation-upstream", "name": "up1",
             "value": {"uri": "amqp://remote", "expires": 1000}},
            {"vhost": "shop", "component": "federation-upstream-set", "name": "ups", "value": [{"upstream": "up1"}]},
            {"vhost": "shop", "component": "shovel", "name": "mv",
             "value": {"src-uri": "amqp://", "src-queue": "q1", "dest-uri": "amqp://", "dest-queue": "q2"}},
        ],
    }


EMPTY = {("queue", "shop", n): QueueStats(messages=0, consumers=0)
         for n in ("q1", "q2", "unmanaged", "invoices-0", "invoices-1")}


def _destroy(files=FILES, definitions=None, stats=EMPTY, **kw):
    loaded = load_text(files)
    assert loaded.ok, [f.format() for f in loaded.errors]
    live = live_from_definitions(definitions or _definitions(), ["shop"])
    live = dataclasses.replace(live, queue_stats=dict(stats))
    kw.setdefault("connected_user", "me")
    plan, notes = destroy_plan(loaded.topology, live, config=loaded.config, vhosts=["shop"],
                               ownership=loaded.ownership, **kw)
    return plan, notes, loaded


def _names(plan, action=Action.DELETE):
    return [(c.kind, c.name) for c in plan.changes if c.action is action]


def test_destroy_deletes_the_files_objects_the_broker_has_children_first():
    plan, notes, _ = _destroy()
    deleted = _names(plan)
    assert set(deleted) == {
        ("shovel", "mv"), ("binding", "orders -> q1 [a]"), ("super_stream", "invoices"), ("policy", "ttl"),
        ("operator_policy", "cap"), ("queue", "q1"), ("queue", "q2"), ("topic_permission", "app@orders"),
        ("exchange", "orders"), ("federation_upstream_set", "ups"), ("federation_upstream", "up1"),
        ("vhost_limit", "limits"), ("permission", "app"), ("global_parameter", "cluster_name"),
        ("user", "app"), ("user", "boss")}
    kinds = [k for k, _ in deleted]
    assert kinds == sorted(kinds, key=DESTROY_ORDER.index)  # the table's order, children first
    for before, after in (("binding", "queue"), ("binding", "exchange"), ("shovel", "queue"), ("policy", "queue"),
                          ("permission", "user"), ("topic_permission", "user"), ("topic_permission", "exchange"),
                          ("federation_upstream_set", "federation_upstream"), ("policy", "federation_upstream")):
        assert kinds.index(before) < kinds.index(after), (before, after)
    assert not plan.blocked and plan.options["destroy"] is True
    # what stays: not in the files, absent from the broker, the connected user and its permission
    names = {n for _, n in deleted}
    assert not names & {"unmanaged", "other", "bystander", "gone", "me", "invoices-0", "amq.topic"}
    assert any("'me'" in n and "connected" in n for n in notes)


def test_a_queue_holding_messages_or_of_unknown_count_is_blocked_without_allow_data_loss():
    stats = {**EMPTY, ("queue", "shop", "q1"): QueueStats(messages=3, consumers=0)}
    del stats[("queue", "shop", "q2")]
    plan, _, _ = _destroy(stats=stats)
    blocked = {c.name: c.reason for c in plan.blocked}
    assert "holds 3 messages" in blocked["q1"] and "may hold messages" in blocked["q2"]
    assert ("queue", "q1") not in _names(plan)
    plan, _, _ = _destroy(stats=stats, allow_data_loss=True)
    assert not plan.blocked and {("queue", "q1"), ("queue", "q2")} <= set(_names(plan))


def test_a_super_stream_of_unknown_counts_is_blocked_and_its_parts_never_go_alone():
    stats = {k: v for k, v in EMPTY.items() if not k[2].startswith("invoices")}
    plan, _, _ = _destroy(stats=stats)
    assert [c.name for c in plan.blocked] == ["invoices"]
    assert ("exchange", "invoices") not in _names(plan) and ("queue", "invoices-0") not in _names(plan)


def test_the_last_administrator_is_never_deleted():
    # 'me' (connected) is no administrator here: boss is the only one
    plan, _, _ = _destroy(definitions=_definitions(extra_admin=False))
    assert [(c.kind, c.name) for c in plan.blocked] == [("user", "boss")]
    assert "without an administrator" in plan.blocked[0].reason


def test_with_vhost_the_global_kinds_stay():
    plan, _, _ = _destroy(include_global=False)
    assert not {k for k, _ in _names(plan)} & {"user", "user_limit", "global_parameter"}
    assert ("queue", "q1") in _names(plan)


def test_targets_narrow_a_destroy_plan_and_keep_its_order():
    plan, _, loaded = _destroy()
    known = list(loaded.topology.resources()) + list(loaded.config.objects.values())
    narrowed = narrow_plan(plan, parse_targets(["queue:q1"]), known=known)
    assert _names(narrowed) == [("binding", "orders -> q1 [a]"), ("queue", "q1")]
    narrowed = narrow_plan(plan, parse_targets(["user:app"]), known=known)
    assert _names(narrowed) == [("topic_permission", "app@orders"), ("permission", "app"), ("user", "app")]


def test_external_and_outside_owns_stay():
    files = """
vhosts:
  shop:
    owns: ["q*", "orders"]
    external: {exchanges: [other]}
    exchanges: {orders: {type: topic, durable: true}}
    queues: {q1: {durable: true}}
    bindings:
      - {source: other, destination: q1}
"""
    definitions = _definitions()
    definitions["bindings"].append({"source": "other", "vhost": "shop", "destination": "q1",
                                    "destination_type": "queue", "routing_key": "", "arguments": {}})
    plan, _, _ = _destroy(files, definitions)
    assert set(_names(plan)) == {("queue", "q1"), ("exchange", "orders"), ("binding", "other -> q1 []")}


def test_nothing_to_destroy_in_a_missing_vhost():
    loaded = load_text(FILES)
    live = live_from_definitions({"vhosts": [], "queues": []}, ["shop"])
    plan, _ = destroy_plan(loaded.topology, live, config=loaded.config, vhosts=["shop"])
    assert [c for c in plan.changes if c.vhost] == []


@pytest.mark.parametrize("argv, fragment", [
    (["destroy", "--target", "bogus:x"], "unknown kind 'bogus'"),
    (["destroy", "--lock-timeout", "-1"], "--lock-timeout"),
    (["destroy", "--json", "--format", "text"], "--json contradicts --format text"),
    (["destroy", "--dry"], "unrecognized arguments"),
])
def test_destroy_usage_errors(tmp_path, argv, fragment):
    (tmp_path / "topoform.yaml").write_text(FILES, encoding="utf-8")
    r = run_cli(argv, cwd=tmp_path, environ={"TOPOFORM_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert r.code == 1 and fragment in r.err and "Traceback" not in r.err
