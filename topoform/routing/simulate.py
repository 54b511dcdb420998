"""Follow a message through a Topology to the queues that receive it, with paths.

The algorithm is the broker's (RABBITMQ-SEMANTICS.md section 8.2, unchanged from
3.10.8 to 4.3.5): a work list of exchanges, each visited at most once per message;
an exchange's matching bindings give queues and more exchanges; only when an
exchange's **own** bindings match nothing is its alternate exchange used (8.3).
The queues reached are a set, so a queue gets one copy however many paths lead
to it. Exchanges are visited breadth first, so the path reported for a queue is a
shortest one; ties go to exchanges in name order and, among bindings of one exchange
to one destination, to the smallest binding key, so paths never depend on the order
of the files. The visiting order cannot change *which* queues are reached: an
exchange's matches and its alternate-exchange decision depend only on the message.

Imports only ``errors``, ``model``, ``versions`` and the sibling ``match``/``index`` modules: no
YAML, no broker, no printing.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

from ..errors import TopoformError
from ..model import EMPTY_ARGS, Args, Exchange, Topology, thaw
from ..versions import has, parse_version
from .index import SIMULATED_TYPES, build_index
from .match import InvalidXMatch

__all__ = ["Router", "RouteResult", "Route", "Hop", "RoutingError", "BUILTIN_EXCHANGES", "route"]

DEFAULT_VERSION = "3.10"

# Exchanges every vhost has (section 6); a file may declare them too, and then it wins.
BUILTIN_EXCHANGES: dict[str, tuple[str, bool]] = {
    "amq.direct": ("direct", False),
    "amq.fanout": ("fanout", False),
    "amq.topic": ("topic", False),
    "amq.headers": ("headers", False),
    "amq.match": ("headers", False),
    "amq.rabbitmq.trace": ("topic", True),  # internal: publishing to it gives 403
}

# Message headers that add routing keys (section 8.2; rabbit_basic:header_routes/1).
ROUTING_HEADERS = ("CC", "BCC")


class RoutingError(TopoformError):
    """The broker would refuse this publish: unknown vhost or exchange (404), an
    internal exchange (403), or a topology the simulator cannot follow."""

    code = "routing"


class Hop(NamedTuple):
    """One step of a route: a binding followed (``via="binding"``), the alternate
    exchange taken because nothing matched (``"alternate-exchange"``), or the default
    exchange's implicit binding to the queue named by the key (``"default"``).

    ``routing_key`` is the binding key; for the other two it is the message's key.
    ``arguments`` are the binding's arguments (for display: they decide headers matches).
    A named tuple because a route builds many of them.
    """

    source: str
    destination: str
    destination_type: str  # "queue" | "exchange"
    routing_key: str
    via: str = "binding"
    arguments: Args = EMPTY_ARGS

    def to_dict(self) -> dict:
        """The contract's path item (SPEC section 3): no ``via``."""
        return {"source": self.source, "destination": self.destination,
                "destination_type": self.destination_type, "routing_key": self.routing_key}


class Route(NamedTuple):
    """A queue and the path of hops that reached it first (a shortest path)."""

    queue: str
    path: tuple[Hop, ...]

    def to_dict(self) -> dict:
        return {"queue": self.queue, "path": [h.to_dict() for h in self.path]}


