"""What the streams of one run share (`Run`), the streams built from the table's rows among it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_klaviyo import endpoints
from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.schemas.from_spec import Schema, stream_schemas
from tap_klaviyo.settings import ADD_ACCOUNT_ID, DEFAULT_CONCURRENCY
from tap_klaviyo.streams.base import KlaviyoStream, Source, StreamRow
from tap_klaviyo.streams.metrics import MetricDirectory
from tap_klaviyo.streams.profiles import GroupDirectory
from tap_klaviyo.streams.walks import Walk, walk_key
from tap_klaviyo.windows import WindowPool

if TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_klaviyo.streams.entities import EntityStream


@dataclass
class Run:
    """What the streams of one run share: the rows, the account's metrics, its lists and segments, the window pool
    of the streams read by time windows (None: one page at a time), the client, the stream schemas by name, the
    streams built so far (a derived stream's source comes first in the table), and the account once asked for (its
    id, its timezone)."""

    rows: Sequence[StreamRow]
    directory: MetricDirectory
    groups: GroupDirectory
    window_pool: WindowPool | None
    client: KlaviyoClient
    schemas: dict[str, Schema]
    streams: dict[str, KlaviyoStream] = field(default_factory=dict)
    walks: dict[tuple[str, tuple[tuple[str, str], ...]], Walk] = field(default_factory=dict)
    _account: dict[str, Any] | None = None
    # The first requests go out together, each in a thread: the account is asked for once.
    _account_lock: threading.Lock = field(default_factory=threading.Lock)

    def account(self) -> dict[str, Any]:
        """The account the key belongs to, asked for once a run."""
        with self._account_lock:
            if self._account is None:
                accounts = next(self.client.documents(endpoints.ACCOUNTS, {}, stream=ADD_ACCOUNT_ID))["data"]
                if not accounts:
                    raise KlaviyoError("Klaviyo's /api/accounts named no account for this API key: check `api_key`.")
                self._account = accounts[0]
            return self._account

    def account_id(self) -> str:
        """The id of the account the key belongs to."""
        return str(self.account()["id"])

    def timezone(self) -> ZoneInfo:
        """The account's timezone, whose days the report streams read."""
        name = (self.account().get("attributes") or {}).get("timezone")
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise KlaviyoError(
                f"Klaviyo gives the account's timezone as {str(name)[:60]!r}, which this machine's time zone database "
                "does not know: install the `tzdata` package (pip install tzdata) and rerun."
            ) from None

    def walk(self, source: Source, reader: EntityStream, index: int) -> Walk:
        """The walk of a source, shared with the streams before `reader` that list it; a new one is read ahead
        from the start of the run, beside everything else (a few requests each, all round trips)."""
        key = walk_key(source)
        walk = self.walks.get(key)
        if walk is None:
            walk = self.walks[key] = Walk(f"{reader.name}:{index}", source, self)
            if self.window_pool is not None:
                self.window_pool.add(walk.key, walk.plan, stream=reader.name, early=True)
        elif self.window_pool is not None:
            self.window_pool.consumed_by(walk.key, reader.name)
        walk.readers.append(reader)
        return walk


def start_run(tap: Tap, client: KlaviyoClient, rows: Sequence[StreamRow]) -> Run:
    """A run, with one stream per row in the table's order."""
    concurrency = tap.config.get("concurrency", DEFAULT_CONCURRENCY)
    window_pool = WindowPool(concurrency) if concurrency > 1 else None
    run = Run(rows, MetricDirectory(client), GroupDirectory(client), window_pool, client, stream_schemas())
    for row in rows:
        run.streams[row.name] = row.family(tap, client, row, run)
    return run
