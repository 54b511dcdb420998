"""What topoform writes is in fmt's canonical form: ``fmt --check`` (the pre-commit hook)
passes on an import, a scan and the bundled examples without a rewrite."""
from __future__ import annotations

import pytest

from helpers import ROOT, run_cli

EXAMPLES = [ROOT / "examples" / "topologies", ROOT / "examples" / "code-service"]


def _check(*paths) -> None:
    args = ["fmt", "--check"]
    for p in paths:
        args += ["-f", p]
    r = run_cli(args)
    assert r.code == 0, r.out + r.err


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_bundled_examples_are_canonical(path):
    _check(path)


def test_import_writes_the_canonical_form(tmp_path):
    exported = tmp_path / "definitions.json"
    assert run_cli(["export", "-f", EXAMPLES[0], "-o", exported]).code == 0
    assert run_cli(["import", "--state", exported, "-o", f"{tmp_path}/topology/"]).code == 0
    assert run_cli(["import", "--state", exported, "-o", tmp_path / "one.yaml"]).code == 0
    assert len(list((tmp_path / "topology").glob("*.yaml"))) == 2
    _check(tmp_path / "topology", tmp_path / "one.yaml")


@pytest.mark.parametrize("code", [ROOT / "tests" / "data" / "code" / "services", EXAMPLES[1]], ids=lambda p: p.name)
def test_scan_writes_the_canonical_form(code, tmp_path):
    out = tmp_path / "scanned.yaml"
    r = run_cli(["scan", code, "-o", out])
    assert r.code in (0, 3) and out.exists(), r.err  # 3: the corpus holds conflicts on purpose
    assert "tests:" in out.read_text() and "{" in out.read_text()  # route tests and flow entries to check
    _check(out)
