"""Event streams: the events of one Klaviyo metric, found by name, filtered on the server, read oldest first
through the run's shared window pool, and written a page at a time, each page after its events' attributions
when those are selected (`attributions.py`)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.codec import RawPage, document_rows, skimmer
from tap_klaviyo.endpoints import METRICS, Endpoint
from tap_klaviyo.event_pages import (
    AttributionRecord,
    attributed_event_page,
    emitted_attributions,
    emitted_events,
    event_page,
)
from tap_klaviyo.ranges import Plan
from tap_klaviyo.records import Resource, flatten, related_resources
from tap_klaviyo.sdk import PageSyncStream
from tap_klaviyo.streams.attributions import AttributionsStream
from tap_klaviyo.streams.base import StreamRow
from tap_klaviyo.streams.windowed import WindowedStream
from tap_klaviyo.times import parse_datetime, parse_or_none

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams.run import Run

# Where a stream's state keeps the id of the metric its bookmark was read from.
METRIC_ID = "metric_id"


class EventStream(PageSyncStream, WindowedStream):
    """The events of the row's metric, `start <= datetime < end` of the run, oldest first."""

    # Records are typed while decoding (or checked in post_process): the SDK's conformance pass would only add to
    # the time per record (see benchmarks/README.md).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        assert row.metric, f"{row.name} names its metric"
        self.directory = run.directory
        if self.window_pool is not None:
            self.window_pool.add(self.name, self.plan)
        # The bookmark this run started from, and the records strictly after it: `fail_on_no_new_data` reads them.
        self.started_from: datetime.datetime | None = None
        self.new_records = 0

    def time_range(self, context: Context | None) -> tuple[datetime.datetime | None, datetime.datetime | None]:
        """[start, end) of this run: from the bookmark (less the lookback) or `start_date`, to `end_date`."""
        starts = []
        bookmark = self.bookmark(context)
        if bookmark:
            starts.append(bookmark - datetime.timedelta(minutes=self.config.get("lookback_minutes") or 0))
        if self.config.get("start_date"):
            starts.append(parse_datetime(self.config["start_date"]))
        end = self.config.get("end_date")
        return (max(starts) if starts else None), (parse_datetime(end) if end else None)

    @cached_property
    def metric(self) -> Resource | None:
        """The metric this stream reads (None: the account has none of that name), found and logged once a run."""
        metrics = self.directory.find(self.row.metric or "", self.name, self.row.integration)
        of = f" of integration '{self.row.integration}'" if self.row.integration else ""
        if not metrics:
            self.logger.warning(
                "The account has no metric named '%s'%s: stream '%s' is empty.", self.row.metric, of, self.name
            )
            return None
        integration = metrics[0]["attributes"].get("integration") or {}
        self.logger.info(
            "Stream '%s' reads metric %s ('%s', integration %s)%s.",
            self.name,
            metrics[0]["id"],
            metrics[0]["attributes"].get("name"),
            integration.get("name"),
            f"; {len(metrics)} metrics have that name" if len(metrics) > 1 else "",
        )
        return metrics[0]

    def endpoints(self) -> tuple[Endpoint, ...]:
        return (METRICS, *super().endpoints())

    def lookups(self) -> dict[Endpoint, Callable[[], object]]:
        return {METRICS: lambda: self.directory.all(self.name)}

    def ready(self) -> list[str]:
        self.tie_bookmark_to_metric()
        return [self.name] if self.window_pool is not None else []

    def tie_bookmark_to_metric(self) -> None:
        """Keep the metric's id beside the bookmark; a bookmark left by another metric (a name that now finds a
        new integration's metric, or one re-created) is not applied to this one."""
        if self.metric is None:
            return
        state = self.get_context_state(None)
        previous = state.get(METRIC_ID)
        if previous and previous != self.metric["id"] and state.get("replication_key_value"):
            self.logger.warning(
                "Stream '%s' now reads metric %s, not %s as when its bookmark (%s) was saved: the bookmark is not "
                "applied, and the stream is read from `start_date`.",
                self.name,
                self.metric["id"],
                previous,
                state["replication_key_value"],
            )
            for key in ("replication_key", "replication_key_value"):
                state.pop(key, None)
        state[METRIC_ID] = self.metric["id"]

    def conditions(self, context: Context | None) -> list[str]:
        assert self.metric is not None
        return [f"equals(metric_id,'{self.metric['id']}')"]

    @cached_property
    def attributions(self) -> AttributionsStream | None:
        """The attributions stream, if selected: then every page of events asks for their attributions."""
        found = [s for s in self.run.streams.values() if isinstance(s, AttributionsStream) and s.selected]
        return found[0] if found else None

    def included(self, context: Context | None) -> dict[str, str]:
        return {"include": self.attributions.include} if self.attributions else {}

    def plan(self, context: Context | None = None) -> Plan | None:
        # Selection first: a deselected stream must not look its metric up.
        if not self.selected or self.metric is None:
            return None
        # Pages written a page at a time are decoded whole, once, by the worker that reads them; the SDK's record
        # path decodes their bytes into dicts instead.
        if not self.writes_pages():
            self.skim = skimmer(self.time_field)
        else:
            self.skim = attributed_event_page if self.attributions else event_page
        return super().plan(context)

    def pages(self, context: Context | None) -> Iterator[tuple[RawPage, datetime.datetime | None]]:
        """The metric's pages of events (none if the account lacks the metric)."""
        if self.metric is None:
            return
        self.started_from = self.bookmark(context)
        yield from self.windowed_pages(context)

    def found_nothing_new(self) -> bool:
        return self.started_from is not None and self.new_records == 0

    def count_new(self, datetimes: Sequence[str | None]) -> None:
        """Count the records strictly after the bookmark this run started from (`fail_on_no_new_data`)."""
        bookmark = self.started_from
        if bookmark is None or (datetimes and datetimes[0] and parse_datetime(datetimes[0]) > bookmark):
            self.new_records += len(datetimes)
        else:
            self.new_records += sum(1 for value in datetimes if value and parse_datetime(value) > bookmark)

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        # Dicts, for the SDK's record-by-record path.
        for page, before in self.pages(context):
            rows, attributions = self.page_dicts(page.body, before)
            self.write_attributions(attributions)
            self.count_new([_datetime_of(row) for row in rows])
            yield from rows

    def page_dicts(
        self, body: bytes, before: datetime.datetime | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A page's records as dicts (those dated before `before` if it is given), and the attributions included
        for them, with the id of their event."""
        document = self.document(body)
        rows = document_rows(document, self.time_field, before)
        if self.attributions is None:
            return rows, []
        emitted = {row["id"] for row in rows}
        included = {(r.get("type"), r.get("id")): r for r in document.get("included") or [] if isinstance(r, dict)}
        attributions = []
        for resource in document["data"]:
            if resource.get("id") in emitted:
                found, _ = related_resources(resource, "attributions", included)
                attributions += [{**flatten(attribution), "event_id": resource["id"]} for attribution in found]
        return rows, attributions

    def write_attributions(self, attributions: Sequence[AttributionRecord | dict[str, Any]]) -> None:
        """Write a page's attributions before its events, so the STATE after them covers both."""
        if self.attributions is not None:
            self.attributions.write(attributions)

    def writes_pages(self) -> bool:
        return self.takes_whole_pages()

    def record_pages(self) -> Iterator[tuple[Sequence[Any], Sequence[Any]]]:
        progress = self.progress(None)
        for page, before in self.pages(None):
            records, datetimes, attributions = self.page_records(page, before)
            self.write_attributions(attributions)
            if records:
                self.count_new(datetimes)
                progress.add(len(records), next((d for d in reversed(datetimes) if d), None))
                yield records, datetimes
        progress.done()

    def page_records(
        self, page: RawPage, before: datetime.datetime | None
    ) -> tuple[list[Any], list[Any], Sequence[AttributionRecord | dict[str, Any]]]:
        """A page's records, typed as the schema says, their datetimes, and their attributions. A page that breaks
        the schema is checked record by record, as the SDK's path would (warn once, or stop with
        `validate_records`)."""
        if page.records is not None:
            records = emitted_events(page.records, before, self.account_id)
            typed = emitted_attributions(page.attributions or [], records, before)
            return records, [record.datetime for record in records], typed
        rows, attributions = self.page_dicts(page.body, before)
        rows = [self.post_process(row) for row in rows]
        return rows, [_datetime_of(row) for row in rows], attributions


def _datetime_of(row: dict[str, Any]) -> str | None:
    """A row's `datetime` if it is one (an odd value is for the schema check to report, not for the bookmark)."""
    value = row.get("datetime")
    return value if parse_or_none(value) else None
