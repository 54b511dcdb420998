"""The checks a schema cannot express, run by :mod:`topoform.load` over what it mapped.

References between objects, what the broker would refuse at declare time, and what
the *target* RabbitMQ version refuses or deprecates (the rows of
:mod:`topoform.versions`, the argument table of :mod:`topoform.arguments`). Every
problem becomes a finding on ``state`` with the position of the offending key or
value; nothing here raises or prints.

``state`` and ``doc`` are the loader's ``_State`` and ``_Doc`` (duck-typed: this module
imports nothing from the loader).
"""
from __future__ import annotations

import re

from . import arguments as A
from . import schema as _schema
from .model import Exchange, Policy, Queue, RouteTest, takes_default_queue_type
from .patterns import pcre_invalid, python_error
from .plugins import policy_key_plugin
from .versions import SUPPORTED, at_least, behaviour, format_version, has

MAX_SHORTSTR = 255  # AMQP short string: names and routing keys (RABBITMQ-SEMANTICS 1.5)
INT64 = (-2 ** 63, 2 ** 63 - 1)  # AMQP tables carry signed 64-bit integers at most

# exchange types built into some versions only (else: unknown, or a plugin's)
_VERSIONED_EXCHANGE_TYPES = {"x-local-random": "local_random_exchange", "x-modulus-hash": "modulus_hash_exchange"}
_TYPE_PLUGIN = {"x-modulus-hash": "rabbitmq_sharding"}


def run_checks(state, version: tuple[int, int]) -> None:
    """Every check over the mapped resources, with the rules of RabbitMQ ``version``."""
    _check_resources(state, version)
    _check_bindings(state, version)


def _v(version) -> str:
    return format_version(version)


def _since(key: str) -> str:
    return behaviour(key).since or ""


def _name_problems(state, kind: str, name: str, doc, path: tuple, reserved: bool = True) -> None:
    if len(name) <= MAX_SHORTSTR // 4 and name and "\r" not in name and "\n" not in name and \
            not (reserved and name.startswith("amq.")):
        return  # the common case, decided without encoding or locating anything
    where = doc.locate(path, True)
    size = len(name.encode("utf-8"))
    if size > MAX_SHORTSTR:
        state.add("name-too-long", f"{kind} name '{_clip(name)}' is {size} bytes; the broker allows at most "
                                   f"{MAX_SHORTSTR} (AMQP short string)", where)
    if "\r" in name or "\n" in name:
        state.add("name-has-newline", f"{kind} name {name!r} contains a line break; the broker silently strips it "
                                      f"and the declare never completes", where)
    if reserved and name.startswith("amq."):
        state.add("reserved-name", f"{kind} name '{_clip(name)}' uses the reserved prefix 'amq.'; the broker "
                                   f"refuses to create it (403 ACCESS_REFUSED)", where)
    if name == "":
        what = "the default exchange cannot be declared" if kind == "exchange" else \
            "an empty name asks the broker for a generated amq.gen-* name, which topoform cannot manage"
        state.add("empty-name", f"{kind} name must not be empty: {what}", where)


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _check_resources(state, version) -> None:
    for kind, item, doc, path in state.checks:
        if kind == "exchange":
            _check_exchange(state, item, doc, path, version)
        elif kind == "queue":
            _check_queue(state, item[0], item[1], doc, path, version)
        elif kind == "policy":
            _check_policy(state, item, doc, path, version)
        elif kind == "operator_policy":
            _check_operator_policy(state, item, doc, path, version)
        elif kind == "test":
            _check_test(state, item, doc, path)
    for key, vhost in state.vhosts.items():
        doc, path, _ = state.locators[key]
        if len(vhost.name.encode("utf-8")) > MAX_SHORTSTR or not vhost.name:
            _name_problems(state, "vhost", vhost.name, doc, path, reserved=False)


