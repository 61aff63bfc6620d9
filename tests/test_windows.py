"""Windowed concurrent fetching: every event once, in time order, with bounded work in flight."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import json
import random
import threading
import time
from collections.abc import Iterator

import pytest

from tap_klaviyo import splits, windows
from tap_klaviyo.codec import RawPage, skim
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.pacing import Pacer
from tap_klaviyo.ranges import Plan, Window
from tap_klaviyo.windows import WindowPool

UTC = datetime.UTC
NOW = datetime.datetime(2026, 6, 1, tzinfo=UTC)


class Gauge:
    """Requests in flight, the most there ever were, and when each one was sent and answered (shared by several
    streams' fakes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.bytes_served = 0
        self.spans: list[tuple[float, float]] = []

    def round_trips(self) -> int:
        """The longest chain of requests each sent after the one before it was answered."""
        depth: list[int] = []
        spans = sorted(self.spans)
        for start, _ in spans:
            depth.append(1 + max((d for d, (_, end) in zip(depth, spans, strict=False) if end <= start), default=0))
        return max(depth, default=0)

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1

    def served(self, size: int) -> None:
        with self.lock:
            self.bytes_served += size


class FakeEvents:
    """Sorted events served a page at a time, like /api/events with a datetime filter and sort=datetime."""

    def __init__(
        self, times: list[datetime.datetime], page_size: int, delay: float = 0.0, gauge: Gauge | None = None
    ) -> None:
        self.events = sorted(
            ({"id": f"e{i:07d}", "attributes": {"datetime": t.isoformat()}} for i, t in enumerate(times)),
            key=lambda e: (e["attributes"]["datetime"], e["id"]),
        )
        self.page_size = page_size
        self.delay = delay
        self.gauge = gauge or Gauge()
        self.requests = 0
        self.cursors: dict[int, list[dict]] = {}

    @property
    def most_in_flight(self) -> int:
        return self.gauge.most

    def _wait(self, in_pool: bool = True) -> None:
        """A request's delay; one sent by the pool (not a range's newest-record probe, a thread of its own) counts
        among the requests in flight."""
        began = time.monotonic()
        with self.gauge if in_pool else contextlib.nullcontext():
            time.sleep(self.delay)
        with self.gauge.lock:
            self.gauge.spans.append((began, time.monotonic()))

    def _serve(self, matching: list[dict], offset: int) -> RawPage:
        self.requests += 1
        self._wait()
        page = matching[offset : offset + self.page_size]
        more = offset + self.page_size < len(matching)
        links = {"next": f"{id(matching)}:{offset + self.page_size}" if more else None}
        body = skim(json.dumps({"data": page, "links": links}).encode())
        self.gauge.served(len(body.body))
        return body

    def _matching(self, window: Window) -> list[dict]:
        return [
            e
            for e in self.events
            if (window.start is None or datetime.datetime.fromisoformat(e["attributes"]["datetime"]) >= window.start)
            and (window.end is None or datetime.datetime.fromisoformat(e["attributes"]["datetime"]) < window.end)
        ]

    def first(self, window: Window) -> RawPage:
        matching = self._matching(window)
        self.cursors[id(matching)] = matching
        return self._serve(matching, 0)

    def newest(self, window: Window) -> RawPage:
        """A page of the window's newest events, newest first (as `sort=-datetime` serves them)."""
        self.requests += 1
        self._wait(in_pool=False)
        newest = self._matching(window)[::-1][: self.page_size]
        return skim(json.dumps({"data": newest, "links": {"next": None}}).encode())

    def plan(self, windows: list[Window] | None = None) -> Plan:
        return Plan(self.first, self.next, self.newest, windows or [Window(None, None)], NOW)

    def next(self, url: str) -> RawPage:
        key, offset = url.split(":")
        return self._serve(self.cursors[int(key)], int(offset))


def bursty_times(n: int, seed: int) -> list[datetime.datetime]:
    """Events over two years, growing over time, in bursts sharing a second, some after `NOW`."""
    rng = random.Random(seed)
    times = []
    start = NOW - datetime.timedelta(days=730)
    while len(times) < n:
        at = start + datetime.timedelta(seconds=int(730 * 86400 * rng.random() ** 0.5))
        times += [at] * rng.choice([1, 1, 1, 3, 8])
    times += [NOW + datetime.timedelta(hours=h) for h in range(1, 6)]
    return times[: n + 5]


def run(events: FakeEvents, windows: list[Window], concurrency: int) -> list[dict]:
    """The events emitted, as the event streams emit them: each page's, less those dated from its `before` on."""
    pool = WindowPool(concurrency)
    pool.add("events", lambda: events.plan(windows))
    return emitted(pool.pages("events"))


def emitted(pages: Iterator[tuple[RawPage, datetime.datetime | None]]) -> list[dict]:
    return [
        {"id": e["id"], **e["attributes"]}
        for page, before in pages
        for e in json.loads(page.body)["data"]
        if before is None or datetime.datetime.fromisoformat(e["attributes"]["datetime"]) < before
    ]


@pytest.mark.parametrize("concurrency", [2, 8, 16])
@pytest.mark.parametrize("page_size", [50, 200])
def test_every_event_once_in_time_order(concurrency, page_size):
    events = FakeEvents(bursty_times(6000, seed=concurrency * page_size), page_size)
    got = run(events, [Window(None, None)], concurrency)
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events)
    times = [e["datetime"] for e in got]
    assert times == sorted(times)
    # Splitting by density costs few requests beyond the pages the data needs.
    assert events.requests <= 2 * len(events.events) / page_size + 4 * concurrency


