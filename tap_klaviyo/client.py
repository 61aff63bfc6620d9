"""HTTP to Klaviyo: auth, the `revision` header, `links.next` pages, retries and user-facing errors.

Streams say what to fetch (an endpoint and its query); this module owns how. It does not use the SDK's
RESTStream: the SDK's authenticators re-encode query strings, and the event streams need to fetch pages
concurrently, which the SDK's request loop cannot do.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import requests
import urllib3

from tap_klaviyo.codec import NotAsSpecified, Unreadable, decode_document
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.pacing import Pacer

# Connection-level failures worth another try (urllib3's own while a body is read); a body that is cut short but
# arrives shows up as `Unreadable` instead.
TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
)
T = TypeVar("T")
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


class _Retry(Exception):
    """A response worth another try; `wait` is what the server asked for, if it said."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


class KlaviyoClient:
    """One per run, shared by every stream."""

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str,
        revision: str,
        user_agent: str,
        max_retries: int = 8,
        timeout: float = 60.0,
        connections: int = 10,
        logger: logging.Logger | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.max_retries = max_retries
        self.timeout = timeout
        self.logger = logger or logging.getLogger("tap-klaviyo")
        self.session = requests.Session()
        # One kept-alive connection per request in flight, or concurrent requests would each open their own.
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=connections))
        self.session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=connections))
        self.session.headers.update(
            {
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": revision,
                "Accept": "application/vnd.api+json",
                "User-Agent": user_agent,
            }
        )
        # The endpoints that refused their largest page size, and the size that worked instead.
        self._page_size: dict[str, int] = {}
        # The page sizes an endpoint refused (streams that start together may each hear it: it is said once).
        self._refused: set[tuple[str, int]] = set()
        self._pacers: dict[Endpoint, Pacer] = {}
        # Guards the pacers as they are made and the page sizes refused.
        self._lock = threading.Lock()
        # Per stream: requests sent, retries, 429s; read by progress logs.
        self._counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._counts_lock = threading.Lock()

    def counts(self, stream: str) -> Counter[str]:
        with self._counts_lock:
            return Counter(self._counts[stream])

    def _count(self, stream: str, what: str) -> None:
        with self._counts_lock:
            self._counts[stream][what] += 1

    def pacer(self, endpoint: Endpoint) -> Pacer:
        """The endpoint's one pacer, shared by every stream and thread that calls it."""
        with self._lock:
            if endpoint not in self._pacers:
                self._pacers[endpoint] = Pacer(endpoint.burst_per_second, endpoint.steady_per_minute)
            return self._pacers[endpoint]

    def documents(self, endpoint: Endpoint, params: Mapping[str, str], *, stream: str) -> Iterator[dict[str, Any]]:
        """Each page's document, following `links.next` exactly as Klaviyo gives it."""
        document = self.first_page(endpoint, params, stream=stream, decode=decode_document)
        while True:
            yield document
            next_url = (document.get("links") or {}).get("next")
            if not next_url:
                return
            document = self.get(next_url, None, endpoint, stream=stream, decode=decode_document)

    def first_page(
        self,
        endpoint: Endpoint,
        params: Mapping[str, str],
        *,
        stream: str,
        decode: Callable[[bytes], T],
        page_size: int | None = None,
        path: str | None = None,
    ) -> T:
        """The first page of a query, `page_size` long or at the largest page size the endpoint accepts; `path` is
        the endpoint's path with its ids filled in, where it has some."""
        url = self.api_url + (path or endpoint.path)
        if page_size is not None:
            return self.get(url, {**params, "page[size]": str(page_size)}, endpoint, stream=stream, decode=decode)
        if not endpoint.page_sizes:
            return self.get(url, params, endpoint, stream=stream, decode=decode)
        if endpoint.path not in self._page_size:
            # Callers that start together each find the size that works, rather than wait a round trip for one.
            return self._probe_page_size(url, endpoint, params, stream=stream, decode=decode)
        size = self._page_size[endpoint.path]
        return self.get(url, {**params, "page[size]": str(size)}, endpoint, stream=stream, decode=decode)

    def _probe_page_size(
        self, url: str, endpoint: Endpoint, params: Mapping[str, str], *, stream: str, decode: Callable[[bytes], T]
    ) -> T:
        sizes = endpoint.page_sizes
        for i, size in enumerate(sizes):
            try:
                document = self.get(url, {**params, "page[size]": str(size)}, endpoint, stream=stream, decode=decode)
            except _BadRequest as exc:
                # The spec and its prose disagree on some maximums, and a 400 may not say which parameter
                # it minds: any 400 on a first page is worth one try at the next smaller size.
                if i + 1 == len(sizes):
                    raise
                with self._lock:
                    first_refusal = (endpoint.path, size) not in self._refused
                    self._refused.add((endpoint.path, size))
                if first_refusal:
                    self.logger.warning(
                        "Klaviyo refused page[size]=%d on %s (%s); trying %d", size, endpoint.path, exc, sizes[i + 1]
                    )
                continue
            self._page_size[endpoint.path] = size
            return document
        raise AssertionError("unreachable")

    def get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        endpoint: Endpoint,
        *,
        stream: str,
        decode: Callable[[bytes], T],
    ) -> T:
        """One GET, retried on throttling, server errors, dropped connections and truncated bodies; `decode`
        turns the body into the result, raising Unreadable for a body that is not JSON (worth another try) and
        NotAsSpecified for JSON that is not what the spec describes (reported at once)."""
        for attempt in range(self.max_retries + 1):
            try:
                return self._get_once(url, params, endpoint, stream=stream, decode=decode)
            except (_Retry, *TRANSIENT_ERRORS) as exc:
                reason = _describe(exc)
                self._count(stream, "retries")
                if attempt == self.max_retries:
                    raise KlaviyoError(
                        f"Klaviyo kept failing on GET {endpoint.path} for stream '{stream}' "
                        f"({reason}) after {attempt + 1} attempts; rerun later (with the last state to resume) "
                        "or raise `max_retries`."
                    ) from None
                wait = exc.wait if isinstance(exc, _Retry) and exc.wait is not None else _backoff(attempt)
                self.logger.warning(
                    "GET %s for stream '%s': %s; retry %d of %d in %.1fs",
                    endpoint.path,
                    stream,
                    reason,
                    attempt + 1,
                    self.max_retries,
                    wait,
                )
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _get_once(
        self,
        url: str,
        params: Mapping[str, str] | None,
        endpoint: Endpoint,
        *,
        stream: str,
        decode: Callable[[bytes], T],
    ) -> T:
        pacer = self.pacer(endpoint)
        pacer.acquire()
        self._count(stream, "requests")
        # Streamed, and the body read in one call: `Response.content` reads it in 10 kB pieces, which costs more CPU
        # than decoding a page of events. A fully read body gives its connection back to the pool for reuse.
        response = self.session.get(url, params=params, timeout=self.timeout, stream=True)
        pacer.observe(response.headers)
        status = response.status_code
        if status >= 400:
            with response:
                if status == 429:
                    self._count(stream, "throttled")
                    wait = _retry_after(response)
                    if wait is not None:
                        pacer.pause(wait)
                    raise _Retry("429 throttled", wait)
                if status >= 500:
                    raise _Retry(f"{status} server error")
                raise _client_error(response, endpoint, stream)
        try:
            body = response.raw.read(decode_content=True)
        except BaseException:
            response.close()
            raise
        try:
            return decode(body)
        except Unreadable:
            raise _Retry("unparsable or truncated response body") from None
        except NotAsSpecified as exc:
            raise KlaviyoError(
                f"Klaviyo's response to GET {endpoint.path} for stream '{stream}' is not what its API spec "
                f"describes: {exc}. Rerun later; if it persists, report it with this line."
            ) from None


