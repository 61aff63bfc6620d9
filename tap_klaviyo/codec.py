"""Klaviyo's response bodies as the tap reads them.

Two failures are kept apart. A body that is not JSON (cut short on the way, or a proxy's error page) is
`Unreadable`: the client asks again. A body that is JSON but not the document the spec describes is
`NotAsSpecified`: asking again would bring the same, so it is reported, saying where in the body.

A page read through time windows is described once, here, for both of its readers. The windows' workers skim it
for what they plan on (`skimmer`: how many resources, the first and last times, the next cursor) and keep its
bytes; the main thread decodes it into dicts (`page_rows`), or, for an /api/events page, into records typed by
the schema (`event_records`, checked in C while decoding), falling back to dicts for a page whose events break it.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from tap_klaviyo.records import flatten
from tap_klaviyo.times import parse_datetime, parse_or_none


class Unreadable(ValueError):
    """A body that is not JSON: worth another request."""


class NotAsSpecified(ValueError):
    """JSON that is not the document the spec describes (the message says where): not worth another request."""


class NotInSchema(ValueError):
    """A page holds an event its schema does not describe: check it record by record instead."""


def decode_document(body: bytes) -> dict[str, Any]:
    """A JSON:API document whose `data` is a list of resources (objects, with object attributes and
    relationships)."""
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise Unreadable(str(error)) from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        raise NotAsSpecified("the response has no `data` list")
    for i, resource in enumerate(data):
        if not isinstance(resource, dict):
            raise NotAsSpecified(f"`data[{i}]` is a {type(resource).__name__}, not a resource object")
        for part in ("attributes", "relationships"):
            if not isinstance(resource.get(part) or {}, dict):
                raise NotAsSpecified(
                    f"`data[{i}].{part}` of resource {str(resource.get('id'))[:40]!r} is not an object"
                )
    return document


class _Links(msgspec.Struct):
    next: str | None = None


@dataclass
class RawPage:
    """A page as received, and what the windows plan on: how many resources it holds, its first and last
    resources' times (None where that is not a date-time), and its next page."""

    body: bytes
    count: int
    first: str | None
    last: str | None
    next_url: str | None


@functools.cache
def skimmer(field: str | None) -> Callable[[bytes], RawPage]:
    """A decoder that checks a whole page body but decodes only what the windows plan on, the resources' `field`
    among it (None: no times, for pages read by cursor only). Loose where the schema check is not: an odd value
    reaches that check, not an error here."""
    attributes = msgspec.defstruct("_SkimAttributes", [(field, Any, None)] if field else [])
    resource = msgspec.defstruct("_SkimResource", [("attributes", attributes | None, None)])
    decoder = msgspec.json.Decoder(
        msgspec.defstruct("_SkimPage", [("data", list[resource]), ("links", _Links | None, None)])
    )

    def time_of(resource: Any) -> str | None:
        if field is None:
            return None
        value = getattr(resource.attributes, field) if resource.attributes is not None else None
        return value if parse_or_none(value) else None

    def skim(body: bytes) -> RawPage:
        try:
            page = decoder.decode(body)
        except msgspec.ValidationError as error:
            raise NotAsSpecified(str(error)) from None
        except msgspec.DecodeError as error:
            raise Unreadable(str(error)) from None
        data = page.data
        return RawPage(
            body,
            len(data),
            time_of(data[0]) if data else None,
            time_of(data[-1]) if data else None,
            page.links.next if page.links else None,
        )

    return skim


# An /api/events page, as the windows see it, and any page read by cursor only.
skim = skimmer("datetime")
skim_cursor = skimmer(None)


# Klaviyo's form of a date-time (`2024-01-02T00:21:47+00:00`); other ISO 8601 forms take the record-by-record path.
_DATETIME = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")]


class _Related(msgspec.Struct):
    id: str | None = None


class _ToOne(msgspec.Struct):
    data: _Related | None = None


class _Relationships(msgspec.Struct):
    profile: _ToOne | None = None
    metric: _ToOne | None = None


class _Attributes(msgspec.Struct):
    timestamp: int | None = None
    event_properties: msgspec.Raw = msgspec.Raw(b"null")
    datetime: _DATETIME | None = None
    uuid: str | None = None


class _Event(msgspec.Struct):
    id: str
    attributes: _Attributes = msgspec.field(default_factory=_Attributes)
    relationships: _Relationships | None = None


_typed_page = msgspec.json.Decoder(msgspec.defstruct("_TypedPage", [("data", list[_Event])]))


class EventRecord(msgspec.Struct):
    """An event as the tap emits it: the `email_events` schema's fields, in its order."""

    id: str
    timestamp: int | None
    event_properties: msgspec.Raw
    datetime: str | None
    uuid: str | None
    profile_id: str | None
    metric_id: str | None


class AccountEventRecord(EventRecord):
    """An event with the id of the account it belongs to (`add_account_id`)."""

    account_id: str | None = None


_OBJECT_OR_NULL = (ord("{"), ord("n"))


def event_records(
    body: bytes, before: datetime.datetime | None = None, account_id: str | None = None
) -> list[EventRecord]:
    """A page's events as records typed by the schema, `event_properties` kept as the raw JSON Klaviyo sent;
    with `before`, only those dated before it; with `account_id`, each carrying it. Raises NotInSchema if any
    event breaks the schema."""
    try:
        events = _typed_page.decode(body).data
    except msgspec.ValidationError as error:
        raise NotInSchema(str(error)) from None
    records = []
    append = records.append
    for event in events:
        attributes = event.attributes
        if memoryview(attributes.event_properties)[0] not in _OBJECT_OR_NULL:
            raise NotInSchema("event_properties is not an object")
        if before is not None and attributes.datetime is not None and parse_datetime(attributes.datetime) >= before:
            continue
        relationships = event.relationships
        profile = metric = None
        if relationships is not None:
            if relationships.profile is not None and relationships.profile.data is not None:
                profile = relationships.profile.data.id
            if relationships.metric is not None and relationships.metric.data is not None:
                metric = relationships.metric.data.id
        fields = (event.id, attributes.timestamp, attributes.event_properties, attributes.datetime, attributes.uuid)
        if account_id is None:
            append(EventRecord(*fields, profile, metric))
        else:
            append(AccountEventRecord(*fields, profile, metric, account_id))
    return records


def page_rows(body: bytes, field: str, before: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """A page's resources as flat dicts, whatever their values; with `before`, without those whose `field` is at or
    after it."""
    rows = [flatten(resource) for resource in decode_document(body)["data"]]
    return rows if before is None else [row for row in rows if not _at_or_after(row.get(field), before)]


def _at_or_after(value: Any, before: datetime.datetime) -> bool:
    # A resource without a date-time is kept: no later window, filtered by time, would bring it.
    moment = parse_or_none(value)
    return moment is not None and moment >= before
