"""What is worth another try, and how long to wait before it: the client's retry policy, apart from the
client's loop that applies it."""

from __future__ import annotations

import random

import requests
import urllib3

# Connection-level failures worth another try (urllib3's own while a body is read); a body that is cut short but
# arrives shows up as `Unreadable` instead.
TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
)
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


class Retry(Exception):
    """A response worth another try; `wait` is what the server asked for, if it said."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


def backoff(attempt: int) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0**attempt)


def describe(exc: Exception) -> str:
    """A failure worth another try, as the retry warning names it."""
    if isinstance(exc, Retry):
        return str(exc)
    return f"connection error: {type(exc).__name__}"
