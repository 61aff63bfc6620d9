"""Progress a person can follow: what each stream has done, how far through its range it is, how long is left."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.times import parse_datetime

EVERY_SECONDS = 30.0


class Progress:
    """Logs a stream's progress at INFO every `EVERY_SECONDS`, and a summary when it is done (at `done_level`)."""

    def __init__(
        self,
        logger: logging.Logger,
        stream: str,
        client: KlaviyoClient,
        *,
        time_field: str | None = None,
        start: datetime.datetime | None = None,
        end: datetime.datetime | None = None,
        every: float = EVERY_SECONDS,
        done_level: int = logging.INFO,
    ) -> None:
        self.logger = logger
        self.stream = stream
        self.client = client
        self.time_field = time_field
        self.start = start
        self.end = end
        self.every = every
        self.done_level = done_level
        self.records = 0
        self.began = time.monotonic()
        self._next_log = self.began + every
        self._latest: str | None = None

    def record(self, record: dict[str, Any]) -> None:
        self.add(1, record.get(self.time_field) if self.time_field else None)

    def add(self, count: int, latest: str | None) -> None:
        """`count` more records, the last of them dated `latest`."""
        before = self.records
        self.records += count
        if latest:
            self._latest = latest
            if self.start is None:
                self.start = parse_datetime(latest)
        # Checking the clock every 256 records keeps this off the hot path.
        if (before ^ self.records) & ~0xFF and time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + self.every
            self.logger.info("%s: %s", self.stream, self.status())

    def status(self) -> str:
        counts = self.client.counts(self.stream)
        elapsed = time.monotonic() - self.began
        parts = [f"{self.records:,} records", f"{counts['requests']:,} requests", f"{counts['throttled']} throttled"]
        if self._latest:
            latest = parse_datetime(self._latest)
            end = self.end or datetime.datetime.now(datetime.UTC)
            parts.append(f"through {latest:%Y-%m-%d %H:%M}, range ends {end:%Y-%m-%d %H:%M}")
            if self.start and end > self.start:
                done = min(max((latest - self.start) / (end - self.start), 0.0), 1.0)
                left = f", about {elapsed * (1 - done) / done:,.0f}s left" if done > 0 else ""
                parts.append(f"{done:.0%} of the range{left}")
        parts.append(f"{elapsed:,.0f}s so far")
        return ", ".join(parts)

    def done(self) -> None:
        counts = self.client.counts(self.stream)
        self.logger.log(
            self.done_level,
            "%s: done: %s records, %s requests, %d retries (%d throttled), %.1fs",
            self.stream,
            f"{self.records:,}",
            f"{counts['requests']:,}",
            counts["retries"],
            counts["throttled"],
            time.monotonic() - self.began,
        )
