"""The config kinds through load -> plan -> render -> plan file, offline (topoform/config/)."""
from __future__ import annotations

import json

import pytest

from topoform.broker.live import live_from_definitions
from topoform.config import kinds as K
from topoform.config.load import resolve
from topoform.config.secrets import SHA256, hash_password
from topoform.errors import InputError
from topoform.load import load_text
from topoform.planner import PlanOptions, make_plan
from topoform.planner.plan import Plan
from topoform.planner.render import render_text

SECRET = "Qz7@kW9#xV2"
URI_SECRET = "Jx4Kq9Wv"


def _files(text: str, environ=None):
    loaded = load_text(text)
    assert loaded.ok, [f.format() for f in loaded.errors]
    return loaded.topology, resolve(loaded.config, environ or {"PW": SECRET, "UP": f"amqp://u:{URI_SECRET}@h/v"})


FILES = """
users:
  app: {tags: [monitoring], password: {env: PW}, limits: {max-connections: 5}}
global_parameters: {cluster_name: eu}
vhosts:
  shop:
    queues: {q1: {durable: true}, q2: {durable: true}}
    limits: {max-queues: 10}
    permissions: {app: {configure: "^a", write: ".*", read: ".*"}}
    topic_permissions: {app: {amq.topic: {write: "^a", read: ".*"}}}
    operator_policies: {cap: {pattern: ".*", apply_to: queues, definition: {max-length: 9}}}
    federation_upstreams: {up: {uri: {env: UP}, expires: 1000}}
    federation_upstream_sets: {all: [{upstream: up}]}
    shovels: {mv: {src-uri: {env: UP}, src-queue: q1, dest-uri: "amqp://", dest-queue: q2}}
"""


def _export(password=SECRET, tags=("monitoring",), limit=10, extra_users=()):
    users = [{"name": "app", "password_hash": hash_password(password), "hashing_algorithm": SHA256,
              "tags": list(tags), "limits": {"max-connections": 5}},
             {"name": "admin", "password_hash": "", "hashing_algorithm": SHA256, "tags": ["administrator"],
              "limits": {}}, *extra_users]
    return {"vhosts": [{"name": "shop"}], "users": users,
            "queues": [{"name": n, "vhost": "shop", "durable": True, "auto_delete": False, "arguments": {}}
                       for n in ("q1", "q2")],
            "permissions": [{"user": "app", "vhost": "shop", "configure": "^a", "write": ".*", "read": ".*"},
                            {"user": "admin", "vhost": "shop", "configure": ".*", "write": ".*", "read": ".*"}],
            "topic_permissions": [{"user": "app", "vhost": "shop", "exchange": "amq.topic", "write": "^a",
                                   "read": ".*"}],
            "global_parameters": [{"name": "cluster_name", "value": "eu"}],
            "parameters": [
                {"vhost": "shop", "component": "vhost-limits", "name": "limits", "value": {"max-queues": limit}},
                {"vhost": "shop", "component": "operator_policy", "name": "cap",
                 "value": {"pattern": ".*", "apply-to": "queues", "priority": 0, "definition": {"max-length": 9}}},
                {"vhost": "shop", "component": "federation-upstream", "name": "up",
                 "value": {"uri": f"amqp://u:{URI_SECRET}@h/v", "expires": 1000}},
                {"vhost": "shop", "component": "federation-upstream-set", "name": "all",
                 "value": [{"upstream": "up"}]},
                {"vhost": "shop", "component": "shovel", "name": "mv",
                 "value": {"src-uri": f"amqp://u:{URI_SECRET}@h/v", "src-queue": "q1", "dest-uri": "amqp://",
                           "dest-queue": "q2"}}]}


def _plan(export, options=None, text=FILES, environ=None, user="admin"):
    desired, config = _files(text, environ)
    live = live_from_definitions(export, ["shop"])
    return make_plan(desired, live, options or PlanOptions(), config=config, connected_user=user)


def test_a_matching_export_plans_no_changes():
    plan = _plan(_export())
    assert plan.changes == (), render_text(plan)
    assert plan.unmanaged == ()  # the connected user's permission is never reported


def test_an_empty_broker_gets_every_kind_in_dependency_order():
    plan = _plan({"vhosts": [{"name": "shop"}], "users": []})
    kinds = [c.kind for c in plan.changes]
    assert kinds.index("user") < kinds.index("permission") < kinds.index("queue") < kinds.index("shovel")
    assert kinds.index("federation_upstream") < kinds.index("federation_upstream_set")
    assert kinds.index("queue") < kinds.index("vhost_limit")
    assert {c.action.value for c in plan.changes} == {"create"}


