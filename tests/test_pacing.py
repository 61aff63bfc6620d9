"""The pacer keeps every sliding window under its limits, pauses on demand, and is thread-safe."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from tap_klaviyo.pacing import LONGEST_WAIT_SECONDS, Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule(pacer: Pacer, clock: FakeClock, n: int) -> list[float]:
    """Send times of n requests issued back to back (the fake clock jumps to each granted time)."""
    times = []
    for _ in range(n):
        waited = pacer.acquire()
        clock.now += waited
        times.append(clock.now)
    return times


def max_in_window(times: list[float], width: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_windows_hold_with_headroom():
    clock = FakeClock()
    pacer = Pacer(10, 150, clock=clock, sleep=lambda s: None)
    times = schedule(pacer, clock, 400)
    assert pacer.burst == 9 and pacer.steady == 142
    assert max_in_window(times, 1.0) == 9
    assert max_in_window(times, 60.0) == 142
    # Steady rate is reached, not undershot: 400 requests need a bit under three minutes.
    assert 2 * 60 < times[-1] - times[0] < 3 * 60


def test_flows_tier_three_per_second():
    clock = FakeClock()
    pacer = Pacer(3, 60, clock=clock, sleep=lambda s: None)
    times = schedule(pacer, clock, 120)
    # Under both limits, with headroom, and each window used to its (lowered) limit: not slower than that.
    assert (pacer.burst, pacer.steady) == (2, 57)
    assert max_in_window(times, 1.0) == 2 and max_in_window(times, 60.0) == 57
    # 120 requests at 57 a minute: two full minutes and a little of a third, no more.
    assert 2 * 60 < times[-1] - times[0] < 2 * 60 + 5


def test_pause_and_exhausted_window_hold_everyone_back():
    clock = FakeClock()
    pacer = Pacer(100, 1000, clock=clock, sleep=lambda s: None)
    assert pacer.acquire() == 0
    pacer.pause(5)
    assert pacer.acquire() == 5
    clock.now += 5
    pacer.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": "12"})
    assert pacer.acquire() == 12
    # A window with requests left, or headers that say nothing of it, hold nobody back.
    clock.now += 12
    pacer.observe({"RateLimit-Remaining": "40", "RateLimit-Reset": "12"})
    pacer.observe({"unrelated": "1"})
    assert pacer.acquire() == pytest.approx(1 / pacer.burst)  # only the spacing after the request before


@pytest.mark.parametrize("reset", ["86400", "inf"])
def test_a_reset_beyond_the_longest_wait_holds_nobody_back(reset):
    # The 429 that may follow says what Klaviyo wants, and the client judges that; a header alone hangs nobody.
    clock = FakeClock()
    pacer = Pacer(100, 1000, clock=clock, sleep=lambda s: None)
    pacer.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": reset})
    assert pacer.acquire() == 0
    pacer.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": str(LONGEST_WAIT_SECONDS)})
    assert pacer.acquire() == LONGEST_WAIT_SECONDS


def test_a_burst_is_spread_over_its_second():
    # Released at once, a second's requests bunch on their way and some land in the next second.
    clock = FakeClock()
    pacer = Pacer(10, 150, clock=clock, sleep=lambda s: None)
    times = [clock.now + pacer.acquire() for _ in range(9)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([1 / 9] * 8)


def test_threads_share_one_pacer_without_exceeding_it():
    pacer = Pacer(50, 100000)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(15):
            pacer.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent.sort()
    assert len(sent) == 120
    # 45 a second after headroom, spaced evenly: a thread the scheduler wakes late bunches a few together, which
    # the headroom absorbs; what must hold is the endpoint's own limit in any second.
    assert max_in_window(sent, 1.0) <= 50
    # And the pacer holds back no more than it must: 120 requests at 45 a second take about 2.6 s.
    assert 2.3 <= sent[-1] - sent[0] <= 6.0, f"{sent[-1] - sent[0]:.2f}s for 120 requests"


def test_the_reporting_apis_one_a_second_and_two_a_minute_keep_headroom_without_halving_the_rate():
    # Requests exactly a second apart draw 429s, and 95% of two a minute would be one: the windows widen instead.
    clock = FakeClock()
    began = clock.now
    pacer = Pacer(1, 2, clock=clock, sleep=lambda s: None, wait_first=True)
    times = schedule(pacer, clock, 8)
    gaps = [b - a for a, b in itertools.pairwise([began, *times])]
    assert min(gaps) >= 1.5, "half a second of jitter between two requests (of this run, or the one before) is fine"
    # Three seconds of skew or jitter never put three requests in one of Klaviyo's fixed minutes.
    assert max_in_window(times, 63.0) == 2
    # Two a minute, nearly: eight requests go in a little over three minutes.
    assert 3 * 60 < times[-1] - times[0] < 3 * 66
    # How long the next one waits can be asked without counting one (a caller waits in steps, and stops between).
    assert pacer.ready_in() == pytest.approx(times[-2] + 60 / 0.95 - clock.now) == pacer.ready_in()
    assert pacer.acquire() == pytest.approx(times[-2] + 60 / 0.95 - clock.now)


def test_the_steady_limit_klaviyo_states_is_paced_under_and_other_windows_are_not():
    clock = FakeClock()
    pacer = Pacer(1, 2, clock=clock, sleep=lambda s: None)
    # A daily window's numbers are no steady limit.
    pacer.observe({"RateLimit-Limit": "225", "RateLimit-Remaining": "200", "RateLimit-Reset": "80000"})
    assert (pacer.steady, pacer.burst) == (2, 1)
    pacer.observe({"RateLimit-Limit": "600", "RateLimit-Remaining": "599", "RateLimit-Reset": "40"})
    assert pacer.steady == 570
    times = schedule(pacer, clock, 10)
    assert times[-1] - times[0] == pytest.approx(9 * 1.5), "only the burst holds requests back now"
    # A limit that is not a number changes nothing, and an exhausted window is still waited out.
    pacer.observe({"RateLimit-Limit": "2;w=60", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"})
    assert pacer.steady == 570 and pacer.acquire() == pytest.approx(30)


def test_waiting_says_how_long_the_last_request_handed_a_send_time_waits_for_it():
    clock = FakeClock()
    pacer = Pacer(10, 60, clock=clock, sleep=lambda seconds: None)
    assert pacer.waiting() == 0.0
    for _ in range(9):  # a burst of 9 a second, spaced evenly, all asked for at once
        pacer.acquire()
    assert pacer.waiting() == pytest.approx(8 / 9)
    clock.now += 5
    assert pacer.waiting() == 0.0


def test_minute_spent_is_the_share_of_a_minutes_allowance_the_last_minute_took():
    clock = FakeClock()
    pacer = Pacer(100, 100, clock=clock, sleep=lambda seconds: None)
    assert pacer.minute_spent() == 0.0
    schedule(pacer, clock, 40)  # 95 a minute: 40 of them
    assert pacer.minute_spent() == pytest.approx(40 / 95)
    clock.now += 61
    assert pacer.minute_spent() == 0.0
