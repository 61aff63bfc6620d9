"""Generated attributions: the campaign or flow message that earned a conversion (an event of "Placed Order" or
another order metric), shaped as the spec's AttributionResponseObjectResource, with the email event it followed.

They are made when an event is served with `include=attributions`, from a generator seeded by the event's id, so
that a million events cost nothing until asked for and the same event always has the same attributions.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from .events import EventStore
from .flow_actions import FlowMessage
from .spec import Resource

# Of the conversions: how many have no attribution, one, or two (a campaign's and a flow's).
_NONE, _ONE = 0.35, 0.85
# An attributed event is one of this many email events before the conversion, on the touch metrics.
_RECENT = 40


@dataclass
class Attributions:
    """The attributions of an account's conversions, to its campaign messages (campaign id, message id) and flow
    messages, following events of its touch metrics (metric indexes: clicked, opened, received email)."""

    store: EventStore
    campaign_messages: Sequence[tuple[str, str]]
    flow_messages: Sequence[FlowMessage]
    touch_metrics: Sequence[int]

    def of(self, position: int) -> list[Resource]:
        """The attributions of the event at a store position (none but for conversions)."""
        store = self.store
        if store.metric_kinds[store.metric[position]] != "order":
            return []
        event_id = store.event_id(position)
        rng = random.Random(f"attributions {store.seed} {event_id}")
        draw = rng.random()
        count = 0 if draw < _NONE else 1 if draw < _ONE else 2
        return [self._attribution(rng, position, event_id, flow=k == 1 or rng.random() < 0.5) for k in range(count)]

    def _attribution(self, rng: random.Random, position: int, event_id: str, *, flow: bool) -> Resource:
        related: dict[str, str] = {"event": event_id}
        touched = self._touch(rng, position)
        if touched is not None:
            related["attributed-event"] = touched
        if flow and self.flow_messages:
            message = rng.choice(self.flow_messages)
            related["flow"] = message.flow_id
            related["flow-message"] = message.message_id
            if message.variation_id is not None:
                related["flow-message-variation"] = message.variation_id
        elif self.campaign_messages:
            related["campaign"], related["campaign-message"] = rng.choice(self.campaign_messages)
        types = {"attributed-event": "event", "flow-message-variation": "flow-message"}
        return {
            "type": "attribution",
            "id": f"{rng.getrandbits(128):032x}",
            "relationships": {
                name: {"data": {"type": types.get(name, name), "id": ident}} for name, ident in related.items()
            },
        }

    def _touch(self, rng: random.Random, position: int) -> str | None:
        """One of the recent touch events at or before the conversion (None: it followed none)."""
        store = self.store
        if not self.touch_metrics:
            return None
        metric = rng.choice(self.touch_metrics)
        before = bisect_right(store.ts_by_metric[metric], store.ts[position])
        if before == 0:
            return None
        return store.event_id(store.by_metric[metric][rng.randrange(max(0, before - _RECENT), before)])
