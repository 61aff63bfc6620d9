"""The tap's streams: what each one fetches from Klaviyo and how its records look.

Every stream is one row of `build_streams` at the bottom: its name, source, key and replication key.
Records are flat: `id`, the JSON:API attributes at the top level, each to-one relationship as `<name>_id`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_klaviyo import endpoints
from tap_klaviyo.client import KlaviyoClient, KlaviyoError, decode_document
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.output import RecordBufferingWriter, encode_records
from tap_klaviyo.progress import Progress
from tap_klaviyo.records import (
    NotInSchema,
    Resource,
    compile_schema,
    dated_before,
    decode_events_raw,
    event_records,
    flatten,
    parse_datetime,
)
from tap_klaviyo.windows import Plan, RawPage, Window, WindowedFetch, skim

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

SCHEMAS = Path(__file__).parent / "schemas"

# (stream name, Klaviyo metric name): one EmailEventStream each. A new event stream is one more line.
EMAIL_EVENTS = (
    ("bounced_email", "Bounced Email"),
    ("clicked_email", "Clicked Email"),
    ("opened_email", "Opened Email"),
    ("received_email", "Received Email"),
    ("dropped_email", "Dropped Email"),
    ("marked_email_as_spam", "Marked Email as Spam"),
)
KLAVIYO_INTEGRATION = "klaviyo"
# Event requests in flight: at 250 ms per request, 16 reach /api/events' steady limit.
DEFAULT_CONCURRENCY = 16


def filter_time(value: datetime.datetime) -> str:
    """A datetime as Klaviyo's filters want it: ISO 8601, unquoted, UTC as `Z` (no `+` to mis-encode), in whole
    seconds, as Klaviyo stamps events (every bound is floored alike, so adjacent windows still meet)."""
    return value.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class KlaviyoStream(Stream):
    """A stream whose records come from Klaviyo through the run's shared client."""

    def __init__(
        self,
        tap: Tap,
        client: KlaviyoClient,
        *,
        name: str,
        schema: str,
        primary_keys: tuple[str, ...] = ("id",),
        replication_key: str | None = None,
    ) -> None:
        super().__init__(tap, schema=json.loads((SCHEMAS / f"{schema}.json").read_text(encoding="utf-8")), name=name)
        self.client = client
        self.primary_keys = primary_keys
        self.replication_key = replication_key
        self._check = compile_schema(self.schema)
        self._known = frozenset(self.schema["properties"])
        self._warned_invalid = False
        self._warned_unknown = False

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        if not row.keys() <= self._known:
            # An attribute a newer Klaviyo revision added: not in the schema the target was given.
            unknown = sorted(row.keys() - self._known)
            if not self._warned_unknown:
                self._warned_unknown = True
                self.logger.warning("Stream '%s' drops fields its schema lacks: %s", self.name, ", ".join(unknown))
            for name in unknown:
                del row[name]
        problem = self._check(row)
        if problem:
            key = ", ".join(str(row.get(k)) for k in self.primary_keys)
            if self.config.get("validate_records"):
                raise KlaviyoError(
                    f"Record {key} of stream '{self.name}' does not match its schema: {problem} "
                    "(validate_records is on: the run stopped)."
                )
            if not self._warned_invalid:
                self._warned_invalid = True
                self.logger.warning(
                    "Record %s of stream '%s' does not match its schema: %s; passed on as it is "
                    "(further ones in this stream are not logged; set validate_records to stop instead).",
                    key,
                    self.name,
                    problem,
                )
        return row

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        raise NotImplementedError

    def progress(self, context: Context | None) -> Progress:
        return Progress(self.logger, self.name, self.client)

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        progress = self.progress(context)
        for record in self.records(context):
            progress.record(record)
            yield record
        progress.done()

    def bookmark(self, context: Context | None) -> datetime.datetime | None:
        """Where the last run's state says this stream got to; None for a full import."""
        if not self.replication_key or self.replication_method != "INCREMENTAL":
            return None
        state = self.get_context_state(context)
        value = state.get("replication_key_value")
        if not value or state.get("replication_key") != self.replication_key:
            return None
        return parse_datetime(value)

    @cached_property
    def _cap(self) -> tuple[datetime.datetime, str]:
        """The sync's start (no bookmark may pass it), and as Klaviyo writes times, to the second."""
        start = self.get_replication_key_signpost(None)
        assert isinstance(start, datetime.datetime), "replication keys here are date-times"
        return start, start.replace(microsecond=0).isoformat()

    def _increment_stream_state(self, latest_record: dict[str, Any], *, context: Context | None = None) -> None:
        # The SDK lets a sorted stream's bookmark run past the sync's start when Klaviyo returns records
        # stamped in the future; the next run would then skip everything until that date. Cap it.
        value = latest_record.get(self.replication_key) if self.replication_key else None
        if value:
            cap, cap_text = self._cap
            # Klaviyo's own form compares as text; anything else is parsed.
            plain = len(value) == len(cap_text) and value.endswith("+00:00")
            if (value > cap_text) if plain else (parse_datetime(value) > cap):
                latest_record = {**latest_record, self.replication_key: cap.isoformat()}
        super()._increment_stream_state(latest_record, context=context)

    def fetch(self, endpoint: Endpoint, params: Mapping[str, str]) -> Iterator[Resource]:
        for page in self.client.pages(endpoint, params, stream=self.name):
            yield from page