def _check_exchange(state, ex: Exchange, doc, path: tuple, version) -> None:
    _name_problems(state, "exchange", ex.name, doc, path)
    if ex.type in _VERSIONED_EXCHANGE_TYPES:
        row = _VERSIONED_EXCHANGE_TYPES[ex.type]
        if not has(version, row):
            plugin = _TYPE_PLUGIN.get(ex.type)
            if plugin:
                state.add("plugin-exchange-type",
                          f"exchange '{ex.name}' has type '{ex.type}', built in from RabbitMQ {_since(row)}; on "
                          f"{_v(version)} it needs the {plugin} plugin, or the declare fails (unknown exchange type)",
                          doc.locate(path + ("type",)), severity="warning")
            else:
                state.add("exchange-type-unsupported",
                          f"exchange '{ex.name}' has type '{ex.type}', which exists from RabbitMQ {_since(row)}; "
                          f"RabbitMQ {_v(version)} refuses it (unknown exchange type): use another type or target "
                          f"{_since(row)}+", doc.locate(path + ("type",)))
    elif ex.type.startswith("x-"):
        how = "the declare fails with a channel error (406)" if has(version, "unknown_exchange_type_is_channel_error") \
            else "the declare closes the connection (503)"
        state.add("plugin-exchange-type", f"exchange '{ex.name}' has plugin type '{ex.type}': the plugin must "
                                          f"be enabled, or {how}", doc.locate(path + ("type",)), severity="warning")
    ae = ex.arguments.get("alternate-exchange")
    if isinstance(ae, str) and not _exchange_known(state, ex.vhost, ae):
        state.add("dangling-alternate-exchange",
                  f"alternate-exchange '{ae}' of exchange '{ex.name}' is not declared in the files "
                  f"(unroutable messages are dropped unless it exists on the broker)",
                  doc.locate(path + ("arguments", "alternate-exchange")), severity="warning")
    for name in ex.arguments:
        if A.exchange_argument(name) is None:
            _typo(state, "exchange", ex.name, name, doc, path)
    _check_int_range(state, f"exchange '{ex.name}'", ex.arguments, doc, path + ("arguments",))


def _big_ints(value, where: tuple = ()):
    """(path, value) of each integer in ``value`` (nested tables and arrays too) outside :data:`INT64`."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            yield where, value
    elif isinstance(value, dict) or hasattr(value, "items"):
        for k, v in value.items():
            yield from _big_ints(v, where + (k,))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _big_ints(v, where + (i,))


def _digits(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text.lstrip('-'))} digits)"


def _check_int_range(state, owner: str, table, doc, path: tuple, http: bool = False) -> None:
    """An integer beyond 64 bits: AMQP cannot carry it (apply could not send it); over HTTP (policy
    definitions) the broker stores it and a message-ttl that large expires every message at once
    (measured on 3.10, 4.0 and 4.3: tests/integration/test_int_range_broker.py)."""
    for where, value in _big_ints(table):
        name = ".".join(str(p) for p in where)
        if http:
            why = "the broker stores it without a word (measured on 3.10, 4.0 and 4.3)"
            if where[:1] == ("message-ttl",):
                why += " and then expires every message at once"
            what = "key"
        else:
            why = "AMQP tables carry signed 64-bit integers only, so apply cannot send it"
            what = "argument"
        state.add("out-of-range", f"{owner} {what} '{name}' is {_digits(value)}, outside -2^63..2^63-1: {why}",
                  doc.locate(path + where))


def _check_pattern(state, owner: str, pattern, doc, path: tuple) -> None:
    """A regular expression the broker compiles (Erlang re, PCRE): an error where Python's re and PCRE
    agree it is invalid (the broker answers 400), a warning where only Python's re refuses it."""
    if not isinstance(pattern, str):
        return
    reason = pcre_invalid(pattern)
    if reason:
        state.add("invalid-pattern", f"{owner} pattern '{_clip(pattern)}' is not a valid regular expression ({reason}); "
                                     "the broker refuses it (400)", doc.locate(path))
        return
    doubt = python_error(pattern)
    if doubt:
        state.add("invalid-pattern", f"{owner} pattern '{_clip(pattern)}' is not a valid Python regular expression "
                                     f"({doubt}); the broker's PCRE may accept it, but topoform cannot tell which "
                                     "names it matches", doc.locate(path), severity="warning")


