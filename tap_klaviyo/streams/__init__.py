"""The tap's streams, built from the stream table (`table.py`): entities and the streams derived from them
(`entities.py`), metrics (`metrics.py`) and events (`events.py`), on a common base (`base.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tap_klaviyo.client import KlaviyoClient
from tap_klaviyo.settings import DEFAULT_CONCURRENCY
from tap_klaviyo.streams.base import KlaviyoStream, StreamRow
from tap_klaviyo.streams.metrics import MetricDirectory
from tap_klaviyo.windows import WindowedFetch

if TYPE_CHECKING:
    from singer_sdk import Tap


@dataclass
class Run:
    """What the streams of one run share: the account's metrics, the event streams' window pool (None: one page at
    a time), the rows, and the streams built so far (a derived stream's source comes first in the table)."""

    rows: Sequence[StreamRow]
    directory: MetricDirectory
    fetcher: WindowedFetch | None
    streams: dict[str, KlaviyoStream] = field(default_factory=dict)

    def is_derived_from(self, name: str) -> bool:
        return any(row.derived_from and row.derived_from[0] == name for row in self.rows)


def build_streams(tap: Tap, client: KlaviyoClient, rows: Sequence[StreamRow]) -> list[KlaviyoStream]:
    """One stream per row, in the table's order."""
    concurrency = tap.config.get("concurrency", DEFAULT_CONCURRENCY)
    run = Run(rows, MetricDirectory(client), WindowedFetch(concurrency) if concurrency > 1 else None)
    for row in rows:
        run.streams[row.name] = row.family(tap, client, row, run)
    return list(run.streams.values())
