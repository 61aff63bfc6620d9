"""The fake Klaviyo itself: strict where Klaviyo is strict, faithful where the tap relies on it."""

from __future__ import annotations

import http.client
import json
import random
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from fake_klaviyo import EMAIL_METRICS, ENDPOINTS, FakeKlaviyo, Faults, generate_account
from fake_klaviyo.filters import parse_datetime
from fake_klaviyo.ids import CROCKFORD, ulid
from fake_klaviyo.limits import RateLimiter
from fake_klaviyo.make_endpoints import DEFAULT_OUT, DEFAULT_SPEC, build
from fake_klaviyo.responses import ApiError
from tests.kit import REPO, error, fake_argv, fake_command, follow

pytestmark = pytest.mark.fake

KEY = "pk_test_fake_0123456789"
REVISION = "2026-07-15"
UTC = UTC


@pytest.fixture(scope="module")
def account():
    return generate_account(seed=7)


@pytest.fixture(scope="module")
def fake(account):
    with FakeKlaviyo(account, api_key=KEY, metrics_page_size=7) as server:
        yield server


def instant(text: str) -> datetime:
    # Events' datetime comes in Klaviyo's form, with a space for the "T".
    dt = parse_datetime(text.replace(" ", "T", 1))
    assert dt is not None
    return dt


# --- auth, scopes, revision, routing -------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, KEY, f"Bearer {KEY}", "Klaviyo-API-Key pk_wrong", f"klaviyo-api-key {KEY}", f"Klaviyo-API-Key {KEY} "],
)
def test_bad_credentials_are_401_without_echoing_the_key(fake, header):
    headers = {"revision": REVISION} | ({"Authorization": header} if header else {})
    resp = requests.get(fake.url + "/api/lists", headers=headers, timeout=10)
    assert resp.status_code == 401
    err = error(resp)
    assert err["code"] == "not_authenticated"
    assert "pk_wrong" not in resp.text and KEY not in resp.text


def test_missing_scope_is_403_naming_it(account):
    with FakeKlaviyo(account, api_key=KEY, scopes={"lists:read", "metrics:read"}) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        ok = requests.get(fake.url + "/api/lists", headers=headers, timeout=10)
        denied = requests.get(fake.url + "/api/events", headers=headers, timeout=10)
    assert ok.status_code == 200
    assert denied.status_code == 403
    err = error(denied)
    assert err["code"] == "permission_denied"
    assert "events:read" in err["detail"]


@pytest.mark.parametrize(
    ("revision", "status"),
    [
        (None, 400),
        ("2026-07-16", 400),
        ("2027-01-15", 400),
        ("2026-02-30", 400),
        ("latest", 400),
        ("2026/07/15", 400),
        ("2026-07-15", 200),
        ("2024-10-15", 200),
        ("2026-07-15.pre", 200),
    ],
)
def test_revision_header_is_required_and_checked(fake, revision, status):
    headers = {"Authorization": f"Klaviyo-API-Key {KEY}"} | ({"revision": revision} if revision else {})
    resp = requests.get(fake.url + "/api/flows", headers=headers, timeout=10)
    assert resp.status_code == status, resp.text
    if status == 400:
        assert error(resp)["source"] == {"parameter": "revision"}


def test_unknown_paths_are_404_and_other_methods_405(fake, api):
    assert error(api("/api/tags"))["code"] == "not_found"
    assert api("/api/lists/abc123").status_code == 404
    assert api("/api/lists/profiles").status_code == 404
    resp = requests.post(
        fake.url + "/api/lists", json={}, headers={"Authorization": f"Klaviyo-API-Key {KEY}"}, timeout=10
    )
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET"
    assert api("/api/lists/").status_code == 200  # Klaviyo's own links end in "/"


def test_accounts_returns_exactly_one_account(account, api):
    resp = api("/api/accounts")
    assert resp.status_code == 200
    body = resp.json()
    assert [a["id"] for a in body["data"]] == [account.account["id"]]
    assert body["links"]["next"] is None and body["links"]["prev"] is None
    assert api("/api/accounts", **{"page[size]": 1}).status_code == 400


