"""The report streams: what each campaign message and each flow message earned, as Klaviyo's Reporting API reports
it (the numbers its UI shows: statistics attributed to the day a message was sent, by Klaviyo's attribution).

A row is keyed without the request's timeframe: a campaign message's totals to date (a later read of the same
message replaces the row) and a flow message's statistics on one day. Days are the account's, in its timezone
(from /api/accounts). A run reads the days it has not read yet and the lookback's last days again, which Klaviyo
revises (see report_days.py), in as few requests as Klaviyo's limits allow: a year of campaigns, 60 days of flows
a request. The queries allow 1 a second, 2 a minute and 225 a day per account: the client paces the first two;
the daily quota is never waited for. When Klaviyo says it is spent (or `report_request_budget` is reached), the
stream stops with one warning, its state records the days read, the other streams run on, and the next run goes
on from there. The first request is sent before the run writes anything, so a conversion metric Klaviyo refuses,
or a missing scope, stops the run at once.
"""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tap_klaviyo import report_days, report_rows, stopping
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.codec import decode_document
from tap_klaviyo.endpoints import ACCOUNTS, CAMPAIGNS, FLOWS, METRICS, Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.failures import BadRequest, QuotaSpent
from tap_klaviyo.records import Resource
from tap_klaviyo.report_days import Days
from tap_klaviyo.report_settings import (
    CONVERSION_METRIC,
    DEFAULT_LOOKBACK_DAYS,
    LOOKBACK_DAYS,
    REQUEST_BUDGET,
    conversion_metric,
)
from tap_klaviyo.streams.base import KlaviyoStream, StreamRow
from tap_klaviyo.times import parse_datetime

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams.run import Run

# Klaviyo's pace for the report queries: two a minute.
PER_MINUTE = 2
# A statistic's column type (see tap_klaviyo/schemas/from_spec.py).
NUMBER = ["number", "null"]


class BudgetSpent(Exception):
    """The stream has made as many requests as `report_request_budget` allows."""


