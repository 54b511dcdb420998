"""The live state: management API responses or a definitions export -> :class:`LiveState`.

Reads whole vhosts with as few requests as the API allows (RABBITMQ-SEMANTICS.md
10.4): one ``GET /api/vhosts`` for every vhost and its settings, then per managed
vhost one ``GET /api/definitions/V`` (configuration) and one ``GET /api/queues/V``
restricted to four columns (message and consumer counts, exclusivity), the two
issued concurrently on the one session.

What is never managed is skipped here and counted in ``LiveState.skipped``: the
default exchange and ``amq.*`` exchanges, exclusive queues, server-named ``amq.*``
queues, the implicit default-exchange bindings (``source == ""``) and bindings to
skipped queues (sections 4, 6, 10.2).

The resources built here carry exactly the declared configuration: server-only
fields (``node``, ``state``, ``policy``, ``effective_policy_definition``, stats) are
dropped, missing fields get the declare defaults, and policy-applied values are never
folded into ``arguments``. Comparison-only normalization (absent ``x-queue-type`` is
``classic``, the vhost default queue type, ...) is the planner's job
(``planner/normalize.py``), so ``before`` objects in a plan are what the broker has.

Imports nothing from planner, apply or cli.
"""
from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..errors import BrokerError, InputError
from . import versioned
from ..versions import has
from ..model import Args, Queue, Resource, Topology, Vhost, thaw

from .rows import DQT_UNSET, is_server_named, topology_fingerprint, vhost_from_row, vhost_resources

if TYPE_CHECKING:  # pragma: no cover
    from .http import ManagementClient

__all__ = ["QueueStats", "LiveState", "LiveReader", "read_live", "live_from_definitions", "read_state_file",
           "topology_fingerprint", "SKIP_CATEGORIES", "NOT_MANAGED_CATEGORIES", "DQT_UNSET"]

# Categories of never-managed objects, as counted in LiveState.skipped.
SKIP_CATEGORIES = ("built-in exchanges", "exclusive queues", "server-named queues",
                   "default-exchange bindings", "bindings to skipped queues")
# What a definitions file may hold that topoform does not manage at all (counted in
# LiveState.not_managed, never read): runtime parameters (federation upstreams,
# shovels, ...), operator policies, vhost limits, global parameters, users, permissions.
NOT_MANAGED_CATEGORIES = ("parameters", "operator policies", "vhost limits", "global parameters", "users",
                          "permissions", "topic permissions")


@dataclass(frozen=True)
class QueueStats:
    """Counts from the broker's stats (they lag by about 5 s; section 10.3)."""

    messages: int
    consumers: int


@dataclass(frozen=True)
class LiveState:
    """What the broker has in the managed vhosts.

    ``queue_stats`` has an entry only for queues whose counts are known: a queue
    missing from it (stats not emitted yet, or a ``--state`` file, which has no counts)
    must be treated as possibly holding messages.
    """

    topology: Topology
    queue_stats: Mapping[tuple, QueueStats] = field(default_factory=dict)
    missing_vhosts: frozenset = frozenset()
    fingerprint: str = ""
    skipped: Mapping[str, int] = field(default_factory=dict)
    source: str = "broker"  # "broker" | "state-file": for messages only
    not_managed: Mapping[str, int] = field(default_factory=dict)  # state files: NOT_MANAGED_CATEGORIES counts
    notes: tuple = ()  # state files: one line per thing worth telling (rows listed twice, ...)
    version: str | None = None  # the broker's version (GET /api/overview, or the export's field); None: unknown
    config: Any = None  # topoform.config.load.ConfigState: users, permissions, limits, ... (SPEC section 8)

    @property
    def vhosts(self) -> tuple[str, ...]:
        """The vhosts that were read and exist, sorted."""
        return tuple(sorted(v.name for v in self.topology.vhosts.values()))

    def narrow(self, vhosts: Iterable[str]) -> "LiveState":
        """The part of this state inside ``vhosts``, with its own fingerprint (as if only they were read)."""
        keep = set(vhosts)
        topology = self.topology.in_vhosts(keep)
        return LiveState(topology=topology,
                         queue_stats=MappingProxyType({k: v for k, v in self.queue_stats.items() if k[1] in keep}),
                         missing_vhosts=frozenset(v for v in self.missing_vhosts if v in keep),
                         fingerprint=_with_config(topology_fingerprint(topology), _narrow_config(self.config, keep)),
                         skipped=self.skipped, source=self.source,
                         not_managed=self.not_managed, notes=self.notes, version=self.version,
                         config=_narrow_config(self.config, keep))


