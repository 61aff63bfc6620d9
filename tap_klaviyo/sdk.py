"""Every place tap-klaviyo relies on singer-sdk internals, and why the public API does not suffice for it.

singer-sdk's public hooks cover what a stream fetches (`get_records`, `post_process`) and how its state is read
(`get_context_state`, `get_replication_key_signpost`, `is_sorted`). What else the tap needs has no public hook,
so it lives here, and only here:
- one line for a user's mistake in the settings, before the SDK logs its own lines about them;
- work before any stream syncs (tying event bookmarks to their metric) and a check after every stream has synced
  and saved its state (`fail_on_no_new_data`);
- a bookmark that never passes the sync's start, and the page-at-a-time fast path for event streams, which
  writes what the SDK's record loop writes (RECORD lines, STATE at the same points, the same counts) for a
  fraction of its cost per record;
- ACTIVATE_VERSION after a stream's last record instead of before its first;
- stopping on SIGTERM or SIGINT where the state covers everything written, and exiting non-zero (the SDK's
  handler exits 0 wherever the signal lands);
- records of one stream written while another syncs (event attributions, which come in their events' pages).

Two workarounds use only public API but lean on SDK behaviour, so they live here too: the stream map registration
of deselected streams (meltano/sdk#1942), and two SDK log lines that would mislead in this tap's log.

`RELIED_ON` names each member used and why. tests/test_sdk_boundary.py checks that each still exists with the
signature used here and that no other module touches a private SDK member; tests/test_parity.py syncs the same
events through the fast path and through the SDK's own loop and compares every message, so an SDK release that
changes any of them fails a unit test instead of a user's sync.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream, Tap
from singer_sdk.exceptions import ConfigValidationError, MappingError
from singer_sdk.mapper import PluginMapper
from singer_sdk.singerlib import Catalog, StateMessage

from tap_klaviyo import stopping
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.output import RecordBufferingWriter, encode_records

if TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.helpers.types import Context

RELIED_ON = {
    "Tap._validate_config": "the SDK validates settings inside Tap.__init__ and logs each problem on lines of its "
    "own before raising: overriding it is the only way to check first and fail with one line",
    "Tap._handle_termination": "the SDK installs it for SIGTERM and SIGINT in Tap.__init__, writes STATE and exits 0 "
    "from wherever the signal lands (mid-record, mid-bookmark): overriding it is the only way to stop at a "
    "consistent point and exit with the signal's code",
    "Tap.sync_all": "final, but the only point before any stream syncs and after every stream has synced and "
    "written its state; the SDK has no hooks there",
    "Stream._increment_stream_state": "the only point between a record and its bookmark: a sorted stream's "
    "bookmark is not capped at the signpost by the SDK (Klaviyo dates some records in the future), and the SDK "
    "compares bookmarks as text (Klaviyo writes some times with a space for the 'T')",
    "Stream._sync_records": "the record loop; the fast path replaces it for event streams whose records nothing "
    "rewrites, and hands everything else to it",
    "Stream._write_starting_replication_value": "the fast path must record where the sync started, as the loop does",
    "Stream._write_state_message": "the fast path writes STATE where the loop would; a report stream writes it "
    "after each timeframe it has read (the loop writes STATE only every 10,000 records)",
    "Stream._finalize_state": "the fast path finalizes the stream's state where the loop would",
    "Stream._stream_version": "the `version` the loop puts on RECORD messages; none on a stream never mirrored",
    "Stream._tap": "the tap's message writer, to write encoded RECORD lines and to see it can take them",
    "StreamStateManager.is_flushed": "the loop clears it after writing records, so the next STATE is written (and a "
    "report stream, once its state records a timeframe read)",
    "Stream._write_activate_version_message": "the SDK writes ACTIVATE_VERSION before a stream's records and SDK "
    "targets act on it at once (older rows deleted), so a run that fails mid-stream would hide live rows: the "
    "message is held and written once the stream has synced, and never written for a stream whose rows are only "
    "upserted (reports: a run reads some of their rows, so activating it would delete the rest)",
    "Stream.finalize_state_progress_markers": "the point after a stream synced without error (the tap calls it "
    "then, and only then): where the held ACTIVATE_VERSION is written",
    "Stream._write_schema_message": "a stream whose records are written while another stream syncs (event "
    "attributions, with their events' pages) sends its SCHEMA before them, and once",
    "Stream._write_record_message": "records written while another stream syncs go one by one through the SDK's "
    "record path (stream maps, flattening, deselected properties) unless nothing rewrites them",
}


# The SDK's warning when an unsorted stream first moves its bookmark. The tap's unsorted streams (lists and
# segments, campaigns, flows) are read whole past their bookmark, which moves only once the stream has synced: an
# interrupted one is read again from the same bookmark and loses nothing, so the warning would only alarm.
UNSORTED_WARNING = "Stream is assumed to be unsorted"
# The SDK's line saying where a stream starts, which a partitioned stream logs once per partition.
STARTING_LINE = "Starting incremental sync of"


class SdkTap(Tap):
    """A tap that checks its own settings first, can act before any stream syncs and once every one has, and stops
    on SIGTERM or SIGINT with a STATE that covers everything it wrote."""

    def settings_problems(self, *, discovery: bool = False) -> list[str]:
        """Every mistake in the settings, each a sentence naming the setting and the fix (for `discovery`, only
        those that change what is discovered)."""
        return []

    def config_read(self) -> None:
        """Called once the settings are read, before they are checked or used."""

    def before_sync(self) -> None:
        """Called before any stream syncs, with the state as given."""

    def after_sync(self) -> None:
        """Called once every selected stream has synced and written its state."""

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        self.config_read()
        # Without raise_errors the SDK is discovering: the streams come from the settings alone, so a missing key
        # is no mistake there (the SDK's own check would log that it is, as a warning).
        problems = self.settings_problems(discovery=not raise_errors)
        if not problems and raise_errors:
            try:
                return super()._validate_config(raise_errors=True)
            except ConfigValidationError as exc:
                problems = [f"Invalid setting: {error}" for error in exc.errors]
        if problems:
            raise KlaviyoError("; ".join(problems))
        return []

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        stopping.request(signum)

    def setup_mapper(self) -> None:
        # meltano/sdk#1942 (fixed upstream by meltano/sdk#3046, not in 0.54.9): the SDK registers a deselected
        # stream's maps against the schema of its selected fields, which is none, so a map of it (the privacy map of
        # `profiles` in docs/streams.md, which is opt-in) fails the run for want of its key. Such maps never run:
        # register them against the whole schema.
        catalog = Catalog.from_dict(self.catalog.to_dict())
        for entry in catalog.streams:
            entry.metadata.root.selected = True
        try:
            self.mapper = PluginMapper(plugin_config=dict(self.config), logger=self.logger)
            self.mapper.register_raw_streams_from_catalog(catalog)
        except ConfigValidationError as exc:  # flattening settings
            raise KlaviyoError("; ".join(f"Invalid setting: {error}" for error in exc.errors)) from None
        except MappingError as exc:
            raise KlaviyoError(f"Setting `stream_maps` cannot be applied: {exc}") from None

    # Final in the SDK (see RELIED_ON): the one override the type checker is told to allow.
    def sync_all(self) -> None:  # type: ignore[misc]
        logging.getLogger("singer_sdk").addFilter(_drop_unsorted_warning)
        try:
            self.before_sync()
            stopping.check()
            super().sync_all()
            stopping.check()
        except stopping.Interrupted:
            # Everything written so far is covered by this state; it is also the last line out. Not with batch
            # files: a batch is announced, and its STATE written, once it is whole, so the bookmark of one being
            # filled covers records no target has; the last STATE the SDK wrote stands.
            if not self.config.get("batch_config"):
                self.write_message(StateMessage(value=self.state))
            raise
        self.after_sync()


class SdkStream(Stream):
    """A stream that decides what its bookmark sees of a record, and activates a full table's version only once its
    records are all written (or never, when its rows are only upserted), and that can write its state when it
    records its own progress there."""

    # False: a run reads only some of the stream's rows, which are upserted: no ACTIVATE_VERSION, no `version`.
    MIRRORABLE = True
    _version_to_activate: int | None = None

    def _write_activate_version_message(self, full_table_version: int) -> None:
        if not self.MIRRORABLE:
            self._stream_version = None
            return
        self._version_to_activate = full_table_version

    def write_state_now(self) -> None:
        """Write a STATE message now, after records whose progress the stream has put in its state itself. Not with
        batch files: a batch's STATE is written once the batch is whole."""
        if self.config.get("batch_config"):
            return
        self.state_manager.is_flushed = False
        self._write_state_message()

    def finalize_state_progress_markers(self, state: dict[str, Any] | None = None) -> None:
        if self._version_to_activate is not None:
            version, self._version_to_activate = self._version_to_activate, None
            super()._write_activate_version_message(version)
        super().finalize_state_progress_markers(state)

    def bookmark_record(self, record: dict[str, Any], context: Context | None) -> dict[str, Any]:
        """The record as the bookmark should take it (the stream may cap its replication key)."""
        return record

    def _increment_stream_state(self, latest_record: dict[str, Any], *, context: Context | None = None) -> None:
        super()._increment_stream_state(self.bookmark_record(latest_record, context), context=context)
        # The record is written and its bookmark moved: a signal may stop the run here.
        stopping.check()

    _schema_sent = False

    def _write_schema_message(self) -> None:
        # Once a run: a stream whose records were written while another synced has sent it already.
        if not self._schema_sent:
            self._schema_sent = True
            super()._write_schema_message()

    def write_aside(self, records: Sequence[Any], *, encoded: bool) -> None:
        """Write records of this stream while another stream syncs, its SCHEMA first: `encoded`, as RECORD lines in
        one call (dicts or msgspec structs with the schema's fields, which nothing rewrites), else each dict through
        the SDK's record path. Its own sync later writes no records."""
        self._write_schema_message()
        if encoded and isinstance(self._tap.message_writer, RecordBufferingWriter):
            now = datetime.datetime.now(datetime.UTC)
            self._tap.write_message(
                encode_records(self.name, records, version=self._stream_version, time_extracted=now)
            )
            return
        for record in records:
            self._write_record_message(record)


