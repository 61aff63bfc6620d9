"""Streams of Klaviyo's entities: read from their list endpoints, in full or past the bookmark, and streams
derived from another stream's records (the ids in one of their fields, or the resources their request
includes), which cost no requests of their own."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.codec import NotAsSpecified, RawPage, decode_document, skim_cursor
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.ranges import Plan, Window
from tap_klaviyo.records import Resource, flatten
from tap_klaviyo.streams.base import KlaviyoStream, Source, StreamRow
from tap_klaviyo.times import filter_time

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams import Run


class EntityStream(KlaviyoStream):
    """One or more list endpoints read in full, or past the bookmark with the row's filter operator. Records of a
    stream read from several endpoints carry their resource `type`. A stream others derive from is read once
    per run and its records kept for them, with the related resources its request includes for them."""

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        self.keeps_records = run.is_derived_from(row.name)
        self._kept: list[dict[str, Any]] | None = None
        self._included: dict[str, list[Related]] = {}
        if run.fetcher is not None:
            # Read ahead from the start of the run, beside everything else: a few requests each, all round trips.
            for index in range(len(row.sources)):
                run.fetcher.add(range_key(row.name, index), partial(self.plan, index), early=True)

    @cached_property
    def includes(self) -> list[str]:
        """The relationships whose resources selected derived streams read from this stream's responses."""
        return [
            row.derived_from[1]
            for row in self.run.rows
            if row.family is IncludedStream
            and row.derived_from
            and row.derived_from[0] == self.name
            and self.run.streams[row.name].selected
        ]

    def kept_records(self) -> list[dict[str, Any]]:
        """This run's records, read once (for the streams derived from this one)."""
        if self._kept is None:
            self._kept = list(self.read())
        return self._kept

    def kept_included(self, relationship: str) -> list[Related]:
        """The resources this run's responses included for `relationship`, each with the record it belongs to."""
        self.kept_records()
        return self._included.get(relationship, [])

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if self.keeps_records:
            # Copies, so that nothing done to an emitted record changes what the derived streams read.
            return (dict(record) for record in self.kept_records())
        return self.read()

    @property
    def needed(self) -> bool:
        """Whether this run reads this stream: it is selected, or a selected stream derives from it."""
        derived = [row.name for row in self.run.rows if row.derived_from and row.derived_from[0] == self.name]
        return self.selected or any(self.run.streams[name].selected for name in derived)

    def ready(self) -> list[str]:
        # Read ahead from the start of the run.
        if self.run.fetcher is None or not self.needed:
            return []
        return [range_key(self.name, index) for index in range(len(self.row.sources))]

    def query(self, source: Source) -> dict[str, str]:
        """A source's query: its fixed part, past the bookmark if there is one, with what derived streams include."""
        query = dict(source.query)
        # The streams derived from this one are mirrored whole with the mirror on, whatever this one's catalog says.
        since = None if self.mirror and self.keeps_records else self.bookmark(None)
        if since and self.row.filter_operator and self.replication_key:
            condition = since_condition(self.row.filter_operator, self.replication_key, since)
            query["filter"] = and_filters(query.get("filter"), condition)
        if self.includes:
            query["include"] = ",".join(self.includes)
        return query

    def plan(self, index: int) -> Plan | None:
        """How the window pool reads a source ahead (by cursor: entity pages are not split by time)."""
        if not self.needed:
            return None
        source = self.row.sources[index]
        query = self.query(source)

        def first(window: Window) -> RawPage:
            return self.client.first_page(source.endpoint, query, stream=self.name, decode=skim_cursor)

        def following(url: str) -> RawPage:
            return self.client.get(url, None, source.endpoint, stream=self.name, decode=skim_cursor)

        return Plan(first, following, None, [Window()], datetime.datetime.now(datetime.UTC))

    def documents(self, index: int) -> Iterator[dict[str, Any]]:
        """A source's pages, read ahead by the window pool if there is one."""
        source = self.row.sources[index]
        if self.run.fetcher is None:
            yield from self.client.documents(source.endpoint, self.query(source), stream=self.name)
            return
        for page, _ in self.run.fetcher.pages(range_key(self.name, index)):
            try:
                yield decode_document(page.body)
            except NotAsSpecified as exc:
                raise KlaviyoError(
                    f"Klaviyo sent stream '{self.name}' a page that is not what its API spec describes: {exc}."
                ) from None

    def read(self) -> Iterator[dict[str, Any]]:
        typed = len(self.row.sources) > 1
        for index in range(len(self.row.sources)):
            for document in self.documents(index):
                if self.includes:
                    self.keep_included(document)
                for resource in document["data"]:
                    record = flatten(resource)
                    if typed:
                        record["type"] = resource["type"]
                    yield record

    def keep_included(self, document: dict[str, Any]) -> None:
        included = {(r.get("type"), r.get("id")): r for r in document.get("included") or [] if isinstance(r, dict)}
        for resource in document["data"]:
            for name in self.includes:
                data = ((resource.get("relationships") or {}).get(name) or {}).get("data")
                for ref in data if isinstance(data, list) else [data] if isinstance(data, dict) else []:
                    related = included.get((ref.get("type"), ref.get("id")))
                    if related is None:
                        # JSON:API includes what it lists; a response that does not cannot fill this row.
                        self.logger.warning(
                            "Klaviyo listed %s %s of %s %s for stream '%s' but did not include it: left out.",
                            ref.get("type"),
                            str(ref.get("id"))[:40],
                            resource["type"],
                            resource["id"],
                            self.name,
                        )
                        continue
                    self._included.setdefault(name, []).append(Related(resource["type"], resource["id"], related))


