"""A headers binding with a null (void) argument survives apply -> plan -> import."""
import yaml


def test_null_argument_round_trips_through_the_broker(vhost, broker_env, cli, tmp_path):
    files = tmp_path / "t.yaml"
    files.write_text(yaml.safe_dump({"vhosts": {vhost: {
        "exchanges": {"h": {"type": "headers"}},
        "queues": {"q": {"bindings": [{"exchange": "h", "arguments": {"x-match": "all", "has-trace": None}}]}}}}}))
    assert cli(["apply", "--auto-approve", "-f", files], environ=broker_env).code == 0
    r = cli(["plan", "--detailed-exitcode", "-f", files], environ=broker_env)
    assert r.code == 0, r
    imported = tmp_path / "imported.yaml"
    assert cli(["import", "--vhost", vhost, "-o", imported], environ=broker_env).code == 0
    doc = yaml.safe_load(imported.read_text())
    assert doc["vhosts"][vhost]["queues"]["q"]["bindings"][0]["arguments"] == {"x-match": "all", "has-trace": None}
    assert cli(["plan", "--detailed-exitcode", "-f", imported], environ=broker_env).code == 0
