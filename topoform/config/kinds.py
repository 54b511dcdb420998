"""The kinds of SPEC section 8, one row each: where they live in the files, the broker's API
and definitions export, which fields are secret, which cannot change in place.

Every layer of :mod:`topoform.config` (load, live, plan, apply, export, import) reads this
table instead of switching on kind names. A row's functions:

* ``from_row(row, vhost)`` - one row of the broker's listing (``GET list_path``) or of a
  definitions export -> ConfigObject (live side; URIs with credentials redacted in
  ``value``, the real one in ``secrets``);
* ``body(obj, plain)`` - the JSON body of ``PUT path`` (``plain``: secret field -> value);
* ``definitions(obj, plain)`` - ``(export key, row)`` for ``topoform export``.

Must not import broker, apply or cli.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..model import Args, freeze, thaw
from .model import GLOBAL, ConfigObject, make
from .secrets import Secret, has_credentials, redact_uri


@dataclass(frozen=True)
class Kind:
    kind: str
    file_key: str  # key in the files: top-level for global kinds, under a vhost otherwise
    scope: str  # "global" | "vhost"
    path: str  # PUT/DELETE path template ({vhost}, {name}, {user}, {exchange} quoted by the caller)
    list_path: str | None  # GET listing template (None: derived from another kind's listing)
    component: str | None = None  # runtime parameter component in a definitions export
    secret_fields: tuple[str, ...] = ()
    uri_fields: tuple[str, ...] = ()  # secret fields that are URIs (kept redacted in ``value``)
    immutable: tuple[str, ...] = ()  # fields the broker cannot change in place: blocked
    plugin: str | None = None  # the plugin the kind needs (its listing is 404/400 without it)
    from_row: Callable[[Mapping, str], ConfigObject | None] | None = None
    body: Callable[[ConfigObject, Mapping], Any] | None = None
    definitions: Callable[[ConfigObject, Mapping], tuple[str, dict]] | None = None

    @property
    def redacted_in_value(self) -> bool:
        return bool(self.uri_fields)

    def ident_of(self, name: str, values: Mapping) -> tuple:
        if self.kind == "topic_permission":
            return (values.get("user"), values.get("exchange"))
        return (name,)


def _tags(value: Any) -> tuple:
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",")]
    return tuple(sorted({str(t) for t in value or () if str(t)}))


# ---------------------------------------------------------------------- users
def user_from_row(row: Mapping, vhost: str = GLOBAL) -> ConfigObject:
    secret = Secret(hash=row.get("password_hash") or "", algorithm=row.get("hashing_algorithm") or None)
    return make("user", GLOBAL, str(row["name"]), {"tags": _tags(row.get("tags"))}, secrets={"password": secret})


def user_body(obj: ConfigObject, plain: Mapping) -> dict:
    body = {"tags": ",".join(obj.fields.get("tags") or ())}
    body["password_hash"] = plain.get("password_hash", "")
    body["hashing_algorithm"] = plain.get("hashing_algorithm") or "rabbit_password_hashing_sha256"
    return body


def user_definitions(obj: ConfigObject, plain: Mapping) -> tuple[str, dict]:
    row = {"name": obj.name, "tags": list(obj.fields.get("tags") or ()),
           "password_hash": plain.get("password_hash", ""),
           "hashing_algorithm": plain.get("hashing_algorithm") or "rabbit_password_hashing_sha256", "limits": {}}
    return "users", row


def limits_from_row(kind: str, owner_field: str):
    def from_row(row: Mapping, vhost: str = GLOBAL) -> ConfigObject | None:
        value = row.get("value") if "value" in row else row.get("limits")
        if not value:
            return None
        owner = str(row.get(owner_field, vhost))
        return make(kind, owner if kind == "vhost_limit" else GLOBAL, owner if kind == "user_limit" else "limits",
                    {"limits": Args(value)})
    return from_row


# ---------------------------------------------------------------------- permissions
def permission_from_row(row: Mapping, vhost: str) -> ConfigObject:
    return make("permission", str(row.get("vhost", vhost)), str(row["user"]),
                {k: str(row.get(k, "")) for k in ("configure", "write", "read")})


def topic_permission_from_row(row: Mapping, vhost: str) -> ConfigObject:
    return topic_permission(str(row.get("vhost", vhost)), str(row["user"]), str(row["exchange"]),
                            str(row.get("write", "")), str(row.get("read", "")))


def topic_permission(vhost: str, user: str, exchange: str, write: str, read: str) -> ConfigObject:
    return make("topic_permission", vhost, f"{user}@{exchange}",
                {"user": user, "exchange": exchange, "write": write, "read": read}, ident=(user, exchange))


# ---------------------------------------------------------------------- policies and parameters
def operator_policy_from_row(row: Mapping, vhost: str) -> ConfigObject:
    src = row.get("value") if isinstance(row.get("value"), Mapping) else row
    return make("operator_policy", str(row.get("vhost", vhost)), str(row["name"]),
                {"pattern": src.get("pattern", ""), "apply_to": src.get("apply-to", src.get("apply_to", "all")),
                 "priority": src.get("priority", 0), "definition": Args(src.get("definition") or {})})


def operator_policy_body(obj: ConfigObject, plain: Mapping) -> dict:
    v = obj.fields
    return {"pattern": v["pattern"], "apply-to": v["apply_to"], "priority": v["priority"],
            "definition": thaw(v["definition"])}


def global_parameter_from_row(row: Mapping, vhost: str = GLOBAL) -> ConfigObject:
    return make("global_parameter", GLOBAL, str(row["name"]), {"value": freeze(row.get("value"))})


def parameter_from_row(kind: str, uri_fields: tuple[str, ...] = ()):
    def from_row(row: Mapping, vhost: str) -> ConfigObject:
        value = thaw(freeze(row.get("value")))
        secrets = {}
        if isinstance(value, dict):
            for f in uri_fields:
                if f in value and has_credentials(value[f]):
                    secrets[f] = Secret(plain=value[f])
                    value[f] = redact_uri(value[f])
        if kind == "federation_upstream_set":
            value = {"upstreams": value or []}
        return make(kind, str(row.get("vhost", vhost)), str(row["name"]), value, secrets=secrets)
    return from_row


def parameter_value(obj: ConfigObject, plain: Mapping) -> Any:
    if obj.kind == "federation_upstream_set":
        return thaw(obj.fields.get("upstreams") or ())
    value = thaw(obj.fields)
    value.update({k: v for k, v in plain.items()})
    return value


def parameter_body(component: str):
    def body(obj: ConfigObject, plain: Mapping) -> dict:
        return {"component": component, "vhost": obj.vhost, "name": obj.name, "value": parameter_value(obj, plain)}
    return body


def parameter_definitions(component: str):
    def definitions(obj: ConfigObject, plain: Mapping) -> tuple[str, dict]:
        return "parameters", {"component": component, "vhost": obj.vhost, "name": obj.name,
                              "value": parameter_value(obj, plain)}
    return definitions


# ---------------------------------------------------------------------- the table
_ROWS = (
    Kind("user", "users", "global", "/api/users/{name}", "/api/users", secret_fields=("password",),
         from_row=user_from_row, body=user_body, definitions=user_definitions),
    Kind("user_limit", "limits", "global", "/api/user-limits/{name}/{limit}", "/api/user-limits",
         from_row=limits_from_row("user_limit", "user")),
    Kind("permission", "permissions", "vhost", "/api/permissions/{vhost}/{name}", "/api/vhosts/{vhost}/permissions",
         from_row=permission_from_row, body=lambda o, p: {k: o.fields[k] for k in ("configure", "write", "read")},
         definitions=lambda o, p: ("permissions", {"user": o.name, "vhost": o.vhost,
                                                   **{k: o.fields[k] for k in ("configure", "write", "read")}})),
    Kind("topic_permission", "topic_permissions", "vhost", "/api/topic-permissions/{vhost}/{user}",
         "/api/vhosts/{vhost}/topic-permissions", from_row=topic_permission_from_row,
         body=lambda o, p: {k: o.fields[k] for k in ("exchange", "write", "read")},
         definitions=lambda o, p: ("topic_permissions", {"vhost": o.vhost, **thaw(o.fields)})),
    Kind("vhost_limit", "limits", "vhost", "/api/vhost-limits/{vhost}/{limit}", "/api/vhost-limits/{vhost}",
         component="vhost-limits", from_row=limits_from_row("vhost_limit", "vhost"),
         definitions=lambda o, p: ("parameters", {"component": "vhost-limits", "vhost": o.vhost, "name": "limits",
                                                  "value": thaw(o.fields["limits"])})),
    Kind("operator_policy", "operator_policies", "vhost", "/api/operator-policies/{vhost}/{name}",
         "/api/operator-policies/{vhost}", component="operator_policy", from_row=operator_policy_from_row,
         body=operator_policy_body,
         definitions=lambda o, p: ("parameters", {"component": "operator_policy", "vhost": o.vhost, "name": o.name,
                                                  "value": operator_policy_body(o, p)})),
    Kind("global_parameter", "global_parameters", "global", "/api/global-parameters/{name}", "/api/global-parameters",
         from_row=global_parameter_from_row, body=lambda o, p: {"name": o.name, "value": thaw(o.fields["value"])},
         definitions=lambda o, p: ("global_parameters", {"name": o.name, "value": thaw(o.fields["value"])})),
    Kind("federation_upstream", "federation_upstreams", "vhost", "/api/parameters/federation-upstream/{vhost}/{name}",
         "/api/parameters/federation-upstream/{vhost}", component="federation-upstream", secret_fields=("uri",),
         uri_fields=("uri",), plugin="rabbitmq_federation",
         from_row=parameter_from_row("federation_upstream", ("uri",)), body=parameter_body("federation-upstream"),
         definitions=parameter_definitions("federation-upstream")),
    Kind("federation_upstream_set", "federation_upstream_sets", "vhost",
         "/api/parameters/federation-upstream-set/{vhost}/{name}", "/api/parameters/federation-upstream-set/{vhost}",
         component="federation-upstream-set", plugin="rabbitmq_federation",
         from_row=parameter_from_row("federation_upstream_set"), body=parameter_body("federation-upstream-set"),
         definitions=parameter_definitions("federation-upstream-set")),
    Kind("shovel", "shovels", "vhost", "/api/parameters/shovel/{vhost}/{name}", "/api/parameters/shovel/{vhost}",
         component="shovel", secret_fields=("src-uri", "dest-uri"), uri_fields=("src-uri", "dest-uri"),
         plugin="rabbitmq_shovel", from_row=parameter_from_row("shovel", ("src-uri", "dest-uri")),
         body=parameter_body("shovel"), definitions=parameter_definitions("shovel")),
    Kind("super_stream", "super_streams", "vhost", "", None, immutable=("partitions", "binding_keys", "arguments"),
         plugin="rabbitmq_stream"),
)
KINDS: dict[str, Kind] = {row.kind: row for row in _ROWS}
VHOST_KINDS = tuple(r.kind for r in _ROWS if r.scope == "vhost")
BY_COMPONENT = {r.component: r for r in _ROWS if r.component}
# file key under a vhost -> kind
VHOST_FILE_KEYS = {r.file_key: r.kind for r in _ROWS if r.scope == "vhost"}
ALL_KINDS = tuple(KINDS)
