"""Deterministic, deliberately nasty Klaviyo account data for the fake server.

Resources are shaped from the spec's attribute schemas (see endpoints.json) and held
as the API would return them, minus ``links`` and to-many relationships, which the
server adds per request. Events are stored column-wise in arrays and materialised on
demand, so a million of them stay cheap to build and to hold.
"""

from __future__ import annotations

import random
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, overload

from .spec import ENDPOINTS, ENUMS

UTC = timezone.utc
# Fixed "now" of the generator: data never depends on the wall clock (except future_events).
GENERATOR_NOW = datetime(2026, 1, 1, tzinfo=UTC)
EVENT_SPAN_DAYS = 730

Resource = dict[str, Any]

# Klaviyo's built-in email metrics (Title Case, as connectors list them).
EMAIL_METRICS: tuple[str, ...] = (
    "Bounced Email",
    "Clicked Email",
    "Opened Email",
    "Received Email",
    "Dropped Email",
    "Marked Email as Spam",
)
# Spelled as Klaviyo's current help centre does, so name matching must ignore case.
_SENTENCE_CASE = {"Marked Email as Spam": "Marked email as spam"}

INTEGRATION_KLAVIYO: dict[str, Any] = {
    "object": "integration",
    "id": "0rG4eQ",
    "key": "klaviyo",
    "name": "Klaviyo",
    "category": "Internal",
}
INTEGRATION_API: dict[str, Any] = {
    "object": "integration",
    "id": "7FtS4J",
    "key": "api",
    "name": "API",
    "category": "API",
}
INTEGRATION_SHOPIFY: dict[str, Any] = {
    "object": "integration",
    "id": "0eMvjm",
    "key": "shopify",
    "name": "Shopify",
    "category": "eCommerce",
}

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Names that break naive code: emoji, CJK, RTL, accents, quotes, backslashes, odd spaces.
_NAMES = [
    "Newsletter",
    "VIP 🌟 Customers",
    "Clientes de España",
    "日本のお客様",
    "عملاء مميزون",
    "לקוחות חוזרים",
    "Ünïcödé «Guillemets»",
    'He said "hi"',
    "Back\\slash\\List",
    "Préférences été",
    "Emoji 🎉🔥",
    "Ελληνικοί πελάτες",
    "Ñandú & Co",
    "Zero\u200bwidth joiner",
    "  leading spaces",
    "trailing space ",
    "'single' quotes",
    "Müller\u2019s Öko-Liste",
    "中文 订阅者",
    "한국 고객",
    "Русские клиенты",
    "Sample Data List",
    "Preview List",
    "SMS Subscribers",
    "Shopify Customers",
    "🙂",
    "Percent %20 & ampersand",
    "Comma, (parens) [brackets]",
]
_CAMPAIGN_NAMES = [
    "Black Friday 🛍️",
    "Soldes d'été",
    "春のセール",
    "تخفيضات الصيف",
    'The "Big" Sale',
    "Back\\slash promo",
    "Weekly Newsletter #",
    "Copy of Weekly Newsletter #",
    "Ünïcödé launch",
    "Рассылка",
    "Cyber Monday ⚡",
    "Welcome back, friend",
    "Restock: 🧦 socks",
    "Holiday 🎄 Gift Guide",
    "עדכון חודשי",
    "Flash sale 50% off",
    "Test campaign (do not send)",
]
_FLOW_NAMES = [
    "Welcome Series 👋",
    "Abandoned Cart \u2013 Reminder",
    "Post-Purchase «Merci»",
    "Winback 再来店",
    "Browse Abandonment",
    "Birthday 🎂",
    'Flow "quoted"',
    "Back\\slash Flow",
    "Sunset unengaged",
    "Back in Stock",
    "Price Drop 📉",
    "Customer Thank You",
    "استعادة السلة",
    "VIP ✨ Tier",
]
_SUBJECTS = [
    "Your cart misses you 🛒",
    "¡Última oportunidad!",
    "新着アイテムのお知らせ",
    "50% off — today only",
    'Don\'t miss "the drop"',
    "C:\\Users\\you deserve a treat",
    "Привет! Новая коллекция",
    "🎁🎁🎁",
    "تخفيضات حصرية لك",
    "Merci pour votre commande n°1234",
    "Re: your order",
    "",
]
_DOMAINS = ["gmail.com", "yahoo.co.jp", "outlook.com", "icloud.com", "example.org", "xn--bcher-kva.example"]
_CLIENTS = [
    ("Apple Mail", "iOS", "Mobile"),
    ("Gmail", "Android", "Mobile"),
    ("Outlook", "Windows", "Desktop"),
    ("Gmail", "Web", "Webmail"),
    ("Thunderbird", "Linux", "Desktop"),
]
_URLS = [
    "https://shop.example/products/chaussures-été?utm_source=klaviyo&utm_medium=email",
    "https://shop.example/コレクション/new",
    "https://shop.example/cart?items=1,2,3&promo=%F0%9F%8E%89",
    'https://shop.example/a"quote',
    "https://shop.example/",
]
_CUSTOM_METRIC_NAMES = [
    "Événement personnalisé",
    "カスタム イベント",
    "Lead 🚀 Captured",
    'Quote "this" metric',
    "back\\slash metric",
    "Viewed Wishlist",
    "Loyalty Points Earned",
    "تسجيل الدخول",
]
_OTHER_KLAVIYO_METRICS = [
    "Active on Site",
    "Viewed Product",
    "Subscribed to List",
    "Unsubscribed from List",
    "Unsubscribed",
    "Received SMS",
    "Clicked SMS",
    "Received Push",
    "Opened Push",
    "Updated Email Preferences",
    "Subscribed to Back in Stock",
    "Form submitted by profile",
    "Viewed Collection",
]
_SHOPIFY_METRICS = [
    "Placed Order",
    "Ordered Product",
    "Fulfilled Order",
    "Cancelled Order",
    "Refunded Order",
    "Checkout Started",
]
_PRODUCTS = ["Chaussures d'été", "保温ボトル", "Socks 🧦", 'The "Classic" Tee', "Back\\pack", "Ñ-Hoodie"]

