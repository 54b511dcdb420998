"""The CI pieces, run locally and offline: scripts/ci-plan.sh, action.yml's plan step, docs/pipelines.md."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, run_cli

GOLDEN = ROOT / "tests" / "golden"
SCRIPT = ROOT / "scripts" / "ci-plan.sh"
TOPOFORM = str(Path(sys.executable).with_name("topoform"))


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPOFORM", "GITHUB_"))}
    env.update({"TOPOFORM": TOPOFORM, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
                "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    env.update(extra)
    return env


def _outputs(tmp_path: Path) -> dict:
    return dict(line.split("=", 1) for line in (tmp_path / "output.txt").read_text().splitlines())


@pytest.mark.parametrize("case, exit_code, plan_code", [
    ("no-changes", 0, 0),
    ("empty-vhost-creates-everything", 0, 2),
    ("several-vhosts-grouped", 3, 3),
])
def test_ci_plan_writes_the_markdown_plan_to_the_job_summary(case, exit_code, plan_code, tmp_path):
    folder = GOLDEN / case
    (tmp_path / "summary.md").write_text("earlier step\n")
    r = subprocess.run(["bash", str(SCRIPT), "-f", str(folder / "desired.yaml"), "--state", str(folder / "live.json")],
                       cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == exit_code, r.stderr
    expected = run_cli(["plan", "-f", folder / "desired.yaml", "--state", folder / "live.json", "--format",
                        "markdown"]).out
    assert (tmp_path / "topoform-plan.md").read_text() == expected
    assert (tmp_path / "summary.md").read_text() == "earlier step\n" + expected  # appended
    outputs = _outputs(tmp_path)
    assert outputs["exitcode"] == str(plan_code)
    assert outputs["changes"] == ("true" if plan_code else "false")
    assert outputs["blocked"] == ("true" if plan_code == 3 else "false")
    assert outputs["plan-file"] == "topoform.plan.json"
    shown = run_cli(["show", tmp_path / "topoform.plan.json", "--format", "markdown"])
    assert shown.code == 0 and shown.out == expected


def test_ci_plan_reports_an_error_in_the_summary(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "-f", "missing.yaml", "--state", "missing.json"], cwd=tmp_path,
                       env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 1
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### topoform plan failed") and "missing.yaml" in summary
    assert _outputs(tmp_path)["exitcode"] == "1"


def test_ci_plan_without_github_variables_and_with_plan_files(tmp_path):
    folder = GOLDEN / "empty-vhost-creates-everything"
    env = _env(tmp_path, TOPOFORM_PLAN_FILES=str(folder / "desired.yaml"), TOPOFORM_PLAN_OUT="p.json",
               TOPOFORM_PLAN_MARKDOWN="p.md")
    del env["GITHUB_STEP_SUMMARY"], env["GITHUB_OUTPUT"]
    r = subprocess.run(["bash", str(SCRIPT), "--state", str(folder / "live.json")], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.json").exists() and "to create" in (tmp_path / "p.md").read_text()
    assert not (tmp_path / "summary.md").exists()


def test_the_action_plan_step_runs_the_script(tmp_path):
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "plan")
    folder = GOLDEN / "several-vhosts-grouped"
    inputs = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    inputs.update({"files": str(folder / "desired.yaml"), "args": f"--state {folder / 'live.json'}"})

    def expand(text: str) -> str:
        return re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m.group(1)], text)

    env = _env(tmp_path, GITHUB_ACTION_PATH=str(ROOT), **{k: expand(v) for k, v in step["env"].items()})
    r = subprocess.run(["bash", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 3, r.stderr  # a blocked change fails the check
    assert "#### Blocked changes (1)" in (tmp_path / "summary.md").read_text()
    assert set(action["outputs"]) == {"exitcode", "changes", "blocked", "plan-file", "markdown-file"}
    assert _outputs(tmp_path)["blocked"] == "true"
    install = next(s for s in action["runs"]["steps"] if s.get("name") == "Install topoform")
    assert '"$GITHUB_ACTION_PATH"' in install["run"]


def walkthrough() -> tuple[str, str]:
    """docs/pipelines.md's walkthrough block: (pull-request part, merge part)."""
    text = (ROOT / "docs" / "pipelines.md").read_text()
    block = re.search(r"<!-- walkthrough -->\n```bash\n(.*?)```\n<!-- /walkthrough -->", text, re.S).group(1)
    pr, merge = block.split("# 2.", 1)
    return pr, "# 2." + merge


def prepare_walkthrough(tmp_path: Path, vhost: str) -> None:
    topology = tmp_path / "topology"
    topology.mkdir()
    shutil.copy(ROOT / "examples" / "topologies" / "service.yaml", topology / "service.yaml")
    text = (topology / "service.yaml").read_text().replace("\n  orders:\n", f"\n  {vhost}:\n", 1)
    text = text.replace("vhost: orders", f"vhost: {vhost}")
    (topology / "service.yaml").write_text(text)
    assert run_cli(["fmt", "-f", topology]).code == 0


def test_the_documented_pull_request_steps_run_offline(tmp_path):
    pr, _ = walkthrough()
    prepare_walkthrough(tmp_path, "orders")
    state = tmp_path / "state.json"
    state.write_text('{"vhosts": [], "queues": [], "exchanges": [], "bindings": [], "policies": []}')
    assert "scripts/ci-plan.sh -f topology/" in pr
    offline = pr.replace("scripts/ci-plan.sh -f topology/", f"{SCRIPT} -f topology/ --state {state}")
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", offline], cwd=tmp_path, env=_env(tmp_path),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "comment.md").read_text() == (tmp_path / "topoform-plan.md").read_text()
    assert "to create" in (tmp_path / "summary.md").read_text()
