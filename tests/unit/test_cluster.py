"""Quorum queue health, member changes, leader placement and apply refusals (topoform/cluster.py),
on API answers shaped as 3.10.8, 4.0.5 and 4.3.6 return them (see the module docstring)."""
from __future__ import annotations

import io

import pytest

from topoform import cluster as C
from topoform.broker import cluster_read as R
from topoform.broker.settings import BrokerSettings
from topoform.cli.env import Environment
from topoform.model import Args, Queue, Topology
from topoform.planner.plan import Action, Change, Plan, Step

N1, N2, N3 = "rabbitc1@localhost", "rabbitc2@localhost", "rabbitc3@localhost"


def node(name, running=True, mem=False, disk=False):
    return {"name": name, "running": running, "mem_alarm": mem, "disk_free_alarm": disk, "type": "disc"}


def qitem(name, members, online=None, leader=None, *, vhost="/", version="4.3", args=None):
    """A GET /api/queues/VHOST item of a quorum queue: 3.10 has ``node`` null, 4.x sets it."""
    online = members if online is None else online
    leader = leader if leader is not None else (members[0] if members else None)
    return {"name": name, "vhost": vhost, "type": "quorum", "members": list(members), "online": list(online),
            "leader": leader, "node": None if version == "3.10" else leader,
            "arguments": {"x-queue-type": "quorum", **(args or {})}}


def health(nodes, queues, version=(4, 3, 6), critical=None):
    return C.ClusterHealth(nodes=C.parse_nodes(nodes), queues=C.parse_queues(queues), version=version,
                           critical=critical)


def qq(name, vhost="/", **args):
    return Queue(vhost=vhost, name=name, durable=True, arguments=Args({"x-queue-type": "quorum", **args}))


THREE = [node(N1), node(N2), node(N3)]


# ----------------------------------------------------------------------------- parsing
def test_parse_nodes_reads_running_and_alarms_and_skips_junk():
    nodes = C.parse_nodes([node(N2, running=False), node(N1, mem=True), {"no": "name"}, "junk"])
    assert [n.name for n in nodes] == [N1, N2]
    assert nodes[0].alarms == ("memory",) and not nodes[1].running and nodes[1].alarms == ()
    assert C.parse_nodes({"error": "x"}) == ()


@pytest.mark.parametrize("version", ["3.10", "4.0", "4.3"])
def test_parse_queues_takes_the_leader_from_each_versions_fields(version):
    item = qitem("orders", [N2, N1, N3], online=[N1, N2], leader=N2, version=version,
                 args={"x-quorum-initial-group-size": 5})
    classic = {"name": "c", "vhost": "/", "type": "classic", "node": N1, "arguments": {}}
    got = C.parse_queues([item, classic])
    assert list(got) == [("/", "orders")]
    q = got[("/", "orders")]
    assert q.members == (N1, N2, N3) and q.offline == (N3,) and q.leader == N2 and q.group_size == 5


def test_parse_queues_falls_back_to_node_when_leader_is_missing():
    item = qitem("a", [N1, N2], leader=N2)
    del item["leader"]
    assert C.parse_queues([item])[("/", "a")].leader == N2


def test_quorum_critical_answers():
    assert C.parse_quorum_critical(200, {"status": "ok", "reason": "single node cluster"}) == ()
    body = {"status": "failed", "reason": "...", "queues": [
        {"name": "orders", "readable_name": "queue 'orders' in vhost '/'", "virtual_host": "/", "type": "quorum"},
        {"name": "rabbitmq_metadata", "virtual_host": "(not applicable)", "type": "khepri"}]}
    assert C.parse_quorum_critical(503, body) == (("(not applicable)", "rabbitmq_metadata"), ("/", "orders"))


# ----------------------------------------------------------------------------- members
@pytest.mark.parametrize("group, nodes, expected", [(None, 3, 3), (None, 1, 1), (5, 3, 3), (2, 3, 2), (None, 5, 3)])
def test_desired_size_is_the_argument_or_three_capped_by_the_cluster(group, nodes, expected):
    assert C.desired_size(group, nodes) == expected


def test_a_missing_member_becomes_an_add_member_update_on_4x():
    h = health(THREE, [qitem("orders", [N1, N3]), qitem("full", [N1, N2, N3])])
    live = {("/", "orders"): qq("orders"), ("/", "full"): qq("full")}
    changes = C.member_changes(h, live)
    assert [(c.action, c.kind, c.name) for c in changes] == [(Action.UPDATE, "queue", "orders")]
    assert changes[0].steps == (Step("add_member", {"node": N2}),)
    assert "2 of 3 members" in changes[0].reason and N2 in changes[0].reason
    assert changes[0].before == changes[0].after == live[("/", "orders")]


