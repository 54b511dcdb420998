"""apply's preflight, offline (broker faked): tags, permission patterns and plugins, every problem at once
(issue 11, items 5 and 6); and the broker's error text as the user should read it."""
from __future__ import annotations

import pytest
from helpers import run_cli

from topoform.apply import lock as lock_mod
from topoform.apply import executor as executor_mod
from topoform.apply.preflight import Preflight, pattern_allows, vhost_visibility
from topoform.broker import http as http_mod
from topoform.broker import live as live_mod
from topoform.broker.live import LiveState
from topoform.broker.settings import BrokerSettings
from topoform.errors import BrokerError
from topoform.load import load_text
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost
from topoform.planner.plan import Action, Change, Plan

SETTINGS = BrokerSettings(url="amqp://u:pw-secret-1@localhost:5672/")
FED_TYPES = [{"name": n} for n in ("direct", "fanout", "headers", "topic", "x-federation-upstream")]


class FakeClient:
    """Answers the preflight's reads; ``denied`` paths answer 401 as for a non-monitoring user."""

    def __init__(self, tags=("administrator",), perms=None, exchange_types=FED_TYPES, nodes=None):
        self.tags, self.perms, self.exchange_types, self.nodes = list(tags), perms, exchange_types, nodes
        self.calls: list[str] = []

    def get(self, path, params=None):
        self.calls.append(path)
        if path == "/api/whoami":
            return {"name": "u", "tags": self.tags}
        if path.endswith("/permissions"):
            if "administrator" not in self.tags:
                raise BrokerError("user 'u' is not an administrator", code="broker-permission")
            return self.perms or []
        if path == "/api/overview":
            return {"rabbitmq_version": "4.3.6", "exchange_types": self.exchange_types}
        if path == "/api/nodes":
            if self.nodes is None:
                raise BrokerError("Not monitor user", code="broker-permission")
            return [{"name": "n1", "enabled_plugins": self.nodes}]
        raise AssertionError(path)


def perm(vhost="v", configure=".*", write=".*", read=".*"):
    return {"vhost": vhost, "configure": configure, "write": write, "read": read}


def plan_of(*changes):
    return Plan(changes=tuple(changes))


def create(obj):
    return Change(Action.CREATE, obj.kind, obj.vhost, obj.display_name, after=obj)


def test_pattern_semantics_match_rabbitmq():
    assert pattern_allows(".*", "anything") and pattern_allows("^app\\.", "app.q")
    assert pattern_allows("app", "my.app.q")  # unanchored, as the broker runs it
    assert not pattern_allows("", "q")  # "" grants nothing
    assert not pattern_allows("^app\\.", "other")


def test_every_missing_permission_is_listed_at_once_with_the_pattern():
    client = FakeClient(perms=[perm(configure="^app\\.", write="^app\\.", read="^nothing$")])
    plan = plan_of(create(Exchange("v", "secret.x", "topic")), create(Queue("v", "secret.q", durable=True)),
                   create(Exchange("v", "app.x", "topic")),
                   create(Binding("v", "app.x", "other.q", routing_key="k")))
    report = Preflight(client, SETTINGS).check_plan(plan)
    text = "\n".join(report.problems)
    assert "no configure permission for exchange 'secret.x', queue 'secret.q'" in text
    assert "no write permission for queue 'other.q'" in text
    assert "no read permission for exchange 'app.x'" in text and "'^nothing$'" in text
    assert len(report.problems) == 3


def test_a_dead_letter_exchange_needs_write_on_it_and_read_on_the_queue():
    client = FakeClient(perms=[perm(write="^q$", read="^$")])
    q = Queue("v", "q", durable=True, arguments=Args({"x-dead-letter-exchange": "dlx"}))
    problems = Preflight(client, SETTINGS).check_plan(plan_of(create(q))).problems
    assert any("write permission for exchange 'dlx' (dead-letter exchange of queue 'q')" in p for p in problems)
    assert any("read permission for queue 'q'" in p for p in problems)


