"""``apply PLANFILE`` and Ctrl-C during apply, through the CLI in-process (broker faked).

* A saved plan is applied without a prompt (the plan was the review), even with stdin not
  a terminal and without --auto-approve; a stale one is still refused.
* Flags that would change a saved plan are refused with one line naming them; nothing runs.
* A file that is not a plan says so (a topology file, a definitions export, not JSON); a plan
  file changed after it was saved (its digest), or malformed, is refused in one line.
* A plan made for another broker (cluster name, else management URL) or version is refused; a
  plan made from a --state export gets a note.
* KeyboardInterrupt during the run: exit 130, what was done and what was not, and how the
  next apply finishes it; the lock is released.
"""
from __future__ import annotations

import json

import pytest
from helpers import run_cli

from topoform.apply import executor as executor_mod
from topoform.apply import lock as lock_mod
from topoform.broker import http as http_mod
from topoform.broker import live as live_mod
from topoform.broker.live import LiveState
from topoform.model import Queue, Topology, Vhost
from topoform.planner.plan import Action, Change, Plan

V = "tf-saved"
ENV = {"TOPOFORM_URL": "amqp://u:hunter22-secret@localhost:5672/", "CI": "1"}


class FakeClient:
    def __init__(self, settings):
        pass

    def vhost_names(self):
        return [V]

    def overview(self):
        return {"rabbitmq_version": "4.0.5", "cluster_name": "rabbit@here"}

    def get(self, path, params=None):  # the preflight's reads: an administrator with full permissions
        if path == "/api/whoami":
            return {"name": "u", "tags": ["administrator"]}
        if path.endswith("/permissions"):
            return [{"vhost": V, "configure": ".*", "write": ".*", "read": ".*"}]
        raise AssertionError(f"unexpected GET {path}")

    def close(self):
        pass


class FakeLock:
    instances: list = []

    def __init__(self, settings, **kw):
        self.released = False
        FakeLock.instances.append(self)

    def acquire(self, vhosts, timeout=None):
        pass

    def release(self):
        self.released = True


@pytest.fixture
def broker(monkeypatch, tmp_path):
    """Vhost V holds ``state['live']``; ``state['run']`` decides what the executor does."""
    state = {"live": Topology.build([Vhost(V)]), "executed": [], "run": None}
    FakeLock.instances = []
    monkeypatch.setattr(http_mod, "ManagementClient", FakeClient)
    monkeypatch.setattr(lock_mod, "BrokerLock", FakeLock)

    def read_live(client, vhosts, **_kwargs):
        return LiveState(topology=state["live"], fingerprint=live_mod.topology_fingerprint(state["live"]))

    def apply_plan(plan, ctx, progress=None):
        state["executed"].append(plan)
        if state["run"]:
            return state["run"](plan, ctx)
        return executor_mod.ApplyResult(done=list(plan.changes), elapsed=0.25)

    monkeypatch.setattr(live_mod, "read_live", read_live)
    monkeypatch.setattr(executor_mod, "apply_plan", apply_plan)
    state["files"] = tmp_path / "topoform.yaml"
    state["files"].write_text(f"vhosts:\n  {V}:\n    queues:\n      orders: {{durable: true}}\n")
    return state


def _save(state, path, names=("orders",), **fields):
    changes = tuple(Change(Action.CREATE, "queue", V, n, after=Queue(V, n, durable=True)) for n in names)
    plan = Plan(changes=changes, vhosts=(V,), fingerprint=live_mod.topology_fingerprint(state["live"]), **fields)
    path.write_text(json.dumps(plan.to_dict()))
    return plan


def run(argv, **kw):
    return run_cli(argv, environ={**ENV, **kw.pop("environ", {})}, secrets=("hunter22-secret",), **kw)


def test_a_saved_plan_applies_without_a_prompt_and_a_stale_one_is_refused(broker, tmp_path):
    path = tmp_path / "plan.json"
    saved = _save(broker, path)
    r = run(["apply", path])  # no --auto-approve, stdin not a terminal: no question asked
    assert r.code == 0, r
    assert "Do you want" not in r.out and "Apply complete: 1 created" in r.out
    assert broker["executed"][0].changes == saved.changes
    r = run(["apply", path], stdin_isatty=True, stdin="")  # on a terminal too: the plan was the review
    assert r.code == 0 and "Do you want" not in r.out, r
    broker["live"] = Topology.build([Vhost(V), Queue(V, "other")])  # someone changed the broker
    r = run(["apply", path])
    assert r.code == 1 and "stale" in r.err and len(broker["executed"]) == 2


def test_without_a_plan_file_apply_still_asks(broker):
    r = run(["apply", "-f", broker["files"]])
    assert r.code == 1 and "--auto-approve" in r.err and broker["executed"] == []


