"""``topoform diff OLD NEW``: the plan from OLD to NEW, offline, with the plan's exit codes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_cli
from json_schemas import validate

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SUPPORTED = {"--prune", "--allow-data-loss", "--migrate"}


def _cases():
    for p in sorted(GOLDEN.iterdir()):
        if (p / "desired.yaml").exists():
            args = json.loads((p / "case.json").read_text()).get("args", [])
            if set(args) <= SUPPORTED:
                yield p.name


@pytest.mark.parametrize("case", list(_cases()))
def test_diff_of_an_export_and_files_is_the_plan(case):
    folder = GOLDEN / case
    args = json.loads((folder / "case.json").read_text()).get("args", [])
    plan = run_cli(["plan", "-f", folder / "desired.yaml", "--state", folder / "live.json", "--detailed-exitcode",
                    *args])
    diff = run_cli(["diff", folder / "live.json", folder / "desired.yaml", *args])
    assert diff.code == plan.code, (diff, plan)
    assert diff.out == plan.out
    as_json = run_cli(["diff", folder / "live.json", folder / "desired.yaml", *args, "--json"])
    validate(as_json.json, "plan.schema.json")
    assert as_json.json["changes"] == run_cli(["plan", "-f", folder / "desired.yaml", "--state",
                                               folder / "live.json", *args, "--json"]).json["changes"]


@pytest.mark.parametrize("name", ["topoform.yaml", "service.yaml"])
def test_same_topology_in_every_form_is_no_change(name, tmp_path):
    yaml_file = EXAMPLES / name
    export = tmp_path / "export.json"
    assert run_cli(["export", "-f", yaml_file, "-o", export]).code == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(yaml_file, folder / name)
    for old, new in [(yaml_file, yaml_file), (folder, yaml_file), (yaml_file, folder), (export, yaml_file)]:
        r = run_cli(["diff", old, new])
        assert r.code == 0, (old, new, r)
        assert r.out == "No changes. OLD and NEW describe the same topology.\n"  # no broker is involved
    md = run_cli(["diff", yaml_file, yaml_file, "--format", "markdown"])
    assert "**No changes.** OLD and NEW describe the same topology." in md.out


def test_changes_exit_2_and_blocked_exit_3(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("vhosts:\n  /:\n    queues:\n      q: {durable: true, arguments: {x-message-ttl: 1000}}\n")
    more = tmp_path / "more.yaml"
    more.write_text("vhosts:\n  /:\n    queues:\n      q: {durable: true, arguments: {x-message-ttl: 1000}}\n"
                    "      r: {durable: true}\n")
    blocked = tmp_path / "blocked.yaml"
    blocked.write_text("vhosts:\n  /:\n    queues:\n      q: {durable: true, arguments: {x-message-ttl: 2000}}\n")
    r = run_cli(["diff", old, more])
    assert r.code == 2 and "+   queue r" in r.out, r
    r = run_cli(["diff", old, blocked])
    assert r.code == 3 and "!   queue q" in r.out and "x-message-ttl: 1000 -> 2000" in r.out, r
    # the other way round: r is only in OLD: unmanaged, unless --prune
    r = run_cli(["diff", more, old])
    assert r.code == 0 and "Unmanaged" in r.out and "queue r" in r.out
    r = run_cli(["diff", more, old, "--prune"])
    assert r.code == 3 and "!   queue r" in r.out and "could lose them" in r.out, r  # counts unknown offline
    r = run_cli(["diff", more, old, "--prune", "--allow-data-loss"])
    assert r.code == 2 and "-   queue r" in r.out, r


def test_formats_and_summary(tmp_path):
    folder = GOLDEN / "several-vhosts-grouped"
    md = run_cli(["diff", folder / "live.json", folder / "desired.yaml", "--format", "markdown"])
    assert md.code == 3 and md.out.startswith("### topoform diff\n") and "#### Blocked changes (1)" in md.out
    summary = run_cli(["diff", folder / "live.json", folder / "desired.yaml", "--summary", "--json"])
    validate(summary.json, "plan-summary.schema.json")
    assert summary.json["summary"]["blocked"] == 1


def test_a_vhost_only_in_old_is_mentioned(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("vhosts:\n  /: {queues: {q: {}}}\n  legacy: {queues: {z: {}}}\n")
    new = tmp_path / "new.yaml"
    new.write_text("vhosts:\n  /: {queues: {q: {}}}\n")
    r = run_cli(["diff", old, new])
    assert r.code == 0 and "vhost 'legacy' is only in OLD" in r.err


@pytest.mark.parametrize("make, message", [
    (lambda t: (t / "missing.yaml", EXAMPLES / "topoform.yaml"), "OLD"),
    (lambda t: (EXAMPLES / "topoform.yaml", t / "missing.yaml"), "NEW"),
    (lambda t: (t / "list.json", EXAMPLES / "topoform.yaml"), "not a RabbitMQ definitions export"),
    (lambda t: (EXAMPLES / "topoform.yaml", t / "bad.yaml"), "error"),
    (lambda t: (t / "bad.json", EXAMPLES / "topoform.yaml"), "invalid JSON"),
])
def test_errors_exit_1_in_one_line(make, message, tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "bad.yaml").write_text("vhosts:\n  /:\n    queues: [1]\n")
    old, new = make(tmp_path)
    r = run_cli(["diff", old, new])
    assert r.code == 1, r
    assert message in r.err and "Traceback" not in r.err and r.out == ""
