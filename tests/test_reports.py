"""The report streams end to end: the real command against the fake's report queries. A backfill, then a run after
Klaviyo revised recent days, upsert to exactly the fake's values, the second run asking only for the lookback; a
run that spends the daily quota ends its reports cleanly and the next one completes them; and what stops a run."""

from __future__ import annotations

import signal
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from fake_klaviyo.report_book import ReportBook
from fake_klaviyo.spec import ALL_READ_SCOPES
from tests.kit import (
    API_KEY,
    STREAM_KEYS,
    assert_exact,
    assert_one_line_error,
    closed_port,
    conversion_metric,
    expected_reports,
    expected_streams,
    run_tap,
    select,
)
from tests.reports_kit import (
    CAMPAIGNS,
    FLOWS,
    REPORT_STREAMS,
    assert_bodies_valid,
    assert_whole_days,
    days_read,
    key,
    limits,
    run_and_signal_at,
    timeframes,
    upserted,
)

pytestmark = pytest.mark.e2e

OTHERS = {"flows", "metrics", "lists_and_segments"}


@pytest.fixture(scope="module")
def account():
    return generate_account(seed=31, campaigns=120, flows=10, events_per_metric=10)


def start_date(first: date, tz: ZoneInfo) -> str:
    """A start_date on the account's day `first`."""
    return datetime.combine(first, time(12), tz).isoformat()


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| WARNING" in line]


def test_a_backfill_then_a_run_after_klaviyo_revised_recent_days_upsert_to_its_values(account):
    book = ReportBook(account)
    tz, today = book.tz, book.today
    first_day = today - timedelta(days=409)
    metric = conversion_metric(account)["id"]
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limits(), report_page_size=25) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start_date(first_day, tz)}
        catalog = select(run_tap(config, "--discover"), REPORT_STREAMS)
        first = run_tap(config, catalog=catalog)
        before = expected_reports(book, metric, first_day, today)
        since = len(fake.requests)
        book.revise(10)
        second = run_tap(config, state=first.states[-1], catalog=catalog)
        after = expected_reports(book, metric, first_day, today)
        frames = {s: (timeframes(fake, s, 0, since), timeframes(fake, s, since)) for s in REPORT_STREAMS}
        for stream in REPORT_STREAMS:
            assert_whole_days(fake, stream, tz)
            assert_bodies_valid(fake, stream)
        assert fake.stats()["throttled"] == 0, "no 429, the second run's first requests included"
    for run in (first, second):
        assert run.returncode == 0 and not warnings(run.stderr), run.stderr[-3000:]
    for stream in REPORT_STREAMS:
        backfill, lookback = frames[stream]
        # A backfill of 410 days: at most 2 campaign and 7 flow timeframes, every day once, none twice.
        assert len(backfill) == {CAMPAIGNS: 2, FLOWS: 7}[stream]
        assert sorted(days_read(backfill)) == days_read([(first_day, today)])
        # The next run reads the lookback's 30 days again, in one timeframe.
        assert lookback == [(today - timedelta(days=29), today)]
        assert first.records(stream), stream
        assert_exact(first.records(stream), before[stream], STREAM_KEYS[stream], stream)
        # Upserted on the first run's rows, the second run's give exactly what Klaviyo says now.
        table = upserted([first.records(stream), second.records(stream)], stream)
        assert table == {key(row, stream): row for row in after[stream]}, stream
        assert before[stream] != after[stream], "the revision changed recent days"
        assert {row["conversion_metric_id"] for row in table.values()} == {metric}
        assert second.states[-1]["bookmarks"][stream] == {
            "first_day": first_day.isoformat(),
            "last_day": today.isoformat(),
            "conversion_metric_id": metric,
        }


