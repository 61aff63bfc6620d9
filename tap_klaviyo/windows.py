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
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from tap_klaviyo import stopping
from tap_klaviyo.codec import RawPage
from tap_klaviyo.ranges import Chunk, Plan, Probe, Range, Window
from tap_klaviyo.splits import BUDGET_SHARES, Room, first_split, idle_split, look_again

# Bytes of pages read ahead: read and not yet emitted, or that windows being read may bring.
BUFFERED_BYTES = 64 * 1024 * 1024
# Windows of a range bound by its endpoint's rate limit read at once, for each request that limit lets out in a
# round trip: some of a window's round trips go to the pacer's wait, and a window that ends leaves a worker idle
# until it is split for.
RATE_SLACK = 1.5
# Past this share of a minute's allowance spent, a range's endpoint is bound to its rate a minute (a twelfth of its
# burst, for profiles): every request counts, and it reads only as many windows at once as that rate keeps busy.
MINUTE_BOUND = 0.5
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
        # Whether workers are idle with nothing to read, asked by workers that could split for them: windows
        # made and not started yet (queued), workers reading, and idle ones already split for. Only ever steers
        # splitting, never what is read.
        self._lock = threading.Lock()
        self._queued = 0
        self._busy = 0
        self._claimed = 0
        # How long a range's first request took, the quickest seen: a round trip.
        self._round_trip: float | None = None

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
                    self._count(queued=-1)
                else:  # what it split the window into will not be read
                    entry.add_done_callback(self._forget)
                self._reserved -= self._in_flight.pop(entry, 0)
            elif isinstance(entry, Chunk):
                self._buffered -= entry.size
            else:
                self._count(queued=-1)
        item.items.clear()

    def _forget(self, future: Future[Chunk]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._count(queued=-len(future.result().remaining))

    def _prepare(self, item: Range) -> None:
        if not item.prepared:
            item.prepared = True
            item.plan = item.prepare()
            if item.plan is not None:
                item.items.extend(item.plan.windows)
                self._count(queued=len(item.plan.windows))

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

    def _count(self, queued: int = 0, busy: int = 0, claimed: int = 0) -> None:
        with self._lock:
            self._queued += queued
            self._busy += busy
            self._claimed += claimed

    def _read(self, plan: Plan, window: Window) -> Chunk:
        self._count(queued=-1, busy=1)
        chunk = None
        try:
            chunk = self.fetch(plan, window)
            return chunk
        finally:
            if chunk is None:
                self._count(busy=-1)
            else:
                self._count(queued=len(chunk.remaining), busy=-1, claimed=-chunk.claimed)

    def _taken(self) -> int:
        """Workers reading, or with a window queued for them, or split for already."""
        return self._busy + self._queued + self._claimed

    def _claim_idle(self, most: int, workers: int) -> int:
        """Up to `most` of `workers` idle with nothing queued for them, claimed for windows about to be split off: no
        more than the read-ahead budget has room for, windows of a page each (workers the budget keeps idle cannot
        read them)."""
        if workers - self._taken() <= 0:
            return 0  # the usual answer, without the lock
        room = (BUFFERED_BYTES - self._buffered - self._reserved) // max(self._largest_page, 1)
        with self._lock:
            idle = min(most, room, workers - self._taken())
            if idle <= 0:
                return 0
            self._claimed += idle
            return idle

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
            took = time.monotonic() - began
            self._round_trip = took if self._round_trip is None else min(self._round_trip, took)
        pages = [page]
        budget = self._page_budget(page)
        while page.next_url and page.count and not self._closed:
            if probe is not None:
                return first_split(plan, window, pages, probe.result(), self._room(plan, budget))
            room = self._room(plan, budget)
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

    def _room(self, plan: Plan, budget: int) -> Room:
        """What the pool has for the rest of a window of `plan`'s range: `Room`. A range's windows are worth
        reading at once on every worker, unless its endpoint's rate limit lets out fewer requests in a round trip,
        give or take (the others would wait for the pacer, and windows cost requests)."""
        workers, rounds = self.concurrency, self._round_trip
        if plan.pacer is None or rounds is None:
            return Room(self.concurrency, workers, workers - self._taken(), budget)
        pacer = plan.pacer
        # Once bound to its rate a minute, the range needs only the windows that rate keeps busy; fewer (its last
        # windows ending) leave the rate unspent, and idle workers are split for again.
        minute_bound = pacer.minute_spent() > MINUTE_BOUND
        per_second = pacer.steady / pacer.minute if minute_bound else pacer.burst / pacer.second
        workers = max(1, min(self.concurrency, math.ceil(RATE_SLACK * per_second * rounds)))
        free = workers - self._taken()
        return Room(self.concurrency, workers, free, budget, paced=pacer.waiting() > rounds)