class RouteResult:
    """Where one published message goes. ``queues`` is sorted, each queue once;
    ``routes`` (one :class:`Route` per queue, same order) is built on first access."""

    __slots__ = ("vhost", "exchange", "routing_key", "headers", "queues", "_routes", "_last_hops", "_via")

    def __init__(self, vhost: str, exchange: str, routing_key: str, headers: Mapping[str, Any] | None,
                 queues: tuple[str, ...], routes: tuple[Route, ...] | None = (), _last_hops: dict | None = None,
                 _via: dict | None = None):
        self.vhost = vhost
        self.exchange = exchange
        self.routing_key = routing_key
        self.headers = headers
        self.queues = queues
        self._routes = routes
        self._last_hops = _last_hops
        self._via = _via

    @property
    def routes(self) -> tuple[Route, ...]:
        if self._routes is None:
            via, routes = self._via, []
            for q in self.queues:
                src, b = self._last_hops[q]
                path = [Hop(src, q, "queue", b.routing_key, "binding", b.arguments)]
                while True:
                    step = via[src]
                    if step is None:
                        break
                    prev, b = step
                    if b is None:  # the alternate exchange, taken because nothing matched
                        path.append(Hop(prev, src, "exchange", self.routing_key, "alternate-exchange"))
                    else:
                        path.append(Hop(prev, src, "exchange", b.routing_key, "binding", b.arguments))
                    src = prev
                routes.append(Route(q, tuple(reversed(path))))
            self._routes = tuple(routes)
        return self._routes

    @property
    def unroutable(self) -> bool:
        return not self.queues

    def _cmp(self) -> tuple:
        return (self.vhost, self.exchange, self.routing_key, self.queues, self.routes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouteResult):
            return NotImplemented
        return self._cmp() == other._cmp() and _jsonable(self.headers) == _jsonable(other.headers)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"RouteResult(vhost={self.vhost!r}, exchange={self.exchange!r}, routing_key={self.routing_key!r}, "
                f"headers={self.headers!r}, queues={self.queues!r})")

    def to_dict(self) -> dict:
        """``{"vhost","exchange","routing_key","headers","queues","routes"}`` (SPEC section 3)."""
        return {"vhost": self.vhost, "exchange": self.exchange, "routing_key": self.routing_key,
                "headers": _jsonable(self.headers), "queues": list(self.queues),
                "routes": [r.to_dict() for r in self.routes]}


def _jsonable(value: Any) -> Any:
    value = thaw(value) if value is not None else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _parse_version(version: str | tuple) -> tuple[int, int]:
    try:
        return parse_version(version, supported_only=False)
    except TopoformError:
        raise RoutingError(f"invalid broker version {version!r}; expected a version such as 3.10 or 4.3") from None


class _ExchangeInfo:
    """What the router needs of one exchange: type, internal flag, AE, index (lazy)."""

    __slots__ = ("name", "type", "internal", "alternate", "bindings", "index")

    def __init__(self, name: str, type_: str, internal: bool, alternate: str | None, bindings: list):
        self.name = name
        self.type = type_
        self.internal = internal
        self.alternate = alternate
        self.bindings = bindings
        self.index = None


