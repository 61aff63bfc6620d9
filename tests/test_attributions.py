"""`event_attributions`: which message earned each conversion, from the event pages the event streams read anyway.
Opt-in; when selected, the event requests ask `include=attributions` (no request more, the same page size), the rows
are exactly the fake's, they follow the event streams' bookmarks, and a killed run resumes them."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    STREAM_KEYS,
    assert_exact,
    bookmark,
    expected_attributions,
    expected_events,
    run_and_kill,
    run_tap,
    select,
    utc,
)

pytestmark = pytest.mark.e2e

STREAM = "event_attributions"
ORDERS = {"event_metrics": [{"name": "Placed Order", "integration": "shopify", "stream": "placed_order"}]}
KEYS = STREAM_KEYS[STREAM]


def metric_id(account: Any) -> str:
    return account.metric_by_name("Placed Order", "Shopify")["id"]


def event_pages(fake: FakeKlaviyo) -> list[tuple[tuple[str, str], ...]]:
    """Every /api/events request answered, without its `include`, a cursor as the offset it points to (a cursor
    names its query, include and all). Those refused are left out: the event streams start together, and how many
    ask for 1000 events a page before one learns that the fake serves 200 is a race."""

    def offset(cursor: str) -> str:
        return str(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["o"])

    return sorted(
        tuple(sorted((k, offset(v[0]) if k == "page[cursor]" else v[0]) for k, v in r.query.items() if k != "include"))
        for r in fake.requests
        if r.path.rstrip("/") == "/api/events" and r.status == 200
    )


@pytest.mark.parametrize("concurrency", [1, 16])
def test_attributions_are_exact_and_cost_no_request(concurrency):
    account = generate_account(seed=81, events_per_metric=300, other_events_per_metric=900)
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "concurrency": concurrency, **ORDERS}
        discovery = run_tap(config, "--discover")
        streams = DEFAULT_STREAMS | {"placed_order"}
        without = run_tap(config, catalog=select(discovery, streams))
        requests_without = event_pages(fake)
        fake.clear_requests()
        result = run_tap(config, catalog=select(discovery, streams | {STREAM}))
        requests_with = event_pages(fake)
        includes = Counter((r.query.get("sort", [""])[0], tuple(r.query.get("include", []))) for r in fake.requests)
    assert without.returncode == result.returncode == 0, result.stderr[-2000:]
    expected = expected_attributions(account, [metric_id(account)])
    assert len(expected) > 300, "conversions over several pages, with attributions"
    assert_exact(result.records(STREAM), expected, KEYS, STREAM)
    # No request more, none other: the same pages, each asking for its events' attributions.
    assert requests_with == requests_without
    assert includes[("datetime", ("attributions",))] > 0 and not includes[("datetime", ())]
    assert not includes[("-datetime", ("attributions",))], "where a stream ends is asked without them"
    # The event streams are as they are without attributions.
    for stream in [*EVENT_METRICS, "placed_order"]:
        by_id = sorted(result.records(stream), key=lambda r: r["id"])
        assert by_id and by_id == sorted(without.records(stream), key=lambda r: r["id"]), stream
    assert_exact(result.records("placed_order"), expected_events(account, metric_id(account)), ["id"], "placed_order")
    assert STREAM not in without.by_stream()


def test_without_conversions_the_stream_is_empty_but_described():
    account = generate_account(seed=82, events_per_metric=40)
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), DEFAULT_STREAMS | {STREAM}))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.records(STREAM) == []
    assert [m["stream"] for m in result.messages if m["type"] == "SCHEMA"].count(STREAM) == 1


def test_attributions_follow_the_event_streams_bookmarks_and_are_never_activated():
    account = generate_account(seed=83, events_per_metric=30, other_events_per_metric=300)
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "emit_activate_version_messages": True, **ORDERS}
        catalog = select(run_tap(config, "--discover"), {"placed_order", STREAM})
        first = run_tap(config, catalog=catalog)
        second = run_tap(config, catalog=catalog, state=first.states[-1])
    for run in (first, second):
        assert run.returncode == 0, run.stderr[-2000:]
        assert not [m for m in run.messages if m["type"] == "ACTIVATE_VERSION"], "events and attributions: no mirror"
    expected = expected_attributions(account, [metric_id(account)])
    assert_exact(first.records(STREAM), expected, KEYS, STREAM)
    # The rerun reads again only the events of the bookmark's second, and their attributions alone.
    mark = bookmark(first.states[-1], "placed_order")
    again = {r["id"] for r in second.records("placed_order")}
    assert again and {r["datetime"] for r in second.records("placed_order")} == {mark}
    assert_exact(second.records(STREAM), [r for r in expected if r["event_id"] in again], KEYS, STREAM)


def test_a_killed_run_resumes_attributions_with_their_events():
    account = generate_account(seed=84, events_per_metric=20, other_events_per_metric=4000)
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, **ORDERS}
        catalog = select(run_tap(config, "--discover"), {"placed_order", STREAM})
        delivered, state = run_and_kill(config, 2, catalog=catalog, streams=["placed_order"])
        assert state is not None
        mark = bookmark(state, "placed_order")
        resumed = run_tap(config, catalog=catalog, state=state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = {e["id"]: e for e in expected_events(account, metric_id(account))}
    expected = expected_attributions(account, [metric_id(account)])
    first = delivered.get(STREAM, [])
    # Before its last STATE, the killed run had sent the attributions of every event up to that STATE's bookmark.
    covered = [r for r in expected if utc(events[r["event_id"]]["datetime"]) <= utc(mark)]
    assert covered and {(r["event_id"], r["id"]) for r in covered} <= {(r["event_id"], r["id"]) for r in first}
    assert len(covered) < len(expected), "the run was killed part way"
    # Together, the two runs delivered each attribution, and the rerun little of what was sent before.
    both = {(r["event_id"], r["id"]): r for r in [*first, *resumed.records(STREAM)]}
    assert_exact(list(both.values()), expected, KEYS, STREAM)
    repeated = {(r["event_id"], r["id"]) for r in first} & {(r["event_id"], r["id"]) for r in resumed.records(STREAM)}
    assert len(repeated) < 0.1 * len(expected)


def test_stream_maps_apply_to_attributions():
    account = generate_account(seed=85, events_per_metric=20, other_events_per_metric=200)
    maps = {"stream_maps": {STREAM: {"flow_message_variation_id": None, "earned_by": "campaign_id or flow_id"}}}
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, **ORDERS, **maps}
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), {"placed_order", STREAM}))
    assert result.returncode == 0, result.stderr[-2000:]
    expected = [
        {
            **{k: v for k, v in r.items() if k != "flow_message_variation_id"},
            "earned_by": r["campaign_id"] or r["flow_id"],
        }
        for r in expected_attributions(account, [metric_id(account)])
    ]
    assert expected
    assert_exact(result.records(STREAM), expected, KEYS, STREAM)
    (schema,) = [m["schema"] for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == STREAM]
    assert "earned_by" in schema["properties"] and "flow_message_variation_id" not in schema["properties"]
