"""validate per target version (issue 10 item 4), argument typos (issue 11 item 8), the target's sources.

Each version rule is checked on every supported version: the finding must appear
exactly where the row of ``topoform.versions`` holds, with its severity, and name the
target version.
"""
from __future__ import annotations

import json
import textwrap

import pytest

from helpers import run_cli
from topoform import arguments as A
from topoform import versions as V
from topoform.errors import InputError
from topoform.load import load_text
from topoform.schema import load_schema


def load(text: str, version=None, path: str = "t.yaml"):
    return load_text(textwrap.dedent(text), path, target=version)


def found(result, code: str) -> list:
    return [f for f in result.findings if f.code == code]


# row -> (file, finding code, severity while the row holds, severity while it does not (None: no finding))
RULES = {
    "ha_policies_refused": ("""
        vhosts: {/: {policies: {m: {pattern: ^q$, definition: {ha-mode: all}}}}}
    """, "policy-key-refused", "error", None),
    "queue_master_locator_refused": ("""
        vhosts: {/: {queues: {q: {durable: true, arguments: {x-queue-master-locator: client-local}}}}}
    """, "argument-refused", "error", None),
    "queue_master_locator_deprecated": ("""
        vhosts: {/: {policies: {m: {pattern: ^q$, definition: {queue-master-locator: client-local}}}}}
    """, "policy-key-deprecated", "warning", None),
    "queue_version_1_refused": ("""
        vhosts: {/: {queues: {q: {durable: true, arguments: {x-queue-version: 1}}}}}
    """, "argument-refused", "error", None),
    "topic_max_two_hash": ("""
        vhosts: {/: {exchanges: {t: {type: topic}}, queues: {q: {durable: true, bindings: [{exchange: t, routing_key: "#.a.#.#"}]}}}}
    """, "topic-key-too-many-hashes", "error", "warning"),
    "policy_apply_to_queue_types": ("""
        vhosts: {/: {policies: {m: {pattern: ^q$, apply_to: streams, definition: {max-age: 1D}}}}}
    """, "apply-to-unsupported", None, "error"),
    "transient_nonexcl_deprecated": ("""
        vhosts: {/: {queues: {q: {durable: false}}}}
    """, "transient-queue-deprecated", "warning", None),
    "local_random_exchange": ("""
        vhosts: {/: {exchanges: {x: {type: x-local-random}}}}
    """, "exchange-type-unsupported", None, "error"),
    "modulus_hash_exchange": ("""
        vhosts: {/: {exchanges: {x: {type: x-modulus-hash}}}}
    """, "plugin-exchange-type", None, "warning"),
}


@pytest.mark.parametrize("version", V.SUPPORTED)
@pytest.mark.parametrize("key", sorted(RULES))
def test_each_rule_switches_exactly_where_its_row_holds(key, version):
    text, code, when_holds, otherwise = RULES[key]
    result = load(text, version)
    expected = when_holds if V.has(version, key) else otherwise
    got = found(result, code)
    if expected is None:
        assert not got, [f.format() for f in got]
    else:
        assert [f.severity for f in got] == [expected], [f.format() for f in result.findings]
        assert version in got[0].message  # names the target
        assert got[0].position is not None and got[0].position.path == "t.yaml"


def test_every_version_rule_row_used_by_validate_is_tested():
    rows_used = {"ha_policies_refused", "queue_master_locator_refused", "queue_master_locator_deprecated",
                 "queue_version_1_refused", "topic_max_two_hash", "policy_apply_to_queue_types",
                 "transient_nonexcl_deprecated", "local_random_exchange", "modulus_hash_exchange"}
    assert rows_used == set(RULES)
    assert rows_used <= {b.key for b in V.BEHAVIOURS}


def test_findings_name_the_remedy_at_the_offending_key():
    r = load("""\
        vhosts:
          /:
            policies:
              m:
                pattern: ^q$
                definition: {ha-mode: exactly, ha-params: 2, message-ttl: 5}
    """, "4.3")
    assert [f.format() for f in r.errors] == [
        "t.yaml:6:22: policy 'm' key 'ha-mode' is refused by RabbitMQ 4.0 and later (target 4.3): classic mirrored "
        "queues are gone: remove the ha-* keys and use quorum queues (apply --migrate)",
        "t.yaml:6:40: policy 'm' key 'ha-params' is refused by RabbitMQ 4.0 and later (target 4.3): classic "
        "mirrored queues are gone: remove the ha-* keys and use quorum queues (apply --migrate)"]


