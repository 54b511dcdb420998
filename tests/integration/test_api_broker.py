"""The Python API and the documented pipeline (docs/pipelines.md) against a real broker.

* ``api.plan`` / ``api.apply`` in the test's own vhost: create, then no changes; a plan
  made before someone changed the broker is refused as stale, with nothing changed.
* The walkthrough block of docs/pipelines.md, run as written: validate, test, fmt
  --check, scripts/ci-plan.sh (Markdown plan in the job summary), show, then apply of
  the saved plan on "merge"; a second plan then has no changes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import EXAMPLES, ROOT, run_cli
from topoform.broker.settings import quote_segment
from topoform import api

SCRIPT = ROOT / "scripts" / "ci-plan.sh"
TOPOFORM = str(Path(sys.executable).with_name("topoform"))


def _service_in(vhost: str, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    text = (EXAMPLES / "service.yaml").read_text().replace("\n  orders:\n", f"\n  {vhost}:\n", 1)
    path = folder / "service.yaml"
    path.write_text(text.replace("vhost: orders", f"vhost: {vhost}"))
    return path


def _queues(mgmt, vhost: str) -> set[str]:
    return {q["name"] for q in mgmt.get(f"/api/queues/{quote_segment(vhost)}")}


def test_plan_and_apply_through_the_api(vhost, broker, mgmt, tmp_path, test_password):
    files = _service_in(vhost, tmp_path / "topology")
    connection = {"url": broker.url, "management_url": broker.management_url}
    plan = api.plan(files, **connection, environ={"CI": "true"})
    assert plan.summary["create"] > 10 and not plan.blocked
    assert {c.vhost for c in plan.changes} == {vhost}
    assert "billing.invoices" not in _queues(mgmt, vhost)
    report = api.apply(plan, **connection, environ={"CI": "true"})
    assert report.exit_code == 0 and "Apply complete" in report.output
    assert test_password not in report.output
    assert {"billing.invoices", "shipping.orders", "audit.log"} <= _queues(mgmt, vhost)
    again = api.plan(files, **connection, environ={"CI": "true"})
    assert not again.has_changes
    # the route the service's tests assert offline is the one the broker has now
    assert api.route(files, "orders.events", "order.created").queues == ("audit.log", "billing.invoices",
                                                                         "shipping.orders")


def test_a_stale_plan_is_refused_through_the_api(vhost, broker, mgmt, tmp_path):
    files = _service_in(vhost, tmp_path / "topology")
    connection = {"url": broker.url, "management_url": broker.management_url}
    plan = api.plan(files, **connection, environ={"CI": "true"})
    mgmt.put(f"/api/queues/{quote_segment(vhost)}/someone-else", {"durable": True})  # the broker changes
    with pytest.raises(api.ApplyError) as info:
        api.apply(plan, **connection, environ={"CI": "true"})
    assert info.value.exit_code == 1 and "stale" in info.value.message
    assert _queues(mgmt, vhost) == {"someone-else"}  # nothing applied


def _walkthrough() -> str:
    text = (ROOT / "docs" / "pipelines.md").read_text()
    return re.search(r"<!-- walkthrough -->\n```bash\n(.*?)```\n<!-- /walkthrough -->", text, re.S).group(1)


def test_the_documented_pipeline_runs_against_the_broker(vhost, broker, mgmt, tmp_path, test_password):
    _service_in(vhost, tmp_path / "topology")
    assert run_cli(["fmt", "-f", tmp_path / "topology"]).code == 0  # the repository's files are formatted
    block = _walkthrough().replace("scripts/ci-plan.sh", str(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPOFORM", "GITHUB_"))}
    env.update({"TOPOFORM": TOPOFORM, "TOPOFORM_URL": broker.url, "TOPOFORM_MANAGEMENT_URL": broker.management_url,
                "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "CI": "true",
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for output in (r.stdout, r.stderr, (tmp_path / "summary.md").read_text(), (tmp_path / "topoform.plan.json").read_text()):
        assert test_password not in output
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### topoform plan\n") and "to create" in summary
    assert (tmp_path / "comment.md").read_text() == summary
    assert "Apply complete" in r.stdout
    assert {"billing.invoices", "shipping.orders", "audit.log"} <= _queues(mgmt, vhost)
    # the next pull request's plan: nothing to do
    again = subprocess.run(["bash", str(SCRIPT), "-f", "topology/"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "**No changes.**" in (tmp_path / "topoform-plan.md").read_text()
