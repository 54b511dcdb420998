"""apply's preflight for the config kinds, offline (broker faked): the tag each kind needs, the plugin
(federation, shovel, stream), and every secret reference of a saved plan resolving, all problems at
once and before anything changes (issue 13)."""
from __future__ import annotations

import json

import pytest

from topoform.apply.preflight import Preflight
from topoform.config.model import make
from topoform.config.secrets import Ref, Secret
from topoform.planner.plan import Action, Change, Plan

from test_preflight import FED_TYPES, SETTINGS, FakeClient, create, perm

ALL_PLUGINS = ["rabbitmq_federation", "rabbitmq_shovel", "rabbitmq_stream", "rabbitmq_management"]
CORE_TYPES = [{"name": n} for n in ("direct", "fanout", "headers", "topic")]


def user(name="app", ref=None):
    secrets = {"password": Secret(ref=Ref("env", ref))} if ref else {}
    return make("user", "", name, {"tags": ("monitoring",)}, secrets=secrets)


def shovel(ref=None):
    secrets = {"src-uri": Secret(ref=Ref("env", ref))} if ref else {}
    return make("shovel", "v", "mv", {"src-queue": "a", "dest-uri": "amqp://", "dest-queue": "b"}, secrets=secrets)


OBJECTS = {
    "user": lambda: user(),
    "user_limit": lambda: make("user_limit", "", "app", {"limits": {"max-connections": 5}}),
    "global_parameter": lambda: make("global_parameter", "", "cluster_name", {"value": "eu"}),
    "permission": lambda: make("permission", "v", "app", {"configure": "", "write": "", "read": ".*"}),
    "vhost_limit": lambda: make("vhost_limit", "v", "limits", {"limits": {"max-queues": 5}}),
    "operator_policy": lambda: make("operator_policy", "v", "cap", {"pattern": ".*", "apply_to": "queues",
                                                                     "priority": 0, "definition": {}}),
    "federation_upstream": lambda: make("federation_upstream", "v", "up", {"uri": "amqp://"}),
    "shovel": lambda: shovel(),
    "super_stream": lambda: make("super_stream", "v", "inv", {"partitions": 2, "arguments": {}}),
}

# kind -> (tags that may change it, tags that may not)
TAGS = {
    "user": (("administrator",), ("policymaker", "monitoring")),
    "user_limit": (("administrator",), ("policymaker",)),
    "global_parameter": (("administrator",), ("policymaker",)),
    "permission": (("administrator",), ("policymaker",)),
    "vhost_limit": (("administrator",), ("policymaker",)),
    "operator_policy": (("administrator",), ("policymaker",)),
    "federation_upstream": (("policymaker",), ("management", "monitoring")),
    "shovel": (("policymaker",), ("management",)),
}


@pytest.mark.parametrize("kind", sorted(TAGS))
def test_each_kind_needs_its_tag(kind):
    allowed, refused = TAGS[kind]
    plan = Plan(changes=(create(OBJECTS[kind]()),))
    ok = Preflight(FakeClient(tags=allowed, perms=[perm()], nodes=ALL_PLUGINS), SETTINGS).check_plan(plan)
    assert ok.problems == [], ok.problems
    bad = Preflight(FakeClient(tags=refused, perms=[perm()], nodes=ALL_PLUGINS), SETTINGS).check_plan(plan)
    assert len(bad.problems) == 1 and "tag" in bad.problems[0] and "'administrator'" in bad.problems[0], bad.problems
    assert OBJECTS[kind]().name in bad.problems[0] and "in vhost ''" not in bad.problems[0]


# kind -> the plugin it needs
PLUGINS = {"federation_upstream": "rabbitmq_federation", "shovel": "rabbitmq_shovel",
           "super_stream": "rabbitmq_stream"}


@pytest.mark.parametrize("kind", sorted(PLUGINS))
def test_each_plugin_kind_needs_its_plugin(kind):
    plugin = PLUGINS[kind]
    plan = Plan(changes=(create(OBJECTS[kind]()),))
    ok = Preflight(FakeClient(perms=[perm()], nodes=ALL_PLUGINS), SETTINGS).check_plan(plan)
    assert ok.problems == [], ok.problems
    without = [p for p in ALL_PLUGINS if p != plugin]
    bad = Preflight(FakeClient(perms=[perm()], nodes=without), SETTINGS).check_plan(plan)
    assert len(bad.problems) == 1 and plugin in bad.problems[0] and "not enabled" in bad.problems[0], bad.problems