def test_members_go_to_the_least_loaded_running_nodes_only():
    four = THREE + [node("rabbitc4@localhost", running=False)]
    h = health(four, [qitem("a", [N1]), qitem("b", [N1, N2]), qitem("c", [N2])])
    live = {("/", k): qq(k) for k in "abc"}
    by_name = {c.name: [s.params["node"] for s in c.steps] for c in C.member_changes(h, live)}
    assert by_name["a"] == [N3, N2]  # N3 holds nothing, N2 two; the stopped node is never chosen
    assert by_name["c"] == [N3, N1]


def test_unmanaged_queues_and_other_vhosts_get_no_member_change():
    h = health(THREE, [qitem("a", [N1]), qitem("b", [N1], vhost="other")])
    assert C.member_changes(h, {}) == []
    assert [c.name for c in C.member_changes(h, {("/", "a"): qq("a"), ("other", "b"): qq("b", "other")},
                                             vhosts=["/"])] == ["a"]


def test_on_310_no_change_but_a_note_with_the_command():
    h = health(THREE, [qitem("my queue", [N1, N3], version="3.10")], version=(3, 10, 8))
    assert C.member_changes(h, {("/", "my queue"): qq("my queue")}) == []
    notes = C.health_notes(h)
    assert any("rabbitmq-queues add_member -p / 'my queue' " + N2 in n for n in notes), notes


def test_offline_members_are_noted_not_changed():
    h = health([node(N1), node(N2, running=False), node(N3)], [qitem("a", [N1, N2, N3], online=[N1, N3])])
    assert C.member_changes(h, {("/", "a"): qq("a")}) == []
    notes = C.health_notes(h)
    assert f"cluster: node down: {N2}" in notes
    assert any("1 of 3 members offline" in n and N2 in n for n in notes)


def test_group_size_larger_than_the_cluster_is_a_warning():
    queues = [qq("big", **{"x-quorum-initial-group-size": 5}), qq("ok", **{"x-quorum-initial-group-size": 3}),
              Queue(vhost="/", name="classic", durable=True)]
    warnings = C.group_size_warnings(queues, 3)
    assert len(warnings) == 1 and "big" in warnings[0] and "5" in warnings[0] and "3 nodes" in warnings[0]
    assert C.group_size_warnings(queues, 5) == []


# ----------------------------------------------------------------------------- leaders
def test_leaders_concentrated_on_one_node_are_reported():
    h = health(THREE, [qitem(n, [N1, N2, N3], leader=N1) for n in "abc"] + [qitem("d", [N1, N2, N3], leader=N2)])
    assert C.leader_concentration(h) == (N1, 3, 4)
    assert any(f"{N1} leads 3 of 4" in n for n in C.health_notes(h))


def test_balanced_leaders_or_a_single_node_are_not_reported():
    spread = health(THREE, [qitem("a", [N1], leader=N1), qitem("b", [N2], leader=N2), qitem("c", [N3], leader=N3),
                            qitem("d", [N1], leader=N1)])
    assert C.leader_concentration(spread) is None  # 2 of 4 is not more than half
    single = health([node(N1)], [qitem("a", [N1]), qitem("b", [N1])])
    assert C.leader_concentration(single) is None


def test_quorum_critical_nodes_are_named():
    h = health(THREE, [], critical={N1: (("/", "orders"),), N2: ()})
    notes = C.health_notes(h)
    assert any(N1 in n and "quorum-critical" in n and "'orders' in vhost '/'" in n for n in notes)
    assert not any(N2 in n for n in notes)


# ----------------------------------------------------------------------------- refusals
def migrate(q):
    return Change(Action.MIGRATE, "queue", q.vhost, q.name, before=q, after=q, reason="r", steps=(Step("x"),))


def test_apply_is_refused_on_an_alarm():
    h = health([node(N1, disk=True), node(N2)], [])
    assert any("disk alarm" in r for r in C.apply_refusals(h, []))


