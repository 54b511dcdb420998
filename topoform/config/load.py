"""The files' config kinds (SPEC section 8) -> a :class:`ConfigState`, with positioned findings.

``map_file`` runs once per file from :mod:`topoform.load` (after the JSON Schema, which
checks the structure); it builds :class:`~topoform.config.model.ConfigObject` values
whose secrets are references only. ``resolve`` (called by the commands, which own the
environment) reads every ``{env}`` / ``{file}`` at plan time and fails naming each
missing variable or file, never a value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping
from urllib.parse import quote, unquote, urlsplit

from ..errors import Finding, InputError, Position
from ..patterns import pcre_invalid, python_error
from ..model import Args, freeze
from . import kinds as K
from .model import GLOBAL, ConfigObject, make
from ..broker.settings import register_secret
from .secrets import (Ref, Secret, algorithm_name, has_credentials, hash_problem, parse_ref, redact_uri,
                      resolve as resolve_ref)


@dataclass(frozen=True)
class ConfigState:
    """Config objects by key, and what they cover.

    ``managed``: ``(kind, vhost)`` pairs whose objects the files describe completely (a
    vhost with a ``permissions:`` key manages its permissions; ``("user", name)`` and
    ``("user_limit", name)`` for each named user). ``unreadable``: live side, kinds the
    connected user may not list (kind -> why). ``positions``: key -> Position (files side).
    """

    objects: Mapping[tuple, ConfigObject] = field(default_factory=dict)
    managed: frozenset = frozenset()
    unreadable: Mapping[str, str] = field(default_factory=dict)
    positions: Mapping[tuple, Position] = field(default_factory=dict)
    missing_plugins: frozenset = frozenset()

    def of_kind(self, kind: str) -> dict[tuple, ConfigObject]:
        return {k: o for k, o in self.objects.items() if o.kind == kind}

    def in_vhosts(self, vhosts) -> "ConfigState":
        keep = set(vhosts)
        return replace(self, objects={k: o for k, o in self.objects.items() if o.vhost == GLOBAL or o.vhost in keep},
                       managed=frozenset(m for m in self.managed if m[0] in ("user", "user_limit", "global_parameter")
                                         or m[1] in keep))

    def __bool__(self) -> bool:
        return bool(self.objects) or bool(self.managed)


EMPTY = ConfigState()


class Accumulator:
    """Collects the config objects of every file (a second, different declaration is an error)."""

    def __init__(self):
        self.objects: dict[tuple, ConfigObject] = {}
        self.positions: dict[tuple, Position] = {}
        self.managed: set = set()

    def put(self, obj: ConfigObject, pos: Position | None, report) -> None:
        old = self.objects.get(obj.key)
        if old is not None:
            if old != obj or _refs(old) != _refs(obj):
                report("conflicting-declaration", f"{obj.kind} {obj.name!r} is declared twice with different "
                       f"content (first at {self.positions.get(obj.key)})", pos)
            return
        self.objects[obj.key] = obj
        self.positions[obj.key] = pos

    def finish(self) -> ConfigState:
        return ConfigState(objects=dict(self.objects), managed=frozenset(self.managed),
                           positions=dict(self.positions))


def _refs(obj: ConfigObject) -> dict:
    return {k: (s.ref, s.hash, s.algorithm) for k, s in obj.secrets.items()}


Report = Callable[..., None]  # report(code, message, position, severity='error', hint='')


def map_file(acc: Accumulator, data: Mapping, locate, report: Report, base_dir: str, bad: set) -> None:
    """One file's ``users``, ``global_parameters`` and per-vhost config keys into ``acc``."""
    def err(code: str, message: str, path: tuple, **kw) -> None:
        report(code, message, locate(path), **kw)

    users = data.get("users")
    if isinstance(users, dict):
        for name, spec in users.items():
            path = ("users", name)
            if _bad(bad, path):
                continue
            _user(acc, str(name), spec or {}, path, locate, err, base_dir)
    params = data.get("global_parameters")
    if isinstance(params, dict):
        for name, value in params.items():
            acc.managed.add(("global_parameter", str(name)))
            acc.put(make("global_parameter", GLOBAL, str(name), {"value": freeze(value)}),
                    locate(("global_parameters", name)), report)
    vhosts = data.get("vhosts")
    if not isinstance(vhosts, dict):
        return
    for vname, vspec in vhosts.items():
        if not isinstance(vspec, dict):
            continue
        for file_key, kind in K.VHOST_FILE_KEYS.items():
            if file_key not in vspec:
                continue
            section = vspec.get(file_key)
            path = ("vhosts", vname, file_key)
            if _bad(bad, path) or not isinstance(section, (dict, type(None))):
                continue
            acc.managed.add((kind, vname))
            _VHOST_MAPPERS[kind](acc, str(vname), section or {}, path, locate, err, base_dir, report)


