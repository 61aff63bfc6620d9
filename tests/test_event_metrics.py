"""`event_metrics`: any metric's events by name, as streams of their own, with everything the email streams do."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tap_klaviyo.event_metrics import event_metrics, stream_name
from tap_klaviyo.streams.events import EventStream
from tests.kit import (
    API_KEY,
    EVENT_METRICS,
    assert_exact,
    bookmark,
    expected_events,
    run_and_kill,
    run_tap,
    select,
)

# Metrics every generated account holds, as `event_metrics` entries, and the stream each is read as. "Placed
# Order" exists twice (from Shopify and from the API), and so does "Opened Email" (Klaviyo's own, read by
# `opened_email`, and one sent through the API).
SETTING = [
    {"name": "Placed Order", "integration": "Shopify"},
    {"name": "placed order", "integration": "api", "stream": "placed_order_api"},
    "Received SMS",
    "Clicked SMS",
    {"name": "opened email", "integration": "API", "stream": "opened_email_api"},
    "Événement personnalisé",
]
STREAMS = {
    "placed_order": ("Placed Order", "shopify"),
    "placed_order_api": ("Placed Order", "api"),
    "received_sms": ("Received SMS", "klaviyo"),
    "clicked_sms": ("Clicked SMS", "klaviyo"),
    "opened_email_api": ("Opened Email", "api"),
    "evenement_personnalise": ("Événement personnalisé", None),
}


def metric_of(account, name: str, integration: str | None) -> dict[str, Any]:
    (metric,) = [
        m
        for m in account.metrics
        if m["attributes"]["name"].casefold() == name.casefold()
        and ((m["attributes"].get("integration") or {}).get("key") == integration)
    ]
    return metric


def metric_ids(account) -> dict[str, str]:
    """Each stream's metric, as the fake holds it."""
    return {stream: metric_of(account, name, integration)["id"] for stream, (name, integration) in STREAMS.items()}


@pytest.mark.parametrize(
    ("metric", "stream"),
    [
        ("Placed Order", "placed_order"),
        ("Received Text Message", "received_text_message"),
        ("Clicked SMS", "clicked_sms"),
        ("  Active on Site!  ", "active_on_site"),
        ("Événement personnalisé", "evenement_personnalise"),
        ('Quote "this" metric', "quote_this_metric"),
        ("カスタム イベント", ""),
    ],
)
def test_a_metric_name_becomes_a_snake_case_stream_name(metric, stream):
    assert stream_name(metric) == stream


BAD = [
    ("Placed Order", "must be a list of metric names"),
    (["Opened Email"], "would be stream `opened_email`, a stream of the tap"),
    (["Placed Order", "placed order"], "entry 2 ('placed order') would be stream `placed_order`, another entry's"),
    ([""], "entry 1 has no metric name"),
    ([{"integration": "shopify"}], "entry 1 has no metric name"),
    ([{"name": "Placed Order", "stream": "Orders!"}], "needs a `stream` name of lowercase letters"),
    (["カスタム イベント"], "needs a `stream` name"),
    ([{"name": "Placed Order", "source": "shopify"}], "must be a metric name or an object with `name`"),
    ([{"name": "Placed Order", "integration": ""}], "`integration` must be an integration's key or name"),
]


@pytest.mark.parametrize(("value", "message"), BAD, ids=[m for _, m in BAD])
def test_event_metrics_mistakes_are_one_line_each(value, message):
    _, problems = event_metrics(value, set(EVENT_METRICS))
    assert len(problems) == 1 and message in problems[0] and "\n" not in problems[0], problems


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["sync", "--discover"])
def test_a_bad_entry_stops_sync_and_discovery_with_one_line(mode):
    config = {"api_key": API_KEY, "api_url": "http://127.0.0.1:9", "event_metrics": ["Placed Order", "placed order"]}
    result = run_tap(config, *([] if mode == "sync" else [mode]))
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo: error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(errors) == 1 and "`event_metrics` entry 2" in errors[0], result.stderr[-2000:]
    assert result.stdout == ""


@pytest.mark.e2e
def test_discovery_lists_them_from_the_settings_alone():
    # Nothing listens on port 9: discovery makes no request.
    config = {"api_key": API_KEY, "api_url": "http://127.0.0.1:9", "event_metrics": SETTING}
    result = run_tap(config, "--discover")
    assert result.returncode == 0, result.stderr[-2000:]
    entries = {e["tap_stream_id"]: e for e in json.loads(result.stdout)["streams"]}
    assert set(STREAMS) <= set(entries) and set(EVENT_METRICS) <= set(entries)
    for stream in STREAMS:
        assert entries[stream]["schema"] == entries["opened_email"]["schema"], stream
        assert entries[stream]["key_properties"] == ["id"]
        assert entries[stream]["replication_key"] == "datetime"


@pytest.fixture(scope="module")
def account():
    return generate_account(seed=41, events_per_metric=300, other_events_per_metric=1300)


