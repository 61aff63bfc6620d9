"""The ranges the window pool reads, as data: a window of a range, a worker's chunk of pages and the windows that
cover the rest, a range's plan, and how a window's rest is sized and split by the density its pages showed."""

from __future__ import annotations

import datetime
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tap_klaviyo.codec import RawPage

# A window expected to hold a few pages reads up to this many times as many before it looks again (splits, or goes
# on by cursor): what it reserves of the read-ahead budget, which a full worker's share would take up in vain.
CAP_SLACK = 2


@dataclass(frozen=True)
class Window:
    """Events with start <= datetime < end (None: unbounded), or the page a `links.next` URL points to (`end`:
    that of the query the cursor goes on with, so that what is left of it can still be split)."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    next_url: str | None = None
    # Pages one worker reads before it splits what is left; the first window splits after one.
    pages: int = 1


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
    """The pages a window expected to hold `expected` reads before it looks again, within a worker's `budget`."""
    return max(2, min(budget, math.ceil(CAP_SLACK * expected)))


def pages_left(
    window: Window, pages: list[RawPage], first: datetime.datetime, last: datetime.datetime, end: datetime.datetime
) -> float:
    """The pages [last, end) holds at the density of the window's pages read so far."""
    start = window.start or first
    count = sum(p.count for p in pages)
    return count / max((last - start).total_seconds(), 1.0) * (end - last).total_seconds() / pages[-1].count


def split(start: datetime.datetime, end: datetime.datetime, parts: int, pages: int = 1) -> list[Window]:
    """[start, end) as `parts` windows of equal length, whole seconds apart (Klaviyo's times are)."""
    seconds = math.ceil((end - start).total_seconds())
    bounds = sorted({start + datetime.timedelta(seconds=seconds * i // parts) for i in range(parts)} | {end})
    return [Window(a, b, pages=pages) for a, b in itertools.pairwise(bounds)]


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
