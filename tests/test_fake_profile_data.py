"""The fake's generated profiles and list and segment members, and how a test changes them between two reads."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

import pytest

from fake_klaviyo import GENERATOR_NOW, generate_account
from fake_klaviyo.consent import CHANNEL_AFFINITIES
from fake_klaviyo.filters import parse_datetime
from fake_klaviyo.profiles import SUPPRESSION_REASONS

pytestmark = pytest.mark.fake

WHOLE_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")  # as the spec's examples write profile times
CONSENTS = {"SUBSCRIBED", "UNSUBSCRIBED", "NEVER_SUBSCRIBED"}


def instant(text: str) -> datetime:
    dt = parse_datetime(text)
    assert dt is not None
    return dt


@pytest.fixture(scope="module")
def small():
    return generate_account(seed=5, events_per_metric=30, other_events_per_metric=5)


def test_every_profile_an_event_names_is_a_profile_and_some_have_no_events(account):
    ids = [p["id"] for p in account.profiles]
    assert len(set(ids)) == len(ids)
    named = {e["relationships"]["profile"]["data"]["id"] for e in account.events}
    assert named <= set(ids) and set(account.profile_ids) <= set(ids)
    assert len(set(ids) - named) >= 30
    newest: dict[str, str] = {}
    for e in account.events:  # ascending by time
        # Profile times have the "T" that events' times lack.
        newest[e["relationships"]["profile"]["data"]["id"]] = e["attributes"]["datetime"].replace(" ", "T", 1)
    for p in account.profiles:
        assert p["attributes"]["last_event_date"] == newest.get(p["id"])


def test_profile_times_are_whole_seconds_with_ties(account):
    attrs = [p["attributes"] for p in account.profiles]
    for a in attrs:
        assert WHOLE_SECOND.fullmatch(a["created"]) and WHOLE_SECOND.fullmatch(a["updated"])
        assert instant(a["created"]) <= instant(a["updated"]) <= GENERATOR_NOW
    for key in ("created", "updated"):
        ties = [n for n in Counter(a[key] for a in attrs).values() if n > 1]
        assert len(ties) >= 3 and max(ties) >= 3, f"several profiles share a {key} second"
    assert any(a["created"] == a["updated"] for a in attrs) and any(a["created"] != a["updated"] for a in attrs)


def test_profiles_hold_what_breaks_naive_code(account):
    attrs = [p["attributes"] for p in account.profiles]
    emails = [a["email"] for a in attrs if a["email"] is not None]
    assert len(set(emails)) == len(emails), "Klaviyo lets no two profiles share an email"
    assert any("'" in e for e in emails) and any("+" in e for e in emails)
    assert len(emails) < len(attrs), "profiles without an email"
    assert all(re.fullmatch(r"\+\d{8,15}", a["phone_number"]) for a in attrs if a["phone_number"])
    assert any(all(a[k] is None for k in ("email", "phone_number", "external_id")) for a in attrs)
    firsts = Counter(a["first_name"] for a in attrs)
    assert None in firsts and any(n > 1 for name, n in firsts.items() if name), "names repeat across profiles"
    assert any(name and not name.isascii() for name in firsts)
    assert any(a["last_name"] == "" for a in attrs), "an empty string is not a null"
    locations = [a["location"] for a in attrs]
    assert None in locations
    assert any(loc and set(loc) < {"ip", "timezone", "city", "country"} for loc in locations), "missing keys"
    assert any(loc and isinstance(loc.get("latitude"), str) for loc in locations)
    assert any(loc and isinstance(loc.get("latitude"), float) for loc in locations)
    props = [a["properties"] for a in attrs]
    assert {} in props and any(len(p) >= 3 for p in props) and len({frozenset(p) for p in props}) > 10


def test_consent_of_every_kind_and_each_suppression(account):
    store = account.profiles
    subs = [store.subscriptions(i) for i in range(len(store))]
    email = [s["email"]["marketing"] for s in subs if s["email"]]
    assert {m["consent"] for m in email} == CONSENTS
    for channel, kind in (("sms", "marketing"), ("sms", "transactional"), ("mobile_push", "marketing")):
        assert {s[channel][kind]["consent"] for s in subs if s[channel] and s[channel][kind]} == CONSENTS
    assert any(s["sms"] and s["sms"]["transactional"] is None for s in subs)
    assert any("whatsapp" in s for s in subs) and any("whatsapp" not in s for s in subs)
    assert any("open_tracking" in s["email"] for s in subs if s["email"])
    reasons = [x["reason"] for m in email for x in m["suppression"]]
    assert set(reasons) == set(SUPPRESSION_REASONS)
    list_ids = {x["id"] for x in account.lists}
    held = [x for m in email for x in m["list_suppressions"]]
    assert held and {x["list_id"] for x in held} <= list_ids
    for i, s in enumerate(subs):
        m = s["email"]["marketing"] if s["email"] else None
        if m is None:
            continue
        # Whoever has an email and no global suppression may be sent marketing; an unsubscribe is a suppression.
        assert m["can_receive_email_marketing"] == (store.email(i) is not None and not m["suppression"])
        assert (m["consent"] == "UNSUBSCRIBED") == any(x["reason"] == "UNSUBSCRIBE" for x in m["suppression"])
    predictions = [store.predictive_analytics(i) for i in range(len(store))]
    assert None in predictions
    known = [p for p in predictions if p and p["historic_clv"] is not None]
    assert known and {c for p in known for c in p["ranked_channel_affinity"] or []} == set(CHANNEL_AFFINITIES)


def test_members_of_lists_and_segments(account):
    groups = [*account.lists, *account.segments]
    members = {g["id"]: account.members(g["id"]) for g in groups}
    sizes = sorted(len(m) for m in members.values())
    assert sizes[0] == 0 and len(members[account.lists[0]["id"]]) >= 200, "an empty list and a large one"
    created = {p["id"]: instant(p["attributes"]["created"]) for p in account.profiles}
    in_groups: Counter[str] = Counter()
    for ms in members.values():
        assert len({p for p, _ in ms}) == len(ms)
        keys = [(instant(t), p) for p, t in ms]
        assert keys == sorted(keys)
        assert all(WHOLE_SECOND.fullmatch(t) and created[p] <= instant(t) <= GENERATOR_NOW for p, t in ms)
        in_groups.update(p for p, _ in ms)
    assert max(in_groups.values()) == sum(1 for m in members.values() if m), "a profile in every group"
    large = members[account.lists[0]["id"]]
    assert max(Counter(t for _, t in large).values()) >= 3, "members who joined in the same second"


def test_profiles_and_members_move_no_other_data_and_are_deterministic(small):
    more = generate_account(seed=5, events_per_metric=30, other_events_per_metric=5, profiles=900, large_list=850)
    assert (more.lists, more.segments, more.campaigns, more.campaign_messages, more.flows, more.metrics) == (
        small.lists,
        small.segments,
        small.campaigns,
        small.campaign_messages,
        small.flows,
        small.metrics,
    )
    assert list(more.events) == list(small.events) and more.profile_ids == small.profile_ids
    assert len(more.profiles) == 900 and len(more.members(more.lists[0]["id"])) == 850
    again = generate_account(seed=5, events_per_metric=30, other_events_per_metric=5)
    assert list(again.profiles) == list(small.profiles)
    assert [again.profiles.subscriptions(i) for i in range(40)] == [small.profiles.subscriptions(i) for i in range(40)]
    assert {g: again.members(g) for g in again.memberships.groups} == {
        g: small.members(g) for g in small.memberships.groups
    }
    with pytest.raises(ValueError, match="at least"):
        generate_account(seed=5, events_per_metric=30, other_events_per_metric=5, profiles=3)


def test_changes_between_reads():
    account = generate_account(seed=6, events_per_metric=10, other_events_per_metric=2)
    before = {p["id"]: p for p in account.profiles}
    added = account.add_profiles(3)
    first = GENERATOR_NOW + timedelta(seconds=1)
    assert [account.profile(p)["attributes"]["created"] for p in added] == [first.isoformat()] * 3
    assert not set(added) & set(before) and len(account.profiles) == len(before) + 3

    edited = list(before)[5:8]
    account.update_profiles(edited, at=first + timedelta(minutes=5, microseconds=7))
    for p in edited:
        attrs = account.profile(p)["attributes"]
        assert attrs["updated"] == (first + timedelta(minutes=5)).isoformat()
        assert attrs["properties"]["Edits"] == 1
        assert {k: v for k, v in attrs.items() if k not in ("updated", "properties")} == {
            k: v for k, v in before[p]["attributes"].items() if k not in ("updated", "properties")
        }
    untouched = list(before)[9]
    assert account.profile(untouched) == before[untouched]

    group = account.lists[1]["id"]
    old = account.members(group)
    account.add_members(group, [added[0], old[0][0]])  # the second is a member already: it stays as it was
    joined = (first + timedelta(minutes=5, seconds=1)).isoformat()
    assert account.members(group) == [*old, (added[0], joined)]
    account.remove_members(group, [old[0][0], added[0]])
    assert account.members(group) == old[1:]
    with pytest.raises(KeyError):
        account.add_members("nope", added)
    with pytest.raises(KeyError):
        account.update_profiles(["01NOPE"])