def test_queue_version_2_and_other_types_are_fine_on_4_3():
    r = load("vhosts: {/: {queues: {q: {durable: true, arguments: {x-queue-version: 2}}}}}", "4.3")
    assert r.ok and not r.findings, [f.format() for f in r.findings]


def test_transient_exclusive_and_durable_queues_are_not_deprecated():
    r = load("""
        vhosts: {/: {queues: {a: {exclusive: true}, b: {durable: true}, c: {durable: true, auto_delete: true}}}}
    """, "4.3")
    assert not r.findings, [f.format() for f in r.findings]


def test_three_hashes_on_a_direct_exchange_are_no_topic_problem():
    r = load("""
        vhosts: {/: {exchanges: {d: {type: direct}}, queues: {q: {durable: true, bindings: [{exchange: d, routing_key: "#.#.#"}]}}}}
    """, "4.3")
    assert r.ok and not found(r, "topic-key-too-many-hashes")


def test_amq_topic_counts_as_a_topic_exchange():
    r = load("""
        vhosts: {/: {queues: {q: {durable: true, bindings: [{exchange: amq.topic, routing_key: "#.#.#"}]}}}}
    """, "4.3")
    assert [f.severity for f in found(r, "topic-key-too-many-hashes")] == ["error"]


def test_unknown_plugin_type_message_follows_the_version():
    text = "vhosts: {/: {exchanges: {x: {type: x-consistent-hash}}}}"
    assert "closes the connection (503)" in found(load(text, "3.10"), "plugin-exchange-type")[0].message
    assert "channel error (406)" in found(load(text, "4.0"), "plugin-exchange-type")[0].message


# ---------------------------------------------------------------- the target's sources

def test_default_target_is_the_newest_and_files_can_set_it():
    assert load("vhosts: {/: {}}").rabbitmq_version == V.DEFAULT
    r = load('rabbitmq_version: "4.0.5"\nvhosts: {/: {}}')
    assert (r.rabbitmq_version, r.version_source, r.files_version) == ("4.0", "files", "4.0")


def test_a_callable_target_gets_the_files_version():
    seen = []

    def resolve(files_version):
        seen.append(files_version)
        return "3.10", "flag"

    r = load('rabbitmq_version: "4.3"\nvhosts: {/: {policies: {m: {pattern: q, definition: {ha-mode: all}}}}}', resolve)
    assert seen == ["4.3"] and (r.rabbitmq_version, r.version_source) == ("3.10", "flag")
    assert r.ok  # 3.10 rules: ha-mode is fine


def test_a_bad_target_argument_raises_one_line():
    with pytest.raises(InputError, match="unsupported RabbitMQ version 5.1"):
        load("vhosts: {}", "5.1")


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


HA = "vhosts: {/: {policies: {m: {pattern: ^q$, definition: {ha-mode: all}}}}}\n"


def test_cli_flag_env_and_file_order(tmp_path):
    f = write(tmp_path / "t.yaml", 'rabbitmq_version: "3.10"\n' + HA)
    assert run_cli(["validate", "-f", f]).code == 0                        # the file says 3.10
    r = run_cli(["validate", "-f", f], environ={"TOPOFORM_RABBITMQ_VERSION": "4.0"})
    assert r.code == 1 and "target 4.0" in r.err                            # env beats the file
    r = run_cli(["validate", "-f", f, "--rabbitmq-version", "3.13"], environ={"TOPOFORM_RABBITMQ_VERSION": "4.0"})
    assert r.code == 0, r                                                   # the flag beats env
    j = run_cli(["validate", "-f", f, "--json", "--rabbitmq-version", "4.1"]).json
    assert (j["rabbitmq_version"], j["rabbitmq_version_source"], j["valid"]) == ("4.1", "flag", False)


