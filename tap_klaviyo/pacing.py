"""Request pacing, so that a normal run stays under Klaviyo's rate limits instead of bouncing off them.

Klaviyo limits each endpoint per account with two fixed windows: a burst per second and a steady rate per
minute. A pacer keeps at most that many requests in *any* sliding 1 s and 60 s window, which can never exceed
a fixed window, whatever its alignment, and spaces them evenly (a second's burst released at once bunches on
its way: requests held up behind one another land in the next second with those released for it). Headroom
leaves room for clock skew and for network jitter: a tenth of a second's burst, but only a twentieth of a
minute's allowance (a few seconds of requests), since the steady limit is what a long sync runs at.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

BURST_HEADROOM = 0.9
STEADY_HEADROOM = 0.95
# The longest the tap waits because Klaviyo said so (`Retry-After`, `RateLimit-Reset`). A daily quota, or a proxy
# that answers nonsense, can ask for hours: an unattended run would hang without a word, so it stops instead.
LONGEST_WAIT_SECONDS = 300.0


class Pacer:
    """One per endpoint, shared by every thread that calls it."""

    def __init__(
        self,
        burst_per_second: int,
        steady_per_minute: int,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.burst = max(1, math.floor(burst_per_second * BURST_HEADROOM))
        self.steady = max(1, math.floor(steady_per_minute * STEADY_HEADROOM))
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        # Send times handed out so far (some may lie in the future): the last `steady` of them suffice.
        self._sent: deque[float] = deque(maxlen=max(self.burst, self.steady))
        self._paused_until = 0.0

    def acquire(self) -> float:
        """Wait until one more request may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            at = max(now, self._paused_until)
            if self._sent:
                at = max(at, self._sent[-1] + 1.0 / self.burst)
            if len(self._sent) >= self.burst:
                at = max(at, self._sent[-self.burst] + 1.0)
            if len(self._sent) >= self.steady:
                at = max(at, self._sent[-self.steady] + 60.0)
            self._sent.append(at)
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def waiting(self) -> float:
        """How long the last request handed a send time waits for it: more than a round trip, and more requests
        would only wait behind it."""
        with self._lock:
            return max(0.0, self._sent[-1] - self._clock()) if self._sent else 0.0

    def minute_spent(self) -> float:
        """The share of a minute's allowance the requests of the last minute (and those waiting) take: past half of
        it, a sync is bound to the rate of a minute, far below the burst."""
        with self._lock:
            since = self._clock() - 60.0
            recent = len(self._sent) - bisect.bisect_right(self._sent, since)
        return recent / self.steady

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` (after a 429's `Retry-After`, or an exhausted window)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Klaviyo's `RateLimit-Remaining`/`-Reset` headers: when the window is spent, wait for its reset."""
        try:
            remaining = int(headers["RateLimit-Remaining"])
            reset = float(headers["RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        # A reset beyond the longest wait (or no number at all) is not waited for: the 429 that follows says
        # what Klaviyo wants, and the client judges it.
        if remaining <= 0 and 0 <= reset <= LONGEST_WAIT_SECONDS:
            self.pause(reset)
