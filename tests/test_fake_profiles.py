"""GET /api/profiles from the fake, over HTTP: the spec's shapes, its filters, sorts, cursors, sparse fieldsets and
additional fields, and the lower rate limit of predictive analytics."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import requests

from fake_klaviyo import ENDPOINTS, REVISION, FakeKlaviyo
from fake_klaviyo.filters import parse_datetime
from tests.kit import API_KEY, assert_valid, error, follow, pages

pytestmark = pytest.mark.fake

PROFILES = ENDPOINTS["profiles"]
SUPPRESSED = "subscriptions.email.marketing.suppression"
LIST_SUPPRESSED = "subscriptions.email.marketing.list_suppressions"


def instant(text: str) -> datetime:
    dt = parse_datetime(text)
    assert dt is not None
    return dt


def suppressions(profile: dict[str, Any], field: str) -> list[dict[str, str]]:
    """A served profile's global or list suppressions (``field``: SUPPRESSED or LIST_SUPPRESSED)."""
    marketing = (profile["attributes"]["subscriptions"]["email"] or {}).get("marketing") or {}
    return marketing.get(field.rsplit(".", 1)[1]) or []


@pytest.mark.parametrize("extra", [None, "subscriptions", "predictive_analytics", "subscriptions,predictive_analytics"])
def test_pages_fit_the_spec_and_add_exactly_the_additional_fields(account, api, extra):
    params = {"page[size]": 100} | ({"additional-fields[profile]": extra} if extra else {})
    docs = pages(api, "/api/profiles", **params)
    for doc in docs:
        assert_valid(doc, "/api/profiles")
    served = [p for doc in docs for p in doc["data"]]
    assert [p["id"] for p in served] == sorted(p["id"] for p in account.profiles), "every profile once, by id"
    plain = set(PROFILES.attributes) - {"subscriptions", "predictive_analytics"}
    wanted = set(extra.split(",")) if extra else set()
    for p in served:
        assert set(p["attributes"]) == plain | wanted
        assert {k: v for k, v in p["attributes"].items() if k in plain} == account.profile(p["id"])["attributes"]
        assert p["links"]["self"].endswith(f"/api/profiles/{p['id']}/")
        assert set(p["relationships"]) == set(PROFILES.relationships)
    if "subscriptions" in wanted:
        index = account.profiles.position(served[0]["id"])
        assert served[0]["attributes"]["subscriptions"] == account.profiles.subscriptions(index)


@pytest.mark.parametrize("sort", PROFILES.sort)
def test_every_sort_orders_every_profile_once(account, api, sort):
    served = follow(
        api, "/api/profiles", sort=sort, **{"page[size]": 100, "additional-fields[profile]": "subscriptions"}
    )
    assert Counter(p["id"] for p in served) == Counter(p["id"] for p in account.profiles)
    field, descending = sort.lstrip("-"), sort.startswith("-")

    def value(p: dict[str, Any]) -> Any:
        if field.startswith("subscriptions."):
            # The documented choice for several list suppressions: the latest.
            stamps = [instant(x["timestamp"]) for x in suppressions(p, field.rsplit(".", 1)[0])]
            return max(stamps, default=None)
        v = p["attributes"][field] if field != "id" else p["id"]
        return instant(v) if field in ("created", "updated") else v

    present = [(value(p), p["id"]) for p in served if value(p) is not None]
    absent = [p["id"] for p in served if value(p) is None]
    assert present == sorted(present, reverse=descending), "ordered, ties broken by id"
    assert absent == sorted(absent, reverse=descending)
    ids = [p["id"] for p in served]
    # Profiles without the value come last ascending and first descending.
    assert ids == ([*absent, *(i for _, i in present)] if descending else [*(i for _, i in present), *absent])