def _bad(bad: set, path: tuple) -> bool:
    return any(path[:len(b)] == b or b[:len(path)] == path for b in bad)


def _user(acc, name, spec, path, locate, err, base_dir) -> None:
    secrets = {}
    has_pw, has_hash = "password" in spec, "password_hash" in spec
    if has_pw and has_hash:
        err("conflicting-password", f"user {name!r} gives both password and password_hash; keep one", path)
    elif has_pw:
        ref = parse_ref(spec["password"], base_dir)
        if ref is None:
            err("plain-text-secret", f"user {name!r}: the password must come from {{env: NAME}} or {{file: PATH}}, "
                "never in plain text", path + ("password",))
        else:
            secrets["password"] = Secret(ref=ref)
    elif has_hash:
        raw = spec["password_hash"]
        ref = parse_ref(raw, base_dir)
        try:
            algorithm = algorithm_name(spec.get("hashing_algorithm"))
        except InputError as exc:
            err("bad-hashing-algorithm", exc.message, path + ("hashing_algorithm",))
            algorithm = None
        if ref is None:
            register_secret(str(raw))  # a hash is a secret too: hidden wherever a broker's answer quotes it
            problem = hash_problem(str(raw), algorithm) if algorithm else None
            if problem:
                err("bad-password-hash", f"user {name!r}: password_hash {problem}", path + ("password_hash",))
        secrets["password"] = Secret(ref=ref, hash=None if ref else str(raw), algorithm=algorithm, given_hash=True)
    if "hashing_algorithm" in spec and not has_hash:
        try:
            algorithm = algorithm_name(spec.get("hashing_algorithm"))
        except InputError as exc:
            err("bad-hashing-algorithm", exc.message, path + ("hashing_algorithm",))
            algorithm = None
        if "password" in secrets:
            secrets["password"] = replace(secrets["password"], algorithm=algorithm)
    if not has_pw and not has_hash:
        err("user-without-password", f"user {name!r} has neither password nor password_hash: created by apply, it "
            "has no password and can authenticate only by other means (a client certificate, another auth "
            "backend); an existing user keeps its own", path, severity="warning",
            hint="give password: {env: NAME} unless that is meant")
    acc.managed.add(("user", name))
    acc.put(make("user", GLOBAL, name, {"tags": K._tags(spec.get("tags") or ())}, secrets=secrets), locate(path),
            lambda c, m, p: err(c, m, path))
    if "limits" in spec:
        acc.managed.add(("user_limit", name))
        acc.put(make("user_limit", GLOBAL, name, {"limits": Args(spec.get("limits") or {})}),
                locate(path + ("limits",)), lambda c, m, p: err(c, m, path + ("limits",)))


def _put(acc, obj, path, locate, report):
    acc.put(obj, locate(path), report)


def _limits(acc, vhost, section, path, locate, err, base_dir, report):
    _put(acc, make("vhost_limit", vhost, "limits", {"limits": Args(section)}), path, locate, report)


def _check_regex(err, owner: str, key: str, value: Any, path: tuple) -> None:
    """A permission regex the broker compiles (Erlang re): an error where Python's re and PCRE agree it is
    invalid (the broker answers 400 invalid_regexp, with the reason as an Erlang char list; measured on 3.10,
    4.0 and 4.3: tests/integration/test_patterns_broker.py), a warning where only Python's re refuses it."""
    if not isinstance(value, str) or not value:
        return
    shown = value if len(value) <= 40 else value[:37] + "..."
    reason = pcre_invalid(value)
    if reason:
        err("invalid-pattern", f"{owner}: {key} '{shown}' is not a valid regular expression ({reason}); the broker "
            "refuses it (400 invalid_regexp)", path)
    elif python_error(value):
        err("invalid-pattern", f"{owner}: {key} '{shown}' is not a valid Python regular expression "
            f"({python_error(value)}); the broker's PCRE may accept it", path, severity="warning")