def test_password_change_is_named_never_shown_and_the_plan_file_holds_no_secret():
    plan = _plan(_export(password="another-one"))
    assert [(c.kind, c.diff) for c in plan.changes] == [("user", ("password",))]
    text = render_text(plan)
    saved = json.dumps(plan.to_dict())
    assert "password: changes" in text
    for blob in (text, saved):
        assert SECRET not in blob and "another-one" not in blob and URI_SECRET not in blob
        assert "password_hash" not in blob
    again = Plan.from_dict(json.loads(saved))
    assert again.changes[0].after.secrets["password"].ref.name == "PW"  # apply reads it again


def test_tag_and_limit_updates_in_place_and_early_limit_raise():
    plan = _plan(_export(tags=("management",), limit=4))
    got = {(c.kind, c.action.value): c.diff for c in plan.changes}
    assert got == {("user", "update"): ("tags",), ("vhost_limit", "update"): ("limits.max-queues",)}
    limit = next(c for c in plan.changes if c.kind == "vhost_limit")
    assert limit.after.phase_kind == "vhost_limit_early"  # raising a limit goes before the queues


def test_a_limit_below_the_files_queues_is_blocked():
    plan = _plan(_export(), text=FILES.replace("max-queues: 10", "max-queues: 1"))
    blocked = [c for c in plan.changes if c.action.value == "blocked"]
    assert [c.kind for c in blocked] == ["vhost_limit"] and "max-queues 1" in blocked[0].reason


def test_uri_credentials_change_is_an_update_without_values():
    plan = _plan(_export(), environ={"PW": SECRET, "UP": "amqp://u:Other5Pw@h/v"})
    assert sorted((c.kind, c.diff) for c in plan.changes) == [("federation_upstream", ("uri",)),
                                                               ("shovel", ("src-uri",))]
    text = render_text(plan) + json.dumps(plan.to_dict())
    assert "Other5Pw" not in text and URI_SECRET not in text and "uri: changes" in text


def test_unmanaged_permissions_are_listed_and_pruned_but_never_the_connected_users():
    export = _export()
    export["permissions"].append({"user": "stranger", "vhost": "shop", "configure": "", "write": "", "read": ""})
    plan = _plan(export)
    assert [(r.kind, r.name) for r in plan.unmanaged] == [("permission", "stranger")]
    plan = _plan(export, PlanOptions(prune=True))
    assert [(c.action.value, c.kind, c.name) for c in plan.changes] == [("delete", "permission", "stranger")]


def test_kinds_without_a_key_in_the_files_are_not_managed():
    export = _export()
    export["permissions"].append({"user": "stranger", "vhost": "shop", "configure": "", "write": "", "read": ""})
    plan = _plan(export, PlanOptions(prune=True), text="vhosts: {shop: {queues: {q1: {durable: true}, "
                                                       "q2: {durable: true}}}}")
    assert plan.changes == () and plan.unmanaged == ()


def test_prune_users_spares_the_connected_user_and_the_last_administrator():
    plan = _plan(_export(extra_users=[{"name": "old", "password_hash": "", "tags": []}]),
                 PlanOptions(prune_users=True), user="app")
    got = {(c.action.value, c.name) for c in plan.changes if c.kind == "user"}
    assert got == {("delete", "old"), ("blocked", "admin")}
    plan = _plan(_export(extra_users=[{"name": "admin2", "password_hash": "", "tags": ["administrator"]}]),
                 PlanOptions(prune_users=True), user="app")
    got = {(c.action.value, c.name) for c in plan.changes if c.kind == "user"}
    assert got == {("delete", "admin"), ("blocked", "admin2")} or got == {("delete", "admin2"), ("blocked", "admin")}


def test_plain_text_secrets_and_bad_references_are_errors_with_positions():
    loaded = load_text("users: {u: {password: {env: A}, password_hash: x}}\n"
                       "vhosts:\n  v:\n    federation_upstreams: {up: {uri: 'amqp://u:pw@h'}}\n"
                       "    federation_upstream_sets: {s: [{upstream: nope}]}\n"
                       "    super_streams: {ss: {partitions: 2, binding_keys: [a]}}\n")
    codes = sorted(f.code for f in loaded.errors)
    assert codes == ["bad-super-stream", "conflicting-password", "plain-text-secret", "undeclared-upstream"]
    assert all(f.position is not None and f.position.line > 0 for f in loaded.errors)


def test_missing_secrets_fail_at_plan_time_naming_each():
    loaded = load_text(FILES)
    with pytest.raises(InputError) as info:
        resolve(loaded.config, {})
    assert sorted(f.message.split(": ", 1)[1].split(" ")[2] for f in info.value.findings) == ["PW", "UP", "UP"]


def test_every_kind_has_a_row_and_a_phase():
    from topoform.planner.plan import PHASES

    names = {k for _, k in PHASES}
    for kind in K.ALL_KINDS:
        assert kind in names and K.KINDS[kind].kind == kind