@pytest.mark.parametrize("field", ["created", "updated"])
def test_greater_than_and_less_than_exclude_the_bound_second(account, api, field):
    stamps = Counter(p["attributes"][field] for p in account.profiles)
    tied, n = max(stamps.items(), key=lambda kv: (kv[1], kv[0]))
    assert n >= 3, "several profiles share the second"
    for op, keep in (("greater-than", lambda t: t > instant(tied)), ("less-than", lambda t: t < instant(tied))):
        served = follow(api, "/api/profiles", filter=f"{op}({field},{tied})", sort=field, **{"page[size]": 100})
        expected = {p["id"] for p in account.profiles if keep(instant(p["attributes"][field]))}
        assert [p["id"] for p in served if p["attributes"][field] == tied] == []
        assert {p["id"] for p in served} == expected and len(served) == len(expected)
    both = follow(api, "/api/profiles", filter=f"greater-than({field},{tied}),less-than({field},2025-01-01T00:00:00Z)")
    assert {p["id"] for p in both} == {
        p["id"] for p in account.profiles if instant(tied) < instant(p["attributes"][field]) < instant("2025-01-01")
    }


def test_identifiers_pick_profiles(account, api):
    attrs = {p["id"]: p["attributes"] for p in account.profiles}
    quoted = next(i for i, a in attrs.items() if a["email"] and "'" in a["email"])
    plus = next(i for i, a in attrs.items() if a["email"] and "+" in a["email"])
    phones = [i for i, a in attrs.items() if a["phone_number"]][:3]
    external = next(i for i, a in attrs.items() if a["external_id"])
    cases = [
        (f'equals(email,"{attrs[quoted]["email"]}")', [quoted]),
        (
            f"any(email,{json.dumps([attrs[quoted]['email'], attrs[plus]['email'], 'nobody@example.com'])})",
            [quoted, plus],
        ),
        (f"any(phone_number,{json.dumps([attrs[i]['phone_number'] for i in phones])})", phones),
        (f"equals(external_id,'{attrs[external]['external_id']}')", [external]),
        (f"equals(id,'{quoted}'),equals(email,'{attrs[plus]['email']}')", []),
        (f"any(id,['{plus}','{quoted}']),greater-than(updated,1970-01-01T00:00:00Z)", [plus, quoted]),
    ]
    for filter_, expected in cases:
        served = follow(api, "/api/profiles", filter=filter_)
        assert [p["id"] for p in served] == sorted(expected), filter_


def test_suppression_filters(api):
    served = follow(api, "/api/profiles", **{"additional-fields[profile]": "subscriptions", "page[size]": 100})
    suppressed = [(p["id"], x) for p in served for x in suppressions(p, SUPPRESSED)]
    listed = [(p["id"], x) for p in served for x in suppressions(p, LIST_SUPPRESSED)]
    assert suppressed and listed
    bound = sorted(x["timestamp"] for _, x in suppressed)[len(suppressed) // 2]
    list_id = Counter(x["list_id"] for _, x in listed).most_common(1)[0][0]
    start, end = sorted(x["timestamp"] for _, x in listed)[1], sorted(x["timestamp"] for _, x in listed)[-2]
    cases = [
        (
            f"greater-or-equal({SUPPRESSED}.timestamp,{bound})",
            suppressed,
            lambda x: instant(x["timestamp"]) >= instant(bound),
        ),
        (f"less-than({SUPPRESSED}.timestamp,{bound})", suppressed, lambda x: instant(x["timestamp"]) < instant(bound)),
        (f"equals({SUPPRESSED}.reason,'HARD_BOUNCE')", suppressed, lambda x: x["reason"] == "HARD_BOUNCE"),
        (f"equals({LIST_SUPPRESSED}.list_id,'{list_id}')", listed, lambda x: x["list_id"] == list_id),
        # One list suppression must meet both bounds, as a join would ask.
        (
            f"greater-than({LIST_SUPPRESSED}.timestamp,{start}),less-or-equal({LIST_SUPPRESSED}.timestamp,{end})",
            listed,
            lambda x: instant(start) < instant(x["timestamp"]) <= instant(end),
        ),
    ]
    for filter_, held, keep in cases:
        got = follow(api, "/api/profiles", filter=filter_)
        expected = sorted({i for i, x in held if keep(x)})
        assert expected and [p["id"] for p in got] == expected, filter_


def test_sparse_fieldsets_on_profiles_and_their_additional_fields(account, api):
    fields = "email,location.city,subscriptions.email.marketing.consent"
    doc = api(
        "/api/profiles", **{"fields[profile]": fields, "additional-fields[profile]": "subscriptions", "page[size]": 50}
    ).json()  # not the spec's shape: a sparse fieldset drops the required keys it does not name
    for p in doc["data"]:
        full = account.profile(p["id"])["attributes"]
        assert p["attributes"]["email"] == full["email"]
        assert p["attributes"]["location"] == (
            None
            if full["location"] is None
            else {"city": full["location"]["city"]}
            if "city" in full["location"]
            else {}
        )
        assert set(p["attributes"]) == {"email", "location", "subscriptions"}


def test_events_include_the_profiles_they_name(account, api):
    doc = api("/api/events", include="profile", **{"page[size]": 50, "fields[profile]": "email,updated"}).json()
    named = {e["relationships"]["profile"]["data"]["id"] for e in doc["data"]}
    assert {p["id"] for p in doc["included"] if p["type"] == "profile"} == named
    for p in doc["included"]:
        full = account.profile(p["id"])["attributes"]
        assert p["attributes"] == {"email": full["email"], "updated": full["updated"]}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"page[size]": 101}, "page[size]"),
        ({"page[size]": 0}, "page[size]"),
        ({"sort": "joined_group_at"}, "sort"),
        ({"sort": "first_name"}, "sort"),
        ({"fields[profile]": "joined_group_at"}, "fields[profile]"),
        ({"additional-fields[profile]": "subscription"}, "additional-fields[profile]"),
        ({"additional-fields[list]": "subscriptions"}, "additional-fields[list]"),
        ({"include": "lists"}, "include"),
        ({"filter": "greater-or-equal(updated,2025-01-01T00:00:00Z)"}, "filter"),
        ({"filter": "equals(first_name,'Zoë')"}, "filter"),
        ({"filter": "equals(email,sarah@example.com)"}, "filter"),
        ({"filter": "greater-than(updated,'2025-01-01T00:00:00Z')"}, "filter"),
        ({"filter": f"equals({SUPPRESSED}.reason,['HARD_BOUNCE'])"}, "filter"),
    ],
)
def test_bad_parameters_are_400(api, params, parameter):
    resp = api("/api/profiles", **params)
    assert resp.status_code == 400, resp.text
    err = error(resp)
    assert (err["code"], err["title"], err["source"]) == ("invalid", "Invalid input.", {"parameter": parameter})


