"""A report's answer as rows: groupings and statistics as columns, a series' days as the account's days whatever
form Klaviyo writes them in, days with nothing sent left out, and answers that are not what the spec describes
refused."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from tap_klaviyo.codec import NotAsSpecified, Unreadable
from tap_klaviyo.report_days import Days
from tap_klaviyo.report_rows import decoder, query, series_rows, value_rows

TOKYO = ZoneInfo("Asia/Tokyo")
DAYS = Days(date(2026, 3, 7), date(2026, 3, 9))
KEYS = ("flow_id", "flow_message_id", "send_channel")
GROUPS = {"flow_id": "XVTP5Q", "flow_message_id": "01GMRWDSA0ARTAKE1SFX8JGXAY", "send_channel": "email"}


def series(date_times: list[str], **statistics: list) -> bytes:
    results = [{"groupings": GROUPS, "statistics": statistics}]
    return json.dumps({"data": {"attributes": {"results": results, "date_times": date_times}}}).encode()


@pytest.mark.parametrize(
    "date_times",
    [
        # The account's midnights with its offset, with a UTC offset on the same wall-clock time, or as UTC instants.
        ["2026-03-07T00:00:00+09:00", "2026-03-08T00:00:00+09:00", "2026-03-09T00:00:00+09:00"],
        ["2026-03-07T00:00:00+00:00", "2026-03-08T00:00:00+00:00", "2026-03-09T00:00:00+00:00"],
        ["2026-03-06T15:00:00+00:00", "2026-03-07T15:00:00Z", "2026-03-08 15:00:00+00:00"],
    ],
)
def test_a_series_day_is_the_accounts_day_and_a_day_with_nothing_sent_is_no_row(date_times):
    document = decoder(series=True)(series(date_times, recipients=[3.0, 0.0, 2], open_rate=[0.5, 0.0, None]))
    rows = list(
        series_rows(document, KEYS, ["recipients", "open_rate", "clicks"], {"conversion_metric_id": "M"}, DAYS, TOKYO)
    )
    assert rows == [
        {
            **GROUPS,
            "date": "2026-03-07",
            "conversion_metric_id": "M",
            "recipients": 3.0,
            "open_rate": 0.5,
            "clicks": None,
        },
        {
            **GROUPS,
            "date": "2026-03-09",
            "conversion_metric_id": "M",
            "recipients": 2,
            "open_rate": None,
            "clicks": None,
        },
    ]


def test_a_series_answer_for_other_days_or_of_other_lengths_is_refused():
    document = decoder(series=True)(series(["2026-03-10T00:00:00+09:00"], recipients=[1.0]))
    with pytest.raises(NotAsSpecified, match="outside the days asked for"):
        list(series_rows(document, KEYS, ["recipients"], {}, DAYS, TOKYO))
    with pytest.raises(NotAsSpecified, match="as long as `date_times`"):
        decoder(series=True)(series(["2026-03-07T00:00:00+09:00"], recipients=[1.0, 2.0]))
    with pytest.raises(NotAsSpecified, match="date_times"):
        decoder(series=True)(json.dumps({"data": {"attributes": {"results": []}}}).encode())
    with pytest.raises(Unreadable):
        decoder(series=True)(b'{"data": {"attr')


def test_a_values_row_is_the_groupings_and_every_statistic_and_a_result_without_its_key_is_refused():
    results = [
        {
            "groupings": {"campaign_id": "C", "campaign_message_id": "M", "send_channel": "sms"},
            "statistics": {"opens": 2.0},
        }
    ]
    document = decoder(series=False)(json.dumps({"data": {"attributes": {"results": results}}}).encode())
    keys = ("campaign_id", "campaign_message_id", "send_channel")
    assert list(value_rows(document, keys, ["opens", "clicks"], {"conversion_metric_id": "X"})) == [
        {
            "campaign_id": "C",
            "campaign_message_id": "M",
            "send_channel": "sms",
            "conversion_metric_id": "X",
            "opens": 2.0,
            "clicks": None,
        }
    ]
    del results[0]["groupings"]["send_channel"]
    document = decoder(series=False)(json.dumps({"data": {"attributes": {"results": results}}}).encode())
    with pytest.raises(NotAsSpecified, match="send_channel"):
        list(value_rows(document, keys, ["opens"], {}))
    with pytest.raises(NotAsSpecified, match="results"):
        decoder(series=False)(b'{"data": []}')


def test_a_query_names_every_statistic_whole_days_the_metric_and_the_grouping():
    body = json.loads(query("flow-series-report", ["opens", "clicks"], DAYS, TOKYO, "M", KEYS, "daily"))
    assert body == {
        "data": {
            "type": "flow-series-report",
            "attributes": {
                "statistics": ["opens", "clicks"],
                "timeframe": {"start": "2026-03-07T00:00:00+09:00", "end": "2026-03-09T23:59:59+09:00"},
                "conversion_metric_id": "M",
                "group_by": list(KEYS),
                "interval": "daily",
            },
        }
    }
    assert (
        "interval"
        not in json.loads(query("campaign-values-report", ["opens"], DAYS, TOKYO, "M", KEYS, None))["data"][
            "attributes"
        ]
    )
