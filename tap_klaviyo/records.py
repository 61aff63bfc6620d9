"""How a record looks: JSON:API resources flattened into rows, and a fast check of rows against a schema."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

import msgspec

Resource = dict[str, Any]

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list, tuple),
    "null": (type(None),),
}


def flatten(resource: Resource) -> dict[str, Any]:
    """A resource as a flat record: `id`, the attributes at the top level, each to-one relationship as
    `<name>_id`."""
    record = {"id": resource["id"], **(resource.get("attributes") or {})}
    for name, relationship in (resource.get("relationships") or {}).items():
        data = relationship.get("data") if isinstance(relationship, dict) else None
        if isinstance(data, dict):
            record[f"{name.replace('-', '_')}_id"] = data.get("id")
    return record


class _Related(msgspec.Struct):
    id: Any = None


class _ToOne(msgspec.Struct):
    data: _Related | None = None


class _EventRelationships(msgspec.Struct):
    profile: _ToOne | None = None
    metric: _ToOne | None = None


class _EventAttributes(msgspec.Struct):
    timestamp: Any = None
    event_properties: msgspec.Raw = msgspec.Raw(b"null")
    datetime: Any = None
    uuid: Any = None


class _Event(msgspec.Struct):
    # Loose on purpose: a value of an unexpected type reaches the schema check, not a decoding error.
    id: Any = None
    attributes: _EventAttributes = msgspec.field(default_factory=_EventAttributes)
    relationships: _EventRelationships | None = None


class _EventPage(msgspec.Struct):
    data: list[_Event]


def _related_ids(relationships: _EventRelationships | _StrictRelationships | None) -> tuple[Any, Any]:
    """An event's profile and metric ids, None where a relationship or its data is missing."""
    if relationships is None:
        return None, None
    profile, metric = relationships.profile, relationships.metric
    return (
        profile.data.id if profile is not None and profile.data is not None else None,
        metric.data.id if metric is not None and metric.data is not None else None,
    )


def dated_before(rows: list[dict[str, Any]], before: datetime.datetime | None) -> list[dict[str, Any]]:
    """The rows dated before `before` (all of them if it is None)."""
    return rows if before is None else [r for r in rows if parse_datetime(r["datetime"]) < before]


def decode_events_raw(body: bytes) -> list[dict[str, Any]]:
    """An /api/events page as flat records, with `event_properties` kept as the raw JSON Klaviyo sent.

    Three times as fast as decoding every event into dicts and flattening them, and the writer copies raw
    JSON out as it is. Only for output nothing rewrites: stream maps, flattening and batch files need dicts.
    """
    records = []
    append = records.append
    for event in msgspec.json.decode(body, type=_EventPage).data:
        attributes = event.attributes
        profile, metric = _related_ids(event.relationships)
        append(
            {
                "id": event.id,
                "timestamp": attributes.timestamp,
                "event_properties": attributes.event_properties,
                "datetime": attributes.datetime,
                "uuid": attributes.uuid,
                "profile_id": profile,
                "metric_id": metric,
            }
        )
    return records


# Klaviyo's form of a date-time (`2024-01-02T00:21:47+00:00`); other ISO 8601 forms take the slow path.
_DATETIME = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")]


class _StrictRelated(msgspec.Struct):
    id: str | None = None


class _StrictToOne(msgspec.Struct):
    data: _StrictRelated | None = None


class _StrictRelationships(msgspec.Struct):
    profile: _StrictToOne | None = None
    metric: _StrictToOne | None = None


class _StrictAttributes(msgspec.Struct):
    timestamp: int | None = None
    event_properties: msgspec.Raw = msgspec.Raw(b"null")
    datetime: _DATETIME | None = None
    uuid: str | None = None


class _StrictEvent(msgspec.Struct):
    id: str
    attributes: _StrictAttributes = msgspec.field(default_factory=_StrictAttributes)
    relationships: _StrictRelationships | None = None


_strict_page = msgspec.json.Decoder(msgspec.defstruct("_StrictPage", [("data", list[_StrictEvent])]))