def test_federation_is_told_from_the_exchange_types_when_the_nodes_are_unreadable():
    plan = Plan(changes=(create(OBJECTS["federation_upstream"]()),))
    ok = Preflight(FakeClient(tags=("policymaker",), exchange_types=FED_TYPES), SETTINGS).check_plan(plan)
    assert ok.problems == []
    bad = Preflight(FakeClient(tags=("policymaker",), exchange_types=CORE_TYPES), SETTINGS).check_plan(plan)
    assert len(bad.problems) == 1 and "rabbitmq_federation" in bad.problems[0]
    # the shovel plugin registers no exchange type: not knowable without the nodes, so a note, not a stop
    note = Preflight(FakeClient(tags=("policymaker",)), SETTINGS).check_plan(Plan(changes=(create(shovel()),)))
    assert note.problems == [] and any("rabbitmq_shovel" in n for n in note.notes)


def test_a_super_stream_needs_configure_on_its_exchange_and_streams():
    plan = Plan(changes=(create(OBJECTS["super_stream"]()),))
    bad = Preflight(FakeClient(perms=[perm(configure="^inv$")], nodes=ALL_PLUGINS), SETTINGS).check_plan(plan)
    assert len(bad.problems) == 1 and "configure" in bad.problems[0] and "inv-0" in bad.problems[0], bad.problems
    ok = Preflight(FakeClient(perms=[perm(configure="^inv")], nodes=ALL_PLUGINS), SETTINGS).check_plan(plan)
    assert ok.problems == []


def test_every_missing_secret_of_a_saved_plan_is_named_at_once():
    changes = (create(user("app", "TF_PW_MISSING")), create(user("other", "TF_PW_SET")),
               create(shovel("TF_URI_MISSING")))
    plan = Plan.from_dict(json.loads(json.dumps(Plan(changes=changes).to_dict())))  # as apply PLANFILE reads it
    environ = {"TF_PW_SET": "Kq8-Zw3-Xv7"}
    report = Preflight(FakeClient(perms=[perm()], nodes=ALL_PLUGINS), SETTINGS).check_plan(plan, environ=environ)
    assert len(report.problems) == 2, report.problems
    assert "TF_PW_MISSING" in report.problems[0] and "user 'app'" in report.problems[0]
    assert "TF_URI_MISSING" in report.problems[1] and "shovel 'mv' in vhost 'v'" in report.problems[1]
    assert all("Kq8" not in p for p in report.problems + report.notes)
    full = {**environ, "TF_PW_MISSING": "a-b-c-d", "TF_URI_MISSING": "amqp://u:p@h"}
    report = Preflight(FakeClient(perms=[perm()], nodes=ALL_PLUGINS), SETTINGS).check_plan(plan, environ=full)
    assert report.problems == []


def test_a_tags_update_does_not_read_the_password():
    w = user("app", "TF_PW_MISSING")
    change = Change(Action.UPDATE, "user", "", "app", before=user("app"), after=w, diff=("tags",))
    report = Preflight(FakeClient(perms=[perm()]), SETTINGS).check_plan(Plan(changes=(change,)), environ={})
    assert report.problems == []
    change = Change(Action.UPDATE, "user", "", "app", before=user("app"), after=w, diff=("password",))
    report = Preflight(FakeClient(perms=[perm()]), SETTINGS).check_plan(Plan(changes=(change,)), environ={})
    assert len(report.problems) == 1 and "TF_PW_MISSING" in report.problems[0]


def test_apply_planfile_with_a_missing_secret_stops_before_any_change(tmp_path, monkeypatch):
    """The CLI: one line per missing secret, exit 1, nothing executed."""
    from helpers import run_cli

    from topoform.apply import executor as executor_mod
    from topoform.apply import lock as lock_mod
    from topoform.broker import http as http_mod
    from topoform.broker import live as live_mod
    from topoform.broker.live import LiveState
    from topoform.model import Topology, Vhost

    import test_apply_cli as T

    monkeypatch.setattr(http_mod, "ManagementClient", T.FakeClient)
    monkeypatch.setattr(lock_mod, "BrokerLock", T.FakeLock)
    live = Topology.build([Vhost(T.V)])
    monkeypatch.setattr(live_mod, "read_live", lambda client, vhosts, **_kw: LiveState(
        topology=live, fingerprint=live_mod.topology_fingerprint(live)))
    executed = []
    monkeypatch.setattr(executor_mod, "apply_plan", lambda plan, ctx, progress=None: executed.append(plan))
    saved = Plan(changes=(create(user("app", "TF_PW_GONE")),), vhosts=(T.V,),
                 fingerprint=live_mod.topology_fingerprint(live))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(saved.to_dict()))
    r = run_cli(["apply", "--auto-approve", str(path)], environ=T.ENV, secrets=("hunter22-secret",))
    assert r.code == 1 and executed == [], r
    assert "TF_PW_GONE" in r.err and "before changing anything" in r.err and "Traceback" not in r.err