def _state(resources: list[Resource], stats: Mapping, missing: Iterable[str], skipped: Counter,
           source: str, not_managed: Counter | None = None, notes: Sequence[str] = (),
           version: str | None = None) -> LiveState:
    topology = Topology.build(resources)
    not_managed = not_managed or Counter()
    return LiveState(topology=topology, queue_stats=MappingProxyType(dict(stats)),
                     missing_vhosts=frozenset(missing), fingerprint=topology_fingerprint(topology),
                     skipped=MappingProxyType({k: skipped[k] for k in SKIP_CATEGORIES if skipped[k]}),
                     source=source,
                     not_managed=MappingProxyType({k: not_managed[k] for k in NOT_MANAGED_CATEGORIES
                                                   if not_managed[k]}),
                     notes=tuple(notes), version=version)


# ---------------------------------------------------------------------- from the broker
READ_SOURCES = ("auto", "listings", "definitions")


class _Combined:
    """Several futures read as one: ``result()`` waits for all and combines them."""

    def __init__(self, parts: Mapping[str, Future], combine):
        self._parts, self._combine, self._value = parts, combine, None

    def result(self):
        if self._value is None:
            self._value = self._combine({k: f.result() for k, f in self._parts.items()})
        return self._value

    def cancel(self) -> None:
        for f in self._parts.values():
            f.cancel()


class _Deferred:
    """A read whose requests depend on the broker's version: a pool thread waits for the
    version and starts them, so the caller (loading the files meanwhile) never waits for it."""

    def __init__(self, starter: Future):
        self._starter = starter

    def result(self):
        return self._starter.result().result()


