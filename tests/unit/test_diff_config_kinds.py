"""``topoform diff OLD NEW`` with the config kinds (users, permissions, limits, ...), as plan does them."""
from __future__ import annotations

import json

from helpers import run_cli
from json_schemas import validate

OLD = """
users:
  app: {tags: [monitoring], password_hash: "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn"}
vhosts:
  shop:
    queues: {audit: {durable: true}}
    permissions:
      app: {configure: ".*", write: ".*", read: ".*"}
    operator_policies:
      cap: {pattern: ".*", apply_to: queues, definition: {max-length: 9}}
    shovels:
      mv: {src-uri: {env: SECRET_URI}, src-queue: audit, dest-uri: "amqp://", dest-queue: audit2}
"""

NEW = """
users:
  app: {tags: [monitoring, management], password_hash: "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn"}
vhosts:
  shop:
    queues: {audit: {durable: true}}
    limits: {max-queues: 10}
    permissions:
      app: {configure: ".*", write: "^x", read: ".*"}
    operator_policies: {}
    shovels:
      mv: {src-uri: {env: SECRET_URI}, src-queue: audit, dest-uri: "amqp://", dest-queue: audit3}
"""


def _files(tmp_path):
    (tmp_path / "old.yaml").write_text(OLD, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(NEW, encoding="utf-8")


def test_diff_plans_the_config_kinds(tmp_path):
    _files(tmp_path)
    r = run_cli(["diff", "old.yaml", "new.yaml", "--json", "--prune"], cwd=tmp_path)
    assert r.code == 2, r.err
    doc = json.loads(r.out)
    validate(doc, "plan.schema.json")
    changes = {(c["kind"], c["action"], c["name"]): c["diff"] for c in doc["changes"]}
    assert changes == {
        ("user", "update", "app"): ["tags"],
        ("permission", "update", "app"): ["write"],
        ("vhost_limit", "create", "limits"): [],
        ("operator_policy", "delete", "cap"): [],
        ("shovel", "update", "mv"): ["dest-queue"],
    }


def test_diff_of_the_same_config_is_empty_and_reads_no_secret(tmp_path):
    _files(tmp_path)
    r = run_cli(["diff", "new.yaml", "new.yaml"], cwd=tmp_path)  # SECRET_URI is not set: never read
    assert r.code == 0, r.err
    assert "No changes" in r.out


def test_diff_against_an_export_compares_users_and_permissions(tmp_path):
    _files(tmp_path)
    export = {"rabbitmq_version": "4.3.6", "vhosts": [{"name": "shop"}],
              "users": [{"name": "app", "password_hash": "BtR4VeskRu96tKdBOOUhI5+e4lXBlOAeRMOxhEZogWrHckZn", "hashing_algorithm": "rabbit_password_hashing_sha256",
                         "tags": ["monitoring"], "limits": {}}],
              "permissions": [{"user": "app", "vhost": "shop", "configure": ".*", "write": "^x", "read": ".*"}],
              "queues": [{"name": "audit", "vhost": "shop", "durable": True, "auto_delete": False, "arguments": {}}]}
    (tmp_path / "defs.json").write_text(json.dumps(export), encoding="utf-8")
    r = run_cli(["diff", "defs.json", "new.yaml", "--json"], cwd=tmp_path)
    assert r.code == 2, r.err
    kinds = {(c["kind"], c["action"]) for c in json.loads(r.out)["changes"]}
    assert ("user", "update") in kinds and ("vhost_limit", "create") in kinds
    assert ("permission", "update") not in kinds  # the export already has write: ^x
    # and the other way: the export as NEW manages every config object it holds
    r = run_cli(["diff", "new.yaml", "defs.json", "--json"], cwd=tmp_path)
    kinds = {(c["kind"], c["action"], c["name"]) for c in json.loads(r.out)["changes"]}
    assert ("user", "update", "app") in kinds
