"""The HTTP client against mocked HTTP: pages, retries, Retry-After and the errors a user sees."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tap_klaviyo import client as client_module
from tap_klaviyo import endpoints
from tap_klaviyo.codec import decode_document, skim
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.links import next_link
from tests.kit import CLIENT_API, CLIENT_KEY


def page(ids: list[str], next_url: str | None = None) -> dict:
    return {
        "data": [{"type": "flow", "id": i, "attributes": {}} for i in ids],
        "links": {"self": "x", "next": next_url},
    }


def error(status: int, detail: str, parameter: str | None = None) -> dict:
    source = {"parameter": parameter} if parameter else {"pointer": "/data"}
    return {"errors": [{"id": "e", "status": status, "code": "c", "title": "t", "detail": detail, "source": source}]}


def test_follows_links_next_verbatim_and_sends_headers(client, requests_mock):
    next_url = f"{CLIENT_API}/api/flows?page%5Bsize%5D=50&page%5Bcursor%5D=abc%3D%3D"
    requests_mock.get(f"{CLIENT_API}/api/flows", [{"json": page(["a", "b"], next_url)}, {"json": page(["c"])}])
    ids = [r["id"] for d in client.documents(endpoints.FLOWS, {"sort": "id"}, stream="flows") for r in d["data"]]
    assert ids == ["a", "b", "c"]
    first, second = requests_mock.request_history
    assert parse_qs(urlsplit(first.url).query) == {"sort": ["id"], "page[size]": ["50"]}
    assert second.url == next_url
    for request in requests_mock.request_history:
        assert request.headers["Authorization"] == f"Klaviyo-API-Key {CLIENT_KEY}"
        assert request.headers["revision"] == "2026-07-15"
        assert request.headers["Accept"] == "application/vnd.api+json"


@pytest.mark.parametrize(
    "links", [{"self": "x", "next": None, "prev": None}, {"self": "x"}, None], ids=["null", "left out", "no links"]
)
@pytest.mark.parametrize("decode", [None, skim], ids=["document", "skimmed page"])
def test_a_last_page_ends_the_walk_whether_klaviyo_nulls_its_next_link_or_leaves_it_out(
    client, requests_mock, links, decode
):
    # Klaviyo sends `next: null`; the spec would leave it out (klaviyo/openapi#5); a body without links ends it too.
    last = {"data": page(["b"])["data"], **({"links": links} if links is not None else {})}
    next_url = f"{CLIENT_API}/api/events?page%5Bcursor%5D=YQ"
    requests_mock.get(f"{CLIENT_API}/api/events", json=page(["a"], next_url))
    requests_mock.get(next_url, json=last)
    first = client.first_page(endpoints.EVENTS, {}, stream="x", decode=decode or decode_document)
    second = client.get(next_url, None, endpoints.EVENTS, stream="x", decode=decode or decode_document)
    assert next_link(first) == next_url and next_link(second) is None
    if decode is None:  # and a walk of such pages ends there
        events = [r["id"] for d in client.documents(endpoints.EVENTS, {}, stream="y") for r in d["data"]]
        assert events == ["a", "b"]


def test_metrics_send_no_page_size(client, requests_mock):
    requests_mock.get(f"{CLIENT_API}/api/metrics", json=page(["m"]))
    list(client.documents(endpoints.METRICS, {}, stream="metrics"))
    assert "page" not in requests_mock.last_request.url


def test_retry_after_is_honoured_on_429(client, clock, requests_mock):
    requests_mock.get(
        f"{CLIENT_API}/api/flows",
        [{"status_code": 429, "headers": {"Retry-After": "7"}, "json": error(429, "throttled")}, {"json": page(["a"])}],
    )
    assert [r["id"] for d in client.documents(endpoints.FLOWS, {}, stream="flows") for r in d["data"]] == ["a"]
    assert clock.sleeps == [7.0]


def test_requests_are_paced_to_the_endpoint_tier(client, clock, requests_mock):
    requests_mock.get(f"{CLIENT_API}/api/flows", json=page(["a"]))
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
    requests_mock.get(f"{CLIENT_API}/api/events", [fault, fault, {"json": page(["a"])}])
    assert [r["id"] for d in client.documents(endpoints.EVENTS, {}, stream="x") for r in d["data"]] == ["a"]
    assert len(clock.sleeps) == 2
    assert 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0


def test_gives_up_after_the_retry_budget_with_one_line(client, requests_mock):
    requests_mock.get(f"{CLIENT_API}/api/flows", status_code=503, json=error(503, "down"))
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
    requests_mock.get(f"{CLIENT_API}/api/events", status_code=status, json=body)
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.EVENTS, {}, stream="opened_email"))
    message = str(caught.value)
    assert expected in message
    assert CLIENT_KEY not in message and "someone@example.com" not in message and "\n" not in message
    # A 400 on a first events page is tried once more at the prose's page size before it is reported.
    assert len(requests_mock.request_history) == (2 if status == 400 else 1)


def test_event_page_size_falls_back_to_200_once(client, requests_mock, caplog):
    def respond(request, context):
        if parse_qs(urlsplit(request.url).query)["page[size]"] == ["1000"]:
            context.status_code = 400
            return error(400, "Page size must be between 1 and 200.")
        return page(["e"])

    requests_mock.get(f"{CLIENT_API}/api/events", json=respond)
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
    requests_mock.get(f"{CLIENT_API}{endpoint.path}", json=body)
    decode = skim if endpoint is endpoints.EVENTS else decode_document
    with pytest.raises(KlaviyoError) as caught:
        client.first_page(endpoint, {}, stream="s", decode=decode)
    message = str(caught.value)
    assert f"response to GET {endpoint.path} for stream 's' is not what its API spec describes" in message
    assert where in message and "\n" not in message
    assert len(requests_mock.request_history) == 1


def test_an_event_whose_datetime_is_not_a_string_is_skimmed_not_retried(client, requests_mock):
    events = [{"id": "e1", "attributes": {"datetime": 1704154907}}, {"id": "e2", "attributes": {"datetime": "x"}}]
    requests_mock.get(f"{CLIENT_API}/api/events", json={"data": events, "links": {"next": None}})
    page = client.first_page(endpoints.EVENTS, {}, stream="s", decode=skim)
    assert (page.count, page.first_time, page.last_time, page.next_url) == (2, None, None, None)
    assert len(requests_mock.request_history) == 1


@pytest.mark.parametrize(
    ("next_url", "named"),
    [
        ("https://elsewhere.test/api/flows?page%5Bcursor%5D=b", "https://elsewhere.test:443"),
        ("http://klaviyo.test/api/flows?page%5Bcursor%5D=b", "http://klaviyo.test:80"),
        ("https://klaviyo.test:8443/api/flows?page%5Bcursor%5D=b", "https://klaviyo.test:8443"),
    ],
    ids=["host", "scheme", "port"],
)
def test_a_links_next_elsewhere_is_never_sent_the_key(client, requests_mock, next_url, named):
    requests_mock.get(f"{CLIENT_API}/api/flows", json=page(["a"], next_url))
    foreign = requests_mock.get(next_url, json=page(["b"]))
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    message = str(caught.value)
    assert f"links.next for GET /api/flows (stream 'flows') points at {named}, not at api_url" in message
    assert "\n" not in message and CLIENT_KEY not in message
    assert not foreign.called


def test_a_links_next_to_api_url_spelled_otherwise_is_followed(client, requests_mock):
    next_url = "HTTPS://Klaviyo.TEST:443/api/flows?page%5Bcursor%5D=b"
    requests_mock.get(f"{CLIENT_API}/api/flows", json=page(["a"], next_url))
    followed = requests_mock.get("https://klaviyo.test:443/api/flows?page%5Bcursor%5D=b", json=page(["b"]))
    assert [r["id"] for d in client.documents(endpoints.FLOWS, {}, stream="flows") for r in d["data"]] == ["a", "b"]
    assert followed.called


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(client, requests_mock, status):
    location = "https://elsewhere.test/api/flows?page%5Bsize%5D=50"
    requests_mock.get(f"{CLIENT_API}/api/flows", status_code=status, headers={"Location": location})
    foreign = requests_mock.get(location, json=page(["a"]))
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    message = str(caught.value)
    assert (
        f"GET /api/flows for stream 'flows' was answered {status} (a redirect to https://elsewhere.test:443/api/flows)"
        in (message)
    )
    assert "follows no redirects" in message and "\n" not in message
    assert not foreign.called and len(requests_mock.request_history) == 1


@pytest.mark.parametrize("decode", [None, skim], ids=["document", "skimmed page"])
def test_a_links_next_repeating_the_page_just_read_stops(client, requests_mock, decode):
    cursor_url = f"{CLIENT_API}/api/events?page%5Bcursor%5D=bXlzZWxm"
    requests_mock.get(
        f"{CLIENT_API}/api/events", [{"json": page(["a"], cursor_url)}, {"json": page(["b"], cursor_url)}]
    )
    first = client.first_page(endpoints.EVENTS, {}, stream="x", decode=decode or decode_document)
    next_url = first.next_url if decode else first["links"]["next"]
    with pytest.raises(KlaviyoError) as caught:
        client.get(next_url, None, endpoints.EVENTS, stream="x", decode=decode or decode_document)
    message = str(caught.value)
    assert "page of GET /api/events for stream 'x' names itself as the next page" in message
    assert "page[cursor]=bXlzZWxm" in message and "\n" not in message
    assert len(requests_mock.request_history) == 2


def test_a_links_next_leading_back_to_a_page_already_read_stops(client, requests_mock):
    a, b = (f"{CLIENT_API}/api/flows?page%5Bcursor%5D={cursor}" for cursor in ("YWFh", "YmJi"))
    requests_mock.get(f"{CLIENT_API}/api/flows", json=page(["1"], a))
    requests_mock.get(a, json=page(["2"], b))
    requests_mock.get(b, json=page(["3"], a))
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    message = str(caught.value)
    assert (
        "page of GET /api/flows for stream 'flows' leads back to a page already read (links.next page[cursor]=YWFh)"
        in message
    )
    assert "\n" not in message and len(requests_mock.request_history) == 3


def test_the_same_pages_read_by_another_stream_or_for_another_report_body_are_no_loop(client, requests_mock):
    a = f"{CLIENT_API}/api/flows?page%5Bcursor%5D=YWFh"
    requests_mock.get(f"{CLIENT_API}/api/flows", json=page(["1"], a))
    requests_mock.get(a, json=page(["2"]))
    for stream in ("flows", "flow_actions"):
        assert [r["id"] for d in client.documents(endpoints.FLOWS, {}, stream=stream) for r in d["data"]] == ["1", "2"]
    report = f"{CLIENT_API}{endpoints.CAMPAIGN_VALUES.path}"
    cursor = f"{report}?page_cursor=YWFh"
    requests_mock.post(report, json={"data": [], "links": {"next": cursor}})
    requests_mock.post(cursor, json={"data": [], "links": {"next": None}})
    for body in (b'{"a": 1}', b'{"a": 2}'):
        pages = client.reports(endpoints.CAMPAIGN_VALUES, body, stream="r", decode=decode_document)
        assert len(list(pages)) == 2


@pytest.mark.parametrize("wait", ["0", "300", "12.5"])
def test_retry_after_is_honoured_up_to_the_longest_wait(client, clock, requests_mock, wait):
    throttled = {"status_code": 429, "headers": {"Retry-After": wait}, "json": error(429, "throttled")}
    requests_mock.get(f"{CLIENT_API}/api/flows", [throttled, {"json": page(["a"])}])
    assert [r["id"] for d in client.documents(endpoints.FLOWS, {}, stream="flows") for r in d["data"]] == ["a"]
    assert clock.sleeps[0] == float(wait)


@pytest.mark.parametrize(
    ("wait", "said"),
    [
        ("86400", "Klaviyo asked to wait 86400 s before retrying GET /api/flows (stream 'flows'): more than the 300 s"),
        ("300.5", "Klaviyo asked to wait 300.5 s before retrying"),
        ("inf", "Klaviyo asked to wait inf s before retrying"),
        ("-1", "Klaviyo answered GET /api/flows (stream 'flows') 429 with Retry-After '-1', not a wait"),
        ("nan", "with Retry-After 'nan', not a wait"),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "with Retry-After 'Wed, 21 Oct 2015 07:28:00 GMT', not a wait"),
    ],
)
def test_retry_after_beyond_the_longest_wait_stops_at_once(client, clock, requests_mock, wait, said):
    requests_mock.get(
        f"{CLIENT_API}/api/flows", status_code=429, headers={"Retry-After": wait}, json=error(429, "throttled")
    )
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    message = str(caught.value)
    assert said in message and "rerun later" in message and "\n" not in message
    assert clock.sleeps == [] and len(requests_mock.request_history) == 1
    # Nobody else waits for it either.
    assert client.pacer(endpoints.FLOWS).acquire() <= 0.5  # the spacing after the request before, no more


def test_connection_failures_are_retried_for_a_minute_in_all_not_a_count(client, clock, requests_mock):
    client.max_retries = 100

    def black_hole(request, context):
        clock.now += client_module.CONNECT_TIMEOUT_SECONDS
        raise requests.ConnectTimeout("no answer")

    requests_mock.get(f"{CLIENT_API}/api/flows", json=black_hole)
    with pytest.raises(KlaviyoError) as caught:
        list(client.documents(endpoints.FLOWS, {}, stream="flows"))
    message = str(caught.value)
    attempts = len(requests_mock.request_history)
    assert message.startswith(
        "Cannot reach Klaviyo at klaviyo.test:443 (timed out connecting) for GET /api/flows (stream 'flows'), "
        f"{attempts} attempts in"
    )
    assert "check `api_url`" in message and "\n" not in message
    assert 3 <= attempts < 10 and clock.now - 100.0 <= client_module.CONNECT_BUDGET_SECONDS
