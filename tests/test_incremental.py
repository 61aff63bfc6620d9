"""From-date, incremental and resumable syncs against the fake Klaviyo: nothing lost, little repeated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tap_klaviyo.streams.events import EventStream
from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    STREAM_KEYS,
    assert_exact,
    bookmark,
    expected_streams,
    klaviyo_metric,
    rfc3339,
    run_and_kill,
    run_tap,
    select,
    utc,
)

pytestmark = pytest.mark.e2e


def event_requests(fake: FakeKlaviyo) -> list:
    """Requests for pages of events, oldest first (not those for a stream's newest event, sent beside them)."""
    return [r for r in fake.requests if r.path.rstrip("/") == "/api/events" and r.query.get("sort") != ["-datetime"]]


def test_a_rerun_from_the_final_state_fetches_next_to_nothing(account, fake, config):
    first = run_tap(config)
    assert first.returncode == 0, first.stderr
    state = first.states[-1]
    for stream in EVENT_METRICS:
        assert bookmark(state, stream), f"{stream} has no bookmark after a full run"
    fake.clear_requests()

    second = run_tap(config, state=state)
    assert second.returncode == 0, second.stderr
    expected = expected_streams(account)
    # One request per event stream, and only records sharing the bookmark's second come back.
    assert len(event_requests(fake)) == len(EVENT_METRICS)
    for stream in EVENT_METRICS:
        rows = second.records(stream)
        assert rows, f"{stream}: the bookmark's own second is read again"
        assert {r["datetime"] for r in rows} == {bookmark(state, stream)}
        same_second = [e for e in expected[stream] if e["datetime"] == bookmark(state, stream)]
        assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in same_second), stream
    # Entities: only those changed since the bookmark (lists and segments: after a second before it).
    cutoffs = {
        "lists_and_segments": lambda r, since: utc(r["updated"]) > since - timedelta(seconds=1),
        "email_campaigns": lambda r, since: utc(r["updated_at"]) >= since,
        "campaigns": lambda r, since: utc(r["updated_at"]) >= since,
        "flows": lambda r, since: utc(r["updated"]) >= since,
    }
    for stream, changed_since in cutoffs.items():
        changed = {r["id"] for r in expected[stream] if changed_since(r, utc(bookmark(state, stream)))}
        assert {r["id"] for r in second.records(stream)} == changed, stream
        assert len(changed) < len(expected[stream]) / 4, "the bookmark leaves most entities out"
    # Campaign messages follow their campaigns: those the run re-read, and only those.
    campaigns = {r["id"] for r in second.records("email_campaigns")}
    messages = [r for r in expected["email_campaign_messages"] if r["campaign_id"] in campaigns]
    assert messages, "the re-read campaigns have messages"
    assert_exact(second.records("email_campaign_messages"), messages, ["id"], "email_campaign_messages")
    campaigns = {r["id"] for r in second.records("campaigns")}
    for stream in ("campaign_messages", "campaign_audiences"):
        rows = [r for r in expected[stream] if r["campaign_id"] in campaigns]
        assert rows, f"the re-read campaigns have {stream}"
        assert_exact(second.records(stream), rows, STREAM_KEYS[stream], stream)
    # Flow actions and messages are read whole every run (the flows walk has no filter).
    for stream in ("flow_actions", "flow_messages"):
        assert_exact(second.records(stream), expected[stream], STREAM_KEYS[stream], stream)
    (flows,) = [r for r in fake.requests if r.path.rstrip("/") == "/api/flows" and "page[cursor]" not in r.query]
    assert "filter" not in flows.query
    assert second.states[-1]["bookmarks"].keys() == state["bookmarks"].keys()


