"""Streams read by time windows over their replication key, through the run's shared window pool: events,
profiles, and the members of lists and segments. Their pages come back in time order, so they are sorted and a
killed run resumes from its last STATE."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.codec import NotAsSpecified, RawPage, decode_document, document_rows, skimmer
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.progress import Progress
from tap_klaviyo.ranges import Plan, Window
from tap_klaviyo.streams.base import KlaviyoStream, Source, StreamRow
from tap_klaviyo.streams.walks import and_filters, since_condition
from tap_klaviyo.times import filter_time

# A range's newest records asked for beside its first page: how dense the range is at its end.
NEWEST_RECORDS = 100

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams.run import Run


class WindowedStream(KlaviyoStream):
    """Records of one source (or one per partition), sorted by the replication key, read in [start, end) windows
    of it: the row's filter operator on a window's start (`since_condition`), `less-than` on its end."""

    # Save progress every few pages, so a killed run re-reads little.
    STATE_MSG_FREQUENCY = 1000
    # Too big to read whole every run unless the catalog asks for it (FULL_TABLE), which mirrors them too.
    READ_WHOLE_TO_MIRROR = False

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        assert row.filter_operator and row.replication_key and row.sources, f"{row.name} is read by time windows"
        self.time_field = row.replication_key
        self.filter_operator = row.filter_operator
        self.skim = skimmer(row.replication_key)
        # Shared by the windowed streams, in the order they are synced (None: one page at a time).
        self.window_pool = run.window_pool

    @property
    def is_sorted(self) -> bool:
        return True

    def progress(self, context: Context | None) -> Progress:
        start, end = self.time_range(context)
        return Progress(self.logger, self.name, self.client, time_field=self.time_field, start=start, end=end)

    def time_range(self, context: Context | None) -> tuple[datetime.datetime | None, datetime.datetime | None]:
        """[start, end) of this run: from the bookmark, if any."""
        return self.bookmark(context), None

    def conditions(self, context: Context | None) -> list[str]:
        """Filter conditions every request of this stream carries besides the time bounds."""
        return []

    def included(self, context: Context | None) -> dict[str, str]:
        """What the requests for a context's records ask for beside them (`include=`)."""
        return {}

    def source(self, context: Context | None) -> tuple[Source, str | None]:
        """The source a context reads, and its path with the context's ids filled in (None: the endpoint's own)."""
        return self.row.sources[0], None

    def plan(self, context: Context | None = None) -> Plan | None:
        """How to read the records of a context (None: there are none to read): one window, [start, end) of the
        run, filtered on the server by time."""
        source, path = self.source(context)

        def query(window: Window, *, records: bool = True) -> dict[str, str]:
            conditions = self.conditions(context)
            if window.start:
                conditions.append(since_condition(self.filter_operator, self.time_field, window.start))
            if window.end:
                conditions.append(f"less-than({self.time_field},{filter_time(window.end)})")
            return {
                **source.query,
                **(self.included(context) if records else {}),
                "sort": self.time_field,
                **({"filter": and_filters(*conditions)} if conditions else {}),
            }

        def first(window: Window) -> RawPage:
            return self.first_page(source, query(window), path)

        def page_at(url: str) -> RawPage:
            return self.client.get(url, None, source.endpoint, stream=self.name, decode=self.skim)

        def newest(window: Window) -> RawPage:
            size = min(NEWEST_RECORDS, *source.endpoint.page_sizes)
            newest_first = {**query(window, records=False), "sort": f"-{self.time_field}"}
            return self.first_page(source, newest_first, path, page_size=size, decode=skimmer(self.time_field))

        start, end = self.time_range(context)
        return Plan(first, page_at, newest, [Window(start, end)], self._cap, self.client.pacer(source.endpoint))

    def first_page(self, source: Source, query: dict[str, str], path: str | None, **kwargs: Any) -> RawPage:
        """The first page of a window's query (in a worker thread), decoded by the stream's `skim` unless `decode`
        says otherwise."""
        kwargs.setdefault("decode", self.skim)
        page: RawPage = self.client.first_page(source.endpoint, query, stream=self.name, path=path, **kwargs)
        return page

    def window_key(self, context: Context | None) -> str:
        """The name of a context's range in the window pool."""
        return self.name

    def windowed_pages(self, context: Context | None) -> Iterator[tuple[RawPage, datetime.datetime | None]]:
        """A context's pages, oldest first, each with the time its records must be before to be emitted (None:
        all of them)."""
        if self.window_pool is not None:
            yield from self.window_pool.pages(self.window_key(context))
            return
        plan = self.plan(context)
        if plan is None:
            return
        page: RawPage | None = plan.first_page(plan.windows[0])
        while page:
            yield page, None
            page = plan.page_at(page.next_url) if page.next_url else None

    def rows(self, body: bytes, before: datetime.datetime | None) -> list[dict[str, Any]]:
        """A page's records as dicts, those dated before `before` if it is given."""
        return document_rows(self.document(body), self.time_field, before)

    def document(self, body: bytes) -> dict[str, Any]:
        """A page as the JSON:API document it must be."""
        try:
            return decode_document(body)
        except NotAsSpecified as exc:
            raise KlaviyoError(
                f"Klaviyo sent stream '{self.name}' a page that is not what its API spec describes: {exc}."
            ) from None

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for page, before in self.windowed_pages(context):
            yield from self.rows(page.body, before)
