"""Fetch the time ranges of streams read by time (events, profiles, members) through several requests at once,
handing pages back in time order.

A stream's range starts as one window. Its first page comes back with a page of the range's newest records, and
the rest of the range is split (`splits.py`) into windows sized by the density seen, as many as the workers can
read at once, each by a worker of its own. A window reads on by cursor until its pages show more to come than
expected while workers are idle: then it splits the rest among them and itself. The calling (main) thread
consumes windows strictly in time order while the pool reads the next ones, and the next streams' windows once
this stream's last ones leave workers idle. Workers decode what they plan on (`codec`: the cursor and the first
and last timestamps) and keep the pages read ahead within a budget of bytes, so memory holds a bounded number of
pages, not millions of parsed records. A range that cannot be split by time (one second holding more than a
page, or records dated after the sync started) is read by cursor.
"""

from __future__ import annotations

import datetime
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from tap_klaviyo import stopping
from tap_klaviyo.codec import RawPage
from tap_klaviyo.ranges import Chunk, Plan, Probe, Range, Window
from tap_klaviyo.splits import BUDGET_SHARES, first_split, idle_split, look_again
from tap_klaviyo.workers import Workers

# Bytes of pages read ahead: read and not yet emitted, or that windows being read may bring.
BUFFERED_BYTES = 64 * 1024 * 1024
# How often the main thread, waiting for a window, looks whether a signal asked the run to stop.
STOP_CHECK_SECONDS = 0.2