def test_a_node_down_refuses_recreating_a_quorum_queue_that_lost_members():
    down = [node(N1), node(N2, running=False), node(N3)]
    h = health(down, [qitem("orders", [N1, N2, N3], online=[N1, N3]), qitem("fine", [N1, N3])])
    refusals = C.apply_refusals(h, [migrate(qq("orders"))])
    assert len(refusals) == 1 and "recreate" in refusals[0] and "orders" in refusals[0] and N2 in refusals[0]
    delete = Change(Action.DELETE, "queue", "/", "fine", before=qq("fine"))
    assert "delete" in C.apply_refusals(h, [delete])[0]  # 2 of 3 members
    create = Change(Action.CREATE, "queue", "/", "new", after=qq("new"))
    classic = Queue(vhost="/", name="c", durable=True)
    assert C.apply_refusals(h, [create, Change(Action.DELETE, "queue", "/", "c", before=classic)]) == []


def test_nothing_is_refused_while_every_node_runs():
    h = health(THREE, [qitem("orders", [N1, N3])])
    assert C.apply_refusals(h, [migrate(qq("orders"))]) == []


# ----------------------------------------------------------------------------- placement
LISTENERS = [{"node": N1, "protocol": "amqp", "port": 5681}, {"node": N2, "protocol": "amqp", "port": 5682},
             {"node": N3, "protocol": "amqp", "port": 5683}, {"node": N1, "protocol": "http", "port": 15681},
             {"node": N2, "protocol": "http", "port": 15682}, {"node": N1, "protocol": "clustering", "port": 25681}]


def test_node_endpoints_from_listeners_on_one_host():
    assert C.node_endpoints([N1, N2, N3], LISTENERS, "localhost", 5681) == {
        N1: ("localhost", 5681), N2: ("localhost", 5682), N3: ("localhost", 5683)}
    assert C.node_endpoints([N1, N3], LISTENERS, "h", 5683) == {N1: ("h", 5681), N3: ("h", 5683)}
    same_port = [{"node": n, "protocol": "amqp", "port": 5672} for n in (N1, N2)]
    assert C.node_endpoints([N1, N2], same_port, "lb", 5672) == {}  # one port on several hosts: unknown
    assert C.node_endpoints([N1, N2, N3], LISTENERS, "localhost", 5999) == {}  # --url is none of them


def test_amqp_endpoints_keep_the_given_url_first_and_its_credentials():
    s = BrokerSettings(url="amqp://u:secret@localhost:5682/v")
    got = R.amqp_endpoints(s, {"listeners": LISTENERS}, [N1, N2, N3])
    assert got[0] == (s, N2)
    assert [(x.url, n) for x, n in got[1:]] == [("amqp://u:secret@localhost:5681/v", N1),
                                                 ("amqp://u:secret@localhost:5683/v", N3)]
    assert R.amqp_endpoints(s, {"listeners": []}, [N1]) == [(s, None)]


def test_management_endpoints_per_node():
    s = BrokerSettings(url="amqp://u:pw@localhost:5681/", management_url="http://u:pw@localhost:15681")
    got = R.management_endpoints(s, {"listeners": LISTENERS}, [N1, N2])
    assert got[0] is s and [x.http_base_clean for x in got[1:]] == ["http://localhost:15682"]
    assert got[1].http_credentials == ("u", "pw")


def test_assignment_balances_against_existing_leaders():
    keys = [("/", f"q{i}") for i in range(6)]
    got = C.assign_endpoints(keys, 3)
    assert [got[k] for k in keys] == [0, 1, 2, 0, 1, 2]
    got = C.assign_endpoints(keys[:3], 3, leaders=[4, 0, 1])
    assert [got[k] for k in keys[:3]] == [1, 1, 2]
    assert set(C.assign_endpoints(keys, 1).values()) == {0}


def test_split_keeps_phases_in_order():
    from topoform.model import Binding, Exchange
    from topoform.planner.plan import order_changes

    x = Exchange(vhost="/", name="x", type="direct", durable=True)
    queues = [qq(f"q{i}") for i in range(3)]
    classic = Queue(vhost="/", name="c", durable=True)
    binds = [Binding(vhost="/", source="x", destination=q.name, destination_type="queue", routing_key="k")
             for q in queues]
    changes = order_changes([Change(Action.CREATE, "exchange", "/", "x", after=x)]
                            + [Change(Action.CREATE, "queue", "/", q.name, after=q) for q in queues + [classic]]
                            + [Change(Action.CREATE, "binding", "/", b.name, after=b) for b in binds])
    assignment = C.assign_endpoints([("/", q.name) for q in queues], 3)
    segments = C.split_for_placement(changes, assignment)
    assert [i for i, _ in segments] == [0, 1, 2, 0]
    assert [c.name for c in segments[0][1]] == ["x", "c", "q0"]
    assert [c.name for c in segments[1][1]] == ["q1"] and [c.name for c in segments[2][1]] == ["q2"]
    assert all(c.kind == "binding" for c in segments[3][1]) and len(segments[3][1]) == 3
    assert sum(len(s) for _, s in segments) == len(changes)
    assert C.split_for_placement(changes, {}) == [(0, changes)]


