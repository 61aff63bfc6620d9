"""Streams of Klaviyo's entities: read from their list endpoints, in full or past the bookmark, and streams
derived from a field of another stream's records, which cost no requests of their own."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.records import flatten
from tap_klaviyo.streams.base import KlaviyoStream, StreamRow
from tap_klaviyo.times import filter_time

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams import Run


class EntityStream(KlaviyoStream):
    """One or more list endpoints read in full, or past the bookmark with the row's filter operator. Records of a
    stream read from several endpoints carry their resource `type`. A stream others derive from is read once
    per run and its records kept for them."""

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        self.keeps_records = run.is_derived_from(row.name)
        self._kept: list[dict[str, Any]] | None = None

    def kept_records(self) -> list[dict[str, Any]]:
        """This run's records, read once (for the streams derived from this one)."""
        if self._kept is None:
            self._kept = list(self.read())
        return self._kept

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if self.keeps_records:
            # Copies, so that nothing done to an emitted record changes what the derived streams read.
            return (dict(record) for record in self.kept_records())
        return self.read()

    def read(self) -> Iterator[dict[str, Any]]:
        since = self.bookmark(None)
        if since and self.row.filter_operator == "greater-than":
            # Some endpoints only offer greater-than: step back a second so records that share the bookmark's
            # timestamp are read again rather than lost.
            since -= datetime.timedelta(seconds=1)
        typed = len(self.row.sources) > 1
        for source in self.row.sources:
            query = dict(source.query)
            if since and self.row.filter_operator:
                query["filter"] = and_filters(
                    query.get("filter"), f"{self.row.filter_operator}({self.replication_key},{filter_time(since)})"
                )
            for resource in self.fetch(source.endpoint, query):
                record = flatten(resource)
                if typed:
                    record["type"] = resource["type"]
                yield record


class LinkStream(KlaviyoStream):
    """One row per (record of another stream, id listed in one of its fields): the row's primary key names the
    two columns."""

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        assert row.derived_from is not None, f"{row.name} names the stream and field it derives from"
        stream, self.path = row.derived_from
        parent = run.streams[stream]
        assert isinstance(parent, EntityStream), f"{row.name} derives from an entity stream"
        self.parent = parent

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        parent_key, listed_key = self.primary_keys
        for record in self.parent.kept_records():
            value: Any = record
            for part in self.path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            for listed in dict.fromkeys(value or []):
                yield {parent_key: record["id"], listed_key: listed}


def and_filters(*conditions: str | None) -> str:
    """Klaviyo filter conditions that must all hold."""
    present = [c for c in conditions if c]
    return present[0] if len(present) == 1 else f"and({','.join(present)})"