def test_a_second_holding_more_than_a_page_is_read_by_cursor():
    crowded = [NOW - datetime.timedelta(days=3)] * 450 + [
        NOW - datetime.timedelta(days=1, seconds=s) for s in range(90)
    ]
    events = FakeEvents(crowded, page_size=100)
    got = run(events, [Window(NOW - datetime.timedelta(days=10), None)], concurrency=4)
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events)
    assert [e["datetime"] for e in got] == sorted(e["datetime"] for e in got)


def test_requests_overlap_but_never_exceed_the_concurrency():
    events = FakeEvents(bursty_times(4000, seed=3), page_size=100, delay=0.01)
    got = run(events, [Window(None, None)], concurrency=6)
    assert len(got) == len(events.events)
    assert 4 <= events.most_in_flight <= 6


def test_a_closed_range_stays_inside_it():
    events = FakeEvents(bursty_times(3000, seed=5), page_size=100)
    start, end = NOW - datetime.timedelta(days=300), NOW - datetime.timedelta(days=100)
    got = run(events, [Window(start, end)], concurrency=8)
    want = [
        e["id"] for e in events.events if start <= datetime.datetime.fromisoformat(e["attributes"]["datetime"]) < end
    ]
    assert sorted(e["id"] for e in got) == sorted(want)


def test_split_covers_the_range_without_gaps():
    start = datetime.datetime(2025, 1, 1, tzinfo=UTC)
    end = start + datetime.timedelta(seconds=10, microseconds=500)
    windows = splits.split(start, end, 4)
    assert windows[0].start == start and windows[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert len(splits.split(start, start + datetime.timedelta(seconds=2), 50)) == 2


def test_the_next_streams_start_while_one_finishes_and_each_stays_exact():
    gauge = Gauge()
    streams = {
        name: FakeEvents(bursty_times(n, seed=i), page_size=100, delay=0.01, gauge=gauge)
        for i, (name, n) in enumerate([("a", 2500), ("b", 300), ("c", 900), ("d", 0)])
    }
    pool = WindowPool(6)
    # Registered in any order, consumed in name order.
    for name, events in reversed(streams.items()):
        pool.add(name, lambda events=events: events.plan())
    pool.add("unselected", lambda: None)
    for name, events in streams.items():
        got = emitted(pool.pages(name))
        assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events), name
        assert [e["datetime"] for e in got] == sorted(e["datetime"] for e in got), name
    assert gauge.most <= 6
    assert list(pool.pages("unselected")) == []


def test_ranges_are_read_ahead_in_the_order_the_run_consumes_them():
    def first_prepared(order: list[str] | None, also: str | None = None) -> list[str]:
        """With one worker, `start` prepares only the first range by rank: which one it is."""
        prepared: list[str] = []
        pool = WindowPool(1)
        for name in ("walk", "b", "c"):
            events = FakeEvents(bursty_times(50, seed=1), page_size=100)

            def prepare(events: FakeEvents = events, name: str = name) -> Plan:
                prepared.append(name)
                return events.plan()

            pool.add(name, prepare, stream="z" if name == "walk" else None, early=True)
        if also:
            pool.consumed_by("walk", also)
        if order is not None:
            pool.follow(order)
        pool.start()
        pool.close()
        return prepared

    assert first_prepared(None) == ["b"], "without an order, by stream name"
    assert first_prepared(["c", "b", "z"]) == ["c"], "in the order the run consumes the streams"
    assert first_prepared(["a", "c", "b", "z"], also="a") == ["walk"], "a walk ranks with its first consumer"


