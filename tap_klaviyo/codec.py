"""Klaviyo's response bodies as the tap reads them.

Two failures are kept apart. A body that is not JSON (cut short on the way, or a proxy's error page) is
`Unreadable`: the client asks again. A body that is JSON but not the document the spec describes is
`NotAsSpecified`: asking again would bring the same, so it is reported, saying where in the body.

A page read through time windows is described once, here, for both of its readers. The windows' workers decode
what they plan on (how many resources, the first and last times, the next cursor). Most pages they skim
(`skimmer`) and keep as bytes, which the main thread decodes into dicts (`page_rows`). An /api/events page
written a page at a time they decode whole, once, into records typed by the schema (`event_page`, checked in C
while decoding), and keep the records instead of the bytes; a page whose events break the schema is skimmed.

Decoded structs are left untracked by the garbage collector (`gc=False`; they cannot form cycles): a page makes
thousands, and tracked ones set off collections over the whole heap, which cost more than the decoding.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import GenericAlias
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
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise NotAsSpecified("the response has no `data` list")
    for i, resource in enumerate(document["data"]):
        if not isinstance(resource, dict):
            raise NotAsSpecified(f"`data[{i}]` is a {type(resource).__name__}, not a resource object")
        for part in ("attributes", "relationships"):
            if not isinstance(resource.get(part) or {}, dict):
                raise NotAsSpecified(
                    f"`data[{i}].{part}` of resource {str(resource.get('id'))[:40]!r} is not an object"
                )
    return document


class _Links(msgspec.Struct, gc=False):
    next: str | None = None


# The memory a decoded event record holds besides its `event_properties` (a struct and its strings), for the
# read-ahead budget.
RECORD_BYTES = 576


@dataclass
class RawPage:
    """A page as received, and what the windows plan on: how many resources it holds, its first and last
    resources' times (None where that is not a date-time), and its next page. An /api/events page holds its events
    decoded instead of its bytes (`records`; None: read from `body` record by record), and what they take."""

    body: bytes
    count: int
    first: str | None
    last: str | None
    next_url: str | None
    records: list[EventRecord] | None = None
    records_bytes: int = 0

    @property
    def size(self) -> int:
        """The memory the page holds while it waits to be emitted."""
        return len(self.body) + self.records_bytes


@functools.cache
def skimmer(field: str | None) -> Callable[[bytes], RawPage]:
    """A decoder that checks a whole page body but decodes only what the windows plan on, the resources' `field`
    among it (None: no times, for pages read by cursor only). Loose where the schema check is not: an odd value
    reaches that check, not an error here."""
    attributes = msgspec.defstruct("_SkimAttributes", [(field, Any, None)] if field else [], gc=False)
    resource = msgspec.defstruct("_SkimResource", [("attributes", attributes | None, None)], gc=False)
    # A page type made at run time: its fields are known to the decoder, not to the type checker.
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
        msgspec.defstruct(
            "_SkimPage", [("data", GenericAlias(list, resource)), ("links", _Links | None, None)], gc=False
        )
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


# Klaviyo's forms of a date-time: RFC 3339 (`2024-01-02T00:21:47+00:00`) and the same with a space for the "T",
# which events really come with; other ISO 8601 forms take the record-by-record path.
_DATETIME = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")]


class _Related(msgspec.Struct, gc=False):
    id: str | None = None


class _ToOne(msgspec.Struct, gc=False):
    data: _Related | None = None


class _Relationships(msgspec.Struct, gc=False):
    profile: _ToOne | None = None
    metric: _ToOne | None = None


class _Attributes(msgspec.Struct, gc=False):
    timestamp: int | None = None
    event_properties: msgspec.Raw = msgspec.Raw(b"null")
    datetime: _DATETIME | None = None
    uuid: str | None = None


class _Event(msgspec.Struct, gc=False):
    id: str
    attributes: _Attributes = msgspec.field(default_factory=_Attributes)
    relationships: _Relationships | None = None


class _TypedPage(msgspec.Struct, gc=False):
    data: list[_Event]
    links: _Links | None = None


_typed_page = msgspec.json.Decoder(_TypedPage)


class EventRecord(msgspec.Struct, gc=False):
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


def event_page(body: bytes) -> RawPage:
    """An /api/events page with its events as records typed by the schema, `event_properties` kept as the raw JSON
    Klaviyo sent (copied out, so the page's bytes are freed); a page whose events break the schema is skimmed
    instead, for a record-by-record check."""
    try:
        page = _typed_page.decode(body)
        records = [_record(event) for event in page.data]
    except (msgspec.ValidationError, NotInSchema):
        return skim(body)
    except msgspec.DecodeError as error:
        raise Unreadable(str(error)) from None
    return RawPage(
        b"",
        len(records),
        records[0].datetime if records else None,
        records[-1].datetime if records else None,
        page.links.next if page.links else None,
        records,
        sum(len(record.event_properties) for record in records) + RECORD_BYTES * len(records),
    )


def _record(event: _Event) -> EventRecord:
    attributes = event.attributes
    if memoryview(attributes.event_properties)[0] not in _OBJECT_OR_NULL:
        raise NotInSchema("event_properties is not an object")
    relationships = event.relationships
    profile = metric = None
    if relationships is not None:
        if relationships.profile is not None and relationships.profile.data is not None:
            profile = relationships.profile.data.id
        if relationships.metric is not None and relationships.metric.data is not None:
            metric = relationships.metric.data.id
    moment = attributes.datetime
    if moment is not None and moment[10] == " ":
        moment = f"{moment[:10]}T{moment[11:]}"
    return EventRecord(
        event.id,
        attributes.timestamp,
        attributes.event_properties.copy(),
        moment,
        attributes.uuid,
        profile,
        metric,
    )


def emitted_events(
    records: list[EventRecord], before: datetime.datetime | None = None, account_id: str | None = None
) -> list[EventRecord]:
    """Of a page's records, those dated before `before` (all without it), each carrying `account_id` if given."""
    if before is not None:
        records = [r for r in records if r.datetime is None or parse_datetime(r.datetime) < before]
    if account_id is not None:
        records = [
            AccountEventRecord(
                r.id, r.timestamp, r.event_properties, r.datetime, r.uuid, r.profile_id, r.metric_id, account_id
            )
            for r in records
        ]
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
