"""Times as Klaviyo really writes them (an event's `datetime` and consent timestamps with a space for the "T"):
parsed as instants, emitted as RFC 3339, and bookmarks that never pass a sync's start, never go back, and never
trip the SDK's sort check on the next run, whatever form the next page's values have."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tap_klaviyo.records import compile_times
from tap_klaviyo.streams.walks import since_condition
from tap_klaviyo.times import bookmark_text, parse_datetime, rfc3339
from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    bookmark,
    event_metric_id,
    expected_events,
    run_tap,
    select,
    utc,
)

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")
PEOPLE = {"profiles", "lists_and_segments_members"}


# --- the parser and the forms written ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-04-01 17:33:16+00:00", datetime(2024, 4, 1, 17, 33, 16, tzinfo=UTC)),
        ("2024-04-01T17:33:16+00:00", datetime(2024, 4, 1, 17, 33, 16, tzinfo=UTC)),
        ("2024-04-01T17:33:16Z", datetime(2024, 4, 1, 17, 33, 16, tzinfo=UTC)),
        ("2026-06-23 00:15:23.918411+00:00", datetime(2026, 6, 23, 0, 15, 23, 918411, tzinfo=UTC)),
        ("2024-04-01T19:33:16.5+02:00", datetime(2024, 4, 1, 17, 33, 16, 500000, tzinfo=UTC)),
        ("2024-04-01T17:33:16.1234567-00:00", datetime(2024, 4, 1, 17, 33, 16, 123456, tzinfo=UTC)),
        ("2024-04-01", datetime(2024, 4, 1, tzinfo=UTC)),
    ],
)
def test_every_form_klaviyo_writes_parses_to_its_instant(text, expected):
    assert parse_datetime(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00Z", "2024-04-01T25:00:00Z", ""])
def test_what_is_not_a_time_is_refused(text):
    with pytest.raises(ValueError):
        parse_datetime(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-04-01 17:33:16+00:00", "2024-04-01T17:33:16+00:00"),
        ("2026-06-23 00:15:23.918411+00:00", "2026-06-23T00:15:23.918411+00:00"),
        ("2024-04-01 19:33:16.5+02:00", "2024-04-01T19:33:16.5+02:00"),
        ("2024-04-01T17:33:16Z", "2024-04-01T17:33:16Z"),
        ("2024-04-01 17:33:16", "2024-04-01T17:33:16+00:00"),
        ("not a time", "not a time"),
    ],
)
def test_times_leave_in_rfc3339_with_offset_and_fraction_kept(text, expected):
    assert rfc3339(text) == expected


def test_bookmarks_are_written_in_one_form_that_sorts_as_instants_do():
    moments = [
        parse_datetime(t)
        for t in ("2024-04-01 17:33:16+00:00", "2024-04-01T17:33:16.000001Z", "2024-04-01T19:33:17+02:00")
    ]
    texts = [bookmark_text(m) for m in moments]
    assert texts == ["2024-04-01T17:33:16+00:00", "2024-04-01T17:33:16.000001+00:00", "2024-04-01T17:33:17+00:00"]
    assert sorted(texts) == texts and [parse_datetime(t) for t in texts] == moments


def test_only_the_schema_s_date_time_fields_are_rewritten_nested_and_in_arrays():
    schema = {
        "properties": {
            "datetime": {"type": ["string", "null"], "format": "date-time"},
            "note": {"type": ["string", "null"]},
            "send_times": {"type": "array", "items": {"properties": {"datetime": {"format": "date-time"}}}},
            "subscriptions": {
                "properties": {"sms": {"properties": {"marketing": {"properties": {"consent_timestamp": {}}}}}}
            },
            "consent": {"properties": {"at": {"type": "string", "format": "date-time"}}},
        }
    }
    record: dict[str, Any] = {
        "datetime": "2024-04-01 17:33:16+00:00",
        "note": "2024-04-01 17:33:16+00:00",
        "send_times": [{"datetime": "2024-04-02 00:00:00+00:00"}, {"datetime": None}],
        "consent": {"at": "2026-06-23 00:15:23.918411+00:00"},
    }
    compile_times(schema)(record)
    assert record == {
        "datetime": "2024-04-01T17:33:16+00:00",
        "note": "2024-04-01 17:33:16+00:00",
        "send_times": [{"datetime": "2024-04-02T00:00:00+00:00"}, {"datetime": None}],
        "consent": {"at": "2026-06-23T00:15:23.918411+00:00"},
    }


def test_a_greater_than_filter_starts_a_second_early_and_others_at_the_bound():
    """Filters take whole seconds: `greater-than` a bookmark's second would lose the records that share it."""
    since = datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    assert since_condition("greater-than", "updated", since) == "greater-than(updated,2024-01-02T03:04:04Z)"
    assert since_condition("greater-or-equal", "datetime", since) == "greater-or-equal(datetime,2024-01-02T03:04:05Z)"


