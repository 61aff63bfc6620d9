"""How the rest of a window is sized and split: the density its pages showed (`Rest`), the windows that cover it
(`split`), and the three times the pool splits: after a range's first page (`first_split`), when workers are
idle (`idle_split`), and when a window has read its page budget (`look_again`). Pure functions of a window, its
pages and what the pool has for it (`Room`); the pool (`windows.py`) runs them in its workers."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from tap_klaviyo.codec import RawPage
from tap_klaviyo.ranges import Chunk, Plan, Window
from tap_klaviyo.times import parse_datetime

# A window expected to hold a few pages reads up to this many times as many before it looks again (splits, or goes
# on by cursor): what it reserves of the read-ahead budget, which a full worker's share would take up in vain.
CAP_SLACK = 2
# The share of a page a window is sized to hold, by the density seen, when the workers can read every window at
# once: a little short of a page, so that the window is read in one request although its stretch is a little denser
# than the one seen (each window's last page is partial anyway).
FILL = 0.65
# Pages a window split off for idle workers holds where the endpoint's rate limit bounds the range.
RATE_BOUND_FILL = 4
# The read-ahead budget is shared out as if among this many windows: a window reads about its share of pages before
# it looks again, and reserves that much while it is read (`windows.py`); a range's first split spreads a sync of
# many pages over this many windows at most (more could not all be read at once). More workers than this read
# windows sized to fit on a page while the budget has room for them (a sync of a few pages a range, read in one
# round trip), and a large sync stays within the budget with windows of several pages.
BUDGET_SHARES = 16
# A window that outgrew its budget while every worker is busy splits into no more windows than there are workers
# free, but at least this many: what it saw of its density holds near where it stopped, and every range split
# into a window per worker at once would queue each other's windows for rounds.
BUSY_SPLIT = 4


@dataclass(frozen=True)
class Room:
    """What the pool has for the rest of a window: its workers; those worth reading one range's windows at once
    (all of them, or about as many as the range's endpoint lets out requests in a round trip: then its rate limit,
    not its round trips, bounds the range); those free (neither busy nor with a window queued for them, nor already
    split for); the pages a worker reads of a window before it looks again; and whether the range's endpoint's
    pacer holds its requests back (more windows would only wait with them, a request more each)."""

    concurrency: int
    workers: int
    free: int
    budget: int
    paced: bool = False

    @property
    def rate_bound(self) -> bool:
        return self.workers < self.concurrency


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
        if not pages[0].first_time or not pages[-1].last_time or not pages[-1].count:
            return None
        first, last = parse_datetime(pages[0].first_time).timestamp(), parse_datetime(pages[-1].last_time).timestamp()
        if last <= first or last >= end.timestamp():
            return None
        density = Density((first + last) / 2, sum(p.count for p in pages) / max(last - first, 1.0))
        if newest is not None and newest.count > 1 and newest.first_time and newest.last_time:
            latest, earliest = (
                parse_datetime(newest.first_time).timestamp(),
                parse_datetime(newest.last_time).timestamp(),
            )
            at, per_second = (earliest + latest) / 2, newest.count / max(latest - earliest, 1.0)
            if earliest <= last:
                # The newest records reach back to those read: the rest is as dense as they are.
                density = Density(at, per_second)
            elif at > density.at:
                growth = math.log(per_second / density.per_second) / (at - density.at)
                density = Density(density.at, density.per_second, growth)
        return cls(datetime.datetime.fromtimestamp(last, datetime.UTC), end, density, pages[-1].count)

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
    low, high = 1.0, math.pow(widths, 1 / (parts - 1)) + 1
    for _ in range(60):
        mid = (low + high) / 2
        if (mid**parts - 1) / (mid - 1) < widths:
            low = mid
        else:
            high = mid
    return high


def rest_of(
    plan: Plan, window: Window, pages: list[RawPage], newest: RawPage | None = None, *, both_ends: bool = False
) -> Rest | None:
    """The rest of the window after `pages`, up to its end (an open one: the sync's start, after which records are
    few, or the range's newest record), and with `both_ends` as dense as `pages` and the newest records say; None
    when it cannot be split by time."""
    if plan.newest is None:
        return None
    end = window.end or plan.now
    if newest is not None and newest.first_time:
        end = min(end, parse_datetime(newest.first_time).replace(microsecond=0) + datetime.timedelta(seconds=1))
    return Rest.of(pages, end, newest if both_ends else None)


def first_split(plan: Plan, window: Window, pages: list[RawPage], newest: RawPage | None, room: Room) -> Chunk:
    """The rest of a range after its first page, split up to its newest record (a metric may have none for months;
    the last window reaches the range's end, for records that arrive during the run or are dated later): into as
    many windows as it holds pages, each sized to fit on one, when the workers can read them all at once, else
    into fewer, fuller ones (every window ends with a partial page, so they cost fewer requests for about the same
    round trips).

    Where round trips bound the range, its density is the first page's: a window that proves denser splits again
    at once, and an end that spikes (a campaign sent today) would make any density read there far too high for
    the rest. Where its endpoint's rate limit bounds it, each window split off costs a request, so the windows are
    sized by the density at both ends (a history that grew is far denser at its end)."""
    rest = rest_of(plan, window, pages, newest, both_ends=room.rate_bound)
    if rest is None:
        return cursor(window, pages, room.budget)
    parts = math.ceil(rest.expected / FILL)
    if parts > room.workers or room.rate_bound:
        # Spread over the workers (as many as a sync of many pages keeps busy at most), a budget each at least.
        fill = max(1, room.budget - 1)
        parts = max(math.ceil(rest.expected / fill), min(math.ceil(rest.expected), room.workers, BUDGET_SHARES))
    return _cut(window, pages, rest, rest.even(min(parts, room.concurrency), room.budget))


def idle_split(
    plan: Plan, window: Window, pages: list[RawPage], room: Room, claim: Callable[[int], int]
) -> Chunk | None:
    """The pages read so far and the rest of the window split among this worker and idle ones (`claim(most)`
    claims up to `most` of those free), if the rest holds more than a page; None to read on. Each window is sized to
    fit on a page, or to hold several where the rate limit bounds the range (every window ends with a partial
    page, a request more)."""
    if room.free <= 0 or room.paced:
        return None  # the usual answer, before any parsing
    rest = rest_of(plan, window, pages)
    fill = RATE_BOUND_FILL if room.rate_bound else FILL
    if rest is None or rest.expected <= max(1, fill):
        return None
    # Whole seconds apart (`split`): a window shorter than that many seconds cannot make that many parts. A quarter
    # of the workers at most: the density of a campaign's first minutes says little of its next hours, and the other
    # ranges may turn out denser than they looked too.
    seconds = math.ceil((rest.end - rest.last).total_seconds())
    idle = claim(min(math.ceil(rest.expected / fill), seconds, max(BUSY_SPLIT, room.workers // 4)) - 1)
    if not idle:
        return None
    chunk = _cut(window, pages, rest, rest.windows(idle + 1, fill, room.budget))
    chunk.claimed = idle
    return chunk


def look_again(plan: Plan, window: Window, pages: list[RawPage], room: Room) -> Chunk:
    """A window read to its page budget, no worker idle: what is left goes on by cursor if it holds less than
    another budget (every window it were split into would cost a partial last page, and the other windows keep the
    workers busy), else it is split into windows of about a budget each, up to as many as workers are free
    (`BUSY_SPLIT` at least)."""
    rest = rest_of(plan, window, pages)
    if rest is None or room.paced:
        return cursor(window, pages, room.budget)
    if rest.expected <= room.budget:
        return cursor(window, pages, cap(rest.expected, room.budget))
    fill = max(1, room.budget - 1)
    parts = min(math.ceil(rest.expected / fill), max(BUSY_SPLIT, room.free))
    return _cut(window, pages, rest, rest.windows(parts, fill, room.budget))


def cursor(window: Window, pages: list[RawPage], budget: int) -> Chunk:
    """The pages, and the rest of the window to read by cursor."""
    return Chunk(pages, [Window(end=window.end, next_url=pages[-1].next_url, pages=budget, whole=False)])


def _cut(window: Window, pages: list[RawPage], rest: Rest, windows: list[Window]) -> Chunk:
    """The pages, but their records at `rest.last` (they may go on past the last page), and `windows` to read
    [rest.last, window's end) anew."""
    return Chunk(pages, ending_at(windows, window.end), before=rest.last)
