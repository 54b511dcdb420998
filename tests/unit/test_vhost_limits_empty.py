"""``limits: {}`` in a vhost removes its limits with an update, without --prune, as a limit left out of
a list does (docs/configuration.md, Scope); no ``limits:`` key leaves them alone."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli

STATE = {"rabbit_version": "4.3.6", "vhosts": [{"name": "v"}], "queues": [], "exchanges": [], "bindings": [],
         "policies": [], "parameters": [{"vhost": "v", "component": "vhost-limits", "name": "limits",
                                         "value": {"max-queues": 10, "max-connections": 5}}]}


@pytest.mark.parametrize("limits, diff", [
    ("{}", ["limits.max-connections", "limits.max-queues"]),
    ("{max-queues: 10}", ["limits.max-connections"]),
    (None, None),
])
def test_vhost_limits_are_one_setting(tmp_path, limits, diff):
    (tmp_path / "state.json").write_text(json.dumps(STATE))
    (tmp_path / "t.yaml").write_text("vhosts:\n  v:\n" + (f"    limits: {limits}\n" if limits else "    queues: {}\n"))
    r = run_cli(["plan", "--state", "state.json", "-f", "t.yaml", "--json"], cwd=tmp_path, environ={})
    assert r.code == 0, r
    doc = json.loads(r.out)
    changes = [(c["action"], c["kind"], c["diff"]) for c in doc["changes"]]
    assert changes == ([("update", "vhost_limit", diff)] if diff else [])
    assert not [u for u in doc.get("unmanaged", []) if u["kind"] == "vhost_limit"]
