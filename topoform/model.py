"""The topology model: frozen resources, identity keys, canonical argument values.

Desired state (files) and live state (broker) are both a :class:`Topology`; "no
changes" is equality after normalization. This module knows no YAML, HTTP or AMQP.

Argument values keep their types, because the broker compares types
(RABBITMQ-SEMANTICS.md section 1.3): ``60000`` and ``"60000"`` differ, and so do
``1`` and ``True`` even though Python says ``True == 1``. :class:`Args` compares by a
canonical form that carries a type tag for every value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, Iterable, Iterator, Mapping

KINDS = ("vhost", "exchange", "queue", "binding", "policy")
EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
DEFAULT_EXCHANGE = ""


class cached_property:  # noqa: N801 - used as functools.cached_property is
    """functools.cached_property without its lock: Python 3.11's takes one lock, shared by every
    instance, around each first computation (a 10,000-queue plan computes 40,000 binding keys
    and names: 0.14 s of its profile was the descriptor itself, the lock). The value is
    stored in the instance's ``__dict__`` (past a frozen dataclass's ``__setattr__``), so later
    reads never reach this descriptor. Two threads computing the same value at once both store
    an equal one: the values are pure functions of frozen fields."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__
        self.attrname = func.__name__

    def __set_name__(self, owner, name):
        self.attrname = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.attrname] = self.func(instance)
        return value


def type_tag(value: Any) -> str:
    """The type class a value belongs to, as the broker distinguishes them.

    ``bool`` is checked before ``int`` because ``bool`` is a subclass of ``int``.
    Integers of every width are one class (the broker's ``int`` class, section 1.3).
    """
    if value is None:
        return "void"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, (list, tuple)):
        return "array"
    raise TypeError(f"unsupported argument value type {type(value).__name__}")


