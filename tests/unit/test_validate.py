"""`topoform validate` and the schema behind it."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from topoform import schema
from topoform.schema import SCHEMA_PATH, _Compiler, fast_check, load_schema, schema_errors

from helpers import EXAMPLES, run_cli

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_examples_validate_cleanly():
    result = run_cli(["validate", "-f", str(EXAMPLES), "--rabbitmq-version", "3.10"])
    assert result.code == 0, result
    assert result.err == ""
    assert result.out.startswith("valid: 2 files, 2 vhosts, ")
    assert result.out.endswith(" (rules of RabbitMQ 3.10)\n")


def test_examples_on_4x_warn_only_about_their_transient_tutorial_queues():
    """The tutorial keeps RabbitMQ's tutorial queues as they are: transient, which 4.0 deprecates."""
    for version in ("4.0", "4.3"):
        result = run_cli(["validate", "-f", str(EXAMPLES), "--rabbitmq-version", version, "--json"])
        assert result.code == 0, result
        findings = result.json["findings"]
        assert findings and {f["code"] for f in findings} == {"transient-queue-deprecated"}
        assert all(f["severity"] == "warning" and f"target {version}" in f["message"] for f in findings)


def test_tutorial_example_holds_the_tutorial_topologies():
    from topoform.load import load_topology

    topo = load_topology([str(EXAMPLES / "topoform.yaml")]).topology
    assert topo.queue("/", "task_queue").durable
    assert topo.exchange("/", "logs").type == "fanout"
    assert topo.queue("/", "logs_consumer").exclusive
    keys = {(b.destination, b.routing_key) for b in topo.bindings_from("/", "topic_logs")}
    assert keys == {("Q1", "*.orange.*"), ("Q2", "*.*.rabbit"), ("Q2", "lazy.#")}
    assert {b.routing_key for b in topo.bindings_from("/", "direct_logs")} >= {"orange", "black", "green"}
    assert topo.queue("/", "hello") and topo.queue("/", "rpc_queue")


def test_summary_line_counts_everything(tmp_path):
    f = write(tmp_path / "t.yaml", """
        vhosts:
          /:
            exchanges: {x: {type: fanout}}
            queues: {q: {bindings: [{exchange: x}]}}
            policies: {p: {pattern: q, definition: {max-length: 1}}}
        tests:
          - {exchange: x, expect: [q]}
    """)
    result = run_cli(["validate", "-f", str(f)])
    assert (result.code, result.out) == (0, "valid: 1 file, 1 vhost, 1 exchange, 1 queue, 1 binding, 1 policy, "
                                            "1 test (rules of RabbitMQ 4.3)\n")


def test_invalid_exits_1_with_every_error_and_a_summary(tmp_path):
    f = write(tmp_path / "t.yaml", """\
        vhosts:
          /:
            queues:
              a: {durable: "yes"}
              b: {durabel: true}
    """)
    result = run_cli(["validate", "-f", str(f)])
    assert result.code == 1 and result.out == ""
    assert result.err.splitlines() == [
        f"{f}:4:20: 'durable' in queue 'a' must be a boolean (true or false), got string \"yes\"",
        f"{f}:5:11: unknown key 'durabel' in queue 'b' (did you mean 'durable'? expected one of: arguments, "
        "auto_delete, bindings, durable, exclusive)",
        "invalid: 2 errors in 1 file",
    ]


def test_warnings_print_but_do_not_fail(tmp_path):
    f = write(tmp_path / "t.yaml", "vhosts: {/: {exchanges: {x: {arguments: {alternate-exchange: ae}}}}}\n")
    result = run_cli(["validate", "-f", str(f)])
    assert result.code == 0
    assert result.err.startswith(f"{f}:1:62: warning: alternate-exchange 'ae' of exchange 'x' is not declared")
    assert result.out.startswith("valid: ")


def test_json_output(tmp_path):
    f = write(tmp_path / "t.yaml", "vhosts: {/: {queues: {q: {durable: 1}}}}\n")
    result = run_cli(["validate", "--json", "-f", str(f)])
    assert result.code == 1
    data = result.json
    assert data["valid"] is False and data["files"] == [str(f)]
    assert data["findings"] == [{"code": "wrong-type", "severity": "error", "path": str(f), "line": 1, "col": 36,
                                 "message": "'durable' in queue 'q' must be a boolean (true or false), got integer 1"}]


