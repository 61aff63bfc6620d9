"""The generator's fixed clock, and date-times as Klaviyo writes them."""

from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc
# Fixed "now" of the generator: data never depends on the wall clock (except future_events).
GENERATOR_NOW = datetime(2026, 1, 1, tzinfo=UTC)
EVENT_SPAN_DAYS = 730


def iso(dt: datetime, micro: bool = False) -> str:
    # Klaviyo writes "2022-11-08T01:23:45+00:00", sometimes with microseconds.
    return dt.astimezone(UTC).isoformat(timespec="microseconds" if micro else "seconds")