def _typo(state, kind: str, owner: str, name: str, doc, path: tuple) -> None:
    """A warning for an argument that is probably a misspelling of a known one."""
    if not isinstance(name, str):
        return
    guess = A.suggest(name, kind)
    if guess is None:
        return
    where = doc.locate(path + ("arguments", name), True)
    is_other = (A.exchange_argument(guess) if kind == "queue" else A.queue_argument(guess)) is not None
    if is_other:
        other = "exchange" if kind == "queue" else "queue"
        note = f"'{guess}' is {'an' if other == 'exchange' else 'a'} {other} argument: set it on the {other}"
    else:
        note = f"did you mean '{guess}'?"
    state.add("unknown-argument", f"{kind} '{owner}' has argument '{name}', which RabbitMQ does not know and "
                                  f"ignores ({note})", where, severity="warning")


def _check_policy(state, policy: Policy, doc, path: tuple, version) -> None:
    _name_problems(state, "policy", policy.name, doc, path, reserved=False)
    owner = f"policy '{policy.name}'"
    _check_pattern(state, owner, policy.pattern, doc, path + ("pattern",))
    _check_int_range(state, owner, policy.definition, doc, path + ("definition",), http=True)
    _check_apply_to(state, owner, policy.apply_to, doc, path, version)
    for key in policy.definition:
        entry = A.policy_key(key)
        if entry is not None and (entry.refused_by or entry.deprecated_by):
            _check_key_rows(state, owner, key, entry, doc.locate(path + ("definition", key), True), version)
    if policy.definition.get("dead-letter-strategy") == "at-least-once" and \
            policy.definition.get("overflow") != "reject-publish" and \
            policy.apply_to not in ("exchanges", "classic_queues", "streams"):
        state.add("dead-letter-strategy-ineffective",
                  f"policy '{policy.name}' sets dead-letter-strategy: at-least-once without overflow: reject-publish: "
                  "the quorum queues it applies to dead-letter at most once, without an error, unless their own "
                  "x-overflow is reject-publish (measured on 3.10, 4.0 and 4.3)",
                  doc.locate(path + ("definition", "dead-letter-strategy"), True), severity="warning",
                  hint="add overflow: reject-publish to the definition")
    for key in policy.definition:  # policy keys a plugin provides (topoform/plugins.py)
        if policy_key_plugin(key):
            state.add("plugin-policy-key", f"policy '{policy.name}' key '{key}' needs the {policy_key_plugin(key)} "
                      "plugin: apply checks that the broker has it enabled", doc.locate(path + ("definition", key), True),
                      severity="warning")


def _check_apply_to(state, owner: str, apply_to, doc, path: tuple, version) -> None:
    if apply_to in A.APPLY_TO_QUEUE_TYPES and not has(version, "policy_apply_to_queue_types"):
        since = _since("policy_apply_to_queue_types")
        state.add("apply-to-unsupported",
                  f"{owner} has apply_to {apply_to}, which RabbitMQ {_v(version)} refuses "
                  f"(400; accepted from {since}): use apply_to queues with a pattern that matches only those "
                  f"queues", doc.locate(path + ("apply_to",)))


def _check_key_rows(state, owner: str, key, entry, where, version) -> None:
    """A policy or operator policy key the target refuses (error) or deprecates (warning), by its rows."""
    if A.refused(entry, version):
        state.add("policy-key-refused",
                  f"{owner} key '{key}' is refused by RabbitMQ {_since(entry.refused_by)} and "
                  f"later (target {_v(version)}): {entry.remedy}", where)
    elif A.deprecated(entry, version):
        state.add("policy-key-deprecated",
                  f"{owner} key '{key}' is deprecated from RabbitMQ {_since(entry.deprecated_by)} "
                  f"and refused from {_since(entry.refused_by)} (target {_v(version)}): {entry.remedy}", where,
                  severity="warning")


