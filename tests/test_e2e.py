"""The real `tap-klaviyo` command against the fake Klaviyo: every stream complete and exact."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from jsonschema import Draft7Validator

from fake_klaviyo import FakeKlaviyo, generate_account
from fake_klaviyo.report_book import ReportBook
from tests.kit import (
    API_KEY,
    CHANNELS,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    STREAM_KEYS,
    assert_exact,
    event_metric_id,
    expected_events,
    expected_opt_in,
    expected_streams,
    klaviyo_metric,
    run_tap,
    select,
)
from tests.reports_kit import limits

pytestmark = pytest.mark.e2e

ORDERS = "placed_order"
ORDERS_METRIC = {"name": "Placed Order", "integration": "shopify", "stream": ORDERS}


def test_discover_lists_exactly_the_tables_streams(config):
    result = run_tap(config, "--discover")
    assert result.returncode == 0, result.stderr
    catalog = json.loads(result.stdout)
    assert {s["tap_stream_id"]: s["key_properties"] for s in catalog["streams"]} == STREAM_KEYS


def assert_full_sync_exact(account, fake, result, refused: int = 0) -> None:
    assert result.returncode == 0, result.stderr
    streams = result.by_stream()
    expected = expected_streams(account)
    assert set(streams) == DEFAULT_STREAMS
    for stream, rows in expected.items():
        assert rows, f"the fake account should give {stream} some data"
        assert_exact(streams[stream], rows, STREAM_KEYS[stream], stream)
    for stream in EVENT_METRICS:
        datetimes = [r["datetime"] for r in streams[stream]]
        assert datetimes == sorted(datetimes), f"{stream} is not in datetime order"
    assert len([r for r in fake.requests if r.status >= 400]) == refused, "requests must be valid for the fake"


def test_full_sync_returns_every_record_once_and_intact(account, fake, config):
    result = run_tap(config)
    assert_full_sync_exact(account, fake, result)
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    checker = Draft7Validator.FORMAT_CHECKER
    for stream, rows in result.by_stream().items():
        validator = Draft7Validator(schemas[stream], format_checker=checker)
        for row in rows:
            errors = list(validator.iter_errors(row))
            assert not errors, f"{stream} record {row.get('id')} breaks its schema: {errors[0].message}"


def test_full_sync_is_exact_when_events_pages_are_capped_at_200(account):
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200}) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url})
        # The event streams start together: each first page may be refused at page[size]=1000 (at most one each),
        # then every events page is read at 200.
        refused = [r for r in fake.requests if r.status == 400]
        assert 1 <= len(refused) <= len(EVENT_METRICS)
        assert {(r.path, r.query["page[size]"][0]) for r in refused} == {("/api/events", "1000")}
        assert_full_sync_exact(account, fake, result, refused=len(refused))
        assert result.stderr.count("Klaviyo refused page[size]=1000") == 1, "said once"
        reads = [r for r in fake.requests if r.path == "/api/events" and r.status == 200]
        assert {r.query["page[size]"][0] for r in reads if r.query["sort"] == ["datetime"]} == {"200"}
        # Where a stream's events end, and how dense they are there, is asked with a page of 100, newest first
        # (within every size the endpoint takes: no refusal for it).
        assert {r.query["page[size]"][0] for r in reads if r.query["sort"] == ["-datetime"]} == {"100"}


def walks(fake, path: str) -> list:
    """The requests for `path`'s first pages: one a walk."""
    return [r for r in fake.requests if r.path.rstrip("/") == path and "page[cursor]" not in r.query]