class Router:
    """Routing indexes for a Topology, built once, then queried with :meth:`route`.

    ``version`` selects the broker's semantics where they differ: headers numeric
    equality is Erlang ``==`` (1 matches 1.0) before 3.13 and exact from 3.13
    (section 7.3; the ``headers_numeric_strict`` row of :mod:`topoform.versions`).
    The library default is 3.10; the CLI passes the resolved target version.

    >>> router = Router(topology)                                  # doctest: +SKIP
    >>> router.route("/", "topic_logs", "lazy.pink.rabbit").queues  # doctest: +SKIP
    ('Q2',)
    """

    def __init__(self, topology: Topology, *, version: str | tuple = DEFAULT_VERSION):
        self.topology = topology
        self.version = _parse_version(version)
        self.exact_numbers = has(self.version, "headers_numeric_strict")
        by_source: dict[tuple[str, str], list] = {}
        vhosts = {v.name for v in topology.vhosts.values()}
        for b in topology.bindings:
            by_source.setdefault((b.vhost, b.source), []).append(b)
            vhosts.add(b.vhost)
        for key in topology.exchanges:
            vhosts.add(key[1])
        for key in topology.queues:
            vhosts.add(key[1])
        for p in topology.policies.values():
            vhosts.add(p.vhost)
        self._by_source = by_source
        self._vhosts = vhosts
        self._exchanges: dict[tuple[str, str], _ExchangeInfo | None] = {}
        self._policies: dict[str, list] | None = None
        self._queues_by_vhost: dict[str, frozenset] = {}

    # ---- lookups
    @property
    def vhosts(self) -> list[str]:
        return sorted(self._vhosts)

    def _policy_ae(self, vhost: str, name: str) -> str | None:
        """``alternate-exchange`` from the policy that applies to the exchange, if any.

        One user policy applies: the matching one (unanchored regex, ``apply_to``
        exchanges or all) with the highest priority; ties go to the first name in
        sorted order (the broker leaves ties unspecified, section 11.2).
        """
        if self._policies is None:
            self._policies = {}
            for p in sorted(self.topology.policies.values(), key=lambda p: (-p.priority, p.name)):
                if p.apply_to in ("exchanges", "all"):
                    try:
                        rx = re.compile(p.pattern)
                    except re.error:
                        continue
                    self._policies.setdefault(p.vhost, []).append((rx, p))
        for rx, p in self._policies.get(vhost, ()):
            if rx.search(name):
                ae = p.definition.get("alternate-exchange")
                return ae if isinstance(ae, str) else None
        return None

    def _info(self, vhost: str, name: str) -> _ExchangeInfo | None:
        key = (vhost, name)
        try:
            return self._exchanges[key]
        except KeyError:
            pass
        x: Exchange | None = self.topology.exchanges.get(("exchange", vhost, name))
        info: _ExchangeInfo | None
        if x is not None:
            alternate = x.alternate_exchange  # the argument wins over a policy (section 8.3)
            if alternate is None and self.topology.policies:
                alternate = self._policy_ae(vhost, name)
            info = _ExchangeInfo(name, x.type, x.internal, alternate, self._by_source.get(key, []))
        elif name in BUILTIN_EXCHANGES and vhost in self._vhosts:
            type_, internal = BUILTIN_EXCHANGES[name]
            alternate = self._policy_ae(vhost, name) if self.topology.policies else None
            info = _ExchangeInfo(name, type_, internal, alternate, self._by_source.get(key, []))
        else:
            info = None
        self._exchanges[key] = info
        return info

    def _index(self, vhost: str, info: _ExchangeInfo):
        if info.index is None:
            if info.type not in SIMULATED_TYPES:
                raise RoutingError(
                    f"exchange '{info.name}' in vhost '{vhost}' has type '{info.type}', which test-route "
                    f"cannot simulate (it simulates {', '.join(SIMULATED_TYPES)})")
            # Bindings to a queue or exchange that does not exist never deliver (the broker
            # drops the message on that branch), so they stay out of the index; an
            # exchange destination is resolved once, here, instead of on every route.
            queue_names = self._queue_names(vhost)
            bindings, targets = [], {}
            for b in info.bindings:
                if b.destination_type == "queue":
                    if b.destination in queue_names:
                        bindings.append(b)
                else:
                    target = self._info(vhost, b.destination)
                    if target is not None:
                        bindings.append(b)
                        targets[b.destination] = target

            src = info.name

            def entry(b) -> tuple:
                # What the index returns: (destination, target exchange or None, (source, binding));
                # the last part is stored as is in the route's hop table, so a route allocates nothing per match.
                return (b.destination, targets.get(b.destination) if b.destination_type == "exchange" else None,
                        (src, b))

            try:
                info.index = build_index(info.type, bindings, entry, exact_numbers=self.exact_numbers)
            except InvalidXMatch as exc:
                raise RoutingError(f"a binding of headers exchange '{info.name}' in vhost '{vhost}' "
                                   f"has {exc} (the broker refuses it at bind time)") from None
        return info.index

    def index_for(self, vhost: str, exchange: str):
        """The built index of one exchange (``None`` if it does not exist): for benchmarks and tests."""
        info = self._info(vhost, exchange)
        return None if info is None else self._index(vhost, info)

    # ---- routing
    def route(self, vhost: str, exchange: str, routing_key: str = "",
              headers: Mapping[str, Any] | None = None) -> RouteResult:
        """Where a message published to ``exchange`` with ``routing_key`` and ``headers`` goes.

        Returns a :class:`RouteResult`; ``unroutable`` when no queue gets it.
        Raises :class:`RoutingError` where the broker refuses the publish: unknown
        vhost, unknown exchange (404), internal exchange (403), a ``CC``/``BCC``
        header that is not an array (the broker closes the channel), or an exchange
        type the simulator does not know.
        """
        if vhost not in self._vhosts:
            known = ", ".join(repr(v) for v in self.vhosts) or "none"
            raise RoutingError(f"unknown vhost '{vhost}' (the files define: {known})")
        keys = None  # the routing keys when CC/BCC add some; None for just routing_key
        match_headers = headers
        if headers:
            keys = [routing_key]
            for name in ROUTING_HEADERS:
                if name in headers:
                    extra = headers[name]
                    if not isinstance(extra, (list, tuple)):
                        raise RoutingError(f"header {name} must be an array of strings; the broker refuses "
                                           f"a {type(extra).__name__} (unacceptable_type_in_header)")
                    keys.extend(k for k in extra if isinstance(k, str))
            if "BCC" in headers:  # stripped from the message before routing (rabbit_basic:message/3)
                match_headers = {k: v for k, v in headers.items() if k != "BCC"}
            keys = list(dict.fromkeys(keys)) if len(keys) > 1 else None
        if exchange == "":
            return self._route_default(vhost, routing_key, keys or [routing_key], headers)
        start = self._exchanges.get((vhost, exchange)) or self._info(vhost, exchange)
        if start is None:
            raise RoutingError(f"no exchange '{exchange}' in vhost '{vhost}' (the broker answers 404 NOT_FOUND)")
        if start.internal:
            raise RoutingError(f"cannot publish to internal exchange '{exchange}' in vhost '{vhost}' "
                               f"(the broker answers 403 ACCESS_REFUSED); publish to an exchange bound to it")
        return self._walk(vhost, start, routing_key, keys, headers, match_headers)

    def _route_default(self, vhost: str, routing_key: str, keys: list, headers) -> RouteResult:
        routes = []
        for key in sorted(set(keys)):
            if ("queue", vhost, key) in self.topology.queues:
                routes.append(Route(key, (Hop("", key, "queue", key, "default"),)))
        return RouteResult(vhost, "", routing_key, headers, tuple(r.queue for r in routes), tuple(routes))

    def _walk(self, vhost: str, start: _ExchangeInfo, routing_key: str, keys: list | None, headers,
              match_headers) -> RouteResult:
        # queue -> (source exchange, binding) of the hop that delivered to it;
        # exchange -> (source exchange, binding or None for an alternate exchange), None for the start.
        # Hops are built only when the result's routes are read.
        last_hop: dict[str, tuple] = {}
        set_hop = last_hop.setdefault
        via: dict[str, tuple | None] = {start.name: None}
        single = keys is None
        level = [start]
        while level:
            next_level = []
            for info in level:
                index = info.index if info.index is not None else self._index(vhost, info)
                matched = index.match1(routing_key, match_headers) if single else index.match(keys, match_headers)
                src = info.name
                if matched:
                    for dest, target, hop in matched:
                        if target is None:  # a queue
                            current = set_hop(dest, hop)
                            if current is not hop and current[0] == src and _before(hop[1], current[1]):
                                last_hop[dest] = hop
                        else:
                            current = via.get(dest, False)
                            if current is False:
                                via[dest] = hop
                                next_level.append(target)
                            elif current is not None and current[0] == src and _before(hop[1], current[1]):
                                via[dest] = hop
                elif info.alternate is not None and info.alternate not in via:
                    target = self._info(vhost, info.alternate)
                    if target is not None:
                        via[target.name] = (src, None)
                        next_level.append(target)
            if len(next_level) > 1:
                next_level.sort(key=_name)  # deterministic paths, whatever the order of the file's bindings
            level = next_level
        return RouteResult(vhost, start.name, routing_key, headers, tuple(sorted(last_hop)), None, last_hop, via)

    def _queue_names(self, vhost: str) -> frozenset:
        names = self._queues_by_vhost.get(vhost)
        if names is None:
            names = self._queues_by_vhost[vhost] = frozenset(
                q.name for q in self.topology.queues.values() if q.vhost == vhost)
        return names


def _name(info: _ExchangeInfo) -> str:
    return info.name


def _before(binding, other) -> bool:
    """Between two bindings of one exchange to one destination, the path shows the
    one with the smallest key (then arguments): stable whatever the file order."""
    if binding.routing_key != other.routing_key:
        return binding.routing_key < other.routing_key
    return binding.arguments < other.arguments


def route(topology: Topology, vhost: str, exchange: str, routing_key: str = "",
          headers: Mapping[str, Any] | None = None, *, version: str | tuple = DEFAULT_VERSION) -> RouteResult:
    """One-shot :meth:`Router.route` (builds the indexes for this call only)."""
    return Router(topology, version=version).route(vhost, exchange, routing_key, headers)
