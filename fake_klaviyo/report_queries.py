"""A report query's body, checked as Klaviyo checks it (the rules come from the spec: see make_report_endpoints.py):
the JSON:API envelope, the attributes each report takes and requires, the statistics, the timeframe (a preset, or a
start and an end whose offset is ignored: the account's timezone is used, and both ends' days are included), at
most a year long and at most as long as the interval allows, the conversion metric, the group-bys and the filter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from . import filters
from .metrics import EMAIL_METRICS
from .responses import ApiError, invalid
from .spec import Endpoint, Resource

# The channels and names the fake reports by; Klaviyo's variations, tags and SMS formats are not modelled.
MODELLED = frozenset(
    {"campaign_id", "campaign_message_id", "campaign_message_name", "flow_id", "flow_message_id", "flow_message_name"}
    | {"flow_name", "send_channel"}
)
_WALL_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")
JSON_TYPES = ("application/vnd.api+json", "application/json")


@dataclass
class ReportQuery:
    ep: Endpoint
    statistics: list[str]
    first: date  # the timeframe's first and last days, in the account's timezone
    last: date
    interval: str | None
    metric_id: str
    group_by: list[str]
    conditions: list[filters.Condition] = field(default_factory=list)
    fields: list[str] | None = None
    offset: int = 0
    digest: str = ""


def _pointer(name: str) -> str:
    return f"/data/attributes/{name}" if name else "/data"


def _bad(detail: str, at: str) -> ApiError:
    return ApiError(400, "invalid", "Invalid input.", detail, pointer=_pointer(at))


def _unmodelled(what: str) -> ApiError:
    return ApiError(501, "not_implemented", "Not implemented by the fake.", f"fake_klaviyo does not model {what}.")


def parse(
    ep: Endpoint,
    body: bytes,
    content_type: str | None,
    pairs: list[tuple[str, str]],
    today: date,
    metrics: Mapping[str, Resource],
) -> ReportQuery:
    """The query a request asks for, or the ApiError Klaviyo would answer with."""
    rules = ep.report
    assert rules is not None, f"{ep.name} is a report query"
    params = _params(ep, pairs)
    if (content_type or "").split(";")[0].strip().lower() not in JSON_TYPES:
        raise ApiError(415, "unsupported_media_type", "Unsupported media type.", "Send the body as JSON.")
    try:
        document = json.loads(body)
    except ValueError:
        raise ApiError(400, "parse_error", "Malformed request.", "JSON parse error.") from None
    if not isinstance(document, dict) or set(document) != {"data"} or not isinstance(document["data"], dict):
        raise _bad("The body must be a JSON:API document holding only `data`, an object.", "")
    data = document["data"]
    if set(data) - {"type", "attributes"} or data.get("type") != ep.resource_type:
        raise _bad(f"`data` must hold `type` '{ep.resource_type}' and `attributes`, nothing else.", "")
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        raise _bad("`attributes` must be an object.", "")
    unknown = sorted(set(attributes) - set(rules["attributes"]))
    if unknown:
        raise _bad(f"'{unknown[0]}' is not a valid attribute of a {ep.resource_type}.", unknown[0])
    missing = [name for name in rules["required"] if attributes.get(name) is None]
    if missing:
        raise _bad(f"'{missing[0]}' is a required attribute.", missing[0])
    statistics = _statistics(attributes["statistics"], rules["statistics"])
    interval = attributes.get("interval")
    if rules["intervals"] is not None and interval not in rules["intervals"]:
        raise _bad(f"'{interval}' is not a valid interval; allowed: {', '.join(rules['intervals'] or ())}.", "interval")
    first, last = _timeframe(attributes["timeframe"], rules, interval, today)
    if interval not in (None, "daily"):
        raise _unmodelled(f"interval={interval}")
    metric_id = _metric(attributes["conversion_metric_id"], metrics)
    group_by = _group_by(attributes.get("group_by"), rules)
    conditions = _filter(attributes.get("filter"), rules["filter"])
    canonical = json.dumps([ep.name, attributes, sorted(p for p in pairs if p[0] != "page_cursor")], sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    offset = _offset(params["page_cursor"], digest) if "page_cursor" in params else 0
    fields = params.get(f"fields[{ep.resource_type}]")
    return ReportQuery(
        ep,
        statistics,
        first,
        last,
        interval,
        metric_id,
        group_by,
        conditions,
        fields.split(",") if fields is not None else None,
        offset,
        digest,
    )


def _params(ep: Endpoint, pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in ep.query_params:
            raise invalid(f"'{key}' is not a valid query parameter for {ep.path}.", key)
        if key in params:
            raise invalid(f"Query parameter '{key}' was given more than once.", key)
        params[key] = value
    for rtype, allowed in ep.fields.items():
        for item in params.get(f"fields[{rtype}]", "").split(",") if f"fields[{rtype}]" in params else []:
            if item not in allowed:
                raise invalid(f"'{item}' is not a valid value for fields[{rtype}].", f"fields[{rtype}]")
    return params


def _statistics(value: Any, allowed: list[str]) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _bad("`statistics` must be a non-empty list.", "statistics")
    for item in value:
        if item not in allowed:
            raise _bad(f"'{item}' is not a valid statistic.", "statistics")
    if len(set(value)) != len(value):
        raise _bad("`statistics` lists a statistic twice.", "statistics")
    return list(value)


def _wall_time(value: Any, name: str) -> datetime:
    """A timeframe edge as the account's wall-clock time: its offset, if any, is ignored."""
    found = _WALL_TIME.match(value) if isinstance(value, str) else None
    try:
        if found:
            return datetime.fromisoformat(found.group(1))
    except ValueError:
        pass
    raise _bad(f"The timeframe's `{name}` must be an ISO 8601 date-time.", "timeframe")