@pytest.mark.slow
def test_every_stream_selected_holds_what_the_oracle_says():
    """The opt-in streams too: with every stream selected, each holds exactly the records `tests/oracle.py` says,
    and a stream the oracle does not know fails here by name."""
    account = generate_account(seed=7, campaigns=60, flows=12, other_events_per_metric=200, profiles=1200)
    book = ReportBook(account)
    # The fake's events end on 2026-01-01 while its reports run to today: from three months before, both have days
    # to read and the reports few timeframes (Klaviyo's rate limit of report queries is one a second).
    start = "2025-10-01T00:00:00+00:00"
    # Klaviyo attributes conversions, not email events: an event stream of orders gives the attributions some.
    orders = account.metric_by_name("Placed Order", "Shopify")["id"]
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limits()) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start, "event_metrics": [ORDERS_METRIC]}
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), {*STREAM_KEYS, ORDERS}))
    assert result.returncode == 0, result.stderr[-3000:]
    metric_ids = [*(event_metric_id(account, stream) for stream in EVENT_METRICS), orders]
    expected = {
        **expected_streams(account, start),
        ORDERS: expected_events(account, orders, start),
        **expected_opt_in(account, book, metric_ids, start),
    }
    assert sorted({*STREAM_KEYS, ORDERS}) == sorted(expected), "tests/oracle.py: every stream's records, opt-in too"
    streams = result.by_stream()
    for stream, rows in expected.items():
        assert rows, f"the fake account should give {stream} some data"
        assert_exact(streams.get(stream, []), rows, STREAM_KEYS.get(stream, ["id"]), stream)


