"""Bad input gets one clear line; faults and rate limits lose nothing; the key appears nowhere."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, Faults, generate_account
from tests.kit import (
    API_KEY,
    CHANNELS,
    EVENT_METRICS,
    STREAM_KEYS,
    TapRun,
    assert_exact,
    assert_one_line_error,
    bookmark,
    event_metric_id,
    expected_streams,
    klaviyo_metric,
    run_tap,
    select,
)

pytestmark = pytest.mark.e2e

GOOD_STATE = {"bookmarks": {"opened_email": {"replication_key": "datetime", "replication_key_value": "2025-01-01"}}}


BAD_CONFIGS = [
    ({}, "Missing setting `api_key`"),
    ({"start_date": "yesterday"}, "Setting `start_date` is not an ISO 8601 date-time: 'yesterday'"),
    ({"end_date": "31/01/2025"}, "Setting `end_date` is not an ISO 8601 date-time"),
    ({"start_date": "2025-02-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"}, "`end_date` must be after"),
    (
        {"start_date": "2062-01-01"},
        "Setting `start_date` is in the future (2062-01-01): the run would read nothing; set a date in the past",
    ),
    ({"revision": "latest"}, "Setting `revision` is 'latest', but the streams are modelled on Klaviyo API revision"),
    (
        {"revision": "2026-10-15"},
        "Setting `revision` is '2026-10-15', but the streams are modelled on Klaviyo API "
        "revision 2026-07-15 only: set it to that, or leave it out",
    ),
    ({"api_key": "pk_two words"}, "Setting `api_key` holds whitespace or characters an HTTP header cannot carry"),
    ({"api_key": "pk_ctrl\u0007char"}, "Setting `api_key` holds whitespace or characters"),
    ({"api_key": 1234567890}, "Setting `api_key` must be a string"),
    ({"api_key": "${KLAVIYO_API_KEY}"}, "Setting `api_key` is an environment variable's name ($NAME, ${NAME} or"),
    ({"api_key": "%KLAVIYO_KEY%"}, "not its value: nothing expanded it (a plain config file does not)"),
    ({"api_key": "AbC123"}, "Setting `api_key` is a public API key (the 6-character site ID)"),
    ({"api_key": " \n"}, "Missing setting `api_key`"),
    ({"flattening_enabled": True}, "Invalid setting: flattening_max_depth is required when flattening is enabled"),
    ({"stream_maps": {"flows": {"name": "name.upper("}}}, "Setting `stream_maps` cannot be applied: Failed to parse"),
    ({"api_url": "a.klaviyo.com"}, "Setting `api_url` is not an http(s) URL"),
    ({"api_url": "https://a.klaviyo.com/api/"}, "Setting `api_url` ends in /api ('https://a.klaviyo.com/api/')"),
    ({"max_retries": -2}, "Setting `max_retries` must be a whole number"),
    ({"lookback_minutes": "ten"}, "Setting `lookback_minutes` must be a whole number"),
    ({"validate_records": "yes"}, "Setting `validate_records` must be true or false"),
    ({"start_dte": "2025-01-01"}, "Unknown setting `start_dte`: did you mean `start_date`?"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_bad_settings(fake, config, settings, message):
    base = {} if "api_key" not in json.dumps(settings) and not settings else config
    result = run_tap({**base, **settings}, state=GOOD_STATE)
    assert_one_line_error(result, message)
    assert json.loads(result.state_file_after) == GOOD_STATE
    assert not fake.requests, "nothing is fetched when the settings are wrong"


# A catalog entry that deselects its stream (as Meltano writes one whose `select` matches nothing).
DESELECTED = {
    "schema": {"type": "object", "properties": {}},
    "metadata": [{"breadcrumb": [], "metadata": {"selected": False}}],
}

BAD_FILES = [
    ({"config": "{not json"}, "The config file"),
    ({"config": "[1, 2]"}, "must hold a JSON object of settings"),
    ({"state": "{bookmarks: 1}"}, "The state file"),
    ({"state": ""}, "is empty: write {} in it for a run from no state, or leave --state out"),
    ({"state": "\ufeff{}"}, "is not plain UTF-8 text (UTF-16, or a byte-order mark at its start): save it as UTF-8"),
    ({"config": " \n"}, "is empty: fix it"),
    ({"state": '{"bookmarks": []}'}, "must map each stream name to an object"),
    (
        {"state": '{"bookmarks": {"opened_email": {"replication_key": "datetime", "replication_key_value": "soon"}}}'},
        "The state's bookmark for stream 'opened_email' is not a date-time: 'soon'",
    ),
    ({"catalog": "streams:"}, "The catalog file"),
    (
        {"catalog": '{"streams": [{"tap_stream_id": "opened_email", "schema": {}, "metadata": "all"}]}'},
        "is not a Singer catalog",
    ),
    (
        {"catalog": '{"streams": [{"tap_stream_id": "placed_order", "schema": {}, "metadata": []}]}'},
        "The catalog names stream(s) placed_order that tap-klaviyo does not have",
    ),
    (
        {"catalog": json.dumps({"streams": [{**DESELECTED, "tap_stream_id": "opened_email"}]})},
        "The catalog selects no stream: select the streams to read in it (in Meltano, `select` in meltano.yml)",
    ),
]


@pytest.mark.parametrize(("files", "message"), BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_bad_files(fake, config, files: dict[str, Any], message):
    state = files.get("state", json.dumps(GOOD_STATE))
    result = run_tap(files.get("config", config), state=state, catalog=files.get("catalog"))
    assert_one_line_error(result, message)
    assert result.state_file_after == state, "the state file is left as it was"
    assert not fake.requests


def test_klaviyo_400_quotes_only_its_detail(account):
    # An account whose /api/events takes smaller pages than the tap's fallback: Klaviyo answers 400 with its detail.
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 100}) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url})
    assert_one_line_error(result, "(400): ", mid_sync=True)
    assert '"errors"' not in result.stderr, "the line quotes Klaviyo's detail, not its response body"


def test_debug_logs_never_show_the_key(tmp_path, fake, config):
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
                "handlers": {
                    "err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
                },
                "root": {"level": "DEBUG", "handlers": ["err"]},
            }
        )
    )
    env = {"TAP_KLAVIYO_LOGLEVEL": "DEBUG", "SINGER_SDK_LOG_CONFIG": str(log_config)}
    result = run_tap(config, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DEBUG" in result.stderr and "/api/events" in result.stderr, "the run should log requests at DEBUG"
    secret = API_KEY.removeprefix("pk_")
    for where, text in (("stderr", result.stderr), ("stdout", result.stdout)):
        assert secret not in text, f"the API key appears in {where}"
    bad = run_tap({**config, "api_key": "pk_rejected_" + secret[::-1]}, env=env)
    assert bad.returncode != 0 and secret[::-1] not in bad.stderr + bad.stdout


def test_validate_records_stops_at_a_bad_record_or_logs_it_once(account):
    account = generate_account(seed=8, events_per_metric=20)
    flow = account.flows[0]
    flow["attributes"]["archived"] = "not-a-boolean"
    account.flows[1]["attributes"]["archived"] = "also-wrong"
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        strict = run_tap({**config, "validate_records": True})
        lenient = run_tap(config)
    assert_one_line_error(
        strict, f"Record {flow['id']} of stream 'flows' does not match its schema: field `archived`", mid_sync=True
    )
    assert lenient.returncode == 0, lenient.stderr
    assert lenient.stderr.count("does not match its schema") == 1
    assert {r["id"] for r in lenient.records("flows")} == {f["id"] for f in account.flows}


def test_events_that_break_their_schema_are_passed_on_or_stop_the_run():
    # Event pages are typed while they are decoded; a page with an event its schema does not describe takes
    # the record by record path, which warns once per stream (or stops, with validate_records).
    account = generate_account(seed=9, events_per_metric=900)
    opened, clicked = (klaviyo_metric(account, EVENT_METRICS[s])["id"] for s in ("opened_email", "clicked_email"))
    bad = {
        account.events.by_metric[account.events.metric_index[opened]][400]: ("timestamp", "1704154907"),
        account.events.by_metric[account.events.metric_index[clicked]][10]: ("event_properties", "not an object"),
    }
    resource = account.events.resource

    def broken(pos: int) -> dict[str, Any]:
        event = resource(pos)
        if pos in bad:
            field, value = bad[pos]
            event["attributes"][field] = value
        return event

    account.events.resource = broken
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        lenient = run_tap(config)
        strict = run_tap(
            {**config, "validate_records": True}, catalog=select(run_tap(config, "--discover"), {"opened_email"})
        )
    assert lenient.returncode == 0, lenient.stderr[-2000:]
    warnings = [line for line in lenient.stderr.splitlines() if "does not match its schema" in line]
    assert len(warnings) == 2, warnings
    assert any("'opened_email'" in w and "`timestamp` should be integer or null, not str" in w for w in warnings)
    assert any("'clicked_email'" in w and "`event_properties` should be object or null, not str" in w for w in warnings)
    expected = expected_streams(account)
    for stream in EVENT_METRICS:
        assert_exact(lenient.records(stream), expected[stream], ["id"], stream)
    bad_id = account.events.event_id(next(iter(bad)))
    assert_one_line_error(
        strict, f"Record {bad_id} of stream 'opened_email' does not match its schema: field `timestamp`", mid_sync=True
    )
    # What was emitted before the stop is a prefix of the stream, ending before the bad record.
    emitted = [r["id"] for r in strict.records("opened_email")]
    assert emitted == [r["id"] for r in expected["opened_email"][: len(emitted)]] and len(emitted) <= 400


@pytest.mark.parametrize("concurrency", [1, 16])
def test_an_event_whose_datetime_is_not_a_string_is_reported_not_retried(concurrency):
    # Valid JSON that breaks the schema is the schema check's to report (record, field), with validate_records'
    # semantics; it is never taken for a truncated body and retried.
    account = generate_account(seed=12, events_per_metric=1500)
    opened = klaviyo_metric(account, EVENT_METRICS["opened_email"])["id"]
    bad = account.events.by_metric[account.events.metric_index[opened]][700]
    resource = account.events.resource

    def broken(pos: int) -> dict[str, Any]:
        event = resource(pos)
        if pos == bad:
            event["attributes"]["datetime"] = 1704154907
        return event

    account.events.resource = broken
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "concurrency": concurrency, "max_retries": 1}
        catalog = select(run_tap(config, "--discover"), {"opened_email"})
        lenient = run_tap(config, catalog=catalog)
        strict = run_tap({**config, "validate_records": True}, catalog=catalog)
    assert lenient.returncode == 0, lenient.stderr[-2000:]
    assert "retry" not in lenient.stderr and "truncated" not in strict.stderr
    warnings = [line for line in lenient.stderr.splitlines() if "does not match its schema" in line]
    assert len(warnings) == 1 and "`datetime` should be string or null, not int" in warnings[0], warnings
    assert_exact(lenient.records("opened_email"), expected_streams(account)["opened_email"], ["id"], "opened_email")
    assert max(bookmark(s, "opened_email") or "" for s in lenient.states) == max(
        r["datetime"] for r in lenient.records("opened_email") if isinstance(r["datetime"], str)
    )
    bad_id = account.events.event_id(bad)
    assert_one_line_error(
        strict, f"Record {bad_id} of stream 'opened_email' does not match its schema: field `datetime`", mid_sync=True
    )


def exact_despite_faults(account, result: TapRun) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    streams = result.by_stream()
    for stream, rows in expected_streams(account).items():
        assert_exact(streams.get(stream, []), rows, STREAM_KEYS[stream], stream)


def test_a_full_sync_is_exact_through_faults_under_real_rate_limits():
    account = generate_account(seed=17, events_per_metric=1500)
    faults = Faults(rate=0.15, seed=4)
    pages = {"metrics_page_size": 7, "page_size_max": {"events": 200}}
    with FakeKlaviyo(account, api_key=API_KEY, faults=faults, rate_limits=True, **pages) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url, "max_retries": 10}, timeout=600)
        stats = fake.stats()
    exact_despite_faults(account, result)
    assert len(stats["faults"]) == 5, f"each kind of fault should have happened: {stats['faults']}"


def test_real_rate_limits_cause_no_429():
    # Enough flows (3 requests/s allowed) and campaigns (10/s) that an unpaced client would be throttled.
    account = generate_account(seed=19, flows=400, campaigns=1500, lists=120, events_per_metric=100)
    with FakeKlaviyo(account, api_key=API_KEY, rate_limits=True, metrics_page_size=7) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url})
        stats = fake.stats()
    exact_despite_faults(account, result)
    assert stats["throttled"] == 0
    # One request per page (flows: 50 a page; campaigns: 100, one walk per channel), none repeated after a 429.
    walks = sum(-(-len(account.campaigns_for_channel(channel)) // 100) for channel in CHANNELS)
    pages = {"flows": -(-len(account.flows) // 50), "campaigns": walks}
    assert {name: stats["by_endpoint"][name] for name in pages} == pages


@pytest.mark.parametrize("concurrency", [1, 16])
def test_when_retries_run_out_the_last_state_still_loses_nothing(concurrency):
    account = generate_account(seed=13, events_per_metric=3000)
    # Faults on the last event stream's requests only, so that the streams before it have saved progress whichever
    # of its requests fails first (the order of requests under concurrency varies from run to run).
    last = sorted(EVENT_METRICS)[-1]
    faults = Faults(0.3, ("503",), 19, only=event_metric_id(account, last))
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200}, faults=faults) as f:
        config = {"api_key": API_KEY, "api_url": f.url, "max_retries": 0, "concurrency": concurrency}
        first = run_tap(config)
    assert first.returncode != 0 and "after 1 attempts" in first.stderr, first.stderr[-2000:]
    assert f"stream '{last}'" in first.stderr, first.stderr[-2000:]
    # The failure comes after some progress was saved: the state resumed from is not just the starting one.
    assert any(bookmark(first.states[-1], stream) for stream in EVENT_METRICS), "progress was saved before the failure"
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        second = run_tap({"api_key": API_KEY, "api_url": fake.url}, state=first.states[-1])
    assert second.returncode == 0, second.stderr
    expected = expected_streams(account)
    for stream in EVENT_METRICS:
        ids = {r["id"] for r in first.records(stream)} | {r["id"] for r in second.records(stream)}
        assert ids == {r["id"] for r in expected[stream]}, f"{stream} lost events across the failure"
