"""Fleet files and fleet runs (topoform/fleet.py, topoform/cli/fleet.py), offline."""
from __future__ import annotations

import pytest

from helpers import run_cli
from topoform.errors import InputError, UsageError
from topoform.fleet import read_targets, resolve_password, select, worst_exit


@pytest.mark.parametrize("codes,worst", [([0, 2, 3, 1], 1), ([0, 2, 3], 3), ([2, 0], 2), ([0, 0], 0), ([], 0),
                                         ([3, 1, 2], 1), ([0, 130], 1)])
def test_worst_exit_is_1_over_3_over_2_over_0(codes, worst):
    assert worst_exit(codes) == worst


def _write(tmp_path, text):
    (tmp_path / "t.yaml").write_text(text)
    return str(tmp_path / "t.yaml")


def test_read_targets_resolves_relative_paths(tmp_path):
    path = _write(tmp_path, "targets:\n  eu: {url: 'amqps://u@eu:5671/', password: {file: pw.txt}, env: prod, "
                            "ca_cert: certs/ca.pem}\n  us: {url: 'amqp://u@us/'}\n")
    eu, us = read_targets(path)
    assert eu.password == {"file": str(tmp_path / "pw.txt")} and eu.ca_cert == str(tmp_path / "certs" / "ca.pem")
    assert eu.env == "prod" and us.password is None
    (tmp_path / "pw.txt").write_text("s3cret\n")
    assert resolve_password(eu, {}) == "s3cret"


@pytest.mark.parametrize("text,message", [
    ("targets: {a: {password: {env: X}}}", "needs 'url'"),
    ("targets: {a: {url: 'amqp://h/', password: hunter2}}", "never the password itself"),
    ("targets: {a: {url: 'amqp://h/', colour: red}}", "unknown key 'colour'"),
    ("nodes: {}", "expected 'targets:"),
    ("targets: [a", "invalid YAML"),
])
def test_bad_targets_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(InputError, match=message) as info:
        read_targets(_write(tmp_path, text))
    assert "hunter2" not in info.value.message


def test_only_globs(tmp_path):
    targets = read_targets(_write(tmp_path, "targets: {prod-eu: {url: 'amqp://a/'}, prod-us: {url: 'amqp://b/'}, "
                                            "dev: {url: 'amqp://c/'}}"))
    assert [t.name for t in select(targets, ["prod-*"])] == ["prod-eu", "prod-us"]
    assert [t.name for t in select(targets, None)] == ["prod-eu", "prod-us", "dev"]
    with pytest.raises(UsageError, match="matches no target"):
        select(targets, ["qa"])


def test_missing_password_variable_fails_that_target_only(tmp_path):
    """Two unreachable targets: each fails on its own (one without its password), each reported by name."""
    (tmp_path / "topo.yaml").write_text("vhosts: {v: {queues: {q: {durable: true}}}}\n")
    _write(tmp_path, "targets:\n  one: {url: 'amqp://u@127.0.0.1:1/', management_url: 'http://127.0.0.1:1/', "
                     "password: {env: NOPE}}\n  two: {url: 'amqp://u@127.0.0.1:1/', management_url: "
                     "'http://127.0.0.1:1/', password: {env: PW}}\n")
    r = run_cli(["plan", "-f", "topo.yaml", "--targets", "t.yaml", "--json", "--timeout", "2"], cwd=tmp_path,
                environ={"PW": "pw-value-xyz"}, secrets=("pw-value-xyz",))
    assert r.code == 1
    targets = r.json["targets"]
    assert "password variable NOPE is not set" in targets["one"]["error"]["message"]
    assert targets["two"]["error"]["message"]  # unreachable, reported on its own
    r = run_cli(["apply", "-f", "topo.yaml", "--targets", "t.yaml"], cwd=tmp_path)
    assert r.code == 1 and "needs --auto-approve" in r.err
    r = run_cli(["plan", "-f", "topo.yaml", "--only", "one"], cwd=tmp_path)
    assert r.code == 1 and "--only needs --targets" in r.err
