"""The HTTP client against mocked HTTP: pages, retries, Retry-After and the errors a user sees."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tap_klaviyo import client as client_module
from tap_klaviyo import endpoints, pacing
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.codec import decode_document, skim
from tap_klaviyo.errors import KlaviyoError

API = "https://klaviyo.test"
KEY = "pk_secret_unit_test_key"


class FakeTime:
    """Stands in for the `time` module of the client and the pacer: sleeping moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(client_module, "time", fake)
    monkeypatch.setattr(pacing, "time", fake)
    return fake


@pytest.fixture
def client(clock: FakeTime) -> KlaviyoClient:
    return KlaviyoClient(api_key=KEY, api_url=API, revision="2026-07-15", user_agent="t/1", max_retries=3)


def page(ids: list[str], next_url: str | None = None) -> dict:
    return {
        "data": [{"type": "flow", "id": i, "attributes": {}} for i in ids],
        "links": {"self": "x", "next": next_url},
    }


def error(status: int, detail: str, parameter: str | None = None) -> dict:
    source = {"parameter": parameter} if parameter else {"pointer": "/data"}
    return {"errors": [{"id": "e", "status": status, "code": "c", "title": "t", "detail": detail, "source": source}]}


def test_follows_links_next_verbatim_and_sends_headers(client, requests_mock):
    next_url = f"{API}/api/flows?page%5Bsize%5D=50&page%5Bcursor%5D=abc%3D%3D"
    requests_mock.get(f"{API}/api/flows", [{"json": page(["a", "b"], next_url)}, {"json": page(["c"])}])
    ids = [r["id"] for d in client.documents(endpoints.FLOWS, {"sort": "id"}, stream="flows") for r in d["data"]]
    assert ids == ["a", "b", "c"]
    first, second = requests_mock.request_history
    assert parse_qs(urlsplit(first.url).query) == {"sort": ["id"], "page[size]": ["50"]}
    assert second.url == next_url
    for request in requests_mock.request_history:
        assert request.headers["Authorization"] == f"Klaviyo-API-Key {KEY}"
        assert request.headers["revision"] == "2026-07-15"
        assert request.headers["Accept"] == "application/vnd.api+json"


def test_metrics_send_no_page_size(client, requests_mock):
    requests_mock.get(f"{API}/api/metrics", json=page(["m"]))
    list(client.documents(endpoints.METRICS, {}, stream="metrics"))
    assert "page" not in requests_mock.last_request.url


def test_retry_after_is_honoured_on_429(client, clock, requests_mock):
    requests_mock.get(
        f"{API}/api/flows",
        [{"status_code": 429, "headers": {"Retry-After": "7"}, "json": error(429, "throttled")}, {"json": page(["a"])}],
    )
    assert [r["id"] for d in client.documents(endpoints.FLOWS, {}, stream="flows") for r in d["data"]] == ["a"]
    assert clock.sleeps == [7.0]


def test_requests_are_paced_to_the_endpoint_tier(client, clock, requests_mock):
    requests_mock.get(f"{API}/api/flows", json=page(["a"]))
    for _ in range(10):
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    # Flows allow 3/s: with headroom, two a second, half a second apart, so ten requests span four and a half.
    assert clock.now - 100.0 == pytest.approx(4.5)


@pytest.mark.parametrize(
    "fault",
    [
        {"status_code": 503, "json": error(503, "down")},
        {"status_code": 500, "text": "oops"},
        {"exc": requests.ConnectionError("reset")},
        {"exc": requests.Timeout("slow")},
        {"status_code": 200, "text": '{"data": [{"type": "flow", "id": "a"'},
    ],
    ids=["503", "500", "dropped", "timeout", "truncated"],
)
def test_transient_faults_are_retried_with_backoff(client, clock, requests_mock, fault):
    requests_mock.get(f"{API}/api/events", [fault, fault, {"json": page(["a"])}])
    assert [r["id"] for d in client.documents(endpoints.EVENTS, {}, stream="x") for r in d["data"]] == ["a"]
    assert len(clock.sleeps) == 2
    assert 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0


