"""Which profiles, or which members of a list or segment, a query matches, and in which order.

Profiles: ``id``, ``email``, ``phone_number`` and ``external_id`` pick profiles by value; ``created`` and
``updated`` compare the profile's time; the suppression fields match a profile when one of its suppressions
meets every condition on them (as a join would: ``greater-or-equal`` and ``less-than`` on list suppressions
ask for one suppression in the range). Sorts break ties by id; a value a profile lacks sorts last ascending
and first descending; a profile with several list suppressions sorts by its latest. Without a sort, by id.

Members: ascending by (joined_group_at, profile id) unless sorted descending; ``joined_group_at`` bounds
bisect, the identifiers pick profiles by value.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .consent import Suppression
from .filters import Condition
from .members import Group
from .profiles import ProfileStore
from .query import Query

_CACHED = 16
SUPPRESSION = "subscriptions.email.marketing.suppression."
LIST_SUPPRESSIONS = "subscriptions.email.marketing.list_suppressions."
_IDENTIFIERS = ("email", "phone_number", "external_id", "push_token")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "greater-than": lambda a, b: a > b,
    "greater-or-equal": lambda a, b: a >= b,
    "less-than": lambda a, b: a < b,
    "less-or-equal": lambda a, b: a <= b,
}
_MIRRORED = {
    "greater-than": "less-than",
    "greater-or-equal": "less-or-equal",
    "less-than": "greater-than",
    "less-or-equal": "greater-or-equal",
}


def profile_order(store: ProfileStore, sort: str | None) -> list[int]:
    """Every profile's index, as ``sort`` orders them."""
    field = (sort or "id").lstrip("-")
    descending = (sort or "").startswith("-")
    ids = store.ids
    value: Callable[[int], Any]
    if field in ("created", "updated"):
        value = getattr(store, field).__getitem__
    elif field == "email":
        value = store.email
    elif field == "id":
        value = ids.__getitem__
    else:
        times = Suppression.list_times if field.startswith(LIST_SUPPRESSIONS) else Suppression.global_times
        held = store.suppressions
        value = lambda i: max(times(s), default=None) if (s := held.get(i)) else None  # noqa: E731
    keyed = [(value(i), ids[i], i) for i in range(len(store))]
    present = sorted((k for k in keyed if k[0] is not None), reverse=descending)
    absent = sorted((k for k in keyed if k[0] is None), key=lambda k: k[1], reverse=descending)
    return [k[2] for k in (absent + present if descending else present + absent)]


