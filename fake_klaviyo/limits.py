"""What a client must survive: Klaviyo's per-endpoint rate limits (429 with Retry-After), the report queries' daily
quota, and injected faults."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .responses import ApiError, Response
from .spec import ENDPOINTS, Endpoint

FAULT_KINDS: tuple[str, ...] = ("500", "503", "drop", "truncate", "429")


@dataclass(frozen=True)
class Faults:
    """Inject one fault into a request with probability ``rate`` (deterministic RNG); with ``only``, into requests
    whose query (decoded, as ``key=value`` pairs) contains that text, e.g. one metric's id. An injected 429 asks to
    wait ``retry_after``: text, so that it can be what Klaviyo should never send ("86400", "inf", "soon")."""

    rate: float
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    only: str | None = None
    retry_after: str = "1"

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("Faults.rate must be within [0, 1]")
        bad = set(self.kinds) - set(FAULT_KINDS)
        if bad or not self.kinds:
            raise ValueError(f"Faults.kinds must be a non-empty subset of {FAULT_KINDS}, got {self.kinds}")


class FaultDraws:
    """Which requests get which fault, from one seeded RNG (drawn under a lock, so each draw is whole)."""

    def __init__(self, faults: Faults | None) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed if faults else 0)
        self.lock = threading.Lock()

    def draw(self, query: str) -> str | None:
        if self.faults is None or self.faults.rate <= 0:
            return None
        if self.faults.only is not None and self.faults.only not in query:
            return None
        with self.lock:
            if self.rng.random() < self.faults.rate:
                return self.rng.choice(self.faults.kinds)
        return None


def fault_response(kind: str, retry_after: str = "1") -> Response:
    """The answer of a fault that answers ("500", "503", "429", which asks to wait `retry_after`); "drop" and
    "truncate" act on the wire."""
    if kind == "500":
        return ApiError(500, "error", "A server error occurred.", "A server error occurred.").response()
    if kind == "503":
        return ApiError(
            503,
            "service_unavailable",
            "Service unavailable.",
            "The service is temporarily unavailable. Please try again later.",
        ).response()
    if kind == "429":
        return throttled(retry_after).response()
    raise ValueError(f"fault {kind!r} has no response of its own")


def throttled(seconds: int | str) -> ApiError:
    unit = "second" if str(seconds) == "1" else "seconds"
    return ApiError(
        429,
        "throttled",
        "Request was throttled.",
        f"Request was throttled. Expected available in {seconds} {unit}.",
        pointer="/data",
        headers={"Retry-After": str(seconds)},
    )


def window(ep: Endpoint, pairs: list[tuple[str, str]]) -> str:
    """The limits a request counts against: its endpoint's or, when it asks for an additional field with lower
    limits of its own (``additional-fields[profile]=predictive_analytics``), that field's, named as
    "profiles+predictive_analytics"."""
    asked = {f for k, v in pairs if k.startswith("additional-fields[") for f in v.split(",")}
    slower = sorted(asked & set(ep.field_rate_limits))
    return f"{ep.name}+{slower[0]}" if slower else ep.name


DAY_SECONDS = 86400


class RateLimiter:
    """Klaviyo's per-account fixed windows: burst per second, steady per minute, for each endpoint (and each of
    its additional fields with limits of their own: see :func:`window`), and the report queries' daily quota. A
    request counts in the window of the time it arrived, not of the time this process got round to it: the fake's
    own threads, busy rendering other responses, must not bunch requests into a second they did not arrive in. A
    daily quota's day starts with its first request (and its 429 asks to wait until that day ends)."""

    def __init__(self, limits: Mapping[str, tuple[int, int]], daily: Mapping[str, int] | None = None) -> None:
        self.limits = dict(limits)
        self.daily = dict(daily or {})
        self.lock = threading.Lock()
        # name -> (requests per second, requests per minute), the last few of each.
        self.counts: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        # name -> (when its day began, requests that day)
        self.days: dict[str, tuple[float, int]] = {}

    @classmethod
    def from_setting(cls, rate_limits: bool | Mapping[str, tuple[int, ...]]) -> RateLimiter | None:
        """None when off; the spec's limits, with a mapping's ``(burst, steady)`` (or, for a report query,
        ``(burst, steady, daily)``) overriding its endpoints."""
        if not rate_limits:
            return None
        limits = {n: (e.burst, e.steady) for n, e in ENDPOINTS.items()}
        limits.update({f"{n}+{f}": v for n, e in ENDPOINTS.items() for f, v in e.field_rate_limits.items()})
        daily = {n: e.daily for n, e in ENDPOINTS.items() if e.daily is not None}
        if isinstance(rate_limits, Mapping):
            bad = set(rate_limits) - set(limits)
            if bad:
                raise ValueError(f"rate_limits: unknown endpoints {sorted(bad)}")
            if any(len(v) != 2 + (k in daily) for k, v in rate_limits.items()):
                raise ValueError(
                    "rate_limits: (burst, steady) per endpoint, and (burst, steady, daily) per report query"
                )
            limits.update({k: (int(v[0]), int(v[1])) for k, v in rate_limits.items()})
            daily.update({k: int(v[2]) for k, v in rate_limits.items() if k in daily})
        return cls(limits, daily)

    def new_day(self) -> None:
        """Every daily quota is whole again (as the next day, without waiting for it)."""
        with self.lock:
            self.days.clear()

    def acquire(self, name: str, arrived: float | None = None) -> dict[str, str]:
        burst, steady = self.limits[name]
        now = time.time() if arrived is None else arrived
        sec, minute = int(now), int(now // 60)
        with self.lock:
            seconds, minutes = self.counts.setdefault(name, ({}, {}))
            began, used = self.days.get(name, (now, 0))
            if now >= began + DAY_SECONDS:
                began, used = now, 0
            if name in self.daily and used >= self.daily[name]:
                raise throttled(max(1, math.ceil(began + DAY_SECONDS - now)))
            wait = 0.0
            if seconds.get(sec, 0) >= burst:
                wait = max(wait, sec + 1 - now)
            if minutes.get(minute, 0) >= steady:
                wait = max(wait, (minute + 1) * 60 - now)
            if wait:
                raise throttled(max(1, math.ceil(wait)))
            seconds[sec] = seconds.get(sec, 0) + 1
            minutes[minute] = minutes.get(minute, 0) + 1
            if name in self.daily:
                self.days[name] = (began, used + 1)
            for window_counts, current in ((seconds, sec), (minutes, minute)):
                for old in [k for k in window_counts if k < current - 2]:
                    del window_counts[old]
            return {
                "RateLimit-Limit": str(steady),
                "RateLimit-Remaining": str(steady - minutes[minute]),
                "RateLimit-Reset": str(max(1, math.ceil((minute + 1) * 60 - now))),
            }
