"""Which days a report stream reads: timeframes tile whole days, as few as Klaviyo's limits allow, and a run goes on
from the days its state says are read, reading the lookback's again."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from tap_klaviyo.report_days import Days, backward, forward, keep, plan, state_problem
from tap_klaviyo.report_rows import timeframe

TODAY = date(2026, 12, 6)
CAMPAIGN_DAYS, FLOW_DAYS = 365, 60


def days_of(steps: list[Days]) -> list[date]:
    return [step.first + timedelta(days=n) for step in steps for n in range(len(step))]


def assert_tiles(steps: list[Days], wanted: Days, longest: int) -> None:
    """The steps cover `wanted` exactly, no day twice, none longer than `longest`, each extending the days read."""
    read = days_of(steps)
    assert sorted(read) == days_of([wanted]), "every day once"
    assert all(1 <= len(step) <= longest for step in steps)
    held = steps[0]
    for step in steps[1:]:
        held = held.joined(step)


@pytest.mark.parametrize(("longest", "most"), [(CAMPAIGN_DAYS, 2), (FLOW_DAYS, 7)])
def test_a_backfill_of_410_days_takes_at_most_2_campaign_and_7_flow_timeframes(longest, most):
    wanted = Days(TODAY - timedelta(days=409), TODAY)
    steps = plan(None, wanted, 30, longest)
    assert len(steps) == most
    assert_tiles(steps, wanted, longest)
    assert steps[0].last == TODAY, "the newest days first"


def test_three_years_take_4_campaign_and_19_flow_timeframes():
    wanted = Days(TODAY - timedelta(days=3 * 365), TODAY)
    assert len(plan(None, wanted, 30, CAMPAIGN_DAYS)) == 4
    assert len(plan(None, wanted, 30, FLOW_DAYS)) == 19


def test_the_next_day_reads_the_lookback_only():
    held = Days(TODAY - timedelta(days=409), TODAY)
    tomorrow = Days(held.first, TODAY + timedelta(days=1))
    assert plan(held, tomorrow, 30, FLOW_DAYS) == [Days(TODAY - timedelta(days=28), TODAY + timedelta(days=1))]
    assert plan(held, tomorrow, 1, CAMPAIGN_DAYS) == [Days(TODAY + timedelta(days=1), TODAY + timedelta(days=1))]


def test_a_run_stopped_part_way_goes_on_from_the_days_read():
    wanted = Days(TODAY - timedelta(days=409), TODAY)
    first_run = plan(None, wanted, 30, FLOW_DAYS)
    held = first_run[0].joined(first_run[1])  # two timeframes read, then the quota ran out
    steps = plan(held, wanted, 30, FLOW_DAYS)
    # The lookback again, then only the days not read, in as many timeframes as the first run had left.
    assert steps[0] == Days(TODAY - timedelta(days=29), TODAY)
    assert_tiles(steps[1:], Days(wanted.first, held.first - timedelta(days=1)), FLOW_DAYS)
    assert len(steps[1:]) == len(first_run[2:])
    for step in steps:
        held = held.joined(step)
    assert held == wanted


def test_days_not_read_since_the_last_run_are_read_with_the_lookback_in_few_timeframes():
    held = Days(date(2025, 1, 1), TODAY - timedelta(days=100))
    steps = plan(held, Days(held.first, TODAY), 30, FLOW_DAYS)
    assert steps == forward(Days(held.last + timedelta(days=1), TODAY), FLOW_DAYS) and len(steps) == 2


def test_an_earlier_start_date_reads_the_days_before_newest_first_and_a_later_one_reads_nothing_before_it():
    held = Days(date(2026, 1, 1), TODAY)
    earlier = plan(held, Days(date(2025, 6, 1), TODAY), 30, FLOW_DAYS)
    assert earlier[0] == Days(TODAY - timedelta(days=29), TODAY)
    assert earlier[1:] == backward(Days(date(2025, 6, 1), date(2025, 12, 31)), FLOW_DAYS)
    later = plan(held, Days(TODAY - timedelta(days=10), TODAY), 30, FLOW_DAYS)
    assert later == [Days(TODAY - timedelta(days=10), TODAY)]
    # Days read long ago that do not meet what is wanted now: everything wanted is read again.
    assert plan(Days(date(2024, 1, 1), date(2024, 2, 1)), Days(date(2026, 1, 1), TODAY), 30, CAMPAIGN_DAYS) == backward(
        Days(date(2026, 1, 1), TODAY), CAMPAIGN_DAYS
    )
    assert plan(None, Days(TODAY, TODAY - timedelta(days=1)), 30, FLOW_DAYS) == []


def test_a_timeframe_is_whole_days_of_the_account_with_its_offset_that_day():
    toronto = ZoneInfo("America/Toronto")
    # Daylight saving time ends on 2026-11-01 in Toronto: the offsets differ, the wall-clock times do not.
    assert timeframe(Days(date(2026, 10, 3), date(2026, 12, 1)), toronto) == {
        "start": "2026-10-03T00:00:00-04:00",
        "end": "2026-12-01T23:59:59-05:00",
    }
    assert timeframe(Days(TODAY, TODAY), ZoneInfo("Asia/Kathmandu")) == {
        "start": "2026-12-06T00:00:00+05:45",
        "end": "2026-12-06T23:59:59+05:45",
    }


def test_the_state_keeps_the_days_read_per_conversion_metric_and_odd_states_are_named():
    state: dict = {}
    keep(state, Days(date(2025, 1, 1), TODAY), "RESQ6t")
    assert state == {"first_day": "2025-01-01", "last_day": "2026-12-06", "conversion_metric_id": "RESQ6t"}
    assert state_problem(state) is None and state_problem({}) is None
    assert "last_day" in state_problem({"first_day": "2025-01-01", "conversion_metric_id": "x"})
    assert "first_day" in state_problem({**state, "first_day": "yesterday"})
    assert "after" in state_problem({**state, "first_day": "2027-01-01"})
    assert "1999" in state_problem({**state, "first_day": "1999-12-31"})
    assert "conversion metric" in state_problem({**state, "conversion_metric_id": 7})
