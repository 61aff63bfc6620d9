"""The tap's own settings (the SDK appends its built-in ones), and every mistake in them, as one sentence each."""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th

from tap_klaviyo.api_key import api_key_problems
from tap_klaviyo.event_metrics import event_metrics
from tap_klaviyo.report_settings import REPORT_SETTINGS, report_settings_problems
from tap_klaviyo.state import FUTURE_SLACK
from tap_klaviyo.times import parse_datetime

DEFAULT_API_URL = "https://a.klaviyo.com"
DEFAULT_REVISION = "2026-07-15"
# The API revisions the streams' requests, filters and schemas are modelled on (2026-10-15 changes campaigns).
SUPPORTED_REVISIONS = frozenset({DEFAULT_REVISION})
DEFAULT_MAX_RETRIES = 8
# Requests in flight: enough for every page of a range to be asked for at once (the pacers, not this, keep each
# endpoint under its limits); at 250 ms a request, 16 would already reach /api/events' steady limit.
DEFAULT_CONCURRENCY = 48
# The SDK's own name for the setting that turns ACTIVATE_VERSION on.
MIRROR = "emit_activate_version_messages"
# Late events reach Klaviyo within hours: a longer lookback is a mistake (and far longer, out of datetime's range).
MAX_LOOKBACK_MINUTES = 30 * 24 * 60
# The setting that adds the account's id to every record and key, and the column it fills.
ADD_ACCOUNT_ID = "add_account_id"
ACCOUNT_COLUMN = "account_id"


# The tap's own settings (the SDK appends its built-in ones to `config_jsonschema`).
SETTINGS = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        required=True,
        secret=True,
        title="API key",
        description=(
            "A Klaviyo private API key (secret) with read scopes, sent as `Authorization: Klaviyo-API-Key ...` to "
            "`api_url` only."
        ),
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="From date",
        description=(
            "Import events, and the report streams' days, from this date-time on (ISO 8601, inclusive). Lists, "
            "segments, campaigns, flows, metrics, profiles and members ignore it. Default: all history."
        ),
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        title="To date",
        description=(
            "Import events, and the report streams' days, before this date-time (exclusive), for backfills of a "
            "fixed range. Default: up to now."
        ),
    ),
    th.Property(
        "lookback_minutes",
        th.IntegerType,
        default=0,
        title="Lookback (minutes)",
        description=(
            "On incremental runs, also re-read this many minutes before each event stream's bookmark, for events "
            "that reach Klaviyo late; at most 43200 (30 days). Re-read events are sent again (dedupe on `id`)."
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
        "event_metrics",
        th.ArrayType(
            th.CustomType(
                {
                    "anyOf": [
                        {"type": "string"},
                        {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "integration": {"type": "string"},
                                "stream": {"type": "string"},
                            },
                            "required": ["name"],
                        },
                    ]
                }
            )
        ),
        default=[],
        title="More event streams, by metric name",
        description=(
            'More event streams: Klaviyo metric names (e.g. "Placed Order", "Received SMS"), each read as an event '
            "stream of its own, named in snake_case (placed_order). An entry may be an object {name, integration, "
            "stream} to pick the metric of one integration (key or name, e.g. shopify) or to choose the stream name. "
            "From the environment: TAP_KLAVIYO_EVENT_METRICS as JSON."
        ),
    ),
    th.Property(
        "profiles_predictive_analytics",
        th.BooleanType,
        default=False,
        title="Profiles' predictive analytics",
        description=(
            "Add `predictive_analytics` (CLV, churn, next order) to the profiles stream. Klaviyo serves those "
            "requests at 10/s and 150/min instead of 75/s and 750/min, so profiles take five times as long."
        ),
    ),
    *REPORT_SETTINGS,
    th.Property(
        "emit_activate_version_messages",
        th.BooleanType,
        default=False,
        title="Mirror deletions (ACTIVATE_VERSION)",
        description=(
            "Mirror deletions: read lists and segments, campaigns, flows and metrics (and the streams derived from "
            "them) whole every run, each followed by ACTIVATE_VERSION, so a target that honours it keeps exactly "
            "Klaviyo's current rows. Events stay incremental; profiles and members are mirrored when the catalog "
            "sets them to FULL_TABLE."
        ),
    ),
    th.Property(
        "add_account_id",
        th.BooleanType,
        default=False,
        title="Add the account's id",
        description=(
            "Add the account's id (one /api/accounts request; scope accounts:read) as `account_id` to every record "
            "and every stream's primary key, so several accounts can load into the same tables."
        ),
    ),
    th.Property(
        "concurrency",
        th.IntegerType,
        default=DEFAULT_CONCURRENCY,
        title="Requests in flight",
        description=(
            "Requests kept in flight by the streams read in time windows (events, profiles, list and segment "
            "members), each over a window of its own; records are still emitted in order. 1 reads one page at a "
            "time: slowest, least memory, gentlest on a shared key."
        ),
    ),
    th.Property(
        "validate_records",
        th.BooleanType,
        default=False,
        title="Stop on invalid records",
        description=(
            "Stop the run at the first record that does not match its stream's schema, naming the stream, "
            "the record and the field. When off, the first such record per stream is logged and all are "
            "passed on."
        ),
    ),
    th.Property(
        "revision",
        th.StringType,
        default=DEFAULT_REVISION,
        title="API revision",
        description=(
            "The Klaviyo API revision sent in the `revision` header. Only the one the streams are modelled on "
            f"({', '.join(sorted(SUPPORTED_REVISIONS))}) is accepted: 2026-10-15 remodels campaigns."
        ),
    ),
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        title="API URL",
        description=(
            "Base URL of the Klaviyo API; change it only for a proxy or a test server. The key is sent to this "
            "scheme, host and port only: a proxy must rewrite Klaviyo's `links.next` to point at itself."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=DEFAULT_MAX_RETRIES,
        title="Retries per request",
        description=(
            "Retries of one request after a 429 (waiting as long as `Retry-After` says), a 5xx, a dropped "
            "connection or a truncated body, with capped exponential backoff and jitter, before the run fails."
        ),
    ),
)


