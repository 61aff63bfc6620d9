"""An /api/events page decoded whole, once, by the window worker that reads it, when it is written a page at a
time: its events as records typed by the `email_events` schema (checked in C while decoding), and, when the run
asked for them (`include=attributions`), the attributions included with them as records typed by the
`event_attributions` schema. A page whose events break the schema is skimmed instead (`codec.skim`), for a
record-by-record check. Asking for attributions picks another decoder at plan time: without them, a page is
decoded exactly as before.
"""

from __future__ import annotations

import datetime
from typing import Annotated, TypeVar

import msgspec

from tap_klaviyo.codec import Links, RawPage, Unreadable, skim
from tap_klaviyo.times import parse_datetime


class NotInSchema(ValueError):
    """A page holds an event its schema does not describe: check it record by record instead."""


# The memory a decoded event record holds besides its `event_properties` (a struct and its strings), and an
# attribution record (a struct and up to seven ids), for the read-ahead budget.
RECORD_BYTES = 576
ATTRIBUTION_BYTES = 640


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
    links: Links | None = None


_typed_page = msgspec.json.Decoder(_TypedPage)
# A page of events, with or without the attributions they list.
P = TypeVar("P", "_TypedPage", "_AttributedPage")


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
    decoded = _decoded(_typed_page, body)
    if decoded is None:
        return skim(body)
    page, records = decoded
    return _raw_page(records, page.links)


def _decoded(decoder: msgspec.json.Decoder[P], body: bytes) -> tuple[P, list[EventRecord]] | None:
    """A page and its events as records; None where the events break the schema."""
    try:
        page = decoder.decode(body)
        return page, [_record(event) for event in page.data]
    except (msgspec.ValidationError, NotInSchema):
        return None
    except msgspec.DecodeError as error:
        raise Unreadable(str(error)) from None


def _raw_page(
    records: list[EventRecord], links: Links | None, attributions: list[AttributionRecord] | None = None
) -> RawPage:
    """The page of these records (and the attributions they list), with what they take in memory."""
    taken = sum(len(record.event_properties) for record in records) + RECORD_BYTES * len(records)
    return RawPage(
        b"",
        len(records),
        records[0].datetime if records else None,
        records[-1].datetime if records else None,
        links.next if links else None,
        records,
        taken + ATTRIBUTION_BYTES * len(attributions or ()),
        attributions,
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


class _ToMany(msgspec.Struct, gc=False):
    data: list[_Related] | None = None


class _AttributedRelationships(_Relationships):
    attributions: _ToMany | None = None


class _AttributedEvent(_Event):
    relationships: _AttributedRelationships | None = None


class _AttributionRelationships(msgspec.Struct, gc=False, rename="kebab"):
    attributed_event: _ToOne | None = None
    campaign: _ToOne | None = None
    campaign_message: _ToOne | None = None
    flow: _ToOne | None = None
    flow_message: _ToOne | None = None
    flow_message_variation: _ToOne | None = None


class _Included(msgspec.Struct, gc=False):
    type: str
    id: str
    relationships: _AttributionRelationships | None = None


class _AttributedPage(msgspec.Struct, gc=False):
    data: list[_AttributedEvent]
    links: Links | None = None
    included: list[_Included] | None = None


_attributed_page = msgspec.json.Decoder(_AttributedPage)


class AttributionRecord(msgspec.Struct, gc=False):
    """An attribution as the tap emits it: the `event_attributions` schema's fields, in its order."""

    id: str
    event_id: str
    attributed_event_id: str | None
    campaign_id: str | None
    campaign_message_id: str | None
    flow_id: str | None
    flow_message_id: str | None
    flow_message_variation_id: str | None


class AccountAttributionRecord(AttributionRecord):
    """An attribution with the id of the account it belongs to (`add_account_id`)."""

    account_id: str | None = None


def attributed_event_page(body: bytes) -> RawPage:
    """`event_page` of a page asked for with `include=attributions`: its events, and the attributions each lists
    (in that order), as records typed by their schemas."""
    decoded = _decoded(_attributed_page, body)
    if decoded is None:
        return skim(body)
    page, records = decoded
    return _raw_page(records, page.links, _attributions(page.data, page.included or []))


def _attributions(events: list[_AttributedEvent], included: list[_Included]) -> list[AttributionRecord]:
    found = {resource.id: resource for resource in included if resource.type == "attribution"}
    out = []
    for event in events:
        listed = event.relationships.attributions if event.relationships is not None else None
        for ref in (listed.data or []) if listed is not None else []:
            # JSON:API includes what it lists: an attribution it does not include has no row to give.
            resource = found.get(ref.id) if ref.id is not None else None
            if resource is None:
                continue
            related = resource.relationships or _AttributionRelationships()
            out.append(
                AttributionRecord(
                    resource.id,
                    event.id,
                    _id(related.attributed_event),
                    _id(related.campaign),
                    _id(related.campaign_message),
                    _id(related.flow),
                    _id(related.flow_message),
                    _id(related.flow_message_variation),
                )
            )
    return out


def _id(relationship: _ToOne | None) -> str | None:
    return relationship.data.id if relationship is not None and relationship.data is not None else None


def emitted_attributions(
    attributions: list[AttributionRecord], events: list[EventRecord], before: datetime.datetime | None
) -> list[AttributionRecord]:
    """Of a page's attributions, those of the events emitted from it (all, without `before`)."""
    if before is None:
        return attributions
    emitted = {record.id for record in events}
    return [attribution for attribution in attributions if attribution.event_id in emitted]