def _check_operator_policy(state, item: tuple, doc, path: tuple, version) -> None:
    """An operator policy: its pattern, apply_to and definition keys, with the rows policies use; operator
    policies accept only the keys of :data:`topoform.arguments.OPERATOR_POLICY_KEYS` (the broker answers
    400 "not recognised policy settings" for any other: measured on 3.10, 4.0 and 4.3)."""
    name, spec = item
    owner = f"operator policy '{name}'"
    _check_pattern(state, owner, spec.get("pattern", ""), doc, path + ("pattern",))
    _check_apply_to(state, owner, spec.get("apply_to", "all"), doc, path, version)
    definition = spec.get("definition")
    if not isinstance(definition, dict):
        return
    _check_int_range(state, owner, definition, doc, path + ("definition",), http=True)
    for key in definition:
        entry = A.operator_policy_key(key)
        where = doc.locate(path + ("definition", key), True)
        if entry is None:
            guess = A.suggest_operator_policy_key(str(key))
            note = f"did you mean '{guess}'?" if guess else "set it in a policy instead"
            state.add("policy-key-refused",
                      f"{owner} key '{key}' is not one operator policies accept; the broker refuses it (400 not "
                      f"recognised policy settings)", where, hint=note)
        elif not entry.accepted(version):
            until = f" to {[v for v in SUPPORTED if not at_least(v, entry.until)][-1]}" if entry.until else "+"
            state.add("policy-key-refused",
                      f"{owner} key '{key}' is accepted by RabbitMQ {entry.since}{until} only (target "
                      f"{_v(version)}): the broker refuses it (400 not recognised policy settings)", where,
                      hint=entry.remedy or "")
        else:
            _check_key_rows(state, owner, key, entry, where, version)


def _exchange_known(state, vhost: str, name: str) -> bool:
    return name == "" or name.startswith("amq.") or (vhost, name) in state.known_exchanges


def _queue_type(q: Queue, default_type: str | None) -> tuple[str, bool]:
    declared_type = q.arguments.get("x-queue-type")
    qtype = declared_type if isinstance(declared_type, str) else None
    if qtype is None and default_type in ("quorum", "stream") and \
            takes_default_queue_type(q.durable, q.exclusive, q.auto_delete, default_type):
        return default_type, True
    return qtype or "classic", False


def _check_queue(state, q: Queue, default_type: str | None, doc, path: tuple, version) -> None:
    _name_problems(state, "queue", q.name, doc, path)
    qtype, via_default = _queue_type(q, default_type)
    keys = _keys_at(doc, path)
    if qtype in ("quorum", "stream"):  # never via the vhost default: it applies only to declares these flags allow
        for flag, bad, code, words in (("durable", not q.durable, "not-durable", "must be durable"),
                                       ("exclusive", q.exclusive, "exclusive", "cannot be exclusive"),
                                       ("auto_delete", q.auto_delete, "auto-delete", "cannot be auto-delete")):
            if bad:
                state.add(f"{qtype}-{code}", f"{qtype} queue '{q.name}' {words}; the broker refuses it "
                                             f"(406 invalid property)", doc.locate(path + (flag,)) if flag in
                          keys else doc.locate(path, True))
    elif not q.durable and not q.exclusive and has(version, "transient_nonexcl_deprecated"):
        since = _since("transient_nonexcl_deprecated")
        state.add("transient-queue-deprecated",
                  f"queue '{q.name}' is transient but not exclusive, deprecated from RabbitMQ {since} (target "
                  f"{_v(version)}; feature transient_nonexcl_queues): set durable: true, or exclusive: true for a "
                  f"per-connection queue",
                  doc.locate(path + ("durable",)) if "durable" in keys else doc.locate(path, True),
                  severity="warning")
    how = f" (the default queue type of vhost '{q.vhost}')" if via_default else ""
    for arg in A.not_allowed(qtype, version):
        if arg in q.arguments:
            since = A.queue_argument(arg).types.get(qtype)
            later = f" before RabbitMQ {since} (target {_v(version)})" if since else ""
            state.add("argument-not-for-queue-type",
                      f"{qtype} queue '{q.name}'{how} cannot have argument '{arg}'{later}; the broker refuses it at "
                      f"creation (406 invalid arg)", doc.locate(path + ("arguments", arg), True))
    for name in q.arguments:
        entry = A.queue_argument(name)
        if entry is None:
            _typo(state, "queue", q.name, name, doc, path)
            continue
        if entry.types.get(qtype) is None or not (entry.refused_by or entry.deprecated_by):
            continue  # reported above, or nothing to say
        where = doc.locate(path + ("arguments", name), True)
        if A.refused(entry, version):
            state.add("argument-refused",
                      f"queue '{q.name}' argument '{name}' is refused by RabbitMQ {_since(entry.refused_by)} and "
                      f"later (target {_v(version)}; the declare closes the connection): {entry.remedy}", where)
        elif A.deprecated(entry, version):
            state.add("argument-deprecated",
                      f"queue '{q.name}' argument '{name}' is deprecated from RabbitMQ "
                      f"{_since(entry.deprecated_by)} and refused from {_since(entry.refused_by)} (target "
                      f"{_v(version)}): {entry.remedy}", where, severity="warning")
    if q.arguments.get("x-queue-version") == 1 and qtype == "classic" and has(version, "queue_version_1_refused"):
        state.add("argument-refused",
                  f"queue '{q.name}' has x-queue-version: 1, which RabbitMQ {_since('queue_version_1_refused')} "
                  f"and later refuse (406 unsupported queue version; CQv1 was removed; target {_v(version)}): "
                  f"remove it or use 2", doc.locate(path + ("arguments", "x-queue-version")))
    if qtype == "quorum" and q.arguments.get("x-dead-letter-strategy") == "at-least-once":
        _check_at_least_once(state, q, doc, path)
    if qtype == "quorum" and q.arguments.get("x-overflow") == "reject-publish-dlx":
        # accepted, and handled as drop-head (measured on 3.10, 4.0, 4.3: tests/integration/test_validate_broker.py)
        state.add("overflow-not-for-queue-type",
                  f"quorum queue '{q.name}' has x-overflow: reject-publish-dlx, which only classic queues implement: "
                  "the broker accepts it and drops (dead-letters) the oldest message when the queue is full, as "
                  "drop-head does, and never refuses a publish", doc.locate(path + ("arguments", "x-overflow")),
                  severity="warning", hint="use reject-publish to refuse publishes, or drop-head")
    _check_int_range(state, f"queue '{q.name}'", q.arguments, doc, path + ("arguments",))
    dlx = q.arguments.get("x-dead-letter-exchange")
    if isinstance(dlx, str) and not _exchange_known(state, q.vhost, dlx):
        state.add("dangling-dead-letter-exchange",
                  f"x-dead-letter-exchange '{dlx}' of queue '{q.name}' is not declared in the files "
                  f"(dead letters are dropped unless it exists on the broker)",
                  doc.locate(path + ("arguments", "x-dead-letter-exchange")), severity="warning")


