"""The fake's report queries, as the spec defines them: bodies checked (required attributes, statistics, timeframes of
at most a year and daily series of at most 60 days, group-bys and filters), the three limits, the account's
timezone, values bucketed by send day, late revisions, and pages that go with their body."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import requests

from fake_klaviyo import REVISION, FakeKlaviyo, generate_account
from tests.kit import API_KEY, conversion_metric, error, fake_command, klaviyo_metric
from tests.reports_kit import assert_fits

pytestmark = pytest.mark.fake

STATISTICS = ["recipients", "opens_unique", "open_rate", "conversions", "conversion_value"]
VALUES, SERIES = "/api/campaign-values-reports", "/api/flow-series-reports"


@pytest.fixture(scope="module")
def account():
    return generate_account(seed=23, campaigns=80, flows=12, events_per_metric=10)


@pytest.fixture(scope="module")
def fake(account):
    with FakeKlaviyo(account, api_key=API_KEY, report_page_size=7) as server:
        yield server


@pytest.fixture(scope="module")
def metric(account) -> str:
    return conversion_metric(account)["id"]


def post(fake: FakeKlaviyo, path: str, body: Any, url: str | None = None, **headers: str) -> requests.Response:
    sent = {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION, "Content-Type": "application/json"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url or fake.url + path, data=data, headers={**sent, **headers}, timeout=10)


def query(kind: str, first: date, last: date, metric: str, **attributes: Any) -> dict:
    frame = {"start": f"{first}T00:00:00+00:00", "end": f"{last}T23:59:59+00:00"}
    extra = {"interval": "daily"} if kind == "flow-series-report" else {}
    attributes = {"statistics": STATISTICS, "timeframe": frame, "conversion_metric_id": metric, **extra, **attributes}
    return {"data": {"type": kind, "attributes": {k: v for k, v in attributes.items() if v is not None}}}


def values(first: date, last: date, metric: str, **attributes: Any) -> dict:
    return query("campaign-values-report", first, last, metric, **attributes)


def series(first: date, last: date, metric: str, **attributes: Any) -> dict:
    return query("flow-series-report", first, last, metric, **attributes)


def every_page(fake, path: str, body: dict) -> list[dict]:
    documents = [post(fake, path, body).json()]
    while documents[-1]["links"]["next"]:
        documents.append(post(fake, path, body, url=documents[-1]["links"]["next"]).json())
    for document in documents:
        assert_fits(document, path, "response")
    return documents


def results(fake, path: str, body: dict) -> list[dict]:
    return [r for d in every_page(fake, path, body) for r in d["data"]["attributes"]["results"]]


def refused(response: requests.Response, status: int = 400) -> str:
    """Klaviyo's detail and where it points."""
    assert response.status_code == status, response.text
    err = error(response)
    return f"{err['detail']} @{err['source'].get('pointer') or err['source'].get('parameter')}"


def test_a_values_report_totals_each_message_sent_on_the_accounts_days_of_its_timeframe(account, fake, metric):
    book = fake.reports
    # A campaign sent in Toronto's evening is sent the next day in UTC: it counts on Toronto's day.
    sent = {c["id"]: c["attributes"]["send_time"] for c in account.campaigns}
    evening = [
        (m, d) for m, d in book.campaign_messages if (datetime.fromisoformat(sent[m.owner_id]) + book.shift).date() != d
    ]
    assert evening, "the account has a campaign sent on different days in UTC and in its timezone"
    message, day = evening[0]
    grouping = {
        "campaign_id": message.owner_id,
        "campaign_message_id": message.message_id,
        "send_channel": message.send_channel,
    }
    assert grouping in [r["groupings"] for r in results(fake, VALUES, values(day, day, metric))]
    next_day = day + timedelta(days=1)
    assert grouping not in [r["groupings"] for r in results(fake, VALUES, values(next_day, next_day, metric))]
    first = book.today - timedelta(days=364)
    year = results(fake, VALUES, values(first, book.today, metric))
    expected = {
        m.message_id: {k: v for k, v in book.campaign_counts(m, d, metric).statistics().items() if k in STATISTICS}
        for m, d in book.campaign_messages
        if first <= d
    }
    assert len(year) > 7, "more than a page"
    assert {r["groupings"]["campaign_message_id"]: r["statistics"] for r in year} == expected
    assert all(isinstance(v, float) for r in year for v in r["statistics"].values()), "counts come as floats"


