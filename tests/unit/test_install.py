"""topoform installs as a user would install it (issue 12 item 10; docs/install.md).

Offline as far as the broker goes; pip needs its index for the build backend
(``setuptools``, fetched into an isolated build environment, as on CI). Slow-ish: two
builds, about a minute together.

* ``pip wheel`` on a copy of the source builds a wheel without any setuptools warning;
  ``pip install --no-deps`` of it into a fresh venv gives a ``topoform`` command that
  prints its version and validates an example (so the JSON Schemas ship in the wheel).
* ``pip install git+file:///...`` of a git repository holding the source does the same.

The temporary venv is created with ``--system-site-packages`` and sees the project's venv
(through a ``.pth`` line) for the dependencies, so nothing else is downloaded; topoform
itself comes from the wheel (checked: its module lives in the temporary venv).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "topologies" / "topoform.yaml"
SOURCE = ("pyproject.toml", "README.md", "topoform")  # what the build needs
# what setuptools prints when the project's configuration is deprecated or wrong
SETUPTOOLS_WARNING = re.compile(r"SetuptoolsDeprecationWarning|SetuptoolsWarning|_DeprecatedConfig|UserWarning"
                                r"|^\s*warning: |^\s*!!\s*$", re.M)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_REQUIRE_VIRTUALENV", "PYTHONPATH"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # would make setuptools warn that byte-compiling is disabled
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(argv, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=_env(), timeout=600, **kw)
    assert r.returncode == 0, f"{argv} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _copy_source(dest: Path) -> Path:
    dest.mkdir()
    for name in SOURCE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv whose dependencies come from the project's venv, without topoform."""
    path = tmp_path_factory.mktemp("install") / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", path])
    python = path / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "zz_project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path


def _check_installed(venv: Path, cwd: Path) -> None:
    python, command = venv / "bin" / "python", venv / "bin" / "topoform"
    where = _run([python, "-c", "import topoform; print(topoform.__file__)"], cwd=cwd).stdout.strip()
    assert where.startswith(str(venv)), f"topoform was imported from {where}, not from the installed package"
    version = _run([command, "--version"], cwd=cwd).stdout.strip()
    assert re.fullmatch(r"topoform \d+\.\d+\.\d+\S*", version), version
    r = _run([command, "validate", "-f", EXAMPLE, "--json"], cwd=cwd)
    assert '"valid": true' in r.stdout
    r = subprocess.run([command, "validate", "-f", cwd / "missing.yaml"], capture_output=True, text=True,
                       env=_env(), cwd=cwd, timeout=120)
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_a_built_wheel_installs_and_runs(venv, tmp_path):
    src = _copy_source(tmp_path / "src")
    build = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", tmp_path / "dist", src])
    output = build.stdout + build.stderr
    assert not SETUPTOOLS_WARNING.search(output), "the build warns:\n" + "\n".join(
        line for line in output.splitlines() if SETUPTOOLS_WARNING.search(line))
    wheels = list((tmp_path / "dist").glob("topoform-*-py3-none-any.whl"))
    assert len(wheels) == 1, list((tmp_path / "dist").iterdir())
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--ignore-installed", "--force-reinstall",
          wheels[0]])
    _check_installed(venv, tmp_path)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command for a git+file:// URL")
def test_a_git_url_installs_and_runs(venv, tmp_path):
    repo = _copy_source(tmp_path / "repo")
    git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"]
    _run(["git", "init", "-q", repo])
    _run([*git, "add", "."])
    _run([*git, "commit", "-q", "-m", "source"])
    _run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--ignore-installed", "--force-reinstall",
          f"git+{repo.as_uri()}"])
    _check_installed(venv, tmp_path)