def _permissions(acc, vhost, section, path, locate, err, base_dir, report):
    for user, spec in section.items():
        spec = spec or {}
        for k in ("configure", "write", "read"):
            _check_regex(err, f"permission of user {str(user)!r} in vhost {vhost!r}", k, spec.get(k), path + (user, k))
        _put(acc, make("permission", vhost, str(user), {k: str(spec.get(k, "")) for k in ("configure", "write", "read")}),
             path + (user,), locate, report)


def _topic_permissions(acc, vhost, section, path, locate, err, base_dir, report):
    for user, per_exchange in section.items():
        for exchange, spec in (per_exchange or {}).items():
            spec = spec or {}
            for k in ("write", "read"):
                _check_regex(err, f"topic permission of user {str(user)!r} on exchange {str(exchange)!r} in vhost "
                             f"{vhost!r}", k, spec.get(k), path + (user, exchange, k))
            _put(acc, K.topic_permission(vhost, str(user), str(exchange), str(spec.get("write", "")),
                                         str(spec.get("read", ""))), path + (user, exchange), locate, report)


def _operator_policies(acc, vhost, section, path, locate, err, base_dir, report):
    for name, spec in section.items():
        spec = spec or {}
        _put(acc, make("operator_policy", vhost, str(name), {
            "pattern": spec.get("pattern", ""), "apply_to": spec.get("apply_to", "all"),
            "priority": spec.get("priority", 0), "definition": Args(spec.get("definition") or {})}),
            path + (name,), locate, report)


def _uri_object(kind: str, uri_fields: tuple):
    def mapper(acc, vhost, section, path, locate, err, base_dir, report):
        for name, spec in section.items():
            spec = dict(spec or {})
            secrets = {}
            for f in uri_fields:
                if f not in spec:
                    continue
                ref = parse_ref(spec[f], base_dir)
                if ref is not None:
                    secrets[f] = Secret(ref=ref)
                    del spec[f]
                elif isinstance(spec[f], dict):
                    err("bad-secret-reference", f"{kind} {name!r}: {f} must be a URI, a list of URIs, {{env: NAME}} "
                        "or {file: PATH}", path + (name, f))
                    del spec[f]
                elif has_credentials(spec[f]):
                    err("plain-text-secret", f"{kind} {name!r}: {f} holds credentials; give it as {{env: NAME}} or "
                        "{file: PATH}, never in plain text", path + (name, f))
                    del spec[f]
            if kind == "shovel":
                _check_shovel_keys(err, vhost, str(name), spec, path + (name,))
            _put(acc, make(kind, vhost, str(name), freeze(spec), secrets=secrets), path + (name,), locate, report)
    return mapper


# Every key of a dynamic shovel's definition in RabbitMQ 3.10.0, 4.0.0 and 4.3.0 (rabbit_shovel_parameters.erl,
# rabbit_amqp091_shovel.erl, rabbit_amqp10_shovel.erl, rabbit_local_shovel.erl); the broker refuses any other
# (400 "Unrecognised terms", measured on 3.10.8, 4.0.5 and 4.3.6: tests/integration/test_config_checks_broker.py).
SHOVEL_KEYS = frozenset((
    "ack-mode", "add-forward-headers", "add-timestamp-header", "delete-after", "dest-add-forward-headers",
    "dest-add-timestamp-header", "dest-address", "dest-application-properties", "dest-exchange",
    "dest-exchange-key", "dest-message-annotations", "dest-predeclared", "dest-properties", "dest-protocol",
    "dest-publish-properties", "dest-queue", "dest-queue-args", "dest-uri", "internal", "internal_owner",
    "prefetch-count", "publish-properties", "reconnect-delay", "src-address", "src-consumer-args",
    "src-consumer-name", "src-delete-after", "src-exchange", "src-exchange-key", "src-predeclared",
    "src-prefetch-count", "src-protocol", "src-queue", "src-queue-args", "src-uri"))


def _check_shovel_keys(err, vhost: str, name: str, spec: Mapping, path: tuple) -> None:
    """A shovel key the broker does not know: refused (400 Unrecognised terms). An error when it is close to
    a known key (a typo: ``src-queu``), a warning otherwise (a key of a newer plugin topoform does not list)."""
    import difflib

    for key in spec:
        if not isinstance(key, str) or key in SHOVEL_KEYS:
            continue
        guess = difflib.get_close_matches(key.lower().replace("_", "-"), sorted(SHOVEL_KEYS), n=1, cutoff=0.75)
        message = (f"shovel {name!r} in vhost {vhost!r} has key {key!r}, which the broker does not recognise "
                   "and refuses (400 Unrecognised terms)")
        if guess:
            err("shovel-unknown-key", message, path + (key,), hint=f"did you mean {guess[0]!r}?")
        else:
            err("shovel-unknown-key", message, path + (key,), severity="warning",
                hint="topoform knows the keys of RabbitMQ 3.10 to 4.3; check the key's spelling")


