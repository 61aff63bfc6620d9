"""Profiles (with their consent) and the members of every list and segment: the tap's streams of people, read by
time windows like events, and opt-in (a run without a catalog leaves them out)."""

from __future__ import annotations

import datetime
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.codec import RawPage
from tap_klaviyo.endpoints import LISTS, PROFILES_PREDICTIVE, SEGMENTS, Endpoint
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.failures import NotFound
from tap_klaviyo.progress import Progress
from tap_klaviyo.ranges import Plan
from tap_klaviyo.sdk import PageSyncStream, log_partition_starts_at_debug
from tap_klaviyo.streams.base import Source, StreamRow
from tap_klaviyo.streams.windowed import WindowedStream
from tap_klaviyo.times import parse_or_none

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams.run import Run

# Where the lists and the segments are listed, by kind.
GROUP_ENDPOINTS = {"list": LISTS, "segment": SEGMENTS}
# Save progress once a page, so a killed run re-sends at most about a page.
PAGE = 100
# A list or segment whose members answer 404 was deleted since the run listed it, and is skipped: that happens.
# But the lists a run has just listed do not vanish together: when this many (or all there are, if fewer) have
# answered 404 before any answered with members, the 404s say the requests went to the wrong place (an `api_url`
# or proxy that does not serve these paths) or that the API changed, and the run stops rather than report every
# list empty. Three lists deleted in the seconds between listing and reading them would stop a run too, rarely,
# and the next run would not list them.
DOUBTFUL_404S = 3


class ProfilesStream(PageSyncStream, WindowedStream):
    """Every profile, oldest `updated` first, with `subscriptions` (consent and suppression per channel) and, with
    `profiles_predictive_analytics`, `predictive_analytics` (which Klaviyo serves at lower rate limits). Written a
    page at a time: checked as every record is (`post_process`), without the SDK's conformance pass (a second walk over
    every field, which drops nothing the check lets through but fields of nested objects the schema lacks)."""

    STATE_MSG_FREQUENCY = PAGE

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        if self.window_pool is not None:
            # Its first page goes out at the start, beside the entity streams' and the lookups.
            self.window_pool.add(self.name, self.plan, early=True)

    def source(self, context: Context | None) -> tuple[Source, str | None]:
        source = self.row.sources[0]
        if not self.config.get("profiles_predictive_analytics"):
            return source, None
        fields = f"{source.query['additional-fields[profile]']},predictive_analytics"
        return Source(PROFILES_PREDICTIVE, {**source.query, "additional-fields[profile]": fields}), None

    def plan(self, context: Context | None = None) -> Plan | None:
        return super().plan(context) if self.selected else None

    def ready(self) -> list[str]:
        return [self.name] if self.window_pool is not None else []

    def writes_pages(self) -> bool:
        return self.takes_whole_pages()

    def record_pages(self) -> Iterator[tuple[Sequence[Any], Sequence[Any]]]:
        progress = self.progress(None)
        for page, before in self.windowed_pages(None):
            rows = [self.post_process(row) for row in self.rows(page.body, before)]
            if rows:
                times = [value if parse_or_none(value := row.get(self.time_field)) else None for row in rows]
                progress.add(len(rows), next((value for value in reversed(times) if value), None))
                yield rows, times
        progress.done()


@dataclass(frozen=True)
class Group:
    """A list or a segment."""

    kind: str
    id: str


class GroupDirectory:
    """Every list and segment of the account, read once a run (ids only) for the members stream: the lists and the
    segments may be read at once, each by a thread of its own."""

    def __init__(self, client: KlaviyoClient) -> None:
        self.client = client
        self._groups: dict[str, list[Group]] = {}

    def of_kind(self, kind: str, stream: str) -> list[Group]:
        if kind not in self._groups:
            self._groups[kind] = [
                Group(kind, resource["id"])
                for document in self.client.documents(
                    GROUP_ENDPOINTS[kind], {f"fields[{kind}]": "updated"}, stream=stream
                )
                for resource in document["data"]
            ]
        return self._groups[kind]

    def all(self, stream: str) -> list[Group]:
        return [group for kind in GROUP_ENDPOINTS for group in self.of_kind(kind, stream)]