def settings_problems(
    config: Mapping[str, Any], known: set[str], taken: set[str], *, discovery: bool = False
) -> list[str]:
    """Every mistake in the settings, each as a sentence naming the setting and the fix (`taken`: the names of
    the tap's own streams). Discovery needs no key: the streams come from the settings alone."""
    problems = api_key_problems(config.get("api_key"), required=not discovery)
    dates = {}
    for name in ("start_date", "end_date"):
        value = config.get(name)
        if value is None:
            continue
        try:
            dates[name] = parse_datetime(str(value))
        except ValueError:
            problems.append(
                f"Setting `{name}` is not an ISO 8601 date-time: {str(value)[:40]!r} (e.g. 2025-01-31T00:00:00Z)"
            )
    if len(dates) == 2 and dates["end_date"] <= dates["start_date"]:
        problems.append("Setting `end_date` must be after `start_date`")
    if "start_date" in dates and dates["start_date"] > datetime.datetime.now(datetime.UTC) + FUTURE_SLACK:
        problems.append(
            f"Setting `start_date` is in the future ({config['start_date']}): the run would read nothing; set a "
            "date in the past, or leave it out for all history"
        )
    revision = config.get("revision", DEFAULT_REVISION)
    if revision not in SUPPORTED_REVISIONS:
        problems.append(
            f"Setting `revision` is {str(revision)[:40]!r}, but the streams are modelled on Klaviyo API revision "
            f"{', '.join(sorted(SUPPORTED_REVISIONS))} only: set it to that, or leave it out"
        )
    url = urlsplit(str(config.get("api_url", DEFAULT_API_URL)))
    if url.scheme not in ("http", "https") or not url.netloc:
        problems.append(f"Setting `api_url` is not an http(s) URL: {url.geturl()[:60]!r} (default {DEFAULT_API_URL})")
    elif url.path.rstrip("/").endswith("/api"):
        problems.append(
            f"Setting `api_url` ends in /api ({url.geturl()[:60]!r}): give the base URL ({DEFAULT_API_URL}); the tap "
            "adds /api/... itself"
        )
    for name, least in (("max_retries", 0), ("lookback_minutes", 0), ("concurrency", 1)):
        value = config.get(name, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            problems.append(f"Setting `{name}` must be a whole number, {least} or more, not {value!r}")
    lookback = config.get("lookback_minutes", 0)
    if isinstance(lookback, int) and lookback > MAX_LOOKBACK_MINUTES:
        problems.append(
            f"Setting `lookback_minutes` must be at most {MAX_LOOKBACK_MINUTES} (30 days), not {lookback}: late "
            "events reach Klaviyo within minutes or hours"
        )
    for name in ("fail_on_no_new_data", "validate_records", "profiles_predictive_analytics", MIRROR, ADD_ACCOUNT_ID):
        if not isinstance(config.get(name, False), bool):
            problems.append(f"Setting `{name}` must be true or false, not {config[name]!r}")
    metrics = config.get("event_metrics")
    problems += event_metrics([] if metrics is None else metrics, taken)[1]
    problems += report_settings_problems(config)
    for name in sorted(set(config) - known):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f": did you mean `{close[0]}`?" if close else f": remove it (settings: {', '.join(sorted(known))})"
        problems.append(f"Unknown setting `{name}`{hint}")
    return problems