_AT_LEAST_ONCE_KEYS = ("overflow", "dead-letter-exchange", "dead-letter-strategy")


def _policy_may_set(state, q: Queue, keys: tuple) -> bool:
    """Whether a policy or operator policy of the files whose pattern matches ``q`` sets one of ``keys``."""
    policies = [(p.pattern, p.apply_to, p.definition) for p in state.policies.values() if p.vhost == q.vhost]
    policies += [(o.fields.get("pattern", ""), o.fields.get("apply_to", "all"), o.fields.get("definition") or {})
                 for o in getattr(state.config, "objects", {}).values()
                 if o.kind == "operator_policy" and o.vhost == q.vhost]
    for pattern, apply_to, definition in policies:
        if apply_to in ("exchanges", "classic_queues", "streams") or not any(k in definition for k in keys):
            continue
        try:
            if re.search(str(pattern), q.name):
                return True
        except re.error:
            return True  # cannot tell: say nothing
    return False


def _check_at_least_once(state, q: Queue, doc, path: tuple) -> None:
    """At-least-once dead-lettering of a quorum queue needs ``x-overflow: reject-publish`` and a
    dead-letter exchange; without them the broker quietly dead-letters at most once (measured on
    4.0.5 and 4.3.6: tests/integration/test_validate_broker.py)."""
    if _policy_may_set(state, q, _AT_LEAST_ONCE_KEYS):
        return
    where = doc.locate(path + ("arguments", "x-dead-letter-strategy"), True)
    overflow = q.arguments.get("x-overflow", "drop-head")
    if overflow != "reject-publish":
        state.add("dead-letter-strategy-ineffective",
                  f"quorum queue '{q.name}' asks for at-least-once dead-lettering, which works only with x-overflow: "
                  f"reject-publish; with {overflow} the broker falls back to at-most-once without an error, and a "
                  "message it cannot dead-letter is dropped", where, severity="warning",
                  hint="add x-overflow: reject-publish")
    elif "x-dead-letter-exchange" not in q.arguments:
        state.add("dead-letter-strategy-ineffective",
                  f"quorum queue '{q.name}' asks for at-least-once dead-lettering but has no x-dead-letter-exchange: "
                  "nothing is dead-lettered", where, severity="warning", hint="add x-dead-letter-exchange")