# ----------------------------------------------------------------------------- CLI helpers
class FakeClient:
    """Answers GET like the cluster's management API (recorded shapes)."""

    def __init__(self, answers):
        self.answers = answers
        self.settings = BrokerSettings(url="amqp://guest:guest@localhost:5681/")
        self.base = "http://localhost:15681"

    def get(self, path, params=None):
        return self.answers[path]

    def request(self, method, path, body=None, expect=(), **kw):
        raise AssertionError("no request expected")


def _live(*queues):
    from topoform.broker.live import LiveState

    return LiveState(topology=Topology.build(list(queues)))


def test_plan_helper_adds_member_changes_and_prints_the_notes():
    from topoform.cli.plan import cluster_health

    answers = {"/api/overview": {"rabbitmq_version": "4.3.6", "listeners": []}, "/api/nodes": THREE,
               "/api/queues/%2F": [qitem("orders", [N1, N3], leader=N1), qitem("b", [N1, N2, N3], leader=N1)]}
    desired = Topology.build([qq("orders"), qq("b"), qq("big", **{"x-quorum-initial-group-size": 7})])
    err = io.StringIO()
    env = Environment(stderr=err)
    plan, h = cluster_health(Plan(vhosts=("/",)), FakeClient(answers), desired, _live(qq("orders"), qq("b")), env,
                             critical=False)
    assert [(c.action.value, c.name) for c in plan.changes] == [("update", "orders")]
    assert plan.summary["update"] == 1 and h is not None and len(h.nodes) == 3
    text = err.getvalue()
    assert "x-quorum-initial-group-size 7" in text and f"{N1} leads 2 of 2" in text


def test_the_replicas_are_read_from_the_queue_records_not_the_statistics():
    """The members as the statistics database has them lag: after ``delete_member`` on the
    4.3.6 cluster its listing said 2 members, then 3 again for about 5 s (a member's last
    emission), then 2; an apply in that window found nothing to repair. ``disable_stats``
    reads the queue records, which never went back."""
    from topoform.broker.cluster_read import read_health

    asked = []

    class Recording(FakeClient):
        def get(self, path, params=None):
            asked.append((path, dict(params or {})))
            return super().get(path, params)

    answers = {"/api/overview": {"rabbitmq_version": "4.3.6", "listeners": []}, "/api/nodes": THREE,
               "/api/queues/%2F": [qitem("orders", [N1, N3], leader=N1)]}
    h = read_health(Recording(answers), ["/"], critical=False)
    assert h is not None and h.queues[("/", "orders")].members == (N1, N3)
    [(_path, params)] = [a for a in asked if a[0].startswith("/api/queues/")]
    assert params.get("disable_stats") == "true" and "members" in params["columns"].split(",")


def test_apply_refusal_and_force():
    import argparse

    from topoform.cli.apply import _refuse_on_cluster
    from topoform.errors import TopoformError

    h = health([node(N1), node(N2, running=False), node(N3)], [qitem("orders", [N1, N2, N3], online=[N1, N3])])
    plan = Plan(changes=(migrate(qq("orders")),))
    with pytest.raises(TopoformError) as info:
        _refuse_on_cluster(h, plan, argparse.Namespace(force=False))
    assert info.value.code == "cluster-unsafe" and "--force" in info.value.hint and "orders" in info.value.message
    _refuse_on_cluster(h, plan, argparse.Namespace(force=True))  # overrides
    _refuse_on_cluster(None, plan, argparse.Namespace(force=False))  # nodes unreadable: nothing to refuse on


def test_a_saved_plans_member_change_round_trips():
    change = C.member_changes(health(THREE, [qitem("orders", [N1])]), {("/", "orders"): qq("orders")})[0]
    back = Change.from_dict(change.to_dict())
    assert back.steps == change.steps and back.action is Action.UPDATE and back.after == change.after


def test_a_member_on_a_stopped_node_is_offline_even_when_the_listing_lags():
    down = [node(N1), node(N2), node(N3, running=False)]
    h = health(down, [qitem("orders", [N1, N2, N3])])  # statistics still say all three are online
    assert h.offline(h.queues[("/", "orders")]) == (N3,)
    assert len(C.apply_refusals(h, [migrate(qq("orders"))])) == 1


