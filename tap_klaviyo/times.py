"""Date-times as Klaviyo writes and filters them, and as the tap writes them.

Klaviyo writes most times as RFC 3339 (`2024-04-01T17:33:16+00:00`), but an event's `datetime` and a profile's
consent timestamps come with a space instead of the "T" (`2024-04-01 17:33:16+00:00`,
`2026-06-23 00:15:23.918411+00:00`), whatever the spec says. Inside the tap a time is an instant: parsed from any of
those forms, compared as a datetime, never as text. What leaves the tap is RFC 3339: values as Klaviyo sent them
with the "T" restored (offset and fraction kept), bookmarks in one form, UTC (`bookmark_text`).
"""

from __future__ import annotations

import datetime
import re

UTC = datetime.UTC

# RFC 3339's date-time (section 5.6): what a value under `format: date-time` must look like when it leaves the tap.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")


def parse_datetime(value: str) -> datetime.datetime:
    """An ISO 8601 date-time (or date) as an aware datetime, in either of Klaviyo's forms, with "Z" or an offset and
    any fraction of a second; naive values are taken as UTC. Raises ValueError for anything else."""
    text = value.strip()
    # `fromisoformat` takes "Z" and any fraction of a second (truncated to microseconds), not "z".
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_or_none(value: object) -> datetime.datetime | None:
    """`value` as a date-time, or None when it is not a string holding one."""
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def rfc3339(value: str) -> str:
    """A date-time as Klaviyo wrote it, in RFC 3339: the space form gets its "T" back, offset and fraction kept; a
    value without an offset is UTC. Anything that is not a date-time is returned as it is (the schema check
    reports it)."""
    if value[10:11] == " ":
        value = f"{value[:10]}T{value[11:]}"
    if _RFC3339.match(value):
        return value
    moment = parse_or_none(value)
    return value if moment is None else moment.isoformat()


def bookmark_text(moment: datetime.datetime) -> str:
    """The one form the tap writes bookmarks in: RFC 3339, UTC, microseconds only where there are some. Two such
    texts sort as their instants do."""
    return moment.astimezone(UTC).isoformat()


def filter_time(value: datetime.datetime) -> str:
    """A datetime as Klaviyo's filters want it: ISO 8601, unquoted, UTC as `Z` (no `+` to mis-encode), in whole
    seconds, as Klaviyo stamps events (every bound is floored alike, so adjacent windows still meet)."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