# --- query parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/lists", {"limit": 5}, "limit"),
        ("/api/lists", {"fields[campaign]": "name"}, "fields[campaign]"),
        ("/api/lists", {"page[size]": 11}, "page[size]"),
        ("/api/lists", {"page[size]": 0}, "page[size]"),
        ("/api/lists", {"page[size]": "ten"}, "page[size]"),
        ("/api/events", {"page[size]": 1001}, "page[size]"),
        ("/api/metrics", {"page[size]": 5}, "page[size]"),
        ("/api/lists", {"sort": "opt_in_process"}, "sort"),
        ("/api/events", {"sort": "-uuid"}, "sort"),
        ("/api/metrics", {"sort": "name"}, "sort"),
        ("/api/lists", {"fields[list]": "name,colour"}, "fields[list]"),
        ("/api/events", {"include": "metric,campaign"}, "include"),
        ("/api/lists", {"page[cursor]": "not-a-cursor"}, "page[cursor]"),
    ],
)
def test_invalid_query_parameters_are_400(api, path, params, parameter):
    resp = api(path, **params)
    assert resp.status_code == 400, resp.text
    err = error(resp)
    assert err["code"] == "invalid"
    assert err["source"] == {"parameter": parameter}


def test_a_repeated_parameter_is_400(fake):
    headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
    resp = requests.get(fake.url + "/api/lists?sort=name&sort=id", headers=headers, timeout=10)
    assert resp.status_code == 400
    assert error(resp)["source"] == {"parameter": "sort"}


def test_page_size_max_can_be_made_stricter(account):
    with FakeKlaviyo(account, api_key=KEY, page_size_max={"events": 200}) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        get = lambda size: requests.get(fake.url + "/api/events", params={"page[size]": size}, headers=headers)  # noqa: E731
        assert get(200).status_code == 200
        assert get(201).status_code == 400


def test_sparse_fieldsets_return_only_the_asked_attributes(account, api):
    email = account.email_campaigns()
    data = api(
        "/api/campaigns",
        filter="equals(messages.channel,'email')",
        **{"fields[campaign]": "name,audiences.included"},
    ).json()["data"]
    by_id = {c["id"]: c for c in email}
    assert data, "the first page holds email campaigns"
    for row in data:
        want = by_id[row["id"]]["attributes"]
        assert row["attributes"] == {"name": want["name"], "audiences": {"included": want["audiences"]["included"]}}


def test_include_metric_on_events_and_attributions_of_no_conversion(account, api):
    metric = account.metric_by_name("Bounced Email")
    body = api(
        "/api/events",
        filter=f"equals(metric_id,'{metric['id']}')",
        include="metric,attributions",
        **{"fields[metric]": "name", "fields[event]": "datetime", "page[size]": 5},
    ).json()
    assert [(i["type"], i["id"], i["attributes"]) for i in body["included"]] == [
        ("metric", metric["id"], {"name": metric["attributes"]["name"]})
    ]
    assert all(set(e["attributes"]) == {"datetime"} for e in body["data"])
    # Email events are no conversions: nothing is attributed to them.
    assert all(e["relationships"]["attributions"]["data"] == [] for e in body["data"])


# --- filters -------------------------------------------------------------------------------------


def test_campaigns_require_a_channel_filter(api):
    assert error(api("/api/campaigns"))["source"] == {"parameter": "filter"}
    assert api("/api/campaigns", filter="equals(archived,false)").status_code == 400
    assert api("/api/campaigns", filter="and(equals(messages.channel,'sms'),equals(archived,false))").status_code == 200


