"""Streams of Klaviyo's entities, read from their list endpoints through the run's walks (`walks.py`), in full or
past the bookmark, and kept for the streams derived from them (`derived.py`)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.records import Resource, flatten
from tap_klaviyo.streams.base import KlaviyoStream, StreamRow
from tap_klaviyo.streams.walks import first_moment
from tap_klaviyo.times import parse_or_none

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams.run import Run


@dataclass(frozen=True)
class Kept:
    """A record of an entity stream, the resources its response included for it (by relationship), and whether it
    is past the stream's bookmark (what the stream emits; derived streams read whole see the others too)."""

    record: dict[str, Any]
    related: Mapping[str, list[Resource]]
    new: bool
    type: str


class EntityStream(KlaviyoStream):
    """The records of one or more walks, in full or past the bookmark (the row's filter operator, on the server
    when the walk can be filtered so, and on each record). Records of a stream read from several endpoints carry
    their resource `type`, and every record its source's columns. A stream others derive from keeps its records
    for them this run."""

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        self._kept: list[Kept] | None = None
        self.walks = [run.walk(source, self, index) for index, source in enumerate(row.sources)]

    @cached_property
    def derived(self) -> list[DerivedStream]:
        """The selected streams derived from this one."""
        streams = [self.run.streams[row.name] for row in self.run.rows if row.derived_from]
        return [s for s in streams if isinstance(s, DerivedStream) and s.parent is self and s.selected]

    @cached_property
    def includes(self) -> list[str]:
        """The relationships whose resources the selected derived streams read from this stream's responses."""
        return [stream.part for stream in self.derived if stream.READS_INCLUDED]

    @property
    def keeps_records(self) -> bool:
        """Whether this run keeps the records it reads, for the selected streams derived from it."""
        return bool(self.derived)

    @property
    def needed(self) -> bool:
        """Whether this run reads this stream: it is selected, or a selected stream derives from it."""
        return self.selected or bool(self.derived)

    def start(self) -> datetime.datetime | None:
        """Where this stream's records start: its bookmark (a second early where the endpoint only offers
        greater-than, so records that share the bookmark's timestamp are read again rather than lost); None, all."""
        # The streams derived from this one are mirrored whole with the mirror on, whatever this one's catalog says.
        since = None if self.mirror and self.keeps_records else self.bookmark(None)
        return first_moment(self.row.filter_operator, since) if since else None

    def walk_start(self) -> datetime.datetime | None:
        """Where this stream needs its walks to start: a derived stream read whole needs them whole."""
        return None if any(stream.row.whole for stream in self.derived) else self.start()

    def ready(self) -> list[str]:
        # Read ahead from the start of the run.
        if self.run.window_pool is None or not self.needed:
            return []
        return [walk.key for walk in self.walks]

    def kept_records(self) -> list[Kept]:
        """This run's records, read once (for the streams derived from this one)."""
        if self._kept is None:
            self._kept = list(self.read())
        return self._kept

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if self.keeps_records:
            # Copies, so that nothing done to an emitted record changes what the derived streams read.
            return (dict(kept.record) for kept in self.kept_records() if kept.new)
        return (kept.record for kept in self.read() if kept.new)

    def read(self) -> Iterator[Kept]:
        typed = len({source.endpoint.path for source in self.row.sources}) > 1
        start = self.start()
        for walk, source in zip(self.walks, self.row.sources, strict=True):
            for item in walk.items():
                record = flatten(item.resource)
                if typed:
                    record["type"] = item.resource["type"]
                record.update(source.columns)
                yield Kept(record, item.related, self._is_new(record, start), item.resource["type"])

    def _is_new(self, record: dict[str, Any], start: datetime.datetime | None) -> bool:
        if start is None or not self.replication_key:
            return True
        moment = parse_or_none(record.get(self.replication_key))
        if moment is None:
            return True  # not a date-time: for the schema check to report, not to drop
        return moment > start if self.row.filter_operator == "greater-than" else moment >= start


class DerivedStream(KlaviyoStream):
    """A stream read from the records another (entity) stream keeps this run, `part` of each (a field, or a
    relationship its requests include when `READS_INCLUDED`): those past the parent's bookmark, or all of them
    when the row is read whole. It costs no requests of its own."""

    READS_INCLUDED = False

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

    def parent_records(self) -> Iterator[Kept]:
        return (kept for kept in self.parent.kept_records() if kept.new or self.row.whole)

    def carried(self, kept: Kept) -> dict[str, Any]:
        """The columns of the parent's record each row carries."""
        return {name: kept.record.get(name) for name in self.row.carries}
