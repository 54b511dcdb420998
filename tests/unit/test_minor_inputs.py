"""Small input mistakes, each told for what it is: -f /dev/null (not a regular file), a URL port out
of range (no percent-encoding hint), --var =5 (the name is empty), a binary file (counted), and the
fleet JSON's error entries (hint null when there is none, as in every error document)."""
from __future__ import annotations

import pytest

from helpers import run_cli
from json_schemas import validate


def test_dev_null_is_not_a_regular_file_not_missing():
    r = run_cli(["validate", "-f", "/dev/null"])
    assert r.code == 1 and "Traceback" not in r.err, r
    assert r.err.startswith("topoform: error: topology file /dev/null is not a regular file: it is a character "
                            "device"), r
    assert "not found" not in r.err


@pytest.mark.parametrize("flag, url", [("--url", "amqp://u:pw-x@localhost:99999/"),
                                       ("--url", "amqp://u:pw-x@localhost:0/"),
                                       ("--management-url", "http://u:pw-x@localhost:70000")])
def test_a_port_out_of_range_is_said_so_without_an_encoding_hint(tmp_path, flag, url):
    (tmp_path / "t.yaml").write_text("vhosts: {v: {}}\n")
    r = run_cli(["plan", "-f", tmp_path / "t.yaml", flag, url], secrets=("pw-x",))
    port = url.rsplit(":", 1)[1].strip("/")
    assert r.code == 1 and f"{flag}: the port {port} is out of range" in r.err, r
    assert "percent-encode" not in r.err


def test_a_port_that_is_not_a_number_keeps_the_encoding_hint(tmp_path):
    (tmp_path / "t.yaml").write_text("vhosts: {v: {}}\n")
    r = run_cli(["plan", "-f", tmp_path / "t.yaml", "--url", "amqp://u:p@ss@localhost:5x/"], secrets=("p@ss",))
    assert r.code == 1 and "percent-encode" in r.err, r


@pytest.mark.parametrize("value, words", [("=5", "the name before '=' is empty"), (" =5", "the name before '=' is empty"),
                                          ("ttl", "no '=' given"), ("a-b=1", "(got 'a-b')")])
def test_var_without_a_usable_name_says_what_is_wrong(tmp_path, value, words):
    (tmp_path / "t.yaml").write_text("vhosts: {v: {}}\n")
    r = run_cli(["validate", "-f", tmp_path / "t.yaml", "--var", value])
    assert r.code == 1 and words in r.err and "'nothing'" not in r.err, r


def test_a_binary_file_is_counted_among_the_files(tmp_path):
    (tmp_path / "b.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (tmp_path / "t.yaml").write_text("vhosts: {v: {}}\n")
    r = run_cli(["validate", "-f", tmp_path / "b.yaml"])
    assert r.code == 1 and r.err.strip().splitlines()[-1] == "invalid: 1 error in 1 file", r
    r = run_cli(["validate", "-f", tmp_path / "b.yaml", "-f", tmp_path / "t.yaml"])
    assert r.err.strip().splitlines()[-1] == "invalid: 1 error in 2 files", r


def test_fleet_json_errors_have_a_null_hint_when_there_is_none(tmp_path):
    (tmp_path / "topo.yaml").write_text("vhosts: {v: {queues: {q: {durable: true}}}}\n")
    (tmp_path / "t.yaml").write_text(
        "targets:\n  one: {url: 'amqp://u@127.0.0.1:1/', management_url: 'http://127.0.0.1:1/', password: "
        "{env: NOPE}}\n  two: {url: 'amqp://u@127.0.0.1:1/', management_url: 'http://127.0.0.1:1/'}\n")
    r = run_cli(["plan", "-f", "topo.yaml", "--targets", "t.yaml", "--json", "--timeout", "2"], cwd=tmp_path)
    assert r.code == 1, r
    validate(r.json, "fleet-plan.schema.json")
    hints = [doc["error"]["hint"] for doc in r.json["targets"].values()]
    assert len(hints) == 2 and all(h is None or (isinstance(h, str) and h) for h in hints), hints
    assert None in hints  # the missing password variable names no remedy beyond its message
