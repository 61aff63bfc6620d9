"""What a failed request means, in the words of the one line a user reads: Klaviyo's refusals (quoting its
`detail`, never a body: bodies can hold profile data), redirects and links that would take the key elsewhere,
waits it asks for, and why a server could not be reached."""

from __future__ import annotations

import math
import socket
import ssl
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
import urllib3

from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.origin import Origin
from tap_klaviyo.pacing import LONGEST_WAIT_SECONDS, MINUTE
from tap_klaviyo.settings import DEFAULT_API_URL


class BadRequest(KlaviyoError):
    """A 400: Klaviyo's detail, for the user or for a smaller page size; `source` is where in the request Klaviyo
    says the problem is (a body's JSON pointer or a parameter, "" if it does not say)."""

    def __init__(self, message: str, detail: str = "", source: str = "") -> None:
        super().__init__(message)
        self.detail = detail
        self.source = source


class QuotaSpent(KlaviyoError):
    """A 429 of an endpoint with a daily quota, asking to wait longer than its steady window: the day's quota is
    spent, and is whole again in `seconds`."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class MissingScope(KlaviyoError):
    """A 403: the key lacks a scope of the endpoint; `detail` is what Klaviyo said."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class NotFound(KlaviyoError):
    """A 404: what was asked for (a list, a segment) is gone."""


def not_klaviyo(response: requests.Response, endpoint: Endpoint, stream: str) -> KlaviyoError | None:
    """An answer that says it is not JSON (a web page, a proxy's or a load balancer's own): not Klaviyo's API, which
    answers JSON always, errors included; no retry makes it so. None for an answer without a Content-Type."""
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not media or "json" in media:
        return None
    origin = Origin.of(response.url)
    return KlaviyoError(
        f"{origin} answered {_method(response)} {endpoint.path} for stream '{stream}' with {response.status_code} "
        f"and {media}, not the JSON Klaviyo's API answers with: check that setting `api_url` ({origin}) is "
        f"Klaviyo's API ({DEFAULT_API_URL}) or a proxy of it."
    )


def client_error(response: requests.Response, endpoint: Endpoint, stream: str) -> KlaviyoError:
    """A 4xx other than 429 (which is waited out)."""
    if (elsewhere := not_klaviyo(response, endpoint, stream)) is not None:
        return elsewhere
    status = response.status_code
    detail = error_detail(response)
    if status == 401:
        return KlaviyoError(
            "Klaviyo rejected the API key (401): set `api_key` to a valid private API key "
            "(Klaviyo > Settings > API keys)."
        )
    if status == 403:
        scopes = " and ".join(f"'{scope}'" for scope in endpoint.scopes)
        return MissingScope(
            f"The API key lacks the {scopes} scope{'s' if len(endpoint.scopes) > 1 else ''} that stream "
            f"'{stream}' needs ({endpoint.path}): give the key read access to it in Klaviyo, or deselect the "
            f"stream. Klaviyo said: {detail}",
            detail,
        )
    if status == 404:
        return NotFound(f"Klaviyo found no {endpoint.path} for stream '{stream}' (404): {detail}")
    refused = f"Klaviyo refused {_method(response)} {endpoint.path} for stream '{stream}' ({status}): {detail}"
    if status == 400:
        return BadRequest(refused, detail, error_source(response))
    return KlaviyoError(refused)


def _method(response: requests.Response) -> str:
    """The method of the request `response` answers (the report queries are POSTs)."""
    return str(getattr(response.request, "method", None) or "GET")