def _keys_at(doc, path: tuple) -> tuple:
    node = doc.data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return tuple(node) if isinstance(node, dict) else ()


def _super_stream_names(state, vhost: str) -> tuple[set, set]:
    """(exchanges, partition streams) the files' super streams of ``vhost`` stand for."""
    from .routing.super_streams import partitions

    exchanges, streams = set(), set()
    for obj in getattr(state.config, "objects", {}).values():
        if obj.kind == "super_stream" and obj.vhost == vhost:
            exchanges.add(obj.name)
            streams.update(stream for _, stream in partitions(obj.name, obj.fields))
    return exchanges, streams


def _check_test(state, t: RouteTest, doc, path: tuple) -> None:
    if t.vhost not in state.known_vhosts:
        state.add("dangling-reference", f"test #{path[1] + 1} uses vhost '{t.vhost}', which is not declared in the "
                                        f"files", doc.locate(path + ("vhost",)))
        return
    super_exchanges, super_streams = _super_stream_names(state, t.vhost)
    if t.exchange not in super_exchanges and not _exchange_known(state, t.vhost, t.exchange):
        state.add("dangling-reference", f"test #{path[1] + 1} publishes to exchange '{t.exchange}', which is not "
                                        f"declared in vhost '{t.vhost}'", doc.locate(path + ("exchange",)))
    for i, qname in enumerate(t.expect):
        if (t.vhost, qname) not in state.known_queues and qname not in super_streams:
            state.add("dangling-reference", f"test #{path[1] + 1} expects queue '{qname}', which is not declared in "
                                            f"vhost '{t.vhost}'", doc.locate(path + ("expect", i)))
    size = len(t.routing_key.encode("utf-8"))
    if size > MAX_SHORTSTR:
        state.add("routing-key-too-long", f"routing key of test #{path[1] + 1} is {size} bytes; at most "
                                          f"{MAX_SHORTSTR} can be sent", doc.locate(path + ("routing_key",)))


_BUILTIN_TYPES = {"amq.topic": "topic", "amq.direct": "direct", "amq.fanout": "fanout", "amq.headers": "headers",
                  "amq.match": "headers"}
_WILDCARD_INSIDE = re.compile(r"[^.*#][*#]|[*#][^.*#]")


def _check_binding_key(state, key: str, exchange_type: str | None, exchange: str, position) -> None:
    """Binding keys that route other than they read: the typos that lose messages without a word.

    * topic: ``*`` and ``#`` are wildcards only as a whole word (``order#``, ``order.*created`` are
      literal words), and an empty word (``a..b``, a leading or trailing dot) matches only an empty
      word of the routing key;
    * direct: ``*`` and ``#`` are no wildcards at all;
    * any exchange that reads the key: spaces around it are part of it.
    (Routing as measured: RABBITMQ-SEMANTICS 3 and tests/integration/test_routing_broker.py.)
    """
    if exchange_type in ("fanout", "headers") or not key:
        return
    quoted = _clip(key)
    if key != key.strip():
        state.add("suspicious-binding-key", f"binding key '{quoted}' of exchange '{exchange}' has spaces around it, "
                  f"which the broker matches as part of the key", position, severity="warning",
                  hint=f"write '{_clip(key.strip())}'")
    words = key.split(".")
    if exchange_type == "topic":
        mixed = [w for w in words if _WILDCARD_INSIDE.search(w)]
        if mixed:
            fixed = ".".join(p for w in words for p in re.split(r"([*#])", w) if p)
            state.add("suspicious-binding-key", f"topic binding key '{quoted}' of exchange '{exchange}' has "
                      f"'{mixed[0]}', a literal word: '*' and '#' are wildcards only as a whole word between dots",
                      position, severity="warning", hint=f"did you mean '{_clip(fixed)}'?")
        elif "" in words:
            state.add("suspicious-binding-key", f"topic binding key '{quoted}' of exchange '{exchange}' has an empty "
                      "word (two dots in a row, or a dot at an end): it matches only routing keys with an empty word "
                      "there", position, severity="warning",
                      hint=f"did you mean '{_clip('.'.join(w for w in words if w))}'?")
    elif exchange_type == "direct" and ("*" in words or "#" in words):
        state.add("suspicious-binding-key", f"binding key '{quoted}' of direct exchange '{exchange}' uses '*' or '#', "
                  "which a direct exchange matches literally (only a topic exchange treats them as wildcards)",
                  position, severity="warning", hint="make the exchange type topic, or bind the exact keys")


