"""``diff`` does not read ``{env}``/``{file}`` secrets, so such a field shows no change (docs/workflow.md);
it used to show every upstream's and shovel's URI as ``changes``."""
from __future__ import annotations

import json

from helpers import run_cli

FILES = """\
vhosts:
  v:
    federation_upstreams:
      up: {uri: {env: UP_URI}, expires: EXPIRES}
    shovels:
      sh: {src-uri: {file: src.txt}, src-queue: a, dest-uri: {env: DEST_URI}, dest-queue: b}
"""


def _export(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({
        "rabbit_version": "4.3.6", "vhosts": [{"name": "v"}], "queues": [], "exchanges": [], "bindings": [],
        "policies": [], "parameters": [
            {"vhost": "v", "component": "federation-upstream", "name": "up",
             "value": {"uri": "amqp://u:hunter2-secret@remote", "expires": 1000}},
            {"vhost": "v", "component": "shovel", "name": "sh",
             "value": {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://", "dest-queue": "b"}}]}))


def test_unread_secrets_show_no_change_and_other_fields_still_do(tmp_path):
    _export(tmp_path)
    (tmp_path / "new.yaml").write_text(FILES.replace("EXPIRES", "1000"))
    r = run_cli(["diff", "old.json", "new.yaml"], cwd=tmp_path, environ={}, secrets=("hunter2-secret",))
    assert r.code == 0 and "No changes" in r.out, r
    (tmp_path / "new.yaml").write_text(FILES.replace("EXPIRES", "2000"))
    r = run_cli(["diff", "old.json", "new.yaml", "--json"], cwd=tmp_path, environ={}, secrets=("hunter2-secret",))
    assert r.code == 2, r
    assert [(c["kind"], c["diff"]) for c in json.loads(r.out)["changes"]] == [("federation_upstream", ["expires"])]