def error_source(response: requests.Response) -> str:
    """Where Klaviyo's first error says the problem is: a JSON pointer into the body, or a parameter."""
    try:
        source = response.json()["errors"][0].get("source") or {}
        return str(source.get("pointer") or source.get("parameter") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def error_detail(response: requests.Response) -> str:
    """Klaviyo's own `detail`, never the whole body: bodies can hold profile data."""
    try:
        error = response.json()["errors"][0]
        return " ".join(str(error.get("detail") or error.get("title")).split())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return response.reason or "no detail given"


def redirect(response: requests.Response, endpoint: Endpoint, stream: str, origin: Origin) -> KlaviyoError:
    """A 3xx. Klaviyo's API does not redirect: a redirect comes from something else at `api_url`, and following it
    would send the key wherever it points."""
    location = response.headers.get("Location")
    target = urljoin(response.url, location) if location else None
    where = f"to {Origin.of(target)}{urlsplit(target).path}" if target else "without a Location"
    return KlaviyoError(
        f"{_method(response)} {endpoint.path} for stream '{stream}' was answered {response.status_code} (a redirect "
        f"{where}): the "
        f"tap follows no redirects, so the API key goes only to api_url ({origin}); set `api_url` to where the "
        "API is served."
    )


def foreign_link(target: Origin, origin: Origin, endpoint: Endpoint, stream: str, method: str = "GET") -> KlaviyoError:
    return KlaviyoError(
        f"Klaviyo's links.next for {method} {endpoint.path} (stream '{stream}') points at {target}, not at api_url "
        f"({origin}): the API key goes only to api_url, so the run stops; a proxy at api_url must rewrite "
        "Klaviyo's links to itself."
    )


def looping_link(url: str, endpoint: Endpoint, stream: str, method: str = "GET", *, itself: bool) -> KlaviyoError:
    """A page whose `links.next` is the page itself (`itself`), or a page of the stream already read this run."""
    query = parse_qs(urlsplit(url).query)
    name = "page_cursor" if "page_cursor" in query else "page[cursor]"
    cursor = f"{name}={query.get(name, ['(none)'])[0][:60]}"
    said = (
        f"names itself as the next page (links.next repeats {cursor})"
        if itself
        else f"leads back to a page already read (links.next {cursor})"
    )
    return KlaviyoError(
        f"Klaviyo's page of {method} {endpoint.path} for stream '{stream}' {said}: following it would never end. "
        "Rerun later; if it persists, report it with this line."
    )


def retry_after(response: requests.Response, endpoint: Endpoint, stream: str) -> float | None:
    """The seconds a 429 asks to wait (None: it does not say); a wait the tap will not do stops the run, saying
    what was asked. An endpoint with a daily quota that asks to wait longer than its steady window has spent the
    day's quota: QuotaSpent, which ends the stream, not the run."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    request = f"{_method(response)} {endpoint.path} (stream '{stream}')"
    if endpoint.daily_quota is not None and MINUTE < seconds < math.inf:
        raise QuotaSpent(
            f"Klaviyo's daily quota of {endpoint.daily_quota} {endpoint.path} requests for this account (shared by "
            f"every private-key integration on it) is spent: {request} was asked to wait {seconds:,.0f} s",
            seconds,
        )
    if 0 <= seconds <= LONGEST_WAIT_SECONDS:
        return seconds
    shown = " ".join(value.split())[:40]
    if seconds > LONGEST_WAIT_SECONDS:
        problem = (
            f"Klaviyo asked to wait {shown} s before retrying {request}: more than the "
            f"{LONGEST_WAIT_SECONDS:.0f} s the tap waits"
        )
    else:
        problem = f"Klaviyo answered {request} 429 with Retry-After {shown!r}, not a wait"
    raise KlaviyoError(f"{problem}; rerun later (with the last state to resume).")


def cannot_reach(
    origin: Origin, cause: str, endpoint: Endpoint, stream: str, attempts: int, seconds: float, method: str = "GET"
) -> KlaviyoError:
    return KlaviyoError(
        f"Cannot reach Klaviyo at {origin.address} ({cause}) for {method} {endpoint.path} (stream '{stream}'), "
        f"{attempts} attempts in {seconds:.0f} s: check `api_url` and this machine's network (DNS, firewall, "
        "proxy), then rerun."
    )


def unreachable(exc: BaseException) -> str | None:
    """Why a request could not reach the server (refused, DNS, connect timeout, TLS), or None if it did reach it
    (and, say, the connection dropped later)."""
    reason = getattr(exc.args[0], "reason", None) if isinstance(exc, requests.RequestException) and exc.args else None
    if isinstance(exc, requests.exceptions.SSLError) or isinstance(reason, urllib3.exceptions.SSLError):
        return f"TLS error: {_tls_problem(reason or exc)}"
    cause = reason.__cause__ if isinstance(reason, BaseException) else None
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_NONAME:
            return "DNS name not found"
        return f"DNS lookup failed: {cause.strerror if isinstance(cause, OSError) else cause}"
    # urllib3's NewConnectionError is a ConnectTimeoutError too (for history's sake): it is told apart first.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect: {cause.strerror if isinstance(cause, OSError) and cause.strerror else cause}"
    if isinstance(exc, requests.ConnectTimeout) or isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return "timed out connecting"
    return None


def _tls_problem(exc: BaseException) -> str:
    """The TLS library's own words, without its source file (`[SSL: X] y (_ssl.c:1006)`)."""
    found: BaseException | None = exc
    while found is not None and not isinstance(found, ssl.SSLError):
        found = found.args[0] if found.args and isinstance(found.args[0], BaseException) else found.__cause__
    if found is None:
        return str(exc)
    verify = getattr(found, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify}"
    return (found.reason or str(found)).replace("_", " ").lower()
