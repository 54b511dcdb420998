"""Config objects: one frozen type for every kind of SPEC section 8 (users, permissions, limits, ...).

A :class:`ConfigObject` behaves like a topology Resource for the planner, the renderer
and plan files (``kind``, ``vhost``, ``key``, ``display_name``, ``to_dict``), so the
existing pipeline carries it unchanged. ``fields`` holds the comparable, secret-free
fields (URIs with credentials are kept redacted there); ``secrets`` holds the secret
fields (:class:`~topoform.config.secrets.Secret`), compared by the planner's own rules
and never written by ``to_dict``: a plan names the reference (``{env: NAME}``) or says
``(set)``. Global kinds (user, user_limit, global_parameter) have ``vhost == ""``.

Must not import broker, apply or cli.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..model import Args, freeze, thaw
from .secrets import Ref, Secret

GLOBAL = ""


@dataclass(frozen=True)
class ConfigObject:
    kind: str
    vhost: str
    name: str
    fields: Args = field(default_factory=Args)
    ident: tuple = ()  # identity beyond (kind, vhost, name): a topic permission's (user, exchange)
    secrets: Mapping[str, Secret] = field(default_factory=dict, compare=False, hash=False, repr=False)
    early: bool = field(default=False, compare=False)  # vhost limits that only loosen: before the queues

    @property
    def key(self) -> tuple:
        return (self.kind, self.vhost) + (self.ident or (self.name,))

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def phase_kind(self) -> str:
        return self.kind + "_early" if self.early else self.kind

    @property
    def secret_paths(self) -> tuple[str, ...]:
        return tuple(sorted(self.secrets))

    def __getattr__(self, name: str) -> Any:  # field paths for the renderer: value keys as attributes
        if name.startswith("_") or name in ("kind", "vhost", "name", "fields", "ident", "secrets", "early"):
            raise AttributeError(name)
        value = object.__getattribute__(self, "fields")
        if name in value:
            return value[name]
        raise AttributeError(name)

    def to_dict(self) -> dict:
        out = {"vhost": self.vhost, "name": self.name, **thaw(self.fields)}
        for path, secret in self.secrets.items():
            if path not in out or secret.ref is not None:
                out[path] = secret.to_dict()
        return out

    def replace(self, **changes) -> "ConfigObject":
        from dataclasses import replace

        return replace(self, **changes)

    def attributes(self) -> list[str]:
        """Tokens shown for a new object (``+ user x  tags=["monitoring"] password=(set)``)."""
        import json

        tokens = []
        for k, v in self.fields.items():
            if isinstance(v, Args):
                tokens += [f"{k}.{kk}={json.dumps(thaw(vv), ensure_ascii=False, sort_keys=True)}"
                           for kk, vv in v.items()]
            else:
                tokens.append(f"{k}={json.dumps(thaw(v), ensure_ascii=False, sort_keys=True)}")
        tokens += [f"{k}=(set)" for k in sorted(self.secrets) if k not in self.fields]
        return tokens


def make(kind: str, vhost: str, name: str, value: Mapping | None = None, *, ident: tuple = (),
         secrets: Mapping[str, Secret] | None = None) -> ConfigObject:
    return ConfigObject(kind=kind, vhost=vhost, name=name, fields=Args(value or {}), ident=tuple(ident),
                        secrets=dict(secrets or {}))


def object_from_dict(kind: str, d: Mapping | None) -> ConfigObject | None:
    """Rebuild an object from a plan file (``Change.to_dict``'s before/after). Secrets come back as
    references only (a value that was ``(set)`` is not in the plan: apply reads it again)."""
    if d is None:
        return None
    from .kinds import KINDS

    row = KINDS[kind]
    values = dict(d)
    vhost, name = values.pop("vhost", GLOBAL), values.pop("name", "")
    secrets = {}
    for path in row.secret_fields:
        raw = values.get(path)
        if isinstance(raw, Mapping) and len(raw) == 1 and next(iter(raw)) in ("env", "file"):
            (src, ref_name), = raw.items()
            secrets[path] = Secret(ref=Ref(src, ref_name))
            values.pop(path)
        elif raw == "(set)":
            secrets[path] = Secret()
            values.pop(path)
    return make(kind, vhost, name, values, ident=row.ident_of(name, values), secrets=secrets)