@pytest.mark.parametrize("extra, named", [
    (["--prune"], "--prune"),
    (["--migrate"], "--migrate"),
    (["-f", "topoform.yaml"], "-f/--file"),
    (["--file", "topoform.yaml"], "-f/--file"),
    (["--var", "ttl=5"], "--var"),
    (["--var-file", "vars.yaml"], "--var-file"),
    (["--prune-users"], "--prune-users"),
    (["--vhost", V], "--vhost"),
    (["--target", "queue:orders"], "--target"),
    (["--allow-data-loss"], "--allow-data-loss"),  # would drop the if-empty guard of the plan's queue deletes
    (["--force"], "--force"),  # would drop the if-unused guard and the cluster's refusals
])
def test_flags_that_would_change_a_saved_plan_are_refused(broker, tmp_path, extra, named):
    path = tmp_path / "plan.json"
    _save(broker, path)
    r = run(["apply", path, "--auto-approve", *extra], cwd=tmp_path)
    assert r.code == 1, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in r.err, r
    assert broker["executed"] == []


def test_several_refused_flags_are_named_together(broker, tmp_path):
    path = tmp_path / "plan.json"
    _save(broker, path)
    r = run(["apply", path, "--prune", "--migrate", "--var", "a=1"])
    assert r.code == 1 and all(f in r.err for f in ("--prune", "--migrate", "--var")), r
    assert "nothing was applied" in r.err and broker["executed"] == []


def test_another_environment_is_refused_and_the_same_one_accepted(broker, tmp_path):
    path = tmp_path / "plan.json"
    _save(broker, path, env="prod")
    r = run(["apply", path, "--env", "dev"])
    assert r.code == 1 and "made for environment 'prod', not 'dev'" in r.err and broker["executed"] == []
    assert run(["apply", path, "--env", "prod"]).code == 0


@pytest.mark.parametrize("name, content, says", [
    ("topoform.yaml", "vhosts:\n  v: {}\n", "it looks like a topology file"),
    ("notes.txt", "hello\n", "it is not JSON"),
    ("export.json", '{"queues": [], "exchanges": []}', "definitions export"),
    ("other.json", '{"changes": "no"}', "not a plan file"),
    ("list.json", "[1, 2]", "not a plan file"),
])
def test_a_file_that_is_not_a_plan_says_so(broker, tmp_path, name, content, says):
    (tmp_path / name).write_text(content)
    r = run(["apply", name], cwd=tmp_path)
    assert r.code == 1 and says in r.err and "not a plan file saved by 'topoform plan --out'" in r.err, r
    assert len(r.err.strip().splitlines()) == 1 and broker["executed"] == []
    if name.endswith(".yaml"):  # the error's hint is printed with it, on the same line
        assert "(hint: apply topology files with 'topoform apply -f FILE'" in r.err, r


def test_ctrl_c_stops_cleanly_and_says_what_was_done(broker, tmp_path):
    def interrupted(plan, ctx):
        ctx.progress.start(len(plan.changes))
        ctx.progress.done(plan.changes[0])
        ctx.progress.done(plan.changes[1])
        raise KeyboardInterrupt

    broker["run"] = interrupted
    broker["files"].write_text(f"vhosts:\n  {V}:\n    queues:\n" + "".join(
        f"      q{i}: {{durable: true}}\n" for i in range(5)))
    r = run(["apply", "-f", broker["files"], "--auto-approve"])
    assert r.code == 130, r
    assert "Interrupted: 2 of 5 changes done, 3 not done" in r.err
    done = [line for line in r.err.splitlines() if line.strip().startswith("Done:")]
    not_done = [line for line in r.err.splitlines() if line.strip().startswith("Not done:")]
    assert len(done) == 2 and len(not_done) == 3
    assert "Run 'topoform apply' again to finish" in r.err
    assert FakeLock.instances and FakeLock.instances[-1].released
    assert "Traceback" not in r.err


def test_ctrl_c_with_a_saved_plan_says_to_plan_again(broker, tmp_path):
    def interrupted(plan, ctx):
        ctx.progress.start(len(plan.changes))
        raise KeyboardInterrupt

    broker["run"] = interrupted
    path = tmp_path / "plan.json"
    _save(broker, path, names=("a", "b"))
    r = run(["apply", path])
    assert r.code == 130 and "0 of 2 changes done, 2 not done" in r.err, r
    assert "plan --out FILE" in r.err and "stale" in r.err


def test_a_plan_made_with_allow_data_loss_and_force_keeps_them(broker, tmp_path):
    seen = []
    broker["run"] = lambda plan, ctx: seen.append(ctx.options) or executor_mod.ApplyResult(done=list(plan.changes))
    path = tmp_path / "plan.json"
    _save(broker, path, options={"prune": True, "allow_data_loss": True, "force": True})
    assert run(["apply", path]).code == 0
    assert seen[0].allow_data_loss and seen[0].force
    _save(broker, path, options={"prune": True})
    assert run(["apply", path]).code == 0
    assert not seen[1].allow_data_loss and not seen[1].force