def test_export_then_state_plans_no_changes_offline():
    from topoform.config.export import add_definitions
    from topoform.export import export_definitions

    text = FILES + "    super_streams: {inv: {partitions: 2, arguments: {x-max-age: 1D}}}\n"
    desired, config = _files(text)
    exported = export_definitions(desired)
    notes = add_definitions(exported.definitions, config, ["shop"])
    defs = json.loads(json.dumps(exported.definitions))
    assert any("keep the file secret" in n for n in notes)
    assert defs["users"][0]["password_hash"] and defs["users"][0]["limits"] == {"max-connections": 5}
    defs["users"].append({"name": "admin", "password_hash": "", "tags": ["administrator"]})
    live = live_from_definitions(defs, ["shop"])
    plan = make_plan(desired, live, PlanOptions(prune=True), config=config, connected_user="admin")
    assert plan.changes == (), render_text(plan)
    # the same file exports the same bytes (the salt comes from the user and password)
    again = export_definitions(desired)
    add_definitions(again.definitions, config, ["shop"])
    assert json.dumps(again.definitions, sort_keys=True) == json.dumps(exported.definitions, sort_keys=True)


def test_import_writes_no_secret_and_reads_back_the_same():
    from topoform.broker.live import as_declared
    from topoform.config.dump import secret_variables
    from topoform.config.hook import import_view
    from topoform.dump import dump_topology

    live = live_from_definitions(_export(), ["shop"])
    topology, config = import_view(as_declared(live), live.config, ["shop"])
    text = dump_topology(topology, vhosts=["shop"], config=config)
    assert URI_SECRET not in text and "password" not in text
    from topoform.fmt import format_text

    assert format_text(text).text == text  # import --config writes fmt's canonical form
    variables = dict(secret_variables(config, ["shop"]))
    assert sorted(variables) == ["TOPOFORM_SECRET_FEDERATION_UPSTREAM_SHOP_UP_URI",
                                 "TOPOFORM_SECRET_SHOVEL_SHOP_MV_SRC_URI"]
    loaded = load_text(text)
    assert loaded.ok, [f.format() for f in loaded.errors]
    environ = {name: f"amqp://u:{URI_SECRET}@h/v" for name in variables}
    plan = make_plan(loaded.topology, live, PlanOptions(prune=True), config=resolve(loaded.config, environ),
                     connected_user="admin")
    assert plan.changes == (), render_text(plan)


@pytest.mark.parametrize("limit, blocked", [(0, "lower than the 2 queues"), (1, "lower than the 2 queues"),
                                            (2, "apply lock"), (3, ""), (-1, "")])
def test_a_limit_must_leave_room_for_the_files_queues_and_the_apply_lock(limit, blocked):
    plan = _plan(_export(), text=FILES.replace("max-queues: 10", f"max-queues: {limit}"))
    reasons = [c.reason for c in plan.changes if c.action.value == "blocked"]
    if blocked:
        assert len(reasons) == 1 and blocked in reasons[0], reasons
    else:
        assert reasons == []


def test_super_stream_partitions_count_against_max_queues():
    text = FILES.replace("max-queues: 10", "max-queues: 5") + "    super_streams: {inv: {partitions: 2}}\n"
    plan = _plan(_export(), text=text)  # q1, q2, inv-0, inv-1 and the lock: 5
    assert not [c for c in plan.changes if c.action.value == "blocked"]
    plan = _plan(_export(), text=text.replace("partitions: 2", "partitions: 3"))
    blocked = [c for c in plan.changes if c.action.value == "blocked"]
    assert [c.kind for c in blocked] == ["vhost_limit"] and "5 queues" in blocked[0].reason


def test_plan_from_a_state_file_spares_the_permission_of_the_user_apply_would_connect_as(tmp_path):
    from helpers import run_cli

    export = {"rabbitmq_version": "4.3.6", "vhosts": [{"name": "shop"}], "users": [],
              "permissions": [{"user": "deployer", "vhost": "shop", "configure": ".*", "write": ".*", "read": ".*"},
                              {"user": "stranger", "vhost": "shop", "configure": "", "write": "", "read": ""},
                              {"user": "app", "vhost": "shop", "configure": "^a", "write": ".*", "read": ".*"}]}
    (tmp_path / "state.json").write_text(json.dumps(export))
    (tmp_path / "t.yaml").write_text("vhosts:\n  shop:\n    permissions: {app: {configure: '^a', write: '.*', "
                                     "read: '.*'}}\n")
    base = ["plan", "-f", "t.yaml", "--state", "state.json", "--json"]
    as_deployer = run_cli(base, cwd=tmp_path, environ={"TOPOFORM_URL": "amqp://deployer@broker/"})
    unmanaged = [(u["kind"], u["name"]) for u in json.loads(as_deployer.out)["unmanaged"]]
    assert unmanaged == [("permission", "stranger")], as_deployer.out
    as_guest = run_cli(base, cwd=tmp_path, environ={})  # guest: deployer's permission is someone else's
    unmanaged = [(u["kind"], u["name"]) for u in json.loads(as_guest.out)["unmanaged"]]
    assert ("permission", "deployer") in unmanaged, as_guest.out