def test_objects_in_a_vhost_the_plan_creates_need_no_pattern_check():
    client = FakeClient(perms=[])
    plan = plan_of(create(Vhost("new")), create(Queue("new", "q", durable=True)))
    assert Preflight(client, SETTINGS).check_plan(plan).problems == []


def test_missing_tags_are_named_with_the_changes_that_need_them():
    client = FakeClient(tags=["management"])
    plan = plan_of(create(Vhost("new")), create(Policy("v", "ttl", "^a", definition=Args({"message-ttl": 1}))),
                   create(Policy("v", "cap", "^b", definition=Args({"max-length": 1}))))
    pf = Preflight(client, SETTINGS, probe=lambda s, v: "vhost-not-found")
    report = pf.check_plan(plan)
    text = "\n".join(report.problems)
    assert "create vhost 'new': needs the 'administrator' tag; user 'u' has tags: management" in text
    assert "create policy 'ttl' in vhost 'v', create policy 'cap' in vhost 'v': needs the 'policymaker' or " \
           "'administrator' tag" in text
    assert any("permission patterns not checked" in n for n in report.notes)  # a non-admin cannot read them


def test_a_policymaker_may_change_policies_but_not_vhosts():
    client = FakeClient(tags=["policymaker"])
    plan = plan_of(create(Policy("v", "ttl", "^a", definition=Args({"message-ttl": 1}))))
    assert Preflight(client, SETTINGS).check_plan(plan).problems == []


def test_a_vhost_the_user_cannot_see_is_not_reported_as_new():
    client = FakeClient(tags=["management"])
    pf = Preflight(client, SETTINGS, probe=lambda s, v: "access-refused")
    problems = pf.check_plan(plan_of(create(Vhost("hidden")))).problems
    assert any("vhost 'hidden' exists, but user 'u' has no permission on it" in p for p in problems)
    assert vhost_visibility(client, SETTINGS, ["hidden"], probe=lambda s, v: "access-refused") == \
        {"hidden": "access-refused"}
    # an administrator sees every vhost: a missing one is missing, without a probe
    assert vhost_visibility(FakeClient(), SETTINGS, ["gone"], probe=None) == {"gone": "vhost-not-found"}


def test_check_access_names_existing_vhosts_without_permission_and_the_lock_queue():
    client = FakeClient(perms=[perm("locked", configure="^app\\.")])
    report = Preflight(client, SETTINGS).check_access(["locked", "none", "new"], existing={"locked", "none"})
    text = "\n".join(report.problems)
    assert "no permission on vhost 'none' (it exists)" in text
    assert "vhost 'locked': user 'u' has no configure permission for queue 'topoform.lock'" in text
    assert "'new'" not in text  # not on the broker: the plan creates it


# ---------------------------------------------------------------- plugins (item 5)
FED = Policy("v", "fed", "^x", apply_to="exchanges", definition=Args({"federation-upstream-set": "all"}))


def test_a_policy_key_of_a_disabled_plugin_stops_apply_naming_the_plugin():
    client = FakeClient(perms=[perm()], exchange_types=[{"name": "direct"}])  # no federation; nodes unreadable
    problems = Preflight(client, SETTINGS).check_plan(plan_of(create(FED))).problems
    assert problems == ["policy 'fed' in vhost 'v' (key 'federation-upstream-set') needs the rabbitmq_federation "
                        "plugin, which is not enabled on the broker (rabbitmq-plugins enable rabbitmq_federation)"]


@pytest.mark.parametrize("client", [FakeClient(perms=[perm()]),  # inferred from exchange_types
                                    FakeClient(perms=[perm()], exchange_types=[], nodes=["rabbitmq_federation"])])
def test_an_enabled_plugin_passes(client):
    assert Preflight(client, SETTINGS).check_plan(plan_of(create(FED))).problems == []


def test_a_plugin_exchange_type_the_broker_lacks_is_a_problem():
    client = FakeClient(perms=[perm()])
    problems = Preflight(client, SETTINGS).check_plan(plan_of(create(Exchange("v", "d", "x-delayed-message")))).problems
    assert problems == ["exchange 'd' in vhost 'v' (type 'x-delayed-message'): the broker has no exchange type "
                        "'x-delayed-message': enable the rabbitmq_delayed_message_exchange plugin "
                        "(rabbitmq-plugins enable rabbitmq_delayed_message_exchange)"]