class ReportStream(KlaviyoStream):
    """One report query's rows, read by timeframes of whole days."""

    # A run reads some of the rows (the days it has not read, and the lookback's): they are upserted, never mirrored.
    READ_WHOLE_TO_MIRROR = False
    MIRRORABLE = False
    KEEPS_DAYS = True
    REPORT_TYPE = ""
    GROUP_BY: tuple[str, ...] = ()
    # The longest timeframe Klaviyo reports on in one request, in days.
    LONGEST_DAYS = 365
    INTERVAL: str | None = None

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        self.endpoint = row.sources[0].endpoint
        self.directory = run.directory
        # Every statistic the query offers is a numeric column (the schema is generated from its statistics).
        self.statistics = [name for name, node in self.schema["properties"].items() if node["type"] == NUMBER]
        self.lookback = int(self.config.get(LOOKBACK_DAYS, DEFAULT_LOOKBACK_DAYS))
        self.budget: int | None = self.config.get(REQUEST_BUDGET)
        self.sent = 0
        # The run's timeframes, and the pages of the first one, whose first is asked before any record is written.
        self._steps: list[Days] | None = None
        self._first: tuple[Days, Iterator[dict[str, Any]]] | None = None
        self._quota: QuotaSpent | None = None

    def endpoints(self) -> tuple[Endpoint, ...]:
        return (METRICS, ACCOUNTS, self.endpoint)

    def lookups(self) -> dict[Endpoint, Callable[[], object]]:
        return {METRICS: lambda: self.directory.all(self.name), ACCOUNTS: self.run.account, self.endpoint: self.prepare}

    @cached_property
    def metric(self) -> Resource | None:
        """The conversion metric (None: the account has none of that name), found and logged once a run."""
        wanted = conversion_metric(self.config)
        metrics = self.directory.find(wanted.name, self.name, wanted.integration)
        of = f" of integration '{wanted.integration}'" if wanted.integration else ""
        if not metrics:
            self.logger.warning(
                "The account has no metric named '%s'%s (setting `%s`): stream '%s' is empty.",
                wanted.name,
                of,
                CONVERSION_METRIC,
                self.name,
            )
            return None
        integration = metrics[0]["attributes"].get("integration") or {}
        self.logger.info(
            "Stream '%s' counts conversions of metric %s ('%s', integration %s).",
            self.name,
            metrics[0]["id"],
            metrics[0]["attributes"].get("name"),
            integration.get("name"),
        )
        return metrics[0]

    @cached_property
    def tz(self) -> ZoneInfo:
        return self.run.timezone()

    def prepare(self) -> None:
        """Plan the run's timeframes and ask for the first one's first page (before the run writes anything)."""
        if self._steps is not None:
            return
        self._steps = []
        if self.metric is None:
            return
        held = report_days.held_days(self.get_context_state(None), self.metric["id"])
        wanted = self.wanted(held)
        if wanted is None:
            return
        self._steps = report_days.plan(held, wanted, self.lookback, self.LONGEST_DAYS)
        if not self._steps:
            return
        self.logger.info(
            "Stream '%s' reads days %s to %s (timezone %s) in %d timeframe(s): %d request(s) at least, about "
            "%.0f min at Klaviyo's limit of %d a minute.",
            self.name,
            min(step.first for step in self._steps),
            max(step.last for step in self._steps),
            self.tz.key,
            len(self._steps),
            len(self._steps),
            (len(self._steps) - 1) / PER_MINUTE,
            PER_MINUTE,
        )
        pages = self.pages(self._steps[0])
        try:
            first = next(pages)
        except QuotaSpent as exc:
            self._quota = exc
            return
        self._first = (self._steps[0], itertools.chain([first], pages))

    def wanted(self, held: Days | None) -> Days | None:
        """The days this run wants (`report_days.wanted`)."""
        return report_days.wanted(
            self.config.get("start_date"), self.config.get("end_date"), self.tz, held, self.history_start
        )

    def history_start(self) -> datetime.datetime | None:
        """When the first of the report's campaigns or flows was created (None: there is none)."""
        raise NotImplementedError

    def oldest(self, endpoint: Endpoint, field: str, params: dict[str, str]) -> datetime.datetime | None:
        """The oldest `field` of an entity endpoint's resources (one resource, sorted by it)."""
        kind = endpoint.path.rsplit("/", 1)[-1][:-1]
        query = {**params, "sort": field, f"fields[{kind}]": field}
        data: list[Resource] = self.client.first_page(
            endpoint, query, stream=self.name, decode=decode_document, page_size=1
        )["data"]
        return parse_datetime(data[0]["attributes"][field]) if data else None

    def pages(self, days: Days) -> Iterator[dict[str, Any]]:
        """A timeframe's pages, each request within the budget."""
        assert self.metric is not None
        body = report_rows.query(
            self.REPORT_TYPE, self.statistics, days, self.tz, self.metric["id"], self.GROUP_BY, self.INTERVAL
        )
        pages = self.client.reports(
            self.endpoint, body, stream=self.name, decode=report_rows.decoder(self.INTERVAL is not None)
        )
        while True:
            if self.budget is not None and self.sent >= self.budget:
                raise BudgetSpent
            self.wait_for_turn()
            self.sent += 1
            try:
                document = next(pages)
            except BadRequest as exc:
                raise self.refused(exc) from None
            yield document
            if not (document.get("links") or {}).get("next"):
                return

    def wait_for_turn(self) -> None:
        """Wait for the pacer in steps of a second at most, so that a signal stops the run within one rather than
        after the half minute a report request may wait for its turn."""
        pacer = self.client.pacer(self.endpoint)
        while (wait := pacer.ready_in()) > 0:
            time.sleep(min(wait, 1.0))
            stopping.check()

    def refused(self, exc: BadRequest) -> KlaviyoError:
        """A 400: about the conversion metric (Klaviyo reports some metrics' conversions only), or as it is."""
        if "conversion_metric" not in exc.source and "metric" not in exc.detail.casefold():
            return exc
        assert self.metric is not None
        return KlaviyoError(
            f"Klaviyo refused setting `{CONVERSION_METRIC}` ('{self.metric['attributes'].get('name')}', metric "
            f"{self.metric['id']}) for stream '{self.name}': {exc.detail} Set it to a metric Klaviyo counts as a "
            'conversion (e.g. "Placed Order"), or deselect the report streams.'
        )

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        self.prepare()
        assert self._steps is not None
        if self.metric is None:
            return
        state = self.get_context_state(None)
        held = report_days.held_days(state, self.metric["id"])
        if self._quota is not None:
            self.stopped(self._quota, held)
            return
        for days in self._steps:
            pages = self._first[1] if self._first is not None and self._first[0] == days else self.pages(days)
            self._first = None
            try:
                for document in pages:
                    yield from self.rows(document, days)
            except (QuotaSpent, BudgetSpent) as exc:
                self.stopped(exc, held)
                return
            held = days if held is None else held.joined(days)
            report_days.keep(state, held, self.metric["id"])
            self.write_state_now()

    def rows(self, document: dict[str, Any], days: Days) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def stopped(self, exc: QuotaSpent | BudgetSpent, held: Days | None) -> None:
        """One warning: why the stream stopped, and where the next run goes on."""
        kept = f"days {held} are read and saved in the state" if held else "no day is read yet"
        if isinstance(exc, BudgetSpent):
            why = f"setting `{REQUEST_BUDGET}` allows {self.budget} requests per report stream and run"
        else:
            resets = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=exc.seconds)
            why = (
                f"Klaviyo's daily quota of {self.endpoint.daily_quota} {self.endpoint.path} requests for this account "
                f"(shared by every private-key integration on it) is spent; it resets in {exc.seconds / 3600:.1f} h, "
                f"at about {resets:%Y-%m-%d %H:%M} UTC"
            )
        self.logger.warning(
            "Stream '%s' stopped after %d request(s): %s. The other streams run on; %s, and the next run goes on from "
            "there.",
            self.name,
            self.sent,
            why,
            kept,
        )


