"""tap-klaviyo: its settings and its streams."""

from __future__ import annotations

import sys
from functools import cached_property

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from tap_klaviyo.client import KlaviyoClient, KlaviyoError
from tap_klaviyo.streams import EmailEventStream, build_streams

DEFAULT_API_URL = "https://a.klaviyo.com"
DEFAULT_REVISION = "2026-07-15"
DEFAULT_MAX_RETRIES = 8


class TapKlaviyo(Tap):
    """Singer tap for Klaviyo: lists and segments, email campaigns, flows, metrics and email events."""

    name = "tap-klaviyo"
    package_name = "tap-klaviyo-singer"

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            title="API key",
            description="A Klaviyo private API key with read scopes, sent as `Authorization: Klaviyo-API-Key ...`.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            title="From date",
            description=(
                "Import email events from this date-time on (ISO 8601). Lists, segments, campaigns, flows "
                "and metrics are always imported whole. Default: all history."
            ),
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            title="To date",
            description=(
                "Import email events before this date-time (exclusive), for backfills of a fixed range. "
                "Default: up to now."
            ),
        ),
        th.Property(
            "lookback_minutes",
            th.IntegerType,
            default=0,
            title="Lookback (minutes)",
            description=(
                "On incremental runs, also re-read this many minutes before each event stream's bookmark, "
                "for events that reach Klaviyo late. Re-read events are sent again (dedupe on `id`)."
            ),
        ),
        th.Property(
            "fail_on_no_new_data",
            th.BooleanType,
            default=False,
            title="Fail when no new data",
            description=(
                "When an incremental run finds no new events for a selected event stream, exit non-zero "
                "naming those streams (state is still saved)."
            ),
        ),
        th.Property(
            "revision",
            th.StringType,
            default=DEFAULT_REVISION,
            title="API revision",
            description="The Klaviyo API revision sent in the `revision` header.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            title="API URL",
            description="Base URL of the Klaviyo API; change it only for a proxy or a test server.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=DEFAULT_MAX_RETRIES,
            title="Retries per request",
            description=(
                "How often one request is retried after throttling (429), server errors, dropped "
                "connections or truncated bodies, with capped exponential backoff, before the run fails."
            ),
        ),
    ).to_dict()

    @cached_property
    def client(self) -> KlaviyoClient:
        return KlaviyoClient(
            api_key=self.config.get("api_key", ""),
            api_url=self.config.get("api_url", DEFAULT_API_URL),
            revision=self.config.get("revision", DEFAULT_REVISION),
            max_retries=self.config.get("max_retries", DEFAULT_MAX_RETRIES),
            user_agent=f"{self.name}/{self.plugin_version}",
            logger=self.logger,
        )

    def discover_streams(self) -> list[Stream]:
        return build_streams(self, self.client)

    def sync_all(self) -> None:
        super().sync_all()
        if self.config.get("fail_on_no_new_data"):
            idle = [
                stream.name
                for stream in self.streams.values()
                if isinstance(stream, EmailEventStream)
                and stream.selected
                and stream.started_from_bookmark
                and stream.new_records == 0
            ]
            if idle:
                raise KlaviyoError(
                    f"No new data for {', '.join(sorted(idle))} since the last run "
                    "(fail_on_no_new_data is on; the state was saved)."
                )


def main() -> None:
    """The `tap-klaviyo` command: the SDK's CLI, with a user's mistake reported as one line, not a traceback."""
    try:
        TapKlaviyo.cli()
    except KlaviyoError as exc:
        print(f"tap-klaviyo: error: {exc}", file=sys.stderr)
        sys.exit(1)
