"""The fake Klaviyo HTTP server: as strict as the real API, plus faults and rate limits."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import heapq
import json
import math
import operator
import random
import re
import socket
import socketserver
import threading
import time
import uuid
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from . import filters
from .data import Account, EventStore, Resource, generate_account
from .spec import ALL_READ_SCOPES, BY_PATH, ENDPOINTS, REVISION, Endpoint

CONTENT_TYPE = "application/vnd.api+json"
FAULT_KINDS: tuple[str, ...] = ("500", "503", "drop", "truncate", "429")
_REVISION = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:\.([A-Za-z0-9]+))?$")
_LATEST_REVISION = date.fromisoformat(REVISION)
# Includes whose related resources the fake does not model (answered 501, not faked).
_UNMODELLED_INCLUDES = frozenset({"campaign-messages", "flow-actions"})
_CUSTOM_CATEGORIES = frozenset({"api", "custom"})
_EXCLUDED_HEADERS = frozenset({"authorization"})


@dataclass(frozen=True)
class Faults:
    """Inject one fault into a request with probability ``rate`` (deterministic RNG)."""

    rate: float
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("Faults.rate must be within [0, 1]")
        bad = set(self.kinds) - set(FAULT_KINDS)
        if bad or not self.kinds:
            raise ValueError(f"Faults.kinds must be a non-empty subset of {FAULT_KINDS}, got {self.kinds}")


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]  # decoded
    headers: dict[str, str]  # lower-cased names, never Authorization
    status: int  # 0 when the connection was dropped without a response
    endpoint: str | None  # short name ("events"), None for unknown paths
    fault: str | None
    started: float  # time.monotonic()
    duration: float


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        parameter: str | None = None,
        pointer: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.source = {"parameter": parameter} if parameter else {"pointer": pointer} if pointer else {}
        self.headers = dict(headers or {})

    def response(self) -> _Response:
        err = {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": self.source,
        }
        return _Response(self.status, _dumps({"errors": [err]}), self.headers)


def _invalid(detail: str, parameter: str | None) -> ApiError:
    return ApiError(400, "invalid", "Invalid input.", detail, parameter=parameter)


def _throttled(seconds: int) -> ApiError:
    unit = "second" if seconds == 1 else "seconds"
    return ApiError(
        429,
        "throttled",
        "Request was throttled.",
        f"Request was throttled. Expected available in {seconds} {unit}.",
        pointer="/data",
        headers={"Retry-After": str(seconds)},
    )


# json.dumps makes an encoder per call; documents hold no cycles, so skip checking for them.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("utf-8")


class _RateLimiter:
    """Klaviyo's per-account fixed windows: burst per second, steady per minute."""

    def __init__(self, limits: Mapping[str, tuple[int, int]]) -> None:
        self.limits = dict(limits)
        self.lock = threading.Lock()
        self.state: dict[str, list[int]] = {}  # name -> [second, count, minute, count]

    def acquire(self, name: str) -> dict[str, str]:
        burst, steady = self.limits[name]
        with self.lock:
            now = time.time()
            sec, minute = int(now), int(now // 60)
            st = self.state.setdefault(name, [sec, 0, minute, 0])
            if st[0] != sec:
                st[0], st[1] = sec, 0
            if st[2] != minute:
                st[2], st[3] = minute, 0
            wait = 0.0
            if st[1] >= burst:
                wait = max(wait, sec + 1 - now)
            if st[3] >= steady:
                wait = max(wait, (minute + 1) * 60 - now)
            if wait:
                raise _throttled(max(1, math.ceil(wait)))
            st[1] += 1
            st[3] += 1
            return {
                "RateLimit-Limit": str(steady),
                "RateLimit-Remaining": str(steady - st[3]),
                "RateLimit-Reset": str(max(1, math.ceil((minute + 1) * 60 - now))),
            }


@dataclass
class _Query:
    pairs: list[tuple[str, str]]
    size: int | None
    sort: str | None
    fields: dict[str, list[str]]
    include: list[str]
    filter_text: str | None
    conds: list[filters.Condition]
    offset: int
    digest: str


@dataclass
class _EventSelection:
    """Events matching a query: ``positions[lo:hi]`` ascending by (datetime, id)."""

    positions: Sequence[int]
    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo

    def page(self, offset: int, size: int, descending: bool) -> list[int]:
        end = min(len(self), offset + size)
        if offset >= end:
            return []
        if not descending:
            return list(self.positions[self.lo + offset : self.lo + end])
        return list(reversed(self.positions[self.hi - end : self.hi - offset]))


class FakeKlaviyo:
    """Serve an :class:`Account` over HTTP on loopback, as strictly as Klaviyo does.

    ``rate_limits``: False (off), True (the spec's limits) or a mapping of endpoint name
    to ``(burst_per_second, steady_per_minute)`` overriding the spec for those endpoints.
    ``page_size_max``: per-endpoint maximum ``page[size]`` overrides, e.g. ``{"events": 200}``.
    Each event is JSON-encoded once, when first served (:meth:`encode_events` does them all up
    front), and ``/api/events`` pages are spliced from those bytes unless they ask for sparse
    fieldsets or includes.
    """

    def __init__(
        self,
        account: Account | None = None,
        *,
        api_key: str = "pk_test_123",
        latency: float = 0.0,
        rate_limits: bool | Mapping[str, tuple[int, int]] = False,
        faults: Faults | None = None,
        scopes: Iterable[str] | None = None,
        page_size_max: Mapping[str, int] | None = None,
        metrics_page_size: int = 200,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account = account if account is not None else generate_account()
        self.api_key = api_key
        self.latency = latency
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

        self._limiter: _RateLimiter | None = None
        if rate_limits:
            limits = {n: (e.burst, e.steady) for n, e in ENDPOINTS.items()}
            if isinstance(rate_limits, Mapping):
                bad = set(rate_limits) - set(limits)
                if bad:
                    raise ValueError(f"rate_limits: unknown endpoints {sorted(bad)}")
                limits.update({k: (int(v[0]), int(v[1])) for k, v in rate_limits.items()})
            self._limiter = _RateLimiter(limits)

        self._fault_rng = random.Random(faults.seed if faults else 0)
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._cache: OrderedDict[str, _EventSelection] = OrderedDict()
        self._metrics_by_id = {m["id"]: m for m in self.account.metrics}
        self._profile_index: dict[str, int] | None = None
        self._encoded: _EncodedEvents | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeKlaviyo:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler, self)
            self.port = self._server.server_address[1]
            # A short poll interval keeps stop() (and so each test's teardown) quick.
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-klaviyo", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
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

    # --- HTTP ---------------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        started = time.monotonic()
        split = urlsplit(h.path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        query: dict[str, list[str]] = {}
        for k, v in pairs:
            query.setdefault(k, []).append(v)
        headers = {k.lower(): v for k, v in h.headers.items() if k.lower() not in _EXCLUDED_HEADERS}
        ep = BY_PATH.get(split.path.rstrip("/") or "/")

        if method not in ("GET", "HEAD") and h.headers.get("Content-Length", "").isdigit():
            h.rfile.read(int(h.headers["Content-Length"]))  # keep the connection in sync
        elif method not in ("GET", "HEAD") and "Transfer-Encoding" in h.headers:
            h.close_connection = True

        fault = self._draw_fault() if ep is not None and method == "GET" else None
        if self.latency:
            time.sleep(self.latency)  # in the handler thread, so concurrent requests overlap

        resp: _Response | None = None
        if fault == "500":
            resp = ApiError(500, "error", "A server error occurred.", "A server error occurred.").response()
        elif fault == "503":
            resp = ApiError(
                503,
                "service_unavailable",
                "Service unavailable.",
                "The service is temporarily unavailable. Please try again later.",
            ).response()
        elif fault == "429":
            resp = _throttled(1).response()
        elif fault != "drop":
            host = h.headers.get("Host") or f"{self.host}:{self.port}"
            resp = self._respond(method, split.path, ep, pairs, h.headers, f"http://{host}")

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
        )
        with self._lock:
            self._records.append(rec)
        if resp is None:
            h.close_connection = True  # "drop": hang up without a byte of response
        else:
            self._write(h, resp, truncate=fault == "truncate", head=method == "HEAD")

    @staticmethod
    def _write(h: BaseHTTPRequestHandler, resp: _Response, truncate: bool, head: bool) -> None:
        h.send_response(resp.status)
        h.send_header("Content-Type", CONTENT_TYPE)
        h.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers.items():
            h.send_header(k, v)
        h.end_headers()
        if head:
            return
        if truncate:
            # Promise the full Content-Length, deliver half, hang up.
            h.wfile.write(resp.body[: len(resp.body) // 2])
            h.close_connection = True
        else:
            h.wfile.write(resp.body)

    def _draw_fault(self) -> str | None:
        if self.faults is None or self.faults.rate <= 0:
            return None
        with self._lock:
            if self._fault_rng.random() < self.faults.rate:
                return self._fault_rng.choice(self.faults.kinds)
        return None

    # --- request pipeline ---------------------------------------------------------------------

    def _respond(
        self,
        method: str,
        path: str,
        ep: Endpoint | None,
        pairs: list[tuple[str, str]],
        headers: Message,
        base: str,
    ) -> _Response:
        rl_headers: dict[str, str] = {}
        try:
            if ep is None:
                raise ApiError(404, "not_found", "Not found.", f"The requested path {path!r} was not found.")
            if method != "GET":
                raise ApiError(
                    405,
                    "method_not_allowed",
                    "Method not allowed.",
                    f'Method "{method}" not allowed.',
                    headers={"Allow": "GET"},
                )
            self._check_auth(headers.get("Authorization"))
            self._check_revision(headers.get("revision"))
            missing = [s for s in ep.scopes if s not in self.scopes]
            if missing:
                raise ApiError(
                    403,
                    "permission_denied",
                    "You do not have permission to perform this action.",
                    f"This API key is missing required scopes: {', '.join(missing)}",
                    pointer="/data/",
                )
            if self._limiter is not None:
                rl_headers = self._limiter.acquire(ep.name)
            q = self._parse_query(ep, pairs)
            return _Response(200, self._body(ep, q, base), rl_headers)
        except ApiError as e:
            resp = e.response()
            if e.status != 429:
                resp.headers = {**rl_headers, **resp.headers}
            return resp

    def _check_auth(self, value: str | None) -> None:
        scheme = "Klaviyo-API-Key "
        if not value or not value.startswith(scheme):
            raise ApiError(
                401,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
                pointer="/data/",
            )
        if value[len(scheme) :] != self.api_key:
            raise ApiError(
                401,
                "not_authenticated",
                "Incorrect authentication credentials.",
                "The API key specified is invalid.",
                pointer="/data/",
            )

    @staticmethod
    def _check_revision(value: str | None) -> None:
        if value is None:
            raise ApiError(400, "invalid", "Invalid input.", "The 'revision' header is required.", parameter="revision")
        m = _REVISION.match(value)
        try:
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
        except ValueError:
            day = None
        if day is None:
            raise ApiError(
                400,
                "invalid",
                "Invalid input.",
                f"Invalid revision {value!r}: expected YYYY-MM-DD with an optional .suffix.",
                parameter="revision",
            )
        if day > _LATEST_REVISION:
            raise ApiError(
                400,
                "invalid",
                "Invalid input.",
                f"Revision {value!r} does not exist; the latest is {REVISION}.",
                parameter="revision",
            )

    def _parse_query(self, ep: Endpoint, pairs: list[tuple[str, str]]) -> _Query:
        seen: set[str] = set()
        for k, _ in pairs:
            if k not in ep.query_params:
                raise _invalid(f"'{k}' is not a valid query parameter for {ep.path}.", k)
            if k in seen:
                raise _invalid(f"Query parameter '{k}' was given more than once.", k)
            seen.add(k)
        params = dict(pairs)

        size: int | None = None
        if ep.page_size is not None:
            hi = min(self.page_size_max.get(ep.name, ep.page_size.max), ep.page_size.max)
            size = min(ep.page_size.default, hi)
            if "page[size]" in params:
                raw = params["page[size]"]
                if not raw.isascii() or not raw.isdigit() or not ep.page_size.min <= int(raw) <= hi:
                    raise _invalid(
                        f"page[size] must be an integer between {ep.page_size.min} and {hi}, got {raw!r}.",
                        "page[size]",
                    )
                size = int(raw)
        elif ep.name == "metrics":
            size = self.metrics_page_size

        sort = params.get("sort")
        if sort is not None and (ep.sort is None or sort not in ep.sort):
            raise _invalid(f"'{sort}' is not a valid sort value; allowed: {', '.join(ep.sort or ())}.", "sort")

        fields: dict[str, list[str]] = {}
        for rtype, allowed in ep.fields.items():
            key = f"fields[{rtype}]"
            if key in params:
                fields[rtype] = self._csv(key, params[key], allowed)

        include = self._csv("include", params["include"], ep.include or ()) if "include" in params else []
        unmodelled = sorted(set(include) & _UNMODELLED_INCLUDES)
        if unmodelled:
            raise ApiError(
                501,
                "not_implemented",
                "Not implemented by the fake.",
                f"fake_klaviyo does not model include={','.join(unmodelled)}.",
                parameter="include",
            )

        text = params.get("filter")
        conds: list[filters.Condition] = []
        if text is not None:
            try:
                conds = filters.parse(text)
                filters.validate(conds, ep.filter_fields or {})
            except filters.FilterError as e:
                raise _invalid(str(e), "filter") from None
        if ep.filter_required and text is None:
            raise _invalid(f"The 'filter' query parameter is required for {ep.path}.", "filter")
        if ep.name == "campaigns" and not any(c.field == "messages.channel" for c in conds):
            raise _invalid(
                "A channel filter is required to list campaigns, e.g. equals(messages.channel,'email').", "filter"
            )
        for c in conds:
            if c.field in ep.custom_metrics_unsupported_in:
                for mid in c.python_value() if isinstance(c.value, tuple) else [c.python_value()]:
                    if self._is_custom_metric(mid):
                        raise _invalid(f"Custom metrics are not supported in the {c.field} filter: {mid!r}.", "filter")

        digest = hashlib.sha256(
            json.dumps([ep.name, size, sorted(p for p in pairs if p[0] != "page[cursor]")]).encode()
        ).hexdigest()[:16]
        offset = self._decode_cursor(params["page[cursor]"], digest) if "page[cursor]" in params else 0
        return _Query(pairs, size, sort, fields, include, text, conds, offset, digest)

    @staticmethod
    def _csv(key: str, raw: str, allowed: Sequence[str]) -> list[str]:
        items = raw.split(",")
        for item in items:
            if item not in allowed:
                raise _invalid(f"'{item}' is not a valid value for {key}; allowed: {', '.join(allowed)}.", key)
        return items

    def _is_custom_metric(self, metric_id: str) -> bool:
        m = self._metrics_by_id.get(metric_id)
        if m is None:
            return False
        integ = m["attributes"].get("integration")
        return integ is None or str(integ.get("category", "")).casefold() in _CUSTOM_CATEGORIES

    # --- cursors ------------------------------------------------------------------------------

    @staticmethod
    def _encode_cursor(offset: int, digest: str) -> str:
        raw = json.dumps({"o": offset, "q": digest}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(cursor: str, digest: str) -> int:
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
            obj = json.loads(raw)
            offset, issued_for = obj["o"], obj["q"]
        except (binascii.Error, ValueError, TypeError, KeyError):
            raise _invalid("Invalid cursor.", "page[cursor]") from None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or issued_for != digest:
            # A cursor only works with the exact query (filter, sort, size, fields...) it came from.
            raise _invalid("Invalid cursor: it does not belong to this query.", "page[cursor]")
        return offset

    # --- documents ----------------------------------------------------------------------------

    def _body(self, ep: Endpoint, q: _Query, base: str) -> bytes:
        """The encoded document: events pages without sparse fieldsets or includes take the fast path."""
        if ep.name != "events" or q.include or ep.resource_type in q.fields or not _EncodedEvents.fits(base):
            return _dumps(self._document(ep, q, base))
        assert q.size is not None
        sel = self._select_events(q)
        descending = q.sort is None or q.sort.startswith("-")  # default: newest first
        links = _dumps(self._links(ep, q, base, len(sel)))
        # The same bytes as _dumps({"data": [...], "links": {...}}), since JSON encoding composes.
        return self._encoded_events().document(sel.page(q.offset, q.size, descending), links, base, self)

    def _encoded_events(self) -> _EncodedEvents:
        enc = self._encoded
        if enc is None:
            with self._lock:
                if self._encoded is None:
                    self._encoded = _EncodedEvents(self.account.events)
                enc = self._encoded
        return enc

    def encode_events(self) -> int:
        """JSON-encode every event now rather than on first request (e.g. before a benchmark).

        Returns how many bytes the encoded events hold (about 0.42 kB an event).
        """
        return self._encoded_events().encode_all()

    def _links(self, ep: Endpoint, q: _Query, base: str, total: int) -> dict[str, str]:
        coll = f"{base}{ep.path}/"
        links: dict[str, str] = {"self": coll + (("?" + _encode(q.pairs)) if q.pairs else "")}
        assert q.size is not None
        plain = [p for p in q.pairs if p[0] != "page[cursor]"]
        if q.offset + q.size < total:
            nxt = self._encode_cursor(q.offset + q.size, q.digest)
            links["next"] = coll + "?" + _encode([*plain, ("page[cursor]", nxt)])
        if q.offset > 0:
            prev = self._encode_cursor(max(0, q.offset - q.size), q.digest)
            links["prev"] = coll + "?" + _encode([*plain, ("page[cursor]", prev)])
        return links

    def _document(self, ep: Endpoint, q: _Query, base: str) -> dict[str, Any]:
        if ep.name == "accounts":
            data = [self._render(ep, self.account.account, base, q)]
            self_link = f"{base}{ep.path}/" + (("?" + _encode(q.pairs)) if q.pairs else "")
            return {"data": data, "links": {"self": self_link}}

        assert q.size is not None
        included: list[Resource] = []
        if ep.name == "events":
            sel = self._select_events(q)
            total = len(sel)
            descending = q.sort is None or q.sort.startswith("-")  # default: newest first
            store = self.account.events
            rows = [store.resource(p) for p in sel.page(q.offset, q.size, descending)]
        else:
            matched = self._select_rows(ep, q)
            total = len(matched)
            rows = matched[q.offset : q.offset + q.size]
        data = [self._render(ep, r, base, q) for r in rows]
        if ep.name == "events" and q.include:
            included = self._event_includes(rows, base, q)
        doc: dict[str, Any] = {"data": data, "links": self._links(ep, q, base, total)}
        if q.include:
            doc["included"] = included
        return doc

    def _collection(self, name: str) -> list[Resource]:
        a = self.account
        return {
            "lists": a.lists,
            "segments": a.segments,
            "campaigns": a.campaigns,
            "flows": a.flows,
            "metrics": a.metrics,
        }[name]

    def _getter(self, ep: Endpoint, fld: str) -> Any:
        if fld == "id":
            return lambda r: r["id"]
        if fld == "messages.channel":
            channels = self.account.campaign_channels
            return lambda r: channels.get(r["id"])
        if "." in fld:
            head, rest = fld.split(".", 1)
            return lambda r: (r["attributes"].get(head) or {}).get(rest)
        return lambda r: r["attributes"].get(fld)

    def _select_rows(self, ep: Endpoint, q: _Query) -> list[Resource]:
        table = ep.filter_fields or {}
        preds = [
            filters.compile_condition(
                c, self._getter(ep, c.field), table[c.field].get("value", {}).get("format") == "date-time"
            )
            for c in q.conds
        ]
        rows = [r for r in self._collection(ep.name) if all(p(r) for p in preds)]
        if q.sort is None:
            return rows  # the account's stored order
        fld = q.sort.lstrip("-")
        desc = q.sort.startswith("-")
        get = self._getter(ep, fld)
        is_dt = ep.attributes.get(fld, {}).get("format") == "date-time"

        def key(r: Resource) -> Any:
            v = get(r)
            return filters.parse_datetime(v) if is_dt else v

        present = [r for r in rows if get(r) is not None]
        absent = [r for r in rows if get(r) is None]
        # Ties broken by id so pages are stable; nulls last ascending, first descending.
        present.sort(key=lambda r: (key(r), r["id"]), reverse=desc)
        absent.sort(key=lambda r: r["id"], reverse=desc)
        return absent + present if desc else present + absent

    def _select_events(self, q: _Query) -> _EventSelection:
        store: EventStore = self.account.events
        metric_set: set[int] | None = None
        lo_ts, hi_ts = -(1 << 62), 1 << 62  # lo inclusive, hi exclusive
        profile: int | None = None
        for c in q.conds:
            v = c.python_value()
            if c.field == "metric_id":
                wanted = {store.metric_index[m] for m in (v if isinstance(v, list) else [v]) if m in store.metric_index}
                metric_set = wanted if metric_set is None else metric_set & wanted
            elif c.field in ("datetime", "timestamp"):
                x = v.timestamp() if c.field == "datetime" else float(v)
                if c.op == "greater-or-equal":
                    lo_ts = max(lo_ts, math.ceil(x))
                elif c.op == "greater-than":
                    lo_ts = max(lo_ts, math.floor(x) + 1)
                elif c.op == "less-than":
                    hi_ts = min(hi_ts, math.ceil(x))
                elif c.op == "less-or-equal":
                    hi_ts = min(hi_ts, math.floor(x) + 1)
            elif c.field == "profile_id":
                idx = self._profiles().get(v, -1)
                profile = idx if profile in (None, idx) else -1
            # has(profile) / has(metric): every generated event has both.

        def bounds(ts: Sequence[int]) -> tuple[int, int]:
            lo = bisect_left(ts, lo_ts)
            return lo, max(lo, bisect_left(ts, hi_ts))

        if metric_set is not None and len(metric_set) == 1 and profile is None:
            m = next(iter(metric_set))
            return _EventSelection(store.by_metric[m], *bounds(store.ts_by_metric[m]))
        if metric_set is None and profile is None:
            return _EventSelection(range(len(store)), *bounds(store.ts))

        key = json.dumps([q.filter_text])
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if metric_set is None:
            lo, hi = bounds(store.ts)
            positions: Sequence[int] = range(lo, hi)
        else:
            parts = []
            for m in sorted(metric_set):
                lo, hi = bounds(store.ts_by_metric[m])
                parts.append(store.by_metric[m][lo:hi])
            positions = list(heapq.merge(*parts))
        if profile is not None:
            prof = store.profile
            positions = [p for p in positions if prof[p] == profile]
        sel = _EventSelection(positions, 0, len(positions))
        with self._lock:
            self._cache[key] = sel
            while len(self._cache) > 16:
                self._cache.popitem(last=False)
        return sel

    def _profiles(self) -> dict[str, int]:
        if self._profile_index is None:
            self._profile_index = {p: i for i, p in enumerate(self.account.events.profile_ids)}
        return self._profile_index

    def _render(self, ep: Endpoint, res: Resource, base: str, q: _Query) -> Resource:
        rid = res["id"]
        url = f"{base}{ep.path}/{rid}/"
        attrs = res["attributes"]
        wanted = q.fields.get(ep.resource_type)
        out: Resource = {"type": res["type"], "id": rid, "attributes": _sparse(attrs, wanted) if wanted else attrs}
        rels: dict[str, Any] = {}
        for name, info in ep.relationships.items():
            links = {"self": f"{url}relationships/{name}/", "related": f"{url}{name}/"}
            if info["kind"] == "one":
                rels[name] = {"data": res.get("relationships", {}).get(name, {}).get("data"), "links": links}
            elif name in q.include:
                rels[name] = {"data": [], "links": links}  # the generated account has no tags/attributions
            else:
                rels[name] = {"links": links}
        if rels:
            out["relationships"] = rels
        out["links"] = {"self": url}
        return out

    def _event_includes(self, rows: list[Resource], base: str, q: _Query) -> list[Resource]:
        out: list[Resource] = []
        seen: set[tuple[str, str]] = set()
        metrics_ep = ENDPOINTS["metrics"]
        metric_q = _Query(
            [], None, None, {"metric": q.fields["metric"]} if "metric" in q.fields else {}, [], None, [], 0, ""
        )
        for r in rows:
            for rel in ("metric", "profile"):
                if rel not in q.include:
                    continue
                ident = r["relationships"][rel]["data"]
                k = (ident["type"], ident["id"])
                if k in seen:
                    continue
                seen.add(k)
                if rel == "metric":
                    out.append(self._render(metrics_ep, self._metrics_by_id[ident["id"]], base, metric_q))
                else:
                    out.append(self._profile_resource(ident["id"], base, q.fields.get("profile")))
        return out

    def _profile_resource(self, pid: str, base: str, wanted: list[str] | None) -> Resource:
        # Profiles are not an endpoint of the fake; included ones carry a minimal, stable shape.
        i = self._profiles()[pid]
        attrs: dict[str, Any] = {
            "email": f"client.{i}@example.com",
            "phone_number": None,
            "external_id": None,
            "first_name": ["Zoë", "李", "محمد", "O'Brien", None][i % 5],
            "last_name": None,
            "organization": None,
            "locale": None,
            "title": None,
            "image": None,
            "created": None,
            "updated": None,
            "last_event_date": None,
            "location": None,
            "properties": {},
        }
        return {
            "type": "profile",
            "id": pid,
            "attributes": _sparse(attrs, wanted) if wanted else attrs,
            "links": {"self": f"{base}/api/profiles/{pid}/"},
        }


class _EncodedEvents:
    """Events as :meth:`FakeKlaviyo._render` then ``_dumps`` would give them, at a fraction of the cost.

    Each event's id and attributes are JSON-encoded once, on first use, into one bytes object
    (``chunks[pos]``: the 26-character id, then the attributes object). A page fills, per event,
    a template made once per base URL by rendering and encoding a probe event whose id,
    attributes and related ids are sentinels: JSON escaping works character by character, so
    splicing encoded pieces into encoded text gives exactly the bytes of encoding the whole.
    """

    _ID_LEN = 26  # every event id is a ULID
    _MARK = re.compile(rb"\\u0000([iapm])")

    @staticmethod
    def fits(base: str) -> bool:
        # Encoded, a backslash or NUL in the base URL could read as a sentinel (Host headers hold neither).
        return "\\" not in base and "\x00" not in base

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.chunks: list[bytes | None] = [None] * len(store)
        self.profile_ids = [_dumps(p)[1:-1] for p in store.profile_ids]
        self.metric_ids = [_dumps(m)[1:-1] for m in store.metric_ids]
        self.templates: dict[str, tuple[bytes, Any]] = {}
        self.lock = threading.Lock()

    def chunk(self, pos: int) -> bytes:
        c = self.chunks[pos]
        if c is None:
            res = self.store.resource(pos)
            ident = _dumps(res["id"])[1:-1]
            if len(ident) != self._ID_LEN:
                raise AssertionError(f"event id {res['id']!r} is not {self._ID_LEN} characters")
            c = self.chunks[pos] = ident + _dumps(res["attributes"])
        return c

    def encode_all(self) -> int:
        return sum(len(self.chunk(p)) for p in range(len(self.chunks)))

    def template(self, base: str, fake: FakeKlaviyo) -> tuple[bytes, Any]:
        hit = self.templates.get(base)
        if hit is not None:
            return hit
        ep = ENDPOINTS["events"]
        probe = self.store.resource(0) if len(self.store) else {"relationships": {"profile": {}, "metric": {}}}
        rels = probe["relationships"]
        probe = {
            **probe,
            "type": "event",
            "id": "\x00i",
            "attributes": "\x00a",
            "relationships": {
                **rels,
                "profile": {**rels["profile"], "data": {"type": "profile", "id": "\x00p"}},
                "metric": {**rels["metric"], "data": {"type": "metric", "id": "\x00m"}},
            },
        }
        plain = _Query([], None, None, {}, [], None, [], 0, "")
        text = _dumps(fake._render(ep, probe, base, plain)).replace(b"%", b"%%")
        text = text.replace(b'"\\u0000a"', b"\\u0000a")  # the attributes are an object, not a string
        pieces = self._MARK.split(text)
        order = [k.decode() for k in pieces[1::2]]
        if sorted(set(order)) != ["a", "i", "m", "p"] or order.count("a") != 1:
            raise AssertionError(f"unexpected event template {text!r}")
        hit = (b"%s".join(pieces[0::2]), operator.itemgetter(*("iapm".index(k) for k in order)))
        with self.lock:
            if len(self.templates) >= 8:
                self.templates.clear()
            self.templates[base] = hit
        return hit

    def document(self, positions: Sequence[int], links: bytes, base: str, fake: FakeKlaviyo) -> bytes:
        """``{"data":[<the events at positions>],"links":<links>}``, encoded."""
        tmpl, fill = self.template(base, fake)
        chunks, chunk, n = self.chunks, self.chunk, self._ID_LEN
        profile, metric = self.store.profile, self.store.metric
        profile_ids, metric_ids = self.profile_ids, self.metric_ids
        out = []
        append = out.append
        for pos in positions:
            c = chunks[pos] or chunk(pos)
            append(tmpl % fill((c[:n], c[n:], profile_ids[profile[pos]], metric_ids[metric[pos]])))
        if not out:
            return b'{"data":[],"links":' + links + b"}"
        # One join, so the megabyte a page can weigh is copied once.
        out[0] = b'{"data":[' + out[0]
        out[-1] += b'],"links":' + links + b"}"
        return b",".join(out)


def _encode(pairs: list[tuple[str, str]]) -> str:
    # Percent-encode everything, as Klaviyo's own links do ("page%5Bcursor%5D=...").
    return urlencode(pairs, quote_via=quote, safe="")


def _sparse(attrs: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """Apply a sparse fieldset, including dotted paths like ``audiences.included``."""
    out: dict[str, Any] = {}
    copied: list[str] = []
    for f in sorted(set(wanted) - {"id"}):
        if any(f.startswith(c + ".") for c in copied):
            continue
        parts = f.split(".")
        src: Any = attrs
        dst = out
        for i, part in enumerate(parts):
            if not isinstance(src, dict) or part not in src:
                break
            if i == len(parts) - 1 or src[part] is None:
                dst[part] = src[part]
                copied.append(".".join(parts[: i + 1]))
                break
            src = src[part]
            dst = dst.setdefault(part, {})
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeKlaviyo) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can stall on hosts with slow DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # Idle keep-alive handlers would otherwise linger after stop().
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "fake-klaviyo"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end eventually
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read fake.requests instead

    def version_string(self) -> str:
        return "fake-klaviyo"

    def do_GET(self) -> None:
        self.server.fake._serve(self, "GET")

    def do_HEAD(self) -> None:
        self.server.fake._serve(self, "HEAD")

    def do_POST(self) -> None:
        self.server.fake._serve(self, "POST")

    def do_PUT(self) -> None:
        self.server.fake._serve(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.fake._serve(self, "PATCH")

    def do_DELETE(self) -> None:
        self.server.fake._serve(self, "DELETE")

    def do_OPTIONS(self) -> None:
        self.server.fake._serve(self, "OPTIONS")
