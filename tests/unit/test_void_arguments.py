"""Null (AMQP void) arguments: read back from the management API, refused by export, warned on."""
from helpers import run_cli

from topoform.broker.rows import binding_from_row
from topoform.export import export_definitions
from topoform.load import load_text

NULL_BINDING = """
vhosts:
  v:
    exchanges: {h: {type: headers}}
    queues:
      q:
        bindings: [{exchange: h, arguments: {x-match: all, has-trace: null}}]
        durable: true
"""


def test_the_apis_undefined_is_read_as_void():
    row = {"source": "h", "destination": "q", "destination_type": "queue", "routing_key": "",
           "arguments": {"x-match": "all", "has-trace": "undefined", "t": {"inner": "undefined"}}}
    b = binding_from_row(row, "v")
    assert b.arguments.to_dict() == {"x-match": "all", "has-trace": None, "t": {"inner": None}}


def test_a_null_binding_from_the_files_equals_what_the_broker_shows():
    desired = next(iter(load_text(NULL_BINDING).topology.bindings))
    live = binding_from_row({"source": "h", "destination": "q", "destination_type": "queue", "routing_key": "",
                             "arguments": {"x-match": "all", "has-trace": "undefined"}}, "v")
    assert desired == live


def test_export_refuses_null_naming_the_object(tmp_path):
    result = export_definitions(load_text(NULL_BINDING).topology)
    assert result.problems == ["binding h -> q [] in vhost 'v' has arguments.has-trace: null, which the broker's "
                               "definitions import refuses (400 null_not_allowed)"]
    (tmp_path / "t.yaml").write_text(NULL_BINDING)
    r = run_cli(["export", "-f", tmp_path / "t.yaml"])
    assert r.code == 1 and r.out == "" and "null_not_allowed" in r.err and r.err.count("\n") == 1


def test_validate_warns_about_the_string_undefined(tmp_path):
    (tmp_path / "t.yaml").write_text(NULL_BINDING.replace("has-trace: null", 'has-trace: "undefined"'))
    r = run_cli(["validate", "-f", tmp_path / "t.yaml"])
    assert r.code == 0
    assert 't.yaml:7:71: warning: binding argument \'has-trace\' is the string "undefined"' in r.err
