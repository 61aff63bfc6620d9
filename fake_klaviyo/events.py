"""Events, generated column-wise into arrays and materialised on demand, so a million stay cheap to build and hold."""

from __future__ import annotations

import random
import time
from array import array
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .clock import EVENT_SPAN_DAYS, GENERATOR_NOW, UTC
from .ids import ulid
from .lazy import LazyResources
from .samples import CLIENTS, DOMAINS, PRODUCTS, SUBJECTS, URLS
from .spec import Resource

# Event id layout (a ULID): 48-bit ms time, then 80 bits derived bijectively from the
# event's generation index, so ids are unique without a set and sort like (time, id).
_MASK54 = (1 << 54) - 1
_MULT = 0x9E3779B97F4A7C15 & _MASK54 | 1
# Where `new` events lie: the day after GENERATOR_NOW, after every other event but the future ones.
NEW_EVENTS_SPAN = 86400


class EventView(LazyResources):
    """Events at some of a store's positions, in the order given (a metric's: ascending by (datetime, id))."""

    def __init__(self, store: EventStore, positions: Sequence[int]) -> None:
        self.store = store
        self._positions = positions

    def positions(self) -> Sequence[int]:
        return self._positions

    def make(self, position: int) -> Resource:
        return self.store.resource(position)


class EventStore(EventView):
    """All events, sorted ascending by (datetime, id); items materialise on access."""

    def __init__(
        self,
        seed: int,
        ts: array,
        sub: array,
        metric: array,
        profile: array,
        metric_ids: list[str],
        metric_kinds: list[str],
        profile_ids: list[str],
        email_sources: list[tuple[str, str, str | None]],
    ) -> None:
        self.seed = seed
        # " " as Klaviyo writes an event's datetime, "T" as its spec does (`spec_times`).
        self.datetime_sep = " "
        self.ts = ts  # int seconds
        self.sub = sub  # top 10 bits: millisecond of the id; low 54 bits: unique per event
        self.metric = metric  # index into metric_ids
        self.profile = profile  # index into profile_ids
        self.metric_ids = metric_ids
        self.metric_index = {m: i for i, m in enumerate(metric_ids)}
        self.metric_kinds = metric_kinds
        self.profile_ids = profile_ids
        self.email_sources = email_sources  # (message id, campaign/flow name, flow id or None)
        # Per-metric positions (ascending) and their timestamps, for bisecting time ranges.
        self.by_metric: list[array] = [array("I") for _ in metric_ids]
        self.ts_by_metric: list[array] = [array("q") for _ in metric_ids]
        for pos, (m, t) in enumerate(zip(metric, ts, strict=True)):
            self.by_metric[m].append(pos)
            self.ts_by_metric[m].append(t)
        super().__init__(self, range(len(ts)))

    def event_id(self, pos: int) -> str:
        sub = self.sub[pos]
        low = sub & _MASK54
        ms_time = self.ts[pos] * 1000 + (sub >> 54)
        return ulid((ms_time << 80) | (low << 26) | ((low * 0x2545F491) >> 20 & 0x3FFFFFF))

    def metric_id(self, pos: int) -> str:
        return self.metric_ids[self.metric[pos]]

    def profile_id(self, pos: int) -> str:
        return self.profile_ids[self.profile[pos]]

    def resource(self, pos: int) -> Resource:
        ts = self.ts[pos]
        sub = self.sub[pos]
        low = sub & _MASK54
        ms = sub >> 54
        # A version-1 shaped UUID carrying the event time, unique via the low 54 bits: the
        # fields of uuid.UUID(fields=...), formatted as str() of it would.
        t100 = ts * 10_000_000 + ms * 10_000 + 0x01B21DD213814000
        ev_uuid = "%08x-%04x-%04x-%02x%02x-%012x" % (  # noqa: UP031 (faster than str.format)
            t100 & 0xFFFFFFFF,
            (t100 >> 32) & 0xFFFF,
            ((t100 >> 48) & 0x0FFF) | 0x1000,
            0x80 | (low >> 48),
            ms & 0xFF,
            low & 0xFFFFFFFFFFFF,
        )
        m = self.metric[pos]
        return {
            "type": "event",
            "id": self.event_id(pos),
            "attributes": {
                "timestamp": ts,
                "event_properties": self._properties(self.metric_kinds[m], low),
                "datetime": datetime.fromtimestamp(ts, UTC).isoformat(sep=self.datetime_sep),
                "uuid": ev_uuid,
            },
            "relationships": {
                "profile": {"data": {"type": "profile", "id": self.profile_ids[self.profile[pos]]}},
                "metric": {"data": {"type": "metric", "id": self.metric_ids[m]}},
            },
        }

    def _properties(self, kind: str, low: int) -> dict[str, Any]:
        rng = random.Random(low ^ (self.seed << 56))
        props: dict[str, Any]
        if kind.startswith("email:"):
            msg, name, flow = rng.choice(self.email_sources) if self.email_sources else ("", "", None)
            props = {
                "Subject": rng.choice(SUBJECTS),
                "Campaign Name": name,
                "$message": msg,
                "Email Domain": rng.choice(DOMAINS),
                "$_cohort$message_send_cohort": f"{msg}:{low % 9973}",
            }
            if flow is not None:
                props["$flow"] = flow  # only flow sends carry $flow: keys come and go
            what = kind[6:]
            if what in ("opened", "clicked"):
                client = rng.choice(CLIENTS)
                props.update({"Client Name": client[0], "Client OS": client[1], "Client Type": client[2]})
                props["machine_open"] = rng.random() < 0.3 if what == "opened" else None
            if what == "clicked":
                props["URL"] = rng.choice(URLS)
            elif what == "bounced":
                props["Bounce Type"] = rng.choice(["hard", "soft", "block", None])
            elif what == "dropped":
                props["Drop Reason"] = rng.choice(["Previously Bounced", "Previously Unsubscribed", "Invalid Email"])
        elif kind == "order":
            items = [
                {
                    "ProductName": rng.choice(PRODUCTS),
                    "Quantity": rng.randint(1, 4),
                    "ItemPrice": round(rng.uniform(0.5, 300), 2),
                    "SKU": None,
                }
                for _ in range(rng.randint(0, 3))
            ]
            props = {
                "$value": round(sum(i["Quantity"] * i["ItemPrice"] for i in items), 2),
                "$currency_code": rng.choice(["USD", "EUR", "JPY"]),
                "Items": items,
                "ItemNames": [i["ProductName"] for i in items],
                "Discount Codes": [],
                "$extra": {"shipping": {"city": "Montréal", "zip": None}, "line_items": []},
            }
        elif kind == "site":
            props = {"$page": rng.choice(URLS), "$browser": "Safari", "$os": rng.choice(["iOS", "Mac OS X", None])}
        else:
            props = {
                "Ünïcode Key 🔑": 'значение "quoted" \\ back',
                "value": rng.choice([0, -1, 3.14, 1e-7, 2**53 + 1, None]),
                "nested": {"deep": {"list": [1, 2.5, None, "x", {"k": "v"}], "empty": {}}},
            }
        if rng.random() < 0.2:
            props["Note\tTab"] = rng.choice([None, "", "line1\nline2", "📦 עברית 中文"])
        return props