class WindowPool:
    """One pool of `concurrency` workers reading the ranges of a run, which the main thread consumes one
    after another. The stream being consumed goes first; when it leaves workers idle (its last windows), the
    streams not consumed yet start, in the order the run consumes them (`follow`), so a run's short streams overlap
    instead of each paying its own start-up."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._ranges: dict[str, Range] = {}
        # Each stream's place in the order the run consumes them (`follow`), and the ranges in that order (None:
        # to be sorted again, a range or the order having changed).
        self._order: dict[str, int] = {}
        self._in_order: list[Range] | None = None
        # Windows being read, each with the bytes its pages may take (its page budget at the largest page seen).
        self._in_flight: dict[Future[Chunk], int] = {}
        self._reserved = 0
        self._largest_page = 0
        # Bytes of pages read and not yet consumed.
        self._buffered = 0
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._workers = Workers(concurrency)

    def add(
        self, key: str, prepare: Callable[[], Plan | None], *, stream: str | None = None, early: bool = False
    ) -> None:
        """A range, consumed by `stream` (by default, the one named `key`). `prepare` (called on the main thread, at
        the latest when the range is consumed) makes its plan, or says there is nothing to read (None); an `early`
        one asks the network nothing, so `start` may read it before the run has looked anything up."""
        self._ranges[key] = Range(key, prepare, [stream or key], len(self._ranges), early)
        self._in_order = None

    def consumed_by(self, key: str, stream: str) -> None:
        """Another stream consumes range `key` too (whichever syncs first reads it)."""
        self._ranges[key].streams.append(stream)
        self._in_order = None

    def follow(self, streams: Sequence[str]) -> None:
        """The order the run consumes its streams in: ranges are read ahead in that order, a stream's own in the
        order they were added (without it, by stream name, the SDK's order)."""
        self._order = {name: i for i, name in enumerate(streams)}
        self._in_order = None

    def _ranked(self) -> list[Range]:
        """Every range, in the read-ahead order."""
        if self._in_order is None:
            self._in_order = sorted(self._ranges.values(), key=lambda item: item.rank(self._order))
        return self._in_order

    def start(self) -> None:
        """Start reading the early ranges now, before anything is consumed: a run's first round trips overlap."""
        early = [r for r in self._ranked() if r.early and not r.consumed]
        if early:
            self._fill_ranges(early)

    def read_first(self, keys: Iterable[str]) -> list[BaseException]:
        """Prepare these ranges, start the first window of each now (queued past `concurrency` if need be) and wait
        until every one is read, reading ahead meanwhile as if the first of them were being consumed, so that the
        run knows their first requests answered before it emits anything; the errors of the windows that failed."""
        wanted = set(keys)
        opened = [r for r in self._ranked() if r.key in wanted]
        first = []
        for item in opened:
            self._prepare(item)
            if item.items and isinstance(item.items[0], Window):
                self._start(item, 0, self._reservation(item.items[0]))
            if item.items and isinstance(item.items[0], Future):
                first.append(item.items[0])
        while pending := [future for future in first if not future.done()]:
            # Once one failed, read nothing more (the run stops), but hear the others out: every missing scope is
            # reported at once.
            failed = any(future.exception() for future in first if future.done())
            wait(pending if failed else self._in_flight, timeout=STOP_CHECK_SECONDS, return_when=FIRST_COMPLETED)
            # Nothing is written yet: a signal may stop the run here.
            stopping.check()
            if not failed:
                self._fill_ranges(opened)
        return [error for future in first if (error := future.exception()) is not None]

    def pages(self, key: str) -> Iterator[tuple[RawPage, datetime.datetime | None]]:
        """The range's pages, oldest first, each with the time its records must be before to be emitted (None:
        all of them); the rest of such a page is read again in the windows that follow it."""
        current = self._ranges[key]
        try:
            self._prepare(current)
            while True:
                self._fill(current)
                if not current.items:
                    current.consumed = True
                    return
                head = current.items[0]
                if isinstance(head, Chunk):
                    current.items.popleft()
                    self._buffered -= head.size
                    for page in head.pages:
                        yield page, head.before
                elif isinstance(head, Future) and head.done():
                    head.result()  # A window that failed: its error (windows that succeed are expanded).
                else:
                    wait(self._in_flight, timeout=STOP_CHECK_SECONDS, return_when=FIRST_COMPLETED)
                    # Every page handed out before is written, with its bookmark: a signal may stop the run here.
                    stopping.check()
        except GeneratorExit:
            # The stream stopped early (`--test` stops after a record): the streams after it go on.
            self._drop(current)
            current.consumed = True
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading: queued windows are dropped, and running ones stop after the page they are on."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _drop(self, item: Range) -> None:
        for entry in item.items:
            if isinstance(entry, Future):
                if entry.cancel():
                    self._workers.count(queued=-1)
                else:  # what it split the window into will not be read
                    entry.add_done_callback(self._forget)
                self._reserved -= self._in_flight.pop(entry, 0)
            elif isinstance(entry, Chunk):
                self._buffered -= entry.size
            else:
                self._workers.count(queued=-1)
        item.items.clear()

    def _forget(self, future: Future[Chunk]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._workers.count(queued=-len(future.result().remaining))

    def _prepare(self, item: Range) -> None:
        if not item.prepared:
            item.prepared = True
            item.plan = item.prepare()
            if item.plan is not None:
                item.items.extend(item.plan.windows)
                self._workers.count(queued=len(item.plan.windows))

    def _fill(self, current: Range) -> None:
        """Take in the windows workers have read, and give idle workers the next windows: the current stream's
        first, then those of the streams after it. Past `BUFFERED_BYTES` of pages read and not yet consumed or
        that windows being read may bring, only the window the current stream waits on is started."""
        later = [r for r in self._ranked() if r is not current and not r.consumed]
        self._fill_ranges([current, *later])

    def _fill_ranges(self, ranges: list[Range]) -> None:
        """Take in what workers have read, and start the windows of `ranges`, in order: all of the first one's
        (it is waited on), then the others' while there is room."""
        for item in self._ranges.values():
            self._expand(item)
        for n, item in enumerate(ranges):
            if len(self._in_flight) >= self.concurrency or (n and self._full()):
                return
            self._prepare(item)
            waited_on = n == 0
            for i in range(len(item.items)):
                entry = item.items[i]
                if len(self._in_flight) >= self.concurrency:
                    return
                if isinstance(entry, Window):
                    reservation = self._reservation(entry)
                    if not waited_on and self._buffered + self._reserved + reservation > BUFFERED_BYTES:
                        return
                    self._start(item, i, reservation)
                waited_on = waited_on and isinstance(entry, Chunk)

    def _start(self, item: Range, i: int, reservation: int) -> None:
        """Start reading the range's `i`th entry, a window."""
        window = item.items[i]
        assert item.plan is not None and isinstance(window, Window)
        future = self._submit(item.plan, window)
        item.items[i] = future
        self._in_flight[future] = reservation
        self._reserved += reservation

    def _reservation(self, window: Window) -> int:
        """The bytes a window being read may bring: its page budget at the largest page seen, but no more than a
        share of the budget (a window's page budget was sized to that share at its own range's page size, so a range
        of small pages has a large page count) and no less than two of the largest pages. Before any page is read,
        a share."""
        share = max(BUFFERED_BYTES // BUDGET_SHARES, 2 * self._largest_page)
        if not self._largest_page:
            return share
        return min(window.pages * self._largest_page, share)

    def _full(self) -> bool:
        return self._buffered + self._reserved >= BUFFERED_BYTES

    def _submit(self, plan: Plan, window: Window) -> Future[Chunk]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="klaviyo-window")
        return self._pool.submit(self._read, plan, window)

    def _read(self, plan: Plan, window: Window) -> Chunk:
        self._workers.count(queued=-1, busy=1)
        chunk = None
        try:
            chunk = self.fetch(plan, window)
            return chunk
        finally:
            if chunk is None:
                self._workers.count(busy=-1)
            else:
                self._workers.count(queued=len(chunk.remaining), busy=-1, claimed=-chunk.claimed)

    def _claim_idle(self, most: int, workers: int) -> int:
        """Idle workers claimed for windows about to be split off (`Workers.claim_idle`): no more than the read-ahead
        budget has room for, windows of a page each (workers the budget keeps idle cannot read them)."""
        room = (BUFFERED_BYTES - self._buffered - self._reserved) // max(self._largest_page, 1)
        return self._workers.claim_idle(most, workers, room)

    def _expand(self, item: Range) -> None:
        """Replace windows read in full by their pages and the windows that cover the rest."""
        if not any(isinstance(entry, Future) and entry.done() for entry in item.items):
            return
        expanded: deque[Window | Future[Chunk] | Chunk] = deque()
        for entry in item.items:
            if isinstance(entry, Future) and entry.done():
                self._reserved -= self._in_flight.pop(entry, 0)
                if entry.exception() is None:
                    chunk = entry.result()
                    self._buffered += chunk.size
                    self._largest_page = max(self._largest_page, *(page.size for page in chunk.pages))
                    expanded.append(chunk)
                    expanded.extend(chunk.remaining)
                    continue
            expanded.append(entry)
        item.items = expanded

    def fetch(self, plan: Plan, window: Window) -> Chunk:
        """Pages of a window (in a worker thread), and the windows that cover the rest. A range's whole window is
        split after its first page, up to its newest record (a page of its newest records is asked for beside the
        first page, one round trip for both). Any other window is read by cursor, up to its page budget, until its
        pages show more than a page to come while workers are idle: then the rest is split among them at once."""
        probe = None
        if window.whole and not window.next_url and plan.newest is not None:
            probe = Probe(plan.newest, Window(window.start, window.end))
        began = time.monotonic()
        page = plan.page_at(window.next_url) if window.next_url else plan.first_page(window)
        if probe is not None:
            self._workers.timed(time.monotonic() - began)
        pages = [page]
        budget = self._page_budget(page)
        while page.next_url and page.count and not self._closed:
            if probe is not None:
                return first_split(plan, window, pages, probe.result(), self._workers.room(plan, budget))
            room = self._workers.room(plan, budget)
            idle = idle_split(plan, window, pages, room, functools.partial(self._claim_idle, workers=room.workers))
            if idle is not None:
                return idle
            if len(pages) >= window.pages:
                return look_again(plan, window, pages, room)
            page = plan.page_at(page.next_url)
            pages.append(page)
        return Chunk(pages, [])

    def _page_budget(self, page: RawPage) -> int:
        """The pages a worker reads of a window before it looks again: a share of the read-ahead budget at this
        page's size."""
        return max(2, BUFFERED_BYTES // (BUDGET_SHARES * max(page.size, 1)))