@pytest.mark.parametrize("command", [["validate"], ["test"], ["graph"], ["export"], ["test-route", "x", "k"],
                                     ["plan", "--state", "state.json"]])
def test_every_offline_command_refuses_an_unsupported_version(tmp_path, command):
    write(tmp_path / "t.yaml", "vhosts: {/: {exchanges: {x: {}}}}\n")
    (tmp_path / "state.json").write_text("{}")
    for argv, environ in ((["--rabbitmq-version", "4.9"], {}), ([], {"TOPOFORM_RABBITMQ_VERSION": "3.9.1"})):
        r = run_cli([*command, "-f", tmp_path / "t.yaml", *argv], environ=environ, cwd=tmp_path)
        assert r.code == 1, r
        assert r.err.count("\n") == 1 and "unsupported RabbitMQ version" in r.err and "3.10 to 4.3" in r.err


def _state(tmp_path, version_field: dict) -> str:
    (tmp_path / "state.json").write_text(json.dumps({**version_field, "vhosts": [{"name": "/"}], "policies": []}))
    return str(tmp_path / "state.json")


@pytest.mark.parametrize("field, ok", [({"rabbit_version": "3.10.8"}, True), ({"rabbitmq_version": "4.0.5"}, False),
                                       ({}, False)])
def test_plan_state_takes_the_exports_version(tmp_path, field, ok):
    f = write(tmp_path / "t.yaml", HA)
    r = run_cli(["plan", "-f", f, "--state", _state(tmp_path, field)], cwd=tmp_path)
    if ok:
        assert r.code == 0, r
    else:
        assert r.code == 1 and "ha-mode" in r.err and "refused by RabbitMQ 4.0" in r.err, r


def test_plan_state_files_and_flag_beat_the_exports_version(tmp_path):
    state = _state(tmp_path, {"rabbitmq_version": "4.3.6"})
    f = write(tmp_path / "t.yaml", HA)
    assert run_cli(["plan", "-f", f, "--state", state, "--rabbitmq-version", "3.10"], cwd=tmp_path).code == 0
    f2 = write(tmp_path / "t2.yaml", 'rabbitmq_version: "3.10"\n' + HA)
    assert run_cli(["plan", "-f", f2, "--state", state], cwd=tmp_path).code == 0


# ---------------------------------------------------------------- typos (issue 11 item 8)

@pytest.mark.parametrize("kind, name, words", [
    ("queue", "x-mesage-ttl", "did you mean 'x-message-ttl'?"),
    ("queue", "x-dead-letter-exchnage", "did you mean 'x-dead-letter-exchange'?"),
    ("queue", "x_max_length", "did you mean 'x-max-length'?"),
    ("queue", "message-ttl", "did you mean 'x-message-ttl'?"),
    ("queue", "alternate_exchange", "'alternate-exchange' is an exchange argument: set it on the exchange"),
    ("exchange", "alternate_exchange", "did you mean 'alternate-exchange'?"),
    ("exchange", "alternate-exchnage", "did you mean 'alternate-exchange'?"),
    ("exchange", "x-dead-letter-exchange", "'x-dead-letter-exchange' is a queue argument: set it on the queue"),
])
def test_argument_typos_are_warnings_with_the_suggestion(kind, name, words):
    section = "queues: {o: {durable: true, arguments: {%s: 1}}}" if kind == "queue" else \
        "exchanges: {o: {arguments: {%s: 1}}}"
    r = load("vhosts:\n  /:\n    " + section % name + "\n", "4.3")
    got = found(r, "unknown-argument")
    assert r.ok and [f.severity for f in got] == ["warning"], [f.format() for f in r.findings]
    assert words in got[0].message and f"'{name}'" in got[0].message
    assert got[0].position.line == 3  # at the argument's key


@pytest.mark.parametrize("name", ["x-custom-tenant", "x-my-app-flag", "x-message-ttl", "x-queue-type", "foo"])
def test_known_and_custom_arguments_are_not_typos(name):
    value = "classic" if name == "x-queue-type" else 1
    r = load(f"vhosts: {{/: {{queues: {{o: {{durable: true, arguments: {{{name}: {value}}}}}}}}}}}", "4.3")
    assert not found(r, "unknown-argument"), [f.format() for f in r.findings]


