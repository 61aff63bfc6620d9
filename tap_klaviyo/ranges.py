"""The ranges the window pool reads, as data: a window of a range, a worker's chunk of pages and the windows that
cover the rest, a range's plan, and how a window's rest is sized and split by the density its pages showed."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tap_klaviyo.codec import RawPage
from tap_klaviyo.times import parse_datetime

# A window expected to hold a few pages reads up to this many times as many before it looks again (splits, or goes
# on by cursor): what it reserves of the read-ahead budget, which a full worker's share would take up in vain.
CAP_SLACK = 2
# The share of a page a window is sized to hold, by the density seen, when the workers can read every window at
# once: a little short of a page, so that the window is read in one request although its stretch is a little denser
# than the one seen (each window's last page is partial anyway).
FILL = 0.65


@dataclass(frozen=True)
class Window:
    """Events with start <= datetime < end (None: unbounded), or the page a `links.next` URL points to (`end`:
    that of the query the cursor goes on with, so that what is left of it can still be split)."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    next_url: str | None = None
    # Pages one worker reads before it looks again (splits what is left, or goes on by cursor).
    pages: int = 1
    # A range's window as its plan gives it, not one the pool made: its newest record is asked for beside its first
    # page, and it splits after that page.
    whole: bool = True


@dataclass
class Chunk:
    """Pages to emit; with `before`, only their records dated before it (the rest is read again later)."""

    pages: list[RawPage]
    then: list[Window]
    before: datetime.datetime | None = None
    # Idle workers the windows of `then` were split for (`WindowedFetch._claimed`).
    claimed: int = 0

    @property
    def size(self) -> int:
        return sum(page.size for page in self.pages)


@dataclass(frozen=True)
class Plan:
    """How to read one range (a stream, or one partition of it): its first page of a window, a page by cursor, a
    page of a window's newest records (newest first), the windows to read (in time order), where an open-ended
    window is cut for splitting (records after it are few), and how many requests a second its endpoint allows."""

    first: Callable[[Window], RawPage]
    following: Callable[[str], RawPage]
    # None: the range is read by cursor only (its pages carry no times to split by).
    newest: Callable[[Window], RawPage] | None
    windows: list[Window]
    now: datetime.datetime
    # None: no limit to mind.
    rate: float | None = None


def cap(expected: float, budget: int) -> int:
    """The pages a window expected to hold `expected` reads before it looks again, within a worker's `budget`: one
    for a window sized to fit on a page (it reserves no more of the read-ahead budget), else a little more room than
    expected, so that a window a little denser than expected is not split again."""
    if expected <= FILL:
        return 1
    return max(2, min(budget, math.ceil(CAP_SLACK * expected)))


@dataclass(frozen=True)
class Density:
    """Records a second: `per_second` at the instant `at` (seconds since the epoch), changing by the factor
    e**`growth` every second: log-linear, as a history grows or thins out at a steady pace (flat without growth)."""

    at: float
    per_second: float
    growth: float = 0.0

    def rate(self, moment: float) -> float:
        return self.per_second * math.exp(max(-700.0, min(700.0, self.growth * (moment - self.at))))

    def records(self, start: float, end: float) -> float:
        """How many records [start, end) holds."""
        if abs(self.growth * (end - start)) < 1e-9:
            return self.rate((start + end) / 2) * (end - start)
        return (self.rate(end) - self.rate(start)) / self.growth

    def cuts(self, start: float, end: float, parts: int) -> list[float]:
        """The instants that cut [start, end) into `parts` stretches holding as many records each."""
        if abs(self.growth * (end - start)) < 1e-9:
            return [start + (end - start) * k / parts for k in range(1, parts)]
        each = self.records(start, end) / parts
        return [
            self.at + math.log((self.rate(start) + each * k * self.growth) / self.per_second) / self.growth
            for k in range(1, parts)
        ]