def canonical(value: Any) -> Any:
    """A hashable, type-tagged form of a value: equal forms mean the broker sees equal values."""
    tag = type_tag(value)
    if tag == "table":
        return ("table", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    if tag == "array":
        return ("array", tuple(canonical(v) for v in value))
    if tag == "bytes":
        return ("bytes", bytes(value))
    return (tag, value)


_SCALARS = frozenset((str, int, bool, float, type(None), bytes))


def freeze(value: Any) -> Any:
    """Deep-freeze a plain value: dicts become :class:`Args`, lists become tuples."""
    if type(value) in _SCALARS:  # the common case, without the slow ABC checks below
        return value
    if isinstance(value, Args):
        return value
    if isinstance(value, Mapping):
        return Args(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: plain dicts and lists, ready for JSON or YAML."""
    if isinstance(value, Args):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class Args(Mapping):
    """An immutable, hashable mapping of AMQP arguments that keeps value types.

    Equality and hashing use :func:`canonical`, so ``Args({"a": 1}) != Args({"a": True})``
    and key order never matters.
    """

    __slots__ = ("_data", "_canon", "_hash")

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()):
        items = data.items() if isinstance(data, Mapping) else data
        frozen = {str(k): freeze(v) for k, v in items}
        self._data = dict(sorted(frozen.items()))
        self._canon = None
        self._hash = None

    @property
    def canon(self) -> tuple:
        if self._canon is None:
            self._canon = tuple((k, canonical(thaw(v))) for k, v in self._data.items())
        return self._canon

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    # Mapping's generic get/__contains__ go through __getitem__ and a KeyError; these
    # answer the same, only faster (the loader's checks ask every queue and exchange).
    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Args):
            if not self._data and not other._data:
                return True
            return self.canon == other.canon
        if isinstance(other, Mapping):
            return self == Args(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self.canon)
        return self._hash

    def __lt__(self, other: "Args") -> bool:  # for deterministic sorting of bindings
        return repr(self.canon) < repr(other.canon)

    def __repr__(self) -> str:
        return f"Args({thaw(self)!r})"

    def to_dict(self) -> dict:
        return thaw(self)


EMPTY_ARGS = Args()


def _args_field():
    return field(default=EMPTY_ARGS)


class Resource:
    """Mixin for the resource dataclasses: ``kind``, ``key``, ``name`` and ``to_dict``."""

    kind: ClassVar[str]
    vhost: str

    @property
    def key(self) -> tuple:
        raise NotImplementedError

    @property
    def display_name(self) -> str:
        return getattr(self, "name")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict of every field (the ``before``/``after`` of a plan)."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = thaw(value)
        return out

    def replace(self, **changes):
        from dataclasses import replace

        return replace(self, **changes)


@dataclass(frozen=True)
class Vhost(Resource):
    """A virtual host. Settings left as ``None`` are not managed by the files."""

    kind: ClassVar[str] = "vhost"
    name: str
    description: str | None = None
    tags: tuple[str, ...] | None = None
    default_queue_type: str | None = None

    @property
    def vhost(self) -> str:  # type: ignore[override]
        return self.name

    @property
    def key(self) -> tuple:
        return ("vhost", self.name)


@dataclass(frozen=True)
class Exchange(Resource):
    """An exchange; defaults are pika's ``exchange_declare`` defaults."""

    kind: ClassVar[str] = "exchange"
    vhost: str
    name: str
    type: str = "direct"
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: Args = _args_field()

    @property
    def key(self) -> tuple:
        return ("exchange", self.vhost, self.name)

    @property
    def alternate_exchange(self) -> str | None:
        ae = self.arguments.get("alternate-exchange")
        return ae if isinstance(ae, str) else None

    @property
    def is_builtin(self) -> bool:
        """The default exchange and ``amq.*`` exchanges: never created, deleted or drifted."""
        return self.name == DEFAULT_EXCHANGE or self.name.startswith("amq.")


@dataclass(frozen=True)
class Queue(Resource):
    """A queue; defaults are pika's ``queue_declare`` defaults."""

    kind: ClassVar[str] = "queue"
    vhost: str
    name: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: Args = _args_field()

    @property
    def key(self) -> tuple:
        return ("queue", self.vhost, self.name)

    @property
    def queue_type(self) -> str:
        """``x-queue-type``, with absent meaning ``classic`` (the broker's one exception)."""
        value = self.arguments.get("x-queue-type", "classic")
        return value if isinstance(value, str) else "classic"


# A default queue type the broker reports as not set (3.10 says "undefined"). Kept apart
# from None (the source does not report it: unknown) and from "classic" (set): 3.10 stores
# x-queue-type: classic on every queue declared in a vhost whose default is set to classic.
DQT_UNSET = "undefined"


def takes_default_queue_type(durable: bool, exclusive: bool, auto_delete: bool, default_queue_type: Any) -> bool:
    """Whether a declare without ``x-queue-type`` gets the vhost's default queue type.

    Only a durable, non-exclusive, non-auto-delete declare does, and only where a default
    is set (not :data:`DQT_UNSET`); every other declare is
    classic (RABBITMQ-SEMANTICS 1.6; auto-delete checked on 3.10.8, 4.0.5 and 4.3.6,
    BROKERS.md). The one rule behind the planner, the validator and the live reader.
    """
    return bool(durable and not exclusive and not auto_delete and default_queue_type
                and default_queue_type != DQT_UNSET)


@dataclass(frozen=True)
class Binding(Resource):
    """A binding. It cannot change, only be replaced, so its key is all of its fields."""

    kind: ClassVar[str] = "binding"
    vhost: str
    source: str
    destination: str
    destination_type: str = "queue"  # "queue" | "exchange"
    routing_key: str = ""
    arguments: Args = _args_field()

    @cached_property  # frozen: computed once (a plan of 20,000 bindings asks for each several times)
    def key(self) -> tuple:
        return ("binding", self.vhost, self.source, self.destination_type, self.destination,
                self.routing_key, self.arguments.canon)

    @cached_property
    def name(self) -> str:
        """Display identity, pinned by tests: ``SRC -> DST [KEY]`` (``-> exchange DST`` for e2e)."""
        dest = self.destination if self.destination_type == "queue" else f"exchange {self.destination}"
        text = f"{self.source} -> {dest} [{self.routing_key}]"
        if self.arguments:
            inner = ", ".join(f"{k}={_short(v)}" for k, v in self.arguments.items())
            text += " {" + inner + "}"
        return text


def _short(value: Any) -> str:
    import json

    if type(value) is int:  # the usual header values: what json.dumps gives, without its overhead
        return str(value)
    if type(value) is str:
        return json.encoder.encode_basestring_ascii(value)
    try:
        return json.dumps(thaw(value), sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class Policy(Resource):
    """A (user) policy."""

    kind: ClassVar[str] = "policy"
    vhost: str
    name: str
    pattern: str
    apply_to: str = "all"  # "queues" | "exchanges" | "all"
    priority: int = 0
    definition: Args = _args_field()

    @property
    def key(self) -> tuple:
        return ("policy", self.vhost, self.name)


@dataclass(frozen=True)
class RouteTest:
    """A route assertion from a file's ``tests:`` list."""

    vhost: str
    exchange: str
    routing_key: str = ""
    headers: Args | None = None
    expect: tuple[str, ...] = ()
    position: Any = None  # errors.Position when loaded from a file; not part of equality
    name: str = ""

    def __eq__(self, other):
        if not isinstance(other, RouteTest):
            return NotImplemented
        return (self.vhost, self.exchange, self.routing_key, self.headers, self.expect) == (
            other.vhost, other.exchange, other.routing_key, other.headers, other.expect)

    def __hash__(self):
        return hash((self.vhost, self.exchange, self.routing_key, self.headers, self.expect))


def _proxy(d: Mapping | None) -> Mapping:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, eq=False)
class Topology:
    """Everything in a set of files, or everything read from a broker.

    Mappings are keyed by each resource's ``key``; bindings are a frozenset.
    Equality compares content (after normalization, "no changes" means ``==``).
    """

    vhosts: Mapping[tuple, Vhost] = field(default_factory=dict)
    exchanges: Mapping[tuple, Exchange] = field(default_factory=dict)
    queues: Mapping[tuple, Queue] = field(default_factory=dict)
    bindings: frozenset = field(default_factory=frozenset)
    policies: Mapping[tuple, Policy] = field(default_factory=dict)
    tests: tuple = ()

    @classmethod
    def build(cls, resources: Iterable[Resource], tests: Iterable[RouteTest] = ()) -> "Topology":
        """Build a Topology from any mix of resources (later duplicates win)."""
        buckets: dict[str, dict] = {"vhost": {}, "exchange": {}, "queue": {}, "policy": {}}
        bindings = set()
        for r in resources:
            if r.kind == "binding":
                bindings.add(r)
            else:
                buckets[r.kind][r.key] = r
        return cls(vhosts=buckets["vhost"], exchanges=buckets["exchange"], queues=buckets["queue"],
                   bindings=frozenset(bindings), policies=buckets["policy"], tests=tuple(tests))

    def resources(self) -> Iterator[Resource]:
        yield from self.vhosts.values()
        yield from self.exchanges.values()
        yield from self.queues.values()
        yield from self.bindings
        yield from self.policies.values()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return (dict(self.vhosts) == dict(other.vhosts) and dict(self.exchanges) == dict(other.exchanges)
                and dict(self.queues) == dict(other.queues) and self.bindings == other.bindings
                and dict(self.policies) == dict(other.policies))

    __hash__ = None  # type: ignore[assignment]

    # ---- lookups shared by the planner and the router
    def vhost_names(self) -> list[str]:
        names = {v.name for v in self.vhosts.values()}
        names.update(r.vhost for r in self.resources())
        return sorted(names)

    def exchange(self, vhost: str, name: str) -> Exchange | None:
        return self.exchanges.get(("exchange", vhost, name))

    def queue(self, vhost: str, name: str) -> Queue | None:
        return self.queues.get(("queue", vhost, name))

    @cached_property
    def _by_source(self) -> dict:
        index: dict[tuple, list] = {}
        for b in self.bindings:
            index.setdefault((b.vhost, b.source), []).append(b)
        for lst in index.values():
            lst.sort(key=lambda b: b.key)
        return index

    @cached_property
    def _by_destination(self) -> dict:
        index: dict[tuple, list] = {}
        for b in self.bindings:
            index.setdefault((b.vhost, b.destination_type, b.destination), []).append(b)
        for lst in index.values():
            lst.sort(key=lambda b: b.key)
        return index

    def bindings_from(self, vhost: str, source: str) -> list[Binding]:
        """Bindings whose source is the exchange ``source``, sorted by key."""
        return list(self._by_source.get((vhost, source), ()))

    def bindings_to(self, vhost: str, destination_type: str, destination: str) -> list[Binding]:
        """Bindings whose destination is the given queue or exchange, sorted by key."""
        return list(self._by_destination.get((vhost, destination_type, destination), ()))

    def in_vhosts(self, names: Iterable[str]) -> "Topology":
        """The part of this topology inside the given vhosts."""
        keep = set(names)
        return Topology.build((r for r in self.resources() if r.vhost in keep),
                              tests=(t for t in self.tests if t.vhost in keep))

    def counts(self) -> dict[str, int]:
        return {"vhost": len(self.vhosts), "exchange": len(self.exchanges), "queue": len(self.queues),
                "binding": len(self.bindings), "policy": len(self.policies)}
