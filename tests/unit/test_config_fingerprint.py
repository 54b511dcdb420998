"""Saved plans and the config kinds, offline: the fingerprint covers the config objects the plan was
based on (what the files manage, as the connected user read it), so ``apply PLANFILE`` refuses a plan
after a user's tags, a vhost limit, a permission, ... changed behind its back, and ignores what the
plan never looked at (users it does not name, kinds the files do not manage)."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from topoform.broker.live import live_from_definitions
from topoform.config.hook import saved_plan_fingerprint, seal
from topoform.config.secrets import SHA256, hash_password
from topoform.errors import StalePlanError
from topoform.planner import PlanOptions, make_plan
from topoform.planner.plan import Plan

from test_config_plan import FILES, _export, _files


def _saved(export, options=None, text=FILES):
    desired, config = _files(text)
    options = options or PlanOptions()
    live = live_from_definitions(export, ["shop"])
    plan = seal(make_plan(desired, live, options, config=config, connected_user="admin"), config, live, options)
    return Plan.from_dict(json.loads(json.dumps(plan.to_dict())))  # as apply PLANFILE reads it


def _now(export):
    return live_from_definitions(export, ["shop"])


def _param(name):
    def get(d):
        return next(p for p in d["parameters"] if p["name"] == name)["value"]
    return get


def _user(name):
    def get(d):
        return next(u for u in d["users"] if u["name"] == name)
    return get


# (what changed behind the plan's back, mutation of the broker's export)
STALE = [
    ("a named user's tags", lambda d: _user("app")(d).update(tags=["management"])),
    ("a named user's password", lambda d: _user("app")(d).update(password_hash=hash_password("other", SHA256))),
    ("a named user's limits", lambda d: _user("app")(d).update(limits={"max-connections": 6})),
    ("a named user deleted", lambda d: d["users"].remove(_user("app")(d))),
    ("a vhost limit", lambda d: _param("limits")(d).update({"max-queues": 11})),
    ("a vhost limit added", lambda d: _param("limits")(d).update({"max-connections": 3})),
    ("a permission", lambda d: d["permissions"][0].update(configure=".*")),
    ("a permission added", lambda d: d["permissions"].append(
        {"user": "x", "vhost": "shop", "configure": "", "write": "", "read": ""})),
    ("a topic permission", lambda d: d["topic_permissions"][0].update(read="^b")),
    ("an operator policy", lambda d: _param("cap")(d)["definition"].update({"max-length": 8})),
    ("a federation upstream's credentials", lambda d: _param("up")(d).update(uri="amqp://u:Zq8Wx3Mv@h/v")),
    ("a federation upstream set", lambda d: _param("all")(d).append({"upstream": "other"})),
    ("a shovel", lambda d: _param("mv")(d).update({"dest-queue": "q3"})),
    ("a global parameter", lambda d: d["global_parameters"][0].update(value="us")),
]

# changes the plan never looked at: the saved plan stays good
NOT_STALE = [
    ("a user the files do not name", lambda d: _user("admin")(d).update(tags=["administrator", "monitoring"])),
    ("a new user", lambda d: d["users"].append({"name": "new", "password_hash": "", "tags": []})),
    ("a global parameter the files do not name", lambda d: d["global_parameters"].append(
        {"name": "other", "value": 1})),
]


@pytest.mark.parametrize("what, mutate", STALE, ids=[s[0] for s in STALE])
def test_a_config_change_after_the_plan_makes_it_stale(what, mutate):
    export = _export()
    saved = _saved(export)
    assert saved.config_basis and saved.fingerprint.startswith("sha256:")
    assert saved_plan_fingerprint(saved, _now(export)) == saved.fingerprint  # unchanged: still good
    changed = copy.deepcopy(export)
    mutate(changed)
    assert saved_plan_fingerprint(saved, _now(changed)) != saved.fingerprint, what


@pytest.mark.parametrize("what, mutate", NOT_STALE, ids=[s[0] for s in NOT_STALE])
def test_what_the_plan_did_not_look_at_leaves_it_good(what, mutate):
    export = _export()
    saved = _saved(export)
    changed = copy.deepcopy(export)
    mutate(changed)
    assert saved_plan_fingerprint(saved, _now(changed)) == saved.fingerprint, what


def test_with_prune_users_every_user_is_part_of_the_basis():
    export = _export()
    saved = _saved(export, PlanOptions(prune_users=True))
    assert saved.config_basis.get("all_users") is True
    changed = copy.deepcopy(export)
    changed["users"].append({"name": "new", "password_hash": "", "tags": []})
    assert saved_plan_fingerprint(saved, _now(changed)) != saved.fingerprint


def test_kinds_the_files_do_not_manage_stay_out():
    text = "vhosts: {shop: {queues: {q1: {durable: true}, q2: {durable: true}}}}"
    export = _export()
    saved = _saved(export, text=text)
    assert saved.config_basis == {}  # nothing of the config kinds: the topology's fingerprint alone
    assert saved.fingerprint == _now(export).fingerprint
    changed = copy.deepcopy(export)
    changed["permissions"][0].update(configure=".*")
    _param("limits")(changed).update({"max-queues": 1})
    assert saved_plan_fingerprint(saved, _now(changed)) == saved.fingerprint


def test_a_user_who_cannot_read_a_kind_of_the_basis_cannot_apply_the_plan():
    export = _export()
    saved = _saved(export)
    now = _now(export)
    unreadable = replace(now, config=replace(now.config, unreadable={"permission": "403 not administrator"}))
    with pytest.raises(StalePlanError) as info:
        saved_plan_fingerprint(saved, unreadable)
    assert "permissions" in info.value.message and "\n" not in info.value.message


def test_the_plan_file_keeps_the_basis_and_holds_no_secret():
    saved = _saved(_export())
    text = json.dumps(saved.to_dict())
    assert "config_basis" in text and ["user", "app"] in saved.config_basis["managed"]
    assert ["vhost_limit", "shop"] in saved.config_basis["managed"]
    from test_config_plan import SECRET, URI_SECRET

    for secret in (SECRET, URI_SECRET):
        assert all(secret[i:i + 4] not in text for i in range(len(secret) - 3))
