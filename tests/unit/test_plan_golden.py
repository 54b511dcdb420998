"""Golden plans: one folder per scenario under ``tests/golden``, one parametrized test.

Each folder holds ``desired.yaml`` (the files), ``live.json`` (the broker, as a
definitions export), ``case.json`` (extra ``plan`` arguments and the expected exit
code) and the expected ``expected.txt`` and ``expected.json``. Every example topology
is also a case against an empty broker (``tests/golden/examples/<name>.*``).

The plan runs through the real CLI (``topoform plan --state live.json``), so the
text, the JSON and the exit code are what users get.

Regenerate for review with ``TOPOFORM_REGEN_GOLDEN=1 pytest tests/unit/test_plan_golden.py``,
then read the diff before committing it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_cli

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
REGEN = os.environ.get("TOPOFORM_REGEN_GOLDEN") == "1"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "desired.yaml").exists())
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml")) if EXAMPLES.exists() else []


def _check(path: Path, actual: str) -> None:
    if REGEN or not path.exists():
        path.write_text(actual)
        if not REGEN:
            pytest.fail(f"wrote missing golden file {path.relative_to(GOLDEN)}; review it and rerun")
        return
    expected = path.read_text()
    assert actual == expected, f"{path.relative_to(GOLDEN)} differs (regenerate with TOPOFORM_REGEN_GOLDEN=1)"


def _plan(files: list[str], state: Path, args: list[str], cwd: Path):
    argv = ["plan", *[a for f in files for a in ("-f", f)], "--state", str(state), *args]
    text = run_cli(argv, cwd=cwd, environ={})
    data = run_cli([*argv, "--json"], cwd=cwd, environ={})
    assert text.code == data.code, (text, data)
    assert text.err == "" or "warning" in text.err, text
    return text, data


@pytest.mark.parametrize("case", CASES)
def test_golden_plan(case):
    folder = GOLDEN / case
    spec = json.loads((folder / "case.json").read_text())
    text, data = _plan(["desired.yaml"], folder / "live.json", spec.get("args", []), folder)
    assert text.code in (0, 2, 3), text
    if REGEN or "exit" not in spec:
        spec["exit"] = text.code
        (folder / "case.json").write_text(json.dumps(spec) + "\n")
    assert text.code == spec["exit"], text
    _check(folder / "expected.txt", text.out)
    _check(folder / "expected.json", data.out)


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_golden_example_against_an_empty_broker(example, tmp_path):
    state = tmp_path / "empty.json"
    state.write_text(json.dumps({"vhosts": [], "queues": [], "exchanges": [], "bindings": [], "policies": []}))
    text, data = _plan([str(EXAMPLES / example)], state, ["--detailed-exitcode"], EXAMPLES)
    assert text.code == 2, text
    out = GOLDEN / "examples"
    out.mkdir(exist_ok=True)
    stem = Path(example).stem
    _check(out / f"{stem}.txt", text.out)
    _check(out / f"{stem}.json", data.out)


def test_there_are_at_least_fifteen_scenarios():
    assert len(CASES) >= 15
