"""A key without a scope some selected stream needs stops the run before it writes anything, naming every missing
scope and what needs it in one line; a key with every scope costs a run no extra request."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from fake_klaviyo.spec import ALL_READ_SCOPES
from tap_klaviyo import endpoints
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.codec import decode_document
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.first_requests import CHEAPEST, _ask_the_rest
from tap_klaviyo.streams.table import STREAMS
from tests.kit import API_KEY, CHANNELS, DEFAULT_STREAMS, EVENT_METRICS, TapRun, run_tap, select

ROWS = {row.name: row for row in STREAMS}


def needing(scope: str) -> list[str]:
    """The default streams whose requests need `scope`: those reading an endpoint that asks for it, and those
    derived from them."""

    def scopes(name: str) -> set[str]:
        row = ROWS[name]
        if row.derived_from:
            return scopes(row.derived_from[0])
        return {s for source in row.sources for s in source.endpoint.scopes}

    return sorted(name for name in DEFAULT_STREAMS if scope in scopes(name))


EVENT_STREAMS = sorted(EVENT_METRICS)
CAMPAIGN_STREAMS = needing("campaigns:read")
FLOW_STREAMS = needing("flows:read")
STATE = {
    "bookmarks": {
        "opened_email": {"replication_key": "datetime", "replication_key_value": "2025-03-01T00:00:00+00:00"},
        "flows": {"replication_key": "updated", "replication_key_value": "2024-01-01T00:00:00+00:00"},
    }
}


def streams(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
    return f"stream{'s' if len(names) > 1 else ''} {listed}"


def assert_stopped_before_writing(result: TapRun, state: str | None = None) -> str:
    """Exit 1 with one error line and no traceback, nothing on stdout (no RECORD, no STATE), the state file as it
    was; the error line."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo: error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not [m for m in result.messages if m["type"] == "RECORD"], "no record before the scopes are known"
    assert result.stdout == "", "nothing is written: no SCHEMA, RECORD or STATE"
    if state is not None:
        assert result.state_file_after == state
    return errors[0]


@pytest.mark.e2e
@pytest.mark.parametrize("concurrency", [16, 1])
def test_a_missing_scope_stops_the_run_before_any_record(account, concurrency):
    # Flows come after the event streams and the campaigns in the SDK's order: without the check, they would have
    # written their records first.
    with FakeKlaviyo(account, api_key=API_KEY, scopes=ALL_READ_SCOPES - {"flows:read"}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "concurrency": concurrency}
        result = run_tap(config, state=json.dumps(STATE))
    error = assert_stopped_before_writing(result, json.dumps(STATE))
    assert (
        f"The API key lacks the scope 'flows:read' (for {streams(FLOW_STREAMS)}): give the key read access to it in "
        "Klaviyo (Settings > API keys), or deselect the streams that need it. Klaviyo said: " in error
    ), error


@pytest.mark.e2e
@pytest.mark.parametrize("concurrency", [16, 1])
def test_every_missing_scope_is_named_in_one_line_with_the_streams_that_need_it(account, concurrency):
    lacking = {"flows:read", "events:read", "campaigns:read"}
    with FakeKlaviyo(account, api_key=API_KEY, scopes=ALL_READ_SCOPES - lacking) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url, "concurrency": concurrency}, state=STATE)
    error = assert_stopped_before_writing(result)
    assert (
        f"lacks the scopes 'campaigns:read' (for {streams(CAMPAIGN_STREAMS)}), 'events:read' (for "
        f"{streams(EVENT_STREAMS)}) and 'flows:read' (for {streams(FLOW_STREAMS)}): give the key read access to them"
        in error
    ), error


@pytest.mark.e2e
def test_a_scope_no_request_could_reach_is_asked_cheaply(account):
    # Without metrics:read no event stream finds its metric, so none asks for events: one request with one event
    # (and one field) finds that events:read is missing too.
    lacking = {"metrics:read", "events:read"}
    with FakeKlaviyo(account, api_key=API_KEY, scopes=ALL_READ_SCOPES - lacking) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url})
        events = [r for r in fake.requests if r.path == "/api/events"]
    error = assert_stopped_before_writing(result)
    assert (
        f"lacks the scopes 'events:read' (for {streams(EVENT_STREAMS)}) and 'metrics:read' (for "
        f"{streams(sorted([*EVENT_STREAMS, 'metrics']))})" in error
    ), error
    assert len(events) == 1 and events[0].query == {"fields[event]": ["datetime"], "page[size]": ["1"]}


@pytest.mark.e2e
def test_the_setting_that_needs_a_scope_is_named_beside_the_streams(account):
    with FakeKlaviyo(account, api_key=API_KEY, scopes=ALL_READ_SCOPES - {"accounts:read", "flows:read"}) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url, "add_account_id": True})
    error = assert_stopped_before_writing(result)
    assert (
        "lacks the scopes 'accounts:read' (for setting `add_account_id`) and 'flows:read' (for "
        f"{streams(FLOW_STREAMS)}): give the key read access to them in Klaviyo (Settings > API keys), or deselect "
        "the streams that need them, or turn `add_account_id` off." in error
    ), error


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        # The lists and segments are read, then the first list's members are refused: profiles:read is missing.
        ({"lists:read", "segments:read"}, "the scope 'profiles:read'"),
        # The lists are refused: the segments and the profiles are each asked with one small request.
        ({"profiles:read"}, "the scopes 'lists:read' (for stream 'lists_and_segments_members') and 'segments:read'"),
    ],
)
def test_members_need_their_groups_scope_and_profiles_read(account, granted, missing):
    with FakeKlaviyo(account, api_key=API_KEY, scopes=granted) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), {"lists_and_segments_members"}))
    error = assert_stopped_before_writing(result)
    assert f"lacks {missing} (for stream 'lists_and_segments_members')" in error, error