@pytest.mark.parametrize(
    ("path", "filter_"),
    [
        ("/api/lists", "greater-than(colour,'red')"),  # unknown field
        ("/api/lists", "less-than(updated,2024-01-01T00:00:00Z)"),  # operator not allowed for the field
        ("/api/lists", "greater-than(updated,'2024-01-01T00:00:00Z')"),  # quoted datetime
        ("/api/lists", 'greater-than(updated,"2024-01-01")'),  # quoted date
        ("/api/lists", "greater-than(updated,2024-13-01T00:00:00Z)"),  # not a real date
        ("/api/lists", "greater-than(updated,2024-01-01T00:00:00 00:00)"),  # a '+' that became a space
        ("/api/lists", "equals(name,'Newsletter')"),  # name equals takes a list only
        ("/api/lists", "equals(name,[])"),  # empty list
        ("/api/lists", "equals(name,Newsletter)"),  # unquoted string
        ("/api/campaigns", "equals(messages.channel,'EMAIL')"),  # not in the enum
        ("/api/campaigns", "equals(messages.channel,['email'])"),  # list where a single value is wanted
        ("/api/campaigns", "contains(name,'x'"),  # unbalanced
        ("/api/campaigns", "or(equals(messages.channel,'email'),equals(messages.channel,'sms'))"),
        ("/api/flows", "equals(archived,'false')"),  # boolean given as a string
        ("/api/flows", "equals(trigger_type,'Webhook')"),
        ("/api/events", "greater-than(timestamp,'1700000000')"),  # number given as a string
        ("/api/events", "has(profile,'x')"),  # has() takes no value
        ("/api/events", "equals(metric_id,'a') trailing"),
        ("/api/metrics", "equals(name,'Opened Email')"),  # metrics filter on integration only
        ("/api/events", "eq(metric_id,'abc')"),  # unknown operator
    ],
)
def test_bad_filters_are_400_on_the_filter_parameter(api, path, filter_):
    if path == "/api/campaigns" and "messages.channel" not in filter_:
        filter_ = f"equals(messages.channel,'email'),{filter_}"
    resp = api(path, filter=filter_)
    assert resp.status_code == 400, resp.text
    assert error(resp)["source"] == {"parameter": "filter"}


def test_api_metrics_and_metrics_without_integration_are_served_by_metric_id(account, api):
    # The "custom metrics" the spec says the metric_id filter refuses are Klaviyo's custom-metric resources
    # (/api/custom-metrics, which combine metrics), not metrics sent through the API: those are metrics like any.
    decoy = account.metric_by_name("Opened Email", integration="API")
    custom = account.metric_by_name("Lead 🚀 Captured", integration=None)
    assert decoy and custom
    for metric in (decoy, custom):
        rows = follow(api, "/api/events", filter=f"equals(metric_id,'{metric['id']}')")
        expected = [e["id"] for e in reversed(account.events_for_metric(metric["id"]))]
        assert expected and [r["id"] for r in rows] == expected


def test_events_by_metric_and_datetime_range(account, api):
    metric = account.metric_by_name("Clicked Email")
    assert metric is not None
    start, end = "2024-06-01T00:00:00+02:00", "2025-03-01"
    rows = follow(
        api,
        "/api/events",
        filter=f'and(equals(metric_id,"{metric["id"]}"),greater-or-equal(datetime,{start}),less-than(datetime,{end}))',
        sort="datetime",
        **{"page[size]": 50},
    )
    expected = [
        e["id"]
        for e in account.events_for_metric(metric["id"])
        if instant(start) <= instant(e["attributes"]["datetime"]) < instant(end)
    ]
    assert 0 < len(expected) < len(account.events_for_metric(metric["id"]))
    assert [r["id"] for r in rows] == expected
    assert all(r["relationships"]["metric"]["data"] == {"type": "metric", "id": metric["id"]} for r in rows)


def test_greater_than_excludes_events_in_the_boundary_second(account, api):
    metric = account.metric_by_name("Received Email")
    assert metric is not None
    events = list(account.events_for_metric(metric["id"]))
    second = Counter(e["attributes"]["datetime"] for e in events).most_common(1)[0]
    assert second[1] >= 3, "the generator makes bursts of events in the same second"
    stamp = second[0].replace(" ", "T", 1)  # a filter's literal has the "T"
    strictly_after = follow(
        api, "/api/events", filter=f"equals(metric_id,'{metric['id']}'),greater-than(datetime,{stamp})"
    )
    at_or_after = follow(
        api,
        "/api/events",
        filter=f"equals(metric_id,'{metric['id']}'),greater-or-equal(timestamp,{instant(stamp).timestamp():.0f})",
    )
    assert len(at_or_after) - len(strictly_after) == second[1]


