"""tap-klaviyo: its settings and its streams."""

from __future__ import annotations

import copy
from functools import cached_property
from typing import Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.first_requests import answer_first_requests
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
from tap_klaviyo.streams import KlaviyoStream, build_streams
from tap_klaviyo.streams.events import EventStream
from tap_klaviyo.streams.table import STREAMS, stream_rows
from tap_klaviyo.times import parse_datetime


class TapKlaviyo(SdkTap):
    """Singer tap for Klaviyo: lists and segments, email campaigns, flows, metrics and email events."""

    name = "tap-klaviyo"
    package_name = "tap-klaviyo-singer"
    message_writer_class = RecordBufferingWriter

    config_jsonschema = SETTINGS.to_dict()

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
        for name, bookmark in (self.state.get("bookmarks") or {}).items():
            stream = self.streams.get(name)
            value = bookmark.get("replication_key_value")
            if stream is None or not stream.replication_key or value is None:
                continue
            try:
                parse_datetime(str(value))
            except ValueError:
                raise KlaviyoError(
                    f"The state's bookmark for stream '{name}' is not a date-time: {str(value)[:40]!r}: "
                    "fix it or remove that stream's bookmark to import it again."
                ) from None

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
        # Before any stream syncs, so a key without a scope some stream needs stops the run before it writes anything.
        answer_first_requests(selected, next(iter(self.streams.values())).run)
        if selected and selected[0].adds_account:
            self.logger.info("Every record carries account_id %s.", selected[0].account_id)

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
