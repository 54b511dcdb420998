"""RabbitMQ versions: which are supported, and the behaviours that differ between them.

A pure module: it imports only :mod:`topoform.errors`. Versions are ``(major, minor)``
tuples; every function also accepts the ``"X.Y"`` / ``"X.Y.Z"`` text a user or the
broker gives. The rules table :data:`BEHAVIOURS` has one row per behaviour, each with
the versions it holds for and the evidence behind it, so that docs/versions.md, the
validator, the planner and the rules-replay tests all read the same rows.

>>> has("4.3", "topic_max_two_hash"), has((4, 0), "topic_max_two_hash")
(True, False)
>>> at_least("3.13.7", "3.13")
True
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Union

from .errors import InputError

VersionLike = Union[str, tuple]

SUPPORTED: tuple[str, ...] = ("3.10", "3.11", "3.12", "3.13", "4.0", "4.1", "4.2", "4.3")
DEFAULT = SUPPORTED[-1]  # the newest supported version
TESTED: tuple[str, ...] = ("3.10", "4.0", "4.3")  # run live by the test suite (3.10.8, 4.0.5, 4.3.6)
ENV_VAR = "TOPOFORM_RABBITMQ_VERSION"

_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~.][0-9A-Za-z.+~-]*)?\s*$")


def _supported_range() -> str:
    return f"{SUPPORTED[0]} to {SUPPORTED[-1]}"


def parse_version(text: VersionLike, *, supported_only: bool = True) -> tuple[int, int]:
    """``"4.3"``, ``"4.3.6"``, ``"3.10.8"`` (or a tuple) -> ``(major, minor)``.

    Raises :class:`InputError` with a one-line message for text that is not a version
    and, unless ``supported_only`` is false, for a version outside :data:`SUPPORTED`.
    """
    if isinstance(text, tuple):
        if len(text) < 2 or not all(isinstance(p, int) and not isinstance(p, bool) for p in text[:2]):
            raise InputError(f"invalid RabbitMQ version {text!r}; expected MAJOR.MINOR such as {DEFAULT}")
        version = (text[0], text[1])
    else:
        if not isinstance(text, str):
            hint = ""
            if isinstance(text, float):
                hint = f' (quote it: "{text}" is read by YAML as a number, so 3.10 becomes 3.1)'
            raise InputError(f"invalid RabbitMQ version {text!r}: expected a string such as "
                             f'"{DEFAULT}"{hint}')
        m = _VERSION_RE.match(text)
        if not m:
            raise InputError(f"invalid RabbitMQ version {text!r}; expected MAJOR.MINOR such as {DEFAULT} "
                             f"(supported: {_supported_range()})")
        version = (int(m.group(1)), int(m.group(2)))
    if supported_only and format_version(version) not in SUPPORTED:
        raise InputError(f"unsupported RabbitMQ version {format_version(version)}; "
                         f"supported: {_supported_range()} ({', '.join(SUPPORTED)})")
    return version


def format_version(version: VersionLike) -> str:
    """``(4, 3)`` -> ``"4.3"``; text is normalized to MAJOR.MINOR."""
    if isinstance(version, tuple):
        return f"{version[0]}.{version[1]}"
    return format_version(parse_version(version, supported_only=False))


def _v(version: VersionLike) -> tuple[int, int]:
    return parse_version(version, supported_only=False)


def at_least(version: VersionLike, minimum: VersionLike) -> bool:
    """True when ``version`` is ``minimum`` or newer (patch levels are ignored)."""
    return _v(version) >= _v(minimum)


@dataclass(frozen=True)
class Behaviour:
    """One version-dependent broker behaviour.

    It holds for versions ``since <= v < until``; ``None`` leaves that end open.
    ``evidence`` says how it is known: measured on the tested brokers or
    RabbitMQ's release notes / source for versions between the tested ones.
    """

    key: str
    since: str | None
    until: str | None
    description: str
    evidence: str

    def holds(self, version: VersionLike) -> bool:
        v = _v(version)
        if self.since is not None and v < _v(self.since):
            return False
        if self.until is not None and v >= _v(self.until):
            return False
        return True

    @property
    def versions(self) -> str:
        """The range as text: ``4.0+``, ``4.0 to 4.2``, ``all``."""
        if self.until is None:
            return f"{self.since}+" if self.since else "all"
        last = [s for s in SUPPORTED if _v(s) < _v(self.until)]
        last_text = last[-1] if last else self.until
        return f"{self.since or SUPPORTED[0]} to {last_text}"


_MEASURED = "measured on the test brokers 3.10.8, 4.0.5 and 4.3.6"

BEHAVIOURS: list[Behaviour] = [
    Behaviour("classic_queue_type_stored", "4.0", None,
              "a classic queue declared without x-queue-type is stored (and exported) with "
              "x-queue-type: classic",
              f"{_MEASURED}; RabbitMQ source v4.1.0 update_args_table_with_queue_type/5"),
    Behaviour("ha_policies_refused", "4.0", None,
              "ha-* policy keys (classic mirrored queues) are refused: 400 not recognised policy settings",
              f"{_MEASURED}; RabbitMQ 4.0.0 release notes: classic queue mirroring removed"),
    Behaviour("queue_master_locator_deprecated", "4.0", "4.3",
              "queue-master-locator (policy) / x-queue-master-locator (argument) accepted but deprecated",
              f"{_MEASURED}; RabbitMQ 4.0.0 release notes: deprecated in favour of queue-leader-locator"),
    Behaviour("queue_master_locator_refused", "4.3", None,
              "queue-master-locator policy key refused (400); x-queue-master-locator closes the "
              "connection (541 deprecated feature not permitted)",
              f"{_MEASURED}; RabbitMQ 4.3.0 release notes: deprecated features disabled by default"),
    Behaviour("queue_version_1_refused", "4.3", None,
              "declaring a classic queue with x-queue-version: 1 fails (406 unsupported queue version)",
              f"{_MEASURED}; RabbitMQ 4.3.0 release notes: CQv1 storage removed (they also name x-queue-mode, "
              "which 4.3.6 still accepted when tried)"),
    Behaviour("topic_max_two_hash", "4.3", None,
              "a topic binding key may hold at most two '#' words (406 at most 2 are allowed)",
              _MEASURED),
    Behaviour("policy_apply_to_queue_types", "3.12", None,
              "a policy's apply-to accepts classic_queues, quorum_queues and streams",
              f"{_MEASURED} (3.10.8: 400, 4.0.5: accepted); rabbitmq-server PR #7601, "
              "released in RabbitMQ 3.12.0"),
    Behaviour("transient_nonexcl_deprecated", "4.0", None,
              "transient non-exclusive queues (durable false, exclusive false) are the deprecated "
              "feature transient_nonexcl_queues",
              f"{_MEASURED} (permitted, listed in /api/deprecated-features/used); RabbitMQ 4.3.0 "
              "release notes say it is denied by default there, measured 4.3.6 permitted it"),
    Behaviour("headers_numeric_strict", "3.13", None,
              "headers exchange: an integer binding value does not match a float message value "
              "(1 != 1.0); integers match integers, floats match floats",
              f"{_MEASURED} (3.10.8 matches, 4.0.5 and 4.3.6 do not); RabbitMQ source v3.13.0 "
              "mc_amqpl.erl routing_headers/2 compares with =:="),
    Behaviour("exports_omit_internal_exchanges", "4.3", None,
              "GET /api/definitions/VHOST leaves internal exchanges out (their bindings stay); "
              "read them from /api/exchanges",
              _MEASURED),
    Behaviour("policies_without_vhost_in_export", "4.0", None,
              "policies[] in a vhost's definitions export carry no vhost field",
              _MEASURED),
    Behaviour("quorum_default_delivery_limit", "4.0", None,
              "a quorum queue without a delivery limit gets delivery-limit 20",
              "RabbitMQ 4.0.0 release notes; source v4.0.1 rabbit_quorum_queue.erl "
              "DEFAULT_DELIVERY_LIMIT"),
    Behaviour("local_random_exchange", "4.0", None,
              "x-local-random is a built-in exchange type",
              f"{_MEASURED}; RabbitMQ 4.0.0 release notes: new local random exchange type"),
    Behaviour("modulus_hash_exchange", "4.3", None,
              "x-modulus-hash is a built-in exchange type (before, only with the rabbitmq_sharding plugin)",
              f"{_MEASURED}; RabbitMQ 4.3.0: x-modulus-hash built in (rabbitmq-dotnet-client PR #1922)"),
    Behaviour("unknown_exchange_type_is_channel_error", "4.0", None,
              "exchange.declare of an unknown type is a channel error 406 (before: connection error 503)",
              f"{_MEASURED}; not seen in release notes, so 4.0 is the first tested version with it"),
    Behaviour("classic_queue_leader_locator", "4.0", None,
              "classic queues accept x-queue-leader-locator (before: 406 invalid arg)",
              "tried on the test brokers: 3.10.8 refuses it, 4.0.5 and 4.3.6 accept it; RabbitMQ source "
              "v4.0.1"),
    Behaviour("definitions_export_cheaper", "4.0", None,
              "a vhost's GET /api/definitions/VHOST costs the broker less than its per-kind listings "
              "(exchanges, queues, bindings, policies with columns); before, the listings cost less",
              "measured here at 10,000 queues, 1,000 exchanges, 20,000 bindings, best of 3: 3.10.8 export "
              "9.66 s vs listings 4.12 s together; 4.0.5 export 2.37 s vs listings 2.41 s (even); 4.3.6 "
              "export 0.98 s vs listings 4.23 s (the bindings listing alone 2.83 s)"),
    Behaviour("passive_declare_needs_configure", "4.3", None,
              "a passive queue/exchange declare needs configure permission on the object",
              "RabbitMQ 4.3.0 release notes; not re-verified"),
    Behaviour("max_age_compared_as_duration", "4.3", None,
              "a stream redeclare compares x-max-age as a duration: 7D equals 168h (Y = 365D, M = 30D); "
              "before, as text (406 for 7D over 168h)",
              "measured by AMQP redeclares: 3.10.8 and 4.0.5 refuse 7D/168h, 1h/60m, 60s/1m with 406; 4.3.6 "
              "accepts them, 1Y/365D, 1M/30D and 12M/360D too, and refuses 1M/31D, 1Y/12M (keeping the "
              "stored text); 4.1 and 4.2 not tested"),
    Behaviour("vhost_default_queue_type_updatable", "4.0", None,
              "an existing vhost's default_queue_type can be changed (PUT /api/vhosts/V); before, the broker "
              "sets it only when it creates the vhost",
              "measured: 3.10.8 answers 204 and keeps the old value (also 'undefined'), 4.0.5 and 4.3.6 change "
              "it; 3.11-3.13 not tested"),
]

_BY_KEY: dict[str, Behaviour] = {b.key: b for b in BEHAVIOURS}


def behaviour(key: str) -> Behaviour:
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown version behaviour {key!r}") from None


@lru_cache(maxsize=1024)
def has(version: VersionLike, key: str) -> bool:
    """Whether the behaviour ``key`` holds on ``version`` (cached: the checks ask per object)."""
    return behaviour(key).holds(version)


def rows_markdown() -> str:
    """The rules table as Markdown, one row per behaviour (docs/versions.md holds this text)."""
    head = "| behaviour | versions | " + " | ".join(SUPPORTED) + " | what | evidence |"
    rule = "|---|---|" + "---|" * len(SUPPORTED) + "---|---|"
    lines = [head, rule]
    for b in BEHAVIOURS:
        marks = " | ".join("yes" if b.holds(v) else "-" for v in SUPPORTED)
        lines.append(f"| `{b.key}` | {b.versions} | {marks} | {b.description} | {b.evidence} |")
    return "\n".join(lines) + "\n"


def resolve_target(flag: str | None, environ: Mapping[str, str] | None,
                   files_version: str | None = None, state_version: str | None = None) -> tuple[str, str]:
    """The offline target version and where it came from (SPEC section 6).

    Order: ``--rabbitmq-version`` flag, env ``TOPOFORM_RABBITMQ_VERSION``, the files'
    ``rabbitmq_version``, an export's own version field (``plan --state``), else
    :data:`DEFAULT`. Returns ``("X.Y", source)`` where source is one of ``flag``,
    ``env``, ``files``, ``state``, ``default``. An unsupported version raises InputError.
    A state version is the broker's full version (e.g. 4.3.6); one outside the
    supported range is an error too.
    """
    env_value = (environ or {}).get(ENV_VAR) or None
    for value, source, label in ((flag, "flag", "--rabbitmq-version"), (env_value, "env", ENV_VAR),
                                 (files_version, "files", "rabbitmq_version in the files"),
                                 (state_version, "state", "the export's version field")):
        if value is None or value == "":
            continue
        try:
            return format_version(parse_version(value)), source
        except InputError as exc:
            raise InputError(f"{label}: {exc.message}") from None
    return DEFAULT, "default"


__all__ = ["SUPPORTED", "DEFAULT", "TESTED", "ENV_VAR", "Behaviour", "BEHAVIOURS", "parse_version",
           "format_version", "at_least", "behaviour", "has", "resolve_target", "rows_markdown"]