class LiveReader:
    """Reads vhosts from the broker; the reads can start early and overlap other work.

    ``prefetch(names)`` starts reading vhosts that are probably managed (for example
    guessed from the files before they are loaded) on background threads of the one
    session; ``read(vhosts)`` then uses what was fetched and reads the rest. A wrong guess
    costs broker time only: results are used only for vhosts passed to ``read``.
    """

    def __init__(self, client: "ManagementClient", max_workers: int = 8, source: str = "auto",
                 version: str | None = None):
        if source not in READ_SOURCES:
            raise ValueError(f"unknown read source {source!r}")
        self.client = client
        self.source = source
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="topoform-read")
        self._listing: Future | None = None
        self._overview: Future | None = None
        if version:  # already read by the caller (GET /api/overview once per command)
            self._overview = Future()
            self._overview.set_result(str(version))
        self._reads: dict[str, tuple[Future, Future]] = {}
        self._config: tuple[tuple, Future] | None = None  # (vhosts, future) of the config kinds' read
        self._nodes: Future | None = None  # GET /api/nodes (prefetch_nodes)
        self.overview_answer: dict | None = None  # GET /api/overview, once read (cluster_name for a saved plan)

    def _listing_future(self) -> Future:
        if self._listing is None:
            if self._overview is None:
                self._overview = self._pool.submit(self._read_version)
            self._listing = self._pool.submit(self.client.vhosts)
        return self._listing

    def _read_version(self) -> str | None:
        try:
            self.overview_answer = self.client.overview()
            version = self.overview_answer.get("rabbitmq_version")
        except BrokerError as exc:
            if exc.code in ("broker-timeout", "not-rabbitmq"):  # every read would wait --timeout again, or misread
                raise
            return None  # the version is optional: newest rules then
        except Exception:  # noqa: BLE001 - the version is optional: newest rules then
            return None
        return str(version) if version else None

    def identity(self) -> dict:
        """The broker read: :func:`broker_identity` (asks for the version first if nobody has)."""
        version = self.version
        return broker_identity(self.client, {**(self.overview_answer or {}), "rabbitmq_version": version})

    @property
    def version(self) -> str | None:
        """The broker's version (``GET /api/overview``), ``None`` when it could not be read."""
        self._listing_future()
        assert self._overview is not None
        return self._overview.result()

    def _definitions(self, vhost: str) -> dict:
        defs = self.client.definitions(vhost)
        if versioned.needs_exchange_listing(versioned.rules_version(self.version)):
            from .http import listing_requests

            path, params = listing_requests(vhost)["exchanges"]
            return self._with_exchange_listing(defs, self.client.get(path, params=params))
        return defs

    def _with_exchange_listing(self, defs: dict, exchanges: list) -> dict:
        # 4.3 leaves internal exchanges out of the vhost's export (BROKERS.md)
        defs = versioned.merge_internal_exchanges(defs, exchanges)
        if not getattr(self.client, "_definitions_forbidden", False):  # the export, not the listings
            defs, _ = versioned.drop_bindings_to_unlisted_queues(defs)
        return defs

    def _source(self) -> str:
        """``auto``: whichever costs the broker less on its version (versions row
        ``definitions_export_cheaper``): the export from 4.0, the listings before."""
        if self.source != "auto":
            return self.source
        version = versioned.rules_version(self.version)
        return "definitions" if version is not None and has(version, "definitions_export_cheaper") else "listings"

    def _configuration(self, vhost: str) -> "_Combined | _Deferred | Future":
        """Start reading one vhost's configuration: the four per-kind listings at once
        (the default: cheaper for the broker than its export, and the same for every user
        and version), or ``GET /api/definitions/V`` (``source="definitions"``).

        With ``source="auto"`` and the version not read yet, the choice is made on a pool
        thread once the version arrives (a prefetch used to wait here for ``GET /api/overview``,
        40-55 ms on 4.3.6 before the files began to load)."""
        if self.source == "auto" and not (self._overview is not None and self._overview.done()):
            self._listing_future()  # the version's request is in the pool before the task that waits for it
            return _Deferred(self._pool.submit(self._configuration_now, vhost))
        return self._configuration_now(vhost)

    def _configuration_now(self, vhost: str) -> "_Combined | Future":
        if self._source() == "definitions":
            if versioned.needs_exchange_listing(versioned.rules_version(self.version)):
                # the export and the exchange listing at once, not one after the other
                from .http import listing_requests

                path, params = listing_requests(vhost)["exchanges"]
                parts = {"defs": self._pool.submit(self.client.definitions, vhost),
                         "exchanges": self._pool.submit(self.client.get, path, params)}
                return _Combined(parts, lambda rows: self._with_exchange_listing(rows["defs"], rows["exchanges"]))
            return self._pool.submit(self._definitions, vhost)
        from .http import combine_listings, listing_requests

        parts = {kind: self._pool.submit(self.client.get, path, params)
                 for kind, (path, params) in listing_requests(vhost).items()}
        return _Combined(parts, combine_listings)

    def _start(self, vhost: str, stats: bool = True) -> tuple[Future, Future | None]:
        defs, counts = self._reads.get(vhost, (None, None))
        if defs is None:
            defs = self._configuration(vhost)
        if counts is None and stats:
            # configuration and counts are two independent reads: issue them together
            counts = self._pool.submit(self.client.queue_stats, vhost)
        self._reads[vhost] = (defs, counts)
        return defs, counts

    def prefetch(self, vhosts: Iterable[str], stats: bool = True) -> None:
        """Start reading the vhost list and these vhosts now."""
        self._listing_future()
        vhosts = sorted(set(vhosts))
        for v in vhosts:
            self._start(v, stats)
        if vhosts:
            self._config_future(vhosts, existing=None)

    def prefetch_nodes(self) -> None:
        """Start reading the cluster's nodes (``cluster_read.read_nodes``), for the plan's health notes."""
        if self._nodes is None:
            from .cluster_read import read_nodes

            self._nodes = self._pool.submit(read_nodes, self.client)

    def nodes(self) -> Any:
        """The nodes listing started by :meth:`prefetch_nodes` (read now if it was not)."""
        self.prefetch_nodes()
        assert self._nodes is not None
        return self._nodes.result()

    def _config_future(self, vhosts: Sequence[str], existing: set | None) -> Future:
        """The config kinds' read (users, permissions, limits, ...: topoform/config/), on its own
        thread beside the topology's: a dozen small requests one after the other, whose time
        dominated a no-change plan of a small vhost when they came after it (issue 10)."""
        key = tuple(sorted(vhosts))
        earlier = self._config[0] if self._config is not None else None
        if earlier is not None and existing is not None:  # a prefetch read the guessed vhosts that exist
            earlier = tuple(v for v in earlier if v in existing)
        if earlier != key:
            from ..config.hook import read_live_config  # users, permissions, limits, ... (topoform/config/)

            def read() -> Any:
                if existing is None:  # a prefetch: only the vhosts that exist (the listing says)
                    names = {row["name"] for row in self._listing_future().result()}
                    return read_live_config(self.client, [v for v in key if v in names])
                return read_live_config(self.client, list(key))

            self._config = (key, self._pool.submit(read))
        return self._config[1]

    def read(self, vhosts: Sequence[str] | None, stats: bool = True) -> LiveState:
        """The LiveState of ``vhosts`` (None: every vhost on the broker). See :func:`read_live`.

        ``stats=False`` skips the queue listing: ``queue_stats`` is then empty (every count
        unknown) and exclusive queues are not counted in ``skipped``. A plan without
        ``--prune`` or ``--migrate`` needs no counts, and the listing costs the broker about
        as much as the definitions.
        """
        listing = self._listing_future().result()
        existing = {row["name"]: vhost_from_row(row) for row in listing}
        wanted = sorted(existing) if vhosts is None else sorted(set(vhosts))
        present = [v for v in wanted if v in existing]
        missing = [v for v in wanted if v not in existing]
        futures = [(v, *self._start(v, stats)) for v in present]
        config_future = self._config_future(present, existing=set(existing))

        resources: list[Resource] = [existing[v] for v in present]
        counts: dict[tuple, QueueStats] = {}
        skipped: Counter = Counter()
        for vhost, defs_future, stats_future in futures:
            defs = defs_future.result()
            listing_rows = stats_future.result() if stats and stats_future is not None else []
            exclusive = {str(r["name"]) for r in listing_rows if r.get("exclusive")}
            exclusive.update(defs.get("_exclusive") or ())  # the queue listing names them too
            resources.extend(vhost_resources(defs, vhost, exclusive, skipped))
            # (4.3's export lists the bindings of exclusive queues: dropped in _definitions without
            # a count, as 3.10's export and the listings leave them out without one)
            # exports never list exclusive queues (section 4.1): count them from the listing
            skipped["exclusive queues"] += len(exclusive) - sum(
                1 for r in defs.get("queues") or () if str(r.get("name")) in exclusive)
            counts.update(_counts(vhost, listing_rows, exclusive))
        state = _state(resources, counts, missing, skipped, "broker", version=self.version)
        config = config_future.result()
        return replace(state, config=config, fingerprint=_with_config(state.fingerprint, config))

    def read_stats(self, vhosts: Iterable[str]) -> dict[tuple, QueueStats]:
        """Only the message and consumer counts of these (existing) vhosts."""
        out: dict[tuple, QueueStats] = {}
        futures = [(v, self._start(v, True)[1]) for v in sorted(set(vhosts))]
        for vhost, future in futures:
            rows = future.result()
            out.update(_counts(vhost, rows, {str(r["name"]) for r in rows if r.get("exclusive")}))
        return out

    def close(self) -> None:
        """Stop: unneeded prefetches are cancelled or left to finish in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "LiveReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _counts(vhost: str, rows: Iterable[Mapping], exclusive: set[str]) -> dict[tuple, QueueStats]:
    out = {}
    for row in rows:
        name = str(row["name"])
        if name in exclusive or is_server_named(name):
            continue
        messages, consumers = row.get("messages"), row.get("consumers")
        if isinstance(messages, int) and isinstance(consumers, int):
            out[("queue", vhost, name)] = QueueStats(messages=messages, consumers=consumers)
    return out


def broker_identity(client, overview) -> dict:
    """What a saved plan records of the broker it was made for (``broker`` in the plan file), never a
    credential: the management URL in use without userinfo, the cluster name and the version (each
    None when unknown)."""
    settings = getattr(client, "settings", None)
    try:
        url = settings.current().http_base_clean if settings is not None else None
    except Exception:  # noqa: BLE001 - a stand-in client without full settings
        url = None
    overview = overview if isinstance(overview, dict) else {}
    name, version = overview.get("cluster_name"), overview.get("rabbitmq_version")
    return {"management_url": url, "cluster_name": str(name) if name else None,
            "rabbitmq_version": str(version) if version else None}


def read_live(client: "ManagementClient", vhosts: Sequence[str] | None, *, stats: bool = True,
              version: str | None = None) -> LiveState:
    """Read the given vhosts (``None``: every vhost on the broker) into a LiveState.

    Requests: one ``GET /api/vhosts`` (names and settings), then per vhost one
    ``GET /api/definitions/V`` and one ``GET /api/queues/V?columns=...``, concurrently.
    A requested vhost that does not exist is reported in ``missing_vhosts`` (the plan
    creates it), not as an error. Raises BrokerError (one line, redacted) when the broker
    cannot be read.
    """
    with LiveReader(client, version=version) as reader:  # version: the broker's, when already known
        return reader.read(vhosts, stats=stats)


# ---------------------------------------------------------------------- from a definitions export
# Top-level keys of a definitions export (3.10 to 4.3): a document with any of them is one.
_DEFINITIONS_KEYS = ("vhosts", "queues", "exchanges", "bindings", "policies", "parameters", "global_parameters",
                     "users", "permissions", "topic_permissions", "limits", "rabbit_version", "rabbitmq_version")

# Which row the broker keeps when a definitions file lists one object twice (POST
# /api/definitions[/V], repeated on 3.10.8, 4.0.5 and 4.3.6): policies are set one after
# the other, so the last row wins; queues and exchanges are declared concurrently, so
# either row may win (both seen on every version): topoform keeps the first and says so.
# Bindings are keyed by all their fields, so repeats are identical.
DUPLICATE_ROWS = {"policies": "last", "exchanges": "either", "queues": "either", "bindings": "first"}


def _row_key(kind: str, row: Mapping) -> tuple:
    if kind == "bindings":
        return (row.get("vhost"), row.get("source"), row.get("destination_type") or "queue", row.get("destination"),
                row.get("routing_key") or "", json.dumps(row.get("arguments") or {}, sort_keys=True, default=str))
    return (row.get("vhost"), row.get("name"))


def _dedupe(definitions: Mapping, notes: list) -> dict:
    """The document with each object listed once, as the broker's import keeps it (:data:`DUPLICATE_ROWS`)."""
    out = dict(definitions)
    for kind, rule in DUPLICATE_ROWS.items():
        rows = definitions.get(kind)
        if not isinstance(rows, list):
            continue
        kept: dict = {}
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                kept[("malformed", i)] = row  # reported by the row check
                continue
            key = _row_key(kind, row)
            first = kept.get(key)
            if first is None:
                kept[key] = row
                continue
            if json.dumps(first, sort_keys=True, default=str) == json.dumps(row, sort_keys=True, default=str):
                continue
            what = f"{kind[:-1] if kind != 'policies' else 'policy'} '{row.get('name')}'" + (
                f" in vhost '{row.get('vhost')}'" if row.get("vhost") is not None else "")
            if rule == "last":
                kept[key] = row
                notes.append(f"{what} is listed more than once with different settings: the broker keeps the "
                             "last row, and so does this import")
            else:
                notes.append(f"{what} is listed more than once with different settings: the broker's import "
                             "keeps either row (it declares them concurrently); this import keeps the first")
        out[kind] = list(kept.values())
    return out