def _upstream_sets(acc, vhost, section, path, locate, err, base_dir, report):
    for name, members in section.items():
        _put(acc, make("federation_upstream_set", vhost, str(name), {"upstreams": freeze(list(members or []))}),
             path + (name,), locate, report)


def _super_streams(acc, vhost, section, path, locate, err, base_dir, report):
    for name, spec in section.items():
        spec = spec or {}
        if ("partitions" in spec) == ("binding_keys" in spec):
            err("bad-super-stream", f"super stream {name!r} needs exactly one of partitions and binding_keys",
                path + (name,))
            continue
        value = {"arguments": Args(spec.get("arguments") or {})}
        if "partitions" in spec:
            value["partitions"] = spec["partitions"]
        else:
            value["binding_keys"] = tuple(str(k) for k in spec["binding_keys"])
        _put(acc, make("super_stream", vhost, str(name), value), path + (name,), locate, report)


_VHOST_MAPPERS = {
    "vhost_limit": _limits,
    "permission": _permissions,
    "topic_permission": _topic_permissions,
    "operator_policy": _operator_policies,
    "federation_upstream": _uri_object("federation_upstream", ("uri",)),
    "federation_upstream_set": _upstream_sets,
    "shovel": _uri_object("shovel", ("src-uri", "dest-uri")),
    "super_stream": _super_streams,
}


def check_references(state: ConfigState, report: Report, known: "Known | None" = None) -> None:
    """Upstream sets name upstreams of their vhost; shovels that work inside this broker name its objects.

    ``known``: what the topology files declare (vhosts, ``(vhost, queue)``, ``(vhost, exchange)``),
    for :func:`check_shovels`; without it only the upstream sets are checked.
    """
    if known is not None:
        check_shovels(state, report, known)
    check_federation_uris(state, report)
    upstreams = {(o.vhost, o.name) for o in state.objects.values() if o.kind == "federation_upstream"}
    managed = {m[1] for m in state.managed if m[0] == "federation_upstream"}
    for key, obj in state.objects.items():
        if obj.kind != "federation_upstream_set":
            continue
        for member in obj.fields.get("upstreams") or ():
            up = member.get("upstream") if isinstance(member, Mapping) else None
            if not up or (obj.vhost, up) in upstreams:
                continue
            if obj.vhost in managed:  # the vhost's upstreams are all in the files: this one is missing
                report("undeclared-upstream", f"federation upstream set {obj.name!r} names upstream {up!r}, which "
                       f"vhost {obj.vhost!r} does not declare", state.positions.get(key))
            else:  # it may be on the broker; the broker accepts a set naming a missing upstream without a word
                report("undeclared-upstream", f"federation upstream set {obj.name!r} names upstream {up!r}, which "
                       f"the files do not declare in vhost {obj.vhost!r}: it must exist on the broker, which "
                       "accepts the set without it (measured on 3.10, 4.0 and 4.3)", state.positions.get(key),
                       severity="warning", hint=f"declare it under federation_upstreams of vhost {obj.vhost!r}")
    check_permission_references(state, report, known)


def check_permission_references(state: ConfigState, report: Report, known: "Known | None" = None) -> None:
    """Permissions name users of the files, topic permissions exchanges of the files; else they must exist
    on the broker: a permission for a missing user is refused (400 vhost_or_user_not_found, 3.10, 4.0 and
    4.3), and 4.3 refuses a topic permission for a missing exchange (400 no_such_exchange; 3.10 and 4.0
    accept it), measured: tests/integration/test_config_checks_broker.py."""
    users = {o.name for o in state.objects.values() if o.kind == "user"}
    supers = {(o.vhost, o.name) for o in state.objects.values() if o.kind == "super_stream"}
    for key, obj in state.objects.items():
        if obj.kind not in ("permission", "topic_permission"):
            continue
        user = obj.name if obj.kind == "permission" else obj.fields.get("user")
        what = "permission" if obj.kind == "permission" else "topic permission"
        if user not in users:
            report("permission-unknown-user", f"{what} of user {user!r} in vhost {obj.vhost!r}: the files do not "
                   "declare the user, so it must exist on the broker (which refuses a permission for a missing "
                   "user: 400 vhost_or_user_not_found)", state.positions.get(key), severity="warning",
                   hint=f"declare user {user!r} under users:, or check the name")
        exchange = obj.fields.get("exchange") if obj.kind == "topic_permission" else None
        if known is not None and isinstance(exchange, str) and exchange and not exchange.startswith("amq.") \
                and (obj.vhost, exchange) not in known.exchanges and (obj.vhost, exchange) not in supers:
            report("topic-permission-undeclared-exchange",
                   f"topic permission of user {user!r} on exchange {exchange!r}: vhost {obj.vhost!r} of the files "
                   "does not declare the exchange, so it must exist on the broker: RabbitMQ 4.3 refuses a topic "
                   "permission for a missing exchange (400 no_such_exchange; 3.10 and 4.0 accept it)",
                   state.positions.get(key), severity="warning", hint=f"declare exchange {exchange!r} in vhost "
                                                                      f"{obj.vhost!r}, or check the name")


