"""plan, apply and import with --json on a real broker: every document matches its schema.

One vhost per test (the ``vhost`` fixture). The apply report is checked against what the
broker then holds, a failure (a saved plan edited so that the broker refuses one declare)
against what was left undone, and a blocked plan gives the error document with exit 3.
"""
from __future__ import annotations

import json
from pathlib import Path

from json_schemas import validate
from topoform.broker.settings import quote_segment


def _files(tmp_path, vhost: str, *, durable_jobs: bool = True, extra_queue: bool = False) -> str:
    extra = "      late: {durable: true, bindings: [{exchange: events, routing_key: late}]}\n" if extra_queue else ""
    text = (f"version: 1\nvhosts:\n  {json.dumps(vhost)}:\n"
            "    exchanges:\n      events: {type: topic, durable: true}\n"
            "    queues:\n"
            f"      jobs: {{durable: {'true' if durable_jobs else 'false'}, bindings: [{{exchange: events, "
            "routing_key: 'job.#'}]}\n"
            "      audit: {durable: true, arguments: {x-queue-type: quorum}, bindings: [{exchange: events, "
            "routing_key: '#'}]}\n"
            "      per_connection: {exclusive: true, bindings: [{exchange: events, routing_key: 'job.done'}]}\n"
            + extra +
            "    policies:\n      ttl: {pattern: '^jobs$', apply_to: queues, definition: {message-ttl: 60000}}\n")
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return str(path)


def _refs(items) -> set:
    return {(c["action"], c["kind"], c["name"]) for c in items}


def test_plan_then_apply_json_report_matches_the_broker(cli, broker_env, mgmt, vhost, tmp_path, broker_version):
    files = _files(tmp_path, vhost)
    plan = cli(["plan", "-f", files, "--json"], environ=broker_env)
    assert plan.code == 0, plan
    planned = plan.json
    validate(planned, "plan.schema.json")
    assert planned["summary"]["create"] == len(planned["changes"]) > 0 and planned["summary"]["blocked"] == 0

    refused = cli(["apply", "-f", files, "--json"], environ=broker_env)  # never prompts under --json
    assert refused.code == 1, refused
    validate(refused.json, "error.schema.json")
    assert refused.json["error"]["code"] == "usage"
    assert mgmt.request("GET", f"/api/queues/{quote_segment(vhost)}/jobs", expect=(200, 404)).status_code == 404

    applied = cli(["apply", "-f", files, "--json", "--auto-approve"], environ=broker_env)
    assert applied.code == 0, applied
    report = applied.json
    validate(report, "apply-report.schema.json")
    assert report["status"] == "applied" and report["ok"] is True
    assert report["failed"] == [] and report["not_attempted"] == []
    assert [c["name"] for c in report["plan"]["changes"]] == [c["name"] for c in planned["changes"]]
    # every planned change was done (the exclusive queue is not planned: its consumers declare it)
    assert "per_connection" not in {c["name"] for c in planned["changes"]}
    assert _refs(report["done"]) | _refs(report["skipped"]) == _refs(planned["changes"])
    assert len(report["done"]) + len(report["skipped"]) == len(planned["changes"])
    assert report["counts"]["create"] == len(report["done"])
    steps = report["timings"]["steps"]
    assert sum(s["changes"] for s in steps) == len(planned["changes"])
    assert sum(s["seconds"] for s in steps) <= report["timings"]["total_seconds"] + 1e-3
    assert {(s["action"], s["kind"]) for s in steps} == {(c["action"], c["kind"]) for c in planned["changes"]}
    # what the report says was done is on the broker
    queues = {q["name"]: q for q in mgmt.get(f"/api/queues/{quote_segment(vhost)}")}
    assert {"jobs", "audit"} <= set(queues) and "per_connection" not in queues
    assert queues["audit"]["type"] == "quorum"
    assert mgmt.get(f"/api/policies/{quote_segment(vhost)}/ttl")["definition"] == {"message-ttl": 60000}

    again = cli(["apply", "-f", files, "--json", "--auto-approve"], environ=broker_env)
    assert again.code == 0, again
    validate(again.json, "apply-report.schema.json")
    assert again.json["status"] == "no-changes" and again.json["done"] == [] and again.json["plan"]["changes"] == []