def _not_managed(definitions: Mapping, wanted: set | None) -> Counter:
    """Counts of what the file holds that topoform does not manage (:data:`NOT_MANAGED_CATEGORIES`)."""
    counts: Counter = Counter()

    def rows(key: str) -> list:
        value = definitions.get(key)
        return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []

    def inside(row: Mapping) -> bool:
        return wanted is None or "vhost" not in row or str(row["vhost"]) in wanted

    for row in rows("parameters"):
        if inside(row):
            component = row.get("component")
            counts["vhost limits" if component == "vhost-limits" else
                   "operator policies" if component == "operator_policy" else "parameters"] += 1
    counts["global parameters"] += len(rows("global_parameters"))
    counts["users"] += len(rows("users"))
    counts["permissions"] += sum(1 for r in rows("permissions") if inside(r))
    counts["topic permissions"] += sum(1 for r in rows("topic_permissions") if inside(r))
    limits = definitions.get("limits")  # single-vhost exports (4.x): {} or [] when none
    if isinstance(limits, (Mapping, list)):
        counts["vhost limits"] += len(limits)
    for row in rows("vhosts"):
        if isinstance(row.get("limits"), (Mapping, list)) and (wanted is None or str(row.get("name")) in wanted):
            counts["vhost limits"] += len(row["limits"])
    return counts


