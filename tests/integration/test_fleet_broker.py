"""A fleet of the three test brokers (issue 14, SPEC section 9).

Independent of ``TOPOFORM_TEST_BROKER``: the fleet file names every broker of
scripts/brokers.tsv (3.10, 4.0, 4.3) plus one target with a wrong password. One
``plan --targets`` shows every target, one ``apply --targets`` converges the good ones
in parallel while the bad one fails alone with a clear message, and the exit code is
the worst (1). Each broker gets its own uniquely named vhost, deleted afterwards.
"""
from __future__ import annotations

import json

import pytest

from conftest import brokers_table
from helpers import Management, unique_vhost
from json_schemas import validate
from topoform.broker.settings import BrokerSettings, quote_segment


@pytest.fixture
def fleet(tmp_path):
    table = brokers_table()
    vhost = unique_vhost()
    admins = {}
    for name, ports in table.items():
        admin = Management(BrokerSettings(url=f"amqp://guest:guest@localhost:{ports['amqp']}/",
                                          management_url=f"http://guest:guest@localhost:{ports['http']}/"))
        admin.create_vhost(vhost, user="guest")
        admins[name] = admin
    lines = ["targets:"]
    for name, ports in table.items():
        env = ", env: prod" if name == "4.0" else ""
        lines.append(f"  b{name.replace('.', '')}: {{url: 'amqp://guest@localhost:{ports['amqp']}/', "
                     f"management_url: 'http://localhost:{ports['http']}/', password: {{env: FLEET_PW}}{env}}}")
    last = table[sorted(table)[-1]]
    lines.append(f"  wrong: {{url: 'amqp://guest@localhost:{last['amqp']}/', management_url: "
                 f"'http://localhost:{last['http']}/', password: {{env: FLEET_BAD_PW}}}}")
    (tmp_path / "targets.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "prod.yaml").write_text("variables: {ttl: 5000}\n")
    (tmp_path / "topology.yaml").write_text(
        "variables: {ttl: {default: 60000}}\n"
        f"vhosts:\n  {json.dumps(vhost)}:\n    queues:\n      work: {{durable: true, arguments: "
        "{x-message-ttl: \"${ttl}\"}}\n")
    yield tmp_path, vhost, admins
    for admin in admins.values():
        admin.delete_vhost(vhost)


def test_fleet_plan_and_apply(fleet):
    from helpers import run_cli

    tmp_path, vhost, admins = fleet
    environ = {"FLEET_PW": "guest", "FLEET_BAD_PW": "not-the-password"}
    args = ["-f", tmp_path / "topology.yaml", "--targets", tmp_path / "targets.yaml"]
    names = {"b" + n.replace(".", "") for n in admins}
    # plan: one section per target; the good ones each plan a create, the wrong password fails alone
    r = run_cli(["plan", *args, "--json"], environ=environ, secrets=("not-the-password",))
    assert r.code == 1, r
    doc = r.json
    validate(doc, "fleet-plan.schema.json")
    assert doc["format_version"] == 1 and set(doc["targets"]) == names | {"wrong"}
    for name in names:
        assert doc["targets"][name]["summary"]["create"] == 1, doc["targets"][name]
    assert doc["targets"]["wrong"]["error"]["code"] == "broker-auth", doc["targets"]["wrong"]
    assert doc["targets"]["b40"]["env"] == "prod"
    # the good targets alone: changes pending -> 2 with --detailed-exitcode
    only = [a for n in sorted(names) for a in ("--only", n)]
    assert run_cli(["plan", *args, *only, "--detailed-exitcode"], environ=environ).code == 2
    # apply: the good ones converge, the wrong one fails with a clear message
    r = run_cli(["apply", *args, "--auto-approve"], environ=environ, secrets=("not-the-password",))
    assert r.code == 1, r
    for name in names:
        assert f"=== target {name}" in r.out and f"  {name}: done" in r.out, r.out
    assert "wrong: failed" in r.out and "refused the credentials" in r.out, r.out
    ttl = {n: a.get(f"/api/queues/{quote_segment(vhost)}/work")["arguments"]["x-message-ttl"] for n, a in admins.items()}
    assert ttl == {n: (5000 if n == "4.0" else 60000) for n in admins}
    # converged: every good plan is empty
    assert run_cli(["plan", *args, *only, "--detailed-exitcode"], environ=environ).code == 0


def test_saved_fleet_plan_is_checked_per_target(fleet):
    from helpers import run_cli

    tmp_path, vhost, admins = fleet
    environ = {"FLEET_PW": "guest", "FLEET_BAD_PW": "not-the-password"}
    files = ["-f", tmp_path / "topology.yaml"]
    fleet_file = ["--targets", tmp_path / "targets.yaml"]
    out = tmp_path / "fleet.plan.json"
    r = run_cli(["plan", *files, *fleet_file, "--out", out], environ=environ)
    assert r.code == 1, r  # the wrong password
    saved = json.loads(out.read_text())
    names = {"b" + n.replace(".", "") for n in admins}
    assert set(saved["targets"]) == names and saved["targets"]["b40"]["env"] == "prod"
    # one broker changes after the plan: only its plan is stale
    admins["4.0"].put(f"/api/queues/{quote_segment(vhost)}/someone-else", {"durable": True})
    r = run_cli(["apply", out, *fleet_file, "--only", "b*", "--auto-approve"], environ=environ)
    assert r.code == 1, r
    assert "b40: failed: the plan in" in r.out and "(target b40) is stale" in r.out, r.out
    for name in names - {"b40"}:
        assert f"  {name}: done" in r.out
    # a fleet plan is refused without --targets
    r = run_cli(["apply", out, "--auto-approve"], environ=environ)
    assert r.code == 1 and "one plan per target" in r.err
    # show renders it, one section per target
    r = run_cli(["show", out])
    assert r.code == 0 and all(f"=== target {name} ===" in r.out for name in names), r
    # each plan records its own broker: a plan put under another target is refused for that target
    swapped = dict(saved["targets"])
    swapped["b43"], swapped["b310"] = saved["targets"]["b310"], saved["targets"]["b43"]
    out.write_text(json.dumps({"format_version": 1, "targets": swapped}))
    r = run_cli(["apply", out, *fleet_file, "--only", "b43", "--only", "b310", "--auto-approve"], environ=environ)
    assert r.code == 1 and r.out.count("was made for another broker") == 2, r.out