class ProfileSelector:
    """Selects from one account's profiles; selections that cost a pass over every profile are kept, with the
    orders and the identifier indexes they were made from, until the profiles change."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], Sequence[int]] = OrderedDict()
        self._lookups: dict[str, tuple[int, dict[str, int]]] = {}
        # Orders apart from the selections: a few sorts, each reused by every selection in it, so the selections
        # cycling through the cache must not evict them.
        self._order_lock = threading.Lock()
        self._orders: dict[str | None, tuple[int, array, array | None]] = {}

    def _order(self, sort: str | None) -> tuple[array, array | None]:
        """The profiles in ``sort``'s order and, for a time sort, their times in that order, negated when
        descending so that they ascend (what bisect needs)."""
        with self._order_lock:
            version = self.store.version
            hit = self._orders.get(sort)
            if hit is None or hit[0] != version:
                order = array("I", profile_order(self.store, sort))
                field = (sort or "id").lstrip("-")
                keys = None
                if field in ("created", "updated"):
                    column, sign = getattr(self.store, field), -1 if (sort or "").startswith("-") else 1
                    keys = array("q", (sign * column[i] for i in order))
                hit = self._orders[sort] = (version, order, keys)
            return hit[1], hit[2]

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Sequence[int]]) -> Sequence[int]:
        key = (self.store.version, *key)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        made = make()
        with self._lock:
            self._cache[key] = made
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return made

    def lookup(self, field: str, value: str) -> int | None:
        """The profile whose ``field`` (``id`` or an identifier) is ``value``: no two profiles share one."""
        if field in ("id", "profile_id"):
            return self.store.position(value)
        version, table = self._lookups.get(field, (-1, {}))
        if version != self.store.version:
            get = getattr(self.store, field)
            table = {v: i for i in range(len(self.store)) if (v := get(i)) is not None}
            self._lookups[field] = (self.store.version, table)
        return table.get(value)

    def _picked(self, conds: list[Condition]) -> set[int] | None:
        """The profiles every by-value condition names, or None if no condition does."""
        picked: set[int] | None = None
        for c in conds:
            if c.field in ("id", "profile_id", *_IDENTIFIERS):
                v = c.python_value()
                found = {i for x in (v if isinstance(v, list) else [v]) if (i := self.lookup(c.field, x)) is not None}
                picked = found if picked is None else picked & found
        return picked

    def profiles(self, q: Query) -> Sequence[int]:
        """The indexes of the profiles a /api/profiles query matches, in its order."""
        bisected = self._bisected(q)
        if bisected is not None:
            return bisected
        return self._cached(("profiles", q.filter_text, q.sort), lambda: self._select(q))

    def _bisected(self, q: Query) -> Sequence[int] | None:
        """A query whose only conditions are bounds on the time it sorts by: a slice of that order, found by
        bisecting (a windowed read asks for many such windows, each a page at a time); None for any other."""
        field = (q.sort or "").lstrip("-")
        if field not in ("created", "updated") or any(c.field != field or c.op not in _COMPARE for c in q.conds):
            return None
        order, keys = self._order(q.sort)
        assert keys is not None
        descending = q.sort is not None and q.sort.startswith("-")
        lo, hi = 0, len(keys)
        for c in q.conds:
            bound, op = _seconds(c), c.op
            if descending:  # keys are negated times: the bound and the comparison turn around
                bound, op = -bound, _MIRRORED[op]
            if op == "greater-than":
                lo = max(lo, bisect_right(keys, bound))
            elif op == "greater-or-equal":
                lo = max(lo, bisect_left(keys, bound))
            elif op == "less-than":
                hi = min(hi, bisect_left(keys, bound))
            else:
                hi = min(hi, bisect_right(keys, bound))
        return memoryview(order)[lo : max(lo, hi)]

    def _select(self, q: Query) -> Sequence[int]:
        store = self.store
        preds: list[Callable[[int], bool]] = []
        for c in q.conds:
            if c.field in ("created", "updated"):
                column, bound, cmp = getattr(store, c.field), _seconds(c), _COMPARE[c.op]
                preds.append(lambda i, column=column, bound=bound, cmp=cmp: cmp(column[i], bound))
        for prefix, times in ((SUPPRESSION, _global), (LIST_SUPPRESSIONS, _per_list)):
            mine = [c for c in q.conds if c.field.startswith(prefix)]
            if mine:
                preds.append(_suppression_filter(store.suppressions, mine, prefix, times))
        picked = self._picked(q.conds)
        order: Sequence[int] = self._order(q.sort)[0]
        if picked is not None:
            rank = {i: k for k, i in enumerate(order) if i in picked}
            order = sorted(picked, key=rank.__getitem__)
        if not preds:
            return order
        return array("I", (i for i in order if all(p(i) for p in preds)))

    def members(self, group: Group, q: Query) -> Sequence[int]:
        """Positions in ``group`` of the members a members query matches, in its order."""
        lo, hi = 0, len(group.joined)
        for c in q.conds:
            if c.field == "joined_group_at":
                bound = _seconds(c)
                if c.op == "greater-than":
                    lo = max(lo, bisect_right(group.joined, bound))
                elif c.op == "greater-or-equal":
                    lo = max(lo, bisect_left(group.joined, bound))
                elif c.op == "less-than":
                    hi = min(hi, bisect_left(group.joined, bound))
                else:
                    hi = min(hi, bisect_right(group.joined, bound))
        positions: Sequence[int] = range(lo, max(lo, hi))
        picked = self._picked(q.conds)
        if picked is not None:
            positions = [k for k in positions if group.profiles[k] in picked]
        return positions[::-1] if q.sort == "-joined_group_at" else positions


def _seconds(c: Condition) -> float:
    value = c.python_value()
    assert isinstance(value, datetime)  # the spec's date-time fields take datetimes only (filters.validate)
    return value.timestamp()


def _global(s: Suppression) -> list[tuple[str | None, str, int]]:
    return [(None, s.suppressed[0], s.suppressed[1])] if s.suppressed else []


def _per_list(s: Suppression) -> list[tuple[str | None, str, int]]:
    return list(s.lists)


def _suppression_filter(
    held: dict[int, Suppression],
    conds: list[Condition],
    prefix: str,
    entries: Callable[[Suppression], list[tuple[str | None, str, int]]],
) -> Callable[[int], bool]:
    """Whether one of a profile's suppressions, as (list id, reason, timestamp), meets every condition."""
    tests: list[Callable[[tuple[str | None, str, int]], bool]] = []
    for c in conds:
        part = c.field[len(prefix) :]
        if part == "timestamp":
            bound, cmp = _seconds(c), _COMPARE[c.op]
            tests.append(lambda e, bound=bound, cmp=cmp: cmp(e[2], bound))
        else:  # reason or list_id: equals
            want, k = c.python_value(), 1 if part == "reason" else 0
            tests.append(lambda e, want=want, k=k: e[k] == want)

    def matches(i: int) -> bool:
        s = held.get(i)
        return s is not None and any(all(t(e) for t in tests) for e in entries(s))

    return matches
