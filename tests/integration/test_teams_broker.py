"""Two teams in one vhost, and dev/prod environments, on the real broker (issue 14, SPEC section 9).

* Team A (owner team-orders) owns ``orders.*``; team B (team-events) owns ``events*``.
  A binds its queue to B's exchange ``events`` (external for A). Each applies, each
  plan is then empty, each prune leaves the other's objects alone; deleting B's
  exchange makes A's plan block with a reason naming it.
* One topology with variables, applied to two vhosts with --env dev and --env prod:
  each gets its own values, each plan is then empty, and a prod plan is refused by
  ``apply --env dev``.
"""
from __future__ import annotations

import json

from topoform.broker.settings import quote_segment

TEAM_A = """
owner: team-orders
vhosts:
  {vhost}:
    owns: ["orders.*"]
    external: {{exchanges: [{{name: events, type: topic}}]}}
    queues:
      orders.paid:
        durable: true
        bindings: [{{exchange: events, routing_key: "order.paid"}}]
"""

TEAM_B = """
owner: team-events
vhosts:
  {vhost}:
    owns: ["events*"]
    exchanges:
      events: {{type: topic, durable: true}}
    queues:
      events.audit:
        durable: true
        bindings: [{{exchange: events, routing_key: "#"}}]
"""


def _write(tmp_path, name, text, vhost):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "topology.yaml").write_text(text.format(vhost=json.dumps(vhost)))
    return d


def test_two_teams_share_one_vhost(cli, broker_env, vhost, tmp_path, mgmt):
    a = _write(tmp_path, "team-a", TEAM_A, vhost)
    b = _write(tmp_path, "team-b", TEAM_B, vhost)
    # A alone: the external exchange does not exist yet: blocked, with the reason
    r = cli(["plan", "-f", a], environ=broker_env)
    assert r.code == 3, r
    assert "External exchange 'events'" in r.out and "does not exist" in r.out, r.out
    assert "owner: team-orders" in r.out
    # both given together validate: nothing is claimed twice
    assert cli(["validate", "-f", a, "-f", b]).code == 0
    # B applies, then A
    assert cli(["apply", "-f", b, "--auto-approve"], environ=broker_env).code == 0
    r = cli(["apply", "-f", a, "--auto-approve"], environ=broker_env)
    assert r.code == 0, r
    # each plan is empty, and nothing of the other team is listed as unmanaged
    for d in (a, b):
        r = cli(["plan", "-f", d, "--detailed-exitcode", "--json"], environ=broker_env)
        assert r.code == 0, r
        data = json.loads(r.out)
        assert data["changes"] == [] and data["unmanaged"] == [], data
    # each prune leaves the other's objects alone
    for d in (a, b):
        r = cli(["plan", "-f", d, "--prune", "--detailed-exitcode"], environ=broker_env)
        assert r.code == 0, r
    q = quote_segment(vhost)
    bindings = mgmt.get(f"/api/bindings/{q}")
    assert {(x["source"], x["destination"]) for x in bindings if x["source"]} == {
        ("events", "orders.paid"), ("events", "events.audit")}
    # a message published to B's exchange reaches A's queue through A's binding
    mgmt.request("POST", f"/api/exchanges/{q}/events/publish",
                 {"properties": {}, "routing_key": "order.paid", "payload": "x", "payload_encoding": "string"})
    got = mgmt.request("POST", f"/api/queues/{q}/orders.paid/get",
                       {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}).json()
    assert [m["payload"] for m in got] == ["x"]
    # B's exchange disappears: A's plan blocks with the reason
    mgmt.delete(f"/api/exchanges/{q}/events")
    r = cli(["plan", "-f", a], environ=broker_env)
    assert r.code == 3, r
    assert "External exchange 'events'" in r.out, r.out
    # the lock holder names the owner (shown while another apply waits): checked offline in test_ownership


def test_claimed_twice_names_both_files(cli, tmp_path):
    a = _write(tmp_path, "team-a", TEAM_A.replace('"orders.*"', '"orders.*", "events*"'), "v")
    b = _write(tmp_path, "team-b", TEAM_B, "v")
    r = cli(["validate", "-f", a, "-f", b])
    assert r.code == 1
    assert "claimed by two file sets" in r.err and "team-a" in r.err and "team-b" in r.err, r.err


ENV_TOPOLOGY = """
variables:
  ttl: {{default: 60000}}
  vhost: {{}}
vhosts:
  "${{vhost}}":
    queues:
      work:
        durable: true
        arguments: {{x-message-ttl: "${{ttl}}"}}
"""


def test_dev_and_prod_environments(cli, broker_env, vhost, admin, broker, tmp_path, mgmt):
    from helpers import unique_vhost

    prod_vhost = unique_vhost()
    admin.create_vhost(prod_vhost, user=broker.username)
    try:
        (tmp_path / "topology.yaml").write_text(ENV_TOPOLOGY.format())
        (tmp_path / "environments").mkdir()
        (tmp_path / "environments" / "dev.yaml").write_text(
            f"variables: {{ttl: 1000, vhost: {json.dumps(vhost)}}}\n")
        (tmp_path / "environments" / "prod.yaml").write_text(
            f"variables: {{vhost: {json.dumps(prod_vhost)}}}\n")
        f = str(tmp_path / "topology.yaml")
        assert cli(["validate", "-f", f, "--all-envs"]).code == 0
        for name in ("dev", "prod"):
            r = cli(["apply", "-f", f, "--env", name, "--auto-approve"], environ=broker_env)
            assert r.code == 0, r
            r = cli(["plan", "-f", f, "--env", name, "--detailed-exitcode"], environ=broker_env)
            assert r.code == 0, r
        ttl = {v: mgmt.get(f"/api/queues/{quote_segment(v)}/work")["arguments"]["x-message-ttl"]
               for v in (vhost, prod_vhost)}
        assert ttl == {vhost: 1000, prod_vhost: 60000}
        # TOPOFORM_ENV picks the environment too
        r = cli(["plan", "-f", f, "--detailed-exitcode"], environ={**broker_env, "TOPOFORM_ENV": "dev"})
        assert r.code == 0, r
        # a plan made for prod is refused under dev
        out = tmp_path / "prod.plan.json"
        assert cli(["plan", "-f", f, "--env", "prod", "--out", out], environ=broker_env).code == 0
        assert json.loads(out.read_text())["env"] == "prod"
        r = cli(["apply", str(out), "--env", "dev", "--auto-approve"], environ=broker_env)
        assert r.code == 1 and "made for environment 'prod', not 'dev'" in r.err, r
        assert cli(["apply", str(out), "--env", "prod", "--auto-approve"], environ=broker_env).code == 0
    finally:
        admin.delete_vhost(prod_vhost)
