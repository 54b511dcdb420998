"""The documentation is complete inside the repository (issue 12 items 7 and 10).

* Every ``TOPOFORM_*`` environment variable the code, the scripts or the action read is
  listed in docs/environment.md (and so is ``NO_COLOR``).
* docs/ and README.md link to no file outside the repository, refer to no document a
  user does not have (the project's internal specification and notes), and every relative
  link points at a file that exists.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
NAME = re.compile(r"TOPOFORM_[A-Z0-9]+(?:_[A-Z0-9]+)*")
# documents that exist only where topoform is developed, never in a user's checkout
INTERNAL = re.compile(r"\.\./shared|\bSPEC(\.md)?\s+section|\bSPEC\.md\b|\bDESIGN\.md\b|\bBROKERS\.md\b"
                      r"|RABBITMQ-SEMANTICS|/work/")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _sources() -> list[Path]:
    return (sorted((ROOT / "topoform").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.sh"))
            + [ROOT / "action.yml"])


def test_every_environment_variable_is_documented():
    doc = (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")
    used = {m for path in _sources() if path.exists() for m in NAME.findall(path.read_text(encoding="utf-8"))}
    assert {"TOPOFORM_URL", "TOPOFORM_FILE"} <= used  # the scan finds them at all
    missing = sorted(name for name in used if name not in doc)
    assert not missing, f"not in docs/environment.md: {missing}"
    assert "NO_COLOR" in doc


def test_the_readme_points_at_the_environment_doc():
    assert "docs/environment.md" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_refer_to_nothing_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    bad = [f"{path.name}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if INTERNAL.search(line)]
    assert not bad, "\n".join(bad)
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        file = (path.parent / target.split("#", 1)[0]).resolve()
        assert ROOT in file.parents or file == ROOT, f"{path.name}: link {target} leaves the repository"
        assert file.exists(), f"{path.name}: link {target} points at nothing"
