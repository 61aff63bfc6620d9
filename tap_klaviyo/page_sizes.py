"""The page size each endpoint is asked for: its largest, as the spec says, until Klaviyo refuses it (the spec and
its prose disagree on some maximums), then the largest it accepted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.failures import BadRequest

T = TypeVar("T")


class PageSizes:
    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        # The size that worked, by endpoint path.
        self._found: dict[str, int] = {}
        # The page sizes an endpoint refused (streams that start together may each hear it: it is said once).
        self._refused: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def found(self, endpoint: Endpoint) -> int | None:
        return self._found.get(endpoint.path)

    def probe(self, endpoint: Endpoint, ask: Callable[[int], T]) -> T:
        """`ask` for a first page at the endpoint's largest size, then at each smaller one it refuses; the size that
        worked is `found` from then on. Callers that start together each probe, rather than wait a round trip."""
        sizes = endpoint.page_sizes
        for i, size in enumerate(sizes):
            try:
                answer = ask(size)
            except BadRequest as exc:
                # A 400 may not say which parameter it minds: any 400 on a first page is worth one try at the next
                # smaller size.
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
            self._found[endpoint.path] = size
            return answer
        raise AssertionError("unreachable")
