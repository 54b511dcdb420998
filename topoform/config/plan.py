"""Plan rules for the config kinds: desired and live ConfigStates -> Changes (pure, no I/O).

Scope (SPEC section 8): users and global parameters only when named; deleting a user
needs ``prune_users`` and never touches the connected user or the last administrator;
a vhost's permissions, topic permissions, limits, operator policies, federation objects,
shovels and super streams are managed when the vhost has that key in the files, and then
follow ``--prune`` like the rest of it. The connected user's own permissions are never
deleted. Every config kind changes in place (``update``), except a super stream, whose
partitions and arguments cannot change (``blocked``). Passwords compare by checking the
broker's salted hash; the plan names the field (``password``), never a value.
"""
from __future__ import annotations

from typing import Iterable

from ..model import Args, thaw
from ..planner.plan import Action, Change
from . import kinds as K
from .load import EMPTY, ConfigState
from .model import GLOBAL, ConfigObject
from .secrets import SHA256, check_password


def value_diffs(have: ConfigObject, want: ConfigObject) -> list[str]:
    """Differing field paths (``definition.max-length``, ``limits.max-queues``, ``password``)."""
    paths = []
    # a secret given as {env}/{file} and not read (diff, show): compared by _secret_differs alone,
    # which says "no change" for it (docs/workflow.md), not as a field the files lack
    unread = {f for f, s in want.secrets.items() if s.ref is not None and s.plain is None and s.hash is None}
    for k in sorted(set(have.fields) | set(want.fields)):
        if k in unread:
            continue
        a, b = have.fields.get(k), want.fields.get(k)
        if isinstance(a, Args) and isinstance(b, Args):
            paths += [f"{k}.{kk}" for kk in sorted(set(a) | set(b))
                      if (kk in a) != (kk in b) or Args({"v": a.get(kk)}) != Args({"v": b.get(kk)})]
        elif Args({"v": a}) != Args({"v": b}) or (k in have.fields) != (k in want.fields):
            paths.append(k)
    for f in K.KINDS[want.kind].secret_fields:
        if _secret_differs(want, have, f):
            if f not in paths:
                paths.append(f)
    return paths


def _secret_differs(want: ConfigObject, have: ConfigObject, f: str) -> bool:
    w = want.secrets.get(f)
    h = have.secrets.get(f)
    if want.kind == "user":
        if w is None:
            return False  # the password is not managed
        stored, algorithm = (h.hash, h.algorithm) if h is not None else (None, None)
        if w.given_hash:
            if w.hash is None:
                return False  # unknown here (a plan file): apply reads it again
            return w.hash != stored or (w.algorithm or SHA256) != (algorithm or SHA256)
        if w.plain is None:
            return False
        if w.algorithm and w.algorithm != (algorithm or SHA256):
            return True
        return not check_password(w.plain, stored, algorithm)
    want_plain = w.plain if w is not None else want.fields.get(f)
    have_plain = h.plain if h is not None else have.fields.get(f)
    if w is not None and w.plain is None:
        return False
    return thaw(want_plain) != thaw(have_plain)


def plan_config(desired: ConfigState | None, live: ConfigState | None, vhosts: Iterable[str], *,
                prune: bool = False, prune_users: bool = False, connected_user: str | None = None,
                queue_counts: dict | None = None) -> tuple[list[Change], list[ConfigObject], list[str]]:
    """``(changes, unmanaged, problems)``. ``problems``: kinds the files manage but the broker would not
    let the connected user read (the caller refuses to plan)."""
    desired = desired or EMPTY
    live = live or EMPTY
    managed_vhosts = set(vhosts)
    changes: list[Change] = []
    unmanaged: list[ConfigObject] = []
    problems: list[str] = []
    managed = {m for m in desired.managed if m[0] not in K.VHOST_KINDS or m[1] in managed_vhosts}
    for kind, why in sorted(live.unreadable.items()):
        if any(m[0] == kind for m in managed) or (kind == "user" and prune_users):
            problems.append(f"cannot read {kind}s: {why}")
    for plugin in sorted(live.missing_plugins):
        users = sorted({m[0] for m in managed if K.KINDS[m[0]].plugin == plugin})
        if users:
            problems.append(f"the broker lacks the {plugin} plugin, which {', '.join(users)} needs")

    want = {k: o for k, o in desired.objects.items() if (o.kind, o.vhost if o.vhost else o.name) in managed
            or (o.kind in K.VHOST_KINDS and (o.kind, o.vhost) in managed)}
    have = live.objects
    known_users = _known_users(desired, live)
    for key in sorted(want, key=repr):
        w = want[key]
        h = have.get(key)
        if w.kind in ("user_limit", "vhost_limit") and h is None:
            if not w.fields.get("limits"):
                continue
        if h is None:
            if w.kind in ("permission", "topic_permission") and known_users is not None \
                    and _user_of(w) not in known_users:
                changes.append(Change(Action.BLOCKED, w.kind, w.vhost, w.name, after=w,
                                      reason=f"User '{_user_of(w)}' does not exist on the broker and the files do "
                                             "not declare it: the broker would refuse the permission (400 "
                                             "vhost_or_user_not_found). Declare the user under users:, or create "
                                             "it first."))
                continue
            changes.append(_create(w, queue_counts))
            continue
        paths = value_diffs(h, w)
        if not paths:
            continue
        row = K.KINDS[w.kind]
        fixed = [p for p in paths if p.split(".")[0] in row.immutable]
        if fixed:
            changes.append(Change(Action.BLOCKED, w.kind, w.vhost, w.name, before=h, after=w, diff=tuple(paths),
                                  reason=f"The broker cannot change {fixed[0]} of an existing {w.kind}; delete it "
                                         "and declare it again (its streams hold messages)."))
            continue
        if w.kind == "vhost_limit":
            blocked = _refusing_limit(w, queue_counts)
            if blocked:
                changes.append(Change(Action.BLOCKED, w.kind, w.vhost, w.name, before=h, after=w, diff=tuple(paths),
                                      reason=blocked))
                continue
            w = _limit_phase(w, h, queue_counts)
        changes.append(Change(Action.UPDATE, w.kind, w.vhost, w.name, before=h, after=w, diff=tuple(paths),
                              reason=_update_reason(w, paths)))

    # live-only objects
    admins_left = _admins(desired, live, want)
    for key in sorted(have, key=repr):
        h = have[key]
        if key in want or h.kind == "super_stream":
            continue
        if h.kind in K.VHOST_KINDS:
            if h.vhost not in managed_vhosts or (h.kind, h.vhost) not in managed:
                continue
            if h.kind in ("permission", "topic_permission") and _user_of(h) == connected_user:
                continue  # topoform's own access: never pruned, never reported
            if not prune:
                unmanaged.append(h)
                continue
            changes.append(Change(Action.DELETE, h.kind, h.vhost, h.name, before=h,
                                  reason="Not in the files; --prune deletes it."))
        elif h.kind == "user" and prune_users:
            if h.name == connected_user:
                continue
            if "administrator" in (h.fields.get("tags") or ()) and admins_left <= 1:
                changes.append(Change(Action.BLOCKED, "user", GLOBAL, h.name, before=h,
                                      reason="Deleting it would leave the broker without an administrator."))
                continue
            if "administrator" in (h.fields.get("tags") or ()):
                admins_left -= 1
            changes.append(Change(Action.DELETE, "user", GLOBAL, h.name, before=h,
                                  reason="Not in the files; --prune-users deletes it (its permissions go with it)."))
        elif h.kind == "user_limit" and ("user_limit", h.name) in managed:
            changes.append(Change(Action.DELETE, "user_limit", GLOBAL, h.name, before=h,
                                  reason="The files give the user no limits."))
    return changes, unmanaged, problems