def test_gives_up_after_the_retry_budget_with_one_line(client, requests_mock):
    requests_mock.get(f"{API}/api/flows", status_code=503, json=error(503, "down"))
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    assert len(requests_mock.request_history) == 4
    message = str(caught.value)
    assert "\n" not in message and "/api/flows" in message and "max_retries" in message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, error(401, "Missing or invalid authorization scheme."), "rejected the API key (401)"),
        (403, error(403, "missing scopes"), "lacks the 'events:read' scope that stream 'opened_email' needs"),
        (400, error(400, "Invalid filter provided.", "filter"), "(400): Invalid filter provided."),
    ],
)
def test_client_errors_name_the_fix_and_never_the_key(client, requests_mock, status, body, expected):
    body["errors"][0]["meta"] = {"profile_email": "someone@example.com"}
    requests_mock.get(f"{API}/api/events", status_code=status, json=body)
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.EVENTS, {}, stream="opened_email"))
    message = str(caught.value)
    assert expected in message
    assert KEY not in message and "someone@example.com" not in message and "\n" not in message
    # A 400 on a first events page is tried once more at the prose's page size before it is reported.
    assert len(requests_mock.request_history) == (2 if status == 400 else 1)


def test_event_page_size_falls_back_to_200_once(client, requests_mock, caplog):
    def respond(request, context):
        if parse_qs(urlsplit(request.url).query)["page[size]"] == ["1000"]:
            context.status_code = 400
            return error(400, "Page size must be between 1 and 200.")
        return page(["e"])

    requests_mock.get(f"{API}/api/events", json=respond)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert [r["id"] for d in client.documents(endpoints.EVENTS, {}, stream="x") for r in d["data"]] == ["e"]
    sizes = [parse_qs(urlsplit(r.url).query)["page[size]"][0] for r in requests_mock.request_history]
    assert sizes == ["1000", "200", "200"]
    assert "page[size]=1000" in caplog.text


@pytest.mark.parametrize(
    ("endpoint", "body", "where"),
    [
        (endpoints.FLOWS, {"errors": []}, "no `data` list"),
        (endpoints.FLOWS, {"data": ["a"]}, "`data[0]` is a str"),
        (endpoints.FLOWS, {"data": [{"id": "a", "attributes": "x"}]}, "`data[0].attributes`"),
        (endpoints.EVENTS, {"data": {"id": "e"}}, "$.data"),
        (endpoints.EVENTS, {"data": [{"id": "e", "attributes": []}]}, "$.data[0].attributes"),
    ],
)
def test_json_not_in_the_documented_shape_is_one_line_and_not_retried(client, requests_mock, endpoint, body, where):
    requests_mock.get(f"{API}{endpoint.path}", json=body)
    decode = skim if endpoint is endpoints.EVENTS else decode_document
    with pytest.raises(KlaviyoError) as caught:
        client.first_page(endpoint, {}, stream="s", decode=decode)
    message = str(caught.value)
    assert f"response to GET {endpoint.path} for stream 's' is not what its API spec describes" in message
    assert where in message and "\n" not in message
    assert len(requests_mock.request_history) == 1


def test_an_event_whose_datetime_is_not_a_string_is_skimmed_not_retried(client, requests_mock):
    events = [{"id": "e1", "attributes": {"datetime": 1704154907}}, {"id": "e2", "attributes": {"datetime": "x"}}]
    requests_mock.get(f"{API}/api/events", json={"data": events, "links": {"next": None}})
    page = client.first_page(endpoints.EVENTS, {}, stream="s", decode=skim)
    assert (page.count, page.first, page.last, page.next_url) == (2, None, None, None)
    assert len(requests_mock.request_history) == 1