def test_a_series_gives_each_days_values_at_the_accounts_midnights(fake, metric):
    book = fake.reports
    first, last = book.today - timedelta(days=59), book.today
    documents = every_page(fake, SERIES, series(first, last, metric))
    times = documents[0]["data"]["attributes"]["date_times"]
    assert len(times) == 60 and all(t[10:19] == "T00:00:00" for t in times)
    assert {datetime.fromisoformat(t).utcoffset() for t in times} <= {timedelta(hours=-5), timedelta(hours=-4)}
    found = {
        (r["groupings"]["flow_message_id"], times[i][:10]): r["statistics"]["recipients"][i]
        for d in documents
        for r in d["data"]["attributes"]["results"]
        for i in range(60)
        if r["statistics"]["recipients"][i]
    }
    expected = {
        (m.message_id, day.isoformat()): float(counts.recipients)
        for m, start in book.flow_messages
        for day, counts in book.flow_days(m, start, first, last, metric)
    }
    assert found == expected and expected


def test_late_activity_revises_recent_days_only(account, metric):
    fake = FakeKlaviyo(account, api_key=API_KEY)
    book = fake.reports
    old, recent = book.today - timedelta(days=40), book.today - timedelta(days=3)
    with fake:
        before = [results(fake, SERIES, series(day, day, metric)) for day in (old, recent)]
        book.revise(7)
        after = [results(fake, SERIES, series(day, day, metric)) for day in (old, recent)]
    assert before[0] == after[0], "older days stay as they were"
    assert before[1] != after[1]
    assert [r["groupings"] for r in before[1]] == [r["groupings"] for r in after[1]]
    conversions = [sum(r["statistics"]["conversions"][0] for r in found) for found in (before[1], after[1])]
    assert conversions[1] > conversions[0]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"statistics": None}, "'statistics' is a required attribute. @/data/attributes/statistics"),
        ({"statistics": ["opens", "spam_rate"]}, "'spam_rate' is not a valid statistic"),
        ({"statistics": []}, "non-empty list"),
        ({"conversion_metric_id": None}, "'conversion_metric_id' is a required attribute"),
        (
            {"conversion_metric_id": "nope"},
            "No metric with id 'nope' was found. @/data/attributes/conversion_metric_id",
        ),
        ({"interval": "daily"}, "'interval' is not a valid attribute"),
        ({"timeframe": {"start": "2026-01-01T00:00:00"}}, "either `key`, or `start` and `end`"),
        ({"timeframe": {"key": "last_2_days"}}, "'last_2_days' is not a valid timeframe key"),
        ({"timeframe": {"start": "2025-01-01", "end": "2025-01-02"}}, "`start` must be an ISO 8601 date-time"),
        ({"timeframe": {"start": "2025-01-01T00:00:00", "end": "2026-01-01T00:00:01"}}, "at most 1 year long"),
        ({"timeframe": {"start": "2025-02-01T00:00:00", "end": "2025-01-01T00:00:00"}}, "end is before its start"),
        ({"group_by": ["campaign_id", "send_channel"]}, "must include campaign_id, campaign_message_id"),
        ({"group_by": ["campaign_id", "campaign_message_id", "flow_id"]}, "`group_by` must list some of"),
        ({"filter": "equals(flow_id,'X')"}, "'flow_id' cannot be filtered on"),
        ({"filter": "any(campaign_id,['X'])"}, "'any' cannot filter 'campaign_id'; allowed: equals, contains-any"),
        ({"filter": "contains-all(campaign_id,['X'])"}, "'contains-all' cannot filter 'campaign_id'"),
        ({"filter": "and(equals(campaign_id,'X'),contains-any(campaign_id,['Y']))"}, "Only one filter can be used"),
        ({"filter": "equals(send_channel,'fax')"}, "send_channel can be email, sms, push-notification, whatsapp"),
        ({"filter": "or(equals(campaign_id,'X'),equals(campaign_id,'Y'))"}, "'or' is not supported"),
        ({"filter": f"contains-any(campaign_id,[{','.join(repr(str(n)) for n in range(101))}])"}, "At most 100 items"),
    ],
)
def test_a_values_query_klaviyo_refuses_is_refused(fake, metric, change, said):
    body = values(date(2025, 1, 1), date(2025, 1, 31), metric)
    for name, value in change.items():
        body["data"]["attributes"][name] = value
    body["data"]["attributes"] = {k: v for k, v in body["data"]["attributes"].items() if v is not None}
    assert said in refused(post(fake, VALUES, body))


