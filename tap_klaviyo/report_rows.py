"""A report query's body, and its answer as rows: one per grouping of a values report, one per grouping and day of
a daily series report (a day on which every statistic is zero is no row: the grouping sent nothing that day)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from tap_klaviyo.codec import NotAsSpecified, Unreadable
from tap_klaviyo.report_days import Days
from tap_klaviyo.times import parse_or_none


def timeframe(days: Days, tz: ZoneInfo) -> dict[str, str]:
    """Whole days: from the first's midnight to the last's last second, in the account's timezone (Klaviyo reads the
    wall-clock time and ignores the offset, which is the account's anyway). Both ends are included, so an end at the
    next midnight would read that day too."""
    start = datetime.datetime.combine(days.first, datetime.time(0), tz)
    end = datetime.datetime.combine(days.last, datetime.time(23, 59, 59), tz)
    return {"start": start.isoformat(), "end": end.isoformat()}


def query(
    report_type: str,
    statistics: Sequence[str],
    days: Days,
    tz: ZoneInfo,
    metric_id: str,
    group_by: Sequence[str],
    interval: str | None,
) -> bytes:
    attributes: dict[str, Any] = {
        "statistics": list(statistics),
        "timeframe": timeframe(days, tz),
        "conversion_metric_id": metric_id,
        "group_by": list(group_by),
    }
    if interval:
        attributes["interval"] = interval
    return json.dumps({"data": {"type": report_type, "attributes": attributes}}).encode()


def decoder(series: bool) -> Callable[[bytes], dict[str, Any]]:
    """The decoder of a report's answer: a document whose `data.attributes.results` lists objects with
    `groupings` and `statistics`, and for a series report `date_times`, as long as each statistic's list."""

    def decode(body: bytes) -> dict[str, Any]:
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            raise Unreadable(str(error)) from None
        data = document.get("data") if isinstance(document, dict) else None
        attributes = data.get("attributes") if isinstance(data, dict) else None
        if not isinstance(attributes, dict) or not isinstance(attributes.get("results"), list):
            raise NotAsSpecified("the response has no `data.attributes.results` list")
        results: list[Any] = attributes["results"]
        times = attributes.get("date_times") if series else []
        if not isinstance(times, list):
            raise NotAsSpecified("the series report has no `date_times` list")
        for i, result in enumerate(results):
            if not isinstance(result, dict) or not all(
                isinstance(result.get(part), dict) for part in ("groupings", "statistics")
            ):
                raise NotAsSpecified(f"`results[{i}]` is not an object with `groupings` and `statistics` objects")
            if series and any(
                not isinstance(values, list) or len(values) != len(times) for values in result["statistics"].values()
            ):
                raise NotAsSpecified(f"`results[{i}].statistics` are not lists as long as `date_times`")
        checked: dict[str, Any] = document
        return checked

    return decode


def _keys(result: dict[str, Any], keys: Sequence[str]) -> dict[str, str]:
    groupings = result["groupings"]
    missing = [key for key in keys if not isinstance(groupings.get(key), str)]
    if missing:
        raise NotAsSpecified(f"a result's groupings lack {', '.join(missing)}")
    return {key: groupings[key] for key in keys}


def value_rows(
    document: dict[str, Any], keys: Sequence[str], statistics: Sequence[str], extra: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """A values report's rows: each result's groupings, `extra`, and its statistics as columns."""
    for result in document["data"]["attributes"]["results"]:
        values = result["statistics"]
        yield {**_keys(result, keys), **extra, **{name: values.get(name) for name in statistics}}


def series_rows(
    document: dict[str, Any],
    keys: Sequence[str],
    statistics: Sequence[str],
    extra: dict[str, Any],
    days: Days,
    tz: ZoneInfo,
) -> Iterator[dict[str, Any]]:
    """A daily series report's rows: each result's groupings, `extra`, a `date` and that day's statistics; a day
    on which every statistic is zero is left out."""
    attributes = document["data"]["attributes"]
    dates = [_day(text, days, tz) for text in attributes["date_times"]]
    for result in attributes["results"]:
        key = _keys(result, keys)
        series = result["statistics"]
        for index, day in enumerate(dates):
            values = {name: series[name][index] if name in series else None for name in statistics}
            if any(values.values()):
                yield {**key, "date": day, **extra, **values}


def _day(text: Any, days: Days, tz: ZoneInfo) -> str:
    """The account's day a series' date-time stands for: its own date where it is a midnight (Klaviyo writes the
    account's midnight, whatever offset it adds), else its date in the account's timezone (a midnight written in
    UTC); one of the days asked for, or Klaviyo answered another question."""
    moment = parse_or_none(text)
    if moment is None:
        raise NotAsSpecified(f"`date_times` holds {str(text)[:40]!r}, not a date-time")
    day = moment.date() if moment.time() == datetime.time(0) else moment.astimezone(tz).date()
    if not days.first <= day <= days.last:
        raise NotAsSpecified(f"`date_times` holds {text}, outside the days asked for ({days})")
    return day.isoformat()
