"""Event attributions: which campaign or flow message earned each event (a Placed Order, ...).

Klaviyo includes them in the event pages the event streams read anyway (`include=attributions`, asked for only
when this stream is selected): no request of their own, the same page size. An event stream writes its page's
attributions just before the page's events, so they reach the target before the STATE that moves past those
events: they follow the event streams' bookmarks, and a killed run resumes them with their events. The stream's
own sync writes no records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from tap_klaviyo.event_pages import AccountAttributionRecord, AttributionRecord
from tap_klaviyo.streams.base import KlaviyoStream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class AttributionsStream(KlaviyoStream):
    """The attributions of the selected event streams' events, keyed by event and attribution."""

    # Each run writes the attributions of the events it reads (new ones, on an incremental run): a full table's
    # version, activated, would delete the others.
    READ_WHOLE_TO_MIRROR = False

    @property
    def emit_activate_version_messages(self) -> bool:
        return False

    @property
    def include(self) -> str:
        """What the event requests ask for when this stream is selected."""
        return self.row.sources[0].query["include"]

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        return ()

    def write(self, records: Sequence[AttributionRecord | dict[str, Any]]) -> None:
        """Write a page's attributions: typed records as RECORD lines in one call when nothing rewrites them, else
        each (as a dict, with every column) through the schema check and the SDK's record path."""
        if not records:
            return
        encoded = not self.rewrites_records()
        typed = [record for record in records if isinstance(record, AttributionRecord)]
        if encoded and len(typed) == len(records):
            if self.adds_account:
                account = self.account_id
                typed = [AccountAttributionRecord(**msgspec.structs.asdict(r), account_id=account) for r in typed]
            self.write_aside(typed, encoded=True)
            return
        columns = dict.fromkeys(AttributionRecord.__struct_fields__)
        rows = [
            self.post_process({**columns, **(msgspec.structs.asdict(r) if isinstance(r, AttributionRecord) else r)})
            for r in records
        ]
        self.write_aside(rows, encoded=encoded)