def test_a_series_query_klaviyo_refuses_is_refused_and_the_longest_ones_are_answered(account, fake, metric):
    today = fake.reports.today
    body = series(today - timedelta(days=59), today, metric)
    assert post(fake, SERIES, body).status_code == 200, "60 days"
    assert "at most 60 days" in refused(post(fake, SERIES, series(today - timedelta(days=60), today, metric)))
    assert "'interval' is a required attribute" in refused(
        post(fake, SERIES, series(today, today, metric, interval=None))
    )
    assert "must include flow_message_id, flow_id" in refused(
        post(fake, SERIES, series(today, today, metric, group_by=["flow_id", "send_channel"]))
    )
    # Klaviyo's own message metrics are no conversion.
    opened = klaviyo_metric(account, "Opened Email")["id"]
    assert "does not support querying for values data" in refused(post(fake, SERIES, series(today, today, opened)))
    one_year = values(today - timedelta(days=364), today, metric)
    assert post(fake, VALUES, one_year).status_code == 200
    # The envelope and the medium.
    assert "only `data`" in refused(post(fake, VALUES, {**one_year, "meta": {}}))
    assert "`type` 'campaign-values-report'" in refused(post(fake, VALUES, {"data": {**body["data"]}}))
    assert "JSON parse error" in refused(post(fake, VALUES, b"{"))
    assert post(fake, VALUES, one_year, **{"Content-Type": "text/plain"}).status_code == 415
    assert refused(requests.get(fake.url + VALUES, headers={"Authorization": f"Klaviyo-API-Key {API_KEY}"}), 405)


def test_pages_go_with_their_body_and_groupings_and_filters_apply(fake, metric):
    today = fake.reports.today
    body = values(today - timedelta(days=364), today, metric)
    document = post(fake, VALUES, body).json()
    assert document["links"]["next"] and "page_cursor=" in document["links"]["next"]
    other = values(today - timedelta(days=363), today, metric)
    assert "does not belong to this query" in refused(post(fake, VALUES, other, url=document["links"]["next"]))
    sms = results(fake, VALUES, values(today - timedelta(days=364), today, metric, filter="equals(send_channel,'sms')"))
    assert sms and {r["groupings"]["send_channel"] for r in sms} == {"sms"}
    named = results(
        fake,
        VALUES,
        values(
            today - timedelta(days=364),
            today,
            metric,
            group_by=["campaign_id", "campaign_message_id", "campaign_message_name"],
        ),
    )
    assert all(set(r["groupings"]) == {"campaign_id", "campaign_message_id", "campaign_message_name"} for r in named)
    assert (
        post(
            fake, VALUES, values(today, today, metric, group_by=["campaign_id", "campaign_message_id", "tag_id"])
        ).status_code
        == 501
    )


def test_the_burst_the_steady_rate_and_the_daily_quota_are_each_answered_429_with_retry_after(account, metric):
    today = date.today()
    body = values(today, today, metric)
    with FakeKlaviyo(
        account, api_key=API_KEY, rate_limits={"campaign_values": (1, 1000, 1000), "flow_series": (100, 2, 1000)}
    ) as fake:
        while time.time() % 1 > 0.7:  # two requests within one second
            time.sleep(0.05)
        first, second = post(fake, VALUES, body), post(fake, VALUES, body)
        assert first.status_code == 200 and first.headers["RateLimit-Limit"] == "1000"
        assert second.status_code == 429 and second.headers["Retry-After"] == "1"
        while time.time() % 60 > 55:  # three requests within one minute
            time.sleep(0.5)
        answers = [post(fake, SERIES, series(today, today, metric)) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    with FakeKlaviyo(
        account, api_key=API_KEY, rate_limits={"campaign_values": (100, 1000, 2), "flow_series": (1, 2, 225)}
    ) as fake:
        answers = [post(fake, VALUES, body) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert 86000 < int(answers[2].headers["Retry-After"]) <= 86400, "the day's quota is whole again in a day"
        assert "Request was throttled" in error(answers[2])["detail"]
        fake.new_day()
        assert post(fake, VALUES, body).status_code == 200


def test_the_fakes_command_serves_reports_a_page_of_the_size_asked():
    with fake_command("--report-page-size", "2", "--events-per-metric", "10", "--no-prewarm") as served:
        headers = {"Authorization": f"Klaviyo-API-Key {served.api_key}", "revision": REVISION}
        metric = conversion_metric(generate_account(1, events_per_metric=10))["id"]
        today = date.today()
        body = values(today - timedelta(days=364), today - timedelta(days=1), metric)
        answer = requests.post(served.url + VALUES, json=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]["attributes"]["results"]) == 2 and answer.json()["links"]["next"]