# Event id layout (a ULID): 48-bit ms time, then 80 bits derived bijectively from the
# event's generation index, so ids are unique without a set and sort like (time, id).
_MASK54 = (1 << 54) - 1
_MULT = 0x9E3779B97F4A7C15 & _MASK54 | 1


# Every 15-bit value as 3 Crockford digits: a ULID is 9 lookups rather than 26 shifts.
_DIGITS3 = [a + b + c for a in _CROCKFORD for b in _CROCKFORD for c in _CROCKFORD]


def _ulid(value: int) -> str:
    """The low 130 bits of ``value`` as 26 Crockford base-32 digits, most significant first."""
    d = _DIGITS3
    return (
        d[(value >> 120) & 32767]
        + d[(value >> 105) & 32767]
        + d[(value >> 90) & 32767]
        + d[(value >> 75) & 32767]
        + d[(value >> 60) & 32767]
        + d[(value >> 45) & 32767]
        + d[(value >> 30) & 32767]
        + d[(value >> 15) & 32767]
        + d[value & 32767]
    )[1:]  # 9 x 3 digits hold 135 bits: drop the top 5


def _iso(dt: datetime, micro: bool = False) -> str:
    # Klaviyo writes "2022-11-08T01:23:45+00:00", sometimes with microseconds.
    return dt.astimezone(UTC).isoformat(timespec="microseconds" if micro else "seconds")


