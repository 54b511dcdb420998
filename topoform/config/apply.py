"""HTTP calls for the config kinds: one function per (action, kind), registered in :data:`HANDLERS`
(merged into the executor's table). Order comes from the plan's phases
(``topoform.planner.plan.PHASES``): users before permissions, exchanges before topic
permissions, federation upstreams before the policies that use them, shovels after the
queues, tighter vhost limits after the queues.

Secrets: a user is always sent with a password hash, so an update never wipes a password:
a new password is hashed here (fresh salt) and only the hash is sent; otherwise the hash
the broker keeps is read back (``GET /api/users/NAME``) and sent again.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from ..errors import BrokerError, InputError
from ..planner.plan import Action, Change
from . import kinds as K
from .model import ConfigObject
from .secrets import SHA256, hash_password, resolve


def _q(name: str) -> str:
    from ..broker.settings import quote_segment

    return quote_segment(name)


OK = (200, 201, 204)


def _plain(obj: ConfigObject, ctx) -> dict[str, Any]:
    """Secret field -> value, reading references again when the object came from a plan file."""
    environ = getattr(ctx, "environ", None) or os.environ
    out = {}
    for f, secret in obj.secrets.items():
        value = secret.hash if (obj.kind == "user" and secret.given_hash) else secret.plain
        if value is None and secret.ref is not None:
            value = resolve(secret.ref, environ)
        if value is None:
            raise InputError(f"{obj.kind} {obj.name!r}: the plan file does not hold {f} (a secret is never saved); "
                             "run 'topoform apply' with the files instead")
        out[f] = value
    return out


def put_user(change: Change, ctx) -> None:
    w: ConfigObject = change.after
    secret = w.secrets.get("password")
    plain = {}
    if secret is not None and (change.action is Action.CREATE or "password" in change.diff):
        value = _plain(w, ctx)["password"]
        if secret.given_hash:
            plain = {"password_hash": value, "hashing_algorithm": secret.algorithm or SHA256}
        else:
            plain = {"password_hash": hash_password(value, secret.algorithm or SHA256),
                     "hashing_algorithm": secret.algorithm or SHA256}
    elif change.action is not Action.CREATE:
        current = ctx.client.get(f"/api/users/{_q(w.name)}")  # keep the hash the broker has
        plain = {"password_hash": current.get("password_hash") or "",
                 "hashing_algorithm": current.get("hashing_algorithm") or SHA256}
    ctx.client.request("PUT", f"/api/users/{_q(w.name)}", K.user_body(w, plain), expect=OK)


def delete_user(change: Change, ctx) -> None:
    ctx.client.request("DELETE", f"/api/users/{_q(change.before.name)}", expect=(200, 204, 404))


def _limits_path(obj: ConfigObject, limit: str) -> str:
    if obj.kind == "user_limit":
        return f"/api/user-limits/{_q(obj.name)}/{_q(limit)}"
    return f"/api/vhost-limits/{_q(obj.vhost)}/{_q(limit)}"


def put_limits(change: Change, ctx) -> None:
    want = dict(change.after.fields.get("limits") or {})
    have = dict(change.before.fields.get("limits") or {}) if change.before is not None else {}
    for limit in sorted(set(have) - set(want)):
        ctx.client.request("DELETE", _limits_path(change.after, limit), expect=(200, 204, 404), accept="*/*")
    for limit, value in sorted(want.items()):
        if have.get(limit, object()) != value or change.action is Action.CREATE:
            ctx.client.request("PUT", _limits_path(change.after, limit), {"value": value}, expect=OK, accept="*/*")


def delete_limits(change: Change, ctx) -> None:
    for limit in sorted(change.before.fields.get("limits") or {}):
        ctx.client.request("DELETE", _limits_path(change.before, limit), expect=(200, 204, 404), accept="*/*")


def _path(obj: ConfigObject) -> str:
    row = K.KINDS[obj.kind]
    user = obj.fields.get("user", obj.name) if obj.kind == "topic_permission" else obj.name
    return row.path.format(vhost=_q(obj.vhost), name=_q(obj.name), user=_q(user))


def put_object(change: Change, ctx) -> None:
    w = change.after
    row = K.KINDS[w.kind]
    ctx.client.request("PUT", _path(w), row.body(w, _plain(w, ctx)), expect=OK)


def delete_object(change: Change, ctx) -> None:
    h = change.before
    path = _path(h)
    if h.kind == "topic_permission":
        path += "/" + _q(h.fields["exchange"])
    ctx.client.request("DELETE", path, expect=(200, 204, 404))


# ---------------------------------------------------------------------- super streams
def create_super_stream(change: Change, ctx) -> None:
    """The exchange (``x-super-stream``), its partition streams and their ordered bindings, as
    ``rabbitmq-streams add_super_stream`` makes them."""
    w = change.after
    v = _q(w.vhost)
    args = dict(w.fields.get("arguments") or {})
    keys = list(w.fields["binding_keys"]) if "binding_keys" in w.fields else [str(i) for i in
                                                                             range(w.fields["partitions"])]
    names = [f"{w.name}-{k}" for k in keys] if "binding_keys" in w.fields else [f"{w.name}-{k}" for k in keys]
    ctx.client.request("PUT", f"/api/exchanges/{v}/{_q(w.name)}",
                       {"type": "direct", "durable": True, "auto_delete": False, "internal": False,
                        "arguments": {"x-super-stream": True}}, expect=OK)
    for order, (key, queue) in enumerate(zip(keys, names)):
        ctx.client.request("PUT", f"/api/queues/{v}/{_q(queue)}",
                           {"durable": True, "auto_delete": False, "arguments": {**args, "x-queue-type": "stream"}},
                           expect=OK)
        ctx.client.request("POST", f"/api/bindings/{v}/e/{_q(w.name)}/q/{_q(queue)}",
                           {"routing_key": key, "arguments": {"x-stream-partition-order": order}}, expect=OK)


def delete_super_stream(change: Change, ctx) -> None:
    h = change.before
    v = _q(h.vhost)
    keys = list(h.fields["binding_keys"]) if "binding_keys" in h.fields else [str(i) for i in
                                                                             range(h.fields["partitions"])]
    for key in keys:
        ctx.client.request("DELETE", f"/api/queues/{v}/{_q(f'{h.name}-{key}')}", expect=(200, 204, 404))
    ctx.client.request("DELETE", f"/api/exchanges/{v}/{_q(h.name)}", expect=(200, 204, 404))


HANDLERS: dict[tuple[Action, str], Any] = {
    (Action.CREATE, "user"): put_user,
    (Action.UPDATE, "user"): put_user,
    (Action.DELETE, "user"): delete_user,
    (Action.CREATE, "super_stream"): create_super_stream,
    (Action.DELETE, "super_stream"): delete_super_stream,
}
for _kind in ("user_limit", "vhost_limit"):
    HANDLERS[(Action.CREATE, _kind)] = put_limits
    HANDLERS[(Action.UPDATE, _kind)] = put_limits
    HANDLERS[(Action.DELETE, _kind)] = delete_limits
for _kind in ("permission", "topic_permission", "operator_policy", "global_parameter", "federation_upstream",
              "federation_upstream_set", "shovel"):
    HANDLERS[(Action.CREATE, _kind)] = put_object
    HANDLERS[(Action.UPDATE, _kind)] = put_object
    HANDLERS[(Action.DELETE, _kind)] = delete_object