def test_campaign_and_flow_streams_cost_one_walk_per_channel_and_one_of_flows(account, fake, config):
    result = run_tap(config)
    assert result.returncode == 0, result.stderr
    first_pages = walks(fake, "/api/campaigns")
    assert sorted(r.query["filter"][0] for r in first_pages) == sorted(
        f"equals(messages.channel,'{channel}')" for channel in CHANNELS
    ), "one walk per channel serves all seven campaign streams"
    assert all(r.query["include"] == ["campaign-messages"] for r in first_pages)
    campaign_requests = [r for r in fake.requests if r.path.rstrip("/") == "/api/campaigns"]
    pages = {c: -(-len(account.campaigns_for_channel(c)) // 100) for c in CHANNELS}
    assert len(campaign_requests) == sum(pages.values()) and pages["email"] > 1, "one request per page of 100"
    # Flow actions and their messages come from the flows walk: no request per flow or per action.
    (flows,) = walks(fake, "/api/flows")
    assert flows.query["include"] == ["flow-actions"] and "filter" not in flows.query
    flow_requests = [r for r in fake.requests if r.path.rstrip("/").startswith("/api/flow")]
    assert {r.path.rstrip("/") for r in flow_requests} == {"/api/flows"}
    assert len(flow_requests) == -(-len(account.flows) // 50), "one request per page of 50"
    endpoints = {f"/api/{n}" for n in ("lists", "segments", "campaigns", "flows", "metrics", "events")}
    assert {r.path.rstrip("/") for r in fake.requests} == endpoints, "no request beyond the six list endpoints"
    metric_first_pages = [r for r in fake.requests if r.path == "/api/metrics" and "page[cursor]" not in r.query]
    assert len(metric_first_pages) == 1, "metrics are fetched once for the metrics stream and all event streams"
    assert all("include" not in r.query for r in fake.requests if r.path == "/api/events"), "attributions are opt-in"


@pytest.mark.parametrize(
    ("stream", "channels", "include"),
    [
        ("email_campaigns_vs_lists_excluded", ["email"], None),
        ("email_campaign_messages", ["email"], "campaign-messages"),
        ("campaign_audiences", CHANNELS, None),
        ("campaign_messages", CHANNELS, "campaign-messages"),
        ("flow_actions", [], "flow-actions"),
        ("flow_messages", [], "flow-actions"),
    ],
)
def test_a_derived_stream_alone_still_reads_every_record_of_its_parent(
    account, fake, config, stream, channels, include
):
    catalog = select(run_tap(config, "--discover"), {stream})
    result = run_tap(config, catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert set(result.by_stream()) == {stream}
    assert_exact(result.records(stream), expected_streams(account)[stream], STREAM_KEYS[stream], stream)
    assert {r.path.rstrip("/") for r in fake.requests} == ({"/api/campaigns"} if channels else {"/api/flows"})
    if channels:
        assert sorted(r.query["filter"][0] for r in walks(fake, "/api/campaigns")) == sorted(
            f"equals(messages.channel,'{channel}')" for channel in channels
        )
    # Related resources are asked for only when a stream that reads them is selected.
    assert {tuple(r.query.get("include", [])) for r in fake.requests} == ({(include,)} if include else {()})
    schemas = [m for m in result.messages if m["type"] == "SCHEMA"]
    assert [m["stream"] for m in schemas] == [stream]


def test_start_date_bounds_event_streams_only(account, fake, config):
    start = "2025-06-01T00:00:00+00:00"
    result = run_tap({**config, "start_date": start})
    assert result.returncode == 0, result.stderr
    streams = result.by_stream()
    expected = expected_streams(account, start_date=start)
    for stream, rows in expected.items():
        assert_exact(streams.get(stream, []), rows, STREAM_KEYS.get(stream, ["id"]), stream)
    full = expected_streams(account)
    assert sum(len(full[s]) for s in EVENT_METRICS) > sum(len(expected[s]) for s in EVENT_METRICS) > 0


def test_event_streams_are_filtered_on_the_server_by_metric(account, fake, config):
    result = run_tap(config)
    assert result.returncode == 0, result.stderr
    event_requests = [r for r in fake.requests if r.path == "/api/events" and "page[cursor]" not in r.query]
    expected = sorted(f"equals(metric_id,'{klaviyo_metric(account, m)['id']}')" for m in EVENT_METRICS.values())
    # Each stream's first page, oldest first, and beside it one request for a page of its newest events.
    first_pages = [r for r in event_requests if r.query["sort"] == ["datetime"]]
    newest = [r for r in event_requests if r.query["sort"] == ["-datetime"]]
    assert sorted(r.query["filter"][0] for r in first_pages) == expected
    assert sorted(r.query["filter"][0] for r in newest) == expected
    assert all(r.query["page[size]"] == ["100"] for r in newest)
    assert len(first_pages) + len(newest) == len(event_requests)


def test_a_missing_metric_is_a_warning_and_an_empty_stream():
    account = generate_account(seed=5, missing_metrics=("Dropped Email",), events_per_metric=20)
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url})
    assert result.returncode == 0, result.stderr
    assert result.records("dropped_email") == []
    assert "no metric named 'Dropped Email'" in result.stderr
    assert len(result.records("opened_email")) > 0


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (None, "rejected the API key (401)"),
        (
            {"lists:read", "segments:read", "campaigns:read", "flows:read", "metrics:read"},
            "lacks the scope 'events:read' (for streams 'bounced_email', 'clicked_email', ",
        ),
    ],
    ids=["bad-key", "missing-scope"],
)
def test_auth_failures_are_one_clear_line(account, scopes, message):
    key = API_KEY if scopes else "pk_wrong_key_000000000000000000000000"
    with FakeKlaviyo(account, api_key=API_KEY, scopes=scopes) as fake:
        result = run_tap({"api_key": key, "api_url": fake.url})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert key not in result.stderr and key not in result.stdout


def test_about_and_test_modes(config):
    about = run_tap(config, "--about", "--format=json")
    assert about.returncode == 0, about.stderr
    settings = set(json.loads(about.stdout)["settings"]["properties"])
    assert {"api_key", "start_date", "revision", "api_url"} <= settings
    test = run_tap(config, "--test")
    assert test.returncode == 0, test.stderr
    # One record per stream; the first campaign need not exclude anything, so that stream may be empty.
    records = Counter(m["stream"] for m in test.messages if m["type"] == "RECORD")
    assert DEFAULT_STREAMS - {"email_campaigns_vs_lists_excluded"} <= set(records) <= set(STREAM_KEYS)
    assert set(records.values()) == {1}, f"more than one record: {[s for s, n in records.items() if n > 1]}"


