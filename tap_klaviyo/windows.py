"""Fetch one event stream's time range through several requests at once, handing records back in time order.

The range starts as one window. A window's worker reads up to a few pages of it by cursor; if the window goes
on, the worker keeps the records before its last page's last timestamp and splits the rest of the range into
windows sized by the density it saw, each read by a worker of its own. The calling (main) thread consumes
windows strictly in time order while the pool reads the next ones, so at most `concurrency` windows' pages
are held at once. A range that cannot be split by time (one second holding more than a page, or events
dated after the sync started) is read by cursor.
"""

from __future__ import annotations

import datetime
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tap_klaviyo.records import Resource, parse_datetime

# Records all windows in flight may hold at once; with the page size it sets how many pages a worker reads.
BUFFERED_RECORDS = 64_000
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


@dataclass
class Page:
    records: list[Resource]
    then: list[Window]


FetchFirst = Callable[[Window], dict]
FetchNext = Callable[[str], dict]


def event_time(resource: Resource) -> datetime.datetime:
    return parse_datetime(resource["attributes"]["datetime"])


class WindowedFetch:
    def __init__(
        self, fetch_first: FetchFirst, fetch_next: FetchNext, *, concurrency: int, now: datetime.datetime
    ) -> None:
        self.fetch_first = fetch_first
        self.fetch_next = fetch_next
        self.concurrency = concurrency
        # Where an open-ended range is cut for splitting; events after it (dated in the future) are few.
        self.now = now

    def records(self, windows: list[Window]) -> Iterator[Resource]:
        """Every event in `windows` (which must be in time order), oldest first."""
        pending: deque[Window | Future[Page]] = deque(windows)
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
                    page = head.result()
                    pending.extendleft(reversed(page.then))
                    yield from page.records
            finally:
                for item in pending:
                    if isinstance(item, Future):
                        item.cancel()

    def fetch(self, window: Window) -> Page:
        """Up to `window.pages` pages of a window (in a worker thread), and the windows that cover the rest."""
        document = self.fetch_next(window.next_url) if window.next_url else self.fetch_first(window)
        records: list[Resource] = list(document["data"])
        page_length = max(len(records), 1)
        budget = max(2, BUFFERED_RECORDS // (self.concurrency * page_length))
        read = 1
        next_url = (document.get("links") or {}).get("next")
        while next_url and read < window.pages:
            document = self.fetch_next(next_url)
            records += document["data"]
            next_url = (document.get("links") or {}).get("next")
            read += 1
        if not next_url or not records:
            return Page(records, [])
        first, last = event_time(records[0]), event_time(records[-1])
        end, tail = window.end, []
        if end is None:
            end, tail = self.now, [Window(self.now, None, pages=budget)]
        if window.next_url or last <= first or last >= end:
            return Page(records, [Window(next_url=next_url, pages=budget)])
        # Records at `last` may go on past this page: keep those before it, and read [last, end) anew.
        keep = [r for r in records if event_time(r) < last]
        start = window.start or first
        density = len(records) / max((last - start).total_seconds(), 1.0)
        expected_pages = density * (end - last).total_seconds() / page_length
        # Aim each window at half a worker's pages, so most end before the budget and few split again, but
        # make enough windows to keep every worker busy.
        parts = max(expected_pages / max(1, budget // 2), min(expected_pages, self.concurrency))
        parts = max(1, min(math.ceil(parts), MAX_SPLIT_PER_WORKER * self.concurrency))
        return Page(keep, [*split(last, end, parts, pages=budget), *tail])


def split(start: datetime.datetime, end: datetime.datetime, parts: int, pages: int = 1) -> list[Window]:
    """[start, end) as `parts` windows of equal length, whole seconds apart (Klaviyo's event times are)."""
    seconds = math.ceil((end - start).total_seconds())
    bounds = sorted({start + datetime.timedelta(seconds=seconds * i // parts) for i in range(parts)} | {end})
    return [Window(a, b, pages=pages) for a, b in itertools.pairwise(bounds)]