class MembersStream(WindowedStream):
    """Who is in each list and segment, and since when: one state partition per list or segment (its bookmark on
    `joined_group_at`), read oldest first, the partitions in parallel through the window pool."""

    STATE_MSG_FREQUENCY = PAGE
    KEEPS_PARTITIONS = True

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        self.groups = run.groups
        self._contexts: list[dict[str, str]] | None = None
        self._keys: dict[tuple[str, str], str] = {}
        # A line per list or segment at INFO would bury the log: those are at DEBUG, and this stream's own line at
        # the end sums them.
        log_partition_starts_at_debug(self.logger)
        self._whole: Progress | None = None
        self._groups_done = 0
        # The paths of lists and segments that answered with members, and of those that answered 404 (read by
        # the window pool's workers at once).
        self._found: set[str] = set()
        self._missing: set[str] = set()
        self._answers_lock = threading.Lock()

    def endpoints(self) -> tuple[Endpoint, ...]:
        # Every list and segment is listed first.
        return (LISTS, SEGMENTS, *super().endpoints())

    def lookups(self) -> dict[Endpoint, Callable[[], object]]:
        return {endpoint: partial(self.groups.of_kind, kind, self.name) for kind, endpoint in GROUP_ENDPOINTS.items()}

    def ready(self) -> list[str]:
        """The first list's range and the first segment's: one of each member endpoint."""
        if self.window_pool is None:
            return []
        firsts: dict[str, dict[str, str]] = {}
        for context in self.partitions or []:
            firsts.setdefault(context["type"], context)
        return [self.window_key(context) for context in firsts.values()]

    @property
    def partitions(self) -> list[dict[str, Any]] | None:
        if not self.selected:
            return None
        if self._contexts is None:
            self._contexts = [{"list_id": group.id, "type": group.kind} for group in self.groups.all(self.name)]
            for i, context in enumerate(self._contexts):
                self._keys[context["type"], context["list_id"]] = f"{self.name}:{i}"
                if self.window_pool is not None:
                    self.window_pool.add(self.window_key(context), partial(self.plan, context), stream=self.name)
        return list(self._contexts)

    def window_key(self, context: Context | None) -> str:
        assert context is not None
        return self._keys[context["type"], context["list_id"]]

    def source(self, context: Context | None) -> tuple[Source, str | None]:
        assert context is not None
        source = self.row.sources[0 if context["type"] == "list" else 1]
        return source, source.endpoint.path.replace("{id}", quote(context["list_id"], safe=""))

    def first_page(self, source: Source, query: dict[str, str], path: str | None, **kwargs: Any) -> RawPage:
        try:
            page = super().first_page(source, query, path, **kwargs)
        except NotFound as exc:
            # Deleted since the run listed it: it has no members left to read.
            self._missed(path, exc)
            return RawPage(b'{"data":[]}', 0, None, None, None)
        with self._answers_lock:
            self._found.add(str(path))
        return page

    def _missed(self, path: str | None, exc: NotFound) -> None:
        """A list or segment answered 404: believable as a deletion unless it is one of the first ones read and all
        of those did (`DOUBTFUL_404S`)."""
        with self._answers_lock:
            first_404 = str(path) not in self._missing
            self._missing.add(str(path))
            missing = len(self._missing)
            doubtful = not self._found and missing >= min(DOUBTFUL_404S, len(self._contexts or ()))
        if doubtful:
            raise KlaviyoError(
                f"Stream '{self.name}': every list and segment read so far ({missing}) answered 404, none with "
                f"members ({exc}); lists just listed do not vanish together, so check `api_url` (a proxy that does "
                "not pass these paths on?) and `revision`."
            )
        if first_404:  # its first page and its newest member are asked for at once
            self.logger.warning("Stream '%s': %s was deleted during the run; its members are skipped.", self.name, path)

    def progress(self, context: Context | None) -> Progress:
        progress = super().progress(context)
        progress.done_level = logging.DEBUG
        return progress

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if self._whole is None:
            self._whole = Progress(self.logger, self.name, self.client, every=math.inf)
        count = 0
        for record in super().get_records(context):
            count += 1
            yield record
        self._whole.add(count, None)
        self._groups_done += 1
        if self._groups_done == len(self._contexts or [None]):
            self._whole.done()

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        if not context:
            return
        for row in super().records(context):
            yield {
                "list_id": context["list_id"],
                "profile_id": row["id"],
                "type": context["type"],
                "joined_group_at": row.get("joined_group_at"),
            }

    def time_range(self, context: Context | None) -> tuple[datetime.datetime | None, datetime.datetime | None]:
        return (self.bookmark(context) if context else None), None
