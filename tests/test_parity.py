"""The page-at-a-time fast path of the event streams and profiles (`tap_klaviyo.sdk.PageSyncStream`) writes what
the SDK's own record loop writes for the same data: the same RECORD payloads, the same STATE messages at the same
points, and the same record counts. Both run in-process against one fake Klaviyo, so an SDK release that changes what
the fast path relies on fails here, not in a user's sync."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tap_klaviyo.output import RecordBufferingWriter
from tap_klaviyo.streams.events import EventStream
from tap_klaviyo.streams.profiles import ProfilesStream
from tap_klaviyo.tap import TapKlaviyo
from tests.kit import API_KEY, EVENT_METRICS, klaviyo_metric

ATTRIBUTIONS = "event_attributions"
# A conversion metric's stream, whose events carry attributions.
ORDERS = {"event_metrics": [{"name": "Placed Order", "integration": "shopify", "stream": "placed_order"}]}


class CapturingWriter(RecordBufferingWriter):
    """The tap's writer, keeping what it would write to stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def flush(self) -> None:
        self.written += self._pending
        self._pending.clear()


class RecordCounts(logging.Handler):
    """The SDK's `record_count` metrics, summed per stream."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        point = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if point is not None and getattr(point.metric, "value", None) == "record_count":
            self.counts[point.tags["stream"]] += point.value


def sync(
    config: dict[str, Any],
    state: dict[str, Any],
    *,
    fast: bool,
    monkeypatch,
    catalog: dict[str, Any] | None = None,
    streams: dict[str, type] | None = None,
) -> tuple[list[dict], Counter]:
    """Every message of a sync (without the times a sync is run at), and the record counts the SDK logged; `streams`:
    those written a page at a time, by name (the event streams by default). Without a `catalog`, the discovered one,
    with `event_attributions` selected when `event_metrics` is in the config."""
    streams = streams or dict.fromkeys(EVENT_METRICS, EventStream)
    with monkeypatch.context() as patch:
        if not fast:
            for family in set(streams.values()):
                patch.setattr(family, "writes_pages", lambda self: False)
        writer, counts = CapturingWriter(), RecordCounts()
        metrics = logging.getLogger("singer_sdk.metrics")
        metrics.addHandler(counts)
        try:
            if catalog is None:
                catalog = TapKlaviyo(config=config).catalog_dict
                for entry in catalog["streams"]:
                    if entry["tap_stream_id"] == ATTRIBUTIONS and config.get("event_metrics"):
                        next(m for m in entry["metadata"] if m["breadcrumb"] == [])["metadata"]["selected"] = True
            tap = TapKlaviyo(config=config, state=state, catalog=catalog, message_writer=writer)
            taken = {name: stream.writes_pages() for name, stream in tap.streams.items() if name in streams}
            assert set(taken.values()) == {fast}, taken
            tap.sync_all()
        finally:
            metrics.removeHandler(counts)
        writer.flush()
    messages = [json.loads(line) for line in writer.written.splitlines()]
    for message in messages:
        message.pop("time_extracted", None)
        # The sync's start: each tap has its own.
        for bookmark in message.get("value", {}).get("bookmarks", {}).values():
            if "replication_key_signpost" in bookmark:
                bookmark["replication_key_signpost"] = "the sync's start"
    return messages, counts.counts


@pytest.fixture(scope="module")
def account():
    # Enough events per stream for several STATE points (every 1,000 records), and one event whose `timestamp`
    # breaks the schema, so one page takes the record-by-record check on the fast path too; conversions on several
    # pages.
    account = generate_account(seed=31, events_per_metric=2600, other_events_per_metric=1200)
    opened = account.events.metric_index[klaviyo_metric(account, EVENT_METRICS["opened_email"])["id"]]
    bad = account.events.by_metric[opened][1500]
    resource = account.events.resource

    def with_bad_timestamp(pos: int) -> dict[str, Any]:
        event = resource(pos)
        if pos == bad:
            event["attributes"]["timestamp"] = "1704154907"
        return event

    account.events.resource = with_bad_timestamp
    return account


@pytest.mark.parametrize(
    ("concurrency", "incremental", "add_account_id", "attributions"),
    [
        (1, False, False, False),
        (16, False, False, False),
        (1, True, False, False),
        (16, True, False, False),
        (16, False, True, False),
        (1, False, False, True),
        (16, True, True, True),
    ],
    ids=[
        "one-page-full",
        "full",
        "one-page-incremental",
        "incremental",
        "with-account-id",
        "one-page-attributions",
        "incremental-attributions-account-id",
    ],
)
def test_the_fast_path_writes_what_the_sdk_loop_writes(
    account, concurrency, incremental, add_account_id, attributions, monkeypatch
):
    midway = account.events[len(account.events) // 2]["attributes"]["datetime"]
    state = {"bookmarks": {"opened_email": {"replication_key": "datetime", "replication_key_value": midway}}}
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200} if attributions else None) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "concurrency": concurrency, "add_account_id": add_account_id}
        config.update(ORDERS if attributions else {})
        state = state if incremental else {}
        fast, fast_counts = sync(config, state, fast=True, monkeypatch=monkeypatch)
        slow, slow_counts = sync(config, state, fast=False, monkeypatch=monkeypatch)

    for i, (ours, theirs) in enumerate(zip(fast, slow, strict=False)):
        assert ours == theirs, f"message {i} differs: fast path {str(ours)[:300]} vs SDK loop {str(theirs)[:300]}"
    assert len(fast) == len(slow)
    records = Counter(m["stream"] for m in fast if m["type"] == "RECORD")
    # Attributions are written while their events' streams sync: no stream of theirs counts them.
    assert fast_counts == slow_counts == records - Counter({ATTRIBUTIONS: records[ATTRIBUTIONS]})
    # The data reaches what is compared: several STATE points per event stream, and the account's id if asked for.
    assert all(("account_id" in m["record"]) == add_account_id for m in fast if m["type"] == "RECORD")
    assert all(records[stream] > 1000 for stream in EVENT_METRICS), records
    assert sum(m["type"] == "STATE" for m in fast) > 2 * len(EVENT_METRICS)
    assert (records[ATTRIBUTIONS] > 200) == attributions, "attributions of conversions on several pages"


@pytest.mark.parametrize("concurrency", [1, 16])
def test_profiles_written_a_page_at_a_time_are_what_the_sdk_loop_writes(concurrency, monkeypatch):
    # Several pages of 100 (a STATE after each), and profiles whose consent times the check rewrites.
    account = generate_account(seed=32, events_per_metric=5, profiles=450)
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "concurrency": concurrency}
        catalog = TapKlaviyo(config=config).catalog_dict
        for entry in catalog["streams"]:
            for item in entry["metadata"]:
                if item["breadcrumb"] == []:
                    item["metadata"]["selected"] = entry["tap_stream_id"] == "profiles"
        both = [
            sync(config, {}, fast=fast, monkeypatch=monkeypatch, catalog=catalog, streams={"profiles": ProfilesStream})
            for fast in (True, False)
        ]
    (fast, fast_counts), (slow, slow_counts) = both
    for i, (ours, theirs) in enumerate(zip(fast, slow, strict=False)):
        assert ours == theirs, f"message {i} differs: fast path {str(ours)[:300]} vs SDK loop {str(theirs)[:300]}"
    assert len(fast) == len(slow)
    records = [m["record"] for m in fast if m["type"] == "RECORD"]
    assert fast_counts == slow_counts == {"profiles": len(records) == 450 and 450}
    assert sum(m["type"] == "STATE" for m in fast) >= 5
    emails = [(r.get("subscriptions") or {}).get("email") or {} for r in records]
    consented = [(email.get("marketing") or {}).get("consent_timestamp") for email in emails]
    assert any(consented) and all(moment[10] == "T" for moment in consented if moment), "rewritten by the check"