@pytest.mark.slow
def test_concurrent_windows_deliver_what_one_page_at_a_time_does():
    account = generate_account(seed=31, events_per_metric=4000)
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        catalog = select(run_tap(config, "--discover"), set(EVENT_METRICS))
        windowed = run_tap(config, catalog=catalog)
        windowed_requests = len([r for r in fake.requests if r.path.rstrip("/") == "/api/events"])
        single = run_tap({**config, "concurrency": 1}, catalog=catalog)
    expected = expected_streams(account)
    for stream in EVENT_METRICS:
        for result in (windowed, single):
            assert result.returncode == 0, result.stderr
            assert_exact(result.records(stream), expected[stream], ["id"], stream)
            datetimes = [r["datetime"] for r in result.records(stream)]
            assert datetimes == sorted(datetimes)
    # Splitting by density costs few requests beyond the 20 pages each stream needs.
    assert windowed_requests <= 6 * (20 + 16)


def test_flattening_and_stream_maps_see_event_properties_as_objects(account, fake, config):
    settings = {
        "flattening_enabled": True,
        "flattening_max_depth": 1,
        "stream_maps": {"clicked_email": {"url": "event_properties.get('URL')"}},
    }
    result = run_tap({**config, **settings}, catalog=select(run_tap(config, "--discover"), {"clicked_email"}))
    assert result.returncode == 0, result.stderr
    expected = {r["id"]: r for r in expected_streams(account)["clicked_email"]}
    rows = result.records("clicked_email")
    assert len(rows) == len(expected)
    for row in rows:
        want = expected[row["id"]]
        assert row["url"] == (want["event_properties"] or {}).get("URL")
        assert json.loads(row["event_properties"]) == want["event_properties"]


def test_deselected_properties_are_left_out_of_event_records(account, fake, config):
    catalog = select(run_tap(config, "--discover"), {"opened_email"})
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "opened_email")
    for item in entry["metadata"]:
        if item["breadcrumb"] == ["properties", "event_properties"]:
            item["metadata"]["selected"] = False
    result = run_tap(config, catalog=catalog)
    assert result.returncode == 0, result.stderr
    expected = [
        {k: v for k, v in r.items() if k != "event_properties"} for r in expected_streams(account)["opened_email"]
    ]
    assert_exact(result.records("opened_email"), expected, ["id"], "opened_email")


def test_settings_from_the_environment(account, fake):
    env = {"TAP_KLAVIYO_API_KEY": API_KEY, "TAP_KLAVIYO_API_URL": fake.url, "TAP_KLAVIYO_START_DATE": "2025-06-01"}
    result = run_tap("{}", "--config", "ENV", env=env)
    assert result.returncode == 0, result.stderr
    expected = expected_streams(account, start_date="2025-06-01T00:00:00+00:00")
    for stream in EVENT_METRICS:
        assert_exact(result.records(stream), expected[stream], ["id"], stream)


def test_event_metrics_from_the_environment_as_json(fake):
    env = {"TAP_KLAVIYO_API_KEY": API_KEY, "TAP_KLAVIYO_API_URL": fake.url}
    metrics = ["Received SMS", {"name": "Placed Order", "integration": "api", "stream": "po"}]
    env["TAP_KLAVIYO_EVENT_METRICS"] = json.dumps(metrics)
    result = run_tap("{}", "--config", "ENV", "--discover", env=env)
    assert result.returncode == 0, result.stderr
    streams = {s["tap_stream_id"] for s in json.loads(result.stdout)["streams"]}
    assert {"received_sms", "po"} <= streams and streams - set(STREAM_KEYS) == {"received_sms", "po"}
