"""tap-klaviyo: its settings and its streams."""

from __future__ import annotations

import copy
import datetime
from functools import cached_property
from typing import Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.output import RecordBufferingWriter
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
from tap_klaviyo.streams import KlaviyoStream, build_streams
from tap_klaviyo.streams.events import EventStream
from tap_klaviyo.streams.profiles import MembersStream
from tap_klaviyo.streams.table import STREAMS, stream_rows


class TapKlaviyo(SdkTap):
    """Singer tap for Klaviyo: lists, segments, campaigns of every channel, flows and their steps, metrics, events."""

    name = "tap-klaviyo"
    package_name = "tap-klaviyo-singer"
    message_writer_class = RecordBufferingWriter

    config_jsonschema = SETTINGS.to_dict()
    # The given state's top-level keys that are not Singer's (`load_state` finds them, the state check names them).
    _state_other_keys: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._check_catalog_and_state()

    def settings_problems(self) -> list[str]:
        return settings_problems(self.config, known_settings(), {row.name for row in STREAMS})

    def _check_catalog_and_state(self) -> None:
        if self.input_catalog is not None:
            unknown = sorted(set(self.input_catalog) - set(self.streams))
            if unknown:
                raise KlaviyoError(
                    f"The catalog names stream(s) {', '.join(unknown)} that tap-klaviyo does not have: "
                    "run `tap-klaviyo --discover` for a fresh catalog."
                )
        streams = {
            name: Keeps(stream.replication_key, partitioned=isinstance(stream, MembersStream))
            for name, stream in self.streams.items()
        }
        found = review(self.state, self._state_other_keys, streams, datetime.datetime.now(datetime.timezone.utc))
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
            api_key=self.config.get("api_key", ""),
            api_url=self.config.get("api_url", DEFAULT_API_URL),
            revision=self.config.get("revision", DEFAULT_REVISION),
            max_retries=self.config.get("max_retries", DEFAULT_MAX_RETRIES),
            connections=max(10, self.config.get("concurrency", DEFAULT_CONCURRENCY)),
            user_agent=f"{self.name}/{self.plugin_version}",
            logger=self.logger,
        )

    def discover_streams(self) -> list[KlaviyoStream]:
        return build_streams(self, self.client, stream_rows(self.config))

    def before_sync(self) -> None:
        selected = [stream for stream in self.streams.values() if stream.selected]
        fetcher = next(iter(self.streams.values())).run.fetcher
        if fetcher is not None:
            # The streams that need no lookup send their first requests now, beside the lookups below.
            fetcher.start()
        if selected and selected[0].adds_account:
            # Asked before any stream syncs, so a key without accounts:read stops the run before it writes anything.
            self.logger.info("Every record carries account_id %s.", selected[0].account_id)
        for stream in selected:
            if isinstance(stream, EventStream):
                stream.tie_bookmark_to_metric()

    def after_sync(self) -> None:
        if self.config.get("fail_on_no_new_data"):
            idle = [
                stream.name
                for stream in self.streams.values()
                if isinstance(stream, EventStream)
                and stream.selected
                and stream.started_from is not None
                and stream.new_records == 0
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