@dataclass(frozen=True)
class Known:
    """The topology files' names: vhosts, ``(vhost, queue)`` and ``(vhost, exchange)`` pairs."""

    vhosts: frozenset | set
    queues: frozenset | set
    exchanges: frozenset | set


def local_vhost(uri: Any) -> str | None:
    """The vhost a shovel URI without a host works in (``amqp://`` is ``/``), or None for a remote one.

    A URI with no host is the broker's direct connection to itself, in the vhost its path names;
    with no path at all that is the default vhost ``/``, not the shovel's own (measured on 3.10.8,
    4.0.5 and 4.3.6: ``tests/integration/test_shovel_uris.py``).
    """
    if not isinstance(uri, str):
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    if parts.scheme not in ("amqp", "amqps") or parts.hostname:
        return None
    return unquote(parts.path[1:]) if parts.path else "/"


_SHOVEL_ENDS = (("src-uri", "src-queue", "src-exchange"), ("dest-uri", "dest-queue", "dest-exchange"))


def check_shovels(state: ConfigState, report: Report, known: Known) -> None:
    """Warn where a shovel inside this broker would not work on the files' objects.

    * a host-less URI without a path works in vhost ``/``, whatever vhost the shovel is in
      (``shovel-default-vhost``); ``amqp:///`` names the vhost ``''``, which the broker refuses
      (``shovel-empty-vhost``, an error);
    * in a vhost the files declare, a ``src-queue`` / ``dest-queue`` they do not declare is
      declared by the broker itself as a durable classic queue no file manages, and an
      exchange they do not declare is not there to consume from or publish to
      (``shovel-undeclared-queue``, ``shovel-undeclared-exchange``).
    """
    from ..routing.super_streams import partitions

    streams = {(o.vhost, s) for o in state.objects.values() if o.kind == "super_stream"
               for _, s in partitions(o.name, o.fields)}
    supers = {(o.vhost, o.name) for o in state.objects.values() if o.kind == "super_stream"}
    for key, obj in state.objects.items():
        if obj.kind != "shovel":
            continue
        pos = state.positions.get(key)
        own = "amqp:///" + quote(obj.vhost, safe="")  # the URI of the shovel's own vhost
        for uri_key, queue_key, exchange_key in _SHOVEL_ENDS:
            uri = obj.fields.get(uri_key)
            vhost = local_vhost(uri)
            if vhost is None:
                continue  # remote, a secret or a list of URIs: nothing certain to check
            shown = redact_uri(uri)  # never credentials in a message (they are refused in plain text anyway)
            if vhost == "":
                report("shovel-empty-vhost", f"shovel {obj.name!r}: {uri_key} {shown!r} names the empty vhost '', "
                       "which the broker refuses (measured on 3.10, 4.0 and 4.3)", pos,
                       hint=f"write {own!r} for the shovel's own vhost, or 'amqp://' for '/'")
                continue
            if obj.vhost != "/" and not urlsplit(uri).path:
                report("shovel-default-vhost",
                       f"shovel {obj.name!r} in vhost {obj.vhost!r}: {uri_key} {shown!r} names no vhost, so it "
                       f"works in vhost '/', not {obj.vhost!r}", pos, severity="warning",
                       hint=f"write {own!r} for the shovel's own vhost, or 'amqp:///%2F' to mean '/'")
            if vhost not in known.vhosts:
                continue
            queue, exchange = obj.fields.get(queue_key), obj.fields.get(exchange_key)
            if isinstance(queue, str) and queue and (vhost, queue) not in known.queues \
                    and (vhost, queue) not in streams:
                report("shovel-undeclared-queue",
                       f"shovel {obj.name!r}: {queue_key} {queue!r} is not declared in vhost {vhost!r}; the broker "
                       "then declares it itself, as a durable classic queue that no file manages", pos,
                       severity="warning", hint=f"declare queue {queue!r} in vhost {vhost!r}, or name the queue "
                                                "the shovel is meant for")
            if isinstance(exchange, str) and exchange and not exchange.startswith("amq.") \
                    and (vhost, exchange) not in known.exchanges and (vhost, exchange) not in supers:
                report("shovel-undeclared-exchange",
                       f"shovel {obj.name!r}: {exchange_key} {exchange!r} is not declared in vhost {vhost!r}, and "
                       "the broker does not declare exchanges for a shovel", pos, severity="warning",
                       hint=f"declare exchange {exchange!r} in vhost {vhost!r}")


