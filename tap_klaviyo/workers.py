"""The window pool's workers, counted: which are taken (reading, with a window queued for them, or claimed for
windows about to be split off), the quickest round trip seen, and how many workers a range's windows get (`room`).
These counts only ever steer splitting, never what is read."""

from __future__ import annotations

import math
import threading

from tap_klaviyo.ranges import Plan
from tap_klaviyo.splits import Room

# Windows of a range bound by its endpoint's rate limit read at once, for each request that limit lets out in a
# round trip: some of a window's round trips go to the pacer's wait, and a window that ends leaves a worker idle
# until it is split for.
RATE_SLACK = 1.5
# Past this share of a minute's allowance spent, a range's endpoint is bound to its rate a minute (a twelfth of its
# burst, for profiles): every request counts, and it reads only as many windows at once as that rate keeps busy.
MINUTE_BOUND = 0.5


class Workers:
    """`concurrency` workers: windows made and not started yet (queued), workers reading (busy), and idle ones
    already split for (claimed), asked by workers that could split for idle ones."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self.queued = 0
        self.busy = 0
        self.claimed = 0
        # How long a range's first request took, the quickest seen: a round trip.
        self.round_trip: float | None = None

    def count(self, queued: int = 0, busy: int = 0, claimed: int = 0) -> None:
        with self._lock:
            self.queued += queued
            self.busy += busy
            self.claimed += claimed

    def timed(self, took: float) -> None:
        """A range's first request took `took` seconds."""
        self.round_trip = took if self.round_trip is None else min(self.round_trip, took)

    def taken(self) -> int:
        """Workers reading, or with a window queued for them, or split for already."""
        return self.busy + self.queued + self.claimed

    def claim_idle(self, most: int, workers: int, room: int) -> int:
        """Up to `most` of `workers` idle with nothing queued for them, claimed for windows about to be split off, no
        more than `room` (the windows the read-ahead budget has room for)."""
        if workers - self.taken() <= 0:
            return 0  # the usual answer, without the lock
        with self._lock:
            idle = min(most, room, workers - self.taken())
            if idle <= 0:
                return 0
            self.claimed += idle
            return idle

    def room(self, plan: Plan, budget: int) -> Room:
        """What the pool has for the rest of a window of `plan`'s range: `Room`. A range's windows are worth
        reading at once on every worker, unless its endpoint's rate limit lets out fewer requests in a round trip,
        give or take (the others would wait for the pacer, and windows cost requests)."""
        workers, rounds = self.concurrency, self.round_trip
        if plan.pacer is None or rounds is None:
            return Room(self.concurrency, workers, workers - self.taken(), budget)
        pacer = plan.pacer
        # Once bound to its rate a minute, the range needs only the windows that rate keeps busy; fewer (its last
        # windows ending) leave the rate unspent, and idle workers are split for again.
        minute_bound = pacer.minute_spent() > MINUTE_BOUND
        per_second = pacer.steady / pacer.minute if minute_bound else pacer.burst / pacer.second
        workers = max(1, min(self.concurrency, math.ceil(RATE_SLACK * per_second * rounds)))
        free = workers - self.taken()
        return Room(self.concurrency, workers, free, budget, paced=pacer.waiting() > rounds)