def test_default_discovery_from_the_working_directory(tmp_path):
    write(tmp_path / "topoform.yaml", "vhosts: {/: {queues: {q: {}}}}\n")
    result = run_cli(["validate"], cwd=tmp_path)
    assert result.code == 0, result
    env_file = write(tmp_path / "other.yaml", "vhosts: {/: {}}\n")
    result = run_cli(["validate"], cwd=tmp_path, environ={"TOPOFORM_FILE": str(env_file)})
    assert result.out.startswith("valid: 1 file, 1 vhost, 0 exchanges, 0 queues")


def test_nothing_to_validate_is_a_clear_error(tmp_path):
    result = run_cli(["validate"], cwd=tmp_path)
    assert result.code == 1
    assert "TOPOFORM_FILE" in result.err and "topoform.yaml" in result.err
    assert "Traceback" not in result.err


# ---------------------------------------------------------------- the schema

def test_schema_is_valid_json_schema_2020_12():
    Draft202012Validator.check_schema(load_schema())
    assert (Path(schema.__file__).parent / "schemas" / "topology.schema.json").resolve() == SCHEMA_PATH.resolve()


def test_every_schema_property_has_a_description_for_editors():
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub and \
                        "definition" not in where:
                    missing.append(f"{where}.{name}")
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")

    walk(load_schema(), "")
    assert missing == []


def test_fast_check_refuses_keywords_it_does_not_implement():
    with pytest.raises(ValueError, match="oneOf"):
        _Compiler({}).compile({"oneOf": [{"type": "string"}]})


def _corpus_data():
    for path in sorted(CORPUS.glob("*.yaml")) + sorted(EXAMPLES.glob("*.yaml")):
        try:
            yield path.name, yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue


@pytest.mark.parametrize("name,data", list(_corpus_data()))
def test_fast_check_agrees_with_jsonschema(name, data):
    # Never more lenient: when the fast path says valid, the full validator must agree.
    assert fast_check(data) == (not list(schema_errors(data))), name


@pytest.mark.parametrize("value,ok", [
    ({"vhosts": {"/": {"queues": {"q": {"arguments": {"x-message-ttl": 1.0}}}}}}, False),
    ({"vhosts": {"/": {"queues": {"q": {"durable": 1}}}}}, False),
    ({"vhosts": {"/": {"queues": {"q": {"arguments": {"x-custom": [1, {"a": None}]}}}}}}, True),
    ({"version": True}, False),
    ({"version": 1}, True),
    ({"include": "a.yaml"}, True),
    ({"include": ["a.yaml", 3]}, False),
    (None, True),
])
def test_fast_check_edge_cases(value, ok):
    assert fast_check(value) is ok
    assert (not list(schema_errors(value))) is ok


@pytest.mark.parametrize("version", ["3.10", "4.0", "4.3"])
def test_the_vhost_default_never_makes_an_auto_delete_or_exclusive_queue_quorum(tmp_path, version):
    """Such declares are classic whatever the vhost default (checked on 3.10.8 and 4.3.6): no error."""
    path = write(tmp_path / "t.yaml", """\
        vhosts:
          /:
            default_queue_type: quorum
            queues:
              scratch: {durable: true, auto_delete: true}
              mine: {durable: true, exclusive: true}
              jobs: {durable: true}
        """)
    result = run_cli(["validate", "-f", str(path), "--rabbitmq-version", version, "--json"])
    assert result.code == 0, result
    assert [f for f in result.json["findings"] if f["severity"] == "error"] == []


def test_an_x_extension_key_at_the_top_is_refused_with_the_anchor_to_use_instead(tmp_path):
    f = write(tmp_path / "t.yaml", "x-defaults: &qq {durable: true}\nvhosts:\n  v:\n    queues:\n"
                                   "      a: {<<: *qq}\n")
    result = run_cli(["validate", "-f", str(f)])
    assert result.code == 1, result
    assert "unknown key 'x-defaults' in the top level (topoform has no x-* extension keys: put the anchor on " \
           "the first object" in result.err
    f = write(tmp_path / "ok.yaml", "vhosts:\n  v:\n    queues:\n      a: &qq {durable: true, arguments: "
                                    "{x-queue-type: quorum}}\n      b: {<<: *qq, exclusive: false}\n")
    result = run_cli(["validate", "-f", str(f), "--json"])
    assert result.code == 0 and result.json["counts"]["queue"] == 2, result