def test_streams_overlap():
    gauge = Gauge()
    a = FakeEvents(bursty_times(2000, seed=1), page_size=100, delay=0.01, gauge=gauge)
    b = FakeEvents(bursty_times(500, seed=2), page_size=100, delay=0.01, gauge=gauge)
    pool = WindowPool(8)
    pool.add("a", a.plan)
    pool.add("b", b.plan)
    assert len(emitted(pool.pages("a"))) == len(a.events)
    assert b.requests > 0, "the next stream should start once the first one leaves workers idle"
    assert len(emitted(pool.pages("b"))) == len(b.events)


def test_a_later_stream_fails_only_when_it_is_consumed():
    a = FakeEvents(bursty_times(1500, seed=4), page_size=100, delay=0.005)

    def broken(window: Window) -> RawPage:
        raise RuntimeError("window failed")

    pool = WindowPool(4)
    pool.add("a", a.plan)
    pool.add("b", lambda: Plan(broken, a.next, a.newest, [Window(None, None)], NOW))
    assert len(emitted(pool.pages("a"))) == len(a.events)
    with pytest.raises(RuntimeError, match="window failed"):
        list(pool.pages("b"))


def test_pages_read_ahead_stay_within_the_budget(monkeypatch):
    gauge = Gauge()
    streams = [FakeEvents(bursty_times(3000, seed=i), page_size=50, delay=0.002, gauge=gauge) for i in range(3)]
    page_bytes = len(streams[0].first(Window(None, None)).body)
    monkeypatch.setattr(windows, "BUFFERED_BYTES", 12 * page_bytes)
    pool = WindowPool(8)
    for i, events in enumerate(streams):
        pool.add(str(i), events.plan)
    gauge.bytes_served = consumed = most_ahead = 0
    for i, events in enumerate(streams):
        count = 0
        for page, _ in pool.pages(str(i)):
            time.sleep(0.002)  # a slow consumer: workers would read far ahead if nothing held them back
            consumed += len(page.body)
            most_ahead = max(most_ahead, gauge.bytes_served - consumed)
            count += page.count
        assert count >= len(events.events)
    # The budget, plus the pages of the one window the consumer waits on (2 here).
    assert most_ahead <= 14 * page_bytes * 1.1, most_ahead / page_bytes


def test_a_range_whose_events_stop_early_is_not_split_over_the_empty_time(monkeypatch):
    # Events over one year that ended a year ago: windows over the empty year would each cost a request.
    rng = random.Random(9)
    times = sorted(NOW - datetime.timedelta(days=365, seconds=rng.randrange(365 * 86400)) for _ in range(5000))
    events = FakeEvents(times, page_size=100)
    # A budget of three pages per window, as at 1000 events a page.
    monkeypatch.setattr(
        windows, "BUFFERED_BYTES", splits.BUDGET_SHARES * 3 * len(events.first(Window(None, None)).body)
    )
    events.requests = 0
    got = run(events, [Window(None, None)], concurrency=8)
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events)
    pages = len(events.events) / events.page_size
    assert events.requests <= 1.4 * pages, events.requests  # 77 when split up to NOW