@dataclass(frozen=True)
class Rest:
    """What the pages read of a window say of the rest of it, [last, end): how dense its records are, by the time
    those pages covered (not the window's bounds: a `start_date` years before the first event says nothing of how
    dense the events are), and, for a range's first window, by a page of its newest records too (a history that
    grew is far denser at its end than at its start); `page`: the records a page holds."""

    last: datetime.datetime
    end: datetime.datetime
    density: Density
    page: int

    @classmethod
    def of(cls, pages: list[RawPage], end: datetime.datetime, newest: RawPage | None = None) -> Rest | None:
        """None when the rest cannot be split by time: no times, one second holding every record read, or records
        dated from `end` on."""
        if not pages[0].first or not pages[-1].last or not pages[-1].count:
            return None
        first, last = parse_datetime(pages[0].first).timestamp(), parse_datetime(pages[-1].last).timestamp()
        if last <= first or last >= end.timestamp():
            return None
        density = Density((first + last) / 2, sum(p.count for p in pages) / max(last - first, 1.0))
        if newest is not None and newest.count > 1 and newest.first and newest.last:
            latest, earliest = parse_datetime(newest.first).timestamp(), parse_datetime(newest.last).timestamp()
            at, per_second = (earliest + latest) / 2, newest.count / max(latest - earliest, 1.0)
            if earliest <= last:
                # The newest records reach back to those read: the rest is as dense as they are.
                density = Density(at, per_second)
            elif at > density.at:
                growth = math.log(per_second / density.per_second) / (at - density.at)
                density = Density(density.at, density.per_second, growth)
        return cls(datetime.datetime.fromtimestamp(last, datetime.timezone.utc), end, density, pages[-1].count)

    @property
    def expected(self) -> float:
        """The pages the rest holds."""
        return self.density.records(self.last.timestamp(), self.end.timestamp()) / self.page

    def even(self, parts: int, budget: int) -> list[Window]:
        """The rest as `parts` windows holding as many records each, as far as its density tells."""
        start, end = self.last.timestamp(), self.end.timestamp()
        offsets = [0.0, *(cut - start for cut in self.density.cuts(start, end, parts))]
        return _windows(self.last, self.end, offsets, cap(self.expected / parts, budget))

    def windows(self, parts: int, fill: float, budget: int) -> list[Window]:
        """[last, end) as at most `parts` windows, the first one `fill` pages long at the density at `last` and
        each next one longer by the same factor, just enough to reach `end` (`split`): the density seen holds near
        where it was seen, and the farther away, the less is known."""
        page_seconds = self.page / self.density.rate(self.last.timestamp())
        return split(self.last, self.end, parts, cap(self.expected / parts, budget), first=fill * page_seconds)


def split(
    start: datetime.datetime, end: datetime.datetime, parts: int, pages: int = 1, *, first: float | None = None
) -> list[Window]:
    """[start, end) as at most `parts` windows, whole seconds apart (Klaviyo's times are): of equal length, or with
    `first`, the first one `first` seconds long and each next one longer by the same factor, just enough to reach
    `end`; fewer windows, of about `first` seconds each, if those reach it."""
    seconds = math.ceil((end - start).total_seconds())
    widths = seconds / max(1.0, first) if first is not None else parts
    if widths > parts:
        ratio = _ratio(widths, parts)
        offsets = [seconds / widths * (ratio**i - 1) / (ratio - 1) for i in range(parts)]
    else:
        # As many windows of about `first` seconds as reach `end` (none of a few seconds at the end).
        parts = max(1, round(widths))
        offsets = [seconds * i / parts for i in range(parts)]
    return _windows(start, end, offsets, pages)


def _windows(start: datetime.datetime, end: datetime.datetime, offsets: list[float], pages: int) -> list[Window]:
    """[start, end) cut `offsets` seconds after `start` (the first at 0), at whole seconds."""
    seconds = math.ceil((end - start).total_seconds())
    cuts = {start + datetime.timedelta(seconds=max(0, min(math.floor(offset), seconds - 1))) for offset in offsets}
    return [Window(a, b, pages=pages, whole=False) for a, b in itertools.pairwise(sorted(cuts | {end}))]


def ending_at(windows: list[Window], end: datetime.datetime | None) -> list[Window]:
    """`windows` with the last one reaching `end` (None: unbounded), where what they were cut to ends before it."""
    return [*windows[:-1], dataclasses.replace(windows[-1], end=end)] if windows else windows


def _ratio(widths: float, parts: int) -> float:
    """The growth r >= 1 with 1 + r + ... + r**(parts - 1) = widths (the length to cover, in first widths)."""
    if parts <= 1 or widths <= parts:
        return 1.0
    low, high = 1.0, widths ** (1 / (parts - 1)) + 1
    for _ in range(60):
        mid = (low + high) / 2
        if (mid**parts - 1) / (mid - 1) < widths:
            low = mid
        else:
            high = mid
    return high


class Probe(threading.Thread):
    """A page of a range's newest records, asked for in a thread of its own while the worker reads the first page."""

    def __init__(self, newest: Callable[[Window], RawPage], window: Window) -> None:
        super().__init__(name="klaviyo-newest", daemon=True)
        self.newest, self.window = newest, window
        self.value: RawPage | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.newest(self.window)
        except BaseException as error:  # handed to the worker that waits for it
            self.error = error

    def result(self) -> RawPage | None:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value
