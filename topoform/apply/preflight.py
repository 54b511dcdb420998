"""Before ``apply`` changes anything: may this user make every change of the plan, and
does the broker have the plugins the plan needs?

Everything missing is listed at once (:class:`PreflightReport`), instead of the broker
refusing one change in the middle of a run. Two checks, each from what the user may read
(observed on 3.10.8, 4.0.5 and 4.3.6):

* :meth:`Preflight.check_access` (before the apply lock): the user's tags (``GET
  /api/whoami``, readable by every management user) and, for an administrator, its
  permission on every managed vhost that exists, including configure on the lock queue
  ``topoform.lock`` (``GET /api/users/USER/permissions``).
* :meth:`Preflight.check_plan` (before the first change): the tag each change needs
  (vhosts: ``administrator``; policies: ``policymaker`` or ``administrator``), the
  configure / write / read permission patterns each object of the plan needs
  (:data:`NEEDS`, RabbitMQ's access-control table), and the plugin every policy key and
  exchange type needs (:mod:`topoform.plugins`).

What a non-administrator cannot be checked for: RabbitMQ lets only administrators read
permission patterns (``GET /api/users/U/permissions``, ``/api/permissions`` and
``/api/permissions/V/U`` answer 401 "Not administrator user" to management and
policymaker users, on 3.10 to 4.3); the report says so in a note, and the broker
checks them during the run. Such a user sees only the vhosts it has permissions on in
``GET /api/vhosts``: a vhost of the files missing from that list is probed over AMQP,
whose refusal tells "not found" from "access refused" (the management API answers 404
for both on 4.3).

Must not import planner internals beyond the plan types, or cli.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..broker.settings import BrokerSettings, quote_segment
from ..errors import BrokerError, TopoformError
from ..planner.plan import Action, Change, Plan
from .. import plugins as P

__all__ = ["Identity", "PreflightReport", "PreflightError", "Preflight", "NEEDS", "TAG_NEEDS", "pattern_allows"]

LOCK_QUEUE = "topoform.lock"  # apply/lock.py: an exclusive queue declared in every managed vhost

# (action, kind) -> the permissions the AMQP operation needs, as (permission, which name):
# "self" the object, "source" / "destination" a binding's ends. From RabbitMQ's
# access-control table; 4.3 also checks configure on passive declares (migrations use them).
NEEDS: dict[tuple[Action, str], tuple[tuple[str, str], ...]] = {
    (Action.CREATE, "exchange"): (("configure", "self"),),
    (Action.DELETE, "exchange"): (("configure", "self"),),
    (Action.CREATE, "queue"): (("configure", "self"),),
    (Action.DELETE, "queue"): (("configure", "self"),),
    (Action.CREATE, "binding"): (("write", "destination"), ("read", "source")),
    (Action.DELETE, "binding"): (("write", "destination"), ("read", "source")),
    # a migration declares, consumes and republishes: all three on the object itself
    (Action.MIGRATE, "queue"): (("configure", "self"), ("write", "self"), ("read", "self")),
    (Action.MIGRATE, "exchange"): (("configure", "self"), ("write", "self"), ("read", "self")),
    # a super stream: its exchange and partition streams are declared, bound and deleted
    (Action.CREATE, "super_stream"): (("configure", "self"), ("configure", "partitions"), ("write", "partitions"),
                                      ("read", "self")),
    (Action.DELETE, "super_stream"): (("configure", "self"), ("configure", "partitions")),
}

# kind -> the user tags any of which lets the management API change it
TAG_NEEDS: dict[str, tuple[str, ...]] = {
    "vhost": ("administrator",),  # PUT /api/vhosts/V, and the permissions a new vhost gets
    "policy": ("policymaker", "administrator"),
    # the config kinds (topoform/config/, SPEC section 8): the management API's own checks
    "user": ("administrator",),
    "user_limit": ("administrator",),
    "global_parameter": ("administrator",),
    "permission": ("administrator",),
    "topic_permission": ("administrator",),
    "vhost_limit": ("administrator",),
    "operator_policy": ("administrator",),
    "federation_upstream": ("policymaker", "administrator"),  # runtime parameters
    "federation_upstream_set": ("policymaker", "administrator"),
    "shovel": ("policymaker", "administrator"),
}

_VERB = {Action.CREATE: "create", Action.UPDATE: "update", Action.DELETE: "delete", Action.MIGRATE: "migrate"}


def pattern_allows(pattern: str | None, name: str) -> bool:
    """Whether a permission pattern grants ``name``: RabbitMQ runs it unanchored (like
    :func:`re.search`); ``""`` grants nothing (the docs: a synonym for ``^$``)."""
    if not pattern:
        return name == ""
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False  # an Erlang-only regex: treat as not granted, and say so


@dataclass(frozen=True)
class Identity:
    name: str
    tags: frozenset

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.tags

    def describe_tags(self) -> str:
        return ", ".join(sorted(self.tags)) or "none"


@dataclass
class PreflightReport:
    problems: list = field(default_factory=list)  # one line each: what is missing
    notes: list = field(default_factory=list)  # what could not be checked

    def raise_if_problems(self, what: str = "apply") -> None:
        if self.problems:
            n = len(self.problems)
            raise PreflightError(f"{what} stopped before changing anything: {n} problem{'s' if n != 1 else ''} "
                                 f"found ({'; '.join(self.problems)})", problems=self.problems)


class PreflightError(TopoformError):
    code = "preflight"

    def __init__(self, message: str, problems: Sequence[str] = (), **kw):
        super().__init__(message, **kw)
        self.problems = list(problems)


class Preflight:
    """The checks, with what they read from the broker cached (each request made once)."""

    def __init__(self, client: Any, settings: BrokerSettings, probe=None):
        self.client = client
        self.settings = settings
        self._identity: Identity | None = None
        self._permissions: dict | None = None
        self._permissions_read = False
        self._probe = probe or _probe_vhost

    # ------------------------------------------------------------------ reads
    def identity(self) -> Identity:
        if self._identity is None:
            row = self.client.get("/api/whoami")
            tags = row.get("tags") or []
            if isinstance(tags, str):
                tags = [t for t in tags.split(",") if t]
            self._identity = Identity(str(row.get("name") or self.settings.username), frozenset(map(str, tags)))
        return self._identity

    def permissions(self) -> dict | None:
        """vhost -> {"configure", "write", "read"} for this user; None when it may not read them."""
        if not self._permissions_read:
            self._permissions_read = True
            if self.identity().is_admin:
                rows = self.client.get(f"/api/users/{quote_segment(self.identity().name)}/permissions")
                self._permissions = {str(r["vhost"]): r for r in rows if isinstance(r, dict) and "vhost" in r}
        return self._permissions

    def _plugins(self) -> tuple[set | None, bool, set | None]:
        """(enabled plugins or None, whether inferred from exchange types, the broker's exchange types or None)."""
        exchange_types = enabled = None
        inferred = False
        try:
            overview = self.client.get("/api/overview")
            exchange_types = {str(x.get("name")) for x in overview.get("exchange_types") or () if isinstance(x, dict)}
        except BrokerError:
            overview = None
        try:
            enabled = P.enabled_from_nodes(self.client.get("/api/nodes", params={"columns": "name,enabled_plugins"}))
        except BrokerError:  # 401 "Not monitor user": infer from the exchange types
            if overview is not None:
                enabled = P.enabled_from_exchange_types(overview.get("exchange_types") or ())
                inferred = True
        return enabled, inferred, exchange_types

    # ------------------------------------------------------------------ checks
    def check_access(self, vhosts: Iterable[str], existing: Iterable[str]) -> PreflightReport:
        """Before the lock: permission on every managed vhost that exists (administrators only can be told)."""
        report = PreflightReport()
        me = self.identity()
        perms = self.permissions()
        if perms is None:
            return report
        for v in sorted(set(vhosts) & set(existing)):
            row = perms.get(v)
            if row is None:
                report.problems.append(f"user '{me.name}' has no permission on vhost '{v}' (it exists): grant "
                                       f"configure, write and read (rabbitmqctl set_permissions -p '{v}' "
                                       f"'{me.name}' ...)")
            elif not pattern_allows(row.get("configure"), LOCK_QUEUE):
                report.problems.append(f"vhost '{v}': user '{me.name}' has no configure permission for queue "
                                       f"'{LOCK_QUEUE}' (the apply lock; its configure pattern is "
                                       f"{row.get('configure')!r})")
        return report

    def check_plan(self, plan: Plan, environ=None) -> PreflightReport:
        """Every tag, permission, plugin and secret the plan's changes need, all problems at once.
        ``environ``: where a saved plan's ``{env: NAME}`` secrets are read again (``None``: not checked)."""
        report = PreflightReport()
        changes = list(plan.changes)
        if not changes:
            return report
        me = self.identity()
        created = {c.name for c in changes if c.kind == "vhost" and c.action is Action.CREATE}
        self._check_tags(changes, me, report)
        if created and not me.is_admin:
            self._explain_invisible_vhosts(sorted(created), me, report)
        self._check_permissions(changes, created, me, report)
        self._check_plugins(changes, report)
        if environ is not None:
            _check_secrets(changes, environ, report)
        return report

    def _check_tags(self, changes: list[Change], me: Identity, report: PreflightReport) -> None:
        for kind, tags in TAG_NEEDS.items():
            if me.tags & set(tags):
                continue
            of_kind = [c for c in changes if c.kind == kind]
            if not of_kind:
                continue
            shown = ", ".join(f"{_VERB.get(c.action, c.action.value)} {kind} '{c.name}'"
                              + (f" in vhost '{c.vhost}'" if kind != "vhost" and c.vhost else "") for c in of_kind[:5])
            more = f" and {len(of_kind) - 5} more" if len(of_kind) > 5 else ""
            need = " or ".join(f"'{t}'" for t in tags)
            report.problems.append(f"{shown}{more}: needs the {need} tag; user '{me.name}' has tags: "
                                   f"{me.describe_tags()}")
        # quorum queue members (topoform/cluster.py): POST .../replicas/add is for administrators only
        members = [c for c in changes if c.action is Action.UPDATE and c.kind == "queue" and c.steps]
        if members and not me.is_admin:
            more = f" and {len(members) - 1} more" if len(members) > 1 else ""
            report.problems.append(f"add members to quorum queue '{members[0].name}' in vhost '{members[0].vhost}'"
                                   f"{more}: needs the 'administrator' tag; user '{me.name}' has tags: "
                                   f"{me.describe_tags()}")

    def check_invisible(self, vhosts: Iterable[str], existing: Iterable[str]) -> PreflightReport:
        """The files' vhosts a non-administrator does not see: each one that exists is a problem (``destroy``
        would otherwise take it for absent and report nothing to do)."""
        report = PreflightReport()
        me = self.identity()
        missing = sorted(set(vhosts) - set(existing))
        if missing and not me.is_admin:
            self._explain_invisible_vhosts(missing, me, report)
        return report

    def _explain_invisible_vhosts(self, names: list[str], me: Identity, report: PreflightReport) -> None:
        """A non-administrator sees only its own vhosts: a 'create' may be a vhost it may not enter."""
        for name in names:
            verdict = self._probe(self.settings, name)
            if verdict == "access-refused":
                report.problems.append(f"vhost '{name}' exists, but user '{me.name}' has no permission on it "
                                       "(so it cannot see it, and the plan would create it)")

    def _check_permissions(self, changes: list[Change], created: set, me: Identity,
                           report: PreflightReport) -> None:
        perms = self.permissions()
        if perms is None:
            report.notes.append(f"permission patterns not checked: user '{me.name}' is not an administrator, and "
                                "RabbitMQ shows permissions to administrators only; the broker checks them during "
                                "the run")
            return
        missing: dict[str, dict[str, list[str]]] = {}  # vhost -> permission -> objects
        for change in changes:
            if change.vhost in created:  # apply grants itself .* on the vhosts it creates
                continue
            needs = list(NEEDS.get((change.action, change.kind), ()))
            obj = change.after if change.after is not None else change.before
            if change.kind == "queue" and change.action is Action.CREATE and obj is not None:
                dlx = obj.arguments.get("x-dead-letter-exchange")
                if isinstance(dlx, str) and dlx:  # dead-lettering: read on the queue, write on the DLX
                    needs += [("read", "self"), ("write", "dlx")]
            if not needs or obj is None:
                continue
            row = perms.get(change.vhost)
            for perm, which in needs:
                name, label = _target(change, obj, which)
                if row is None or not pattern_allows(row.get(perm), name):
                    items = missing.setdefault(change.vhost, {}).setdefault(perm, [])
                    if label not in items:
                        items.append(label)
        for vhost in sorted(missing):
            row = perms.get(vhost)
            if row is None:
                report.problems.append(f"user '{me.name}' has no permission on vhost '{vhost}'")
                continue
            for perm in ("configure", "write", "read"):
                items = missing[vhost].get(perm)
                if items:
                    shown = ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")
                    report.problems.append(f"vhost '{vhost}': user '{me.name}' has no {perm} permission for {shown} "
                                           f"(its {perm} pattern is {row.get(perm)!r})")

    def _check_plugins(self, changes: list[Change], report: PreflightReport) -> None:
        wanted: list[tuple[str, str | None, str]] = []  # (what, plugin or None, exchange type or "")
        for c in changes:
            if c.action in (Action.CREATE, Action.UPDATE) and c.kind == "policy" and c.after is not None:
                for key in c.after.definition:
                    plugin = P.policy_key_plugin(key)
                    if plugin:
                        wanted.append((f"policy '{c.name}' in vhost '{c.vhost}' (key '{key}')", plugin, ""))
            plugin = _config_plugin(c.kind)
            if plugin and c.action in (Action.CREATE, Action.UPDATE) and c.after is not None:
                where = f" in vhost '{c.vhost}'" if c.vhost else ""
                wanted.append((f"{c.kind.replace('_', ' ')} '{c.name}'{where}", plugin, ""))
            if c.action in (Action.CREATE, Action.MIGRATE) and c.kind == "exchange" and c.after is not None:
                xtype = c.after.type
                if xtype.startswith("x-"):
                    wanted.append((f"exchange '{c.name}' in vhost '{c.vhost}' (type '{xtype}')",
                                   P.exchange_type_plugin(xtype), xtype))
        if not wanted:
            return
        enabled, inferred, exchange_types = self._plugins()
        for what, plugin, xtype in wanted:
            if xtype and exchange_types is not None:
                if xtype in exchange_types:
                    continue
                hint = f"enable the {plugin} plugin (rabbitmq-plugins enable {plugin})" if plugin \
                    else "no plugin is known to provide it"
                report.problems.append(f"{what}: the broker has no exchange type '{xtype}': {hint}")
                continue
            if plugin is None:
                continue
            if enabled is None or (inferred and plugin not in P.PLUGIN_EXCHANGE_MARKERS):
                report.notes.append(f"{what} needs the {plugin} plugin; the broker's plugins could not be read")
            elif plugin not in enabled:
                report.problems.append(f"{what} needs the {plugin} plugin, which is not enabled on the broker "
                                       f"(rabbitmq-plugins enable {plugin})")


def _config_plugin(kind: str) -> str | None:
    """The plugin a config kind needs (topoform/config/kinds.py), or None."""
    from ..config.kinds import KINDS

    row = KINDS.get(kind)
    return row.plugin if row is not None else None


def _check_secrets(changes: list[Change], environ, report: PreflightReport) -> None:
    """Every ``{env: NAME}`` / ``{file: PATH}`` a change sends must resolve now (a saved plan holds only
    the references): each one that does not is named, never a value."""
    from ..config.secrets import resolve

    seen = set()
    for c in changes:
        if c.action not in (Action.CREATE, Action.UPDATE) or c.after is None:
            continue
        for f, secret in sorted((getattr(c.after, "secrets", None) or {}).items()):
            ref = getattr(secret, "ref", None)
            if ref is None or secret.plain is not None or (secret.given_hash and secret.hash is not None):
                continue
            if c.kind == "user" and c.action is Action.UPDATE and f not in c.diff:
                continue  # the hash the broker keeps is sent again: the secret is not read
            if (ref.source, ref.name) in seen:
                continue
            try:
                resolve(ref, environ)
            except TopoformError as exc:
                seen.add((ref.source, ref.name))
                where = f" in vhost '{c.vhost}'" if c.vhost else ""
                report.problems.append(f"{c.kind.replace('_', ' ')} '{c.name}'{where} ({f}): {exc.message}")


def _target(change: Change, obj: Any, which: str) -> tuple[str, str]:
    """(resource name the permission is checked on, label for messages)."""
    if change.kind == "binding":
        if which == "source":
            return obj.source, f"exchange '{obj.source}'"
        kind = "queue" if obj.destination_type == "queue" else "exchange"
        return obj.destination, f"{kind} '{obj.destination}'"
    if which == "partitions":  # a super stream's streams: NAME-0.. or NAME-KEY, checked on the first
        keys = list(obj.fields.get("binding_keys") or ()) or [str(i) for i in range(obj.fields.get("partitions") or 1)]
        name = f"{obj.name}-{keys[0]}"
        return name, f"stream '{name}' (partition of super stream '{obj.name}')"
    if which == "dlx":
        dlx = obj.arguments.get("x-dead-letter-exchange")
        return dlx, f"exchange '{dlx}' (dead-letter exchange of queue '{obj.name}')"
    return obj.name, f"{change.kind} '{obj.name}'"


def _probe_vhost(settings: BrokerSettings, vhost: str) -> str | None:
    """Over AMQP: "ok", "access-refused", "vhost-not-found", or None when the probe itself failed."""
    from ..broker import amqp

    try:
        conn = amqp.connect(settings, vhost, name=amqp.holder_name("preflight"), heartbeat=0)
    except BrokerError as exc:
        return exc.code if exc.code in ("access-refused", "vhost-not-found") else None
    except Exception:  # noqa: BLE001 - a probe that cannot tell says nothing
        return None
    try:
        conn.close()
    except Exception:  # noqa: BLE001
        pass
    return "ok"


def vhost_visibility(client: Any, settings: BrokerSettings, names: Iterable[str], probe=None) -> dict[str, str]:
    """For vhosts missing from this user's GET /api/vhosts: "access-refused" (exists, no permission)
    or "vhost-not-found"; only for non-administrators (an administrator sees every vhost)."""
    names = sorted(set(names))
    if not names:
        return {}
    pf = Preflight(client, settings, probe=probe)
    try:
        if pf.identity().is_admin:
            return {n: "vhost-not-found" for n in names}
    except Exception:  # noqa: BLE001 - who the user is cannot be read: nothing more to tell
        return {}
    out = {}
    for n in names:
        verdict = pf._probe(settings, n)
        if verdict in ("access-refused", "vhost-not-found"):
            out[n] = verdict
    return out


def refuse_invisible_vhosts(client: Any, settings: BrokerSettings, missing: Iterable[str], command: str,
                            probe=None) -> None:
    """Raise when a vhost the broker did not list exists but this user has no permission on it
    (``plan`` would otherwise show a create, ``import`` say "not found"). Every such vhost is named."""
    found = vhost_visibility(client, settings, missing, probe=probe)
    refused = sorted(n for n, verdict in found.items() if verdict == "access-refused")
    if refused:
        names = ", ".join(f"'{n}'" for n in refused)
        raise BrokerError(f"{command}: user '{settings.username}' has no permission on vhost{'s' if len(refused) != 1 else ''} "
                          f"{names} (it exists, but the user cannot read it)", code="vhost-not-permitted",
                          hint="grant the user configure, write and read on it (rabbitmqctl set_permissions)")