def generate_events(
    rng: random.Random,
    seed: int,
    plan: list[tuple[int, int]],
    email_idx: list[int],
    future: int,
    metric_ids: list[str],
    kinds: list[str],
    email_sources: list[tuple[str, str, str | None]],
    pinned: list[tuple[int, int]],
    pinned_rng: random.Random,
    new: int = 0,
    new_rng: random.Random | None = None,
    timed: Sequence[int] = (),
    timed_rng: random.Random | None = None,
    span: int = EVENT_SPAN_DAYS * 86400,
    moments: Callable[[int, int], Callable[[Callable[[], float]], int] | None] | None = None,
) -> EventStore:
    """Events per ``plan`` ((metric index, count) pairs) and ``future`` ones, then the ``pinned`` metrics' events
    from ``pinned_rng``, then ``new`` events per email metric from ``new_rng``, dated in the ``NEW_EVENTS_SPAN``
    after the others (which lie before ``GENERATOR_NOW``); the profiles are as many as ``plan`` and ``future``
    call for, whatever ``pinned`` and ``new`` add. Last, from ``timed_rng``, an event at each of the ``timed`` times
    (epoch seconds), on the email metrics in turn. ``plan``'s events lie in the ``span`` seconds before
    ``GENERATOR_NOW``, drawn by ``moments(start, end)`` if it gives a way (``layout.EventLayout.moments``)."""
    total = sum(c for _, c in plan) + future
    n_profiles = max(20, min(50_000, total // 8))
    profile_ids = [
        ulid(
            (int((GENERATOR_NOW.timestamp() - rng.randrange(1, 3 * 365 * 86400)) * 1000) << 80)
            | (i << 40)
            | rng.getrandbits(40)
        )
        for i in range(n_profiles)
    ]

    ts, sub, met, prof = array("q"), array("Q"), array("H"), array("I")
    off = rng.getrandbits(54)
    xmask = rng.getrandbits(54)
    end = int(GENERATOR_NOW.timestamp())
    start = end - span
    rand, randrange = rng.random, rng.randrange
    i = 0

    def add(t: int, m: int) -> None:
        nonlocal i
        ts.append(t)
        met.append(m)
        prof.append(randrange(n_profiles))
        sub.append((int(rand() * 1000) << 54) | ((((i + off) * _MULT) & _MASK54) ^ xmask))
        i += 1

    def spread(
        counts: list[tuple[int, int]],
        first: int = start,
        last: int = end,
        moment: Callable[[Callable[[], float]], int] | None = None,
    ) -> None:
        for m, count in counts:
            left = count
            while left > 0:
                t = moment(rand) if moment else first + randrange(last - first)
                # Bursts of 3-10 events in the same second test page and bookmark boundaries.
                k = 1 if rand() < 0.55 else min(left, 3 + randrange(8))
                for _ in range(k):
                    add(t, m)
                left -= k

    spread(plan, moment=moments(start, end) if moments else None)
    if future and email_idx:
        now = int(time.time())
        for j in range(future):
            add(now + 3600 + randrange(30 * 86400), email_idx[j % len(email_idx)])
    # The pinned metrics' events come last, from their own generator (add and spread look rand and randrange
    # up when called), so that the events above are the same with or without them.
    rand, randrange = pinned_rng.random, pinned_rng.randrange
    spread(pinned)
    # Events that arrived after the rest of the account was read (an incremental run's new data), from a generator
    # of their own for the same reason: the account without them is the same account.
    if new and new_rng is not None:
        rand, randrange = new_rng.random, new_rng.randrange
        spread([(m, new) for m in email_idx], end, end + NEW_EVENTS_SPAN)
    if timed and timed_rng is not None and email_idx:
        rand, randrange = timed_rng.random, timed_rng.randrange
        for j, t in enumerate(timed):
            add(t, email_idx[j % len(email_idx)])

    keys = [(t << 64) | s for t, s in zip(ts, sub, strict=True)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    del keys
    return EventStore(
        seed,
        array("q", (ts[j] for j in order)),
        array("Q", (sub[j] for j in order)),
        array("H", (met[j] for j in order)),
        array("I", (prof[j] for j in order)),
        metric_ids,
        kinds,
        profile_ids,
        email_sources,
    )