def test_no_plugin_read_without_plugin_features():
    client = FakeClient(perms=[perm()])
    Preflight(client, SETTINGS).check_plan(plan_of(create(Queue("v", "q", durable=True))))
    assert "/api/overview" not in client.calls and "/api/nodes" not in client.calls


def test_validate_names_the_plugin_a_policy_key_needs():
    result = load_text("vhosts:\n  v:\n    policies:\n      fed:\n        pattern: ^x\n"
                       "        definition: {federation-upstream-set: all}\n", "t.yaml")
    assert not result.errors
    found = [f for f in result.findings if f.code == "plugin-policy-key"]
    assert len(found) == 1 and "rabbitmq_federation" in found[0].message and found[0].severity == "warning"


# ---------------------------------------------------------------- the broker's words (items 5, 6)
class _Response:
    def __init__(self, status, body):
        self.status_code, self._body, self.text = status, body, str(body)

    def json(self):
        return self._body


def _error(status, reason, path="/api/policies/v/fed", method="PUT"):
    client = http_mod.ManagementClient(SETTINGS)
    return client._status_error(method, path, _Response(status, {"error": "x", "reason": reason}))


def test_broker_messages_are_shown_unescaped():
    exc = _error(400, "Validation failed\n\n[{&lt;&lt;\"federation-upstream-set\"&gt;&gt;,&lt;&lt;\"all\"&gt;&gt;}] "
                      "are not recognised policy settings\n")
    assert '[{<<"federation-upstream-set">>,<<"all">>}] are not recognised' in exc.message
    assert "&lt;" not in exc.message


def test_a_missing_policymaker_tag_is_not_called_wrong_credentials():
    exc = _error(401, "User not authorised to access object")
    assert exc.code == "broker-permission" and "'policymaker'" in exc.message and "credentials" not in exc.message
    exc = _error(401, "User not authorised to access virtual host", path="/api/queues/v", method="GET")
    assert exc.code == "broker-permission" and "no permission on the vhost" in exc.message


# ---------------------------------------------------------------- through the CLI
@pytest.fixture
def management_user(monkeypatch, tmp_path):
    executed = []

    class Client(FakeClient):
        def __init__(self, settings):
            super().__init__(tags=["management"])

        def vhost_names(self):
            return ["v"]

        def close(self):
            pass

    class Lock:
        def __init__(self, *a, **kw):
            pass

        def acquire(self, vhosts, timeout=None):
            pass

        def release(self):
            pass

    live = Topology.build([Vhost("v")])
    monkeypatch.setattr(http_mod, "ManagementClient", Client)
    monkeypatch.setattr(lock_mod, "BrokerLock", Lock)
    monkeypatch.setattr(live_mod, "read_live", lambda client, vhosts, **_kw: LiveState(
        topology=live, fingerprint=live_mod.topology_fingerprint(live)))
    monkeypatch.setattr(executor_mod, "apply_plan", lambda plan, ctx, progress=None: executed.append(plan))
    files = tmp_path / "t.yaml"
    files.write_text("vhosts:\n  v:\n    policies:\n      ttl: {pattern: ^a, definition: {message-ttl: 1}}\n"
                     "      cap: {pattern: ^b, definition: {max-length: 1}}\n")
    return files, executed


def test_apply_stops_before_any_change_listing_what_is_missing(management_user):
    files, executed = management_user
    r = run_cli(["apply", "--auto-approve", "-f", files], environ={"TOPOFORM_URL": SETTINGS.url, "CI": "1"},
                secrets=("pw-secret-1",))
    assert r.code == 1, r
    assert executed == []
    assert "missing: create policy 'cap' in vhost 'v', create policy 'ttl' in vhost 'v': needs the 'policymaker' " \
           "or 'administrator' tag; user 'u' has tags: management" in r.err
    assert "apply stopped before changing anything: 1 thing missing" in r.err
    assert "refused the credentials" not in r.err
