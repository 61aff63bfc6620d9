"""The ranges the window pool reads, as data: a range and its place in the read-ahead order, a window of a range, a
worker's chunk of pages and the windows that cover the rest, a range's plan, and the probe that asks for a range's
newest records beside its first page."""

from __future__ import annotations

import datetime
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tap_klaviyo.codec import RawPage

if TYPE_CHECKING:
    from tap_klaviyo.pacing import Pacer


@dataclass(frozen=True)
class Window:
    """Events with start <= datetime < end (None: unbounded), or the page a `links.next` URL points to (`end`:
    that of the query the cursor goes on with, so that what is left of it can still be split)."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    next_url: str | None = None
    # Pages one worker reads before it looks again (splits what is left, or goes on by cursor).
    pages: int = 1
    # A range's window as its plan gives it, not one the pool made: its newest record is asked for beside its first
    # page, and it splits after that page.
    whole: bool = True


@dataclass
class Chunk:
    """Pages to emit, and the windows that read what remains after them; with `before`, only the pages' records
    dated before it are emitted (the rest is read again later)."""

    pages: list[RawPage]
    remaining: list[Window]
    before: datetime.datetime | None = None
    # Idle workers the windows of `remaining` were split for (`Workers.claimed`).
    claimed: int = 0

    @property
    def size(self) -> int:
        return sum(page.size for page in self.pages)


@dataclass(frozen=True)
class Plan:
    """How to read one range (a stream, or one partition of it): the first page of a window (`first_page`), the
    page a `links.next` URL names (`page_at`), a page of a window's newest records (newest first), the windows to
    read (in time order), where an open-ended window is cut for splitting (records after it are few), and the pacer
    of its endpoint's rate limits."""

    first_page: Callable[[Window], RawPage]
    page_at: Callable[[str], RawPage]
    # None: the range is read by cursor only (its pages carry no times to split by).
    newest: Callable[[Window], RawPage] | None
    windows: list[Window]
    now: datetime.datetime
    # None: no limit to mind.
    pacer: Pacer | None = None


class Probe(threading.Thread):
    """A page of a range's newest records, asked for in a thread of its own while the worker reads the first page."""

    def __init__(self, newest: Callable[[Window], RawPage], window: Window) -> None:
        super().__init__(name="klaviyo-newest", daemon=True)
        self.newest, self.window = newest, window
        self.value: RawPage | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.newest(self.window)
        except BaseException as error:  # handed to the worker that waits for it
            self.error = error

    def result(self) -> RawPage | None:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


@dataclass
class Range:
    """One range's records: its plan once made, and its windows to read, being read, or read (in time order)."""

    key: str
    prepare: Callable[[], Plan | None]
    # The streams that consume it (a walk has several: the first of them to sync does), and when it was added:
    # what orders it.
    streams: list[str]
    added: int
    # Whether `prepare` may run before the run has looked anything up (it asks the network nothing).
    early: bool = False
    plan: Plan | None = None
    prepared: bool = False
    consumed: bool = False
    items: deque[Window | Future[Chunk] | Chunk] = field(default_factory=deque)

    def rank(self, order: Mapping[str, int]) -> tuple[int, str, int]:
        """Its place in the read-ahead order: that of the first of its streams the run consumes (`order`: each
        stream's place; those it lacks come after, by name), then the order ranges were added in."""
        last = len(order)
        stream = min(self.streams, key=lambda name: (order.get(name, last), name))
        return (order.get(stream, last), stream, self.added)
