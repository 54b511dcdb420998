"""validate's shovel checks (topoform/config/load.py: check_shovels), offline.

What they warn about is measured on the three brokers in tests/integration/test_shovel_uris.py:
``amqp://`` works in vhost ``/``; a queue the shovel names that does not exist is declared by the
broker as a durable classic queue.
"""
from __future__ import annotations

import pytest

from topoform.config.load import local_vhost
from topoform.load import load_text


def _findings(shovels: str, extra: str = "", vhost: str = "shop") -> list[tuple[str, str]]:
    text = (f"vhosts:\n  {vhost!r}:\n    queues: {{orders: {{}}, orders.v2: {{}}}}\n"
            f"    exchanges: {{events: {{type: topic}}}}\n{extra}    shovels:\n{shovels}")
    loaded = load_text(text)
    return sorted((f.code, f.severity) for f in loaded.findings if f.code.startswith("shovel-"))


@pytest.mark.parametrize("uri, vhost", [
    ("amqp://", "/"), ("amqps://", "/"), ("amqp://?heartbeat=10", "/"), ("amqp:///shop", "shop"),
    ("amqp:///%2F", "/"), ("amqp:///a%2Fb", "a/b"), ("amqp:///", ""),
    ("amqp://localhost/shop", None), ("amqp://u@h:5672", None), ("http://x", None), ("", None), (None, None),
])
def test_the_vhost_of_a_uri_without_a_host(uri, vhost):
    assert local_vhost(uri) == vhost


def test_a_uri_without_a_vhost_in_another_vhost_is_a_warning_with_the_uri_to_write():
    loaded = load_text("vhosts:\n  shop:\n    queues: {orders: {}, orders.v2: {}}\n    shovels:\n"
                       "      mv: {src-uri: 'amqp://', src-queue: orders, dest-uri: 'amqp:///shop', dest-queue: orders.v2}\n")
    (finding,) = [f for f in loaded.findings if f.code.startswith("shovel-")]
    assert finding.code == "shovel-default-vhost" and finding.severity == "warning"
    assert "src-uri 'amqp://'" in finding.message and "vhost '/', not 'shop'" in finding.message
    assert "'amqp:///shop'" in finding.hint
    assert finding.position is not None and finding.position.line == 5
    assert loaded.ok  # a warning: validate still exits 0


def test_in_vhost_slash_amqp_is_the_shovels_own_vhost():
    assert _findings("      mv: {src-uri: 'amqp://', src-queue: orders, dest-uri: 'amqp://', dest-queue: orders.v2}\n",
                     vhost="/") == []


def test_a_queue_the_files_do_not_declare_is_a_warning_in_a_managed_vhost():
    got = _findings("      mv: {src-uri: 'amqp:///shop', src-queue: ordrs, dest-uri: 'amqp:///shop', "
                    "dest-queue: orders.v3}\n")
    assert got == [("shovel-undeclared-queue", "warning")] * 2


def test_declared_external_and_super_stream_queues_are_known():
    extra = ("    external: {queues: [legacy]}\n"
             "    super_streams: {invoices: {partitions: 2}}\n")
    assert _findings("      a: {src-uri: 'amqp:///shop', src-queue: legacy, dest-uri: 'amqp:///shop', dest-queue: orders}\n"
                     "      b: {src-uri: 'amqp:///shop', src-queue: invoices-1, dest-uri: 'amqp:///shop', "
                     "dest-exchange: invoices}\n", extra) == []


def test_exchanges_the_files_do_not_declare_are_a_warning_but_amq_ones_are_known():
    got = _findings("      a: {src-uri: 'amqp:///shop', src-exchange: evnts, src-exchange-key: '#', "
                    "dest-uri: 'amqp:///shop', dest-exchange: amq.topic}\n"
                    "      b: {src-uri: 'amqp:///shop', src-queue: orders, dest-uri: 'amqp:///shop', dest-exchange: events}\n")
    assert got == [("shovel-undeclared-exchange", "warning")]