class _BadRequest(KlaviyoError):
    """A 400: Klaviyo's detail, for the user or for a smaller page size."""


class NotFound(KlaviyoError):
    """A 404: what was asked for (a list, a segment) is gone."""


def _backoff(attempt: int) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0**attempt)


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, _Retry):
        return str(exc)
    return f"connection error: {type(exc).__name__}"


def _error_detail(response: requests.Response) -> str:
    """Klaviyo's own `detail`, never the whole body: bodies can hold profile data."""
    try:
        error = response.json()["errors"][0]
        return " ".join(str(error.get("detail") or error.get("title")).split())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return response.reason or "no detail given"


def _client_error(response: requests.Response, endpoint: Endpoint, stream: str) -> KlaviyoError:
    status = response.status_code
    detail = _error_detail(response)
    if status == 401:
        return KlaviyoError(
            "Klaviyo rejected the API key (401): set `api_key` to a valid private API key "
            "(Klaviyo > Settings > API keys)."
        )
    if status == 403:
        scopes = " and ".join(f"'{scope}'" for scope in endpoint.scopes)
        return KlaviyoError(
            f"The API key lacks the {scopes} scope{'s' if len(endpoint.scopes) > 1 else ''} that stream "
            f"'{stream}' needs ({endpoint.path}): give the key read access to it in Klaviyo, or deselect the "
            f"stream. Klaviyo said: {detail}"
        )
    if status == 404:
        return NotFound(f"Klaviyo found no {endpoint.path} for stream '{stream}' (404): {detail}")
    if status == 400:
        return _BadRequest(f"Klaviyo refused GET {endpoint.path} for stream '{stream}' ({status}): {detail}")
    return KlaviyoError(f"Klaviyo refused GET {endpoint.path} for stream '{stream}' ({status}): {detail}")