def test_a_run_that_spends_the_daily_quota_ends_its_reports_cleanly_and_the_next_run_completes_them(account):
    book = ReportBook(account)
    tz, today = book.tz, book.today
    first_day = today - timedelta(days=409)
    metric = conversion_metric(account)["id"]
    quota = {"campaign_values": (1, 600, 1), "flow_series": (1, 600, 3)}
    runs, frames = [], {}
    # A day whose quota is spent, then the next, as a new fake serving the same account.
    for limited in (quota, limits()):
        with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limited) as fake:
            config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start_date(first_day, tz)}
            catalog = select(run_tap(config, "--discover"), REPORT_STREAMS | OTHERS)
            runs.append(run_tap(config, catalog=catalog, state=runs[-1].states[-1] if runs else None))
            for stream in REPORT_STREAMS:
                frames.setdefault(stream, []).append(timeframes(fake, stream))
    first, second = runs
    assert first.returncode == 0, first.stderr[-3000:]
    # One warning per report stream, naming the quota and when it resets.
    said = warnings(first.stderr)
    assert len(said) == 2, said
    for stream in REPORT_STREAMS:
        (line,) = [w for w in said if f"Stream '{stream}' stopped" in w]
        assert "daily quota" in line and "resets in 24.0 h" in line and "next run goes on" in line, line
    # Every other stream is whole.
    expected = expected_streams(account)
    for stream in OTHERS:
        assert_exact(first.records(stream), expected[stream], STREAM_KEYS[stream], stream)
    # The state says what was read: the newest timeframes.
    held = {s: first.states[-1]["bookmarks"][s] for s in REPORT_STREAMS}
    assert held[CAMPAIGNS]["first_day"] == (today - timedelta(days=364)).isoformat()
    assert held[FLOWS]["first_day"] == (today - timedelta(days=179)).isoformat()
    assert all(h["last_day"] == today.isoformat() for h in held.values())
    assert second.returncode == 0 and not warnings(second.stderr), second.stderr[-3000:]
    after = expected_reports(book, metric, first_day, today)
    for stream in REPORT_STREAMS:
        done, again = frames[stream]
        assert len(done) == {CAMPAIGNS: 1, FLOWS: 3}[stream], "the quota's worth"
        completed = set(days_read(done)) & set(days_read(timeframes_from(held[stream])))
        reread = completed & set(days_read(again))
        assert reread <= set(days_read([(today - timedelta(days=29), today)])), "only the lookback is read again"
        assert set(days_read(done)) | set(days_read(again)) >= set(days_read([(first_day, today)]))
        table = upserted([first.records(stream), second.records(stream)], stream)
        assert table == {key(row, stream): row for row in after[stream]}, stream
        assert second.states[-1]["bookmarks"][stream]["first_day"] == first_day.isoformat()


def timeframes_from(held: dict) -> list[tuple[date, date]]:
    return [(date.fromisoformat(held["first_day"]), date.fromisoformat(held["last_day"]))]


def test_a_request_budget_stops_a_report_stream_with_one_warning(account):
    book = ReportBook(account)
    first_day = book.today - timedelta(days=129)
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limits()) as fake:
        config = {
            "api_key": API_KEY,
            "api_url": fake.url,
            "start_date": start_date(first_day, book.tz),
            "report_request_budget": 2,
        }
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), REPORT_STREAMS))
        asked = {s: timeframes(fake, s) for s in REPORT_STREAMS}
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = warnings(result.stderr)
    assert "Stream 'flow_series_reports' stopped after 2 request(s)" in line
    assert "setting `report_request_budget` allows 2" in line
    assert len(asked[FLOWS]) == 2 and len(asked[CAMPAIGNS]) == 1
    assert result.states[-1]["bookmarks"][FLOWS]["first_day"] == (book.today - timedelta(days=119)).isoformat()


def test_reports_carry_the_account_id_and_are_never_mirrored(account):
    book = ReportBook(account)
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limits()) as fake:
        config = {
            "api_key": API_KEY,
            "api_url": fake.url,
            "start_date": start_date(book.today - timedelta(days=20), book.tz),
            "add_account_id": True,
            "emit_activate_version_messages": True,
        }
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), REPORT_STREAMS | {"flows"}))
    assert result.returncode == 0, result.stderr[-3000:]
    activated = {m["stream"] for m in result.messages if m["type"] == "ACTIVATE_VERSION"}
    assert activated == {"flows"}, "a run reads some of a report's rows: activating it would delete the others"
    for stream in REPORT_STREAMS:
        (schema,) = [m for m in result.messages if m["type"] == "SCHEMA" and m["stream"] == stream]
        assert schema["key_properties"] == ["account_id", *STREAM_KEYS[stream]]
        records = [m for m in result.messages if m["type"] == "RECORD" and m["stream"] == stream]
        assert records and all("version" not in m for m in records)
        assert {m["record"]["account_id"] for m in records} == {account.account["id"]}


