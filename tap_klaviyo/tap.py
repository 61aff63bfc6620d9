"""tap-klaviyo: its settings and its streams."""

from __future__ import annotations

import copy
import datetime
import os
import sys
from functools import cached_property
from typing import Any, cast

from tap_klaviyo import redaction
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.environment import environment_problems
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.first_requests import answer_first_requests
from tap_klaviyo.output import OutputClosed, RecordBufferingWriter, silence_stdout
from tap_klaviyo.sdk import SdkTap
from tap_klaviyo.settings import (
    DEFAULT_API_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_REVISION,
    SETTINGS,
    settings_problems,
)
from tap_klaviyo.state import SINGER_KEYS, Keeps, review, shape_problem, unwrap
from tap_klaviyo.streams.base import KlaviyoStream
from tap_klaviyo.streams.run import Run, start_run
from tap_klaviyo.streams.table import STREAMS, stream_rows


class TapKlaviyo(SdkTap):
    """Singer tap for Klaviyo: lists, segments, campaigns of every channel, flows and their steps, metrics, events."""

    name = "tap-klaviyo"
    package_name = "tap-klaviyo-singer"
    message_writer_class = RecordBufferingWriter

    config_jsonschema = SETTINGS.to_dict()
    # The given state's top-level keys that are not Singer's (`load_state` finds them, the state check names them).
    _state_other_keys: tuple[str, ...] = ()
    # What the streams of this run share, the tap's to hold (set as the streams are built).
    run: Run

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # With `--config ENV`, a TAP_KLAVIYO_* variable that names no setting is a mistake in the settings.
        self.reads_environment = bool(kwargs.get("parse_env_config"))
        super().__init__(*args, **kwargs)
        self._check_catalog_and_state()

    def config_read(self) -> None:
        key = self.config.get("api_key")
        if key is not None:
            redaction.protect(str(key))

    def settings_problems(self, *, discovery: bool = False) -> list[str]:
        known = known_settings()
        problems = settings_problems(self.config, known, {row.name for row in STREAMS}, discovery=discovery)
        if self.reads_environment:
            problems += environment_problems(os.environ, known)
        return problems

    def _check_catalog_and_state(self) -> None:
        if self.input_catalog is not None:
            unknown = sorted(set(self.input_catalog) - set(self.streams))
            if unknown:
                raise KlaviyoError(
                    f"The catalog names stream(s) {', '.join(unknown)} that tap-klaviyo does not have: "
                    "run `tap-klaviyo --discover` for a fresh catalog."
                )
            if not any(stream.selected for stream in self.streams.values()):
                # A select pattern that matches nothing would otherwise be a run that reads nothing and succeeds.
                raise KlaviyoError(
                    "The catalog selects no stream: select the streams to read in it (in Meltano, `select` in "
                    "meltano.yml), or run without --catalog for the default ones."
                )
        streams = {
            name: Keeps(stream.replication_key, partitioned=stream.KEEPS_PARTITIONS, days=stream.KEEPS_DAYS)
            for name, stream in self.tap_streams().items()
        }
        found = review(self.state, self._state_other_keys, streams, datetime.datetime.now(datetime.UTC))
        error = found.error()
        if error:
            raise KlaviyoError(error)
        for note in found.notes:
            self.logger.info("%s", note)
        for warning in found.warnings:
            self.logger.warning("%s", warning)

    def load_state(self, state: dict[str, Any]) -> None:
        # The SDK hands over the --state document as it is: a wrapper around the Singer state would hide every
        # bookmark from it (and so import everything again).
        problem = shape_problem(state)
        if problem:
            raise KlaviyoError(f"The state {problem}.")
        value, wrappers = unwrap(state)
        if wrappers:
            self.logger.info("The state is %s: the Singer state in it is used.", ", in ".join(wrappers))
        self._state_other_keys = tuple(sorted(set(value) - SINGER_KEYS))
        super().load_state(value)

    @cached_property
    def client(self) -> KlaviyoClient:
        return KlaviyoClient(
            # Whitespace around the key (pasted from a file, a variable ending in a newline) is not part of it.
            api_key=str(self.config.get("api_key") or "").strip(),
            api_url=self.config.get("api_url", DEFAULT_API_URL),
            revision=self.config.get("revision", DEFAULT_REVISION),
            max_retries=self.config.get("max_retries", DEFAULT_MAX_RETRIES),
            # Each worker may have its range's newest-record request beside it, and the main thread asks too: a
            # smaller pool discards connections (urllib3 warns of each) and opens new ones.
            connections=max(10, 2 * self.config.get("concurrency", DEFAULT_CONCURRENCY) + 2),
            user_agent=f"{self.name}/{self.plugin_version}",
            logger=self.logger,
        )

    def run_discovery(self) -> str:
        try:
            catalog = super().run_discovery()
            sys.stdout.flush()
        except BrokenPipeError:
            # As when syncing: one line, no traceback (click would exit 1 without a word).
            silence_stdout()
            raise OutputClosed from None
        return catalog

    def tap_streams(self) -> dict[str, KlaviyoStream]:
        """The streams, as the tap's own (discover_streams built each of them)."""
        return cast("dict[str, KlaviyoStream]", self.streams)

    def discover_streams(self) -> list[KlaviyoStream]:
        self.run = start_run(self, self.client, stream_rows(self.config))
        return list(self.run.streams.values())

    def before_sync(self) -> None:
        streams = self.tap_streams()
        if self.run.window_pool is not None:
            # The SDK syncs the streams in this order: the pool reads ahead in it.
            self.run.window_pool.follow(list(streams))
        selected = [stream for stream in streams.values() if stream.selected]
        # Before any stream syncs, so a key without a scope some stream needs stops the run before it writes anything.
        answer_first_requests(selected, self.run)
        if selected and selected[0].adds_account:
            self.logger.info("Every record carries account_id %s.", selected[0].account_id)

    def after_sync(self) -> None:
        if self.config.get("fail_on_no_new_data"):
            idle = [
                stream.name for stream in self.tap_streams().values() if stream.selected and stream.found_nothing_new()
            ]
            if idle:
                raise KlaviyoError(
                    f"No new data for {', '.join(sorted(idle))} since the last run "
                    "(fail_on_no_new_data is on; the state was saved)."
                )


def known_settings() -> set[str]:
    """The tap's settings and the SDK's built-in ones (stream maps, flattening, batches)."""
    schema = copy.deepcopy(TapKlaviyo.config_jsonschema)
    TapKlaviyo.append_builtin_config(schema)
    return set(schema["properties"]) | {"batch_config", "faker_config"}
