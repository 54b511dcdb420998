"""``topoform.api`` used as a service's test suite and a deployment script would use it (offline)."""
from __future__ import annotations

import doctest
import logging
import os

import pytest

import topoform.api
from helpers import EXAMPLES, ROOT
from topoform import api
from topoform.errors import BlockedPlanError, InputError
from topoform.model import Topology
from topoform.planner.plan import Plan

SERVICE = EXAMPLES / "service.yaml"
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_docs_api_examples_run(at_root):
    result = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 15 and result.failed == 0


def test_module_doctests_run(at_root):
    result = doctest.testmod(topoform.api)
    assert result.attempted >= 3 and result.failed == 0


# ---- a service's own test suite: where do my messages go?
@pytest.fixture(scope="module")
def topology() -> Topology:
    return api.load(SERVICE)


@pytest.mark.parametrize("exchange, key, headers, queues", [
    ("orders.events", "order.created", None, ("audit.log", "billing.invoices", "shipping.orders")),
    ("orders.events", "order.eu.paid", None, ("billing.invoices",)),
    ("orders.events", "order.cancelled", None, ("audit.log",)),
    ("orders.events", "inventory.restocked", None, ("orders.unrouted.store",)),
    ("document.render", "", {"format": "pdf"}, ("render.pdf",)),
    ("document.render", "", {"format": "png"}, ("render.images",)),
    ("document.render", "", {"format": "txt"}, ()),
])
def test_a_service_asserts_where_its_messages_go(topology, exchange, key, headers, queues):
    result = api.route(topology, exchange, key, headers=headers)
    assert result.queues == queues
    assert result.unroutable == (not queues)
    assert result.vhost == "orders"  # the only vhost of the files
    assert api.route(SERVICE, exchange, key, headers, vhost="orders").queues == queues  # from the path too


def test_route_reports_the_path(topology):
    result = api.route(topology, "orders.events", "order.eu.paid")
    (only,) = result.routes
    assert [(h.source, h.destination) for h in only.path] == [("orders.events", "billing.events"),
                                                              ("billing.events", "billing.invoices")]
    assert result.to_dict()["queues"] == ["billing.invoices"]


def test_route_in_an_unknown_vhost_or_exchange_is_an_error(topology):
    from topoform.errors import TopoformError

    with pytest.raises(TopoformError):
        api.route(topology, "no.such.exchange", "x")


def test_load_of_several_paths_and_invalid_files(tmp_path):
    both = api.load([EXAMPLES / "topoform.yaml", SERVICE])
    assert set(both.vhost_names()) == {"/", "orders"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("vhosts:\n  /:\n    queues:\n      q: {durable: true}\n      q2: {exclusive: 3}\n")
    with pytest.raises(InputError) as info:
        api.load(bad)
    assert info.value.findings and info.value.findings[0].position.line == 5
    with pytest.raises(InputError, match="not found"):
        api.load(tmp_path / "missing.yaml")


def test_load_logs_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger="topoform"):
        api.load(EXAMPLES / "topoform.yaml", rabbitmq_version="4.3")
    assert any("transient but not exclusive" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="topoform"):
        api.load(EXAMPLES / "topoform.yaml", rabbitmq_version="3.10")
    assert not any("transient but not exclusive" in r.getMessage() for r in caplog.records)


# ---- a deployment script, offline
def test_plan_against_a_state_file_returns_the_plan(tmp_path):
    folder = GOLDEN / "several-vhosts-grouped"
    plan = api.plan(folder / "desired.yaml", state=folder / "live.json")
    assert isinstance(plan, Plan)
    assert plan.summary["create"] == 1 and plan.summary["blocked"] == 1
    assert [c.vhost for c in plan.blocked] == ["b"]
    only_a = api.plan(folder / "desired.yaml", state=folder / "live.json", vhosts=["a"])
    assert only_a.summary["blocked"] == 0 and only_a.vhosts == ("a",)


def test_plan_errors_are_exceptions_with_one_line_messages(tmp_path):
    with pytest.raises(api.PlanError) as info:
        api.plan(tmp_path / "missing.yaml", state=GOLDEN / "no-changes" / "live.json")
    assert "not found" in info.value.message and "\n" not in info.value.message
    with pytest.raises(api.PlanError, match="not a RabbitMQ definitions export"):
        bad = tmp_path / "bad.json"
        bad.write_text("[]")
        api.plan(EXAMPLES / "topoform.yaml", state=bad)
    with pytest.raises(ValueError):
        api.plan(SERVICE, url="amqp://localhost/", state="x.json")


def test_plan_from_the_environment_never_leaks_the_password(tmp_path):
    # nothing listens on port 1: the error names the broker, never the password
    with pytest.raises(api.PlanError) as info:
        api.plan(SERVICE, environ={"TOPOFORM_URL": "amqp://u:s3cret-pw@127.0.0.1:1/",
                                   "TOPOFORM_MANAGEMENT_URL": "http://u:s3cret-pw@127.0.0.1:1", "CI": "true",
                                   "TOPOFORM_TIMEOUT": "2"})
    assert "s3cret-pw" not in info.value.message and "s3cret-pw" not in info.value.output


def test_apply_refuses_a_blocked_plan_without_touching_anything():
    folder = GOLDEN / "queue-ttl-changed-is-blocked"
    plan = api.plan(folder / "desired.yaml", state=folder / "live.json")
    with pytest.raises(BlockedPlanError, match="1 blocked change"):
        api.apply(plan, url="amqp://guest:guest@127.0.0.1:1/")


def test_apply_errors_carry_the_exit_code(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where api.apply writes its temporary plan file
    folder = GOLDEN / "empty-vhost-creates-everything"
    plan = api.plan(folder / "desired.yaml", state=folder / "live.json")
    with pytest.raises(api.ApplyError) as info:
        api.apply(plan, url="amqp://guest:pw-x1@127.0.0.1:1/", management_url="http://guest:pw-x1@127.0.0.1:1",
                  environ={"TOPOFORM_TIMEOUT": "2"})
    assert info.value.exit_code == 1 and "pw-x1" not in info.value.message + info.value.output
    assert os.listdir(tmp_path) == []  # the temporary plan file is removed
