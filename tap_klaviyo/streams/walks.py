"""Walks: one read of a source (an endpoint and the fixed part of its query) per run, shared by every entity stream
that lists it, with the resources its request includes for the streams derived from them.

Klaviyo lists campaigns one channel at a time, and two streams read the email channel (`email_campaigns` and
`campaigns`): both, and every stream derived from them, are served by one walk of it. A walk is filtered past the
oldest start of the streams that need it (none: read whole), asks for what every selected derived stream
includes, and is read once, ahead through the window pool when there is one; each stream then keeps the records
past its own bookmark.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_klaviyo.codec import NotAsSpecified, RawPage, decode_document, skim_cursor
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.ranges import Plan, Window
from tap_klaviyo.records import Resource, related_resources
from tap_klaviyo.times import filter_time

if TYPE_CHECKING:
    from tap_klaviyo.streams.base import Source
    from tap_klaviyo.streams.entities import EntityStream
    from tap_klaviyo.streams.run import Run


@dataclass(frozen=True)
class Item:
    """A resource a walk read, and the resources its response included for it, by relationship."""

    resource: Resource
    related: Mapping[str, list[Resource]]


class Walk:
    """One source's read this run, for the entity streams that list it (its readers, in the table's order)."""

    def __init__(self, key: str, source: Source, run: Run) -> None:
        self.key = key
        self.source = source
        self.run = run
        self.readers: list[EntityStream] = []
        self._items: list[Item] | None = None

    def needed_by(self) -> list[EntityStream]:
        return [reader for reader in self.readers if reader.needed]

    def start(self) -> datetime.datetime | None:
        """Where the walk starts: the oldest start of the streams that need it (None: one reads it whole)."""
        starts = [reader.walk_start() for reader in self.needed_by()]
        return None if not starts or None in starts else min(s for s in starts if s is not None)

    def includes(self) -> list[str]:
        """The relationships whose resources the selected streams derived from its readers read."""
        return list(dict.fromkeys(name for reader in self.needed_by() for name in reader.includes))

    def query(self) -> dict[str, str]:
        query = dict(self.source.query)
        start = self.start()
        row = self.readers[0].row
        if start and row.filter_operator:
            condition = f"{row.filter_operator}({row.replication_key},{filter_time(start)})"
            query["filter"] = and_filters(query.get("filter"), condition)
        if includes := self.includes():
            query["include"] = ",".join(includes)
        return query

    @property
    def stream(self) -> str:
        """The stream named in what the client says about the walk's requests (a missing scope, ...)."""
        needed = self.needed_by()
        return (needed or self.readers)[0].name

    def plan(self) -> Plan | None:
        """How the window pool reads the walk ahead (by cursor: entity pages are not split by time)."""
        if not self.needed_by():
            return None
        endpoint, query, stream, client = self.source.endpoint, self.query(), self.stream, self.run.client

        def first(window: Window) -> RawPage:
            return client.first_page(endpoint, query, stream=stream, decode=skim_cursor)

        def page_at(url: str) -> RawPage:
            return client.get(url, None, endpoint, stream=stream, decode=skim_cursor)

        return Plan(first, page_at, None, [Window()], datetime.datetime.now(datetime.UTC))

    def items(self) -> Iterator[Item]:
        """The walk's resources, read once: kept for the other readers when more than one stream needs them."""
        if self._items is not None:
            yield from self._items
            return
        if len(self.needed_by()) > 1:
            self._items = list(self._read())
            yield from self._items
            return
        yield from self._read()

    def _read(self) -> Iterator[Item]:
        includes = self.includes()
        logger = self.readers[0].logger
        for document in self._documents():
            included = {(r.get("type"), r.get("id")): r for r in document.get("included") or [] if isinstance(r, dict)}
            for resource in document["data"]:
                related = {}
                for name in includes:
                    related[name], missing = related_resources(resource, name, included)
                    for ref in missing:
                        # JSON:API includes what it lists; a response that does not cannot fill this row.
                        logger.warning(
                            "Klaviyo listed %s %s of %s %s for stream '%s' but did not include it: left out.",
                            ref.get("type"),
                            str(ref.get("id"))[:40],
                            resource["type"],
                            resource["id"],
                            self.stream,
                        )
                yield Item(resource, related)

    def _documents(self) -> Iterator[dict[str, Any]]:
        endpoint = self.source.endpoint
        if self.run.window_pool is None:
            yield from self.run.client.documents(endpoint, self.query(), stream=self.stream)
            return
        for page, _ in self.run.window_pool.pages(self.key):
            try:
                yield decode_document(page.body)
            except NotAsSpecified as exc:
                raise KlaviyoError(
                    f"Klaviyo sent stream '{self.stream}' a page that is not what its API spec describes: {exc}."
                ) from None


def walk_key(source: Source) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What makes two streams' sources one walk: the same endpoint, asked the same (their columns may differ)."""
    return source.endpoint.path, tuple(sorted(source.query.items()))


def first_moment(operator: str | None, bookmark: datetime.datetime) -> datetime.datetime:
    """Where a read past `bookmark` starts. Some endpoints only offer `greater-than`: it starts a second early
    (filters take whole seconds), so records that share the bookmark's second are read again rather than lost."""
    return bookmark - datetime.timedelta(seconds=1) if operator == "greater-than" else bookmark


def since_condition(operator: str, field: str, bookmark: datetime.datetime) -> str:
    """The filter condition for records whose `field` is from `bookmark` on, with the row's operator."""
    return f"{operator}({field},{filter_time(first_moment(operator, bookmark))})"


def and_filters(*conditions: str | None) -> str:
    """Klaviyo filter conditions that must all hold."""
    present = [c for c in conditions if c]
    return present[0] if len(present) == 1 else f"and({','.join(present)})"
