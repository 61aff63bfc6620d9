"""Deterministic, deliberately nasty Klaviyo account data for the fake server.

Resources are shaped from the spec's attribute schemas (see endpoints.json) and held
as the API would return them, minus ``links`` and to-many relationships, which the
server adds per request. The generators live beside this module: metrics.py, entities.py,
campaigns.py, messages.py, flow_actions.py, events.py (with attributions.py), profiles.py (with consent.py) and
members.py, drawing on ids.py, clock.py and samples.py.

Profiles and memberships can change between two reads ("as of"): :meth:`Account.add_profiles`,
:meth:`Account.update_profiles`, :meth:`Account.add_members` and :meth:`Account.remove_members` change the
account a running :class:`FakeKlaviyo` serves. Change an account of your own, not one other tests share.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .attributions import Attributions
from .campaigns import generate_campaigns
from .clock import GENERATOR_NOW, stamp
from .entities import account_resource, generate_flows, generate_lists, generate_segments
from .events import EventStore, EventView, generate_events
from .flow_actions import flow_messages, generate_flow_actions
from .ids import Ids
from .layout import EventLayout
from .members import Memberships, generate_memberships
from .messages import generate_campaign_messages
from .metrics import EMAIL_METRICS, generate_metrics, pin_metrics
from .profile_selection import profile_order
from .profiles import ProfileStore, generate_profiles
from .spec import Resource


@dataclass
class Account:
    seed: int
    now: datetime  # the generator's fixed "now"; events lie in the two years before it
    account: Resource
    lists: list[Resource]
    segments: list[Resource]
    campaigns: list[Resource]
    campaign_channels: dict[str, str]  # campaign id -> email | sms | mobile_push (not an attribute)
    # campaign id -> its messages ("campaign-message" resources with a to-one campaign relationship), in order
    campaign_messages: dict[str, list[Resource]] = field(repr=False)
    flows: list[Resource]
    metrics: list[Resource]
    events: EventStore
    profile_ids: list[str] = field(repr=False)  # the profiles the events name: the first of `profiles`
    profiles: ProfileStore = field(repr=False)
    memberships: Memberships = field(repr=False)
    # flow id -> its actions ("flow-action" resources with a to-one flow relationship), in the order it runs them
    flow_actions: dict[str, list[Resource]] = field(repr=False)
    # the attributions of each event, made when asked for (conversions have some)
    attributions: Attributions = field(repr=False)
    last_change: datetime = GENERATOR_NOW  # the latest "as of" change; the next is a second later by default

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

    # --- profiles and members, as a test would expect them ----------------------------------------------------

    def profile(self, profile_id: str) -> Resource:
        """A profile as /api/profiles serves it without additional fields."""
        return self.profiles[self._position(profile_id)]

    def profiles_in_order(self, sort: str | None = None) -> list[Resource]:
        """Every profile as /api/profiles?sort=... serves them (``sort`` one of the spec's values; None: by id)."""
        return [self.profiles[i] for i in profile_order(self.profiles, sort)]

    def members(self, group_id: str) -> list[tuple[str, str]]:
        """A list's or segment's members as (profile id, joined_group_at), ascending by (joined_group_at, id)."""
        return self.memberships.members(group_id)

    # --- changes between two reads ------------------------------------------------------------------------------

    def add_profiles(self, count: int, at: datetime | None = None) -> list[str]:
        """``count`` new profiles without events, created and updated ``at`` (whole seconds); their ids."""
        return [self.profiles.ids[i] for i in self.profiles.add(count, self._moment(at))]

    def update_profiles(self, profile_ids: Iterable[str], at: datetime | None = None) -> None:
        """Edit profiles ``at``: ``updated`` becomes ``at`` and the custom property "Edits" counts the edits."""
        self.profiles.update([self._position(p) for p in profile_ids], self._moment(at))

    def add_members(self, group_id: str, profile_ids: Iterable[str], at: datetime | None = None) -> None:
        """Profiles join a list or segment ``at`` (its ``joined_group_at``); members already in it stay as they were."""
        self._group(group_id)
        self.memberships.add(group_id, [self._position(p) for p in profile_ids], self._moment(at))

    def remove_members(self, group_id: str, profile_ids: Iterable[str]) -> None:
        """Profiles leave a list or segment; they are simply no longer among its members."""
        self._group(group_id)
        self.memberships.remove(group_id, [self._position(p) for p in profile_ids])

    def delete(self, kind: str, resource_id: str) -> None:
        """Delete a list, segment, campaign or flow: it is served no more, nor are a list's or segment's members."""
        collection = {"list": self.lists, "segment": self.segments, "campaign": self.campaigns, "flow": self.flows}
        (resource,) = [r for r in collection[kind] if r["id"] == resource_id]
        collection[kind].remove(resource)
        self.memberships.groups.pop(resource_id, None)

    def set_audiences(
        self, campaign_id: str, included: list[str], excluded: list[str], at: datetime | None = None
    ) -> None:
        """Change a campaign's audiences ``at``, which becomes its ``updated_at``."""
        (campaign,) = [c for c in self.campaigns if c["id"] == campaign_id]
        campaign["attributes"]["audiences"] = {"included": list(included), "excluded": list(excluded)}
        campaign["attributes"]["updated_at"] = stamp(self._moment(at))

    def _position(self, profile_id: str) -> int:
        i = self.profiles.position(profile_id)
        if i is None:
            raise KeyError(f"no profile {profile_id!r} in this account")
        return i

    def _group(self, group_id: str) -> None:
        if group_id not in self.memberships.groups:
            raise KeyError(f"no list or segment {group_id!r} in this account")

    def _moment(self, at: datetime | None) -> int:
        """``at`` (aware) in whole seconds, as Klaviyo's profile times have no fraction, by default a second after the
        last change; it becomes the last change if it is later."""
        if at is not None and at.tzinfo is None:
            raise ValueError("a change needs an aware datetime")
        when = self.last_change + timedelta(seconds=1) if at is None else at.replace(microsecond=0)
        self.last_change = max(self.last_change, when)
        return int(when.timestamp())


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
    new_events: int = 0,
    missing_metrics: tuple[str, ...] = (),
    email_share: float = 0.7,
    profiles: int | None = None,
    large_list: int | None = None,
    spec_times: bool = False,
    timed_events: Sequence[datetime] = (),
    layout: EventLayout | None = None,
) -> Account:
    """Build a deterministic account (``random.Random(seed)``).

    ``metrics`` metrics, plus those of ``PINNED_METRICS`` they lack (as a rule only "Placed Order" from the
    API at the default 40). ``events_per_metric`` events for each built-in email metric,
    ``other_events_per_metric`` for every other metric (decoys, API ones and pinned ones included), plus
    ``future_events`` dated after the real current time on the email metrics.

    ``new_events``: as many more events per email metric, dated in the day after the generator's now (after every
    other event, and before the real current time): the same account plus events that arrived since, for an
    incremental run after a full one. Everything else is as without them, but the ``last_event_date`` of the
    profiles they name.

    ``timed_events``: one more event at each of these times, on the email metrics in turn (the first on the first
    email metric, ...), from a generator of their own: the account without them, or with fewer of them at its end,
    is the same account (times today or in the future, for bookmarks that must not pass a sync's start).

    ``spec_times``: events' ``datetime`` and profiles' consent timestamps as the spec writes them ("T"), rather
    than as Klaviyo really does (a space, see ``clock.klaviyo_form``).

    ``layout``: where in time the events lie and how many each email metric holds (``layout.EventLayout``); by
    default evenly over the two years before the generator's now, ``events_per_metric`` each.

    ``profiles``: how many profiles, at least those the events name (by default those and a quarter as many
    without events, 30 at least); ``large_list`` of them are members of the first list (by default 60%).
    """
    rng = random.Random(seed)
    ids = Ids(rng)
    missing = {n.casefold() for n in missing_metrics}
    unknown = missing - {n.casefold() for n in EMAIL_METRICS}
    if unknown:
        raise ValueError(f"missing_metrics must name built-in email metrics, not {sorted(unknown)}")

    metric_list, kinds = generate_metrics(rng, ids, metrics, missing)
    list_list = generate_lists(rng, ids, lists)
    segment_list = generate_segments(rng, ids, segments, [x["id"] for x in list_list], [m["id"] for m in metric_list])
    flow_list = generate_flows(rng, ids, flows)
    campaign_list, channels = generate_campaigns(rng, ids, campaigns, list_list + segment_list, email_share)

    email_sources: list[tuple[str, str, str | None]] = [
        (c["id"], c["attributes"]["name"], None) for c in campaign_list if channels[c["id"]] == "email"
    ]
    for f in flow_list[:20]:
        email_sources.append((ids.short(), f"{f['attributes']['name']}: Email {rng.randint(1, 5)}", f["id"]))

    layout = layout or EventLayout()

    def planned(kind: str, metric: Resource) -> int:
        if not kind.startswith("email:"):
            return other_events_per_metric
        return layout.events_of(metric["attributes"]["name"], events_per_metric)

    plan = [(i, planned(kind, metric)) for i, (kind, metric) in enumerate(zip(kinds, metric_list, strict=True))]
    email_idx = [i for i, k in enumerate(kinds) if k.startswith("email:")]
    # The pinned metrics (and their events) come last, from a generator of their own, so that every account
    # holds them and the rest of each seed's account is what it was before they were pinned.
    pinned_rng = random.Random(f"pinned metrics {seed}")
    pin_metrics(pinned_rng, ids.drawing_from(pinned_rng), metric_list, kinds)
    pinned = [(i, other_events_per_metric) for i in range(len(plan), len(metric_list))]
    store = generate_events(
        rng,
        seed,
        plan,
        email_idx,
        future_events,
        [m["id"] for m in metric_list],
        kinds,
        email_sources,
        pinned,
        pinned_rng,
        new_events,
        random.Random(f"new events {seed}"),
        [int(t.timestamp()) for t in timed_events],
        random.Random(f"timed events {seed}"),
        layout.span_seconds(),
        lambda start, end: layout.moments(seed, start, end),
    )
    account_res = account_resource(rng, ids)
    # Messages come last, from a generator of their own, so that each seed's other data is what it was before
    # messages were generated.
    messages_rng = random.Random(f"campaign messages {seed}")
    messages = generate_campaign_messages(messages_rng, ids.drawing_from(messages_rng), campaign_list, channels)
    # Profiles and members come last too, from a generator of their own, for the same reason.
    profiles_rng = random.Random(f"profiles {seed}")
    n_events = len(store.profile_ids)
    count = n_events + max(30, n_events // 4) if profiles is None else profiles
    last_events = array("q", [-1]) * n_events
    for p, t in zip(store.profile, store.ts, strict=True):
        last_events[p] = t  # ascending by time: the newest event is the last written
    profile_store = generate_profiles(
        profiles_rng, seed, count, store.profile_ids, last_events, [x["id"] for x in list_list]
    )
    if spec_times:
        store.datetime_sep = "T"
        profile_store.klaviyo_consent_times = False
    large = count * 6 // 10 if large_list is None else large_list
    memberships = generate_memberships(profiles_rng, profile_store, list_list, segment_list, large)
    # Flow actions come last too, from a generator of their own, for the same reason.
    actions_rng = random.Random(f"flow actions {seed}")
    actions = generate_flow_actions(actions_rng, ids.drawing_from(actions_rng), flow_list)
    touch = [i for i, kind in enumerate(kinds) if kind in ("email:clicked", "email:opened", "email:received")]
    attributions = Attributions(
        store,
        [(c["id"], m["id"]) for c in campaign_list for m in messages[c["id"]]],
        flow_messages(actions),
        touch,
    )
    return Account(
        seed=seed,
        now=GENERATOR_NOW,
        account=account_res,
        lists=list_list,
        segments=segment_list,
        campaigns=campaign_list,
        campaign_channels=channels,
        campaign_messages=messages,
        flows=flow_list,
        metrics=metric_list,
        events=store,
        profile_ids=store.profile_ids,
        profiles=profile_store,
        memberships=memberships,
        flow_actions=actions,
        attributions=attributions,
    )