def test_the_same_typo_in_a_policy_stays_an_error():
    r = load("vhosts: {/: {policies: {p: {pattern: q, definition: {mesage-ttl: 5}}}}}", "4.3")
    assert [f.code for f in r.errors] == ["unknown-key"] and "did you mean 'message-ttl'?" in r.errors[0].message


# ---------------------------------------------------------------- one table of arguments

def test_schema_lists_exactly_the_tables_arguments_and_policy_keys():
    defs = load_schema()["$defs"]
    assert set(defs["queue_arguments"]["properties"]) == {a.name for a in A.QUEUE_ARGUMENTS}
    assert set(defs["exchange_arguments"]["properties"]) == {a.name for a in A.EXCHANGE_ARGUMENTS}
    assert set(defs["policy_definition"]["properties"]) == {k.name for k in A.POLICY_KEYS}
    assert defs["policy"]["properties"]["apply_to"]["enum"] == list(A.APPLY_TO)


def test_table_rows_name_real_behaviours_and_queue_types():
    keys = {b.key for b in V.BEHAVIOURS}
    for entry in A.QUEUE_ARGUMENTS + A.EXCHANGE_ARGUMENTS + A.POLICY_KEYS:
        for row in (entry.refused_by, entry.deprecated_by):
            assert row is None or row in keys, (entry.name, row)
        if (entry.refused_by or entry.deprecated_by) and not entry.remedy:
            pytest.fail(f"{entry.name}: a refused or deprecated entry needs a remedy")
    for a in A.QUEUE_ARGUMENTS:
        assert a.types and set(a.types) <= set(A.QUEUE_TYPES)
        assert all(since in V.SUPPORTED for since in a.types.values())


@pytest.mark.parametrize("qtype, arg, version, ok", [
    ("quorum", "x-max-priority", "4.3", False),         # measured 4.3.6: 406 invalid arg
    ("classic", "x-delivery-limit", "4.3", False),
    ("stream", "x-message-ttl", "4.0", False),
    ("classic", "x-queue-leader-locator", "3.13", False),  # measured 3.10.8: 406; 4.0.5: ok
    ("classic", "x-queue-leader-locator", "4.0", True),
    ("quorum", "x-queue-leader-locator", "3.10", True),
    ("quorum", "x-delivery-limit", "3.10", True),
    ("classic", "x-custom", "3.10", True),
])
def test_allowed_per_type_and_version(qtype, arg, version, ok):
    assert A.allowed(arg, qtype, version) is ok


# ---------------------------------------------------------------- routing follows the target

EDGE = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "routing" / "edge.yaml"


@pytest.mark.parametrize("version, reached", [("3.10", "q-int"), ("3.12", "q-int"), ("3.13", "unroutable"),
                                              ("4.3", "unroutable")])
def test_graph_route_follows_the_target(version, reached):
    r = run_cli(["graph", "-f", EDGE, "--route", "h", "", "-H", "n=1.0", "--rabbitmq-version", version])
    assert r.code == 0, r
    assert f"route: h [] -> {reached}" in r.err.splitlines()


def test_route_tests_follow_the_target(tmp_path):
    f = write(tmp_path / "t.yaml", """\
        vhosts:
          /:
            exchanges: {h: {type: headers, durable: true}}
            queues: {q: {durable: true, bindings: [{exchange: h, arguments: {n: 1}}]}}
        tests:
          - {exchange: h, headers: {n: 1.0}, expect: [q]}
    """)
    assert run_cli(["test", "-f", f, "--rabbitmq-version", "3.10"]).code == 0
    r = run_cli(["test", "-f", f, "--rabbitmq-version", "4.0"])
    assert r.code == 3 and "FAIL" in r.out
    assert run_cli(["test", "-f", f], environ={"TOPOFORM_RABBITMQ_VERSION": "3.11"}).code == 0


def test_export_validates_for_the_target(tmp_path):
    f = write(tmp_path / "t.yaml", HA)
    assert run_cli(["export", "-f", f, "--rabbitmq-version", "3.10"]).code == 0
    r = run_cli(["export", "-f", f])
    assert r.code == 1 and r.out == "" and "ha-mode" in r.err
