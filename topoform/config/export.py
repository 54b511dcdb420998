"""The files' config kinds as rows of the broker's definitions (``topoform export``).

The one output that must carry secrets: ``load_definitions`` needs each user's password
hash and each upstream's or shovel's real URI. Passwords are hashed here with the
user's algorithm and a salt derived from the user and password, so an unchanged file
exports the same bytes; the caller warns that the document is secret.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

from ..model import thaw
from . import kinds as K
from .load import ConfigState
from .secrets import SHA256, hash_password


def _salt(name: str, password: str) -> bytes:
    return hashlib.sha256(f"topoform\0{name}\0{password}".encode("utf-8")).digest()[:4]


def add_definitions(definitions: dict, config: ConfigState, vhosts: Iterable[str]) -> list[str]:
    """Add users, permissions, topic permissions, limits, parameters and global parameters; return notes."""
    keep = set(vhosts)
    notes: list[str] = []
    rows: dict[str, list] = {}
    users: dict[str, dict] = {}
    secret_out = False
    for key in sorted(config.objects, key=repr):
        obj = config.objects[key]
        if obj.vhost and obj.vhost not in keep:
            continue
        if obj.kind == "user":
            s = obj.secrets.get("password")
            plain = {}
            if s is not None and s.given_hash:
                plain = {"password_hash": s.hash or "", "hashing_algorithm": s.algorithm or SHA256}
            elif s is not None and s.plain is not None:
                plain = {"password_hash": hash_password(s.plain, s.algorithm or SHA256, _salt(obj.name, s.plain)),
                         "hashing_algorithm": s.algorithm or SHA256}
            else:
                notes.append(f"user {obj.name!r} has no password in the files: exported without one "
                             "(it cannot log in with a password)")
            secret_out |= bool(plain.get("password_hash"))
            users[obj.name] = K.user_definitions(obj, plain)[1]
            continue
        if obj.kind == "user_limit":
            continue
        if obj.kind == "super_stream":
            _super_stream_rows(definitions, obj)
            continue
        row = K.KINDS[obj.kind]
        plain = {f: s.plain for f, s in obj.secrets.items() if s.plain is not None}
        secret_out |= bool(obj.secrets)
        section, data = row.definitions(obj, plain)
        rows.setdefault(section, []).append(data)
    for key, obj in config.objects.items():
        if obj.kind == "user_limit" and obj.name in users:
            users[obj.name]["limits"] = thaw(obj.fields.get("limits") or {})
    if users:
        definitions["users"] = [users[n] for n in sorted(users)]
    for section, data in sorted(rows.items()):
        definitions.setdefault(section, []).extend(data)
    if secret_out:
        notes.append("the export holds password hashes and URI credentials (the broker's definitions need them): "
                     "keep the file secret")
    return notes


def _super_stream_rows(definitions: dict, obj) -> None:
    v = obj.fields
    keys = list(v["binding_keys"]) if "binding_keys" in v else [str(i) for i in range(v["partitions"])]
    definitions.setdefault("exchanges", []).append(
        {"name": obj.name, "vhost": obj.vhost, "type": "direct", "durable": True, "auto_delete": False,
         "internal": False, "arguments": {"x-super-stream": True}})
    for order, key in enumerate(keys):
        queue = f"{obj.name}-{key}"
        definitions.setdefault("queues", []).append(
            {"name": queue, "vhost": obj.vhost, "durable": True, "auto_delete": False,
             "arguments": {**thaw(v.get("arguments") or {}), "x-queue-type": "stream"}})
        definitions.setdefault("bindings", []).append(
            {"source": obj.name, "vhost": obj.vhost, "destination": queue, "destination_type": "queue",
             "routing_key": key, "arguments": {"x-stream-partition-order": order}})