# --- whole runs against Klaviyo's forms ---------------------------------------------------------------------------


def datetime_values(schema: dict[str, Any], value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, value) of every string a record holds where its schema says `format: date-time`."""
    if isinstance(value, list):
        return [found for item in value for found in datetime_values(schema.get("items", {}), item, path + "[]")]
    if schema.get("format") == "date-time":
        return [(path, value)] if isinstance(value, str) else []
    if not isinstance(value, dict):
        return []
    properties = schema.get("properties", {})
    return [
        found
        for name, sub in value.items()
        if name in properties
        for found in datetime_values(properties[name], sub, f"{path}.{name}")
    ]


@pytest.mark.e2e
def test_every_time_of_a_full_run_of_every_stream_leaves_as_rfc3339(account, fake, config):
    served = [e["attributes"]["datetime"] for e in account.events]
    assert all(t[10] == " " for t in served[:100]), "the fake writes events' times as Klaviyo does"
    discovery = run_tap(config, "--discover")
    schemas = {entry["tap_stream_id"]: entry["schema"] for entry in json.loads(discovery.stdout)["streams"]}
    result = run_tap(config, catalog=select(discovery, DEFAULT_STREAMS | PEOPLE))
    assert result.returncode == 0, result.stderr
    seen: Counter[str] = Counter()
    for stream, records in result.by_stream().items():
        for record in records:
            for path, value in datetime_values(schemas[stream], record):
                assert RFC3339.match(value), f"{stream}{path} is not RFC 3339: {value!r}"
                seen[f"{stream}{path}"] += 1
    assert seen["profiles.subscriptions.email.marketing.consent_timestamp"] > 0
    assert all(seen[f"{stream}.datetime"] > 0 for stream in EVENT_METRICS)
    for state in result.states:
        for stream, entry in state["bookmarks"].items():
            for part in [entry, *entry.get("partitions", [])]:
                value = part.get("replication_key_value")
                assert value is None or RFC3339.match(value), f"{stream}'s bookmark is not RFC 3339: {value!r}"


def today_and_later(count: int, after: timedelta, step: timedelta) -> list[datetime]:
    """`count` times from `after` past now on, `step` apart: later the same UTC day, but within a few minutes of
    midnight."""
    now = datetime.now(UTC).replace(microsecond=0)
    return [now + after + i * step for i in range(count)]


@pytest.mark.e2e
def test_an_event_dated_later_today_never_becomes_the_bookmark_and_the_next_run_misses_nothing():
    # Later the same UTC day than the sync's start: as text, Klaviyo's "2026-12-07 05:00:00+00:00" sorts before the
    # start's "2026-12-07T03:00:00+00:00", so a text comparison let such an event become the bookmark, and every
    # event that arrived afterwards dated before it was skipped for good.
    future = today_and_later(12, timedelta(minutes=3), timedelta(seconds=7))
    before = generate_account(seed=31, events_per_metric=40, timed_events=future)
    with FakeKlaviyo(before, api_key=API_KEY) as fake:
        first = run_tap({"api_key": API_KEY, "api_url": fake.url})
    first_ended = datetime.now(UTC)
    assert first.returncode == 0, first.stderr
    state = first.states[-1]
    for stream in EVENT_METRICS:
        assert first_ended - timedelta(minutes=2) <= utc(bookmark(state, stream)) <= first_ended, stream
        emitted = {r["id"] for r in first.records(stream)}
        assert emitted == {r["id"] for r in expected_events(before, event_metric_id(before, stream))}

    # Events that reached Klaviyo after the first run, dated between its start and the future events.
    arrived = [first_ended + timedelta(seconds=1 + i) for i in range(6)]
    after = generate_account(seed=31, events_per_metric=40, timed_events=[*future, *arrived])
    with FakeKlaviyo(after, api_key=API_KEY) as fake:
        second = run_tap({"api_key": API_KEY, "api_url": fake.url}, state=state)
    second_ended = datetime.now(UTC)
    assert second.returncode == 0, second.stderr
    for stream in EVENT_METRICS:
        expected = expected_events(after, event_metric_id(after, stream))
        new = {r["id"] for r in expected if utc(r["datetime"]) >= utc(bookmark(state, stream)).replace(microsecond=0)}
        got = {r["id"] for r in second.records(stream)}
        assert got == new, f"{stream}: {len(new - got)} missed, {len(got - new)} read again"
        assert {r["id"] for r in expected} == got | {r["id"] for r in first.records(stream)}
        assert utc(bookmark(second.states[-1], stream)) <= second_ended
    assert sum(len(second.records(s)) for s in EVENT_METRICS) >= len(future) + len(arrived)


def capped(value: str) -> str:
    """A bookmark as a capped one is written: the sync's start, with its microseconds, in one of a record's
    seconds."""
    return parse_datetime(value).replace(microsecond=866000).isoformat()


@pytest.mark.e2e
def test_a_rerun_from_a_capped_bookmark_inside_a_second_of_events_reads_that_second_again(account, fake, config):
    # The events of the bookmark's second are dated before it (by its microseconds): read again by
    # greater-or-equal on the whole second, they must not move the bookmark back, nor trip the SDK's sort check.
    stream = "opened_email"
    events = expected_events(account, event_metric_id(account, stream))
    counts = Counter(e["datetime"] for e in events)
    second = next(t for t in [e["datetime"] for e in events][len(events) // 2 :] if counts[t] >= 2)
    state = {"bookmarks": {stream: {"replication_key": "datetime", "replication_key_value": capped(second)}}}
    result = run_tap(config, state=state, catalog=select(run_tap(config, "--discover"), {stream}))
    assert result.returncode == 0, result.stderr
    got = [r["id"] for r in result.records(stream)]
    assert got == [e["id"] for e in events if utc(e["datetime"]) >= utc(second)]
    assert bookmark(result.states[-1], stream) == events[-1]["datetime"]


@pytest.mark.e2e
def test_a_rerun_from_capped_bookmarks_of_profiles_and_members_inside_a_shared_second(account, fake, config):
    profiles = account.profiles_in_order("updated")
    updated = Counter(p["attributes"]["updated"] for p in profiles)
    second = next(t for t in [p["attributes"]["updated"] for p in profiles][len(profiles) // 2 :] if updated[t] >= 2)
    group = account.lists[0]["id"]
    members = account.members(group)
    joined = Counter(j for _, j in members)
    member_second = next(j for j in [j for _, j in members][len(members) // 3 :] if joined[j] >= 2)
    state = {
        "bookmarks": {
            "profiles": {"replication_key": "updated", "replication_key_value": capped(second)},
            "lists_and_segments_members": {
                "partitions": [
                    {
                        "context": {"list_id": group, "type": "list"},
                        "replication_key": "joined_group_at",
                        "replication_key_value": capped(member_second),
                    }
                ]
            },
        }
    }
    result = run_tap(config, state=state, catalog=select(run_tap(config, "--discover"), PEOPLE))
    assert result.returncode == 0, result.stderr
    got = {r["id"] for r in result.records("profiles")}
    assert got == {p["id"] for p in profiles if utc(p["attributes"]["updated"]) >= utc(second)}
    of_group = [r["profile_id"] for r in result.records("lists_and_segments_members") if r["list_id"] == group]
    assert of_group == [p for p, j in members if utc(j) >= utc(member_second)]
    final = result.states[-1]["bookmarks"]
    assert utc(final["profiles"]["replication_key_value"]) == utc(profiles[-1]["attributes"]["updated"])
    partition = next(p for p in final["lists_and_segments_members"]["partitions"] if p["context"]["list_id"] == group)
    assert utc(partition["replication_key_value"]) == utc(members[-1][1])


@pytest.mark.e2e
@pytest.mark.parametrize(
    "rewriting",
    [{}, {"flattening_enabled": True, "flattening_max_depth": 1}],
    ids=["page at a time", "record by record (flattening)"],
)
def test_a_lookback_over_several_pages_reads_them_again_and_keeps_the_bookmark(rewriting):
    # 15,000 events in the last 20 hours, 2,500 a metric: a day's lookback re-reads three pages of each.
    recent = today_and_later(15_000, -timedelta(hours=20), timedelta(seconds=4.7))
    account = generate_account(seed=32, events_per_metric=40, timed_events=recent)
    stream = "opened_email"
    events = expected_events(account, event_metric_id(account, stream))
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, **rewriting}
        catalog = select(run_tap(config, "--discover"), {stream})
        first = run_tap(config, catalog=catalog)
        assert first.returncode == 0, first.stderr
        state = first.states[-1]
        held = bookmark(state, stream)
        assert utc(held) == utc(events[-1]["datetime"])
        second = run_tap({**config, "lookback_minutes": 24 * 60}, state=state, catalog=catalog)
    assert second.returncode == 0, second.stderr
    since = utc(held) - timedelta(days=1)
    expected = [e["id"] for e in events if utc(e["datetime"]) >= since]
    assert len(expected) > 2_000
    assert sorted(r["id"] for r in second.records(stream)) == sorted(expected)
    assert bookmark(second.states[-1], stream) == held