def test_streams_of_one_walk_keep_their_own_bookmarks(account, fake, config):
    email = sorted(account.email_campaigns(), key=lambda c: utc(c["attributes"]["updated_at"]))
    # email_campaigns is further behind than campaigns: the email walk starts at its bookmark, campaigns keeps
    # only what is past its own.
    older, newer = (email[len(email) * k // 4]["attributes"]["updated_at"] for k in (1, 3))
    state = {
        "bookmarks": {
            "email_campaigns": {"replication_key": "updated_at", "replication_key_value": older},
            "campaigns": {"replication_key": "updated_at", "replication_key_value": newer},
        }
    }
    streams = {"email_campaigns", "email_campaign_messages", "campaigns", "campaign_messages", "campaign_audiences"}
    result = run_tap(config, state=state, catalog=select(run_tap(config, "--discover"), streams))
    assert result.returncode == 0, result.stderr
    expected = expected_streams(account)
    kept = {
        "email_campaigns": [r for r in expected["email_campaigns"] if utc(r["updated_at"]) >= utc(older)],
        "campaigns": [r for r in expected["campaigns"] if utc(r["updated_at"]) >= utc(newer)],
    }
    assert len(kept["campaigns"]) < len([r for r in kept["email_campaigns"]]) < len(expected["email_campaigns"])
    for parent, derived in (("email_campaigns", "email_campaign_messages"), ("campaigns", "campaign_messages")):
        ids = {r["id"] for r in kept[parent]}
        assert_exact(result.records(parent), kept[parent], ["id"], parent)
        messages = [r for r in expected[derived] if r["campaign_id"] in ids]
        assert_exact(result.records(derived), messages, ["id"], derived)
    audiences = [r for r in expected["campaign_audiences"] if r["campaign_id"] in {c["id"] for c in kept["campaigns"]}]
    assert_exact(result.records("campaign_audiences"), audiences, STREAM_KEYS["campaign_audiences"], "audiences")
    walks = [r for r in fake.requests if r.path.rstrip("/") == "/api/campaigns" and "page[cursor]" not in r.query]
    filters = sorted(r.query["filter"][0] for r in walks)
    assert filters == sorted(
        f"and(equals(messages.channel,'{channel}'),greater-or-equal(updated_at,{utc(since):%Y-%m-%dT%H:%M:%SZ}))"
        for channel, since in (("email", older), ("sms", newer), ("mobile_push", newer))
    ), "one walk per channel, the email one from the older bookmark"
    assert utc(bookmark(result.states[-1], "campaigns")) >= utc(newer)


def test_a_state_in_the_middle_delivers_exactly_from_there(account, fake, config):
    metric = klaviyo_metric(account, "Opened Email")
    events = account.events_for_metric(metric["id"])
    # A second that several events share, so the boundary is tested where it is hardest.
    seconds = [e["attributes"]["datetime"] for e in events]
    shared = next(d for d in seconds[len(seconds) // 2 :] if seconds.count(d) > 1)
    state = {"bookmarks": {"opened_email": {"replication_key": "datetime", "replication_key_value": shared}}}
    catalog = select(run_tap(config, "--discover"), {"opened_email"})
    result = run_tap(config, state=state, catalog=catalog)
    assert result.returncode == 0, result.stderr
    expected = {e["id"] for e in events if utc(e["attributes"]["datetime"]) >= utc(shared)}
    got = [r["id"] for r in result.records("opened_email")]
    assert sorted(got) == sorted(expected)
    # The state holds the time as Klaviyo wrote it (with a space); the records come out in RFC 3339.
    emitted = [r for r in result.records("opened_email") if r["datetime"] == rfc3339(shared)]
    assert seconds.count(shared) > 1 and len(emitted) > 1


def test_future_events_are_emitted_but_the_bookmark_stays_at_the_sync_start():
    account = generate_account(seed=11, events_per_metric=40, future_events=12)
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        before = datetime.now(UTC)
        result = run_tap({"api_key": API_KEY, "api_url": fake.url})
        after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    emitted = [r for s in EVENT_METRICS for r in result.records(s)]
    future = [r for r in emitted if utc(r["datetime"]) > after]
    assert future, "the fake account should hold future-dated email events"
    final = result.states[-1]
    for stream in EVENT_METRICS:
        value = bookmark(final, stream)
        if value:
            assert utc(value) <= after, f"{stream} bookmark {value} is past the sync start"
    capped = [s for s in EVENT_METRICS if any(utc(r["datetime"]) > after for r in result.records(s))]
    assert all(before - timedelta(minutes=5) <= utc(bookmark(final, s)) <= after for s in capped)


def test_start_date_is_inclusive_and_end_date_exclusive(account, fake, config):
    metric = klaviyo_metric(account, "Clicked Email")
    events = sorted(account.events_for_metric(metric["id"]), key=lambda e: e["attributes"]["datetime"])
    start = events[len(events) // 4]["attributes"]["datetime"]
    end = events[3 * len(events) // 4]["attributes"]["datetime"]
    catalog = select(run_tap(config, "--discover"), {"clicked_email"})
    result = run_tap({**config, "start_date": start, "end_date": end}, catalog=catalog)
    assert result.returncode == 0, result.stderr
    expected = {e["id"] for e in events if utc(start) <= utc(e["attributes"]["datetime"]) < utc(end)}
    got = [r["id"] for r in result.records("clicked_email")]
    assert sorted(got) == sorted(expected)
    assert any(r["datetime"] == rfc3339(start) for r in result.records("clicked_email"))
    assert not any(r["datetime"] == rfc3339(end) for r in result.records("clicked_email"))


def test_full_table_in_the_catalog_ignores_the_bookmark(account, fake, config):
    first = run_tap(config)
    catalog = select(run_tap(config, "--discover"), {"opened_email"}, method="FULL_TABLE")
    result = run_tap(config, state=first.states[-1], catalog=catalog)
    assert result.returncode == 0, result.stderr
    metric = klaviyo_metric(account, "Opened Email")
    assert sorted(r["id"] for r in result.records("opened_email")) == sorted(
        e["id"] for e in account.events_for_metric(metric["id"])
    )


def test_lookback_reads_a_window_before_the_bookmark(account, fake, config):
    first = run_tap(config)
    state = first.states[-1]
    fake.clear_requests()
    result = run_tap({**config, "lookback_minutes": 90}, state=state)
    assert result.returncode == 0, result.stderr
    for stream, metric_name in EVENT_METRICS.items():
        start = utc(bookmark(state, stream)) - timedelta(minutes=90)
        metric = klaviyo_metric(account, metric_name)
        expected = {
            e["id"] for e in account.events_for_metric(metric["id"]) if utc(e["attributes"]["datetime"]) >= start
        }
        assert {r["id"] for r in result.records(stream)} == expected


@pytest.mark.parametrize("fail", [True, False])
def test_fail_on_no_new_data(account, fake, config, fail):
    first = run_tap(config)
    result = run_tap({**config, "fail_on_no_new_data": fail}, state=first.states[-1])
    assert result.states, "state is still emitted"
    if not fail:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    for stream in EVENT_METRICS:
        assert stream in errors[0]


def test_a_killed_sync_resumes_from_its_last_state_losing_nothing():
    account = generate_account(seed=21, events_per_metric=2500)
    with FakeKlaviyo(account, api_key=API_KEY, latency=0.002, page_size_max={"events": 200}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        delivered, last_state = run_and_kill(config, kill_after_states=4)
        assert last_state is not None
        partly = [s for s in EVENT_METRICS if bookmark(last_state, s)]
        assert partly, "the kill should land inside the event streams"
        resumed = run_tap(config, state=last_state)
        assert resumed.returncode == 0, resumed.stderr
    expected = expected_streams(account)
    for stream in EVENT_METRICS:
        ids = [r["id"] for r in delivered.get(stream, [])] + [r["id"] for r in resumed.records(stream)]
        want = {r["id"] for r in expected[stream]}
        assert set(ids) == want, f"{stream}: {len(want - set(ids))} events lost across the kill"
        # Re-sent: at most what followed the last STATE, and what shares its bookmark's second.
        mark = bookmark(last_state, stream)
        same_second = sum(1 for r in expected[stream] if r["datetime"] == mark)
        resent = len(ids) - len(want)
        assert resent <= EventStream.STATE_MSG_FREQUENCY - 1 + same_second, f"{stream}: {resent} events re-sent"
    for stream in DEFAULT_STREAMS - set(EVENT_METRICS):
        assert resumed.records(stream) or delivered.get(stream), stream
