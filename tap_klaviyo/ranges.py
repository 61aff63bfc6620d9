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
    """How to read one range (a stream, or one partition of it): its first page of a window, a page by cursor, the
    time of a window's newest record, the windows to read (in time order), and where an open-ended window is cut
    for splitting (records after it are few)."""

    first: Callable[[Window], RawPage]
    following: Callable[[str], RawPage]
    # None: the range is read by cursor only (its pages carry no times to split by).
    newest: Callable[[Window], str | None] | None
    windows: list[Window]
    now: datetime.datetime


def cap(expected: float, budget: int) -> int:
    """The pages a window expected to hold `expected` reads before it looks again, within a worker's `budget`: one
    for a window sized to fit on a page (it reserves no more of the read-ahead budget), else a little more room than
    expected, so that a window a little denser than expected is not split again."""
    if expected <= FILL:
        return 1
    return max(2, min(budget, math.ceil(CAP_SLACK * expected)))


@dataclass(frozen=True)
class Rest:
    """What the pages read of a window say of the rest of it, [last, end): how many pages it holds, and how long a
    page lasts, at their density over the time they covered (not the window's bounds: a `start_date` years before
    the first event says nothing of how dense the events are)."""

    last: datetime.datetime
    end: datetime.datetime
    expected: float
    page_seconds: float

    @classmethod
    def of(cls, pages: list[RawPage], end: datetime.datetime) -> Rest | None:
        """None when the rest cannot be split by time: no times, one second holding every record read, or records
        dated from `end` on."""
        page = pages[-1]
        if not pages[0].first or not page.last or not page.count:
            return None
        first, last = parse_datetime(pages[0].first), parse_datetime(page.last)
        if last <= first or last >= end:
            return None
        seconds_per_record = max((last - first).total_seconds(), 1.0) / sum(p.count for p in pages)
        expected = (end - last).total_seconds() / seconds_per_record / page.count
        return cls(last, end, expected, seconds_per_record * page.count)

    def windows(self, parts: int, fill: float, budget: int) -> list[Window]:
        """[last, end) as at most `parts` windows, the first one `fill` pages long at the density near `last` and
        each next one longer by the same factor, just enough to reach `end` (`split`): the density seen holds near
        where it was seen, and the farther away, the less is known."""
        pages = cap(self.expected / parts, budget)
        return split(self.last, self.end, parts, pages, first=fill * self.page_seconds)


def split(
    start: datetime.datetime, end: datetime.datetime, parts: int, pages: int = 1, *, first: float | None = None
) -> list[Window]:
    """[start, end) as at most `parts` windows, whole seconds apart (Klaviyo's times are): of equal length, or with
    `first`, the first one `first` seconds long and each next one longer by the same factor, just enough to reach
    `end`; fewer windows if `first`-long ones reach it."""
    seconds = math.ceil((end - start).total_seconds())
    if first is not None and seconds > 0:
        width = max(1.0, first)
        parts = max(1, min(parts, math.ceil(seconds / width)))
        ratio = _ratio(seconds / width, parts)
        offsets = [width * (ratio**i - 1) / (ratio - 1) if ratio > 1 else width * i for i in range(parts)]
    else:
        offsets = [seconds * i / parts for i in range(parts)]
    cuts = {start + datetime.timedelta(seconds=min(math.floor(offset), seconds - 1)) for offset in offsets}
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
    """A range's newest record's time, asked for in a thread of its own while the worker reads the first page."""

    def __init__(self, newest: Callable[[Window], str | None], window: Window) -> None:
        super().__init__(name="klaviyo-newest", daemon=True)
        self.newest, self.window = newest, window
        self.value: str | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.newest(self.window)
        except BaseException as error:  # handed to the worker that waits for it
            self.error = error

    def result(self) -> str | None:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value
