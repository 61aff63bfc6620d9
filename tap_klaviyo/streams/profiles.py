"""Profiles (with their consent) and the members of every list and segment: the tap's streams of people, read by
time windows like events, and opt-in (a run without a catalog leaves them out)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tap_klaviyo import endpoints
from tap_klaviyo.client import KlaviyoClient, NotFound
from tap_klaviyo.codec import RawPage
from tap_klaviyo.ranges import Plan
from tap_klaviyo.streams.base import Source, StreamRow
from tap_klaviyo.streams.windowed import WindowedStream

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_klaviyo.streams import Run

# Save progress once a page, so a killed run re-sends at most about a page.
PAGE = 100


class ProfilesStream(WindowedStream):
    """Every profile, oldest `updated` first, with `subscriptions` (consent and suppression per channel) and, with
    `profiles_predictive_analytics`, `predictive_analytics` (which Klaviyo serves at lower rate limits)."""

    STATE_MSG_FREQUENCY = PAGE

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        if self.fetcher is not None:
            self.fetcher.add(self.name, self.plan)

    def source(self, context: Context | None) -> tuple[Source, str | None]:
        source = self.row.sources[0]
        if not self.config.get("profiles_predictive_analytics"):
            return source, None
        fields = f"{source.query['additional-fields[profile]']},predictive_analytics"
        return Source(endpoints.PROFILES_PREDICTIVE, {**source.query, "additional-fields[profile]": fields}), None

    def plan(self, context: Context | None = None) -> Plan | None:
        return super().plan(context) if self.selected else None


@dataclass(frozen=True)
class Group:
    """A list or a segment."""

    kind: str
    id: str


class GroupDirectory:
    """Every list and segment of the account, read once a run (ids only) for the members stream."""

    def __init__(self, client: KlaviyoClient) -> None:
        self.client = client
        self._groups: list[Group] | None = None

    def all(self, stream: str) -> list[Group]:
        if self._groups is None:
            self._groups = [
                Group(kind, resource["id"])
                for kind, endpoint in (("list", endpoints.LISTS), ("segment", endpoints.SEGMENTS))
                for document in self.client.documents(endpoint, {f"fields[{kind}]": "updated"}, stream=stream)
                for resource in document["data"]
            ]
        return self._groups


class MembersStream(WindowedStream):
    """Who is in each list and segment, and since when: one state partition per list or segment (its bookmark on
    `joined_group_at`), read oldest first, the partitions in parallel through the window pool."""

    STATE_MSG_FREQUENCY = PAGE

    def __init__(self, tap: Tap, client: KlaviyoClient, row: StreamRow, run: Run) -> None:
        super().__init__(tap, client, row, run)
        self.groups = run.groups
        self._contexts: list[dict[str, str]] | None = None
        self._keys: dict[tuple[str, str], str] = {}

    @property
    def partitions(self) -> list[dict[str, Any]] | None:
        if not self.selected:
            return None
        if self._contexts is None:
            self._contexts = [{"list_id": group.id, "type": group.kind} for group in self.groups.all(self.name)]
            for i, context in enumerate(self._contexts):
                # Keys in the partitions' order: the pool reads ahead in key order.
                self._keys[context["type"], context["list_id"]] = f"{self.name}:{i:09d}"
                if self.fetcher is not None:
                    self.fetcher.add(self.window_key(context), partial(self.plan, context))
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
            return super().first_page(source, query, path, **kwargs)
        except NotFound:
            # Deleted since the run listed it: it has no members left to read.
            self.logger.warning("Stream '%s': %s was deleted during the run; its members are skipped.", self.name, path)
            return RawPage(b'{"data":[]}', 0, None, None, None)

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
