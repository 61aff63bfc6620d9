"""How a run stops on SIGTERM or SIGINT: at the next point where everything written so far is covered by the
STATE the tap writes on its way out, so that a run from that state loses nothing.

A signal handler may run between any two bytecodes of the main thread, in the middle of a RECORD line or of a
bookmark's update, so once the tap is running the handler only asks for the stop (`request`); the main thread
stops where it checks (`check`): after a record's bookmark has moved, while it waits for the window pool, and
before and after the streams sync. Before the tap exists nothing has been written, so a signal stops at once; and
so it does while the main thread waits on the network itself (`interruptible`: one page at a time, a request can
hang for its whole read timeout, and a scheduler's grace period is shorter).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_requested: int | None = None
# How deep the main thread is in `interruptible` blocks.
_waiting = 0


class Interrupted(BaseException):
    """The run stopped on a signal. Not an Exception, like KeyboardInterrupt: no stream, retry loop or SDK error
    log on its way out takes it for a failure of its own."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signum

    def __str__(self) -> str:
        return (
            f"interrupted by {signal.Signals(self.signum).name}: stopped cleanly; a run from the last STATE "
            "written resumes where this one stopped"
        )


def install() -> None:
    """Stop at once on SIGTERM and SIGINT (the tap takes them over once it exists, see `request`)."""
    for signum in SIGNALS:
        signal.signal(signum, _stop_now)


def _stop_now(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def request(signum: int) -> None:
    """Ask the run to stop at its next check (the first signal counts), or now if the main thread is waiting on the
    network (`interruptible`)."""
    global _requested
    if _requested is None:
        _requested = signum
    if _waiting:
        raise Interrupted(_requested)


@contextmanager
def interruptible() -> Iterator[None]:
    """The main thread waits on the network here (a request, and the waits before its retries): nothing of the
    answer is written yet and everything before it is covered by the state, so a signal stops the run at once, and
    one that asked before stops it on the way in. In any other thread, nothing changes."""
    global _waiting
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    check()
    _waiting += 1
    try:
        yield
    finally:
        _waiting -= 1


def requested() -> int | None:
    """The signal that asked the run to stop, if one did."""
    return _requested


def check() -> None:
    """Stop here if a signal asked to: raise Interrupted."""
    if _requested is not None:
        raise Interrupted(_requested)
