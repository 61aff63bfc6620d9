"""benchmarks/profiles.py's checks: what counts as exact output, and what it reads from the tap's log."""

from __future__ import annotations

import datetime
import json
import logging

from benchmarks.profiles import Expected, check_output, count_requests, epoch_seconds, progress_lines
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.progress import Progress

UPDATED = {"a": "2025-01-01T00:00:00+00:00", "b": "2025-01-02T00:00:00+00:00", "c": "2025-01-03T00:00:00+00:00"}
EXPECTED = Expected(set(UPDATED), sorted(int(epoch_seconds(t)) for t in UPDATED.values()))


def lines(*ids: str, stream: str = "profiles") -> list[bytes]:
    out = [json.dumps({"type": "SCHEMA", "stream": stream, "schema": {}}).encode() + b"\n"]
    for i in ids:
        record = {"id": i, "updated": UPDATED.get(i, "2025-01-04T00:00:00+00:00"), "email": "x@example.com"}
        out.append(json.dumps({"type": "RECORD", "stream": stream, "record": record}).encode() + b"\n")
    out.append(b'{"type": "STATE", "value": {}}\n')
    return out


def test_every_profile_once_in_order_is_exact():
    assert check_output(iter(lines("a", "b", "c")), EXPECTED, complete=True) == (3, [])


def test_missing_duplicated_unknown_and_out_of_order_profiles_are_problems():
    assert check_output(iter(lines("a", "b")), EXPECTED, complete=True)[1] == ["1 of the fake's 3 profiles missing"]
    records, problems = check_output(iter(lines("a", "b", "b", "c")), EXPECTED, complete=True)
    assert records == 4 and problems == ["profile b emitted twice (line 4)"]
    assert check_output(iter(lines("a", "b", "c", "z")), EXPECTED, complete=True)[1] == [
        "profile z is not one of the fake's (line 5)"
    ]
    assert "profile a updated" in check_output(iter(lines("b", "a", "c")), EXPECTED, complete=True)[1][0]


def test_other_streams_are_not_profiles():
    assert check_output(iter(lines("a", "b", "c") + lines("z", stream="metrics")), EXPECTED, complete=True) == (3, [])


def test_a_stopped_run_must_have_emitted_a_prefix_and_may_end_mid_line():
    cut = [*lines("a", "b")[:-1], b'{"type": "RECORD", "str']
    assert check_output(iter(cut), EXPECTED, complete=False) == (2, [])
    assert check_output(iter(cut), EXPECTED, complete=True)[1] == [
        "line 4 of the tap's output is not a Singer message",
        "1 of the fake's 3 profiles missing",
    ]
    problems = check_output(iter(lines("a", "c")), EXPECTED, complete=False)[1]
    assert problems == [
        "2 profiles were updated before the last one emitted (2025-01-03T00:00:00+00:00), 1 of them emitted"
    ]


def test_requests_are_counted_from_urllib3_lines_for_profiles_only():
    log = [
        b'2026-12-02 10:00:00,000 | DEBUG | urllib3.connectionpool | http://127.0.0.1:1 "GET /api/profiles?'
        b'page%5Bsize%5D=100 HTTP/1.1" 200 1234\n',
        b'2026-12-02 10:00:01,000 | DEBUG | urllib3.connectionpool | http://127.0.0.1:1 "GET /api/metrics '
        b'HTTP/1.1" 200 10\n',
        b'2026-12-02 10:00:03,000 | DEBUG | urllib3.connectionpool | http://127.0.0.1:1 "GET /api/profiles/?'
        b'page%5Bcursor%5D=x HTTP/1.1" 429 10\n',
        b'2026-12-02 10:00:04,000 | DEBUG | urllib3.connectionpool | http://127.0.0.1:1 "GET /api/profiles/?'
        b'page%5Bcursor%5D=y HTTP/1.1" 200 1234\n',
    ]
    found = count_requests(iter(log))
    assert found is not None
    assert (found.count, found.throttled, found.span, found.rate) == (3, 1, 4.0, 0.5)
    assert found.windows == {"": 3} and found.longest_window == 3
    assert count_requests(iter(log[1:2])) is None


def test_pages_are_counted_per_time_window_without_the_newest_record_probe():
    def get(query: str) -> bytes:
        return (
            f'2026-12-02 10:00:00,000 | DEBUG | x | http://h:1 "GET /api/profiles/?{query} HTTP/1.1" 200 9\n'.encode()
        )

    window = "filter=and%28greater-than%28updated%2C2025-01-01T00%3A00%3A00Z%29%29"
    log = [get("sort=-updated&page%5Bsize%5D=1"), get("sort=updated"), get(f"sort=updated&{window}")]
    log += [get(f"sort=updated&{window}&page%5Bcursor%5D=x")]
    found = count_requests(iter(log))
    assert found is not None and found.count == 4
    assert found.windows == {"": 1, "and(greater-than(updated,2025-01-01T00:00:00Z))": 2}
    assert found.longest_window == 2


def test_the_tap_s_progress_lines_are_recognised(caplog, monkeypatch):
    client = KlaviyoClient(api_key="k", api_url="http://x", revision="2026-07-15", user_agent="t")
    clock = iter(range(0, 10**6, 10))
    monkeypatch.setattr("tap_klaviyo.progress.time.monotonic", lambda: next(clock))
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(2025, 1, 11, tzinfo=datetime.UTC)
    progress = Progress(logging.getLogger("t"), "profiles", client, time_field="updated", start=start, end=end)
    with caplog.at_level(logging.INFO):
        for day in range(1, 4):
            for _ in range(256):
                progress.record({"updated": f"2025-01-0{day}T00:00:00+00:00"})
        progress.done()
    log = [f"2026-12-02 10:00:00,000 | INFO | tap-klaviyo | {r.getMessage()}\n".encode() for r in caplog.records]
    count, with_eta, example = progress_lines(iter(log))
    assert count == len(caplog.records) - 1 >= 1, "every status line, not the summary"
    assert with_eta == count and example is not None and "s left" in example
