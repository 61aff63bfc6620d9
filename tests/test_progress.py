"""Progress logs: a steady status line during a long stream and a summary per stream."""

from __future__ import annotations

import datetime
import logging
import re

import pytest

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.progress import Progress
from tests.kit import DEFAULT_STREAMS, run_tap


def test_status_tells_how_far_and_how_long(caplog, monkeypatch):
    client = KlaviyoClient(api_key="k", api_url="http://x", revision="2026-07-15", user_agent="t")
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(2025, 1, 11, tzinfo=datetime.UTC)
    clock = iter(range(0, 10**6, 10))
    monkeypatch.setattr("tap_klaviyo.progress.time.monotonic", lambda: next(clock))
    progress = Progress(logging.getLogger("t"), "opened_email", client, time_field="datetime", start=start, end=end)
    with caplog.at_level(logging.INFO):
        for day in range(1, 6):
            for _ in range(256):
                progress.record({"datetime": f"2025-01-0{day}T00:00:00+00:00"})
    last = caplog.records[-1].getMessage()
    assert last.startswith("opened_email: 1,280 records, 0 requests, 0 throttled")
    assert "through 2025-01-05 00:00" in last and "40% of the range" in last
    assert re.search(r"about [\d,]+s left", last)
    assert len(caplog.records) < 5, "status lines come at a steady pace, not per record"


@pytest.mark.e2e
def test_each_stream_ends_with_a_summary(config):
    result = run_tap(config)
    assert result.returncode == 0, result.stderr
    for stream in DEFAULT_STREAMS:
        n = len(result.records(stream))
        assert re.search(
            rf"{stream}: done: {n:,} records, [\d,]+ requests, \d+ retries \(\d+ throttled\)", result.stderr
        )