class ChainedEvents(FakeEvents):
    """Counts the pages each window's query served one after another, by cursor."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.chains: dict[int, int] = {}

    def _serve(self, matching: list[dict], offset: int) -> RawPage:
        self.chains[id(matching)] = self.chains.get(id(matching), 0) + 1
        return super()._serve(matching, offset)


def test_a_dense_stretch_is_spread_over_idle_workers(monkeypatch):
    # Far denser at the end of the range than at its start (as profiles are, more so): split by the first page's
    # density, the newest windows hold far more pages than the oldest, and one window read by cursor would take
    # most of the range's pages one after another.
    rng = random.Random(11)
    start = NOW - datetime.timedelta(days=730)
    times = [start + datetime.timedelta(seconds=int(730 * 86400 * rng.random() ** 0.1)) for _ in range(8000)]
    events = ChainedEvents(times, page_size=100, delay=0.02)
    # A budget of 30 pages per worker: pages do not make windows split.
    monkeypatch.setattr(
        windows, "BUFFERED_BYTES", splits.BUDGET_SHARES * 30 * len(events.first(Window(None, None)).body)
    )
    events.requests, events.chains = 0, {}
    pool = WindowPool(8)
    pool.add("events", events.plan)
    began = time.monotonic()
    got = emitted(pool.pages("events"))
    wall = time.monotonic() - began
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events)
    assert [e["datetime"] for e in got] == sorted(e["datetime"] for e in got)
    pages = len(events.events) / events.page_size
    # Ten pages a worker, and a few more for the windows split off: no window reads twice that in a row.
    assert max(events.chains.values()) <= 2 * pages / 8, sorted(events.chains.values())
    assert wall < 3 * pages / 8 * events.delay + 1, wall
    # Windows split off for idle workers are sized to fit on a page, so that each is read in one round trip: a
    # few more requests than pages.
    assert events.requests <= 1.35 * pages, events.requests
    assert (pool._workers.queued, pool._workers.busy, pool._workers.claimed) == (0, 0, 0)


class Refused(FakeEvents):
    """A range whose every request is refused."""

    def first(self, window: Window) -> RawPage:
        raise KlaviyoError("refused")


class FirstCounted(FakeEvents):
    """Counts the requests for a range's first page (of its one whole window)."""

    whole = 0

    def first(self, window: Window) -> RawPage:
        if window == Window(None, None):
            self.whole += 1
        return super().first(window)


def test_read_first_has_every_ranges_first_page_read_before_any_is_consumed():
    # More ranges than workers: each first window is queued rather than left for later.
    streams = {f"s{i}": FirstCounted(bursty_times(500, seed=i), 100, delay=0.01) for i in range(5)}
    pool = WindowPool(2)
    for key, events in streams.items():
        pool.add(key, events.plan)
    assert pool.read_first(streams) == []
    assert [events.whole for events in streams.values()] == [1] * 5
    # Consumed afterwards, each range is whole, and its first page was not asked again.
    for key, events in streams.items():
        assert sorted(e["id"] for e in emitted(pool.pages(key))) == sorted(e["id"] for e in events.events)
        assert events.whole == 1
    refused = Refused([NOW], 100)
    pool = WindowPool(2)
    pool.add("a", streams["s0"].plan)
    pool.add("b", refused.plan)
    assert [str(error) for error in pool.read_first(["a", "b"])] == ["refused"]


def spread(n: int, days: float, rng: random.Random, end: datetime.datetime = NOW) -> list[datetime.datetime]:
    """`n` events over the `days` before `end`, some sharing a second."""
    times: list[datetime.datetime] = []
    while len(times) < n:
        times += [end - datetime.timedelta(seconds=rng.randrange(int(days * 86400)))] * rng.choice([1, 1, 3])
    return times[:n]


@pytest.mark.parametrize(
    ("days", "start"),
    [(7, NOW - datetime.timedelta(days=3650)), (8 * 365, NOW - datetime.timedelta(days=3650)), (730, None)],
    ids=["last-week-start-years-before", "eight-years-thin", "two-years-no-start"],
)
def test_ranges_of_a_few_pages_are_read_in_two_round_trips_wherever_their_events_lie(days, start):
    # Six ranges of five pages, read at once: each range's first page with a page of its newest events beside it,
    # then the rest of every range at once. A density taken over the window's bounds (a start years before the
    # first event) made the rest look sparse and read it as a chain of pages, a round trip after another.
    rng, gauge = random.Random(days), Gauge()
    streams = {f"s{i}": FakeEvents(spread(500, days, rng), 100, delay=0.05, gauge=gauge) for i in range(6)}
    pool = WindowPool(48)
    for key, events in streams.items():
        pool.add(key, lambda events=events: events.plan([Window(start, None)]))
    assert pool.read_first(streams) == []
    for key, events in streams.items():
        got = emitted(pool.pages(key))
        assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events), key
        assert [e["datetime"] for e in got] == sorted(e["datetime"] for e in got), key
    assert gauge.round_trips() <= 3, gauge.round_trips()
    assert sum(events.requests for events in streams.values()) <= 6 * (2 + 5 / splits.FILL + 2)


