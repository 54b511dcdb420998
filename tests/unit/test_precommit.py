"""The project's pre-commit hooks (.pre-commit-hooks.yaml), run by the real pre-commit tool.

A copy of this checkout becomes a hook repository (pre-commit installs topoform from it
into its own environment, as it would from the published repository); a temporary git
repository uses the hooks, through a .pre-commit-config.yaml and through ``try-repo``.
Needs git and the Python package index (pre-commit installs topoform's dependencies).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, run_cli

PRE_COMMIT = [sys.executable, "-m", "pre_commit"]
HOOKS = ("topoform-validate", "topoform-test", "topoform-fmt")


def _git(cwd: Path, *args: str) -> str:
    r = subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-c", "init.defaultBranch=main",
                        *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    """A git repository holding this checkout's package and hooks; returns (path, commit)."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("topoform", "schemas"):
        shutil.copytree(ROOT / name, repo / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "hooks")
    return repo, _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


GOOD = """\
version: 1
vhosts:
  /:
    exchanges:
      events:
        type: topic
        durable: true
    queues:
      orders:
        durable: true
        bindings:
          - {exchange: events, routing_key: order.*}
tests:
  - {exchange: events, routing_key: order.created, expect: [orders]}
"""


def _project(tmp_path: Path, topology: str, hook_repo: tuple[Path, str]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "topology").mkdir()
    (project / "topology" / "orders.yaml").write_text(topology)
    repo, rev = hook_repo
    config = {"repos": [{"repo": str(repo), "rev": rev,
                         "hooks": [{"id": h, "args": ["-f", "topology/"]} for h in HOOKS]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    return project


def _run(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPOFORM")}
    env["PRE_COMMIT_HOME"] = str(home)
    return subprocess.run([*PRE_COMMIT, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)


def _statuses(output: str) -> dict[str, str]:
    names = {"topoform validate": "topoform-validate", "topoform test": "topoform-test",
             "topoform fmt --check": "topoform-fmt"}
    found = {}
    for line in output.splitlines():
        for label, hook in names.items():
            if line.startswith(label + ".") or line.startswith(label + " ."):
                found[hook] = line.rsplit(".", 1)[-1].strip()
    return found


def test_the_good_files_pass_every_hook(tmp_path, hook_repo, pre_commit_home):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert run_cli(["fmt", "--check", "-f", good]).code == 0  # the sample is canonical, valid and tested
    assert run_cli(["test", "-f", good]).code == 0
    project = _project(tmp_path, GOOD, hook_repo)
    r = _run(project, pre_commit_home, "run", "--all-files")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _statuses(r.stdout) == {h: "Passed" for h in HOOKS}, r.stdout


@pytest.mark.parametrize("broken, failing, message", [
    (GOOD.replace("durable: true\n        bindings", "durable: maybe\n        bindings"), {"topoform-validate",
                                                                                     "topoform-test"}, "durable"),
    (GOOD.replace("expect: [orders]", "expect: []"), {"topoform-test"}, "orders"),  # valid, but the route test fails
    (GOOD.replace("exchanges:\n      events:\n        type: topic\n        durable: true",
                  "exchanges:\n      events:\n        durable: true\n        type: topic"), {"topoform-fmt"},
     "topology/orders.yaml"),
])
def test_each_hook_fails_on_what_it_checks(broken, failing, message, tmp_path, hook_repo, pre_commit_home):
    project = _project(tmp_path, broken, hook_repo)
    r = _run(project, pre_commit_home, "run", "--all-files")
    assert r.returncode == 1, r.stdout + r.stderr
    statuses = _statuses(r.stdout)
    failed = {h for h, s in statuses.items() if s == "Failed"}
    assert failed == failing, r.stdout
    assert message in r.stdout
    assert (project / "topology" / "orders.yaml").read_text() == broken  # fmt --check never writes


def test_try_repo_runs_the_hooks(tmp_path, hook_repo, pre_commit_home):
    project = _project(tmp_path, GOOD, hook_repo)
    (project / ".pre-commit-config.yaml").unlink()
    (project / "topoform.yaml").write_text(GOOD)  # the hooks' default file, without args
    _git(project, "add", "-A")
    repo, rev = hook_repo
    r = _run(project, pre_commit_home, "try-repo", str(repo), "--ref", rev, "--all-files")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _statuses(r.stdout) == {h: "Passed" for h in HOOKS}, r.stdout
    (project / "topoform.yaml").write_text(GOOD.replace("type: topic\n        durable: true", "durable: true\n        type: topic"))
    r = _run(project, pre_commit_home, "try-repo", str(repo), "topoform-fmt", "--ref", rev, "--all-files")
    assert r.returncode == 1 and "topoform.yaml" in r.stdout, r.stdout