def test_apply_json_reports_the_failure_and_what_was_not_attempted(cli, broker_env, mgmt, vhost, tmp_path):
    assert cli(["apply", "-f", _files(tmp_path, vhost), "--auto-approve"], environ=broker_env).code == 0
    saved = tmp_path / "late.plan.json"
    planned = cli(["plan", "-f", _files(tmp_path, vhost, extra_queue=True), "--out", saved], environ=broker_env)
    assert planned.code == 0, planned
    plan = json.loads(saved.read_text())
    [queue] = [c for c in plan["changes"] if c["kind"] == "queue"]
    queue["after"]["arguments"] = {"x-max-length": "not-a-number"}  # the broker refuses this declare (406)
    from topoform.planner.plan import content_digest

    plan["digest"] = content_digest(plan)  # edited on purpose: the digest made to fit (else refused as changed)
    saved.write_text(json.dumps(plan))

    r = cli(["apply", str(saved), "--json", "--auto-approve"], environ=broker_env)
    assert r.code == 1, r
    report = r.json
    validate(report, "apply-report.schema.json")
    assert report["status"] == "failed" and report["ok"] is False
    [failed] = report["failed"]
    assert (failed["kind"], failed["name"]) == ("queue", "late") and "x-max-length" in failed["message"]
    assert ("create", "binding", "events -> late [late]") in _refs(report["not_attempted"])
    assert report["done"] == []
    assert "Apply failed at queue late" in r.err  # the text summary goes to stderr
    assert mgmt.request("GET", f"/api/queues/{quote_segment(vhost)}/late", expect=(200, 404)).status_code == 404


def test_apply_json_blocked_plan_is_an_error_document_with_exit_3(cli, broker_env, vhost, tmp_path):
    assert cli(["apply", "-f", _files(tmp_path, vhost), "--auto-approve"], environ=broker_env).code == 0
    r = cli(["apply", "-f", _files(tmp_path, vhost, durable_jobs=False), "--json", "--auto-approve"],
            environ=broker_env)
    assert r.code == 3, r
    doc = r.json
    validate(doc, "error.schema.json")
    assert doc["error"]["code"] == "blocked" and "blocked" in doc["error"]["message"]
    plain = cli(["apply", "-f", _files(tmp_path, vhost, durable_jobs=False), "--auto-approve"], environ=broker_env)
    assert plain.code == 3


def test_import_json_reports_what_was_written_and_skipped(cli, broker_env, vhost, tmp_path, amqp):
    assert cli(["apply", "-f", _files(tmp_path, vhost), "--auto-approve"], environ=broker_env).code == 0
    channel = amqp.channel()
    channel.queue_declare("", exclusive=True)  # a server-named exclusive queue: never imported
    out = tmp_path / "imported"
    r = cli(["import", "--vhost", vhost, "-o", f"{out}/", "--json"], environ=broker_env)
    assert r.code == 0, r
    doc = r.json
    validate(doc, "import-report.schema.json")
    assert doc["vhosts"] == [vhost] and doc["written"] == 1 and doc["unchanged"] == 0
    [entry] = doc["files"]
    assert entry["status"] == "written" and Path(entry["path"]).is_file() and Path(entry["path"]).parent == out
    assert doc["counts"] == entry["counts"]
    assert (doc["counts"]["queue"], doc["counts"]["exchange"], doc["counts"]["policy"]) == (2, 1, 1)
    assert doc["skipped"].get("exclusive queues", 0) >= 1
    assert "@" not in doc["source"]  # the management URL without credentials

    again = cli(["import", "--vhost", vhost, "-o", f"{out}/", "--json"], environ=broker_env)
    assert again.code == 0, again
    validate(again.json, "import-report.schema.json")
    assert (again.json["written"], again.json["unchanged"]) == (0, 1)
    assert again.json["files"][0]["status"] == "unchanged"


def test_destroy_json_prints_the_plan_then_the_apply_report(cli, broker_env, mgmt, vhost, tmp_path):
    files = _files(tmp_path, vhost)
    assert cli(["apply", "-f", files, "--auto-approve"], environ=broker_env).code == 0
    dry = cli(["destroy", "-f", files, "--dry-run", "--json"], environ=broker_env)
    assert dry.code == 0, dry
    validate(dry.json, "destroy.schema.json")
    validate(dry.json, "plan.schema.json")
    assert {c["action"] for c in dry.json["changes"]} == {"delete"}
    assert {"jobs", "audit", "events", "ttl"} <= {c["name"] for c in dry.json["changes"]}

    done = cli(["destroy", "-f", files, "--json", "--auto-approve"], environ=broker_env)
    assert done.code == 0, done
    report = done.json
    validate(report, "destroy.schema.json")
    validate(report, "apply-report.schema.json")
    assert report["status"] == "applied" and report["counts"]["delete"] == len(dry.json["changes"])
    assert _refs(report["done"]) == _refs(dry.json["changes"])
    assert not {"jobs", "audit"} & {q["name"] for q in mgmt.get(f"/api/queues/{quote_segment(vhost)}")}