class _Ids:
    """Unique id factory shared by all resource types."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def short(self) -> str:
        # Lists, segments, metrics and flows use 6-char alphanumerics like "Y6nRLr".
        while True:
            v = "".join(self.rng.choice(_ALNUM) for _ in range(6))
            if v not in self.seen:
                self.seen.add(v)
                return v

    def ulid(self, at: datetime) -> str:
        while True:
            v = _ulid((int(at.timestamp() * 1000) << 80) | self.rng.getrandbits(80))
            if v not in self.seen:
                self.seen.add(v)
                return v


def _names(rng: random.Random, n: int, pool: Sequence[str]) -> list[str]:
    names = list(pool)
    rng.shuffle(names)
    out = [names[i % len(names)] + (f" {i // len(names) + 1}" if i >= len(names) else "") for i in range(n)]
    if n >= 3:
        out[-1] = out[0]  # Klaviyo allows duplicate names: sorting by name needs the id tie-break
    return out


def _created_updated(rng: random.Random, micro_share: float) -> tuple[str, str, datetime]:
    created = GENERATOR_NOW - timedelta(seconds=rng.randrange(30 * 86400, 3 * 365 * 86400))
    created = created.replace(microsecond=rng.randrange(1, 1_000_000))
    updated = created + timedelta(seconds=rng.randrange(0, int((GENERATOR_NOW - created).total_seconds())))
    micro = rng.random() < micro_share
    return _iso(created, micro), _iso(updated, micro), created


# --- events -----------------------------------------------------------------------------------


class EventStore(Sequence[Resource]):
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

    def __len__(self) -> int:
        return len(self.ts)

    @overload
    def __getitem__(self, i: int) -> Resource: ...
    @overload
    def __getitem__(self, i: slice) -> list[Resource]: ...
    def __getitem__(self, i: int | slice) -> Resource | list[Resource]:
        if isinstance(i, slice):
            return [self.resource(p) for p in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.resource(i)

    def event_id(self, pos: int) -> str:
        sub = self.sub[pos]
        low = sub & _MASK54
        ms_time = self.ts[pos] * 1000 + (sub >> 54)
        return _ulid((ms_time << 80) | (low << 26) | ((low * 0x2545F491) >> 20 & 0x3FFFFFF))

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
                "datetime": datetime.fromtimestamp(ts, UTC).isoformat(),
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
                "Subject": rng.choice(_SUBJECTS),
                "Campaign Name": name,
                "$message": msg,
                "Email Domain": rng.choice(_DOMAINS),
                "$_cohort$message_send_cohort": f"{msg}:{low % 9973}",
            }
            if flow is not None:
                props["$flow"] = flow  # only flow sends carry $flow: keys come and go
            what = kind[6:]
            if what in ("opened", "clicked"):
                client = rng.choice(_CLIENTS)
                props.update({"Client Name": client[0], "Client OS": client[1], "Client Type": client[2]})
                props["machine_open"] = rng.random() < 0.3 if what == "opened" else None
            if what == "clicked":
                props["URL"] = rng.choice(_URLS)
            elif what == "bounced":
                props["Bounce Type"] = rng.choice(["hard", "soft", "block", None])
            elif what == "dropped":
                props["Drop Reason"] = rng.choice(["Previously Bounced", "Previously Unsubscribed", "Invalid Email"])
        elif kind == "order":
            items = [
                {
                    "ProductName": rng.choice(_PRODUCTS),
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
            props = {"$page": rng.choice(_URLS), "$browser": "Safari", "$os": rng.choice(["iOS", "Mac OS X", None])}
        else:
            props = {
                "Ünïcode Key 🔑": 'значение "quoted" \\ back',
                "value": rng.choice([0, -1, 3.14, 1e-7, 2**53 + 1, None]),
                "nested": {"deep": {"list": [1, 2.5, None, "x", {"k": "v"}], "empty": {}}},
            }
        if rng.random() < 0.2:
            props["Note\tTab"] = rng.choice([None, "", "line1\nline2", "📦 עברית 中文"])
        return props


class EventView(Sequence[Resource]):
    """Events of one metric, ascending by (datetime, id)."""

    def __init__(self, store: EventStore, positions: array) -> None:
        self.store = store
        self.positions = positions

    def __len__(self) -> int:
        return len(self.positions)

    @overload
    def __getitem__(self, i: int) -> Resource: ...
    @overload
    def __getitem__(self, i: slice) -> list[Resource]: ...
    def __getitem__(self, i: int | slice) -> Resource | list[Resource]:
        if isinstance(i, slice):
            return [self.store.resource(p) for p in self.positions[i]]
        return self.store.resource(self.positions[i])

    def __iter__(self) -> Iterator[Resource]:
        return (self.store.resource(p) for p in self.positions)


# --- account ----------------------------------------------------------------------------------


@dataclass
class Account:
    seed: int
    now: datetime  # the generator's fixed "now"; events lie in the two years before it
    account: Resource
    lists: list[Resource]
    segments: list[Resource]
    campaigns: list[Resource]
    campaign_channels: dict[str, str]  # campaign id -> email | sms | mobile_push (not an attribute)
    flows: list[Resource]
    metrics: list[Resource]
    events: EventStore
    profile_ids: list[str] = field(repr=False)

    def metric_by_name(self, name: str, integration: str | None = "Klaviyo") -> Resource | None:
        """First metric whose name matches case-insensitively and whose integration name
        matches too (``integration=None`` selects metrics without integration)."""
        for m in self.metrics:
            a = m["attributes"]
            if (a["name"] or "").casefold() != name.casefold():
                continue
            integ = a["integration"]
            if integration is None and integ is None:
                return m
            if integration is not None and integ and integ["name"].casefold() == integration.casefold():
                return m
        return None

    def events_for_metric(self, metric_id: str) -> EventView:
        idx = self.events.metric_index.get(metric_id)
        return EventView(self.events, self.events.by_metric[idx] if idx is not None else array("I"))

    def campaigns_for_channel(self, channel: str) -> list[Resource]:
        return [c for c in self.campaigns if self.campaign_channels[c["id"]] == channel]

    def email_campaigns(self) -> list[Resource]:
        return self.campaigns_for_channel("email")

    def events_between(self, metric_id: str, start: datetime, end: datetime) -> EventView:
        """Events of a metric with start <= datetime < end (tz-aware bounds)."""
        idx = self.events.metric_index.get(metric_id)
        if idx is None:
            return EventView(self.events, array("I"))
        tss = self.events.ts_by_metric[idx]
        lo = bisect_left(tss, _ceil_ts(start))
        hi = bisect_left(tss, _ceil_ts(end))
        return EventView(self.events, self.events.by_metric[idx][lo:hi])


def _ceil_ts(dt: datetime) -> int:
    t = dt.timestamp()
    return int(t) if t == int(t) else int(t) + 1


def generate_account(
    seed: int = 1,
    *,
    lists: int = 23,
    segments: int = 17,
    campaigns: int = 230,
    flows: int = 60,
    metrics: int = 40,
    events_per_metric: int = 300,
    other_events_per_metric: int = 40,
    future_events: int = 0,
    missing_metrics: tuple[str, ...] = (),
    email_share: float = 0.7,
) -> Account:
    """Build a deterministic account (``random.Random(seed)``).

    ``events_per_metric`` events for each built-in email metric, ``other_events_per_metric``
    for every other metric (decoys and custom ones included), plus ``future_events``
    dated after the real current time on the email metrics.
    """
    rng = random.Random(seed)
    ids = _Ids(rng)
    missing = {n.casefold() for n in missing_metrics}
    unknown = missing - {n.casefold() for n in EMAIL_METRICS}
    if unknown:
        raise ValueError(f"missing_metrics must name built-in email metrics, not {sorted(unknown)}")

    metric_list, kinds = _metrics(rng, ids, metrics, missing)
    list_list = _lists(rng, ids, lists)
    segment_list = _segments(rng, ids, segments, [x["id"] for x in list_list], [m["id"] for m in metric_list])
    flow_list = _flows(rng, ids, flows)
    campaign_list, channels = _campaigns(rng, ids, campaigns, list_list + segment_list, email_share)

    email_sources: list[tuple[str, str, str | None]] = [
        (c["id"], c["attributes"]["name"], None) for c in campaign_list if channels[c["id"]] == "email"
    ]
    for f in flow_list[:20]:
        email_sources.append((ids.short(), f"{f['attributes']['name']}: Email {rng.randint(1, 5)}", f["id"]))

    plan = [(i, events_per_metric if k.startswith("email:") else other_events_per_metric) for i, k in enumerate(kinds)]
    email_idx = [i for i, k in enumerate(kinds) if k.startswith("email:")]
    store = _events(rng, seed, plan, email_idx, future_events, [m["id"] for m in metric_list], kinds, email_sources)
    return Account(
        seed=seed,
        now=GENERATOR_NOW,
        account=_account(rng, ids),
        lists=list_list,
        segments=segment_list,
        campaigns=campaign_list,
        campaign_channels=channels,
        flows=flow_list,
        metrics=metric_list,
        events=store,
        profile_ids=store.profile_ids,
    )


def _metrics(rng: random.Random, ids: _Ids, total: int, missing: set[str]) -> tuple[list[Resource], list[str]]:
    specs: list[tuple[str, dict[str, Any] | None, str]] = []
    for name in EMAIL_METRICS:
        if name.casefold() not in missing:
            specs.append((_SENTENCE_CASE.get(name, name), INTEGRATION_KLAVIYO, "email:" + name.split()[0].lower()))
    # Decoy: same name as a built-in, but an API (custom) metric with its own events.
    specs.append(("Opened Email", INTEGRATION_API, "custom"))
    pool: list[tuple[str, dict[str, Any] | None, str]] = (
        [(n, INTEGRATION_SHOPIFY, "order" if "Order" in n else "generic") for n in _SHOPIFY_METRICS]
        + [(n, INTEGRATION_KLAVIYO, "site" if n == "Active on Site" else "generic") for n in _OTHER_KLAVIYO_METRICS]
        + [(n, None, "custom") for n in _CUSTOM_METRIC_NAMES]
        + [(n + " (API)", INTEGRATION_API, "custom") for n in _CUSTOM_METRIC_NAMES[:3]]
    )
    rng.shuffle(pool)
    k = 0
    while len(specs) < total:
        name, integ, kind = pool[k % len(pool)]
        specs.append((name if k < len(pool) else f"{name} {k // len(pool) + 1}", integ, kind))
        k += 1
    rng.shuffle(specs)
    # Put the decoy before the real "Opened Email" so first-match-by-name picks the wrong one.
    names = [s[0] for s in specs]
    if "Opened Email" in names:
        real = next(i for i, s in enumerate(specs) if s[0] == "Opened Email" and s[1] is INTEGRATION_KLAVIYO)
        decoy = next(i for i, s in enumerate(specs) if s[0] == "Opened Email" and s[1] is INTEGRATION_API)
        if decoy > real:
            specs[decoy], specs[real] = specs[real], specs[decoy]
    out: list[Resource] = []
    for name, integ, _ in specs:
        created, updated, _c = _created_updated(rng, 0.0)
        out.append(
            {
                "type": "metric",
                "id": ids.short(),
                "attributes": {
                    "name": name,
                    "created": created,
                    "updated": updated,
                    "integration": dict(integ) if integ else None,
                },
            }
        )
    return out, [s[2] for s in specs]


def _lists(rng: random.Random, ids: _Ids, n: int) -> list[Resource]:
    out: list[Resource] = []
    # Index-pinned oddities make every seed carry each nasty case at least once.
    for i, name in enumerate(_names(rng, n, _NAMES)):
        created, updated, _c = _created_updated(rng, 0.4)
        out.append(
            {
                "type": "list",
                "id": ids.short(),
                "attributes": {
                    "name": name,
                    "created": created,
                    "updated": updated,
                    "opt_in_process": None if i == 1 else rng.choice(["double_opt_in", "single_opt_in", None]),
                },
            }
        )
    return out


def _date_filter(rng: random.Random) -> dict[str, Any]:
    r = rng.random()
    if r < 0.4:
        return {"type": "date", "operator": "alltime"}
    if r < 0.8:
        return {
            "type": "date",
            "operator": rng.choice(ENUMS["RelativeDateOperatorBaseRelativeDateFilter.operator"]),
            "unit": rng.choice(ENUMS["RelativeDateOperatorBaseRelativeDateFilter.unit"]),
            "quantity": rng.randint(1, 90),
        }
    return {
        "type": "date",
        "operator": rng.choice(ENUMS["StaticDateFilter.operator"]),
        "date": _iso(GENERATOR_NOW - timedelta(days=rng.randint(1, 700))),
    }


def _condition(rng: random.Random, list_ids: list[str], metric_ids: list[str]) -> dict[str, Any]:
    kind = rng.choice(["member", "nonmember", "metric", "property", "consent"])
    if kind in ("member", "nonmember") and list_ids:
        cond: dict[str, Any] = {
            "type": "profile-group-membership",
            "is_member": kind == "member",
            "group_ids": rng.sample(list_ids, min(len(list_ids), rng.randint(1, 2))),
        }
        if kind == "member":
            cond["timeframe_filter"] = None if rng.random() < 0.5 else _date_filter(rng)
        return cond
    if kind == "metric" and metric_ids:
        return {
            "type": "profile-metric",
            "metric_id": rng.choice(metric_ids),
            "measurement": rng.choice(["count", "sum"]),
            "measurement_filter": {
                "type": "numeric",
                "operator": rng.choice(ENUMS["NumericOperatorNumericFilter.operator"]),
                "value": rng.choice([0, 1, 2.5, 10]),
            },
            "timeframe_filter": _date_filter(rng),
            "metric_filters": None,
        }
    if kind == "property":
        return {
            "type": "profile-property",
            "property": rng.choice(["email", "first_name", "properties['Couleur préférée 🎨']"]),
            "filter": {
                "type": "string",
                "operator": rng.choice(ENUMS["StringOperatorStringFilter.operator"]),
                "value": rng.choice(["Bleu 💙", "例", 'a"b\\c', None]),
            },
        }
    return {
        "type": "profile-marketing-consent",
        "consent": {
            "channel": "email",
            "can_receive_marketing": True,
            "consent_status": {"subscription": "subscribed", "filters": None},
        },
    }


def _segments(rng: random.Random, ids: _Ids, n: int, list_ids: list[str], metric_ids: list[str]) -> list[Resource]:
    out: list[Resource] = []
    for i, name in enumerate(_names(rng, n, list(reversed(_NAMES)))):
        created, updated, _c = _created_updated(rng, 0.4)
        definition = (
            None
            if i == 2 or rng.random() < 0.1
            else {
                "condition_groups": [
                    {"conditions": [_condition(rng, list_ids, metric_ids) for _ in range(rng.randint(1, 2))]}
                    for _ in range(rng.randint(1, 3))
                ]
            }
        )
        out.append(
            {
                "type": "segment",
                "id": ids.short(),
                "attributes": {
                    "name": name,
                    "definition": definition,
                    "created": created,
                    "updated": updated,
                    "is_active": i != 1 and rng.random() < 0.9,
                    "is_processing": rng.random() < 0.1,
                    "is_starred": rng.random() < 0.2,
                },
            }
        )
    return out


def _flows(rng: random.Random, ids: _Ids, n: int) -> list[Resource]:
    triggers = ENDPOINTS["flows"].attributes["trigger_type"]["enum"]
    out: list[Resource] = []
    for i, name in enumerate(_names(rng, n, _FLOW_NAMES)):
        created, updated, _c = _created_updated(rng, 0.0)
        out.append(
            {
                "type": "flow",
                "id": ids.short(),
                "attributes": {
                    "name": name,
                    "status": rng.choice(["live", "live", "live", "draft", "manual"]),
                    "archived": rng.random() < 0.1,
                    "created": created,
                    "updated": updated,
                    "trigger_type": None if i == 2 or rng.random() < 0.1 else rng.choice(triggers),
                },
            }
        )
    return out


_STATUS_WEIGHTS = [
    ("Sent", 60),
    ("Draft", 15),
    ("Scheduled", 7),
    ("Cancelled", 4),
    ("Cancelled: No Recipients", 2),
    ("Sending", 2),
    ("Variations Sent", 2),
    ("Adding Recipients", 1),
    ("Preparing to send", 1),
    ("Queued without Recipients", 1),
    ("Cancelled: Smart Sending", 1),
    ("Unknown", 1),
]


def _campaigns(
    rng: random.Random, ids: _Ids, n: int, audiences: list[Resource], email_share: float
) -> tuple[list[Resource], dict[str, str]]:
    statuses = [s for s, _ in _STATUS_WEIGHTS]
    weights = [w for _, w in _STATUS_WEIGHTS]
    n_email = round(n * email_share)
    channels = ["email"] * n_email + [("sms", "mobile_push")[i % 2] for i in range(n - n_email)]
    rng.shuffle(channels)
    audience_ids = [a["id"] for a in audiences]
    throttles = ENUMS["ThrottledSendStrategy.throttle_percentage"]
    dynamic = ENUMS["DynamicTrackingParam.value"]
    out: list[Resource] = []
    chan: dict[str, str] = {}
    base_names = list(_CAMPAIGN_NAMES)
    for i, channel in enumerate(channels):
        micro = rng.random() < 0.4
        created = GENERATOR_NOW - timedelta(seconds=rng.randrange(86400, 2 * 365 * 86400))
        created = created.replace(microsecond=rng.randrange(1, 1_000_000))
        status = rng.choices(statuses, weights)[0]
        scheduled = None if status == "Draft" else created + timedelta(seconds=rng.randrange(60, 14 * 86400))
        if status == "Scheduled" and scheduled is not None:
            scheduled = GENERATOR_NOW + timedelta(days=rng.randint(1, 20))
        sending = scheduled if scheduled is not None else created + timedelta(days=rng.randint(1, 30))
        send_time = None if status == "Draft" or status.startswith("Cancelled") else sending
        updated = max(created, scheduled or created) + timedelta(seconds=rng.randrange(0, 3 * 86400))

        r = rng.random()
        strategy: dict[str, Any]
        if r < 0.6:
            options = rng.choice(
                [
                    None,
                    {"is_local": False},
                    {"is_local": True, "send_past_recipients_immediately": rng.random() < 0.5},
                ]
            )
            strategy = {"method": "static", "datetime": _iso(sending), "options": options}
        elif r < 0.75:
            strategy = {"method": "smart_send_time", "date": sending.date().isoformat()}
        elif r < 0.9 and channel == "email":
            strategy = {"method": "throttled", "datetime": _iso(sending), "throttle_percentage": rng.choice(throttles)}
        else:
            strategy = {"method": "immediate"}

        params: list[dict[str, Any]] | None = rng.choice(
            [
                None,
                [],
                [
                    {"type": "dynamic", "value": rng.choice(dynamic), "name": "utm_campaign"},
                    {"type": "static", "value": "klaviyo ✉️", "name": "utm_source"},
                ],
            ]
        )
        tracking: dict[str, Any] | None
        if channel == "email":
            tracking = {
                "add_tracking_params": rng.random() < 0.6,
                "custom_tracking_params": params,
                "is_tracking_clicks": rng.choice([True, True, False, None]),
                "is_tracking_opens": rng.choice([True, True, False, None]),
            }
        elif channel == "sms":
            tracking = {"add_tracking_params": rng.random() < 0.5, "custom_tracking_params": params}
        else:
            tracking = None

        excluded = rng.choice([None, None, [], "some"])
        cid = ids.ulid(created)
        out.append(
            {
                "type": "campaign",
                "id": cid,
                "attributes": {
                    "name": f"{base_names[i % len(base_names)]} {i // 3 + 1}"
                    if i % 5
                    else base_names[i % len(base_names)],
                    "status": status,
                    "archived": rng.random() < 0.1,
                    "audiences": {
                        "included": rng.sample(audience_ids, min(len(audience_ids), rng.randint(1, 3))),
                        "excluded": (
                            rng.sample(audience_ids, min(len(audience_ids), rng.randint(1, 2)))
                            if excluded == "some"
                            else excluded
                        ),
                    },
                    "send_options": {"use_smart_sending": rng.choice([True, False, None])},
                    "tracking_options": tracking,
                    "send_strategy": strategy,
                    "created_at": _iso(created, micro),
                    "scheduled_at": _iso(scheduled, micro) if scheduled else None,
                    "updated_at": _iso(updated, micro),
                    "send_time": _iso(send_time) if send_time else None,
                },
            }
        )
        chan[cid] = channel
    return out, chan


def _events(
    rng: random.Random,
    seed: int,
    plan: list[tuple[int, int]],
    email_idx: list[int],
    future: int,
    metric_ids: list[str],
    kinds: list[str],
    email_sources: list[tuple[str, str, str | None]],
) -> EventStore:
    total = sum(c for _, c in plan) + future
    n_profiles = max(20, min(50_000, total // 8))
    profile_ids = [
        _ulid(
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
    start = end - EVENT_SPAN_DAYS * 86400
    rand, randrange = rng.random, rng.randrange
    i = 0

    def add(t: int, m: int) -> None:
        nonlocal i
        ts.append(t)
        met.append(m)
        prof.append(randrange(n_profiles))
        sub.append((int(rand() * 1000) << 54) | ((((i + off) * _MULT) & _MASK54) ^ xmask))
        i += 1

    for m, count in plan:
        left = count
        while left > 0:
            t = start + randrange(end - start)
            # Bursts of 3-10 events in the same second test page and bookmark boundaries.
            k = 1 if rand() < 0.55 else min(left, 3 + randrange(8))
            for _ in range(k):
                add(t, m)
            left -= k
    if future and email_idx:
        now = int(time.time())
        for j in range(future):
            add(now + 3600 + randrange(30 * 86400), email_idx[j % len(email_idx)])

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


def _account(rng: random.Random, ids: _Ids) -> Resource:
    key = ids.short()
    return {
        "type": "account",
        "id": key,
        "attributes": {
            "test_account": False,
            "contact_information": {
                "default_sender_name": "Boutique Éclair 🌸",
                "default_sender_email": "bonjour@eclair.example",
                "website_url": "https://eclair.example",
                "organization_name": "Boutique Éclair «Démo»",
                "street_address": {
                    "address1": "12 Rue de l'Église",
                    "address2": None,
                    "city": "Montréal",
                    "region": "QC",
                    "country": "CA",
                    "zip": "H2X 1Y4",
                },
            },
            "industry": rng.choice(["Retail", None]),
            "timezone": "America/Toronto",
            "preferred_currency": "CAD",
            "public_api_key": key,
            "locale": "fr-CA",
        },
    }