def _with_config(fingerprint: str, config) -> str:
    from ..config.hook import live_fingerprint

    return live_fingerprint(fingerprint, config) if config is not None else fingerprint


def _narrow_config(config, vhosts):
    return config.in_vhosts(vhosts) if config is not None else None


def live_from_definitions(definitions: Mapping, vhosts: Sequence[str] | None) -> LiveState:
    """See :func:`_live_from_definitions`; adds the config kinds (users, permissions, ...: topoform/config/)."""
    state = _live_from_definitions(definitions, vhosts)
    from ..config.live import from_definitions

    config = from_definitions(definitions, vhosts if vhosts is not None else list(state.vhosts))
    return replace(state, config=config, fingerprint=_with_config(state.fingerprint, config))


def _live_from_definitions(definitions: Mapping, vhosts: Sequence[str] | None) -> LiveState:
    """A LiveState from a definitions export, offline (``plan --state``, ``import --state``).

    Accepts the broker-wide export (``GET /api/definitions``, ``rabbitmqctl
    export_definitions``: rows carry ``vhost``, plus a ``vhosts`` list) and the
    single-vhost one (``GET /api/definitions/V``: no ``vhost`` anywhere), which is read
    as the one vhost named in ``vhosts``. An object listed twice is read as the broker
    reads it (:data:`DUPLICATE_ROWS`; ``notes`` says so). What topoform does not manage
    (parameters, limits, users, ...) is counted in ``not_managed``: a file holding only
    that is a valid, empty state. Exports carry no message counts, so ``queue_stats`` is
    empty. Raises InputError when the document is not an export.
    """
    if not isinstance(definitions, Mapping) or not any(k in definitions for k in _DEFINITIONS_KEYS):
        raise InputError("the state file is not a RabbitMQ definitions export "
                         "(expected the JSON of GET /api/definitions or rabbitmqctl export_definitions)")
    for k in _DEFINITIONS_KEYS[:5]:
        if definitions.get(k) is not None and not isinstance(definitions.get(k), list):
            raise InputError(f"the state file's '{k}' is not a list (a definitions export has lists of rows)")
    notes: list[str] = []
    definitions = _dedupe(definitions, notes)
    rows = [r for k in ("queues", "exchanges", "bindings", "policies") for r in definitions.get(k) or ()]
    for r in rows:
        if not isinstance(r, Mapping) or "name" not in r and "source" not in r:
            raise InputError("the state file has a malformed row: " + json.dumps(r, default=str)[:120])
    # policy rows carry ``vhost`` even in a single-vhost export; the other rows only in a global one
    is_global = any(k in definitions for k in ("vhosts", "users", "global_parameters", "permissions")) or any(
        isinstance(r, Mapping) and "vhost" in r
        for k in ("queues", "exchanges", "bindings", "parameters") for r in definitions.get(k) or ())
    skipped: Counter = Counter()
    resources: list[Resource] = []
    stats = _export_stats(definitions)
    if not is_global:
        wanted = sorted(set(vhosts or ()))
        not_managed = _not_managed(definitions, None)
        if not rows and not wanted:  # only parameters, limits, ...: nothing topoform manages
            return _state([], {}, (), skipped, "state-file", not_managed, notes, version=export_version(definitions))
        if len(wanted) != 1:
            raise InputError("the state file is a single-vhost export (GET /api/definitions/VHOST has no vhost "
                             f"names) but {len(wanted)} vhosts are managed",
                             hint="narrow the plan with --vhost NAME, or export the whole broker")
        vhost = wanted[0]
        meta = {k: definitions[k] for k in ("metadata", "description", "default_queue_type") if k in definitions}
        resources.append(vhost_from_row({"name": vhost, **meta}) if meta else Vhost(name=vhost))
        resources.extend(vhost_resources(definitions, vhost, set(), skipped))
        return _state(resources, {("queue", vhost, k[2]): v for k, v in stats.items()}, (), skipped, "state-file",
                      not_managed, notes, version=export_version(definitions))

    listed = {}
    for row in definitions.get("vhosts") or ():
        if isinstance(row, Mapping) and "name" in row:
            listed[str(row["name"])] = vhost_from_row(row)
    by_vhost: dict[str, dict[str, list]] = {}
    for kind in ("queues", "exchanges", "bindings", "policies"):
        for row in definitions.get(kind) or ():
            v = str(row.get("vhost", "/"))
            by_vhost.setdefault(v, {}).setdefault(kind, []).append(row)
            if "vhosts" not in definitions:
                listed.setdefault(v, Vhost(name=v))
    wanted = sorted(listed) if vhosts is None else sorted(set(vhosts))
    missing = [v for v in wanted if v not in listed]
    for v in wanted:
        if v in listed:
            resources.append(listed[v])
            rows_of_v = _as_loaded_by(by_vhost.get(v, {}), listed[v].default_queue_type, export_version(definitions))
            resources.extend(vhost_resources(rows_of_v, v, set(), skipped))
    stats = {k: s for k, s in stats.items() if k[1] in set(wanted)}
    return _state(resources, stats, missing, skipped, "state-file", _not_managed(definitions, None if vhosts is None else set(wanted)), notes,
                  version=export_version(definitions))


