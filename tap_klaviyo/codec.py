"""Klaviyo's response bodies as the tap reads them.

Two failures are kept apart. A body that is not JSON (cut short on the way, or a proxy's error page) is
`Unreadable`: the client asks again. A body that is JSON but not the document the spec describes is
`NotAsSpecified`: asking again would bring the same, so it is reported, saying where in the body.

A page read through time windows is described once, here, for both of its readers. The windows' workers decode
what they plan on (how many resources, the first and last times, the next cursor). Most pages they skim
(`skimmer`) and keep as bytes, which the main thread decodes into dicts (`document_rows`). An /api/events page
written a page at a time they decode whole, once, into records typed by the schema (`event_pages.py`), and keep
the records instead of the bytes.

Decoded structs are left untracked by the garbage collector (`gc=False`; they cannot form cycles): a page makes
thousands, and tracked ones set off collections over the whole heap, which cost more than the decoding (see
benchmarks/README.md).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import GenericAlias
from typing import TYPE_CHECKING, Any

import msgspec

from tap_klaviyo.records import flatten
from tap_klaviyo.times import parse_or_none

if TYPE_CHECKING:
    from tap_klaviyo.event_pages import AttributionRecord, EventRecord


class Unreadable(ValueError):
    """A body that is not JSON: worth another request."""


class NotAsSpecified(ValueError):
    """JSON that is not the document the spec describes (the message says where): not worth another request."""


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


class Links(msgspec.Struct, gc=False):
    next: str | None = None


@dataclass
class RawPage:
    """A page as received, and what the windows plan on: how many resources it holds, its first and last
    resources' times (None where that is not a date-time), and its next page. An /api/events page holds its events
    decoded instead of its bytes (`records`; None: read from `body` record by record), the attributions included
    with them when they were asked for, and what they take."""

    body: bytes
    count: int
    first_time: str | None
    last_time: str | None
    next_url: str | None
    records: list[EventRecord] | None = None
    records_bytes: int = 0
    attributions: list[AttributionRecord] | None = None

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
            "_SkimPage", [("data", GenericAlias(list, resource)), ("links", Links | None, None)], gc=False
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


def document_rows(
    document: dict[str, Any], field: str, before: datetime.datetime | None = None
) -> list[dict[str, Any]]:
    """A page's resources as flat dicts, whatever their values; with `before`, without those whose `field` is at or
    after it."""
    rows = [flatten(resource) for resource in document["data"]]
    return rows if before is None else [row for row in rows if not _at_or_after(row.get(field), before)]


def _at_or_after(value: Any, before: datetime.datetime) -> bool:
    # A resource without a date-time is kept: no later window, filtered by time, would bring it.
    moment = parse_or_none(value)
    return moment is not None and moment >= before
