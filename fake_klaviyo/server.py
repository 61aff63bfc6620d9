"""The fake Klaviyo itself: an account served on loopback, as strictly as the real API, with faults and limits.

A request goes through the modules beside this one in turn: transport (HTTP), limits (faults, rate
limits), access (path, key, revision, scopes), query (the query string), selection and documents.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import access
from .data import Account, generate_account
from .documents import Documents
from .limits import FaultDraws, Faults, RateLimiter, fault_response, window
from .profile_documents import ProfileDocuments
from .profile_selection import ProfileSelector
from .query import QueryParser
from .report_book import ReportBook
from .report_documents import Reports
from .responses import ApiError, Response
from .selection import Selector
from .spec import ALL_READ_SCOPES, ENDPOINTS, Endpoint, route
from .transport import RequestRecord, Server, read_body, write

_EXCLUDED_HEADERS = frozenset({"authorization"})


class FakeKlaviyo:
    """Serve an :class:`Account` over HTTP on loopback, as strictly as Klaviyo does.

    ``rate_limits``: False (off), True (the spec's limits) or a mapping of endpoint name
    to ``(burst_per_second, steady_per_minute)`` overriding the spec for those endpoints; a request asking for an
    additional field with lower limits counts against "<endpoint>+<field>" ("profiles+predictive_analytics").
    ``page_size_max``: per-endpoint maximum ``page[size]`` overrides, e.g. ``{"events": 200}``.
    ``latency_jitter``: each request sleeps ``latency`` plus a uniform draw in [-jitter, +jitter] (never below 0),
    drawn from a generator seeded with the account's seed.
    ``endpoint_latency``: seconds more that requests to these endpoints sleep, e.g. ``{"flows": 60}`` for an
    endpoint that hangs, but for the first ``endpoint_latency_spares`` requests to each (``{"flows": 1}``: the first
    page comes, the next hangs). Sleeping requests are answered with a hang-up once the fake stops.
    ``reports``: what the report queries (POST /api/campaign-values-reports, /api/flow-series-reports) report, by
    default a :class:`ReportBook` of the account made when first asked; ``report_page_size`` results a page.
    ``rate_limits`` of a report query are ``(burst, steady, daily)``; :meth:`new_day` makes daily quotas whole.
    Each event is JSON-encoded once, when first served (:meth:`encode_events` does them all up
    front), and ``/api/events`` pages are spliced from those bytes unless they ask for sparse
    fieldsets or includes.
    ``observe``: called with each request's record as it is logged, in the thread that served it.
    """

    def __init__(
        self,
        account: Account | None = None,
        *,
        api_key: str = "pk_test_123",
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        endpoint_latency: Mapping[str, float] | None = None,
        endpoint_latency_spares: Mapping[str, int] | None = None,
        rate_limits: bool | Mapping[str, tuple[int, int]] = False,
        faults: Faults | None = None,
        scopes: Iterable[str] | None = None,
        page_size_max: Mapping[str, int] | None = None,
        metrics_page_size: int = 200,
        reports: ReportBook | None = None,
        report_page_size: int = 500,
        host: str = "127.0.0.1",
        port: int = 0,
        observe: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self.account = account if account is not None else generate_account()
        self.api_key = api_key
        if latency < 0 or latency_jitter < 0:
            raise ValueError("latency and latency_jitter must not be negative")
        self.latency = latency
        self.latency_jitter = latency_jitter
        self._jitter = random.Random(f"latency jitter {self.account.seed}")
        self.endpoint_latency = dict(endpoint_latency or {})
        if set(self.endpoint_latency) - set(ENDPOINTS) or any(v < 0 for v in self.endpoint_latency.values()):
            raise ValueError(f"endpoint_latency: unknown endpoints or negative seconds in {self.endpoint_latency}")
        # Requests to each endpoint of `endpoint_latency` still answered at once.
        self._spares = dict(endpoint_latency_spares or {})
        if set(self._spares) - set(self.endpoint_latency):
            raise ValueError(f"endpoint_latency_spares: endpoints without an endpoint_latency in {self._spares}")
        self.faults = faults
        self.scopes = frozenset(ALL_READ_SCOPES if scopes is None else scopes)
        self.page_size_max = dict(page_size_max or {})
        unknown = set(self.page_size_max) - {n for n, e in ENDPOINTS.items() if e.page_size}
        if unknown:
            raise ValueError(f"page_size_max: no page[size] on {sorted(unknown)}")
        if metrics_page_size < 1:
            raise ValueError("metrics_page_size must be at least 1")
        self.metrics_page_size = metrics_page_size  # the spec: "a maximum of 200 results per page"
        self.host, self.port = host, port
        self.observe = observe

        self._limiter = RateLimiter.from_setting(rate_limits)
        self._faults = FaultDraws(faults)
        metrics = {m["id"]: m for m in self.account.metrics}
        self._queries = QueryParser(self.page_size_max, metrics_page_size)
        profiles = ProfileDocuments(
            self.account.profiles, self.account.memberships, ProfileSelector(self.account.profiles)
        )
        self._documents = Documents(self.account, Selector(self.account), profiles, metrics)
        self._reports = Reports(self.account, reports, report_page_size)
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        # Set while stopped: wakes requests sleeping out their latency.
        self._stopped = threading.Event()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeKlaviyo:
        if self._server is None:
            self._stopped.clear()
            self._server = Server((self.host, self.port), self._serve)
            self.port = self._server.server_address[1]
            # A short poll interval keeps stop() (and so each test's teardown) quick.
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-klaviyo", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._stopped.set()
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> FakeKlaviyo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def reports(self) -> ReportBook:
        """What the report queries report (revise it between two runs: :meth:`ReportBook.revise`)."""
        return self._reports.book

    def new_day(self) -> None:
        """The report queries' daily quotas are whole again, as on the next day."""
        if self._limiter is not None:
            self._limiter.new_day()

    def encode_events(self) -> int:
        """JSON-encode every event now rather than on first request (e.g. before a benchmark).

        Returns how many bytes the encoded events hold (about 0.42 kB an event).
        """
        return self._documents.encoded_events().encode_all()

    def delay(self, endpoint: Endpoint | None = None) -> float:
        """Seconds the next request (to `endpoint`) sleeps: the latency, give or take the jitter, never below 0, and
        the endpoint's own."""
        extra = self.endpoint_latency.get(endpoint.name, 0.0) if endpoint is not None else 0.0
        if extra and endpoint is not None:
            with self._lock:
                spare = self._spares.get(endpoint.name, 0)
                if spare:
                    self._spares[endpoint.name] = spare - 1
                    extra = 0.0
        if not self.latency_jitter:
            return self.latency + extra
        with self._lock:  # one generator for every handler thread
            jitter = self._jitter.uniform(-self.latency_jitter, self.latency_jitter)
        return max(0.0, self.latency + jitter) + extra

    # --- observation --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request served so far, in completion order."""
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def stats(self) -> dict[str, Any]:
        recs = self.requests
        return {
            "requests": len(recs),
            "by_endpoint": dict(Counter(r.endpoint or "other" for r in recs)),
            "by_status": dict(Counter(r.status for r in recs if r.status)),
            "throttled": sum(1 for r in recs if r.status == 429),
            "faults": dict(Counter(r.fault for r in recs if r.fault)),
        }

    # --- serving ------------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        arrived = time.time()
        method = h.command
        split = urlsplit(h.path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        query: dict[str, list[str]] = {}
        for k, v in pairs:
            query.setdefault(k, []).append(v)
        headers = {k.lower(): v for k, v in h.headers.items() if k.lower() not in _EXCLUDED_HEADERS}
        ep, path_id = route(split.path) or (None, None)
        body = read_body(h)

        fault = (
            self._faults.draw(" ".join(f"{k}={v}" for k, v in pairs))
            if ep is not None and method == ep.method
            else None
        )
        if delay := self.delay(ep):
            # In the handler thread, so concurrent requests overlap; cut short by stop().
            if self._stopped.wait(delay):
                h.close_connection = True
                return
            arrived += delay  # as if the latency were the way in

        resp: Response | None = None
        if fault is None or fault == "truncate":
            host = h.headers.get("Host") or f"{self.host}:{self.port}"
            resp = self._respond(method, split.path, ep, path_id, pairs, h.headers, f"http://{host}", arrived, body)
        elif fault != "drop":
            resp = fault_response(fault, self.faults.retry_after if self.faults else "1")

        # Record before replying, so a client that got its answer always finds it logged.
        rec = RequestRecord(
            method=method,
            path=split.path,
            query=query,
            headers=headers,
            status=resp.status if resp else 0,
            endpoint=ep.name if ep else None,
            fault=fault,
            started=started,
            duration=time.monotonic() - started,
            body=body,
        )
        with self._lock:
            self._records.append(rec)
        if self.observe is not None:
            self.observe(rec)
        write(h, resp, truncate=fault == "truncate")

    def _respond(
        self,
        method: str,
        path: str,
        ep: Endpoint | None,
        path_id: str | None,
        pairs: list[tuple[str, str]],
        headers: Message,
        base: str,
        arrived: float,
        body: bytes = b"",
    ) -> Response:
        rl_headers: dict[str, str] = {}
        try:
            ep = access.check_route(method, path, ep)
            access.check_auth(headers.get("Authorization"), self.api_key)
            access.check_revision(headers.get("revision"))
            access.check_scopes(ep, self.scopes)
            if self._limiter is not None:
                rl_headers = self._limiter.acquire(window(ep, pairs), arrived)
            if ep.report is not None:
                return Response(200, self._reports.body(ep, body, headers.get("Content-Type"), pairs, base), rl_headers)
            q = self._queries.parse(ep, pairs, path_id)
            return Response(200, self._documents.body(ep, q, base), rl_headers)
        except ApiError as e:
            resp = e.response()
            if e.status != 429:
                resp.headers = {**rl_headers, **resp.headers}
            return resp