def _as_loaded_by(rows: Mapping, default_queue_type: str | None, version: str | None) -> Mapping:
    """A vhost's rows as the export's own broker stores them once it loads them.

    Queue rows without ``x-queue-type`` (checked with POST /api/definitions on 3.10.8,
    4.0.5, 4.3.6): 4.x applies the vhost's default queue type (quorum for a durable,
    non-exclusive, non-auto-delete row where it is quorum) and stores the type it made;
    3.x's definitions import ignores the default and makes them classic, storing no type,
    which is how they read already (a stored queue without the key is classic; ``import``
    then writes ``x-queue-type: classic`` where the default would say otherwise, see
    :func:`as_declared`). A file that names no version is read as written.
    """
    major = versioned.rules_version(version)
    if major is None or major < (4, 0):
        return rows
    dqt = default_queue_type if default_queue_type not in ("", DQT_UNSET) else None
    queues = []
    for row in rows.get("queues") or ():
        args = row.get("arguments") if isinstance(row.get("arguments"), Mapping) else {}
        if "x-queue-type" not in args:
            made = versioned.implied_queue_type(bool(row.get("durable")), bool(row.get("exclusive")),
                                                bool(row.get("auto_delete")), dqt)
            row = {**row, "arguments": {**args, "x-queue-type": made}}
        queues.append(row)
    return {**rows, "queues": queues}