def test_remote_secret_unmanaged_vhost_and_several_uris_are_not_checked():
    got = _findings("      a: {src-uri: 'amqp://other-host/shop', src-queue: nope, dest-uri: {env: DEST}, dest-queue: nope}\n"
                    "      b: {src-uri: 'amqp:///elsewhere', src-queue: nope, dest-uri: ['amqp:///shop', 'amqp:///x'], "
                    "dest-queue: nope}\n")
    assert got == []


def test_the_empty_vhost_is_an_error():
    loaded = load_text("vhosts:\n  shop:\n    queues: {orders: {}}\n    shovels:\n"
                       "      mv: {src-uri: 'amqp:///', src-queue: orders, dest-uri: 'amqp:///shop', dest-queue: orders}\n")
    assert [(f.code, f.severity) for f in loaded.findings if f.code.startswith("shovel-")] == [
        ("shovel-empty-vhost", "error")]
    assert not loaded.ok


def test_validate_json_carries_the_hint_and_matches_its_schema(tmp_path):
    from helpers import run_cli
    from json_schemas import validate

    (tmp_path / "topoform.yaml").write_text(
        "vhosts:\n  shop:\n    queues: {orders: {durable: true}}\n    shovels:\n"
        "      mv: {src-uri: 'amqp://', src-queue: orders, dest-uri: 'amqp:///shop', dest-queue: orders}\n")
    r = run_cli(["validate", "--json"], cwd=tmp_path)
    assert r.code == 0, r
    validate(r.json, "validate.schema.json")
    (finding,) = r.json["findings"]
    assert finding["code"] == "shovel-default-vhost" and finding["hint"].startswith("write 'amqp:///shop'")
    text = run_cli(["validate"], cwd=tmp_path)
    assert f"({finding['hint']})" in text.err


# ---------------------------------------------------------------- federation upstream URIs
def _federation(upstreams: str, vhost: str = "shop") -> list[tuple[str, str]]:
    loaded = load_text(f"vhosts:\n  {vhost!r}:\n    exchanges: {{events: {{type: topic}}}}\n"
                       f"    federation_upstreams:\n{upstreams}")
    return sorted((f.code, f.severity) for f in loaded.findings if f.code.startswith("federation-"))


@pytest.mark.parametrize("uri, vhost, expected", [
    ("amqp://", "shop", [("federation-self-upstream", "warning")]),  # no path: the upstream's own vhost
    ("amqp://", "/", [("federation-self-upstream", "warning")]),
    ("amqp:///shop", "shop", [("federation-self-upstream", "warning")]),
    ("amqp:///%2F", "/", [("federation-self-upstream", "warning")]),
    ("amqp:///%2F", "shop", []),  # another vhost of this broker: a real upstream
    ("amqp:///other", "shop", []),
    ("amqp:///", "shop", [("federation-empty-vhost", "error")]),
    ("amqps://far.example/shop", "shop", []),  # remote
])
def test_a_federation_upstream_uri_without_a_host(uri, vhost, expected):
    assert _federation(f"      up: {{uri: {uri!r}}}\n", vhost=vhost) == expected


def test_an_upstream_naming_its_own_exchange_or_queue_is_not_federation_from_itself():
    assert _federation("      a: {uri: 'amqp://', exchange: events.src}\n"
                       "      b: {uri: 'amqp://', queue: orders.src}\n") == []


def test_the_self_upstream_warning_names_the_vhost_and_the_uris_to_write():
    loaded = load_text("vhosts:\n  shop:\n    federation_upstreams:\n      self: {uri: 'amqp://', expires: 1000}\n")
    (finding,) = [f for f in loaded.findings if f.code.startswith("federation-")]
    assert "vhost 'shop' itself" in finding.message and "twice" in finding.message
    assert "'amqp:///shop'" in finding.hint and "amqp://host/vhost" in finding.hint
    assert finding.position is not None and finding.position.line == 4
    assert loaded.ok


def test_an_upstream_uri_from_the_environment_is_not_checked():
    assert _federation("      up: {uri: {env: UPSTREAM_URI}}\n") == []