def _timeframe(value: Any, rules: dict[str, Any], interval: str | None, today: date) -> tuple[date, date]:
    """The days a timeframe covers: a custom one's from its start's day to its end's day, both included."""
    if not isinstance(value, dict):
        raise _bad("`timeframe` must be an object.", "timeframe")
    if set(value) == {"key"}:
        if value["key"] not in rules["timeframe_keys"]:
            raise _bad(f"'{value['key']}' is not a valid timeframe key.", "timeframe")
        return preset(value["key"], today)
    if set(value) != set(rules["timeframe_fields"]):
        raise _bad("`timeframe` must hold either `key`, or `start` and `end`.", "timeframe")
    start, end = _wall_time(value["start"], "start"), _wall_time(value["end"], "end")
    if end < start:
        raise _bad("The timeframe's end is before its start.", "timeframe")
    longest = rules["timeframe_max_days"]
    if longest is not None and end - start > timedelta(days=longest):
        raise _bad("The timeframe can be at most 1 year long.", "timeframe")
    most = rules["interval_max_days"].get(interval or "")
    if most is not None and end - start > timedelta(days=most):
        raise _bad(f"With the {interval} interval, the timeframe can be at most {most} days long.", "timeframe")
    return start.date(), end.date()


def preset(key: str, today: date) -> tuple[date, date]:
    """A preset timeframe's days, as the fake reads them (weeks start on Monday; "last" periods end yesterday)."""
    yesterday = today - timedelta(days=1)
    month = today.replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    week = today - timedelta(days=today.weekday())
    spans = {
        "today": (today, today),
        "yesterday": (yesterday, yesterday),
        "last_7_days": (today - timedelta(days=7), yesterday),
        "last_30_days": (today - timedelta(days=30), yesterday),
        "last_90_days": (today - timedelta(days=90), yesterday),
        "last_365_days": (today - timedelta(days=365), yesterday),
        "last_3_months": (today - timedelta(days=91), yesterday),
        "last_12_months": (today - timedelta(days=364), yesterday),
        "this_week": (week, today),
        "last_week": (week - timedelta(days=7), week - timedelta(days=1)),
        "this_month": (month, today),
        "last_month": (last_month, month - timedelta(days=1)),
        "this_year": (today.replace(month=1, day=1), today),
        "last_year": (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    }
    return spans[key]


def _metric(value: Any, metrics: Mapping[str, Resource]) -> str:
    if not isinstance(value, str) or value not in metrics:
        raise _bad(f"No metric with id {str(value)[:40]!r} was found.", "conversion_metric_id")
    attributes = metrics[value]["attributes"]
    integration = (attributes.get("integration") or {}).get("name")
    # Klaviyo's own message metrics measure the messages themselves: they are no conversion.
    if integration == "Klaviyo" and (attributes.get("name") or "").casefold() in {n.casefold() for n in EMAIL_METRICS}:
        raise _bad(f"Metric {value} does not support querying for values data.", "conversion_metric_id")
    return value


def _group_by(value: Any, rules: dict[str, Any]) -> list[str]:
    if value is None:
        return list(rules["group_by_default"])
    if not isinstance(value, list) or any(item not in rules["group_by"] for item in value):
        raise _bad(f"`group_by` must list some of: {', '.join(rules['group_by'])}.", "group_by")
    if len(set(value)) != len(value):
        raise _bad("`group_by` lists an attribute twice.", "group_by")
    missing = [name for name in rules["group_by_required"] if name not in value]
    if missing:
        raise _bad(f"`group_by` must include {', '.join(rules['group_by_required'])}.", "group_by")
    if set(value) - MODELLED:
        raise _unmodelled(f"group_by={','.join(sorted(set(value) - MODELLED))}")
    return list(value)


def _filter(value: Any, rules: dict[str, Any]) -> list[filters.Condition]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise _bad("`filter` must be a string.", "filter")
    try:  # the grammar joins conditions with AND only, as the reports allow
        conditions = filters.parse(value)
    except filters.FilterError as exc:
        raise _bad(str(exc), "filter") from None
    seen: set[str] = set()
    for c in conditions:
        listed = c.field in rules["list"]
        if c.field not in rules["scalar"] and not listed:
            raise _bad(f"'{c.field}' cannot be filtered on.", "filter")
        operators = rules["list_operators"] if listed else rules["scalar_operators"]
        if c.op not in operators:
            raise _bad(f"'{c.op}' cannot filter '{c.field}'; allowed: {', '.join(operators)}.", "filter")
        if rules["one_per_attribute"] and c.field in seen:
            raise _bad(f"Only one filter can be used per attribute ('{c.field}').", "filter")
        seen.add(c.field)
        items = c.value if isinstance(c.value, tuple) else (c.value,) if c.value is not None else ()
        if (c.op == "equals") == isinstance(c.value, tuple) or not items or any(i.kind != "str" for i in items):
            raise _bad(
                f"'{c.op}({c.field},...)' needs {'a quoted string' if c.op == 'equals' else 'a list'}.", "filter"
            )
        if len(items) > rules["max_list_items"]:
            raise _bad(f"At most {rules['max_list_items']} items per list filter.", "filter")
        if c.field == "send_channel" and any(i.value not in rules["send_channels"] for i in items):
            raise _bad(f"send_channel can be {', '.join(rules['send_channels'])}.", "filter")
        if c.field not in MODELLED:
            raise _unmodelled(f"filters on {c.field}")
    return conditions


def encode_cursor(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "q": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(cursor: str, digest: str) -> int:
    """A page_cursor's offset: a cursor works only with the body it came from."""
    try:
        found = json.loads(base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True))
        offset, issued_for = found["o"], found["q"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid("Invalid cursor.", "page_cursor") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or issued_for != digest:
        raise invalid("Invalid cursor: it does not belong to this query.", "page_cursor")
    return offset
