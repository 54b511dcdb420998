"""Every command that reports prints a JSON document that matches its schema (schemas/), offline.

One row per command (and per notable outcome): the command runs in-process on the bundled
examples with ``--json`` (or ``--format json``), its exit code is the one the command has
without JSON, and stdout is exactly one document valid against the row's schema. Then the
error document: usage, input, unreachable broker, interrupted and internal errors, each with
the same exit code and stderr line as without ``--json``, secrets redacted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from helpers import ROOT, run_cli
from json_schemas import SCHEMAS, validate

from topoform.cli import COMMANDS

EXAMPLES = ROOT / "examples" / "topologies"
CODE_SERVICE = ROOT / "examples" / "code-service"
CODE_DATA = ROOT / "tests" / "data" / "code"
CLOSED = ["--url", "amqp://someone:pw-closed-port-77@127.0.0.1:1/",
          "--management-url", "http://someone:pw-closed-port-77@127.0.0.1:1/", "--timeout", "0.5"]
EMPTY_STATE = {"rabbit_version": "4.0.5", "vhosts": [], "exchanges": [], "queues": [], "bindings": [],
               "policies": [], "users": [], "permissions": []}

# Commands that print no report: their output is the artefact itself (DOT/Mermaid, YAML, a script).
NOT_REPORTING = {"graph": "prints a graph (DOT or Mermaid)", "fmt": "rewrites files in place",
                 "completion": "prints a shell script"}


def _state(tmp: Path) -> Path:
    """A definitions export of the examples (the broker that already matches them)."""
    out = tmp / "examples-defs.json"
    r = run_cli(["export", "-f", EXAMPLES, "-o", out])
    assert r.code == 0, r
    return out


def _empty_state(tmp: Path) -> Path:
    out = tmp / "empty-defs.json"
    out.write_text(json.dumps(EMPTY_STATE))
    return out


def _bad_files(tmp: Path) -> Path:
    path = tmp / "bad.yaml"
    path.write_text("version: 1\nvhosts:\n  /:\n    queues:\n      q: {durable: maybe}\n")
    return path


def _saved_plan(tmp: Path) -> Path:
    out = tmp / "saved.plan.json"
    r = run_cli(["plan", "-f", EXAMPLES, "--state", _empty_state(tmp), "--out", out])
    assert r.code == 0 and out.exists(), r
    return out


def _targets(tmp: Path) -> Path:
    path = tmp / "targets.yaml"
    path.write_text("targets:\n  one: {url: 'amqp://u@127.0.0.1:1/', management_url: 'http://127.0.0.1:1/', "
                    "password: {env: TF_JSON_PW}}\n  two: {url: 'amqp://u@127.0.0.1:1/', management_url: "
                    "'http://127.0.0.1:1/', password: {env: TF_JSON_NOPE}}\n")
    return path


@dataclass
class Row:
    id: str
    argv: Callable[[Path], list]  # tmp_path -> argv
    schema: str
    code: int
    check: Callable[[dict, Path], None] = lambda doc, tmp: None
    environ: dict = field(default_factory=dict)


def _validate_ok(doc, tmp):
    assert doc["valid"] is True and doc["counts"]["queue"] > 0
    assert all(f["severity"] == "warning" for f in doc["findings"])


def _validate_bad(doc, tmp):
    assert doc["valid"] is False
    bad = [f for f in doc["findings"] if f["severity"] == "error"]
    assert bad and bad[0]["path"].endswith("bad.yaml") and bad[0]["line"] == 5


def _tests_pass(doc, tmp):
    assert doc["summary"]["failed"] == 0 and doc["summary"]["passed"] == len(doc["tests"]) > 0


def _route(doc, tmp):
    assert doc["queues"] == sorted(doc["queues"]) and len(doc["routes"]) == len(doc["queues"]) > 0
    assert "expect" not in doc


def _route_expect_fails(doc, tmp):
    assert doc["queues"] and doc["expect"] == {"queues": ["nowhere"], "passed": False}


def _plan_creates(doc, tmp):
    assert doc["summary"]["create"] == len(doc["changes"]) > 0


def _plan_nothing(doc, tmp):
    assert doc["changes"] == [] and doc["summary"]["create"] == 0


def _imported(doc, tmp):
    assert doc["written"] == len(doc["files"]) == len(doc["vhosts"]) == 2
    assert sum(f["counts"]["queue"] for f in doc["files"]) == doc["counts"]["queue"] > 0
    for f in doc["files"]:
        assert (tmp / "imported" / Path(f["path"]).name).is_file()


def _imported_again(doc, tmp):
    assert doc["unchanged"] == 1 and doc["written"] == 0 and doc["files"][0]["status"] == "unchanged"


def _exported(doc, tmp):
    written = json.loads((tmp / "out-defs.json").read_text())
    assert doc["counts"]["queues"] == len(written["queues"]) > 0
    assert any("exclusive" in n for n in doc["notes"])


def _fleet_errors(doc, tmp):
    assert set(doc["targets"]) == {"one", "two"}
    assert all("error" in t for t in doc["targets"].values())
    assert "TF_JSON_NOPE" in doc["targets"]["two"]["error"]["message"]


def _error(code: str):
    def check(doc, tmp):
        assert doc["error"]["code"] == code
        assert "pw-closed-port-77" not in json.dumps(doc)
    return check


def _drifted_service(tmp: Path) -> Path:
    """The check-code test service, with one queue declared transient where the files have it durable."""
    text = (CODE_DATA / "checkcode" / "service.py").read_text()
    assert '"orders.audit", durable=True' in text
    path = tmp / "service.py"
    path.write_text(text.replace('"orders.audit", durable=True', '"orders.audit", durable=False', 1))
    return path


def _import_again_argv(tmp: Path) -> list:
    state = _state(tmp)
    first = run_cli(["import", "--state", state, "--vhost", "orders", "-o", tmp / "orders.yaml"])
    assert first.code == 0, first
    return ["import", "--state", state, "--vhost", "orders", "-o", tmp / "orders.yaml", "--json"]


ROWS = [
    Row("validate", lambda t: ["validate", "-f", EXAMPLES, "--json"], "validate.schema.json", 0, _validate_ok),
    Row("validate-invalid", lambda t: ["validate", "-f", _bad_files(t), "--json"], "validate.schema.json", 1,
        _validate_bad),
    Row("test", lambda t: ["test", "-f", EXAMPLES, "--json"], "test.schema.json", 0, _tests_pass),
    Row("test-route", lambda t: ["test-route", "-f", EXAMPLES, "--vhost", "orders", "orders.events", "order.created",
                                 "--json"], "test-route.schema.json", 0, _route),
    Row("test-route-expect-fails", lambda t: ["test-route", "-f", EXAMPLES, "--vhost", "orders", "orders.events",
                                              "order.created", "--expect", "nowhere", "--json"],
        "test-route.schema.json", 3, _route_expect_fails),
    Row("plan", lambda t: ["plan", "-f", EXAMPLES, "--state", _empty_state(t), "--json"], "plan.schema.json", 0,
        _plan_creates),
    Row("plan-format-json", lambda t: ["plan", "-f", EXAMPLES, "--state", _state(t), "--format", "json"],
        "plan.schema.json", 0, _plan_nothing),
    Row("plan-summary", lambda t: ["plan", "-f", EXAMPLES, "--state", _empty_state(t), "--summary", "--json"],
        "plan-summary.schema.json", 0),
    Row("show", lambda t: ["show", _saved_plan(t), "--json"], "plan.schema.json", 0, _plan_creates),
    Row("diff", lambda t: ["diff", _empty_state(t), EXAMPLES, "--json"], "plan.schema.json", 2,  # 2: differ
        _plan_creates),
    Row("upgrade-check", lambda t: ["upgrade-check", "--to", "4.3", "--state", _state(t), "--json"],
        "upgrade-check.schema.json", 0),
    Row("scan", lambda t: ["scan", CODE_SERVICE, "--json"], "scan.schema.json", 0),
    Row("scan-services", lambda t: ["scan", CODE_DATA / "services", "--json"], "scan.schema.json", 3,
        lambda doc, tmp: doc["conflicts"] and doc["issues"]),
    Row("check-code", lambda t: ["check-code", CODE_SERVICE, "-f", CODE_SERVICE / "topology.yaml", "--json"],
        "check-code.schema.json", 0, lambda doc, tmp: doc["agree"] is True),
    Row("check-code-disagrees", lambda t: ["check-code", _drifted_service(t), "-f",
                                           CODE_DATA / "checkcode" / "topology.yaml", "--json"],
        "check-code.schema.json", 3, lambda doc, tmp: doc["disagreements"]),
    Row("import", lambda t: ["import", "--state", _state(t), "-o", str(t / "imported") + "/", "--json"],
        "import-report.schema.json", 0, _imported),
    Row("import-unchanged", _import_again_argv, "import-report.schema.json", 0, _imported_again),
    Row("export", lambda t: ["export", "-f", EXAMPLES, "-o", t / "out-defs.json", "--json"],
        "export-report.schema.json", 0, _exported),
    Row("apply-unreachable", lambda t: ["apply", "-f", EXAMPLES, "--json", "--auto-approve", *CLOSED],
        "error.schema.json", 1, _error("broker")),
    Row("plan-fleet", lambda t: ["plan", "-f", EXAMPLES, "--targets", _targets(t), "--json", "--timeout", "0.5"],
        "fleet-plan.schema.json", 1, _fleet_errors, {"TF_JSON_PW": "pw-closed-port-77"}),
    Row("apply-fleet", lambda t: ["apply", "-f", EXAMPLES, "--targets", _targets(t), "--json", "--auto-approve",
                                  "--timeout", "0.5"],
        "fleet-apply.schema.json", 1, _fleet_errors, {"TF_JSON_PW": "pw-closed-port-77"}),
]
if "destroy" in COMMANDS and (ROOT / "topoform" / "cli" / "destroy.py").exists():
    ROWS.append(Row("destroy-unreachable", lambda t: ["destroy", "-f", EXAMPLES, "--json", "--auto-approve", *CLOSED],
                    "destroy.schema.json", 1, _error("broker")))


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_each_command_prints_one_document_valid_against_its_schema(row: Row, tmp_path):
    r = run_cli(row.argv(tmp_path), environ=row.environ, secrets=("pw-closed-port-77",))
    assert r.code == row.code, r
    doc = json.loads(r.out)  # exactly one document: anything else on stdout fails to parse
    validate(doc, row.schema)
    if row.schema != "error.schema.json" and "error" not in doc:
        assert doc.get("format_version", 1) == 1
    assert row.check(doc, tmp_path) is not False


def test_every_reporting_command_has_a_row(tmp_path):
    """A new command either gets a row here (and a schema) or says why it prints no report."""
    covered = {str(row.argv(tmp_path)[0]) for row in ROWS}
    missing = sorted(set(COMMANDS) - covered - set(NOT_REPORTING))
    assert not missing, f"commands without a JSON row: {missing}"


def test_every_document_schema_is_valid_and_shipped_in_the_package():
    from jsonschema import Draft202012Validator

    import topoform

    shipped = Path(topoform.__file__).parent / "schemas"
    names = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert {r.schema for r in ROWS} | {"error.schema.json", "destroy.schema.json"} <= set(names)
    for name in names:
        schema = json.loads((SCHEMAS / name).read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith("/" + name)
        assert (shipped / name).read_text() == (SCHEMAS / name).read_text()  # topoform/schemas is schemas/


@pytest.mark.parametrize("flag", [["--json"], ["--format", "json"], ["--format=json"]])
def test_json_alias_prints_the_same_plan(flag, tmp_path):
    state = _empty_state(tmp_path)
    as_flag = run_cli(["plan", "-f", EXAMPLES, "--state", state, *flag])
    assert as_flag.code == 0, as_flag
    baseline = run_cli(["plan", "-f", EXAMPLES, "--state", state, "--format", "json"])
    assert as_flag.out == baseline.out


# ---------------------------------------------------------------------------- error documents
ERROR_ROWS = [
    ("usage-unknown-flag", lambda t: ["validate", "-f", EXAMPLES, "--nope"], "usage", 1),
    ("usage-while-parsing-format", lambda t: ["plan", "-f", EXAMPLES, "--no-such-flag"], "usage", 1),
    ("usage-missing-required", lambda t: ["upgrade-check", "--state", "x.json"], "usage", 1),  # no --to
    ("input", lambda t: ["plan", "-f", _bad_files(t), "--state", _empty_state(t)], "input", 1),
    ("input-missing-plan", lambda t: ["show", t / "none.plan.json"], "input", 1),
    ("broker-closed-port", lambda t: ["plan", "-f", EXAMPLES, *CLOSED], "broker", 1),
    ("broker-import", lambda t: ["import", "-o", t / "x.yaml", *CLOSED], "broker", 1),
]


@pytest.mark.parametrize("json_flag", [["--json"], ["--format", "json"]], ids=["json", "format-json"])
@pytest.mark.parametrize("case", ERROR_ROWS, ids=[c[0] for c in ERROR_ROWS])
def test_errors_are_documents_with_the_same_exit_code(case, json_flag, tmp_path):
    _, argv, category, code = case
    args = [str(a) for a in argv(tmp_path)]
    if json_flag == ["--format", "json"] and args[0] not in ("plan", "show", "diff"):
        json_flag = ["--json"]  # --format is a plan/show/diff option
    plain = run_cli(args, secrets=("pw-closed-port-77",))
    as_json = run_cli([*args, *json_flag], secrets=("pw-closed-port-77",))
    assert plain.code == as_json.code == code, (plain, as_json)
    assert plain.out == ""
    assert as_json.err == plain.err  # stderr keeps its message
    assert len(plain.err.strip().splitlines()) >= 1 and "Traceback" not in as_json.err
    doc = json.loads(as_json.out)
    validate(doc, "error.schema.json")
    assert doc["error"]["code"] == category
    assert doc["error"]["message"] in plain.err
    if category == "input" and "findings" in doc["error"]:
        assert doc["error"]["findings"][0]["path"].endswith("bad.yaml")


def test_an_error_document_never_holds_a_password(tmp_path):
    argv = ["plan", "-f", EXAMPLES, "--json", "--url", "amqp://alice:s3cret-Word-99@127.0.0.1:1/",
            "--management-url", "http://alice:s3cret-Word-99@127.0.0.1:1/", "--timeout", "0.5"]
    r = run_cli(argv, secrets=("s3cret-Word-99",))
    assert r.code == 1
    doc = json.loads(r.out)
    validate(doc, "error.schema.json")
    assert doc["error"]["code"] == "broker" and "127.0.0.1" in doc["error"]["message"]
    usage = run_cli(["validate", "--json", "--urll", "amqp://alice:s3cret-Word-99@h/"], secrets=("s3cret-Word-99",))
    assert usage.code == 1 and json.loads(usage.out)["error"]["code"] == "usage"


@pytest.mark.parametrize("raised,category,code", [
    (KeyboardInterrupt(), "interrupted", 130),
    (RuntimeError("boom at amqp://bob:hunter2-xyz@host/"), "internal", 1),
])
def test_interrupted_and_internal_errors_are_documents(monkeypatch, raised, category, code):
    import topoform.cli.validate as validate_cmd

    def explode(args, env):
        raise raised

    monkeypatch.setattr(validate_cmd, "run", explode)
    r = run_cli(["validate", "-f", EXAMPLES, "--json"], secrets=("hunter2-xyz",))
    assert r.code == code, r
    doc = json.loads(r.out)
    validate(doc, "error.schema.json")
    assert doc["error"]["code"] == category
    plain = run_cli(["validate", "-f", EXAMPLES], secrets=("hunter2-xyz",))
    assert plain.code == code and plain.out == ""


def test_no_second_document_after_one_was_printed(monkeypatch):
    """A command that printed its document and then fails keeps stdout one document (stderr has the error)."""
    import topoform.cli.validate as validate_cmd
    from topoform.errors import BlockedPlanError

    def prints_then_fails(args, env):
        env.out(json.dumps({"format_version": 1, "changes": []}))
        raise BlockedPlanError("the plan holds 1 blocked change; nothing was deleted")

    monkeypatch.setattr(validate_cmd, "run", prints_then_fails)
    r = run_cli(["validate", "--json"])
    assert r.code == 3
    assert json.loads(r.out) == {"format_version": 1, "changes": []}
    assert "blocked change" in r.err


def test_without_json_an_error_prints_nothing_on_stdout():
    r = run_cli(["plan", "-f", EXAMPLES, *CLOSED], secrets=("pw-closed-port-77",))
    assert r.code == 1 and r.out == ""
    # a value that merely looks like the flag is not a request for JSON
    r = run_cli(["test-route", "-f", EXAMPLES, "--vhost", "orders", "--", "orders.events", "--json"])
    assert r.code == 0 and not r.out.lstrip().startswith("{"), r


def test_import_and_export_json_need_an_output_file():
    for argv in (["import", "--state", "x.json", "--json"], ["export", "-f", EXAMPLES, "--json"]):
        r = run_cli(argv)
        assert r.code == 1, r
        doc = json.loads(r.out)
        validate(doc, "error.schema.json")
        assert doc["error"]["code"] == "usage" and "-o" in doc["error"]["message"]


@pytest.mark.parametrize("outcome", ["applied", "failed", "interrupted", "no-changes"])
def test_apply_report_of_each_outcome_matches_the_schema(outcome, tmp_path):
    """The apply report built from each kind of executor result (the live test runs real ones)."""
    from topoform.apply.executor import ApplyResult, Failure, StepTiming
    from topoform.cli.apply import apply_report
    from topoform.planner.plan import Plan

    plan = Plan.from_dict(json.loads(_saved_plan(tmp_path).read_text()))
    changes = list(plan.changes)
    assert len(changes) > 3
    first = changes[0]
    step = StepTiming(first.action.value, first.kind, 1, 0.25)
    results = {
        "applied": ApplyResult(done=changes, elapsed=1.5, steps=[step]),
        "failed": ApplyResult(done=changes[:1], failed=[
            Failure(changes[1], "refused by amqp://u:pw-in-msg-42@h/"),
            Failure(changes[2], "the connection limit of vhost 'v' (2) is reached", "connection-limit",
                    "raise max-connections, see amqp://u:pw-in-hint-43@h/")],
                              not_attempted=changes[3:], elapsed=0.5, steps=[step]),
        "interrupted": ApplyResult(done=changes[:1], not_attempted=changes[1:]),
        "no-changes": None,
    }
    report = apply_report(plan, results[outcome], status="interrupted" if outcome == "interrupted" else None)
    validate(report, "apply-report.schema.json")
    if outcome == "failed":  # code and hint only when known
        assert "code" not in report["failed"][0] and "hint" not in report["failed"][0]
        assert report["failed"][1]["code"] == "connection-limit"
        assert report["failed"][1]["hint"].startswith("raise max-connections")
    assert report["status"] == outcome and report["ok"] is (outcome in ("applied", "no-changes"))
    done = results[outcome].done if results[outcome] else []
    assert report["counts"]["create"] == sum(1 for c in done if c.action.value == "create")
    assert len(report["done"]) + len(report["failed"]) + len(report["not_attempted"]) == \
        (len(changes) if outcome != "no-changes" else 0)
    assert "pw-in-msg-42" not in json.dumps(report) and "pw-in-hint-43" not in json.dumps(report)
