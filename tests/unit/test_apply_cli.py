"""``topoform apply`` CLI, offline: confirmation, blocked plans, stale plans, summaries (broker faked)."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli

from topoform.apply import executor as executor_mod
from topoform.apply import lock as lock_mod
from topoform.apply.executor import ApplyResult, Failure
from topoform.apply.progress import LineProgress, TerminalProgress
from topoform.broker import http as http_mod
from topoform.broker import live as live_mod
from topoform.broker.live import LiveState
from topoform.model import Queue, Topology, Vhost
from topoform.planner.plan import Action, Change, Plan

V = "tf-unit"
ENV = {"TOPOFORM_URL": "amqp://u:hunter22-secret@localhost:5672/", "CI": "1"}


class FakeClient:
    def __init__(self, settings):
        pass

    def vhost_names(self):
        return [V]

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
        self.acquired, self.released = [], False
        FakeLock.instances.append(self)

    def acquire(self, vhosts, timeout=None):
        self.acquired.extend(vhosts)

    def release(self):
        self.released = True


@pytest.fixture
def fake_broker(monkeypatch, tmp_path):
    """A broker whose vhost V holds ``state['live']`` (a Topology); records executed plans."""
    state = {"live": Topology.build([Vhost(V)]), "executed": [], "result": None}
    FakeLock.instances = []
    monkeypatch.setattr(http_mod, "ManagementClient", FakeClient)
    monkeypatch.setattr(lock_mod, "BrokerLock", FakeLock)

    def read_live(client, vhosts, **_kwargs):
        return LiveState(topology=state["live"], fingerprint=live_mod.topology_fingerprint(state["live"]))

    def apply_plan(plan, ctx, progress=None):
        state["executed"].append(plan)
        return state["result"] or ApplyResult(done=list(plan.changes), elapsed=0.25)

    monkeypatch.setattr(live_mod, "read_live", read_live)
    monkeypatch.setattr(executor_mod, "apply_plan", apply_plan)
    files = tmp_path / "topoform.yaml"
    files.write_text(f"vhosts:\n  {V}:\n    queues:\n      orders: {{durable: true}}\n")
    state["files"] = files
    return state


def run(argv, **kw):
    return run_cli(argv, environ=ENV, secrets=("hunter22-secret",), **kw)


def test_auto_approve_applies_and_prints_the_summary_with_elapsed_time(fake_broker):
    r = run(["apply", "--auto-approve", "-f", fake_broker["files"]])
    assert r.code == 0, r
    assert "queue orders" in r.out
    assert r.out.strip().splitlines()[-1] == "Apply complete: 1 created, 0 updated, 0 deleted, 0 migrated in 0.2s."
    assert FakeLock.instances[0].acquired == [V] and FakeLock.instances[0].released


def test_without_a_terminal_and_without_auto_approve_nothing_is_applied(fake_broker):
    r = run(["apply", "-f", fake_broker["files"]])
    assert r.code == 1 and "not a terminal" in r.err and "--auto-approve" in r.err
    assert fake_broker["executed"] == [] and FakeLock.instances[0].released


@pytest.mark.parametrize("answer, code, runs", [("yes\n", 0, 1), ("y\n", 1, 0), ("\n", 1, 0)])
@pytest.mark.parametrize("ci", [None, "false", "0", ""])
def test_on_a_terminal_only_yes_confirms(fake_broker, answer, code, runs, ci):
    environ = {k: v for k, v in ENV.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    r = run_cli(["apply", "-f", fake_broker["files"]], environ=environ, secrets=("hunter22-secret",), stdin=answer,
                stdin_isatty=True)
    assert r.code == code and len(fake_broker["executed"]) == runs
    assert "Only 'yes' will be accepted" in r.out


@pytest.mark.parametrize("ci", ["true", "1", "TRUE", "True"])
def test_in_ci_apply_never_prompts_even_on_a_terminal(fake_broker, ci):
    r = run_cli(["apply", "-f", fake_broker["files"]], environ=ENV | {"CI": ci}, secrets=("hunter22-secret",),
                stdin="yes\n", stdin_isatty=True, stdout_isatty=True)
    assert r.code == 1, r
    assert "Do you want" not in r.out and fake_broker["executed"] == [] and FakeLock.instances[0].released
    last = r.err.strip().splitlines()[-1]
    assert last == (f"topoform: error: apply needs confirmation, but CI={ci} is set (a pipeline never prompts, even "
                    "on a terminal); nothing was applied (hint: review the plan, then run again with --auto-approve)")
    r = run_cli(["apply", "--auto-approve", "-f", fake_broker["files"]], environ=ENV | {"CI": ci},
                stdin_isatty=True, stdout_isatty=True)
    assert r.code == 0 and len(fake_broker["executed"]) == 1, r


def test_blocked_changes_exit_3_and_nothing_runs(fake_broker):
    fake_broker["live"] = Topology.build([Vhost(V), Queue(V, "orders", durable=False)])
    r = run(["apply", "--auto-approve", "-f", fake_broker["files"]])
    assert r.code == 3, r
    assert "blocked" in r.err and fake_broker["executed"] == []


def test_no_changes_exit_0_without_asking(fake_broker):
    fake_broker["live"] = Topology.build([Vhost(V), Queue(V, "orders", durable=True)])
    r = run(["apply", "-f", fake_broker["files"]])
    assert r.code == 0 and fake_broker["executed"] == []


def test_a_failed_run_says_what_was_done_failed_and_not_attempted(fake_broker):
    q = Queue(V, "orders", durable=True)
    change = Change(Action.CREATE, "queue", V, "orders", after=q)
    fake_broker["result"] = ApplyResult(
        done=[], failed=[Failure(change, "queue 'orders' in vhost 'tf-unit': 403 ACCESS_REFUSED - access refused")],
        not_attempted=[change, change], elapsed=1.0)
    r = run(["apply", "--auto-approve", "-f", fake_broker["files"]])
    assert r.code == 1
    assert r.err.strip().splitlines()[-1] == (
        "Apply failed at queue orders: queue 'orders' in vhost 'tf-unit': 403 ACCESS_REFUSED - access refused. "
        "Done: 0. Not attempted: 2. Run 'topoform plan' to see what remains. (1.0s)")


def test_a_failure_with_a_hint_prints_it_on_its_line(fake_broker):
    q = Queue(V, "orders", durable=True)
    change = Change(Action.CREATE, "queue", V, "orders", after=q)
    other = Change(Action.CREATE, "queue", V, "audit", after=Queue(V, "audit"))
    fake_broker["result"] = ApplyResult(
        done=[], failed=[Failure(change, "the channel limit of user 'ci' (2) is reached", "channel-limit",
                                 "raise it (rabbitmqctl set_user_limits 'ci' ...)"),
                         Failure(other, "queue 'audit' in vhost 'tf-unit': 404 NOT_FOUND - no queue", "broker-refused",
                                 "deleted since the plan was made?")],
        not_attempted=[], elapsed=1.0)
    r = run(["apply", "--auto-approve", "-f", fake_broker["files"]])
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert lines[-2] == ("Also failed: queue audit: queue 'audit' in vhost 'tf-unit': 404 NOT_FOUND - no queue "
                         "(hint: deleted since the plan was made?)")
    assert lines[-1].startswith("Apply failed at queue orders: the channel limit of user 'ci' (2) is reached "
                                "(hint: raise it (rabbitmqctl set_user_limits 'ci' ...)). Done: 0.")


def test_a_saved_plan_runs_as_saved_and_a_stale_one_is_refused(fake_broker, tmp_path):
    q = Queue(V, "orders", durable=True)
    saved = Plan(changes=(Change(Action.CREATE, "queue", V, "orders", after=q),), vhosts=(V,),
                 fingerprint=live_mod.topology_fingerprint(fake_broker["live"]))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(saved.to_dict()))
    r = run(["apply", "--auto-approve", path])
    assert r.code == 0, r
    assert fake_broker["executed"][0].changes == saved.changes
    fake_broker["live"] = Topology.build([Vhost(V), Queue(V, "other")])
    r = run(["apply", "--auto-approve", path])
    assert r.code == 1 and "stale" in r.err and len(fake_broker["executed"]) == 1


def test_a_plan_file_and_files_together_are_a_usage_error(fake_broker, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(Plan(vhosts=(V,)).to_dict()))
    r = run(["apply", path, "-f", fake_broker["files"]])
    assert r.code == 1 and "PLANFILE" in r.err


def test_unknown_vhost_is_a_usage_error(fake_broker):
    r = run(["apply", "--vhost", "nope", "-f", fake_broker["files"]])
    assert r.code == 1 and "'nope'" in r.err


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_ci_progress_prints_plain_periodic_lines():
    import io

    out, clock = io.StringIO(), Clock()
    p = LineProgress(out, interval=5, clock=clock)
    p.start(1000)
    for i in range(1000):
        clock.t += 0.02
        p.done(None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all(line.startswith("Applying: ") for line in lines)
    assert "\r" not in out.getvalue() and "/s" in lines[0]


def test_terminal_progress_redraws_one_line_and_clears_it():
    import io

    out, clock = io.StringIO(), Clock()
    p = TerminalProgress(out, clock=clock)
    p.start(10)
    for _ in range(10):
        clock.t += 0.05
        p.done(None)
    assert "10/10 changes (100%)" in out.getvalue()
    p.finish()
    assert out.getvalue().endswith("\r\x1b[2K")


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_destroy_never_prompts_even_on_a_terminal(fake_broker, ci):
    fake_broker["live"] = Topology.build([Vhost(V), Queue(V, "orders", durable=True)])
    argv = ["destroy", "--allow-data-loss", "-f", fake_broker["files"]]
    r = run_cli(argv, environ=ENV | {"CI": ci}, secrets=("hunter22-secret",), stdin="yes\n", stdin_isatty=True)
    assert r.code == 1, r
    assert "Do you really want" not in r.out and fake_broker["executed"] == []
    assert r.err.strip().splitlines()[-1] == (
        f"topoform: error: destroy needs confirmation, but CI={ci} is set (a pipeline never prompts, even on a "
        "terminal); nothing was deleted (hint: review the plan (--dry-run), then run again with --auto-approve)")
    r = run_cli(argv, environ={k: v for k, v in ENV.items() if k != "CI"}, stdin="yes\n", stdin_isatty=True)
    assert "Do you really want" in r.out and len(fake_broker["executed"]) == 1, r
