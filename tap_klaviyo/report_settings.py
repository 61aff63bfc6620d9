"""The report streams' settings (Klaviyo's Reporting API): which conversion metric their conversion statistics
count, how many recent days each run reads again, and how many report requests a run may make; and every mistake
in them, as one sentence each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from singer_sdk import typing as th

CONVERSION_METRIC = "report_conversion_metric"
LOOKBACK_DAYS = "report_lookback_days"
REQUEST_BUDGET = "report_request_budget"
DEFAULT_CONVERSION_METRIC = "Placed Order"
# Klaviyo revises a send day's statistics for as long as its attribution windows run (5 days by default for email,
# up to 90): a month covers most accounts.
DEFAULT_LOOKBACK_DAYS = 30
# A longer lookback would re-read more than the longest timeframe Klaviyo reports on in one request, every run.
MAX_LOOKBACK_DAYS = 365

REPORT_SETTINGS = (
    th.Property(
        CONVERSION_METRIC,
        # A name, or an object naming the integration too (`properties` and `required` hold for objects only).
        th.CustomType(
            {
                "type": ["string", "object"],
                "properties": {"name": {"type": "string"}, "integration": {"type": "string"}},
                "required": ["name"],
            }
        ),
        default=DEFAULT_CONVERSION_METRIC,
        title="Reports' conversion metric",
        description=(
            "The metric whose events the report streams count as conversions (conversions, conversion_value, "
            "revenue_per_recipient, ...): a metric name, or {name, integration} as in `event_metrics`. A name the "
            "account lacks: a warning and empty report streams; a metric Klaviyo reports no conversions of: the run "
            "stops naming this setting."
        ),
    ),
    th.Property(
        LOOKBACK_DAYS,
        th.IntegerType,
        default=DEFAULT_LOOKBACK_DAYS,
        title="Reports' lookback (days)",
        description=(
            "Each run reads the report streams' last this many days again (campaigns sent in them, flow days), "
            "because Klaviyo revises them as late opens and conversions arrive (its attribution windows: 5 days by "
            f"default for email, up to 90). 1 to {MAX_LOOKBACK_DAYS}."
        ),
    ),
    th.Property(
        REQUEST_BUDGET,
        th.IntegerType,
        title="Reports' requests per run",
        description=(
            "At most this many requests per report stream and run: a stream that reaches it stops with a warning, "
            "and the next run goes on from there. Klaviyo allows 225 a day per account, shared by every integration "
            "on it: keep some for the others. Default: up to the daily quota."
        ),
    ),
)


@dataclass(frozen=True)
class ConversionMetric:
    """The metric the reports count conversions of: its name, and the integration it comes from (key or name)."""

    name: str
    integration: str | None = None


def conversion_metric(config: Mapping[str, Any]) -> ConversionMetric:
    """The setting as given (checked by `report_settings_problems`)."""
    value = config.get(CONVERSION_METRIC, DEFAULT_CONVERSION_METRIC)
    if isinstance(value, str):
        return ConversionMetric(value.strip())
    integration = value.get("integration")
    return ConversionMetric(value["name"].strip(), integration.strip() if integration else None)


def report_settings_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    metric = config.get(CONVERSION_METRIC, DEFAULT_CONVERSION_METRIC)
    entry = {"name": metric} if isinstance(metric, str) else metric
    name = entry.get("name") if isinstance(entry, dict) else None
    integration = entry.get("integration") if isinstance(entry, dict) else None
    if (
        not isinstance(entry, dict)
        or set(entry) - {"name", "integration"}
        or not isinstance(name, str)
        or not name.strip()
        or (integration is not None and (not isinstance(integration, str) or not integration.strip()))
    ):
        problems.append(
            f'Setting `{CONVERSION_METRIC}` must be a metric name, e.g. "{DEFAULT_CONVERSION_METRIC}", or an object '
            f'{{"name": ..., "integration": ...}} (integration: its key or name, e.g. "shopify"), not '
            f"{str(metric)[:40]!r}"
        )
    lookback = config.get(LOOKBACK_DAYS, DEFAULT_LOOKBACK_DAYS)
    if isinstance(lookback, bool) or not isinstance(lookback, int) or not 1 <= lookback <= MAX_LOOKBACK_DAYS:
        problems.append(
            f"Setting `{LOOKBACK_DAYS}` must be a whole number of days from 1 to {MAX_LOOKBACK_DAYS}, not "
            f"{str(lookback)[:40]}: Klaviyo revises recent days' reports, so each run reads at least the last day "
            "again, and at most a year"
        )
    budget = config.get(REQUEST_BUDGET)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        problems.append(
            f"Setting `{REQUEST_BUDGET}` must be a whole number of requests, 1 or more, not {str(budget)[:40]} "
            "(leave it out for no limit but Klaviyo's daily quota)"
        )
    return problems
