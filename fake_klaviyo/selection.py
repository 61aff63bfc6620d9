"""Which resources a query matches, in which order: filtered and sorted rows, and events found by bisection."""

from __future__ import annotations

import heapq
import json
import math
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import filters
from .data import Account
from .events import EventStore
from .query import Query
from .spec import Endpoint, Resource

_CACHED_SELECTIONS = 16


@dataclass
class EventSelection:
    """Events matching a query: ``positions[lo:hi]`` ascending by (datetime, id)."""

    positions: Sequence[int]
    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo

    def page(self, offset: int, size: int, descending: bool) -> list[int]:
        end = min(len(self), offset + size)
        if offset >= end:
            return []
        if not descending:
            return list(self.positions[self.lo + offset : self.lo + end])
        return list(reversed(self.positions[self.hi - end : self.hi - offset]))


class Selector:
    """Selects from one account; selections that cost a pass over the events are kept for their cursors."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, EventSelection] = OrderedDict()
        self._profile_index: dict[str, int] | None = None

    def profiles(self) -> dict[str, int]:
        """Each profile id's index in the event store."""
        if self._profile_index is None:
            self._profile_index = {p: i for i, p in enumerate(self.account.events.profile_ids)}
        return self._profile_index

    def rows(self, ep: Endpoint, q: Query) -> list[Resource]:
        table = ep.filter_fields or {}
        preds = [
            filters.compile_condition(
                c, self._getter(c.field), table[c.field].get("value", {}).get("format") == "date-time"
            )
            for c in q.conds
        ]
        rows = [r for r in self._collection(ep.name) if all(p(r) for p in preds)]
        if q.sort is None:
            return rows  # the account's stored order
        fld = q.sort.lstrip("-")
        desc = q.sort.startswith("-")
        get = self._getter(fld)
        is_dt = ep.attributes.get(fld, {}).get("format") == "date-time"

        def key(r: Resource) -> Any:
            v = get(r)
            return filters.parse_datetime(v) if is_dt else v

        present = [r for r in rows if get(r) is not None]
        absent = [r for r in rows if get(r) is None]
        # Ties broken by id so pages are stable; nulls last ascending, first descending.
        present.sort(key=lambda r: (key(r), r["id"]), reverse=desc)
        absent.sort(key=lambda r: r["id"], reverse=desc)
        return absent + present if desc else present + absent

    def events(self, q: Query) -> EventSelection:
        store: EventStore = self.account.events
        metric_set: set[int] | None = None
        lo_ts, hi_ts = -(1 << 62), 1 << 62  # lo inclusive, hi exclusive
        profile: int | None = None
        for c in q.conds:
            v = c.python_value()
            if c.field == "metric_id":
                wanted = {store.metric_index[m] for m in (v if isinstance(v, list) else [v]) if m in store.metric_index}
                metric_set = wanted if metric_set is None else metric_set & wanted
            elif c.field in ("datetime", "timestamp"):
                x = v.timestamp() if c.field == "datetime" else float(v)
                if c.op == "greater-or-equal":
                    lo_ts = max(lo_ts, math.ceil(x))
                elif c.op == "greater-than":
                    lo_ts = max(lo_ts, math.floor(x) + 1)
                elif c.op == "less-than":
                    hi_ts = min(hi_ts, math.ceil(x))
                elif c.op == "less-or-equal":
                    hi_ts = min(hi_ts, math.floor(x) + 1)
            elif c.field == "profile_id":
                idx = self.profiles().get(v, -1)
                profile = idx if profile in (None, idx) else -1
            # has(profile) / has(metric): every generated event has both.

        def bounds(ts: Sequence[int]) -> tuple[int, int]:
            lo = bisect_left(ts, lo_ts)
            return lo, max(lo, bisect_left(ts, hi_ts))

        if metric_set is not None and len(metric_set) == 1 and profile is None:
            m = next(iter(metric_set))
            return EventSelection(store.by_metric[m], *bounds(store.ts_by_metric[m]))
        if metric_set is None and profile is None:
            return EventSelection(range(len(store)), *bounds(store.ts))

        key = json.dumps([q.filter_text])
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if metric_set is None:
            lo, hi = bounds(store.ts)
            positions: Sequence[int] = range(lo, hi)
        else:
            parts = []
            for m in sorted(metric_set):
                lo, hi = bounds(store.ts_by_metric[m])
                parts.append(store.by_metric[m][lo:hi])
            positions = list(heapq.merge(*parts))
        if profile is not None:
            prof = store.profile
            positions = [p for p in positions if prof[p] == profile]
        sel = EventSelection(positions, 0, len(positions))
        with self._lock:
            self._cache[key] = sel
            while len(self._cache) > _CACHED_SELECTIONS:
                self._cache.popitem(last=False)
        return sel

    def _collection(self, name: str) -> list[Resource]:
        a = self.account
        return {
            "lists": a.lists,
            "segments": a.segments,
            "campaigns": a.campaigns,
            "flows": a.flows,
            "metrics": a.metrics,
        }[name]

    def _getter(self, fld: str) -> Callable[[Resource], Any]:
        if fld == "id":
            return lambda r: r["id"]
        if fld == "messages.channel":
            channels = self.account.campaign_channels
            return lambda r: channels.get(r["id"])
        if "." in fld:
            head, rest = fld.split(".", 1)
            return lambda r: (r["attributes"].get(head) or {}).get(rest)
        return lambda r: r["attributes"].get(fld)
