"""``topoform import --state``, offline: definitions files as the broker reads them, and ``-o`` that never
overwrites hand edits silently (issue 11, items 3, 4 and 10)."""
from __future__ import annotations

import json

import yaml
from helpers import run_cli

from topoform.broker.live import live_from_definitions
from topoform.load import load_topology


def _write(tmp_path, doc, name="defs.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _q(name, vhost="v", **arguments):
    return {"vhost": vhost, "name": name, "durable": True, "auto_delete": False, "arguments": arguments}


def _import(tmp_path, doc, *extra):
    return run_cli(["import", "--state", _write(tmp_path, doc), *extra], cwd=tmp_path)


# ---------------------------------------------------------------- item 4: rows listed twice
def test_a_queue_listed_twice_keeps_the_first_row_and_says_the_broker_may_keep_either(tmp_path):
    doc = {"vhosts": [{"name": "v"}], "queues": [_q("work", **{"x-max-length": 1}), _q("work", **{"x-max-length": 2})]}
    r = _import(tmp_path, doc)
    assert r.code == 0, r
    assert yaml.safe_load(r.out)["vhosts"]["v"]["queues"]["work"]["arguments"] == {"x-max-length": 1}
    assert "queue 'work' in vhost 'v' is listed more than once" in r.err and "keeps the first" in r.err
    assert "Note: queue 'work'" in r.out  # and in the file's header


def test_a_policy_listed_twice_keeps_the_last_row_as_the_broker_does(tmp_path):
    row = {"vhost": "v", "name": "cap", "apply-to": "queues", "priority": 0, "definition": {"max-length": 1}}
    doc = {"vhosts": [{"name": "v"}], "policies": [dict(row, pattern="^a"), dict(row, pattern="^b")]}
    r = _import(tmp_path, doc)
    assert r.code == 0, r
    assert yaml.safe_load(r.out)["vhosts"]["v"]["policies"]["cap"]["pattern"] == "^b"
    assert "policy 'cap' in vhost 'v'" in r.err and "keeps the last row" in r.err


def test_identical_repeats_are_read_once_without_a_note(tmp_path):
    b = {"vhost": "v", "source": "x", "destination": "q", "destination_type": "queue", "routing_key": "k",
         "arguments": {}}
    x = {"vhost": "v", "name": "x", "type": "topic", "durable": True}
    doc = {"vhosts": [{"name": "v"}], "queues": [_q("q"), _q("q")], "exchanges": [x, x], "bindings": [b, b]}
    state = live_from_definitions(doc, None)
    assert state.notes == ()
    assert state.topology.counts()["queue"] == 1 and state.topology.counts()["binding"] == 1


# ---------------------------------------------------------------- item 4: only parameters or limits
def test_a_file_of_only_parameters_and_limits_has_nothing_to_import_and_counts_what_it_skipped(tmp_path):
    doc = {"rabbit_version": "3.10.8",
           "parameters": [{"vhost": "/", "component": "federation-upstream", "name": "up", "value": {}},
                          {"vhost": "/", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 1}},
                          {"vhost": "/", "component": "operator_policy", "name": "op", "value": {}}],
           "global_parameters": [{"name": "cluster_name", "value": "r"}],
           "users": [{"name": "u", "password_hash": "c2VjcmV0", "tags": ""}],
           "permissions": [{"user": "u", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]}
    out = tmp_path / "out.yaml"
    r = _import(tmp_path, doc, "-o", out)
    assert r.code == 0, r
    assert r.err.startswith("nothing to import"), r
    for counted in ("parameters: 1", "vhost limits: 1", "operator policies: 1", "global parameters: 1", "users: 1",
                    "permissions: 1"):
        assert counted in r.err
    assert "c2VjcmV0" not in r.err + r.out  # a password hash is never shown
    assert not out.exists()


def test_a_single_vhost_export_of_only_limits_has_nothing_to_import(tmp_path):
    r = _import(tmp_path, {"rabbitmq_version": "4.3.6", "limits": {"max-queues": 3}, "parameters": []})
    assert r.code == 0 and "nothing to import" in r.err and "vhost limits: 1" in r.err, r


def test_counts_of_unmanaged_rows_go_into_the_header(tmp_path):
    doc = {"vhosts": [{"name": "v", "limits": {"max-connections": 5}}], "queues": [_q("q")],
           "parameters": [{"vhost": "v", "component": "shovel", "name": "s", "value": {}}]}
    r = _import(tmp_path, doc)
    assert r.code == 0, r
    assert "# Not imported (topoform does not manage them): parameters: 1, vhost limits: 1." in r.out


def test_something_that_is_not_a_definitions_file_is_still_refused(tmp_path):
    r = _import(tmp_path, {"hello": "world"})
    assert r.code == 1 and "is not a RabbitMQ definitions export" in r.err, r


# ---------------------------------------------------------------- items 3 and 4: vhost settings
def test_an_unset_default_queue_type_is_not_written_and_tags_keep_their_order(tmp_path):
    doc = {"vhosts": [{"name": "u", "metadata": {"default_queue_type": "undefined", "tags": ["prod", "eu", "a"]}},
                      {"name": "c", "metadata": {"default_queue_type": "classic"}}, {"name": "n"}],
           "queues": [_q("q", "u")]}
    r = _import(tmp_path, doc)
    assert r.code == 0, r
    vhosts = yaml.safe_load(r.out)["vhosts"]
    assert "default_queue_type" not in vhosts["u"] and vhosts["u"]["tags"] == ["prod", "eu", "a"]
    assert vhosts["c"]["default_queue_type"] == "classic"  # set: written
    assert "default_queue_type" not in vhosts["n"]


def test_a_3x_export_makes_untyped_queues_of_a_quorum_vhost_classic_as_3x_loads_them(tmp_path):
    """3.10's definitions import ignores the vhost default queue type; 4.x applies it."""
    def doc(version):
        return {"rabbit_version": version, "vhosts": [{"name": "v", "metadata": {"default_queue_type": "quorum"}}],
                "queues": [_q("jobs"), dict(_q("scratch"), durable=False)]}

    old = yaml.safe_load(_import(tmp_path, doc("3.10.8")).out)["vhosts"]["v"]["queues"]
    assert old["jobs"]["arguments"] == {"x-queue-type": "classic"} and "arguments" not in old["scratch"]
    new = yaml.safe_load(_import(tmp_path, doc("4.0.5")).out)["vhosts"]["v"]["queues"]
    assert "arguments" not in new["jobs"]  # a quorum queue, by the vhost's default


# ---------------------------------------------------------------- item 10: -o never overwrites silently
DOC = {"vhosts": [{"name": "a"}, {"name": "b"}], "queues": [_q("q1", "a"), _q("q2", "b"), _q("q3", "b")]}


def test_o_file_says_what_it_wrote_and_which_directories_it_created(tmp_path):
    r = _import(tmp_path, DOC, "-o", "new/dir/all.yaml")
    assert r.code == 0, r
    assert "created directory new\n" in r.err and "created directory new/dir\n" in r.err
    assert "wrote new/dir/all.yaml: 2 vhosts, 0 exchanges, 3 queues, 0 bindings, 0 policies" in r.err
    assert not load_topology([str(tmp_path / "new/dir/all.yaml")]).errors


def test_o_dir_names_each_file_with_its_counts(tmp_path):
    r = _import(tmp_path, DOC, "-o", "out/")
    assert r.code == 0, r
    assert "wrote out/a.yaml: 1 vhost, 0 exchanges, 1 queue" in r.err
    assert "wrote out/b.yaml: 1 vhost, 0 exchanges, 2 queues" in r.err


def test_a_hand_edited_file_is_not_overwritten_without_force(tmp_path):
    assert _import(tmp_path, DOC, "-o", "out/").code == 0
    edited = tmp_path / "out" / "b.yaml"
    edited.write_text(edited.read_text() + "# my note\n")
    r = _import(tmp_path, DOC, "-o", "out/")
    assert r.code == 1, r
    assert "refusing to overwrite 1 file" in r.err and "out/b.yaml" in r.err and "--force" in r.err
    assert edited.read_text().endswith("# my note\n")  # nothing was written, not even the unchanged one
    r = _import(tmp_path, DOC, "-o", "out/", "--force")
    assert r.code == 0, r
    assert "overwrote out/b.yaml" in r.err and "unchanged out/a.yaml" in r.err
    assert "# my note" not in edited.read_text()


def test_an_identical_file_is_reported_unchanged(tmp_path):
    assert _import(tmp_path, DOC, "-o", "one.yaml").code == 0
    r = _import(tmp_path, DOC, "-o", "one.yaml")
    assert r.code == 0 and "unchanged one.yaml" in r.err and "created directory" not in r.err, r
