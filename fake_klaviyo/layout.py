"""Where in time an account's events lie, and how many each email metric holds: the shapes real accounts have
(everything in the last week of a young account, a thin history of many years, campaign sends that put most of a
day's events in an hour, one metric with many times the events of another), for benchmarks and tests that must
not depend on events being spread evenly over two years."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .clock import EVENT_SPAN_DAYS
from .metrics import EMAIL_METRICS

# A send's events arrive within this many seconds of it, most of them in its first minutes.
BURST_SECONDS = 3600
# The share of a send's hour before which half its events have arrived is 0.5 ** BURST_SKEW (an eighth here).
BURST_SKEW = 3


@dataclass(frozen=True)
class EventLayout:
    """``span_days``: the events (but the new, timed and future ones) lie in the ``span_days`` before the
    generator's now. ``bursts``: that many campaign sends, spread over the span, the same for every metric;
    ``burst_share`` of the events fall in the hour after one of them, front-loaded, the rest evenly over the span.
    ``metric_events``: events of the named built-in email metrics (any case), instead of ``events_per_metric``.
    The default layout is the generator's own: the same account as without one."""

    span_days: float = EVENT_SPAN_DAYS
    bursts: int = 0
    burst_share: float = 0.8
    metric_events: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.span_days * 86400 <= 40 * 365 * 86400:
            raise ValueError("span_days must be more than 0 and at most 40 years")
        if self.bursts < 0 or not 0 <= self.burst_share <= 1:
            raise ValueError("bursts must not be negative and burst_share must lie between 0 and 1")
        known = {name.casefold() for name in EMAIL_METRICS}
        unknown = sorted(name for name in self.metric_events if name.casefold() not in known)
        if unknown:
            raise ValueError(f"metric_events must name built-in email metrics, not {unknown}")
        if any(count < 0 for count in self.metric_events.values()):
            raise ValueError("metric_events must not be negative")

    def span_seconds(self) -> int:
        return max(1, round(self.span_days * 86400))

    def events_of(self, metric_name: str, default: int) -> int:
        """How many events a built-in email metric of this name holds."""
        counts = {name.casefold(): count for name, count in self.metric_events.items()}
        return counts.get(metric_name.casefold(), default)

    def moments(self, seed: int, start: int, end: int) -> Callable[[Callable[[], float]], int] | None:
        """How an event's time in [start, end) is drawn from a generator's `random`; None: evenly (the generator's
        own way, which draws differently)."""
        if not self.bursts or not self.burst_share:
            return None
        sends_rng = random.Random(f"campaign sends {seed}")
        sends = sorted(start + sends_rng.randrange(max(1, end - start - BURST_SECONDS)) for _ in range(self.bursts))
        share, span = self.burst_share, end - start

        def moment(rand: Callable[[], float]) -> int:
            if rand() < share:
                return sends[int(rand() * len(sends))] + int(BURST_SECONDS * rand() ** BURST_SKEW)
            return start + int(rand() * span)

        return moment
