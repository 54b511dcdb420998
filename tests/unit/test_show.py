"""``topoform show PLANFILE``: a saved plan rendered as plan renders it; anything else refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_cli
from json_schemas import validate

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = ["queue-ttl-changed-is-blocked", "several-vhosts-grouped", "prune-deletes-and-blocks-data-loss",
         "policy-updated-in-place", "no-changes"]


def _saved(case: str, tmp_path: Path) -> tuple[Path, list[str]]:
    folder = GOLDEN / case
    args = json.loads((folder / "case.json").read_text()).get("args", [])
    out = tmp_path / f"{case}.plan.json"
    argv = ["plan", "-f", folder / "desired.yaml", "--state", folder / "live.json", *args]
    r = run_cli([*argv, "--out", out])
    assert r.code in (0, 2, 3), r  # case.json may ask for --detailed-exitcode
    assert out.exists()
    return out, [str(a) for a in argv]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_show_renders_the_saved_plan_as_plan_does(case, fmt, tmp_path):
    saved, argv = _saved(case, tmp_path)
    shown = run_cli(["show", saved, "--format", fmt])
    planned = run_cli([*argv, "--format", fmt])
    assert shown.code == 0, shown
    assert shown.out == planned.out
    if fmt == "json":
        assert shown.json == json.loads(saved.read_text())
        validate(shown.json, "plan.schema.json")


@pytest.mark.parametrize("case", CASES)
def test_show_summary_and_json_flag(case, tmp_path):
    saved, argv = _saved(case, tmp_path)
    shown = run_cli(["show", saved, "--summary"])
    assert shown.code == 0 and shown.out == run_cli([*argv, "--summary"]).out
    as_json = run_cli(["show", saved, "--json", "--summary"])
    assert as_json.code == 0
    validate(as_json.json, "plan-summary.schema.json")
    assert as_json.json["summary"] == json.loads(saved.read_text())["summary"]
    assert run_cli(["show", saved, "--json"]).out == run_cli(["show", saved, "--format", "json"]).out


def _one_line_error(r, *expected: str) -> None:
    assert r.code == 1, r
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r
    assert "Traceback" not in r.err
    for text in expected:
        assert text in lines[0], r


def test_a_definitions_export_is_not_a_plan(tmp_path):
    _one_line_error(run_cli(["show", GOLDEN / "no-changes" / "live.json"]), "not a plan file", "definitions export")


def test_a_topology_file_is_not_a_plan():
    _one_line_error(run_cli(["show", EXAMPLES / "topoform.yaml"]), "not a plan file", "not JSON")


@pytest.mark.parametrize("content", ["[]", "{}", '{"changes": 3, "fingerprint": ""}', "null", "\xff\xfe"])
def test_other_json_is_not_a_plan(content, tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(content.encode("latin-1"))
    _one_line_error(run_cli(["show", path]), str(path), "not a plan file")


def test_another_format_version_is_refused(tmp_path):
    saved, _ = _saved("queue-ttl-changed-is-blocked", tmp_path)
    data = json.loads(saved.read_text())
    data["format_version"] = 99
    saved.write_text(json.dumps(data))
    _one_line_error(run_cli(["show", saved]), "format_version 99")


def test_missing_file_and_directory(tmp_path):
    _one_line_error(run_cli(["show", tmp_path / "nope.json"]), "cannot read plan file")
    _one_line_error(run_cli(["show", tmp_path]), "is a directory")


def test_contradictory_format_flags_are_a_usage_error(tmp_path):
    saved, _ = _saved("queue-ttl-changed-is-blocked", tmp_path)
    _one_line_error(run_cli(["show", saved, "--json", "--format", "markdown"]), "--json contradicts --format")
    r = run_cli(["show", saved, "--format", "yaml"])
    assert r.code == 1 and "invalid choice" in r.err


def _fleet(tmp_path: Path) -> tuple[Path, dict]:
    """A fleet's plan file as 'plan --targets FILE --out PLANFILE' writes it: one saved plan per target."""
    plans = {}
    for name, case in (("eu", "queue-ttl-changed-is-blocked"), ("us", "several-vhosts-grouped")):
        saved, _argv = _saved(case, tmp_path)
        plans[name] = json.loads(saved.read_text())
    path = tmp_path / "fleet.plan.json"
    path.write_text(json.dumps({"format_version": 1, "targets": plans}))
    return path, plans


def test_show_renders_a_fleet_plan_one_section_per_target(tmp_path):
    path, plans = _fleet(tmp_path)
    r = run_cli(["show", path])
    assert r.code == 0, r
    eu = run_cli(["show", tmp_path / "queue-ttl-changed-is-blocked.plan.json"]).out
    us = run_cli(["show", tmp_path / "several-vhosts-grouped.plan.json"]).out
    assert r.out == f"=== target eu ===\n{eu}\n=== target us ===\n{us}"
    r = run_cli(["show", path, "--json"])
    assert r.code == 0 and r.json == {"format_version": 1, "targets": plans}
    validate(r.json, "fleet-plan.schema.json")
    r = run_cli(["show", path, "--format", "markdown"])
    assert r.code == 0 and "### topoform plan: target eu" in r.out and "### topoform plan: target us" in r.out
    r = run_cli(["show", path, "--summary"])
    assert r.code == 0 and r.out.count("=== target ") == 2 and "Blocked (1):" in r.out


def test_a_changed_target_of_a_fleet_plan_is_refused(tmp_path):
    path, plans = _fleet(tmp_path)
    plans["us"]["changes"][0]["name"] = "renamed"
    path.write_text(json.dumps({"format_version": 1, "targets": plans}))
    _one_line_error(run_cli(["show", path]), f"the plan file {path} (target us) was changed after it was saved")
