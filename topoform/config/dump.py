"""The live config kinds as topology YAML (``import --config``), the inverse of :mod:`topoform.config.load`.

Secrets never reach the file: users are written without their password (so the password
stays unmanaged until the files name one), and a URI with credentials becomes
``{env: TOPOFORM_SECRET_...}``; :func:`secret_variables` names those variables so that
``import`` can say which to set (never their values).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from ..dump import _layout as layout
from ..model import thaw
from . import kinds as K
from .load import ConfigState


def variable_name(obj, field: str) -> str:
    raw = f"TOPOFORM_SECRET_{obj.kind}_{obj.vhost}_{obj.name}_{field}"
    return re.sub(r"[^A-Z0-9]+", "_", raw.upper()).strip("_")


def secret_variables(config: ConfigState | None, vhosts: Iterable[str]) -> list[tuple[str, str]]:
    """``(variable, what it holds)`` for every URI with credentials that the import turns into ``{env}``."""
    keep = set(vhosts)
    out = []
    for obj in sorted((config or ConfigState()).objects.values(), key=lambda o: repr(o.key)):
        if obj.vhost in keep:
            for f in sorted(obj.secrets):
                if f in K.KINDS[obj.kind].uri_fields:
                    out.append((variable_name(obj, f), f"{f} of {obj.kind} {obj.name!r} in vhost {obj.vhost!r}"))
    return out


def users_of(config: ConfigState, vhosts: Iterable[str]) -> set[str]:
    keep = set(vhosts)
    return {o.fields.get("user", o.name) for o in config.objects.values()
            if o.kind in ("permission", "topic_permission") and o.vhost in keep}


def add_to_document(doc: dict, config: ConfigState | None, vhosts: Iterable[str]) -> None:
    """Add users (those with permissions in ``vhosts``) and the vhosts' config kinds to a topology document."""
    if not config:
        return
    names = sorted(set(vhosts))
    users = {}
    for name in sorted(users_of(config, names)):
        user = config.objects.get(("user", "", name))
        if user is None:
            continue
        entry: dict[str, Any] = {"tags": layout(list(user.fields.get("tags") or ()))}
        limit = config.objects.get(("user_limit", "", name))
        if limit is not None:
            entry["limits"] = layout(thaw(limit.fields["limits"]))
        users[name] = entry
    if users:
        doc["users"] = users
    for vhost in names:
        body = doc.setdefault("vhosts", {}).setdefault(vhost, {})
        objs = sorted((o for o in config.objects.values() if o.vhost == vhost), key=lambda o: repr(o.key))
        for obj in objs:
            _add(body, obj)


def _add(body: dict, obj) -> None:
    """``obj`` into its section; objects are block style, their fields laid out as topoform/yamlstyle.py says."""
    row = K.KINDS[obj.kind]
    value = thaw(obj.fields)
    for f in sorted(obj.secrets):
        if f in row.uri_fields:
            value[f] = {"env": variable_name(obj, f)}
    section = body.setdefault(row.file_key, {})
    if obj.kind == "vhost_limit":
        section.update(value["limits"])
    elif obj.kind == "permission":
        section[obj.name] = {k: value[k] for k in ("configure", "write", "read")}
    elif obj.kind == "topic_permission":
        section.setdefault(value["user"], {})[value["exchange"]] = layout({"write": value["write"],
                                                                           "read": value["read"]})
    elif obj.kind == "federation_upstream_set":
        section[obj.name] = [layout(u) for u in value["upstreams"]]
    elif obj.kind == "operator_policy":
        section[obj.name] = {"pattern": value["pattern"], "apply_to": value["apply_to"],
                             "priority": value["priority"], "definition": layout(value["definition"])}
    else:
        section[obj.name] = {k: layout(v) for k, v in value.items()}