class DerivedStream(KlaviyoStream):
    """A stream read from the records another (entity) stream keeps this run: `part` is what of them it reads."""

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        assert row.derived_from is not None, f"{row.name} names the stream it derives from, and what of it"
        stream, self.part = row.derived_from
        parent = run.streams[stream]
        assert isinstance(parent, EntityStream), f"{row.name} derives from an entity stream"
        self.parent = parent

    def endpoints(self) -> tuple[Endpoint, ...]:
        return self.parent.endpoints()

    def ready(self) -> list[str]:
        return self.parent.ready()


class LinkStream(DerivedStream):
    """One row per (record of another stream, id listed in one of its fields, `part`, dotted): the row's primary
    key names the two columns."""

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        parent_key, listed_key = self.row.primary_keys
        for record in self.parent.kept_records():
            value: Any = record
            for name in self.part.split("."):
                value = value.get(name) if isinstance(value, dict) else None
            for listed in dict.fromkeys(value or []):
                yield {parent_key: record["id"], listed_key: listed}


@dataclass(frozen=True)
class Related:
    """A resource a response included, and the record (its type and id) that lists it."""

    owner_type: str
    owner_id: str
    resource: Resource


class IncludedStream(DerivedStream):
    """One row per resource another stream's requests include for one of its relationships (`part`, asked for
    with `include=`), with the id of the record it belongs to as `<type>_id`."""

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for related in self.parent.kept_included(self.part):
            record = flatten(related.resource)
            record[f"{related.owner_type.replace('-', '_')}_id"] = related.owner_id
            yield record


def range_key(stream: str, index: int) -> str:
    """A source's range in the window pool: after the stream's name, before the names that extend it."""
    return f"{stream}:{index}"


def since_condition(operator: str, field: str, since: datetime.datetime) -> str:
    """The filter condition for records whose `field` is from `since` on, with the row's operator. Some endpoints
    only offer `greater-than`: it starts a second early (filters take whole seconds), so records that share
    `since`'s second are read again rather than lost."""
    if operator == "greater-than":
        since -= datetime.timedelta(seconds=1)
    return f"{operator}({field},{filter_time(since)})"


def and_filters(*conditions: str | None) -> str:
    """Klaviyo filter conditions that must all hold."""
    present = [c for c in conditions if c]
    return present[0] if len(present) == 1 else f"and({','.join(present)})"