def _known_users(desired: ConfigState, live: ConfigState) -> set | None:
    """The users a permission may name: the broker's and the files' (created first), or None when the
    broker's users were not read (no administrator, or an export without users)."""
    if "user" in live.unreadable:
        return None
    names = {o.name for o in live.objects.values() if o.kind == "user"}
    if not names:
        return None  # a broker always has a user (the connected one): nothing was read
    return names | {o.name for o in desired.objects.values() if o.kind == "user"}


def _user_of(obj: ConfigObject) -> str:
    return obj.fields.get("user") if obj.kind == "topic_permission" else obj.name


def _admins(desired: ConfigState, live: ConfigState, want: dict) -> int:
    """Administrators the broker keeps after the files' user changes (before prunes)."""
    names = set()
    for o in live.objects.values():
        if o.kind == "user" and "administrator" in (o.fields.get("tags") or ()):
            names.add(o.name)
    for o in want.values():
        if o.kind == "user":
            (names.add if "administrator" in (o.fields.get("tags") or ()) else names.discard)(o.name)
    return len(names)


def _create(w: ConfigObject, queue_counts: dict | None) -> Change:
    if w.kind == "vhost_limit":
        blocked = _refusing_limit(w, queue_counts)
        if blocked:
            return Change(Action.BLOCKED, w.kind, w.vhost, w.name, after=w, reason=blocked)
    return Change(Action.CREATE, w.kind, w.vhost, w.name, after=w)


LOCK_QUEUES = 1  # apply's lock, the exclusive queue topoform.lock (topoform/apply/lock.py), counts as a queue


def _refusing_limit(w: ConfigObject, queue_counts: dict | None) -> str:
    limit = (w.fields.get("limits") or {}).get("max-queues")
    count = (queue_counts or {}).get(w.vhost, 0)
    if isinstance(limit, int) and 0 <= limit < count:
        return (f"max-queues {limit} is lower than the {count} queues the files declare in vhost '{w.vhost}': "
                "the broker would refuse them.")
    if isinstance(limit, int) and 0 <= limit < count + LOCK_QUEUES:
        return (f"max-queues {limit} leaves no room for topoform's apply lock (the exclusive queue topoform.lock) "
                f"next to the {count} queues the files declare in vhost '{w.vhost}': every later apply would fail "
                f"to take the lock; allow at least {count + LOCK_QUEUES}.")
    return ""


def _limit_phase(w: ConfigObject, h: ConfigObject, queue_counts: dict | None) -> ConfigObject | None:
    """A change that only raises or removes limits runs before the queues; one that lowers them, after."""
    new, old = w.fields.get("limits") or {}, h.fields.get("limits") or {}

    def looser(k):
        a, b = old.get(k), new.get(k)
        return b is None or b == -1 or (isinstance(a, int) and isinstance(b, int) and a != -1 and b >= a)

    return w.replace(early=all(looser(k) for k in set(old) | set(new)))


def _update_reason(w: ConfigObject, paths: list[str]) -> str:
    if w.kind == "user":
        return "The broker updates users in place; the password hash it keeps is sent again." \
            if "password" not in paths else "The broker updates users in place; the password changes."
    if w.kind == "shovel":
        return "The broker updates shovels in place (the shovel restarts)."
    return ""