class CampaignValuesStream(ReportStream):
    """Each campaign message's totals to date, per send channel: read by the day the campaign was sent."""

    REPORT_TYPE = "campaign-values-report"
    GROUP_BY = ("campaign_id", "campaign_message_id", "send_channel")

    def history_start(self) -> datetime.datetime | None:
        # Klaviyo lists campaigns one channel at a time.
        found = [
            self.oldest(CAMPAIGNS, "created_at", {"filter": f"equals(messages.channel,'{channel}')"})
            for channel in ("email", "sms", "mobile_push")
        ]
        return min((moment for moment in found if moment is not None), default=None)

    def rows(self, document: dict[str, Any], days: Days) -> Iterator[dict[str, Any]]:
        assert self.metric is not None
        extra = {"conversion_metric_id": self.metric["id"]}
        return report_rows.value_rows(document, self.GROUP_BY, self.statistics, extra)


class FlowSeriesStream(ReportStream):
    """Each flow message's statistics per send channel and day."""

    REPORT_TYPE = "flow-series-report"
    GROUP_BY = ("flow_id", "flow_message_id", "send_channel")
    LONGEST_DAYS = 60
    INTERVAL = "daily"

    def history_start(self) -> datetime.datetime | None:
        return self.oldest(FLOWS, "created", {})

    def rows(self, document: dict[str, Any], days: Days) -> Iterator[dict[str, Any]]:
        assert self.metric is not None
        extra = {"conversion_metric_id": self.metric["id"]}
        return report_rows.series_rows(document, self.GROUP_BY, self.statistics, extra, days, self.tz)