def test_what_a_report_run_cannot_do_stops_it_in_one_line_before_any_record(account):
    book = ReportBook(account)
    with FakeKlaviyo(account, api_key=API_KEY, reports=book) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start_date(book.today, book.tz)}
        catalog = select(run_tap(config, "--discover"), REPORT_STREAMS | OTHERS)
        # Klaviyo counts no conversions of its own message metrics.
        refused = run_tap({**config, "report_conversion_metric": "Opened Email"}, catalog=catalog)
        missing = run_tap(
            {**config, "report_conversion_metric": {"name": "Placed Order", "integration": "magento"}}, catalog=catalog
        )
    assert_one_line_error(refused, "Klaviyo refused setting `report_conversion_metric` ('Opened Email', metric ")
    assert "does not support querying for values data" in refused.stderr
    assert not [m for m in refused.messages if m["type"] == "RECORD"]
    # A metric the account lacks: a warning, and empty report streams.
    assert missing.returncode == 0 and not missing.records(CAMPAIGNS) and not missing.records(FLOWS)
    said = warnings(missing.stderr)
    assert len(said) == 2 and all("no metric named 'Placed Order' of integration 'magento'" in w for w in said)
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, scopes=ALL_READ_SCOPES - {"flows:read"}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start_date(book.today, book.tz)}
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), REPORT_STREAMS))
    assert_one_line_error(result, "lacks the scope 'flows:read' (for stream 'flow_series_reports')")


def test_an_account_timezone_this_machine_does_not_know_stops_the_run_in_one_line():
    account = generate_account(seed=32, campaigns=10, flows=2, events_per_metric=5)
    account.account["attributes"]["timezone"] = "Mars/Olympus_Mons"
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), {FLOWS}))
    assert_one_line_error(result, "Klaviyo gives the account's timezone as 'Mars/Olympus_Mons', which this machine")
    assert "install the `tzdata` package" in result.stderr


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            {"report_lookback_days": 0},
            "Setting `report_lookback_days` must be a whole number of days from 1 to 365, not 0",
        ),
        ({"report_lookback_days": 366}, "from 1 to 365, not 366"),
        ({"report_lookback_days": "30"}, "report_lookback_days"),
        ({"report_request_budget": 0}, "Setting `report_request_budget` must be a whole number of requests, 1 or more"),
        ({"report_conversion_metric": ""}, "Setting `report_conversion_metric` must be a metric name"),
        ({"report_conversion_metric": {"name": "Placed Order", "stream": "x"}}, "report_conversion_metric"),
    ],
)
def test_report_settings_out_of_range_stop_the_run_in_one_line(settings, said):
    result = run_tap({"api_key": API_KEY, "api_url": f"http://127.0.0.1:{closed_port()}", **settings})
    assert_one_line_error(result, said)


def test_a_report_state_that_cannot_be_right_stops_the_run_in_one_line():
    state = {"bookmarks": {FLOWS: {"first_day": "2026-02-30", "last_day": "2026-03-01", "conversion_metric_id": "X"}}}
    result = run_tap({"api_key": API_KEY, "api_url": f"http://127.0.0.1:{closed_port()}"}, state=state)
    assert_one_line_error(result, "The state of report stream 'flow_series_reports' has a `first_day` that is no date")


def test_a_run_killed_part_way_through_a_backfill_goes_on_from_its_last_state(account):
    book = ReportBook(account)
    first_day = book.today - timedelta(days=249)
    metric = conversion_metric(account)["id"]
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limits()) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start_date(first_day, book.tz)}
        catalog = select(run_tap(config, "--discover"), {FLOWS})

        def two_timeframes_read(message: dict) -> bool:
            held = message["value"]["bookmarks"].get(FLOWS, {}) if message["type"] == "STATE" else {}
            return held.get("first_day") == (book.today - timedelta(days=119)).isoformat()

        written, state, _, _ = run_and_signal_at(config, catalog, two_timeframes_read)
        since = len(fake.requests)
        rerun = run_tap(config, state=state, catalog=catalog)
        again = timeframes(fake, FLOWS, since)
    assert state is not None and rerun.returncode == 0, rerun.stderr[-3000:]
    # The lookback, then the days the killed run had not read: 250 days, 60 a timeframe, two done.
    assert again[0] == (book.today - timedelta(days=29), book.today)
    assert sorted(days_read(again[1:])) == days_read([(first_day, book.today - timedelta(days=120))])
    killed = [m["record"] for m in written if m["type"] == "RECORD" and m["stream"] == FLOWS]
    table = upserted([killed, rerun.records(FLOWS)], FLOWS)
    assert table == {key(row, FLOWS): row for row in expected_reports(book, metric, first_day, book.today)[FLOWS]}