@pytest.mark.e2e
def test_full_then_incremental_runs_are_exact_for_every_metric(account):
    ids = metric_ids(account)
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "event_metrics": SETTING}
        catalog = select(run_tap(config, "--discover"), set(STREAMS))
        full = run_tap(config, catalog=catalog)
        assert full.returncode == 0, full.stderr[-2000:]
        state = full.states[-1]
        fake.clear_requests()
        again = run_tap(config, catalog=catalog, state=state)
        assert again.returncode == 0, again.stderr[-2000:]
        # Pages of events: not the one refused page size (the fake allows 200 a page, as Klaviyo's prose says), nor
        # the requests for each stream's newest event beside its first page.
        requests = [
            r for r in fake.requests if r.path == "/api/events" and r.status == 200 and r.query["sort"] == ["datetime"]
        ]
    for stream, metric_id in ids.items():
        expected = expected_events(account, metric_id)
        assert len(expected) > 1000, f"{stream}: enough events for several pages and STATE points"
        assert_exact(full.records(stream), expected, ["id"], stream)
        datetimes = [r["datetime"] for r in full.records(stream)]
        assert datetimes == sorted(datetimes), stream
        assert f"Stream '{stream}' reads metric {metric_id}" in full.stderr
        assert state["bookmarks"][stream]["metric_id"] == metric_id
        assert bookmark(state, stream) == datetimes[-1]
        # Incremental: only the bookmark's own second comes again.
        same_second = [r for r in expected if r["datetime"] == bookmark(state, stream)]
        assert_exact(again.records(stream), same_second, ["id"], stream)
    filters = [r.query["filter"][0] for r in requests]
    assert len(filters) == len(ids), "one request per stream on the incremental run"
    for stream, metric_id in ids.items():
        assert sum(f"equals(metric_id,'{metric_id}')" in f for f in filters) == 1, stream


@pytest.mark.e2e
def test_a_bookmark_left_by_another_metric_is_not_applied(account):
    ids = metric_ids(account)
    klaviyo_opened = metric_of(account, "Opened Email", "klaviyo")["id"]
    expected = expected_events(account, ids["opened_email_api"])
    late = expected[-5]["datetime"]
    state = {
        "bookmarks": {
            "opened_email_api": {
                "replication_key": "datetime",
                "replication_key_value": late,
                "metric_id": klaviyo_opened,
            }
        }
    }
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "event_metrics": [SETTING[4]]}
        catalog = select(run_tap(config, "--discover"), {"opened_email_api"})
        result = run_tap(config, catalog=catalog, state=state)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        f"Stream 'opened_email_api' now reads metric {ids['opened_email_api']}, not {klaviyo_opened}" in result.stderr
    )
    assert_exact(result.records("opened_email_api"), expected, ["id"], "opened_email_api")
    assert result.states[-1]["bookmarks"]["opened_email_api"]["metric_id"] == ids["opened_email_api"]


@pytest.mark.e2e
def test_a_killed_run_of_a_non_email_stream_resumes_losing_nothing(account):
    metric_id = metric_ids(account)["placed_order"]
    with FakeKlaviyo(account, api_key=API_KEY, latency=0.002, page_size_max={"events": 200}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "event_metrics": ["Placed Order"]}
        catalog = select(run_tap(config, "--discover"), {"placed_order"})
        delivered, last_state = run_and_kill(config, 1, catalog=catalog, streams=["placed_order"])
        assert last_state is not None and bookmark(last_state, "placed_order"), "killed after saving progress"
        resumed = run_tap(config, catalog=catalog, state=last_state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = expected_events(account, metric_id)
    before = [r["id"] for r in delivered.get("placed_order", [])]
    assert 0 < len(before) < len(expected), "the kill landed inside the stream"
    ids = before + [r["id"] for r in resumed.records("placed_order")]
    assert set(ids) == {r["id"] for r in expected}
    # Re-sent: at most what followed the last STATE, and what shares its bookmark's second.
    same_second = sum(1 for r in expected if r["datetime"] == bookmark(last_state, "placed_order"))
    assert len(ids) - len(expected) <= EventStream.STATE_MSG_FREQUENCY - 1 + same_second
    assert last_state["bookmarks"]["placed_order"]["metric_id"] == metric_id


@pytest.mark.e2e
def test_a_plain_name_shared_by_two_integrations_reads_the_oldest_metric(account):
    # Neither "Placed Order" is Klaviyo's own: the oldest is taken, and the run says which.
    pair = [metric_of(account, "Placed Order", key) for key in ("shopify", "api")]
    oldest = min(pair, key=lambda m: (m["attributes"]["created"], m["id"]))
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "event_metrics": ["PLACED ORDER"]}
        catalog = select(run_tap(config, "--discover"), {"placed_order"})
        result = run_tap(config, catalog=catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Stream 'placed_order' reads metric {oldest['id']}" in result.stderr
    assert "2 metrics have that name" in result.stderr
    assert_exact(result.records("placed_order"), expected_events(account, oldest["id"]), ["id"], "placed_order")
