"""Variables and environments (topoform/variables.py, SPEC section 9)."""
from __future__ import annotations

import pytest

from helpers import run_cli
from topoform.errors import InputError
from topoform.load import load_topology
from topoform.variables import VariableInputs, parse_var

TOPO = """variables:
  ttl: {default: 60000}
  region: {default: eu}
  durable: {default: true}
vhosts:
  "shop-${region}":
    queues:
      "orders.${region}":
        durable: "${durable}"
        arguments: {x-message-ttl: "${ttl}", x-note: "ttl=${ttl} $${literal}"}
"""


def _load(tmp_path, text=TOPO, env_files=None, **inputs):
    (tmp_path / "t.yaml").write_text(text)
    for name, body in (env_files or {}).items():
        (tmp_path / "environments").mkdir(exist_ok=True)
        (tmp_path / "environments" / f"{name}.yaml").write_text(body)
    return load_topology([str(tmp_path / "t.yaml")], variables=VariableInputs(cwd=str(tmp_path), **inputs))


def test_whole_value_keeps_type_partial_interpolates_and_names_substitute(tmp_path):
    r = _load(tmp_path)
    assert r.errors == ()
    q = r.topology.queue("shop-eu", "orders.eu")
    assert q.durable is True
    assert q.arguments["x-message-ttl"] == 60000 and isinstance(q.arguments["x-message-ttl"], int)
    assert q.arguments["x-note"] == "ttl=60000 ${literal}"


def test_environment_then_var_file_then_var(tmp_path):
    (tmp_path / "over.yaml").write_text("variables: {region: us}\n")
    r = _load(tmp_path, env_files={"prod": "variables: {ttl: 30000, region: ap}\n"}, env="prod",
              var_files=("over.yaml",), cli_vars=(parse_var("ttl=5"),))
    assert r.errors == () and r.environment == "prod"
    q = r.topology.queue("shop-us", "orders.us")
    assert q.arguments["x-message-ttl"] == 5  # --var beats the environment, and is YAML-typed (an integer)
    assert r.variables["region"] == "us"


def test_undefined_and_unused_are_reported_with_positions(tmp_path):
    text = TOPO.replace('"${ttl}"', '"${tll}"')
    r = _load(tmp_path, text)
    errs = [f.format() for f in r.errors]
    assert any(e.startswith(f"{tmp_path}/t.yaml:10:36: undefined variable 'tll'") for e in errs), errs
    # ttl is still used in x-note, so it is not unused; add a truly unused one
    r = _load(tmp_path, TOPO.replace("variables:\n", "variables:\n  spare: {default: 1}\n"))
    assert [(w.code, w.position.line) for w in r.warnings] == [("unused-variable", 2)]


def test_a_schema_error_under_a_substituted_name_points_at_the_scalar(tmp_path):
    r = _load(tmp_path, cli_vars=(("ttl", "abc"),))
    (err,) = r.errors
    assert (err.position.line, err.position.col) == (10, 36) and "must be an integer" in err.message


def test_environment_value_for_an_undeclared_variable_is_an_error(tmp_path):
    r = _load(tmp_path, env_files={"dev": "variables:\n  nope: 1\n"}, env="dev")
    (err,) = r.errors
    assert err.code == "unknown-variable" and err.position.line == 2


def test_missing_environment_names_what_exists(tmp_path):
    with pytest.raises(InputError, match="environments found: dev"):
        _load(tmp_path, env_files={"dev": "variables: {}\n"}, env="prod")


def test_variable_without_value(tmp_path):
    r = _load(tmp_path, "variables: {v: {}}\nvhosts: {\"${v}\": {}}\n")
    assert [e.code for e in r.errors] == ["variable-without-value"]


@pytest.mark.parametrize("text,expected", [("n=3", 3), ("n=true", True), ("n=\"3\"", "3"), ("n=a b", "a b"),
                                           ("n=", "")])
def test_parse_var_is_yaml_typed(text, expected):
    assert parse_var(text) == ("n", expected)


def test_cli_validate_every_environment(tmp_path):
    (tmp_path / "t.yaml").write_text(TOPO)
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "dev.yaml").write_text("variables: {ttl: 1}\n")
    (tmp_path / "environments" / "prod.yaml").write_text("variables: {ttl: \"x\"}\n")
    r = run_cli(["validate", "-f", "t.yaml", "--all-envs"], cwd=tmp_path)
    assert r.code == 1 and "== environment dev" in r.err and "== environment prod" in r.err
    assert "must be an integer" in r.err
    assert run_cli(["validate", "-f", "t.yaml", "--env", "dev"], cwd=tmp_path).code == 0
    assert run_cli(["validate", "-f", "t.yaml"], cwd=tmp_path, environ={"TOPOFORM_ENV": "prod"}).code == 1
    r = run_cli(["validate", "-f", "t.yaml", "--var", "bad name=1"], cwd=tmp_path)
    assert r.code == 1 and "--var expects NAME=VALUE" in r.err


def test_plan_records_the_environment_and_apply_refuses_another(tmp_path):
    (tmp_path / "t.yaml").write_text(TOPO)
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "prod.yaml").write_text("variables: {ttl: 1}\n")
    (tmp_path / "state.json").write_text('{"vhosts": [], "queues": [], "exchanges": [], "bindings": [], "policies": []}')
    r = run_cli(["plan", "-f", "t.yaml", "--state", "state.json", "--env", "prod", "--json"], cwd=tmp_path)
    assert r.code == 0, r
    assert r.json["env"] == "prod"
    (tmp_path / "p.json").write_text(r.out)
    r = run_cli(["apply", "p.json", "--env", "dev", "--auto-approve"], cwd=tmp_path,
                environ={"TOPOFORM_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert r.code == 1 and "made for environment 'prod', not 'dev'" in r.err, r


def test_a_misspelt_variable_gets_did_you_mean_and_no_second_error_for_its_value(tmp_path):
    (tmp_path / "environments").mkdir()
    (tmp_path / "topoform.yaml").write_text(
        "variables:\n  ttl: {default: 60000}\n  region: {default: eu}\nvhosts:\n  'shop-${region}':\n    queues:\n"
        "      orders: {durable: true, arguments: {x-message-ttl: '${tll}'}}\n")
    (tmp_path / "environments" / "dev.yaml").write_text("variables: {regoin: dev}\n")
    r = run_cli(["validate", "--json"], cwd=tmp_path)
    assert r.code == 1, r
    errors = [(f["code"], f["line"], f.get("hint")) for f in r.json["findings"] if f["severity"] == "error"]
    assert errors == [("undefined-variable", 7, "did you mean 'ttl'?")]  # not also "must be an integer"
    r = run_cli(["validate", "--env", "dev"], cwd=tmp_path)
    assert "environment dev sets variable 'regoin', which no file declares (did you mean 'region'?)" in r.err, r
