"""Date-times as Klaviyo writes and filters them."""

from __future__ import annotations

import datetime


def parse_datetime(value: str) -> datetime.datetime:
    """An ISO 8601 date-time (or date) as an aware datetime; naive values are taken as UTC."""
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def parse_or_none(value: object) -> datetime.datetime | None:
    """`value` as a date-time, or None when it is not a string holding one."""
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def filter_time(value: datetime.datetime) -> str:
    """A datetime as Klaviyo's filters want it: ISO 8601, unquoted, UTC as `Z` (no `+` to mis-encode), in whole
    seconds, as Klaviyo stamps events (every bound is floored alike, so adjacent windows still meet)."""
    return value.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
