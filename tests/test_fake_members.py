"""GET /api/lists/{id}/profiles and /api/segments/{id}/profiles from the fake, over HTTP: members as the spec
shapes them, with joined_group_at, its filters and sort, 404s for unknown groups, and changes between two reads."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
import requests

from fake_klaviyo import ENDPOINTS, GENERATOR_NOW, REVISION, FakeKlaviyo, generate_account
from fake_klaviyo.filters import parse_datetime
from tests.kit import API_KEY, assert_valid, error, follow, pages

pytestmark = pytest.mark.fake

KINDS = {"lists": "list", "segments": "segment"}


def instant(text: str) -> datetime:
    dt = parse_datetime(text)
    assert dt is not None
    return dt


def nonempty(account, kind: str) -> list[str]:
    return [g["id"] for g in getattr(account, kind) if account.members(g["id"])]


@pytest.mark.parametrize("kind", KINDS)
def test_members_fit_the_spec_and_come_once_in_join_order(account, api, kind):
    for group in nonempty(account, kind)[:4]:
        docs = pages(api, f"/api/{kind}/{group}/profiles", **{"page[size]": 100})
        for doc in docs:
            assert_valid(doc, f"/api/{kind}/{{id}}/profiles")
            assert doc["links"]["self"].split("?")[0].endswith(f"/api/{kind}/{group}/profiles/")
        served = [m for doc in docs for m in doc["data"]]
        assert [(m["id"], m["attributes"]["joined_group_at"]) for m in served] == account.members(group)
        for m in served:
            attrs = dict(m["attributes"])
            del attrs["joined_group_at"]
            assert attrs == account.profile(m["id"])["attributes"]
            assert m["links"]["self"].endswith(f"/api/profiles/{m['id']}/")
            assert set(m["relationships"]) == {"lists", "segments", "push-tokens"}
        newest_first = follow(api, f"/api/{kind}/{group}/profiles", sort="-joined_group_at", **{"page[size]": 100})
        assert [m["id"] for m in newest_first] == [m["id"] for m in reversed(served)]


def test_the_large_list_pages_through_hundreds_and_an_empty_list_has_none(account, api):
    large = account.lists[0]["id"]
    served = follow(api, f"/api/lists/{large}/profiles")  # 20 a page by default
    assert len(served) == len(account.members(large)) >= 200
    assert len({m["id"] for m in served}) == len(served)
    empty = next(g["id"] for g in account.lists if not account.members(g["id"]))
    doc = api(f"/api/lists/{empty}/profiles").json()
    assert doc["data"] == [] and doc["links"]["next"] is None and doc["links"]["prev"] is None


def test_fieldsets_and_additional_fields_on_members(account, api):
    group = account.lists[0]["id"]
    doc = api(f"/api/lists/{group}/profiles", **{"fields[profile]": "joined_group_at,email"}).json()
    members = dict(account.members(group))
    for m in doc["data"]:
        email = account.profile(m["id"])["attributes"]["email"]
        assert m["attributes"] == {"joined_group_at": members[m["id"]], "email": email}
    doc = api(
        f"/api/segments/{nonempty(account, 'segments')[0]}/profiles", **{"additional-fields[profile]": "subscriptions"}
    )
    assert_valid(doc.json(), "/api/segments/{id}/profiles")
    assert all(
        "subscriptions" in m["attributes"] and "predictive_analytics" not in m["attributes"] for m in doc.json()["data"]
    )


@pytest.mark.parametrize("op", ["greater-than", "greater-or-equal", "less-than", "less-or-equal"])
def test_joined_group_at_bounds_and_ties(account, api, op):
    group = account.lists[0]["id"]
    members = account.members(group)
    tied, n = Counter(t for _, t in members).most_common(1)[0]
    assert n >= 3, "members who joined in the same second"
    keep = {
        "greater-than": lambda t: t > instant(tied),
        "greater-or-equal": lambda t: t >= instant(tied),
        "less-than": lambda t: t < instant(tied),
        "less-or-equal": lambda t: t <= instant(tied),
    }[op]
    served = follow(api, f"/api/lists/{group}/profiles", filter=f"{op}(joined_group_at,{tied})", **{"page[size]": 100})
    assert [m["id"] for m in served] == [p for p, t in members if keep(instant(t))]


def test_identifiers_pick_members(account, api):
    group = account.lists[0]["id"]
    members = [p for p, _ in account.members(group)]
    store = account.profiles
    positions = [store.position(p) for p in members]
    emails = [(p, store.email(i)) for p, i in zip(members, positions, strict=True) if store.email(i)][:3]
    phone = next((p, store.phone_number(i)) for p, i in zip(members, positions, strict=True) if store.phone_number(i))
    token = next((p, store.push_token(i)) for p, i in zip(members, positions, strict=True) if store.push_token(i))
    outsider = next(
        p["attributes"]["email"] for p in account.profiles if p["id"] not in members and p["attributes"]["email"]
    )
    cases = [
        (f"any(email,{json.dumps([e for _, e in emails] + [outsider])})", {p for p, _ in emails}),
        (f"equals(phone_number,['{phone[1]}'])", {phone[0]}),
        (f"equals(push_token,['{token[1]}'])", {token[0]}),
        (f"equals(email,['{emails[0][1]}']),greater-than(joined_group_at,2999-01-01T00:00:00Z)", set()),
    ]
    for filter_, expected in cases:
        assert {m["id"] for m in follow(api, f"/api/lists/{group}/profiles", filter=filter_)} == expected, filter_
    segment = nonempty(account, "segments")[0]
    some = [p for p, _ in account.members(segment)][:2]
    got = follow(api, f"/api/segments/{segment}/profiles", filter=f"any(profile_id,{json.dumps(some)})")
    assert {m["id"] for m in got} == set(some)


@pytest.mark.parametrize(
    ("kind", "params", "parameter"),
    [
        ("lists", {"filter": "equals(profile_id,['x'])"}, "filter"),  # segments only
        ("lists", {"filter": "equals(email,'a@example.com')"}, "filter"),  # a list value only
        ("lists", {"filter": "equals(joined_group_at,2025-01-01T00:00:00Z)"}, "filter"),
        ("segments", {"filter": "greater-than(updated,2025-01-01T00:00:00Z)"}, "filter"),
        ("lists", {"sort": "updated"}, "sort"),
        ("segments", {"sort": "id"}, "sort"),
        ("lists", {"page[size]": 101}, "page[size]"),
        ("lists", {"include": "lists"}, "include"),
        ("segments", {"fields[profile]": "joined"}, "fields[profile]"),
        ("lists", {"additional-fields[profile]": "joined_group_at"}, "additional-fields[profile]"),
    ],
)
def test_bad_parameters_are_400(account, api, kind, params, parameter):
    resp = api(f"/api/{kind}/{getattr(account, kind)[0]['id']}/profiles", **params)
    assert resp.status_code == 400, resp.text
    assert error(resp)["source"] == {"parameter": parameter}


def test_unknown_groups_are_404_as_klaviyo_answers(account, api):
    for path, kind in (
        ("/api/lists/XyZ123/profiles", "list"),
        (f"/api/segments/{account.lists[0]['id']}/profiles", "segment"),  # a list's id is no segment's
        (f"/api/lists/{quote('a b/c', safe='')}/profiles/", "list"),
    ):
        resp = api(path)
        assert resp.status_code == 404, path
        err = error(resp)
        assert (err["code"], err["title"]) == ("not_found", "Not found.") and kind in err["detail"]


def test_a_cursor_belongs_to_its_group(account, api):
    first, second = nonempty(account, "lists")[:2]
    nxt = api(f"/api/lists/{first}/profiles", **{"page[size]": 1}).json()["links"]["next"]
    moved = nxt.replace(f"/lists/{first}/", f"/lists/{second}/")
    resp = requests.get(
        moved, headers={"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION}, timeout=10
    )
    assert resp.status_code == 400 and "cursor" in error(resp)["detail"].lower()


@pytest.mark.parametrize(("kind", "scope"), [("lists", "lists:read"), ("segments", "segments:read")])
def test_members_need_both_scopes(account, kind, scope):
    group = getattr(account, kind)[0]["id"]
    headers = {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION}
    for granted, missing in (({scope}, "profiles:read"), ({"profiles:read"}, scope)):
        with FakeKlaviyo(account, api_key=API_KEY, scopes=granted) as fake:
            resp = requests.get(f"{fake.url}/api/{kind}/{group}/profiles", headers=headers, timeout=10)
        assert resp.status_code == 403 and missing in error(resp)["detail"]


def test_only_the_list_endpoint_has_the_predictive_limit(account):
    # The spec's descriptions give the lower limit to /api/lists/{id}/profiles, not to the segments'.
    headers = {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION}
    params = {"additional-fields[profile]": "predictive_analytics"}
    with FakeKlaviyo(account, api_key=API_KEY, rate_limits=True) as fake:
        for kind, limit in (("lists", "150"), ("segments", str(ENDPOINTS["segment_profiles"].steady))):
            url = f"{fake.url}/api/{kind}/{getattr(account, kind)[0]['id']}/profiles"
            assert requests.get(url, params=params, headers=headers, timeout=10).headers["RateLimit-Limit"] == limit


def test_changes_show_in_the_next_read():
    account = generate_account(seed=11, events_per_metric=10, other_events_per_metric=2)
    group = account.lists[0]["id"]
    with FakeKlaviyo(account, api_key=API_KEY) as fake, requests.Session() as s:
        s.headers.update({"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION})
        api = lambda path, **p: s.get(fake.url + path, params=p, timeout=10)  # noqa: E731
        before = follow(api, f"/api/lists/{group}/profiles", **{"page[size]": 100})
        bookmark = max(m["attributes"]["joined_group_at"] for m in before)
        newer = f"greater-than(joined_group_at,{bookmark})"
        assert follow(api, f"/api/lists/{group}/profiles", filter=newer) == []

        added = account.add_profiles(2)
        outsider = next(p["id"] for p in account.profiles if p["id"] not in {m["id"] for m in before})
        account.add_members(group, [*added, outsider], at=GENERATOR_NOW + timedelta(days=1))
        leaving = before[0]["id"]
        account.remove_members(group, [leaving])
        account.update_profiles([before[1]["id"]])

        joined = follow(api, f"/api/lists/{group}/profiles", filter=newer)
        assert sorted(m["id"] for m in joined) == sorted([*added, outsider])
        assert {m["attributes"]["joined_group_at"] for m in joined} == {(GENERATOR_NOW + timedelta(days=1)).isoformat()}
        after = follow(api, f"/api/lists/{group}/profiles", **{"page[size]": 100})
        assert leaving not in {m["id"] for m in after} and len(after) == len(before) + 2
        updated = follow(api, "/api/profiles", filter=f"greater-than(updated,{GENERATOR_NOW.isoformat()})")
        assert sorted(p["id"] for p in updated) == sorted([*added, before[1]["id"]])