class _Whoami:
    def __init__(self, tags):
        self.tags = tags

    def get(self, path, params=None):
        if path == "/api/whoami":
            return {"name": "u", "tags": self.tags}
        if path.endswith("/permissions"):
            return [{"vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
        if path == "/api/overview":
            return {"rabbitmq_version": "4.3.6", "exchange_types": []}
        raise AssertionError(path)


@pytest.mark.parametrize("tags, refused", [(["management", "policymaker"], True), (["administrator"], False)])
def test_adding_members_needs_the_administrator_tag(tags, refused):
    from topoform.apply.preflight import Preflight

    change = C.member_changes(health(THREE, [qitem("orders", [N1])]), {("/", "orders"): qq("orders")})[0]
    problems = Preflight(_Whoami(tags), BrokerSettings()).check_plan(Plan(changes=(change,))).problems
    hits = [p for p in problems if "add members to quorum queue 'orders'" in p and "'administrator' tag" in p]
    assert bool(hits) is refused, problems


def test_the_add_member_handler_posts_each_node_and_names_the_command_where_there_is_no_route():
    from topoform.errors import BrokerError

    change = C.member_changes(health(THREE, [qitem("a b", [N1])]), {("/", "a b"): qq("a b")})[0]
    sent = []

    class Client:
        def request(self, method, path, body=None, expect=(), accept=None, **kw):
            sent.append((method, path, body, accept))
            if self.fail:
                raise BrokerError(f"{path} answered 405: Method Not Allowed", code="broker-http")

    class Ctx:
        client = Client()

    Ctx.client.fail = False
    R.add_members(change, Ctx)
    assert [(m, p, b["node"]) for m, p, b, _a in sent] == [
        ("POST", "/api/queues/quorum/%2F/a%20b/replicas/add", n) for n in (N2, N3)]
    assert all(a == "*/*" for *_x, a in sent)  # the endpoint answers 406 to accept: application/json
    Ctx.client.fail = True
    with pytest.raises(BrokerError) as info:
        R.add_members(change, Ctx)
    assert "rabbitmq-queues add_member" in info.value.message


def test_apply_runs_each_nodes_quorum_creates_through_that_node_and_merges_the_results():
    from topoform.apply.executor import ApplyContext, ApplyResult
    from topoform.cli.apply import _apply_placed
    from topoform.model import Binding
    from topoform.planner.plan import order_changes

    queues = [qq(f"q{i}") for i in range(4)]
    changes = order_changes([Change(Action.CREATE, "queue", "/", q.name, after=q) for q in queues]
                            + [Change(Action.CREATE, "binding", "/", "b", after=Binding(
                                vhost="/", source="amq.direct", destination="q0", routing_key="k"))])
    client = FakeClient({"/api/overview": {"listeners": LISTENERS + [
        {"node": N3, "protocol": "amqp", "port": 5683}]}})
    ctx = ApplyContext(settings=BrokerSettings(url="amqp://guest:guest@localhost:5681/"), client=client)
    h = health(THREE, [qitem("old", [N1, N2, N3], leader=N2)])  # N2 leads one already
    runs = []

    def fake_apply(plan, run_ctx):
        runs.append((run_ctx.settings.amqp_port, [c.name for c in plan.changes]))
        result = ApplyResult(done=list(plan.changes))
        if run_ctx.settings.amqp_port == 5683:
            result.failed.append(object())  # stops the run: what follows is not attempted
        return result

    result = _apply_placed(Plan(changes=changes), ctx, h, fake_apply)
    assert runs == [(5681, ["q0", "q2"]), (5682, ["q3"]), (5683, ["q1"])]  # N2 leads one already
    assert [c.name for c in result.not_attempted] == ["b"] and len(result.done) == 4
    runs.clear()
    single = health([node(N1)], [])
    _apply_placed(Plan(changes=changes), ctx, single, fake_apply)
    assert runs == [(5681, ["q0", "q1", "q2", "q3", "b"])]


def test_a_classic_queue_migrating_to_quorum_is_not_refused_while_a_node_is_down():
    down = [node(N1), node(N2, running=False), node(N3)]
    classic = Queue(vhost="/", name="orders", durable=True)
    h = health(down, [qitem("orders", [N1, N2, N3], online=[N1, N3])])  # a half-done move's new quorum queue
    change = Change(Action.MIGRATE, "queue", "/", "orders", before=classic, after=qq("orders"), reason="r")
    assert C.apply_refusals(h, [change]) == []