class EventRecord(msgspec.Struct):
    """An email event as the tap emits it: the `email_events` schema's fields, in its order."""

    id: str
    timestamp: int | None
    event_properties: msgspec.Raw
    datetime: str | None
    uuid: str | None
    profile_id: str | None
    metric_id: str | None


class NotInSchema(ValueError):
    """A page holds an event its schema does not describe: check it record by record instead."""


_OBJECT_OR_NULL = (ord("{"), ord("n"))


def event_records(body: bytes, before: datetime.datetime | None = None) -> list[EventRecord]:
    """An /api/events page as records typed by the schema (checked while decoding, in C), with
    `event_properties` kept as the raw JSON Klaviyo sent; with `before`, only events dated before it.

    Raises NotInSchema if any event breaks the schema, and ValueError if the body is not a page of events.
    """
    try:
        events = _strict_page.decode(body).data
    except msgspec.ValidationError as error:
        raise NotInSchema(str(error)) from None
    records = []
    append = records.append
    for event in events:
        attributes = event.attributes
        if memoryview(attributes.event_properties)[0] not in _OBJECT_OR_NULL:
            raise NotInSchema("event_properties is not an object")
        if before is not None and (attributes.datetime is None or parse_datetime(attributes.datetime) >= before):
            continue
        profile, metric = _related_ids(event.relationships)
        append(
            EventRecord(
                event.id,
                attributes.timestamp,
                attributes.event_properties,
                attributes.datetime,
                attributes.uuid,
                profile,
                metric,
            )
        )
    return records


def parse_datetime(value: str) -> datetime.datetime:
    """An ISO 8601 date-time (or date) as an aware datetime; naive values are taken as UTC."""
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


Check = Callable[[Any], "str | None"]


def compile_schema(schema: dict[str, Any], path: str = "") -> Check:
    """A function that names the first way a value breaks `schema` (types, date-time format), or None.

    Much cheaper than a full JSON Schema validator, so it can look at every record of a large sync: an object's
    fields are checked in one loop, and only fields with nested properties or items recurse.
    """
    own = _scalar_check(schema, path.rstrip(".") or "record")
    fields = [
        (name, compile_schema(sub, f"{path}{name}.") if _nested(sub) else _scalar_check(sub, f"{path}{name}"))
        for name, sub in schema.get("properties", {}).items()
    ]
    items = compile_schema(schema["items"], f"{path}[].") if "items" in schema else None
    if not fields and items is None:
        return own

    def check(value: Any) -> str | None:
        if problem := own(value):
            return problem
        if fields and isinstance(value, dict):
            for name, check_field in fields:
                if name in value and (problem := check_field(value[name])):
                    return problem
        if items and isinstance(value, (list, tuple)):
            for item in value:
                if problem := items(item):
                    return problem
        return None

    return check


def _nested(schema: dict[str, Any]) -> bool:
    return bool(schema.get("properties")) or "items" in schema


def _scalar_check(schema: dict[str, Any], field: str) -> Check:
    """The check of a field without nested properties: its type and date-time format only."""
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    allowed = tuple(t for name in names for t in JSON_TYPES.get(name, ()))
    bool_ok = "boolean" in names
    is_datetime = schema.get("format") == "date-time"

    def check(value: Any) -> str | None:
        kind = _raw_kind(value) if value.__class__ is msgspec.Raw else value.__class__
        if allowed and (not issubclass(kind, allowed) or (kind is bool and not bool_ok)):
            return f"field `{field}` should be {' or '.join(names)}, not {kind.__name__}"
        if is_datetime and value.__class__ is str and _bad_datetime(value):
            return f"field `{field}` is not a date-time: {value[:40]!r}"
        return None

    return check


_RAW_KINDS: dict[int, type] = {ord("{"): dict, ord("["): list, ord('"'): str, ord("n"): type(None)}
_RAW_KINDS.update({ord("t"): bool, ord("f"): bool})


def _raw_kind(raw: msgspec.Raw) -> type:
    """The Python type raw JSON decodes to, from its first byte (numbers as float)."""
    return _RAW_KINDS.get(memoryview(raw)[0], float) if len(raw) else type(None)


def _bad_datetime(value: str) -> bool:
    try:
        parse_datetime(value)
    except ValueError:
        return True
    return False