def test_events_of_several_metrics_and_default_newest_first(account, api):
    ids = [account.metric_by_name(n)["id"] for n in ("Bounced Email", "Dropped Email")]
    rows = follow(api, "/api/events", filter=f"equals(metric_id,{json.dumps(ids)})", **{"page[size]": 1000})
    expected = [*account.events_for_metric(ids[0]), *account.events_for_metric(ids[1])]
    assert Counter(r["id"] for r in rows) == Counter(e["id"] for e in expected)
    keys = [(r["attributes"]["timestamp"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)


def test_campaigns_by_channel(account, api):
    for channel in ("email", "sms", "mobile_push"):
        rows = follow(api, "/api/campaigns", filter=f"equals(messages.channel,'{channel}')")
        assert [r["id"] for r in rows] == [c["id"] for c in account.campaigns_for_channel(channel)]
    email = len(account.email_campaigns())
    assert 0.6 < email / len(account.campaigns) < 0.8


def test_lists_updated_after(account, api):
    cut = "2025-11-01T00:00:00Z"
    rows = follow(api, "/api/lists", filter=f"greater-than(updated,{cut})")
    expected = {x["id"] for x in account.lists if instant(x["attributes"]["updated"]) > instant(cut)}
    assert 0 < len(expected) < len(account.lists)
    assert {r["id"] for r in rows} == expected


@pytest.mark.parametrize(
    ("path", "filter_", "predicate"),
    [
        ("/api/flows", "starts-with(name,'Welcome')", lambda a: a["name"].startswith("Welcome")),
        ("/api/flows", "equals(status,'draft')", lambda a: a["status"] == "draft"),
        ("/api/flows", "equals(trigger_type,'Metric')", lambda a: a["trigger_type"] == "Metric"),
        ("/api/segments", "equals(is_active,false)", lambda a: a["is_active"] is False),
        (
            "/api/metrics",
            "equals(integration.category,'API')",
            lambda a: (a["integration"] or {}).get("category") == "API",
        ),
        (
            "/api/metrics",
            "equals(integration.name,'Shopify')",
            lambda a: (a["integration"] or {}).get("name") == "Shopify",
        ),
    ],
)
def test_simple_filters_match_the_data(account, api, path, filter_, predicate):
    collection = getattr(account, path.rsplit("/", 1)[1])
    expected = [r["id"] for r in collection if predicate(r["attributes"])]
    assert expected, "the generated account should have matching records"
    assert [r["id"] for r in follow(api, path, filter=filter_)] == expected


def test_sort_breaks_ties_by_id_and_puts_nulls_last(account, api):
    for sort, reverse in (("name", False), ("-name", True)):  # storage order cannot pass both
        rows = follow(api, "/api/lists", sort=sort)
        names = [(r["attributes"]["name"], r["id"]) for r in rows]
        assert names == sorted(names, reverse=reverse)
    assert len({n for n, _ in names}) < len(names), "duplicate names exercise the tie-break"
    flows = follow(api, "/api/flows", sort="trigger_type")
    triggers = [f["attributes"]["trigger_type"] for f in flows]
    assert None in triggers and triggers.index(None) == len([t for t in triggers if t is not None])


# --- pagination ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "size"), [("/api/lists", 10), ("/api/segments", 10), ("/api/flows", 50)])
def test_links_next_collects_every_id_once_at_the_max_page_size(account, api, path, size):
    rows = follow(api, path, **{"page[size]": size})
    collection = getattr(account, path.rsplit("/", 1)[1])
    assert [r["id"] for r in rows] == [r["id"] for r in collection]
    assert len(collection) > size


def test_events_page_at_1000_and_links_are_complete(fake, api):
    big = generate_account(seed=3, events_per_metric=2100, lists=0, segments=0, campaigns=0, flows=0, metrics=8)
    with FakeKlaviyo(big, api_key=KEY) as server:
        metric = big.metric_by_name("Opened Email")
        params = {"filter": f"equals(metric_id,'{metric['id']}')", "sort": "-datetime", "page[size]": "1000"}
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        first = requests.get(server.url + "/api/events", params=params, headers=headers, timeout=10).json()
        # As Klaviyo sends them: no previous page is a null `prev`, not a missing one (klaviyo/openapi#5).
        assert first["links"]["prev"] is None
        nxt = urlsplit(first["links"]["next"])
        assert f"{nxt.scheme}://{nxt.netloc}" == server.url
        q = parse_qs(nxt.query)
        assert {k: v for k, v in q.items() if k != "page[cursor]"} == {k: [v] for k, v in params.items()}
        second = requests.get(first["links"]["next"], headers=headers, timeout=10).json()
        assert second["links"]["prev"] and second["links"]["next"]
        assert second["links"]["self"] == first["links"]["next"]
        rows = follow(
            lambda path, **p: requests.get(server.url + path, params=p, headers=headers, timeout=10),
            "/api/events",
            **params,
        )
    assert len(rows) == 2100 and len({r["id"] for r in rows}) == 2100
    assert [r["id"] for r in rows] == [e["id"] for e in reversed(big.events_for_metric(metric["id"]))]


def test_metrics_page_at_the_configured_length(account, api):
    first = api("/api/metrics").json()
    assert len(first["data"]) == 7
    assert [m["id"] for m in follow(api, "/api/metrics")] == [m["id"] for m in account.metrics]


@pytest.mark.parametrize(
    "rewrite",
    [
        {"filter": "equals(messages.channel,'sms')"},
        {"page[size]": "7"},
        {"sort": "name"},
        {"fields[campaign]": "name"},
        {"page[cursor]": "eyJvIjoxMCwicSI6IjAwMDAifQ"},  # well-formed base64, wrong query hash
        {"page[cursor]": "!!!"},
    ],
)
def test_a_cursor_only_works_with_its_own_query(api, rewrite):
    first = api("/api/campaigns", filter="equals(messages.channel,'email')", **{"page[size]": 10}).json()
    parts = urlsplit(first["links"]["next"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | rewrite
    url = urlunsplit(parts._replace(query=urlencode(query)))
    resp = requests.get(url, headers={"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}, timeout=10)
    assert resp.status_code == 400, resp.text
    assert "cursor" in error(resp)["detail"].lower()


def test_following_a_next_link_with_the_filter_reapplied_fails(api):
    # The bug two Klaviyo taps shipped: re-adding the first page's filter onto links.next.
    first = api("/api/campaigns", filter="equals(messages.channel,'email')", **{"page[size]": 10}).json()
    resp = requests.get(
        first["links"]["next"],
        params={"filter": "equals(messages.channel,'email')"},
        headers={"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION},
        timeout=10,
    )
    assert resp.status_code == 400


def _nasty(value: Any) -> bool:
    """Whether a decoded value holds a null, a non-ASCII or control character, a quote or a backslash."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.isascii() or any(c in value for c in '"\\\t\n')
    if isinstance(value, dict):
        return any(_nasty(k) or _nasty(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_nasty(v) for v in value)
    return False


def test_events_fast_path_serves_what_the_slow_path_would(account, fake, api):
    # Plain events pages are spliced from once-encoded events; a sparse fieldset naming every
    # attribute still takes the slow path (render, then json.dumps), so the two must agree.
    every = ",".join(sorted(ENDPOINTS["events"].attributes))
    fast = api("/api/events", sort="datetime", **{"page[size]": 1000}).json()["data"]
    slow = api("/api/events", sort="datetime", **{"page[size]": 1000, "fields[event]": every}).json()["data"]
    assert len(fast) == 1000 and fast == slow
    assert [e["id"] for e in fast] == [e["id"] for e in account.events[:1000]]
    props = [e["attributes"]["event_properties"] for e in fast]
    assert sum(map(_nasty, props)) > 500 and any("Ünïcode Key 🔑" in p for p in props)
    assert any("Note\tTab" in p and p["Note\tTab"] is None for p in props)

    # Byte for byte, in process: across filters, orders, page ends and base URLs that need escaping
    # (a backslash sends the last to the slow path).
    ep = ENDPOINTS["events"]
    opened, clicked = (account.metric_by_name(n)["id"] for n in ("Opened Email", "Clicked Email"))
    queries = [
        [("page[size]", "1000")],
        [("sort", "datetime"), ("page[size]", "1000")],
        [("filter", f"equals(metric_id,'{opened}')"), ("sort", "-datetime"), ("page[size]", "137")],
        [("filter", f"equals(metric_id,['{opened}','{clicked}'])"), ("sort", "timestamp")],
        [("filter", f"equals(profile_id,'{account.events[5]['relationships']['profile']['data']['id']}')")],
        [("filter", "greater-than(datetime,2030-01-01T00:00:00Z)")],
    ]
    for pairs in queries:
        q = fake._queries.parse(ep, pairs)
        for base in (fake.url, 'http://ex"am%sple.ü\t:1', "http://back\\slash\\u0000i:1"):
            for offset in (0, 137, 2900):
                q.offset = offset
                want = fake._documents.document(ep, q, base)
                got = fake._documents.body(ep, q, base)
                assert json.loads(got) == want
                assert got == json.dumps(want, ensure_ascii=False, separators=(",", ":")).encode()


# --- rate limits, faults, transport -------------------------------------------------------------


def test_burst_limit_answers_429_with_retry_after(account):
    with FakeKlaviyo(account, api_key=KEY, rate_limits={"lists": (2, 1000)}) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        with requests.Session() as s:
            resps = [s.get(fake.url + "/api/lists", headers=headers, timeout=10) for _ in range(5)]
        ok = [r for r in resps if r.status_code == 200]
        throttled = [r for r in resps if r.status_code == 429]
        assert throttled, "five requests within at most two 1-second windows exceed a burst of 2"
        assert ok[0].headers["RateLimit-Limit"] == "1000"
        assert int(ok[0].headers["RateLimit-Remaining"]) == 999
        for r in throttled:
            assert r.headers["Retry-After"] == "1"
            err = error(r)
            assert err["code"] == "throttled" and err["title"] == "Request was throttled."
            assert "RateLimit-Remaining" not in r.headers
        assert fake.stats()["throttled"] == len(throttled)


def test_steady_limit_answers_429_until_the_minute_ends(account):
    with FakeKlaviyo(account, api_key=KEY, rate_limits={"flows": (100, 3)}) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        resps = [requests.get(fake.url + "/api/flows", headers=headers, timeout=10) for _ in range(7)]
    waits = [int(r.headers["Retry-After"]) for r in resps if r.status_code == 429]
    assert waits and all(1 <= w <= 60 for w in waits)
    assert "Expected available in" in error(next(r for r in resps if r.status_code == 429))["detail"]


def test_spec_rate_limits_apply_when_enabled(account):
    with FakeKlaviyo(account, api_key=KEY, rate_limits=True) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        statuses = [requests.get(fake.url + "/api/accounts", headers=headers, timeout=10).status_code for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses  # accounts: burst 1/s


@pytest.mark.parametrize("kind", ["500", "503", "429"])
def test_status_faults(account, kind):
    with FakeKlaviyo(account, api_key=KEY, faults=Faults(rate=1.0, kinds=(kind,))) as fake:
        resp = requests.get(fake.url + "/api/lists", headers={"revision": REVISION}, timeout=10)
        assert resp.status_code == int(kind)
        assert error(resp)["status"] == int(kind)
        if kind == "429":
            assert resp.headers["Retry-After"] == "1"
        assert fake.stats()["faults"] == {kind: 1}


@pytest.mark.parametrize("wait", ["86400", "inf", "soon"])
def test_an_injected_429_asks_for_the_wait_it_is_given(account, wait):
    with FakeKlaviyo(account, api_key=KEY, faults=Faults(rate=1.0, kinds=("429",), retry_after=wait)) as fake:
        resp = requests.get(fake.url + "/api/lists", headers={"revision": REVISION}, timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == wait
    assert error(resp)["detail"] == f"Request was throttled. Expected available in {wait} seconds."


def test_a_request_counts_in_the_second_it_arrived_in():
    # Handled out of order (the fake's threads were busy): each counts in its own second, as at Klaviyo's edge.
    limiter = RateLimiter({"lists": (2, 100)})
    limiter.acquire("lists", 10.5)
    limiter.acquire("lists", 11.0)
    limiter.acquire("lists", 10.9)
    with pytest.raises(ApiError) as exc:
        limiter.acquire("lists", 10.95)
    assert exc.value.status == 429
    limiter.acquire("lists", 11.5)  # the second second still has room for one
    with pytest.raises(ApiError):
        limiter.acquire("lists", 11.6)


def test_faults_can_be_kept_to_the_requests_a_query_names(account):
    only = account.lists[0]["id"]
    with FakeKlaviyo(account, api_key=KEY, faults=Faults(rate=1.0, kinds=("503",), only=only)) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        named = requests.get(fake.url + f"/api/lists?filter=equals(id,'{only}')", headers=headers, timeout=10)
        other = requests.get(fake.url + "/api/lists", headers=headers, timeout=10)
        assert (named.status_code, other.status_code) == (503, 200)
        assert fake.stats()["faults"] == {"503": 1}


def test_drop_fault_closes_without_a_response(account):
    with FakeKlaviyo(account, api_key=KEY, faults=Faults(rate=1.0, kinds=("drop",))) as fake:
        with pytest.raises(requests.ConnectionError):
            requests.get(fake.url + "/api/lists", headers={"revision": REVISION}, timeout=10)
        assert [(r.status, r.fault) for r in fake.requests] == [(0, "drop")]


def test_truncate_fault_sends_half_the_promised_body(account):
    with FakeKlaviyo(account, api_key=KEY, faults=Faults(rate=1.0, kinds=("truncate",))) as fake:
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
        conn.request("GET", "/api/lists", headers={"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION})
        resp = conn.getresponse()
        assert resp.status == 200
        promised = int(resp.headers["Content-Length"])
        with pytest.raises(http.client.IncompleteRead) as exc:
            resp.read()
        assert len(exc.value.partial) == promised // 2
        conn.close()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(fake.url + "/api/lists", headers={"revision": REVISION}, timeout=10)


def test_faults_are_deterministic_and_counted(account):
    def run() -> list[str | None]:
        with FakeKlaviyo(account, api_key=KEY, faults=Faults(rate=0.5, kinds=("500", "503", "429"), seed=4)) as fake:
            for _ in range(30):
                requests.get(fake.url + "/api/lists", headers={"revision": REVISION}, timeout=10)
            stats = fake.stats()
            faults = [r.fault for r in fake.requests]
        assert sum(stats["faults"].values()) == len([f for f in faults if f])
        return faults

    first = run()
    assert first == run()
    assert 5 < len([f for f in first if f]) < 25


def test_requests_are_logged_without_the_key(fake, api):
    fake.clear_requests()
    api("/api/segments", sort="-updated", **{"fields[segment]": "name,is_active"})
    (rec,) = fake.requests
    assert (rec.method, rec.path, rec.status, rec.endpoint) == ("GET", "/api/segments", 200, "segments")
    assert rec.query == {"sort": ["-updated"], "fields[segment]": ["name,is_active"]}
    assert "authorization" not in rec.headers and rec.headers["revision"] == REVISION
    assert KEY not in repr(rec)


def test_latency_overlaps_across_concurrent_requests(account):
    with FakeKlaviyo(account, api_key=KEY, latency=0.3) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(requests.get(fake.url + "/api/lists", headers=headers).status_code)
            )
            for _ in range(5)
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    assert results == [200] * 5
    # Each waits its own latency, side by side: one after another would take five times as long.
    assert 0.3 <= elapsed < 5 * 0.3


def test_connections_are_kept_alive(fake):
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    headers = {"Authorization": f"Klaviyo-API-Key {KEY}", "revision": REVISION}
    for path in ("/api/lists", "/api/nothing", "/api/flows"):
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        assert len(body) == int(resp.headers["Content-Length"])
        assert not resp.will_close
    conn.close()


def test_the_command_line_sets_page_sizes_and_profiles():
    flags = ["--events-per-metric", "20", "--events-page-size-max", "50", "--metrics-page-size", "9"]
    flags += ["--profiles", "321"]
    with fake_command(*flags, api_key=KEY) as fake:
        assert fake.get("/api/events", **{"page[size]": 50}).status_code == 200
        assert fake.get("/api/events", **{"page[size]": 51}).status_code == 400
        assert len(fake.get("/api/metrics").json()["data"]) == 9
        assert len(follow(fake.get, "/api/profiles", **{"page[size]": 100})) == 321
    assert re.search(rb"encoded \d+ events", fake.stderr)
    too_few = subprocess.run(
        fake_argv(*flags[:-1], "5", api_key=KEY), cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert too_few.returncode == 2 and "profiles must be at least" in too_few.stderr


# --- generated data ------------------------------------------------------------------------------


def test_generation_is_deterministic(account):
    again = generate_account(seed=7)
    assert again.lists == account.lists and again.campaigns == account.campaigns
    assert list(again.events[:50]) == list(account.events[:50])
    assert generate_account(seed=8).lists != account.lists


def test_ids_look_like_klaviyo_ids_and_are_unique(account):
    short = [r["id"] for r in (*account.lists, *account.segments, *account.flows, *account.metrics)]
    long_ = [c["id"] for c in account.campaigns] + [e["id"] for e in account.events]
    assert all(re.fullmatch(r"[A-Za-z0-9]{6}", i) for i in short)
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", i) for i in long_)
    assert len(set(short + long_)) == len(short) + len(long_)
    assert len({e["attributes"]["uuid"] for e in account.events}) == len(account.events)


def test_ids_and_uuids_are_formatted_as_the_plain_algorithms_would(account):
    def plain_ulid(value: int) -> str:
        return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))

    rng = random.Random(3)
    for bits in (1, 64, 128, 130, 140):
        for _ in range(200):
            v = rng.getrandbits(bits)
            assert ulid(v) == plain_ulid(v)
    for e in account.events[::97]:
        u = uuid.UUID(e["attributes"]["uuid"])
        assert str(u) == e["attributes"]["uuid"] and u.version == 1
        assert int(u.time) // 10_000_000 - 12_219_292_800 == e["attributes"]["timestamp"]


def test_email_metrics_and_decoys(account):
    for name in EMAIL_METRICS:
        metric = account.metric_by_name(name)
        assert metric is not None and metric["attributes"]["integration"]["category"] == "Internal"
        assert len(account.events_for_metric(metric["id"])) == 300
    assert account.metric_by_name("Marked Email as Spam")["attributes"]["name"] == "Marked email as spam"
    names = [m["attributes"]["name"] for m in account.metrics]
    assert names.count("Opened Email") == 2
    decoy = account.metric_by_name("Opened Email", integration="API")
    assert names.index("Opened Email") == account.metrics.index(decoy), "the decoy comes first"
    assert len(account.events_for_metric(decoy["id"])) > 0
    assert any(m["attributes"]["integration"] is None for m in account.metrics)
    thin = generate_account(seed=7, missing_metrics=("Dropped Email",))
    assert thin.metric_by_name("dropped email") is None and thin.metric_by_name("Opened Email") is not None


def test_events_are_consistent_and_bursty(account):
    events = list(account.events)
    keys = [(e["attributes"]["timestamp"], e["id"]) for e in events]
    assert keys == sorted(keys)
    for e in events[:500]:
        a = e["attributes"]
        assert instant(a["datetime"]).timestamp() == a["timestamp"]
        # As Klaviyo really writes it, with a space for the spec's "T".
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00", a["datetime"])
    seconds = Counter((e["relationships"]["metric"]["data"]["id"], e["attributes"]["timestamp"]) for e in events)
    assert sum(1 for n in seconds.values() if n >= 3) > 50
    span = (events[-1]["attributes"]["timestamp"] - events[0]["attributes"]["timestamp"]) / 86400
    assert 650 < span <= 730
    assert events[-1]["attributes"]["timestamp"] < account.now.timestamp()


def test_future_events_are_after_the_real_now():
    acc = generate_account(seed=2, future_events=12, events_per_metric=10)
    now = time.time()
    assert sum(1 for e in acc.events if e["attributes"]["timestamp"] > now) == 12


def test_resources_use_only_spec_attributes_and_nulls(account):
    for name in ("lists", "segments", "campaigns", "flows", "metrics"):
        allowed = set(ENDPOINTS[name].attributes)
        for r in getattr(account, name):
            assert set(r["attributes"]) <= allowed, name
    a = [c["attributes"] for c in account.campaigns]
    assert any(x["audiences"]["excluded"] is None for x in a) and any(x["audiences"]["excluded"] == [] for x in a)
    assert any(x["scheduled_at"] is None for x in a) and any(x["send_time"] is None for x in a)
    assert any("." in x["created_at"] for x in a) and any("." not in x["created_at"] for x in a)
    audience_ids = {x["id"] for x in (*account.lists, *account.segments)}
    included = {i for x in a for i in x["audiences"]["included"]}
    assert included <= audience_ids and included & {x["id"] for x in account.segments}
    assert any(x["attributes"]["opt_in_process"] is None for x in account.lists)
    assert any(x["attributes"]["trigger_type"] is None for x in account.flows)


def test_endpoints_json_matches_the_spec():
    checked_in = json.loads(DEFAULT_OUT.read_text(encoding="utf-8"))
    assert build(json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))) == checked_in
