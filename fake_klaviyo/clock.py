"""The generator's fixed clock, and date-times as Klaviyo writes them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

UTC = UTC
# Fixed "now" of the generator: data never depends on the wall clock (except future_events).
GENERATOR_NOW = datetime(2026, 1, 1, tzinfo=UTC)
EVENT_SPAN_DAYS = 730


def iso(dt: datetime, micro: bool = False) -> str:
    # Klaviyo writes "2022-11-08T01:23:45+00:00", sometimes with microseconds.
    return dt.astimezone(UTC).isoformat(timespec="microseconds" if micro else "seconds")


def klaviyo_form(text: str, micro: int | None = None) -> str:
    """A time in the form Klaviyo really writes events' ``datetime`` and profiles' consent timestamps in, whatever
    its spec says (recorded responses, estuary/connectors#4765): a space instead of the "T" (with ``micro``, those
    microseconds too: ``2026-06-23 00:15:23.918411+00:00``)."""
    if micro is not None and text[19:20] != ".":
        text = f"{text[:19]}.{micro:06d}{text[19:]}"
    return f"{text[:10]} {text[11:]}"


def stamp(seconds: int) -> str:
    """Whole seconds since the epoch as Klaviyo writes profile times: "2022-11-08T00:00:00+00:00"."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def created_updated(rng: random.Random, micro_share: float) -> tuple[str, str, datetime]:
    """A resource's ``created`` and ``updated`` as written (a ``micro_share`` of them with microseconds), and
    ``created`` itself: within three years before the generator's now, a month old at least."""
    created = GENERATOR_NOW - timedelta(seconds=rng.randrange(30 * 86400, 3 * 365 * 86400))
    created = created.replace(microsecond=rng.randrange(1, 1_000_000))
    updated = created + timedelta(seconds=rng.randrange(0, int((GENERATOR_NOW - created).total_seconds())))
    micro = rng.random() < micro_share
    return iso(created, micro), iso(updated, micro), created