@pytest.mark.e2e
def test_members_of_an_account_without_lists_or_segments_still_need_profiles_read():
    account = generate_account(seed=3, lists=0, segments=0, events_per_metric=10)
    for scopes, code in ((ALL_READ_SCOPES - {"profiles:read"}, 1), (ALL_READ_SCOPES, 0)):
        with FakeKlaviyo(account, api_key=API_KEY, scopes=scopes) as fake:
            config = {"api_key": API_KEY, "api_url": fake.url}
            result = run_tap(config, catalog=select(run_tap(config, "--discover"), {"lists_and_segments_members"}))
            profiles = [r for r in fake.requests if r.path == "/api/profiles"]
        assert result.returncode == code, result.stderr[-2000:]
        # No member to ask for: one profile, one field, tells whether the key may read profiles.
        assert [r.query for r in profiles] == [{"fields[profile]": ["created"], "page[size]": ["1"]}]
        if code:
            assert "lacks the scope 'profiles:read' (for stream 'lists_and_segments_members')" in result.stderr
        else:
            assert result.records("lists_and_segments_members") == []


def first_pages(requests: list) -> Counter[str]:
    """The requests that are no page of a cursor, by endpoint path."""
    return Counter(r.path.rstrip("/") for r in requests if "page[cursor]" not in r.query)


@pytest.mark.e2e
def test_a_key_with_every_scope_costs_the_run_no_request(account, fake, config):
    result = run_tap(config)
    assert result.returncode == 0, result.stderr[-2000:]
    # Each entity endpoint's first page once, the metrics once, and per event stream its first page and the one
    # newest event beside it: no request was added to learn the scopes.
    # Campaigns are listed one channel at a time.
    walks = {"/api/lists": 1, "/api/segments": 1, "/api/campaigns": len(CHANNELS), "/api/flows": 1}
    expected = {**walks, "/api/metrics": 1}
    assert first_pages(fake.requests) == {**expected, "/api/events": 2 * len(EVENT_METRICS)}
    assert all(r.status == 200 for r in fake.requests)


@pytest.mark.e2e
def test_one_page_at_a_time_asks_each_scope_once_with_one_record(account, fake, config):
    # Nothing is read ahead at concurrency 1: lists, segments, campaigns, flows and events are each asked once with
    # the cheapest request, before anything is written.
    result = run_tap({**config, "concurrency": 1})
    assert result.returncode == 0, result.stderr[-2000:]
    small = [r for r in fake.requests if r.query.get("page[size]") == ["1"]]
    assert sorted(r.path for r in small) == sorted(
        f"/api/{n}" for n in ("lists", "segments", "campaigns", "flows", "events")
    )
    assert all(any(k.startswith("fields[") for k in r.query) for r in small)
    walks = {"/api/lists": 1, "/api/segments": 1, "/api/campaigns": len(CHANNELS), "/api/flows": 1}
    expected = {path: count + 1 for path, count in walks.items()} | {"/api/metrics": 1}
    assert first_pages(fake.requests) == {**expected, "/api/events": len(EVENT_METRICS) + 1}


def test_each_cheapest_request_is_one_klaviyo_answers(fake):
    client = KlaviyoClient(api_key=API_KEY, api_url=fake.url, revision="2026-07-15", user_agent="test")
    for scope, endpoint in CHEAPEST.items():
        assert endpoint.scopes == (scope,) and endpoint.cheapest, scope
        size = 1 if endpoint.page_sizes else None
        body = client.first_page(
            endpoint, dict(endpoint.cheapest), stream=scope, decode=decode_document, page_size=size
        )
        assert body["data"], f"the fake account holds some of {endpoint.path}"
        assert size is None or len(body["data"]) == 1, scope
    assert [r.status for r in fake.requests] == [200] * len(CHEAPEST)
    # Every scope an endpoint of the tap needs has its cheapest request.
    needed = {scope for e in vars(endpoints).values() if isinstance(e, endpoints.Endpoint) for scope in e.scopes}
    assert set(CHEAPEST) == needed


def test_a_refusal_no_missing_scope_explains_stops_the_run_as_klaviyo_said_it(requests_mock):
    # The lists and the profiles are answered, so the key holds both scopes the members of a list need; Klaviyo
    # refusing them anyway is reported as it said it, not taken for a missing scope.
    api = "https://klaviyo.test"
    client = KlaviyoClient(api_key=API_KEY, api_url=api, revision="2026-07-15", user_agent="test")
    requests_mock.get(f"{api}/api/lists", json={"data": [], "links": {}})
    requests_mock.get(f"{api}/api/profiles", json={"data": [], "links": {}})
    refusal = {"errors": [{"status": 403, "title": "Forbidden", "detail": "This list is locked."}]}
    requests_mock.get(f"{api}/api/lists/L1/profiles", status_code=403, json=refusal)
    client.first_page(endpoints.LISTS, {}, stream="lists_and_segments", decode=decode_document)
    client.first_page(endpoints.PROFILES, {}, stream="profiles", decode=decode_document)
    with pytest.raises(KlaviyoError):
        client.first_page(
            endpoints.LIST_MEMBERS, {}, stream="members", decode=decode_document, path="/api/lists/L1/profiles"
        )
    needs = {"lists:read": ["members"], "profiles:read": ["members", "profiles"]}
    with pytest.raises(
        KlaviyoError, match=r"stream 'members' needs \(/api/lists/\{id\}/profiles\).*This list is locked"
    ):
        _ask_the_rest(client, needs)
    assert len(requests_mock.request_history) == 3, "nothing more is asked: every scope is known to be held"
