"""Two objects (or two topologies) -> field-level differences with dotted paths.

Field paths are what users see in plans: ``durable``, ``type``,
``arguments.x-message-ttl``, ``definition.max-length``. DeepDiff computes the
structured differences of the two objects' plain forms; a type change (``60000`` vs
``"60000"``, ``1`` vs ``true``) is a difference, because the broker compares types
(RABBITMQ-SEMANTICS.md 1.3). Integer widths do not exist in Python, matching the
broker's one ``int`` class.

Pure: imports only model and deepdiff.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


from ..model import Args, Resource, Vhost, thaw


class _Absent:
    """The value of a field or argument that one side does not have."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT = _Absent()

# Fields whose values are mappings diffed key by key (one path per key).
_MAPPING_FIELDS = ("arguments", "definition")


@dataclass(frozen=True)
class FieldDiff:
    """One differing field: ``path`` and the value on each side (``ABSENT`` when missing)."""

    path: str
    live: Any
    desired: Any


def _plain(resource: Resource) -> dict:
    out = resource.to_dict()
    if not isinstance(resource, Vhost):
        out.pop("vhost", None)  # part of the key, never a difference
    return out


def _top(path_list: list) -> str:
    """``['arguments', 'x-message-ttl', 0]`` -> ``arguments.x-message-ttl`` (nested values stop at the key)."""
    head = str(path_list[0])
    if head in _MAPPING_FIELDS and len(path_list) > 1:
        return f"{head}.{path_list[1]}"
    return head


def get_path(resource: Resource | None, path: str) -> Any:
    """The value at a field path of a resource, or ``ABSENT``."""
    if resource is None:
        return ABSENT
    head, _, rest = path.partition(".")
    value = getattr(resource, head, ABSENT)
    if rest:
        if isinstance(value, Args) and rest in value:
            return thaw(value[rest])
        return ABSENT
    return ABSENT if value is None else thaw(value)


def field_diffs(live: Resource, desired: Resource, *, ignore_unset: bool = False) -> tuple[FieldDiff, ...]:
    """Every differing field of two versions of the same object, sorted by path.

    ``ignore_unset`` (vhosts): a setting that either side leaves ``None`` is not managed
    or not known, so it is not a difference.
    """
    a, b = _plain(live), _plain(desired)
    if ignore_unset:
        for k in list(a):
            if a.get(k) is None or b.get(k) is None:
                a.pop(k, None)
                b.pop(k, None)
    if a == b and _same_types(a, b):
        return ()
    from deepdiff import DeepDiff  # imported on the first difference: a no-change or create-only plan never needs it

    # threshold_to_diff_deeper=0: always report key by key, even when every key differs
    dd = DeepDiff(a, b, ignore_order=False, verbose_level=0, threshold_to_diff_deeper=0)
    paths: set[str] = set()
    for report in ("values_changed", "type_changes", "dictionary_item_added", "dictionary_item_removed",
                   "iterable_item_added", "iterable_item_removed"):
        for item in dd.tree.get(report, ()):
            plist = item.path(output_format="list")
            if plist:
                paths.add(_top(plist))
    return tuple(FieldDiff(p, get_path(live, p), get_path(desired, p)) for p in sorted(paths))


def _same_types(a: Any, b: Any) -> bool:
    """``==`` in Python says ``1 == True == 1.0``; the broker does not (checked recursively)."""
    if type(a) is not type(b) and not (isinstance(a, int) and isinstance(b, int)
                                       and not isinstance(a, bool) and not isinstance(b, bool)):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_types(x, y) for x, y in zip(a, b))
    return True


@dataclass(frozen=True)
class Difference:
    """One key whose object differs between the sides: only desired, only live, or both but different."""

    kind: str
    key: tuple
    desired: Resource | None
    live: Resource | None
    fields: tuple[FieldDiff, ...] = ()

    @property
    def only_desired(self) -> bool:
        return self.live is None

    @property
    def only_live(self) -> bool:
        return self.desired is None


def diff_mappings(kind: str, desired: dict, live: dict, equal=None, fields=None) -> list[Difference]:
    """Compare two ``key -> object`` mappings. ``equal(d, l)`` and ``fields(l, d)`` may be specialized."""
    equal = equal or (lambda d, l: d == l)
    fields = fields or field_diffs
    out: list[Difference] = []
    for key, d in desired.items():
        l = live.get(key)
        if l is None:
            out.append(Difference(kind, key, d, None))
        elif not equal(d, l):
            found = fields(l, d)
            if found:
                out.append(Difference(kind, key, d, l, found))
    for key, l in live.items():
        if key not in desired:
            out.append(Difference(kind, key, None, l))
    return out


def diff_bindings(desired: Iterable, live: Iterable) -> list[Difference]:
    """Bindings cannot change, only appear or disappear: a set difference on all their fields."""
    d, l = set(desired), set(live)
    return ([Difference("binding", b.key, b, None) for b in d - l]
            + [Difference("binding", b.key, None, b) for b in l - d])