@pytest.mark.parametrize(
    ("params", "parameter"), [({"include": "push-tokens"}, "include"), ({"filter": "equals(_kx,'x')"}, "filter")]
)
def test_what_the_fake_does_not_model_is_501(api, params, parameter):
    resp = api("/api/profiles", **params)
    assert resp.status_code == 501 and error(resp)["source"] == {"parameter": parameter}


def test_profiles_need_their_scope(account):
    with FakeKlaviyo(account, api_key=API_KEY, scopes={"lists:read", "events:read"}) as fake:
        resp = requests.get(fake.url + "/api/profiles", headers=_headers(), timeout=10)
    assert resp.status_code == 403 and "profiles:read" in error(resp)["detail"]


def _headers() -> dict[str, str]:
    return {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION}


def test_predictive_analytics_has_lower_limits_of_its_own(account):
    predictive = {"additional-fields[profile]": "predictive_analytics", "page[size]": 1}
    with FakeKlaviyo(account, api_key=API_KEY, rate_limits=True) as fake, requests.Session() as s:
        get = lambda path, **p: s.get(fake.url + path, params=p, headers=_headers(), timeout=10)  # noqa: E731
        plain = [get("/api/profiles", **{"page[size]": 1}) for _ in range(20)]
        assert all(r.status_code == 200 and r.headers["RateLimit-Limit"] == "750" for r in plain)
        started = time.time()
        asked = [get("/api/profiles", **predictive) for _ in range(25)]
        windows = int(time.time()) - int(started) + 1  # the one-second windows the requests fell in
        ok = [r for r in asked if r.status_code == 200]
        assert ok and all(r.headers["RateLimit-Limit"] == "150" for r in ok)
        throttled = [r for r in asked if r.status_code == 429]
        assert len(ok) <= 10 * windows and all(r.headers["Retry-After"] == "1" for r in throttled)
        assert throttled or windows > 2, "10 a second: 25 requests within two seconds leave some throttled"
        assert get("/api/profiles").status_code == 200, "the endpoint's own window is not spent"
        both = get("/api/profiles", **{"additional-fields[profile]": "subscriptions,predictive_analytics"})
        assert both.status_code == 429 or both.headers["RateLimit-Limit"] == "150"
