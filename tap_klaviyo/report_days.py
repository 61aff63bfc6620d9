"""Which days a report stream reads, in timeframes as long as Klaviyo allows, and what its state says it has read.

A report stream's state holds the run of days it has read (`first_day` to `last_day`, both included, in the
account's timezone) for its conversion metric. A run reads the days after `last_day` and the lookback's last days
again, oldest first, then the days between the start and `first_day`, newest first; a first run reads everything,
newest first. Every timeframe extends that run of days, so after each one the state can say so, and a run that
stops part way (the daily quota, a signal) is gone on from there. Timeframes tile whole days: none starts or ends
inside a day, and no day is read twice in a run.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from tap_klaviyo.times import parse_datetime

FIRST_DAY, LAST_DAY, METRIC_ID = "first_day", "last_day", "conversion_metric_id"
# What a report stream keeps in its state.
KEYS = frozenset({FIRST_DAY, LAST_DAY, METRIC_ID})
# Klaviyo holds nothing older (as for bookmarks: see state.py).
EARLIEST = datetime.date(2000, 1, 1)
ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Days:
    """Days from `first` to `last`, both included."""

    first: datetime.date
    last: datetime.date

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return f"{self.first} to {self.last}"

    def joined(self, other: Days) -> Days:
        """These days and `other`, which meets or overlaps them."""
        assert other.first <= self.last + ONE_DAY and other.last >= self.first - ONE_DAY, (self, other)
        return Days(min(self.first, other.first), max(self.last, other.last))


def forward(days: Days, longest: int) -> list[Days]:
    """`days` in timeframes of at most `longest` days, oldest first."""
    out = []
    first = days.first
    while first <= days.last:
        last = min(days.last, first + (longest - 1) * ONE_DAY)
        out.append(Days(first, last))
        first = last + ONE_DAY
    return out


def backward(days: Days, longest: int) -> list[Days]:
    """`days` in timeframes of at most `longest` days, newest first (the oldest one may be shorter)."""
    out = []
    last = days.last
    while last >= days.first:
        first = max(days.first, last - (longest - 1) * ONE_DAY)
        out.append(Days(first, last))
        last = first - ONE_DAY
    return out


def wanted(
    start_date: str | None,
    end_date: str | None,
    tz: ZoneInfo,
    held: Days | None,
    history_start: Callable[[], datetime.datetime | None],
) -> Days | None:
    """The days a run wants, in the account's timezone `tz`: from `start_date`, else from the first day `held`, else
    from the day anything was first sent (`history_start`; None: nothing was, and nothing is wanted), to today or the
    day before `end_date`."""
    last = datetime.datetime.now(datetime.UTC).astimezone(tz).date()
    if end_date:
        before = parse_datetime(end_date) - datetime.timedelta(microseconds=1)
        last = min(last, before.astimezone(tz).date())
    if start_date:
        return Days(parse_datetime(start_date).astimezone(tz).date(), last)
    if held is not None:
        return Days(held.first, last)
    began = history_start()
    return None if began is None else Days(began.astimezone(tz).date(), last)


def plan(held: Days | None, wanted: Days, lookback: int, longest: int) -> list[Days]:
    """The timeframes of a run that wants `wanted` (start to end) and has read `held` before, in the order to read
    them: each extends the days read so far by its own."""
    if len(wanted) < 1:
        return []
    if held is None or held.last < wanted.first - ONE_DAY or held.first > wanted.last:
        # Nothing read, or nothing that meets what is wanted now: read it all, the newest days first.
        return backward(wanted, longest)
    since = max(wanted.first, held.first, min(held.last + ONE_DAY, wanted.last - (lookback - 1) * ONE_DAY))
    steps = forward(Days(since, wanted.last), longest) if since <= wanted.last else []
    if wanted.first < held.first:
        steps += backward(Days(wanted.first, held.first - ONE_DAY), longest)
    return steps


def held_days(state: Mapping[str, Any], metric_id: str) -> Days | None:
    """The days a stream's state says it has read for the conversion metric `metric_id` (checked by
    `state_problem` before the run)."""
    if state.get(METRIC_ID) != metric_id or FIRST_DAY not in state or LAST_DAY not in state:
        return None
    return Days(datetime.date.fromisoformat(state[FIRST_DAY]), datetime.date.fromisoformat(state[LAST_DAY]))


def keep(state: dict[str, Any], days: Days, metric_id: str) -> None:
    """Write the days read for `metric_id` into the stream's state."""
    state.update({FIRST_DAY: days.first.isoformat(), LAST_DAY: days.last.isoformat(), METRIC_ID: metric_id})


def state_problem(state: Mapping[str, Any]) -> str | None:
    """What makes a report stream's state unusable, as the end of a sentence about it; None if it is usable (or
    empty)."""
    ours = {k: state[k] for k in KEYS if k in state}
    if not ours:
        return None
    if set(ours) != KEYS:
        return f"holds {', '.join(sorted(ours))} but not {', '.join(sorted(KEYS - set(ours)))}"
    if not isinstance(state[METRIC_ID], str) or not state[METRIC_ID]:
        return f"names no conversion metric id ({str(state[METRIC_ID])[:40]!r})"
    days = []
    for key in (FIRST_DAY, LAST_DAY):
        try:
            day = datetime.date.fromisoformat(state[key]) if isinstance(state[key], str) else None
        except ValueError:
            day = None
        if day is None or day < EARLIEST:
            return f"has a `{key}` that is no date from {EARLIEST} on (YYYY-MM-DD): {str(state[key])[:40]!r}"
        days.append(day)
    if days[0] > days[1]:
        return f"has its `{FIRST_DAY}` ({days[0]}) after its `{LAST_DAY}` ({days[1]})"
    return None
