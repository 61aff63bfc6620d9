"""Request pacing, so that a normal run stays under Klaviyo's rate limits instead of bouncing off them.

Klaviyo limits each endpoint per account with two fixed windows: a burst per second and a steady rate per
minute. A pacer keeps at most that many requests in *any* sliding 1 s and 60 s window, which can never exceed
a fixed window, whatever its alignment, and spaces them evenly (a second's burst released at once bunches on
its way: requests held up behind one another land in the next second with those released for it). Headroom
leaves room for clock skew and for network jitter: a tenth of a second's burst, but only a twentieth of a
minute's allowance (a few seconds of requests), since the steady limit is what a long sync runs at. A limit of one
or two requests (the Reporting API's 1/s and 2/min) has no such share to spare: 90% of 1 is still 1, so requests
exactly a second apart, which draw 429s, and 95% of 2 would halve the rate; it keeps its count over a window
longer by the same share instead, and by half a second at least, as one request held up on its way and the next one
not must still land in two of Klaviyo's fixed windows (one request every 1.5 s, two every 63 s).

Klaviyo recommends pacing by its `RateLimit-*` headers, which state the steady window: its `RateLimit-Limit` is
the steady limit paced under from then on (with the same headroom), and an exhausted window is waited out.
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
# The steady window: `RateLimit-*` headers resetting later than this describe no window the pacer keeps.
MINUTE = 60.0
# The least a window is widened by where its limit has no share to spare.
JITTER_SECONDS = 0.5


def kept(limit: int, headroom: float, window: float) -> tuple[int, float]:
    """The requests a pacer lets through per window, and that window: `headroom` of the limit, or where that would
    leave no headroom or cost half the limit or more (limits of one or two requests), the whole limit over a window
    longer by the same share, and by `JITTER_SECONDS` at least."""
    count = math.floor(limit * headroom)
    if count > limit / 2:
        return count, window
    return max(1, limit), max(window / headroom, window + JITTER_SECONDS)


class Pacer:
    """One per endpoint, shared by every thread that calls it."""

    def __init__(
        self,
        burst_per_second: int,
        steady_per_minute: int,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        wait_first: bool = False,
    ) -> None:
        self.burst, self.second = kept(burst_per_second, BURST_HEADROOM, 1.0)
        self.steady, self.minute = kept(steady_per_minute, STEADY_HEADROOM, MINUTE)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        # Send times handed out so far (some may lie in the future): the last `steady` of them suffice.
        self._sent: deque[float] = deque(maxlen=max(self.burst, self.steady))
        # `wait_first`: the first request waits one spacing too, as a run that has just ended (a rerun, a next run
        # started at once) may have sent one a moment ago, and a limit of one a second has no share to spare for it.
        self._paused_until = self._clock() + self.second / self.burst if wait_first else 0.0

    def acquire(self) -> float:
        """Wait until one more request may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            at = self._next(now)
            self._sent.append(at)
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def ready_in(self) -> float:
        """The seconds until one more request may go (none is counted): a caller that waits long (two a minute) can
        wait in steps, and stop between them."""
        with self._lock:
            now = self._clock()
            return max(0.0, self._next(now) - now)

    def _next(self, now: float) -> float:
        at = max(now, self._paused_until)
        if self._sent:
            at = max(at, self._sent[-1] + self.second / self.burst)
        if len(self._sent) >= self.burst:
            at = max(at, self._sent[-self.burst] + self.second)
        if len(self._sent) >= self.steady:
            at = max(at, self._sent[-self.steady] + self.minute)
        return at

    def waiting(self) -> float:
        """How long the last request handed a send time waits for it: more than a round trip, and more requests
        would only wait behind it."""
        with self._lock:
            return max(0.0, self._sent[-1] - self._clock()) if self._sent else 0.0

    def minute_spent(self) -> float:
        """The share of a minute's allowance the requests of the last minute (and those waiting) take: past half of
        it, a sync is bound to the rate of a minute, far below the burst."""
        with self._lock:
            since = self._clock() - MINUTE
            recent = len(self._sent) - bisect.bisect_right(self._sent, since)
        return recent / self.steady

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` (after a 429's `Retry-After`, or an exhausted window)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Klaviyo's `RateLimit-Limit`/`-Remaining`/`-Reset` headers: pace under the steady limit they state, and
        when the window is spent, wait for its reset."""
        reset, limit, remaining = (
            _number(headers, "RateLimit-Reset", float),
            _number(headers, "RateLimit-Limit", int),
            _number(headers, "RateLimit-Remaining", int),
        )
        if reset is None:
            return
        if limit is not None and limit >= 1 and 0 <= reset <= MINUTE:
            self._steady_limit(int(limit))
        if remaining is None:
            return
        # A reset beyond the longest wait (or no number at all) is not waited for: the 429 that follows says
        # what Klaviyo wants, and the client judges it.
        if remaining <= 0 and 0 <= reset <= LONGEST_WAIT_SECONDS:
            self.pause(reset)

    def _steady_limit(self, limit: int) -> None:
        steady, minute = kept(limit, STEADY_HEADROOM, MINUTE)
        with self._lock:
            if (steady, minute) != (self.steady, self.minute):
                self.steady, self.minute = steady, minute
                self._sent = deque(self._sent, maxlen=max(self.burst, self.steady))


def _number(headers: Mapping[str, str], name: str, kind: type[int] | type[float]) -> float | None:
    try:
        return kind(headers[name])
    except (KeyError, ValueError):
        return None