def _check_bindings(state, version) -> None:
    exchanges = state.exchanges
    strict_hashes = has(version, "topic_max_two_hash")
    for b, (doc, path, source_field) in state.bindings.items():
        vhost = b.vhost
        if b.source == "":
            state.add("default-exchange-binding", "the default exchange (\"\") cannot be bound to or from; "
                                                  "every queue is already reachable through it by its name",
                      doc.locate(path + (source_field,)))
        elif not _exchange_known(state, vhost, b.source):
            state.add("dangling-reference", f"binding source exchange '{b.source}' is not declared in vhost "
                                            f"'{vhost}'", doc.locate(path + (source_field,)))
        if source_field == "source":
            if b.destination_type == "exchange":
                if b.destination == "":
                    state.add("default-exchange-binding", "the default exchange (\"\") cannot be bound to or from",
                              doc.locate(path + ("destination",)))
                elif not _exchange_known(state, vhost, b.destination):
                    state.add("dangling-reference", f"binding destination exchange '{b.destination}' is not "
                                                    f"declared in vhost '{vhost}'", doc.locate(path + ("destination",)))
            elif (vhost, b.destination) not in state.known_queues:
                hint = " (set destination_type: exchange for an exchange-to-exchange binding)" \
                    if (vhost, b.destination) in state.known_exchanges else ""
                state.add("dangling-reference", f"binding destination queue '{b.destination}' is not declared in "
                                                f"vhost '{vhost}'{hint}", doc.locate(path + ("destination",)))
        key = b.routing_key
        if len(key) > MAX_SHORTSTR // 4 and len(key.encode("utf-8")) > MAX_SHORTSTR:
            state.add("routing-key-too-long", f"routing_key of {_schema.describe_path(path)} is "
                                              f"{len(key.encode('utf-8'))} bytes; the broker allows at most "
                                              f"{MAX_SHORTSTR} (AMQP short string)", doc.locate(path + ("routing_key",)))
        if "#" in key:
            ex = exchanges.get(("exchange", vhost, b.source))
            if (ex is not None and ex.type == "topic" or b.source == "amq.topic") and \
                    key.split(".").count("#") > 2:
                since = _since("topic_max_two_hash")
                if strict_hashes:
                    state.add("topic-key-too-many-hashes",
                              f"topic binding key '{_clip(key)}' has more than two '#' words, which RabbitMQ {since} "
                              f"and later refuse (406 at most 2 are allowed; target {_v(version)}): rewrite it "
                              f"with at most two '#'",
                              doc.locate(path + ("routing_key",)))
                else:
                    state.add("topic-key-too-many-hashes",
                              f"topic binding key '{_clip(key)}' has more than two '#' words; RabbitMQ {since} and "
                              f"later refuse it (target {_v(version)})", doc.locate(path + ("routing_key",)),
                              severity="warning")
        ex = exchanges.get(("exchange", vhost, b.source))
        _check_binding_key(state, key, _BUILTIN_TYPES.get(b.source) or (ex.type if ex is not None else None),
                           b.source, doc.locate(path + ("routing_key",)))
        if b.arguments:
            _check_int_range(state, f"binding of exchange '{b.source}' to '{b.destination}'", b.arguments, doc,
                             path + ("arguments",))
        for name, value in b.arguments.items():
            if value == "undefined":
                # the management API renders this string exactly as it renders null (void)
                state.add("ambiguous-undefined", f"binding argument '{name}' is the string \"undefined\", which the "
                          "management API shows exactly like null; topoform reads it back as null, so plans for "
                          "this binding are unreliable (use null for a presence check, or another value)",
                          doc.locate(path + ("arguments", name)), severity="warning")
