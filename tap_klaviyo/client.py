"""HTTP to Klaviyo: auth, the `revision` header, `links.next` pages, retries and user-facing errors. Every
request passes `request` (GETs, and the Reporting API's POSTs), which sends the key to `api_url`'s scheme, host and
port only.

Streams say what to fetch (an endpoint and its query); this module owns how. It does not use the SDK's
RESTStream: the SDK's authenticators re-encode query strings, and the event streams need to fetch pages
concurrently, which the SDK's request loop cannot do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import requests

from tap_klaviyo import failures, stopping
from tap_klaviyo.codec import NotAsSpecified, Unreadable, decode_document
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.links import FollowedLinks, next_link
from tap_klaviyo.origin import Origin
from tap_klaviyo.pacing import Pacer
from tap_klaviyo.page_sizes import PageSizes
from tap_klaviyo.retries import TRANSIENT_ERRORS, Retry, backoff, describe

T = TypeVar("T")
# A server that is there accepts a connection in well under a second, even across the world; one that does not
# answer (a firewall dropping packets) is given this long per attempt.
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
# How long a request keeps trying to connect (refused, DNS, connect timeout, TLS), in all: long enough to ride
# out a blip, short enough that an unreachable `api_url` is reported within a minute rather than after the
# backoff of every retry.
CONNECT_BUDGET_SECONDS = 60.0
# A report query's body: a JSON:API document.
JSON_BODY = {"Content-Type": "application/vnd.api+json"}


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
        connections: int = 10,
        logger: logging.Logger | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        connect_budget: float = CONNECT_BUDGET_SECONDS,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.origin = Origin.of(self.api_url)
        self.max_retries = max_retries
        self.connect_timeout = connect_timeout
        self.timeout = (connect_timeout, read_timeout)
        self.connect_budget = connect_budget
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
        self._page_sizes = PageSizes(self.logger)
        self._pacers: dict[Endpoint, Pacer] = {}
        # Guards the pacers as they are made.
        self._lock = threading.Lock()
        # Per stream: requests sent, retries, 429s; read by progress logs.
        self._counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._counts_lock = threading.Lock()
        # Set when a request has given up reaching the server (the error it raised): the others stop waiting to
        # retry and raise it too, rather than each spend its own budget while the run is failing anyway.
        self._unreachable: str | None = None
        self._given_up = threading.Event()
        self._sleep = sleep or self._given_up.wait
        # The endpoints Klaviyo answered this run, and those it refused for a missing scope (read once the requests
        # are done: which scopes the key holds).
        self.answered: set[Endpoint] = set()
        self.refused: dict[Endpoint, failures.MissingScope] = {}
        self._followed = FollowedLinks()

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
                # The report queries (one a second) are asked by runs that may follow one another at once.
                self._pacers[endpoint] = Pacer(
                    endpoint.burst_per_second, endpoint.steady_per_minute, wait_first=endpoint.daily_quota is not None
                )
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

        def ask(size: int | None) -> T:
            query = params if size is None else {**params, "page[size]": str(size)}
            return self.get(url, query, endpoint, stream=stream, decode=decode)

        if page_size is None and endpoint.page_sizes:
            page_size = self._page_sizes.found(endpoint)
            if page_size is None:
                return self._page_sizes.probe(endpoint, ask)
        return ask(page_size)

    def get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        endpoint: Endpoint,
        *,
        stream: str,
        decode: Callable[[bytes], T],
    ) -> T:
        """One GET (see `request`)."""
        return self.request("GET", url, params, endpoint, stream=stream, decode=decode)

    def reports(
        self, endpoint: Endpoint, body: bytes, *, stream: str, decode: Callable[[bytes], dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """Each page of a report query: the body POSTed to the endpoint, then again to each `links.next` as Klaviyo
        gives it (a report's cursor goes with the body it came from)."""
        url: str | None = self.api_url + endpoint.path
        while url:
            document = self.request("POST", url, None, endpoint, stream=stream, decode=decode, body=body)
            yield document
            url = next_link(document)

    @stopping.interruptible()
    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        endpoint: Endpoint,
        *,
        stream: str,
        decode: Callable[[bytes], T] = decode_document,  # type: ignore[assignment]
        body: bytes | None = None,
    ) -> T:
        """One request, retried on throttling, server errors, dropped connections and truncated bodies, and for at
        most `connect_budget` seconds while the server cannot be reached; `decode` turns the body into the result,
        raising Unreadable for a body that is not JSON (worth another try) and NotAsSpecified for JSON that is not
        what the spec describes (reported at once). `url` is `api_url`'s or a `links.next` Klaviyo gave. A POST
        (a report query, which only reads) is retried as a GET is; its `body` is JSON."""
        if Origin.of(url) != self.origin:
            raise failures.foreign_link(Origin.of(url), self.origin, endpoint, stream, method)
        # When the attempts that could not reach the server began (None: the last one reached it).
        unreachable_since: float | None = None
        for attempt in range(self.max_retries + 1):
            if self._unreachable is not None:
                raise KlaviyoError(self._unreachable)
            started = time.monotonic()
            try:
                return self._send_once(method, url, params, body, endpoint, stream=stream, decode=decode)
            except (Retry, *TRANSIENT_ERRORS) as exc:
                self._count(stream, "retries")
                wait = exc.wait if isinstance(exc, Retry) and exc.wait is not None else backoff(attempt)
                cause = failures.unreachable(exc)
                if cause is None:
                    unreachable_since = None
                    reason = describe(exc)
                    if attempt == self.max_retries:
                        raise KlaviyoError(
                            f"Klaviyo kept failing on {method} {endpoint.path} for stream '{stream}' "
                            f"({reason}) after {attempt + 1} attempts; rerun later (with the last state to resume) "
                            "or raise `max_retries`."
                        ) from None
                else:
                    unreachable_since = started if unreachable_since is None else unreachable_since
                    trying = time.monotonic() - unreachable_since
                    reason = f"cannot reach {self.origin.address} ({cause})"
                    # Only retried if the next attempt, waiting out its connect timeout, ends within the budget.
                    if attempt == self.max_retries or trying + wait + self.connect_timeout > self.connect_budget:
                        error = failures.cannot_reach(self.origin, cause, endpoint, stream, attempt + 1, trying, method)
                        self._unreachable = str(error)
                        self._given_up.set()
                        raise error from None
                self.logger.warning(
                    "%s %s for stream '%s': %s; retry %d of %d in %.1fs",
                    method,
                    endpoint.path,
                    stream,
                    reason,
                    attempt + 1,
                    self.max_retries,
                    wait,
                )
                self._sleep(wait)
        raise AssertionError("unreachable")

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
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
        # Redirects are not followed: one elsewhere would take the key with it.
        response = self.session.request(
            method,
            url,
            params=params,
            data=body,
            headers=None if body is None else JSON_BODY,
            timeout=self.timeout,
            stream=True,
            allow_redirects=False,
        )
        pacer.observe(response.headers)
        status = response.status_code
        if status >= 300:
            with response:
                if status < 400:
                    raise failures.redirect(response, endpoint, stream, self.origin)
                if status == 429:
                    self._count(stream, "throttled")
                    wait = failures.retry_after(response, endpoint, stream)
                    if wait is not None:
                        pacer.pause(wait)
                    raise Retry("429 throttled", wait)
                if status >= 500:
                    raise Retry(f"{status} server error")
                error = failures.client_error(response, endpoint, stream)
                if isinstance(error, failures.MissingScope):
                    self.refused.setdefault(endpoint, error)
                raise error
        if (elsewhere := failures.not_klaviyo(response, endpoint, stream)) is not None:
            response.close()
            raise elsewhere
        self.answered.add(endpoint)
        try:
            content = response.raw.read(decode_content=True)
        except BaseException:
            response.close()
            raise
        try:
            result = decode(content)
        except Unreadable:
            raise Retry("unparsable or truncated response body") from None
        except NotAsSpecified as exc:
            raise KlaviyoError(
                f"Klaviyo's response to {method} {endpoint.path} for stream '{stream}' is not what its API spec "
                f"describes: {exc}. Rerun later; if it persists, report it with this line."
            ) from None
        if params is None:
            self._followed.check(url, response.url, next_link(result), body, endpoint, stream, method)
        return result
