"""A vhost default queue type the broker reports as unset is not ``classic`` (issue 11, item 3)."""
from __future__ import annotations

from topoform.apply.executor import _vhost_body
from topoform.broker.live import LiveState, vhost_from_row
from topoform.dump import dump_topology
from topoform.model import Topology, Vhost
from topoform.planner import PlanOptions, make_plan
from topoform.planner.normalize import vhost_defaults
from topoform.planner.plan import Action, Change

UNSET_ROW = {"name": "v", "description": "", "tags": [], "default_queue_type": "undefined"}  # 3.10's answer


def _plan(desired: Vhost):
    live = LiveState(topology=Topology.build([vhost_from_row(UNSET_ROW)]))
    return make_plan(Topology.build([desired]), live, PlanOptions())


def test_files_that_set_classic_update_a_vhost_that_has_none():
    plan = _plan(Vhost("v", default_queue_type="classic"))
    assert [(c.action, c.diff) for c in plan.changes] == [(Action.UPDATE, ("default_queue_type",))]


def test_files_that_name_no_default_change_nothing():
    assert _plan(Vhost("v")).changes == ()


def test_import_writes_no_default_for_a_vhost_that_has_none():
    text = dump_topology(Topology.build([vhost_from_row(UNSET_ROW)]))
    assert "default_queue_type" not in text
    text = dump_topology(Topology.build([vhost_from_row(dict(UNSET_ROW, default_queue_type="classic"))]))
    assert "default_queue_type: classic" in text


def test_apply_never_sends_a_setting_the_files_do_not_name():
    live, files = vhost_from_row(UNSET_ROW), Vhost("v", tags=("a",))
    assert "defaultqueuetype" not in _vhost_body(Change(Action.UPDATE, "vhost", "v", "v", before=live, after=files))
    assert "defaultqueuetype" not in _vhost_body(Change(Action.CREATE, "vhost", "v", "v", after=Vhost("v")))
    assert _vhost_body(Change(Action.CREATE, "vhost", "v", "v", after=Vhost("v", default_queue_type="quorum"))) \
        == {"defaultqueuetype": "quorum"}


def test_an_unset_default_makes_declares_classic():
    live = Topology.build([vhost_from_row(UNSET_ROW)])
    assert vhost_defaults(Topology.build([Vhost("v")]), live) == {"v": None}
