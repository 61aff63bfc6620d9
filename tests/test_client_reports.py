"""The client's report queries against mocked HTTP: a JSON body POSTed, then again to each links.next, retried as a
GET is; a 429 for the spent daily quota is QuotaSpent at once, never waited for; a refusal names POST."""

from __future__ import annotations

import json

import pytest

from tap_klaviyo import endpoints
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.failures import BadRequest, QuotaSpent
from tap_klaviyo.report_rows import decoder
from tests.kit import CLIENT_API, CLIENT_KEY

URL = f"{CLIENT_API}/api/flow-series-reports"
BODY = json.dumps({"data": {"type": "flow-series-report", "attributes": {"interval": "daily"}}}).encode()


def report(next_url: str | None = None) -> dict:
    attributes = {"results": [], "date_times": []}
    return {"data": {"type": "flow-series-report", "id": "r", "attributes": attributes}, "links": {"next": next_url}}


def pages(client) -> list[dict]:
    return list(client.reports(endpoints.FLOW_SERIES, BODY, stream="flow_series_reports", decode=decoder(True)))


def test_a_report_is_posted_and_each_next_page_is_posted_with_the_same_body(client, requests_mock, clock):
    next_url = f"{URL}/?page_cursor=abc"
    requests_mock.post(URL, json=report(next_url))
    requests_mock.post(next_url, [{"status_code": 503}, {"json": report()}])
    assert len(pages(client)) == 2
    history = requests_mock.request_history
    assert [r.method for r in history] == ["POST"] * 3 and history[1].url == history[2].url == next_url
    for request in history:
        assert request.body == BODY
        assert request.headers["Content-Type"] == "application/vnd.api+json"
        assert request.headers["Authorization"] == f"Klaviyo-API-Key {CLIENT_KEY}"


def test_the_spent_daily_quota_is_not_waited_for(client, requests_mock, clock):
    requests_mock.post(URL, status_code=429, headers={"Retry-After": "41000"}, json={"errors": []})
    with pytest.raises(QuotaSpent, match="daily quota of 225 /api/flow-series-reports requests") as caught:
        pages(client)
    assert caught.value.seconds == 41000 and len(requests_mock.request_history) == 1
    assert all(wait < 60 for wait in clock.sleeps)


def test_a_throttle_within_the_minute_is_waited_out(client, requests_mock, clock):
    requests_mock.post(URL, [{"status_code": 429, "headers": {"Retry-After": "45"}}, {"json": report()}])
    assert len(pages(client)) == 1
    assert 45 in clock.sleeps


def test_a_long_wait_on_an_endpoint_without_a_daily_quota_still_stops_the_run(client, requests_mock):
    requests_mock.get(f"{CLIENT_API}/api/flows", status_code=429, headers={"Retry-After": "41000"})
    with pytest.raises(KlaviyoError, match="asked to wait 41000 s before retrying GET /api/flows") as caught:
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    assert not isinstance(caught.value, QuotaSpent)


def test_a_refused_report_names_post_and_where_klaviyo_says_the_problem_is(client, requests_mock):
    detail = "Metric AbC123 does not support querying for values data."
    source = {"pointer": "/data/attributes/conversion_metric_id"}
    errors = {"errors": [{"id": "e", "code": "invalid", "title": "Invalid input.", "detail": detail, "source": source}]}
    requests_mock.post(URL, status_code=400, json=errors)
    with pytest.raises(BadRequest) as caught:
        pages(client)
    assert str(caught.value).startswith(
        "Klaviyo refused POST /api/flow-series-reports for stream 'flow_series_reports'"
    )
    assert (caught.value.detail, caught.value.source) == (detail, "/data/attributes/conversion_metric_id")
