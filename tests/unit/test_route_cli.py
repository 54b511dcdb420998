"""``topoform test-route`` and ``topoform test``, in-process, on the example files and fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import EXAMPLES, run_cli

DATA = Path(__file__).resolve().parents[1] / "data" / "routing"
EDGE = DATA / "edge.yaml"
TUTORIAL = EXAMPLES / "topoform.yaml"

# The classic tutorial table (issue 3, item 5).
SEED_TABLE = [
    ("quick.orange.rabbit", ["Q1", "Q2"]),
    ("lazy.orange.elephant", ["Q1", "Q2"]),
    ("quick.orange.fox", ["Q1"]),
    ("lazy.brown.fox", ["Q2"]),
    ("lazy.pink.rabbit", ["Q2"]),
    ("quick.brown.fox", []),
    ("orange", []),
    ("quick.orange.male.rabbit", []),
    ("lazy.orange.male.rabbit", ["Q2"]),
]


def queues_in_text(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines() if line.strip() and line != "unroutable"]


@pytest.mark.parametrize("key,expected", SEED_TABLE)
def test_seed_table_through_test_route_on_example_files(key, expected):
    r = run_cli(["test-route", "topic_logs", key], cwd=EXAMPLES)
    assert r.code == 0, r
    assert queues_in_text(r.out) == expected
    if not expected:
        assert r.out.strip() == "unroutable"
    j = run_cli(["test-route", "-f", EXAMPLES, "topic_logs", key, "--json"])
    assert j.code == 0, j
    assert j.json["queues"] == expected
    assert [route["queue"] for route in j.json["routes"]] == expected
    e = run_cli(["test-route", "-f", EXAMPLES, "topic_logs", key, "--expect", ",".join(expected)])
    assert e.code == 0, e


def test_mission_example_lazy_pink_rabbit_reports_q2_once():
    r = run_cli(["test-route", "topic_logs", "lazy.pink.rabbit"], cwd=EXAMPLES)
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Q2 ") and "topic_logs -[" in lines[0], r


def test_json_contract_exact_keys():
    r = run_cli(["test-route", "-f", TUTORIAL, "topic_logs", "quick.orange.rabbit", "--json", "-H", "n=1"])
    assert r.code == 0, r
    d = r.json
    assert set(d) == {"format_version", "vhost", "exchange", "routing_key", "headers", "queues", "routes"}
    assert d["format_version"] == 1
    assert d["vhost"] == "/" and d["exchange"] == "topic_logs" and d["routing_key"] == "quick.orange.rabbit"
    assert d["headers"] == {"n": 1}
    for route in d["routes"]:
        assert set(route) == {"queue", "path"}
        for hop in route["path"]:
            assert set(hop) == {"source", "destination", "destination_type", "routing_key"}
    assert d["routes"][0]["path"] == [{"source": "topic_logs", "destination": "Q1", "destination_type": "queue",
                                      "routing_key": "*.orange.*"}]


def test_default_exchange_as_empty_string():
    r = run_cli(["test-route", "-f", TUTORIAL, "", "hello"])
    assert r.code == 0, r
    assert r.out.split() == ["hello", "(default)", "-[hello]->", "hello"]
    assert run_cli(["test-route", "-f", TUTORIAL, "", "nobody"]).out.strip() == "unroutable"


def test_expect_mismatch_exits_3_with_expected_and_actual():
    r = run_cli(["test-route", "-f", TUTORIAL, "topic_logs", "lazy.pink.rabbit", "--expect", "Q1,Q2"])
    assert r.code == 3, r
    assert "expected [Q1, Q2], got [Q2]" in r.err
    ok = run_cli(["test-route", "-f", TUTORIAL, "topic_logs", "quick.brown.fox", "--expect", ""])
    assert ok.code == 0, ok
    order = run_cli(["test-route", "-f", TUTORIAL, "topic_logs", "quick.orange.rabbit", "--expect", "Q2, Q1"])
    assert order.code == 0, order


@pytest.mark.parametrize("header,expected", [
    ("n=1", ["q-int"]),
    ('n="1"', ["q-str"]),
    ("n=1.0", ["q-int"]),         # 3.10: 1 == 1.0
    ("flag=true", ["q-bool"]),
    ("flag='true'", []),           # the string "true" is not the boolean
    ("n=", []),                    # void header: present, equal to nothing
])
def test_headers_are_typed_as_yaml_scalars(header, expected):
    r = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "h", "", "-H", header, "--json"])
    assert r.code == 0, r
    assert r.json["queues"] == expected


def test_broker_version_switch_for_numeric_headers():
    r = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "h", "", "-H", "n=1.0", "--broker-version", "3.13",
                 "--json"])
    assert r.code == 0, r
    assert r.json["queues"] == []


@pytest.mark.parametrize("argv, environ, expected", [
    ([], {}, ["q-int"]),                                        # the file's rabbitmq_version: "3.10"
    (["--rabbitmq-version", "3.12"], {}, ["q-int"]),
    (["--rabbitmq-version", "3.13"], {}, []),                   # headers_numeric_strict from 3.13
    (["--rabbitmq-version", "4.0.5"], {}, []),
    ([], {"TOPOFORM_RABBITMQ_VERSION": "4.3"}, []),              # env beats the files
    (["--rabbitmq-version", "3.10"], {"TOPOFORM_RABBITMQ_VERSION": "4.3"}, ["q-int"]),  # the flag beats env
])
def test_target_version_decides_numeric_headers_matching(argv, environ, expected):
    r = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "h", "", "-H", "n=1.0", "--json", *argv],
                environ=environ)
    assert r.code == 0, r
    assert r.json["queues"] == expected
    # an integer header matches the integer binding on every version
    r = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "h", "", "-H", "n=1", "--json", *argv], environ=environ)
    assert r.json["queues"] == ["q-int"]


def test_unsupported_target_version_is_one_line_exit_1():
    for argv, environ in ((["--rabbitmq-version", "3.9"], {}), ([], {"TOPOFORM_RABBITMQ_VERSION": "five"})):
        r = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "h", "", *argv], environ=environ)
        assert r.code == 1, r
        assert len(r.err.strip().splitlines()) == 1 and "3.10 to 4.3" in r.err, r.err


def test_paths_through_e2e_and_alternate_exchange():
    r = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "front", "x"])
    assert r.code == 0, r
    assert r.out.strip() == "q-inner  front -[]-> inner -[]-> q-inner"
    a = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "main", "nope", "--json"])
    assert a.json["queues"] == ["q-unrouted"]
    assert [h["destination"] for h in a.json["routes"][0]["path"]] == ["unrouted", "q-unrouted"]
    t = run_cli(["test-route", "-f", EDGE, "--vhost", "edge", "main", "nope"])
    assert "-(alternate-exchange)->" in t.out


@pytest.mark.parametrize("argv,message", [
    (["inner", "x", "--vhost", "edge"], "internal exchange 'inner'"),
    (["missing", "x", "--vhost", "edge"], "no exchange 'missing'"),
    (["h", "x", "--vhost", "nope"], "unknown vhost 'nope'"),
    (["h", "x", "--vhost", "edge", "-H", "novalue"], "expected KEY=VALUE"),
    (["h", "x", "--vhost", "edge", "-H", "a=[1,"], "not a valid YAML value"),
    (["h", "x", "--vhost", "edge", "-H", "a=1", "-H", "a=2"], "given twice"),
    (["h", "k" * 256, "--vhost", "edge"], "256 bytes"),
    ([], "required"),
])
def test_errors_are_one_line_exit_1(argv, message):
    r = run_cli(["test-route", "-f", EDGE, *argv])
    assert r.code == 1, r
    assert message in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_missing_files_is_an_error():
    r = run_cli(["test-route", "x", "y"], cwd=DATA.parent)
    assert r.code == 1 and "Traceback" not in r.err


# ---------------------------------------------------------------- topoform test

def test_test_command_passes_on_examples():
    r = run_cli(["test", "-f", EXAMPLES])
    assert r.code == 0, r
    assert "0 failed" in r.out and "FAIL" not in r.out


def test_test_command_reports_failures_with_expected_and_actual_and_exits_3():
    r = run_cli(["test", "-f", EDGE])
    assert r.code == 3, r
    assert "4 passed, 2 failed" in r.out
    block = r.out[r.out.index("FAIL  wrong on purpose"):]
    assert "edge.yaml:27:5" in block.splitlines()[0]
    assert "expected: [q-unrouted]" in block and "actual:   [q-main]" in block
    assert "q-main: main -[ok]-> q-main" in block
    assert "FAIL  internal publish is refused" in r.out and "403" in r.out


def test_test_command_json():
    r = run_cli(["test", "-f", EDGE, "--json"])
    assert r.code == 3, r
    d = r.json
    assert d["summary"] == {"passed": 4, "failed": 2}
    wrong = next(t for t in d["tests"] if t["name"] == "wrong on purpose")
    assert wrong["expected"] == ["q-unrouted"] and wrong["actual"] == ["q-main"] and not wrong["passed"]


def test_test_command_without_tests_and_with_invalid_files(tmp_path):
    (tmp_path / "t.yaml").write_text("vhosts:\n  /:\n    queues:\n      q: {}\n")
    r = run_cli(["test", "-f", tmp_path / "t.yaml"])
    assert r.code == 0 and "no tests" in r.out
    (tmp_path / "bad.yaml").write_text("vhosts:\n  /:\n    queues:\n      q: {bogus: 1}\n")
    bad = run_cli(["test", "-f", tmp_path / "bad.yaml"])
    assert bad.code == 1 and "bad.yaml:" in bad.err


@pytest.mark.parametrize("key, noted", [("lazy.#", True), ("*.orange.*", True), ("lazy.pink.rabbit", False),
                                        ("a#", False)])
def test_a_binding_pattern_given_as_the_routing_key_gets_a_note(key, noted):
    r = run_cli(["test-route", "-f", TUTORIAL, "topic_logs", key])
    assert r.code == 0, r
    assert ("note: the routing key" in r.err) is noted, r.err