def test_sigterm_while_a_report_request_waits_its_turn_stops_the_run_at_once(account):
    # Klaviyo's two a minute: the third request waits about a minute, and a signal must not.
    book = ReportBook(account)
    real = {"campaign_values": (1, 2, 225), "flow_series": (1, 2, 225)}
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=real) as fake:
        config = {
            "api_key": API_KEY,
            "api_url": fake.url,
            "start_date": start_date(book.today - timedelta(days=179), book.tz),
        }
        catalog = select(run_tap(config, "--discover"), {FLOWS})

        def two_timeframes_read(message: dict) -> bool:
            return (
                message["type"] == "STATE"
                and message["value"]["bookmarks"].get(FLOWS, {}).get("first_day")
                == (book.today - timedelta(days=119)).isoformat()
            )

        written, state, code, seconds = run_and_signal_at(config, catalog, two_timeframes_read, signal.SIGTERM)
        asked = timeframes(fake, FLOWS)
    assert code == 143 and seconds < 5, (code, seconds)
    assert len(asked) == 2, "the third timeframe was never asked for"
    assert (
        written[-1]["type"] == "STATE"
        and state["bookmarks"][FLOWS]["first_day"] == (book.today - timedelta(days=119)).isoformat()
    )


def test_an_account_east_of_utc_gets_its_own_days():
    # In Auckland the account's day is already tomorrow for most of UTC's: rows are dated by the account's days.
    account = generate_account(seed=33, campaigns=60, flows=6, events_per_metric=10)
    account.account["attributes"]["timezone"] = "Pacific/Auckland"
    book = ReportBook(account)
    first_day = book.today - timedelta(days=99)
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limits()) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start_date(first_day, book.tz)}
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), REPORT_STREAMS))
        for stream in REPORT_STREAMS:
            assert_whole_days(fake, stream, book.tz)
            assert sorted(days_read(timeframes(fake, stream))) == days_read([(first_day, book.today)])
    assert result.returncode == 0, result.stderr[-3000:]
    expected = expected_reports(book, conversion_metric(account)["id"], first_day, book.today)
    for stream in REPORT_STREAMS:
        assert result.records(stream)
        assert_exact(result.records(stream), expected[stream], STREAM_KEYS[stream], stream)


def test_without_start_date_reports_begin_at_the_first_campaign_or_flow_and_end_date_ends_them(account):
    book = ReportBook(account)
    tz, metric = book.tz, conversion_metric(account)["id"]
    oldest_campaign = min(datetime.fromisoformat(c["attributes"]["created_at"]) for c in account.campaigns)
    oldest_flow = min(datetime.fromisoformat(f["attributes"]["created"]) for f in account.flows)
    flows_end = oldest_flow + timedelta(days=20)
    with FakeKlaviyo(account, api_key=API_KEY, reports=book, rate_limits=limits()) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        campaigns = run_tap(config, catalog=select(run_tap(config, "--discover"), {CAMPAIGNS}))
        flows_config = {**config, "end_date": flows_end.isoformat()}
        flows = run_tap(flows_config, catalog=select(run_tap(flows_config, "--discover"), {FLOWS}))
        asked = {stream: timeframes(fake, stream) for stream in REPORT_STREAMS}
        lookups = [r.query for r in fake.requests if r.endpoint in ("campaigns", "flows")]
    assert campaigns.returncode == 0 and flows.returncode == 0, campaigns.stderr[-2000:] + flows.stderr[-2000:]
    first_day = oldest_campaign.astimezone(tz).date()
    assert sorted(days_read(asked[CAMPAIGNS])) == days_read([(first_day, book.today)])
    assert_exact(
        campaigns.records(CAMPAIGNS),
        expected_reports(book, metric, first_day, book.today)[CAMPAIGNS],
        STREAM_KEYS[CAMPAIGNS],
        CAMPAIGNS,
    )
    # The day before end_date's is the last.
    assert asked[FLOWS] == [
        (oldest_flow.astimezone(tz).date(), (flows_end - timedelta(seconds=1)).astimezone(tz).date())
    ]
    # One campaign per channel (Klaviyo lists campaigns a channel at a time), one flow: the oldest.
    assert sorted(q["filter"][0] for q in lookups if "created_at" in q.get("sort", [])) == [
        f"equals(messages.channel,'{channel}')" for channel in ("email", "mobile_push", "sms")
    ]
    assert [q for q in lookups if q.get("sort") == ["created"]] == [
        {"sort": ["created"], "fields[flow]": ["created"], "page[size]": ["1"]}
    ]
