"""What every stream of the tap has: its row of the stream table, its schema, the run's shared client, the check
of its records against the schema, and a bookmark that never passes the sync's start."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.progress import Progress
from tap_klaviyo.records import compile_schema, compile_times
from tap_klaviyo.sdk import SdkStream
from tap_klaviyo.settings import ACCOUNT_COLUMN, ADD_ACCOUNT_ID, MIRROR
from tap_klaviyo.times import bookmark_text, parse_datetime, parse_or_none

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams.run import Run

# Settings under which records are rewritten one at a time, so they must reach the SDK as dicts.
REWRITING_SETTINGS = ("stream_maps", "flattening_enabled", "batch_config")


@dataclass(frozen=True)
class Source:
    """An endpoint a stream reads, the fixed part of its query, and columns every record read from it carries
    (a campaigns walk's channel, which Klaviyo's campaign resources do not hold). Streams that list the same
    endpoint and query share one read of it per run (see `walks.py`)."""

    endpoint: Endpoint
    query: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamRow:
    """One stream, declared: its name, the family of stream that reads it, its schema's name, where its records
    come from (endpoints, or a field of another stream's records), its key, and how it is read incrementally
    (`replication_key`, with the server filter operator used on it). Events also name their Klaviyo metric, and
    may pin the integration it comes from (its key or name). A derived stream may carry columns of its parent's
    records (`carries`), pick values out of its own (`picks`: column -> dotted path), and be read whole every run
    rather than follow its parent's bookmark (`whole`)."""

    name: str
    family: type[KlaviyoStream]
    schema: str
    sources: tuple[Source, ...] = ()
    # (stream, what of its records: a dotted field listing ids, or a relationship its requests include)
    derived_from: tuple[str, str] | None = None
    primary_keys: tuple[str, ...] = ("id",)
    replication_key: str | None = None
    filter_operator: str | None = None
    metric: str | None = None
    integration: str | None = None
    carries: tuple[str, ...] = ()
    picks: Mapping[str, str] = field(default_factory=dict)
    whole: bool = False
    # Streams of millions of rows are opt-in: a run without a catalog leaves them out.
    selected_by_default: bool = True


class KlaviyoStream(SdkStream):
    """A stream whose records come from Klaviyo through the run's shared client."""

    # With the mirror on, read whole every run (by default: a catalog may say otherwise) and so mirrored.
    READ_WHOLE_TO_MIRROR = True
    # Whether the state keeps a bookmark per partition (under `partitions`) rather than one for the stream.
    KEEPS_PARTITIONS = False
    # Whether the state keeps the days a report has read (`first_day`, `last_day`) rather than a bookmark.
    KEEPS_DAYS = False

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        # A copy: the streams of one schema (the event streams) each adjust their own.
        schema = copy.deepcopy(run.schemas[row.schema])
        # With `add_account_id`, every record names its account, and so does every key.
        self.adds_account = bool(tap.config.get(ADD_ACCOUNT_ID))
        if self.adds_account:
            schema["properties"] = {ACCOUNT_COLUMN: {"type": "string"}, **schema["properties"]}
        super().__init__(tap, schema=schema, name=row.name)
        self.client = client
        self.row = row
        self.run = run
        self.primary_keys = (ACCOUNT_COLUMN, *row.primary_keys) if self.adds_account else row.primary_keys
        self.replication_key = row.replication_key
        self.selected_by_default = row.selected_by_default
        self.mirror = bool(self.config.get(MIRROR))
        if self.mirror and self.READ_WHOLE_TO_MIRROR:
            self.forced_replication_method = "FULL_TABLE"
        self._check = compile_schema(self.schema)
        self._rfc3339 = compile_times(self.schema)
        # The bookmark the state holds now, as text and as an instant (parsed once, not once a record).
        self._held: tuple[str, datetime.datetime] | None = None
        self._known = frozenset(self.schema["properties"])
        self._warned_invalid = False
        self._warned_unknown = False

    @property
    def account_id(self) -> str | None:
        """The id every record carries (None: `add_account_id` is off)."""
        return self.run.account_id() if self.adds_account else None

    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints this stream reads: the API key needs their scopes."""
        return tuple(source.endpoint for source in self.row.sources)

    def lookups(self) -> dict[Endpoint, Callable[[], object]]:
        """What the run looks up before this stream's first request, by the endpoint each asks (streams share
        them)."""
        return {}

    def ready(self) -> list[str]:
        """Called once the lookups are done, before the run emits anything: readies the stream, and names its ranges
        in the window pool whose first requests are answered before then."""
        return []

    def found_nothing_new(self) -> bool:
        """Whether this run read the stream from a bookmark and found nothing past it (`fail_on_no_new_data`, which
        only event streams answer)."""
        return False

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        if self.adds_account:
            row[ACCOUNT_COLUMN] = self.account_id
        self._rfc3339(row)
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

    def rewrites_records(self) -> bool:
        """Whether something needs this stream's records one at a time as dicts: stream maps, flattening, batch
        files, deselected properties."""
        return any(self.config.get(setting) for setting in REWRITING_SETTINGS) or not all(
            self.mask[("properties", name)] for name in self.schema["properties"]
        )

    def takes_whole_pages(self) -> bool:
        """Whether nothing needs records one at a time as dicts (`rewrites_records`, or `--test`'s record limit): a
        stream that can then writes a page's records in one go (`PageSyncStream`)."""
        return not self.rewrites_records() and self.ABORT_AT_RECORD_COUNT is None

    def progress(self, context: Context | None) -> Progress:
        return Progress(self.logger, self.name, self.client)

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        progress = self.progress(context)
        for record in self.records(context):
            progress.record(record)
            yield record
        progress.done()

    def bookmark(self, context: Context | None) -> datetime.datetime | None:
        """Where the last run's state says this stream got to; None for a full import. The state's value is
        rewritten in the tap's one form of bookmark, so what the SDK compares it with as text sorts as instants do."""
        if not self.replication_key or self.replication_method != "INCREMENTAL":
            return None
        state = self.get_context_state(context)
        value = state.get("replication_key_value")
        if not value or state.get("replication_key") != self.replication_key:
            return None
        moment = parse_datetime(value)
        state["replication_key_value"] = bookmark_text(moment)
        return moment

    @cached_property
    def _cap(self) -> datetime.datetime:
        """The sync's start: no bookmark may pass it."""
        start = self.get_replication_key_signpost(None)
        assert isinstance(start, datetime.datetime), "replication keys here are date-times"
        return start

    def bookmark_record(self, record: dict[str, Any], context: Context | None) -> dict[str, Any]:
        """The record as the bookmark takes it: its replication key as an instant, capped at the sync's start (the
        SDK lets a sorted stream's bookmark run past it when Klaviyo dates records in the future, and the next run
        would skip everything until that date), never before the bookmark already held (records re-read by a
        lookback, or sharing the bookmark's second, would trip the SDK's sort check), written in one form."""
        value = record.get(self.replication_key) if self.replication_key else None
        if value is None:
            return record
        assert self.replication_key is not None
        moment = value if isinstance(value, datetime.datetime) else parse_or_none(value)
        if moment is None:
            # Not a date-time (the schema check reports it): it cannot move the bookmark.
            return {**record, self.replication_key: None}
        moment = min(moment, self._cap)
        held = self._held_bookmark(context)
        if held is not None and moment <= held[1]:
            return {**record, self.replication_key: held[0]}
        text = bookmark_text(moment)
        self._held = (text, moment)
        return {**record, self.replication_key: text}

    def _held_bookmark(self, context: Context | None) -> tuple[str, datetime.datetime] | None:
        """The bookmark the state holds for a context now, as text and instant; a text in another form (a state
        written by another version, or by hand) is rewritten in the tap's, so the SDK's text comparisons hold."""
        state = self.get_context_state(context)
        text = state.get("replication_key_value")
        if not isinstance(text, str):
            return None
        if self._held is None or self._held[0] != text:
            moment = parse_or_none(text)
            if moment is None:
                return None
            self._held = (bookmark_text(moment), moment)
            state["replication_key_value"] = self._held[0]
        return self._held