def as_declared(state: LiveState) -> Topology:
    """The state's topology as applications declared it, for ``import``: without the
    ``x-queue-type`` the broker's version added by itself (broker/versioned.py).

    The planner keeps using ``state.topology`` (what the broker stores): a queue's type
    there does not depend on the vhost's current default, which may have changed since.
    """
    dqts = {v.name: v.default_queue_type for v in state.topology.vhosts.values()}
    resources = versioned.normalize_resources(state.topology.resources(), dqts,
                                              versioned.rules_version(state.version))
    # A queue stored without x-queue-type is classic (3.10's definitions import makes such
    # queues even where the vhost's default is quorum): where a declare without the key
    # would now get another type, the file must say classic, or it plans a change.
    out = []
    for r in resources:
        if type(r) is Queue and "x-queue-type" not in state.topology.queues[r.key].arguments and \
                versioned.implied_queue_type(r.durable, r.exclusive, r.auto_delete, dqts.get(r.vhost)) != "classic":
            r = r.replace(arguments=Args({**r.arguments, "x-queue-type": "classic"}))
        out.append(r)
    return Topology.build(out)


def export_version(definitions: Mapping) -> str | None:
    """The broker version an export names (``rabbitmq_version`` from 4.0, ``rabbit_version`` before)."""
    for key in ("rabbitmq_version", "rabbit_version", "product_version"):
        value = definitions.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _export_stats(definitions: Mapping) -> dict[tuple, QueueStats]:
    """Counts from queue rows that carry ``messages`` (and ``consumers``).

    Real exports have none; a file merged with ``GET /api/queues`` rows (or a test
    fixture) may, and then ``--prune`` can tell empty queues from full ones offline.
    """
    out = {}
    for row in definitions.get("queues") or ():
        messages = row.get("messages")
        if isinstance(messages, int) and not isinstance(messages, bool):
            consumers = row.get("consumers")
            out[("queue", str(row.get("vhost", "")), str(row["name"]))] = QueueStats(
                messages, consumers if isinstance(consumers, int) else 0)
    return out