def test_a_window_denser_than_expected_splits_among_idle_workers_from_its_first_page():
    # A campaign's send: most of a month's events within its first hour, front-loaded. The range's first page
    # sees the thin month before it; the window that holds the send splits its rest among idle workers as soon
    # as its first page shows how dense it is, rather than read it page after page.
    rng = random.Random(3)
    send = NOW - datetime.timedelta(days=10)
    burst = [send + datetime.timedelta(seconds=int(3600 * rng.random() ** 3)) for _ in range(1600)]
    events = FakeEvents(spread(400, 30, rng) + burst, 100, delay=0.05)
    pool = WindowPool(48)
    pool.add("events", events.plan)
    got = emitted(pool.pages("events"))
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events)
    assert [e["datetime"] for e in got] == sorted(e["datetime"] for e in got)
    # 20 pages: read by cursor, the send alone would be 16 round trips after the first two.
    assert events.gauge.round_trips() <= 6, events.gauge.round_trips()
    assert events.requests <= 2.5 * 20, events.requests


def test_a_range_bound_by_its_rate_limit_reads_few_long_windows():
    # An endpoint paced to 18 requests a second, at 0.05 s a round trip: two windows at once keep it busy, and each
    # window split off costs a request more (its partial last page), so few are.
    rng = random.Random(5)
    times = [NOW - datetime.timedelta(seconds=int(730 * 86400 * rng.random() ** 3)) for _ in range(4000)]
    counts = {}
    for paced in (True, False):
        events = FakeEvents(times, 100, delay=0.05)
        pacer = Pacer(20, 100_000) if paced else None
        pool = WindowPool(48)
        pool.add("events", lambda events=events, pacer=pacer: dataclasses.replace(events.plan(), pacer=pacer))
        got = emitted(pool.pages("events"))
        assert sorted(e["id"] for e in got) == sorted(e["id"] for e in events.events)
        counts[paced] = events.requests
    assert counts[True] <= 1.15 * 40 < counts[False], counts


def test_the_rest_of_a_range_is_as_dense_as_its_first_page_or_both_its_ends_show():
    def page(first: datetime.datetime, last: datetime.datetime, count: int) -> RawPage:
        return RawPage(b"", count, first.isoformat(), last.isoformat(), "next")

    start, end = NOW - datetime.timedelta(days=400), NOW
    first = page(start, start + datetime.timedelta(days=100), 100)
    # 100 records in the last day: a history that grew a hundredfold.
    newest = page(end - datetime.timedelta(seconds=1), end - datetime.timedelta(days=1, seconds=1), 100)
    flat = splits.Rest.of([first], end)
    grown = splits.Rest.of([first], end, newest)
    assert flat is not None and grown is not None
    assert flat.expected == pytest.approx(3.0)  # a page per 100 days, for 300 days
    assert 20 < grown.expected < 100
    # Windows holding as many records each are shorter where the records are denser.
    windows = grown.even(4, budget=10)
    assert (
        windows[0].start.isoformat() == first.last_time
        and windows[0].start < windows[1].start
        and windows[-1].end == end
    )
    lengths = [w.end - w.start for w in windows]
    assert lengths == sorted(lengths, reverse=True)
    # Newest records that reach back into the first page: the rest is as dense as they are.
    overlapping = page(end - datetime.timedelta(seconds=1), start + datetime.timedelta(days=50), 100)
    assert splits.Rest.of([first], end, overlapping).expected == pytest.approx(300 / 350)


def test_a_split_grows_its_windows_from_the_first_one_just_enough_to_reach_the_end():
    start = datetime.datetime(2025, 1, 1, tzinfo=UTC)
    end = start + datetime.timedelta(days=100)
    windows = splits.split(start, end, 12, first=60)
    lengths = [(w.end - w.start).total_seconds() for w in windows]
    assert len(windows) == 12 and windows[0].start == start and windows[-1].end == end
    assert lengths[0] == 60 and all(a < b for a, b in itertools.pairwise(lengths))
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    # Where windows of that length reach the end, about as many of them, none a few seconds long.
    even = splits.split(start, end, 30, first=9 * 86400)
    assert len(even) == 11 and len({w.end - w.start for w in even}) <= 2