def check_federation_uris(state: ConfigState, report: Report) -> None:
    """Warn where a federation upstream inside this broker federates its vhost from itself.

    Unlike a shovel's, a federation upstream's host-less URI without a path (``amqp://``) is the
    upstream's *own* vhost, so every exchange federated from it gets each message twice: once
    published, once from the link (``federation-self-upstream``; measured on 3.10, 4.0 and 4.3:
    ``tests/integration/test_federation_uris.py``). An upstream with its own ``exchange`` or
    ``queue`` key federates from another object and is left alone. ``amqp:///`` names the vhost
    ``''``: 4.3 refuses the upstream, 3.10 and 4.0 accept it and its links fail with
    ``not_allowed`` (``federation-empty-vhost``, an error).
    """
    for key, obj in state.objects.items():
        if obj.kind != "federation_upstream":
            continue
        uri = obj.fields.get("uri")
        vhost = local_vhost(uri)
        if vhost is None:
            continue
        shown, pos = redact_uri(uri), state.positions.get(key)
        if isinstance(uri, str) and not urlsplit(uri).path:
            vhost = obj.vhost
        own = "amqp:///" + quote(obj.vhost, safe="")
        if vhost == "":
            report("federation-empty-vhost", f"federation upstream {obj.name!r}: uri {shown!r} names the empty "
                   "vhost '', which 4.3 refuses and whose links fail with not_allowed on 3.10 and 4.0", pos,
                   hint="name the upstream broker's host and vhost (amqp://host/vhost)")
        elif vhost == obj.vhost and not obj.fields.get("exchange") and not obj.fields.get("queue"):
            report("federation-self-upstream",
                   f"federation upstream {obj.name!r} in vhost {obj.vhost!r}: uri {shown!r} is this broker's vhost "
                   f"{obj.vhost!r} itself, so an exchange federated from it receives every message twice",
                   pos, severity="warning",
                   hint="name the upstream broker's host (amqp://host/vhost); a host-less federation URI without "
                        f"a vhost means the upstream's own vhost ({own!r}), not '/'")


# ---------------------------------------------------------------------- secrets at plan time
def resolve(state: ConfigState, environ: Mapping[str, str]) -> ConfigState:
    """Every reference read now; raises InputError listing each missing variable or file with its position."""
    if not state.objects:
        return state
    findings: list[Finding] = []
    out = {}
    for key, obj in state.objects.items():
        if not any(s.ref is not None for s in obj.secrets.values()):
            out[key] = obj
            continue
        secrets, value = dict(obj.secrets), dict(obj.fields)
        for f, secret in obj.secrets.items():
            if secret.ref is None:
                continue
            try:
                plain = resolve_ref(secret.ref, environ)
            except InputError as exc:
                findings.append(Finding("missing-secret", f"{obj.kind} {obj.name!r}: {exc.message}",
                                        position=state.positions.get(key), hint=exc.hint))
                continue
            if obj.kind == "user" and secret.given_hash:
                secrets[f] = replace(secret, hash=plain)
            else:
                secrets[f] = replace(secret, plain=plain)
            if f in K.KINDS[obj.kind].uri_fields:
                value[f] = redact_uri(plain)
        out[key] = replace(obj, secrets=secrets, fields=Args(value))
    if findings:
        n = len(findings)
        raise InputError(f"{n} secret{'s' if n != 1 else ''} of the topology files could not be read",
                         findings=findings)
    return replace(state, objects=out)