def read_state_file(path: str, vhosts: Sequence[str] | None) -> LiveState:
    """``plan --state FILE``: read a definitions export from disk. Raises InputError (one line)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read state file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InputError(f"{path}: the state file is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in state file: {exc.msg}") from None
    try:
        return live_from_definitions(data, vhosts)
    except InputError as exc:
        raise InputError(f"{path}: {exc.message}", hint=exc.hint) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed definitions export ({type(exc).__name__}: {exc})") from None


def to_definitions(topology: Topology) -> dict:
    """A topology as a broker-wide definitions export (the inverse of :func:`live_from_definitions`).

    Used by tests and fixtures; ``topoform export`` has its own writer.
    """
    out: dict[str, list] = {"vhosts": [], "queues": [], "exchanges": [], "bindings": [], "policies": []}
    for v in sorted(topology.vhosts.values(), key=lambda v: v.name):
        row: dict[str, Any] = {"name": v.name}
        meta = {k: (list(val) if isinstance(val, tuple) else val)
                for k, val in (("description", v.description), ("tags", v.tags),
                               ("default_queue_type", v.default_queue_type)) if val is not None}
        if meta:
            row["metadata"] = meta
        out["vhosts"].append(row)
    for e in sorted(topology.exchanges.values(), key=lambda r: r.key):
        out["exchanges"].append({"name": e.name, "vhost": e.vhost, "type": e.type, "durable": e.durable,
                                 "auto_delete": e.auto_delete, "internal": e.internal,
                                 "arguments": thaw(e.arguments)})
    for q in sorted(topology.queues.values(), key=lambda r: r.key):
        out["queues"].append({"name": q.name, "vhost": q.vhost, "durable": q.durable, "auto_delete": q.auto_delete,
                              "arguments": thaw(q.arguments)})
    for b in sorted(topology.bindings, key=lambda r: repr(r.key)):
        out["bindings"].append({"source": b.source, "vhost": b.vhost, "destination": b.destination,
                                "destination_type": b.destination_type, "routing_key": b.routing_key,
                                "arguments": thaw(b.arguments)})
    for p in sorted(topology.policies.values(), key=lambda r: r.key):
        out["policies"].append({"vhost": p.vhost, "name": p.name, "pattern": p.pattern, "apply-to": p.apply_to,
                                "definition": thaw(p.definition), "priority": p.priority})
    return out