def _tamper(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return data


def _outside(data):
    data["changes"][0]["vhost"] = data["changes"][0]["after"]["vhost"] = "someone-elses"


def _delete(data):
    c = data["changes"][0]
    c["action"], c["before"], c["after"] = "delete", c["after"], None
    data["summary"]["create"], data["summary"]["delete"] = 0, 1


def _rename(data):
    data["changes"][0]["name"] = data["changes"][0]["after"]["name"] = "renamed"


def _summary(data):
    data["summary"]["create"] = 7


def _no_after(data):
    data["changes"][0]["after"] = None


@pytest.mark.parametrize("edit", [_outside, _delete, _rename, _summary, _no_after, lambda d: d.pop("digest")])
def test_a_plan_file_changed_after_it_was_saved_is_refused(broker, tmp_path, edit):
    path = tmp_path / "plan.json"
    _save(broker, path)
    _tamper(path, edit)
    for argv in (["apply", path], ["show", path]):
        r = run(argv)
        assert r.code == 1 and r.out == "", r
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.err and "internal error" not in r.err, r
        assert f"the plan file {path} " in lines[0] and ("was changed after it was saved" in lines[0]
                                                         or "has no digest" in lines[0]), r
    assert broker["executed"] == []


@pytest.mark.parametrize("edit, says", [
    (_outside, "vhost 'someone-elses' is not one of the plan's vhosts"),
    (_summary, "summary: does not count the plan's changes"),
    (_delete, "changes[0]: a delete in a plan made without --prune"),
    (_no_after, "a create without 'after'"),
    (lambda d: d["changes"][0].update(action="explode"), "unknown action 'explode'"),
    (lambda d: d["changes"][0].update(kind="wormhole"), "unknown kind 'wormhole'"),
    (lambda d: d["changes"].append(3), "changes[1]: must be a JSON object"),
    (lambda d: d["changes"][0]["after"].update(colour="red"), "malformed: TypeError"),
    (lambda d: d.update(vhosts=V), "vhosts: must be a JSON array"),
])
def test_a_malformed_plan_is_one_line_even_with_a_matching_digest(broker, tmp_path, edit, says):
    from topoform.planner.plan import content_digest

    path = tmp_path / "plan.json"
    _save(broker, path)
    _tamper(path, lambda d: (edit(d), d.update(digest=content_digest(d))))  # forged: the digest fits
    r = run(["apply", path])
    assert r.code == 1 and says in r.err and len(r.err.strip().splitlines()) == 1, r
    assert "Traceback" not in r.err and "internal error" not in r.err and broker["executed"] == []


def test_a_plan_for_another_broker_or_version_is_refused(broker, tmp_path):
    path = tmp_path / "plan.json"
    made = {"management_url": "http://rabbit-a:15672", "cluster_name": "rabbit@there", "rabbitmq_version": "4.0.5"}
    _save(broker, path, broker=made)
    r = run(["apply", path])
    assert r.code == 1 and "was made for another broker: cluster rabbit@there at http://rabbit-a:15672" in r.err, r
    assert "(this is cluster rabbit@here" in r.err and broker["executed"] == []
    _save(broker, path, broker={**made, "cluster_name": "rabbit@here", "rabbitmq_version": "3.13.7"})
    r = run(["apply", path])
    assert r.code == 1 and "made for RabbitMQ 3.13.7, the broker runs 4.0.5 now" in r.err, r
    assert broker["executed"] == []
    _save(broker, path, broker={**made, "cluster_name": "rabbit@here"})  # another node or name of the same cluster
    r = run(["apply", path])
    assert r.code == 0 and "note:" not in r.err and len(broker["executed"]) == 1, r


def test_a_plan_made_from_a_state_file_says_so(broker, tmp_path):
    path = tmp_path / "plan.json"
    _save(broker, path, state_file="prod-definitions.json")
    r = run(["apply", path])
    assert r.code == 0, r
    assert "note: the plan in" in r.err and "offline from the definitions export prod-definitions.json" in r.err
    broker["live"] = Topology.build([Vhost(V), Queue(V, "other")])  # the broker is not what the export said
    r = run(["apply", path])
    assert r.code == 1 and "stale" in r.err and len(broker["executed"]) == 1


def test_plan_records_the_broker_without_credentials(monkeypatch):
    from topoform.broker.settings import BrokerSettings

    class Client:
        settings = BrokerSettings(url="amqp://u:hunter22-secret@rabbit-a:5672/")

        def overview(self):
            return {"rabbitmq_version": "4.3.6", "cluster_name": "rabbit@a", "management_version": "4.3.6"}

        def vhosts(self):
            return []

    reader = live_mod.LiveReader(Client())
    try:
        assert reader.identity() == {"management_url": "http://rabbit-a:15672", "cluster_name": "rabbit@a",
                                     "rabbitmq_version": "4.3.6"}
    finally:
        reader.close()