class EntityStream(KlaviyoStream):
    """One or more list endpoints read in full, or past the bookmark with `filter_operator`."""

    def __init__(
        self,
        tap: Tap,
        client: KlaviyoClient,
        *,
        sources: tuple[tuple[Endpoint, Mapping[str, str]], ...],
        filter_operator: str | None = None,
        keep_type: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(tap, client, **kwargs)
        self.sources = sources
        self.filter_operator = filter_operator
        self.keep_type = keep_type

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        since = self.bookmark(context)
        if since and self.filter_operator == "greater-than":
            # Lists and segments only offer greater-than: step back a second so records that share the
            # bookmark's timestamp are read again rather than lost.
            since -= datetime.timedelta(seconds=1)
        for endpoint, params in self.sources:
            query = dict(params)
            if since and self.filter_operator:
                query["filter"] = _and(
                    query.get("filter"),
                    f"{self.filter_operator}({self.replication_key},{filter_time(since)})",
                )
            for resource in self.fetch(endpoint, query):
                record = flatten(resource)
                if self.keep_type:
                    record["type"] = resource["type"]
                yield record


class EmailCampaignsStream(EntityStream):
    """Email campaigns, fetched once per run: the two campaign-vs-lists streams read the same records."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetched: list[dict[str, Any]] | None = None

    def campaigns(self) -> list[dict[str, Any]]:
        if self._fetched is None:
            self._fetched = list(super().records(None))
        return self._fetched

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        # Copies, so that nothing done to an emitted record changes what the audience streams read.
        return (dict(campaign) for campaign in self.campaigns())


class CampaignAudienceStream(KlaviyoStream):
    """One row per (email campaign, list or segment) on one side of its audience. No requests of its own."""

    def __init__(
        self, tap: Tap, client: KlaviyoClient, *, campaigns: EmailCampaignsStream, side: str, name: str
    ) -> None:
        super().__init__(tap, client, name=name, schema="campaign_audiences", primary_keys=("campaign_id", "list_id"))
        self.campaigns = campaigns
        self.side = side

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for campaign in self.campaigns.campaigns():
            audiences = campaign.get("audiences") or {}
            for list_id in dict.fromkeys(audiences.get(self.side) or []):
                yield {"campaign_id": campaign["id"], "list_id": list_id}


class MetricDirectory:
    """The account's metrics, fetched once per run for the metrics stream and the event streams alike."""

    def __init__(self, client: KlaviyoClient) -> None:
        self.client = client
        self._metrics: list[Resource] | None = None

    def all(self, stream: str) -> list[Resource]:
        if self._metrics is None:
            self._metrics = [
                resource for page in self.client.pages(endpoints.METRICS, {}, stream=stream) for resource in page
            ]
        return self._metrics

    def find(self, name: str, stream: str) -> list[Resource]:
        """Metrics of that name (any case), Klaviyo's own first, then oldest first."""
        wanted = name.casefold()
        matches = [m for m in self.all(stream) if str(m["attributes"].get("name") or "").casefold() == wanted]
        return sorted(matches, key=lambda m: (not _is_klaviyo_metric(m), m["attributes"].get("created") or "", m["id"]))


def _is_klaviyo_metric(metric: Resource) -> bool:
    integration = metric["attributes"].get("integration") or {}
    return KLAVIYO_INTEGRATION in (str(integration.get("key", "")).lower(), str(integration.get("name", "")).lower())


class MetricsStream(KlaviyoStream):
    def __init__(self, tap: Tap, client: KlaviyoClient, *, directory: MetricDirectory, **kwargs: Any) -> None:
        super().__init__(tap, client, **kwargs)
        self.directory = directory

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for metric in self.directory.all(self.name):
            yield flatten(metric)


class EmailEventStream(KlaviyoStream):
    """The events of one Klaviyo metric, filtered on the server, oldest first."""

    # Records are JSON as Klaviyo sent it, with unknown fields dropped and types checked in post_process:
    # the SDK's conformance pass would only cost a third of the time per record again.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    # Save progress at least once a page, so a killed run re-reads at most about a page.
    STATE_MSG_FREQUENCY = 1000

    def __init__(
        self,
        tap: Tap,
        client: KlaviyoClient,
        *,
        metric_name: str,
        directory: MetricDirectory,
        fetcher: WindowedFetch | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(tap, client, schema="email_events", replication_key="datetime", **kwargs)
        self.metric_name = metric_name
        self.directory = directory
        # Shared by the event streams, in the order they are synced (None: one page at a time).
        self.fetcher = fetcher
        if fetcher is not None:
            fetcher.add(self.name, self.plan)
        # The bookmark this run started from, and the records strictly after it: `fail_on_no_new_data` reads them.
        self.started_from: datetime.datetime | None = None
        self.new_records = 0
        self._unsaved: dict[str, Any] | None = None
        self._since_saved = 0

    def _increment_stream_state(self, latest_record: dict[str, Any], *, context: Context | None = None) -> None:
        # The SDK moves the bookmark on every record but saves it only every STATE_MSG_FREQUENCY records and
        # when the stream ends: move it just then (here, and at the end of `records`), not a thousand times.
        self._since_saved += 1
        self._unsaved = latest_record
        if self._since_saved % self.STATE_MSG_FREQUENCY == 0:
            self._save_bookmark(context)

    def _save_bookmark(self, context: Context | None) -> None:
        if self._unsaved is not None:
            super()._increment_stream_state(self._unsaved, context=context)
            self._unsaved = None

    @property
    def is_sorted(self) -> bool:
        return True

    def progress(self, context: Context | None) -> Progress:
        start, end = self.time_range(context)
        return Progress(self.logger, self.name, self.client, time_field="datetime", start=start, end=end)

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

    def pages(self, context: Context | None) -> Iterator[tuple[RawPage, datetime.datetime | None]]:
        """The metric's pages of events with start <= datetime < end, oldest first, each with the time its
        events must be before to be emitted (None: all of them)."""
        metrics = self.directory.find(self.metric_name, self.name)
        if not metrics:
            self.logger.warning(
                "The account has no metric named '%s': stream '%s' is empty.", self.metric_name, self.name
            )
            return
        if len(metrics) > 1:
            self.logger.info(
                "%d metrics are named '%s'; using %s (integration %s).",
                len(metrics),
                self.metric_name,
                metrics[0]["id"],
                (metrics[0]["attributes"].get("integration") or {}).get("name"),
            )
        self.started_from = self.bookmark(context)
        if self.fetcher is None:
            plan = self.plan()
            assert plan is not None
            page: RawPage | None = plan.first(plan.windows[0])
            while page:
                yield page, None
                page = plan.following(page.next_url) if page.next_url else None
        else:
            yield from self.fetcher.pages(self.name)

    def plan(self) -> Plan | None:
        """How to read this stream's events (None: it has none to read): one window, [start, end) of the run,
        filtered on the server by metric and time, oldest first."""
        metrics = self.directory.find(self.metric_name, self.name)
        if not metrics or not self.selected:
            return None
        metric_id = metrics[0]["id"]

        def query(window: Window) -> dict[str, str]:
            conditions = [f"equals(metric_id,'{metric_id}')"]
            if window.start:
                # greater-or-equal: events sharing the bookmark's second are read again, never lost.
                conditions.append(f"greater-or-equal(datetime,{filter_time(window.start)})")
            if window.end:
                conditions.append(f"less-than(datetime,{filter_time(window.end)})")
            return {"filter": _and(*conditions), "sort": "datetime"}

        def first(window: Window) -> RawPage:
            return self.client.first_page(endpoints.EVENTS, query(window), stream=self.name, decode=skim)

        def following(url: str) -> RawPage:
            return self.client.get(url, None, endpoints.EVENTS, stream=self.name, decode=skim)

        def newest(window: Window) -> str | None:
            query_newest = {**query(window), "sort": "-datetime"}
            page = self.client.first_page(endpoints.EVENTS, query_newest, stream=self.name, decode=skim, page_size=1)
            return page.first

        start, end = self.time_range(None)
        return Plan(first, following, newest, [Window(start, end)], self.get_replication_key_signpost(None))

    def count_new(self, datetimes: list[str | None]) -> None:
        """Count the records strictly after the bookmark this run started from (`fail_on_no_new_data`)."""
        bookmark = self.started_from
        if bookmark is None or (datetimes and datetimes[0] and parse_datetime(datetimes[0]) > bookmark):
            self.new_records += len(datetimes)
        else:
            self.new_records += sum(1 for value in datetimes if value and parse_datetime(value) > bookmark)

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        # Dicts for the SDK's record by record path, which stream maps, flattening and batch files need.
        decode = self.decoder()
        for page, before in self.pages(context):
            records = dated_before(decode(page.body), before)
            self.count_new([r["datetime"] for r in records])
            yield from records
        self._save_bookmark(context)

    def decoder(self) -> Callable[[bytes], list[dict[str, Any]]]:
        """How a page of events becomes records: raw `event_properties` unless something rewrites records."""
        if self.rewrites_records():
            return lambda body: [flatten(resource) for resource in decode_document(body)["data"]]
        return decode_events_raw

    def rewrites_records(self) -> bool:
        return any(self.config.get(s) for s in ("stream_maps", "flattening_enabled", "batch_config"))

    def writes_pages(self) -> bool:
        """Whether records can be written a page at a time: the SDK's record by record path is only needed
        for stream maps, flattening, batch files, deselected properties and `--test`'s record limit."""
        return (
            not self.rewrites_records()
            and self.ABORT_AT_RECORD_COUNT is None
            and all(self.mask[("properties", name)] for name in self.schema["properties"])
            and isinstance(self._tap.message_writer, RecordBufferingWriter)
        )

    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> Iterator[dict[str, Any] | None]:
        # The SDK's loop, a page at a time: records are typed by the schema as they are decoded, so a page is
        # encoded as RECORD messages in one go and the bookmark moves once a page. It keeps what the SDK's
        # loop guarantees: record counts and timers, STATE every STATE_MSG_FREQUENCY records and at the end,
        # a bookmark capped at the sync's start, records in datetime order.
        if context is not None or not write_messages or not self.writes_pages():
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        counter, timer = self.get_record_counter(), self.get_sync_timer()
        progress = self.progress(context)
        with counter, timer:
            counter.with_context({})
            timer.with_context({})
            self._write_starting_replication_value(None)
            for page, before in self.pages(None):
                records, datetimes = self.page_records(page.body, before)
                if not records:
                    continue
                self._tap.write_message(
                    encode_records(
                        self.name,
                        records,
                        version=self._stream_version,
                        time_extracted=datetime.datetime.now(datetime.timezone.utc),
                    )
                )
                self.state_manager.is_flushed = False
                self.count_new(datetimes)
                latest = next((d for d in reversed(datetimes) if d), None)
                progress.add(len(records), latest)
                counter.increment(len(records))
                if latest:
                    self._unsaved = {self.replication_key: latest}
                saved_before = self._since_saved // self.STATE_MSG_FREQUENCY
                self._since_saved += len(records)
                if self._since_saved // self.STATE_MSG_FREQUENCY > saved_before:
                    self._save_bookmark(None)
                    self._write_state_message()
                yield None
            self._save_bookmark(None)
        progress.done()
        self._finalize_state(self.stream_state)
        self._write_state_message()

    def page_records(self, body: bytes, before: datetime.datetime | None) -> tuple[list[Any], list[str | None]]:
        """A page's records, typed as the schema says, and their datetimes. A page that breaks the schema is
        decoded as dicts and checked record by record, as the SDK's path would (warn once, or stop with
        `validate_records`)."""
        try:
            records = event_records(body, before)
            return records, [record.datetime for record in records]
        except NotInSchema:
            rows = dated_before(decode_events_raw(body), before)
            return [self.post_process(row) for row in rows], [row["datetime"] for row in rows]


def _and(*conditions: str | None) -> str:
    present = [c for c in conditions if c]
    return present[0] if len(present) == 1 else f"and({','.join(present)})"


def build_streams(tap: Tap, client: KlaviyoClient) -> list[Stream]:
    """Every stream of the tap: name, source, primary key and replication key."""
    directory = MetricDirectory(client)
    concurrency = tap.config.get("concurrency", DEFAULT_CONCURRENCY)
    fetcher = WindowedFetch(concurrency) if concurrency > 1 else None
    campaigns = EmailCampaignsStream(
        tap,
        client,
        name="email_campaigns",
        schema="email_campaigns",
        replication_key="updated_at",
        sources=((endpoints.CAMPAIGNS, {"filter": "equals(messages.channel,'email')"}),),
        filter_operator="greater-or-equal",
    )
    return [
        EntityStream(
            tap,
            client,
            name="lists_and_segments",
            schema="lists_and_segments",
            replication_key="updated",
            sources=((endpoints.LISTS, {}), (endpoints.SEGMENTS, {})),
            filter_operator="greater-than",
            keep_type=True,
        ),
        campaigns,
        CampaignAudienceStream(
            tap, client, name="email_campaigns_vs_lists_included", campaigns=campaigns, side="included"
        ),
        CampaignAudienceStream(
            tap, client, name="email_campaigns_vs_lists_excluded", campaigns=campaigns, side="excluded"
        ),
        EntityStream(
            tap,
            client,
            name="flows",
            schema="flows",
            replication_key="updated",
            sources=((endpoints.FLOWS, {}),),
            filter_operator="greater-or-equal",
        ),
        MetricsStream(tap, client, name="metrics", schema="metrics", directory=directory),
        *(
            EmailEventStream(tap, client, name=name, metric_name=metric, directory=directory, fetcher=fetcher)
            for name, metric in EMAIL_EVENTS
        ),
    ]