def _drop_unsorted_warning(record: logging.LogRecord) -> bool:
    return not (isinstance(record.msg, str) and record.msg.startswith(UNSORTED_WARNING))


def log_partition_starts_at_debug(logger: logging.Logger) -> None:
    """The SDK's line saying where a stream starts, at DEBUG on `logger` (a stream with a partition per list would
    log one per list)."""
    logger.addFilter(_demote_starting_line)


def _demote_starting_line(record: logging.LogRecord) -> bool:
    if not (isinstance(record.msg, str) and record.msg.startswith(STARTING_LINE)):
        return True
    if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
        return False
    record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
    return True


class PageSyncStream(SdkStream):
    """A stream that can hand its records over a page at a time, already checked against its schema, to be
    written as RECORD lines in one go. The SDK's loop still runs for a partition context, for `--test`, and
    whenever `writes_pages` says something rewrites records or the writer cannot take encoded lines."""

    def writes_pages(self) -> bool:
        """Whether nothing needs records one at a time as dicts (stream maps, flattening, batch files,
        deselected properties, `--test`'s record limit)."""
        return False

    def record_pages(self) -> Iterator[tuple[Sequence[Any], Sequence[Any]]]:
        """Pages of records ready to write (dicts or msgspec structs with the schema's fields), each with its
        records' replication key values."""
        raise NotImplementedError

    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> Generator[dict[str, Any], Any, Any]:
        fast = context is None and write_messages and self.writes_pages()
        if not fast or not isinstance(self._tap.message_writer, RecordBufferingWriter):
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        # The SDK's loop, a page at a time: the same record counter and timer, the starting replication value,
        # STATE after every STATE_MSG_FREQUENCY-th record (a page is split there) and at the end.
        counter, timer = self.get_record_counter(), self.get_sync_timer()
        every = self.STATE_MSG_FREQUENCY
        written = 0
        with counter, timer:
            counter.with_context({})
            timer.with_context({})
            self._write_starting_replication_value(None)
            for records, values in self.record_pages():
                start = 0
                while start < len(records):
                    end = min(len(records), start + every - written % every)
                    self._tap.write_message(
                        encode_records(
                            self.name,
                            records[start:end],
                            version=self._stream_version,
                            time_extracted=datetime.datetime.now(datetime.UTC),
                        )
                    )
                    self.state_manager.is_flushed = False
                    counter.increment(end - start)
                    written += end - start
                    latest = next((v for v in reversed(values[start:end]) if v is not None), None)
                    if self.replication_key and latest is not None:
                        # The loop moves the bookmark on every record; where it is written, only the last counts.
                        self._increment_stream_state({self.replication_key: latest})
                    if written % every == 0:
                        self._write_state_message()
                    start = end
        self._finalize_state(self.stream_state)
        self._write_state_message()
