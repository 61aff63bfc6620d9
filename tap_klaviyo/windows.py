"""Fetch one event stream's time range through several requests at once, handing records back in time order.

The range starts as one window. A window's worker reads up to a few pages of it by cursor; if the window goes
on, the worker splits the rest of the range, from its last page's last timestamp, into windows sized by the
density it saw, each read by a worker of its own. The calling (main) thread consumes windows strictly in time
order while the pool reads the next ones. Workers keep page bodies as bytes and only skim them (for the cursor
and the first and last timestamps): the main thread decodes each page as it emits it, so memory holds raw
pages, not millions of parsed records. A range that cannot be split by time (one second holding more than a
page, or events dated after the sync started) is read by cursor.
"""

from __future__ import annotations

import datetime
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import msgspec

from tap_klaviyo.records import parse_datetime

# Page bytes all windows in flight may hold at once; with the page size it sets how many pages a worker reads.
BUFFERED_BYTES = 64 * 1024 * 1024
# One split makes at most this many windows per worker; a window that proves denser splits again.
MAX_SPLIT_PER_WORKER = 4


@dataclass(frozen=True)
class Window:
    """Events with start <= datetime < end (None: unbounded), or the page a `links.next` URL points to."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    next_url: str | None = None
    # Pages one worker reads before it splits what is left; the first window splits after one.
    pages: int = 1


class _Attributes(msgspec.Struct):
    datetime: str | None = None


class _Event(msgspec.Struct):
    attributes: _Attributes


class _Links(msgspec.Struct):
    next: str | None = None


class _Skim(msgspec.Struct):
    data: list[_Event]
    links: _Links | None = None


@dataclass
class RawPage:
    """A page body as received, and what a worker needs to know of it."""

    body: bytes
    count: int
    first: str | None
    last: str | None
    next_url: str | None


def skim(body: bytes) -> RawPage:
    """Check a whole page body (a truncated one raises ValueError) but decode only the few fields planned on."""
    page = msgspec.json.decode(body, type=_Skim)
    data = page.data
    return RawPage(
        body,
        len(data),
        data[0].attributes.datetime if data else None,
        data[-1].attributes.datetime if data else None,
        page.links.next if page.links else None,
    )


@dataclass
class Chunk:
    """Pages to emit; with `before`, only their records dated before it (the rest is read again later)."""

    pages: list[RawPage]
    then: list[Window]
    before: datetime.datetime | None = None


class WindowedFetch:
    def __init__(
        self,
        fetch_first: Callable[[Window], RawPage],
        fetch_next: Callable[[str], RawPage],
        *,
        concurrency: int,
        now: datetime.datetime,
    ) -> None:
        self.fetch_first = fetch_first
        self.fetch_next = fetch_next
        self.concurrency = concurrency
        # Where an open-ended range is cut for splitting; events after it (dated in the future) are few.
        self.now = now

    def pages(self, windows: list[Window]) -> Iterator[tuple[RawPage, datetime.datetime | None]]:
        """The pages of every event in `windows` (which must be in time order), oldest first, each with the
        time its events must be before to be emitted (None: all of them); the rest of such a page is read again
        in the windows that follow it."""
        pending: deque[Window | Future[Chunk]] = deque(windows)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="klaviyo-window") as pool:
            try:
                while pending:
                    # Keep the next `concurrency` windows in flight, nearest first.
                    for i in range(min(self.concurrency, len(pending))):
                        item = pending[i]
                        if isinstance(item, Window):
                            pending[i] = pool.submit(self.fetch, item)
                    head = pending.popleft()
                    assert isinstance(head, Future)
                    chunk = head.result()
                    pending.extendleft(reversed(chunk.then))
                    for page in chunk.pages:
                        yield page, chunk.before
            finally:
                for item in pending:
                    if isinstance(item, Future):
                        item.cancel()

    def fetch(self, window: Window) -> Chunk:
        """Up to `window.pages` pages of a window (in a worker thread), and the windows that cover the rest."""
        page = self.fetch_next(window.next_url) if window.next_url else self.fetch_first(window)
        pages = [page]
        budget = max(2, BUFFERED_BYTES // (self.concurrency * max(len(page.body), 1)))
        while page.next_url and len(pages) < window.pages:
            page = self.fetch_next(page.next_url)
            pages.append(page)
        if not page.next_url or not page.count:
            return Chunk(pages, [])
        cursor = Chunk(pages, [Window(next_url=page.next_url, pages=budget)])
        if window.next_url or not pages[0].first or not page.last:
            return cursor
        first, last = parse_datetime(pages[0].first), parse_datetime(page.last)
        end, tail = window.end, []
        if end is None:
            end, tail = self.now, [Window(self.now, None, pages=budget)]
        if last <= first or last >= end:
            return cursor
        # Records at `last` may go on past this page: emit those before it, and read [last, end) anew.
        start = window.start or first
        count = sum(p.count for p in pages)
        expected_pages = count / max((last - start).total_seconds(), 1.0) * (end - last).total_seconds() / page.count
        # Aim each window at half a worker's pages, so most end before the budget and few split again, but
        # make enough windows to keep every worker busy.
        parts = max(expected_pages / max(1, budget // 2), min(expected_pages, self.concurrency))
        parts = max(1, min(math.ceil(parts), MAX_SPLIT_PER_WORKER * self.concurrency))
        return Chunk(pages, [*split(last, end, parts, pages=budget), *tail], before=last)


def split(start: datetime.datetime, end: datetime.datetime, parts: int, pages: int = 1) -> list[Window]:
    """[start, end) as `parts` windows of equal length, whole seconds apart (Klaviyo's event times are)."""
    seconds = math.ceil((end - start).total_seconds())
    bounds = sorted({start + datetime.timedelta(seconds=seconds * i // parts) for i in range(parts)} | {end})
    return [Window(a, b, pages=pages) for a, b in itertools.pairwise(bounds)]
