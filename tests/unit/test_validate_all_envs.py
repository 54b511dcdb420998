"""``validate --all-envs`` (and ``--env`` repeated) reports every environment's problems, a broken
environment file included (at its line, its content not shown), then exits non-zero."""
from __future__ import annotations

from helpers import run_cli
from json_schemas import validate

TOPOLOGY = "variables: {ttl: {default: 1}}\nvhosts:\n  v:\n    queues:\n      q: {durable: true, arguments: " \
           "{x-message-ttl: \"${ttl}\"}}\n"
ENVIRONMENTS = {
    "a-good": "variables: {ttl: 5}\n",
    "b-broken-yaml": "variables: [\n",
    "c-a-password": "hunter2-s3cret\n",
    "d-a-list": "- ttl\n",
    "e-wrong-type": "variables: {ttl: \"no\"}\n",
    "f-good": "variables: {ttl: 7}\n",
}


def _tree(tmp_path):
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    (tmp_path / "environments").mkdir()
    for name, text in ENVIRONMENTS.items():
        (tmp_path / "environments" / f"{name}.yaml").write_text(text)
    return tmp_path / "t.yaml"


def test_every_environment_is_reported_even_after_a_broken_one(tmp_path):
    r = run_cli(["validate", "--all-envs", "-f", _tree(tmp_path)], cwd=tmp_path, secrets=("hunter2",))
    assert r.code == 1, r
    assert [line for line in r.err.splitlines() if line.startswith("== ")] == [
        f"== environment {name}" for name in ENVIRONMENTS]
    env_dir = tmp_path / "environments"
    assert f"{env_dir}/b-broken-yaml.yaml:2:1: invalid YAML: did not find expected node content" in r.err, r
    assert (f"{env_dir}/c-a-password.yaml:1:1: the top level of environment c-a-password is a single value, not a "
            "mapping 'variables: {NAME: VALUE}' (its content is not shown)") in r.err, r
    assert f"{env_dir}/d-a-list.yaml:1:1: the top level of environment d-a-list is a list" in r.err, r
    assert "'x-message-ttl' in arguments of queue 'q' must be an integer" in r.err, r
    assert r.out.count("valid: ") == 2 and "environment a-good" in r.out and "environment f-good" in r.out, r


def test_with_json_every_environment_has_its_report(tmp_path):
    r = run_cli(["validate", "--all-envs", "--json", "-f", _tree(tmp_path)], cwd=tmp_path, secrets=("hunter2",))
    assert r.code == 1, r
    doc = r.json
    validate(doc, "validate.schema.json")
    assert doc["valid"] is False and sorted(doc["environments"]) == sorted(ENVIRONMENTS)
    assert {n: e["valid"] for n, e in doc["environments"].items()} == {
        "a-good": True, "b-broken-yaml": False, "c-a-password": False, "d-a-list": False, "e-wrong-type": False,
        "f-good": True}
    broken = doc["environments"]["b-broken-yaml"]["findings"]
    assert [(f["code"], f["line"]) for f in broken if f["severity"] == "error"] == [("yaml-syntax", 2)]


def test_an_environment_that_cannot_be_read_at_all_does_not_stop_the_others(tmp_path):
    files = _tree(tmp_path)
    r = run_cli(["validate", "--env", "missing", "--env", "a-good", "-f", files], cwd=tmp_path)
    assert r.code == 1 and "== environment missing" in r.err and "environments/missing.yaml not found" in r.err, r
    assert "valid: " in r.out and "environment a-good" in r.out, r
    r = run_cli(["validate", "--env", "missing", "--env", "a-good", "--json", "-f", files], cwd=tmp_path)
    validate(r.json, "validate.schema.json")
    assert r.code == 1 and r.json["environments"]["a-good"]["valid"] is True, r
    assert r.json["environments"]["missing"]["valid"] is False, r
