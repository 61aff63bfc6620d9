"""Streams derived from an entity stream's records this run, at no cost in requests: the ids one of their fields
lists (`LinkStream`), the resources their requests include (`IncludedStream`), and the messages a flow's actions
send (`FlowMessagesStream`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tap_klaviyo.records import Resource, dig, flatten
from tap_klaviyo.streams.entities import DerivedStream, Kept

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class LinkStream(DerivedStream):
    """One row per (record of the parent, id listed in its field `part`, dotted). The row's primary key names the
    columns: the parent's id, the listed id, and, when `part` is an object of such lists (a campaign's
    `audiences`), the key of the list the id is in."""

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        parent_key, listed_key, *kind_key = self.row.primary_keys
        for kept in self.parent_records():
            value = dig(kept.record, self.part)
            carried = self.carried(kept)
            lists = value.items() if kind_key and isinstance(value, dict) else [(None, value)]
            for kind, listed in lists:
                for item in dict.fromkeys(listed if isinstance(listed, list) else []):
                    row = {parent_key: kept.record["id"], listed_key: item, **carried}
                    if kind_key:
                        row[kind_key[0]] = kind
                    yield row


class IncludedStream(DerivedStream):
    """One row per resource the parent's requests include for its relationship `part` (asked for with
    `include=`), with the id of the record it belongs to as `<type>_id`, the columns the row carries, and the
    values it picks out of the resource."""

    READS_INCLUDED = True

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for kept in self.parent_records():
            for resource in kept.related.get(self.part, []):
                yield self.row_of(resource, kept)

    def row_of(self, resource: Resource, kept: Kept) -> dict[str, Any]:
        record = flatten(resource)
        record[f"{kept.type.replace('-', '_')}_id"] = kept.record["id"]
        record.update(self.carried(kept))
        for column, path in self.row.picks.items():
            record[column] = dig(record, path)
        return record


# The prefix of a flow action's type that sends a message; the rest names the channel.
SEND = "send-"


class FlowMessagesStream(IncludedStream):
    """One row per message a flow's actions send: a send action's message, and an A/B test's or content
    experiment's main message and variations. `channel` comes from the sending action's type (`send-mobile-push`:
    `mobile_push`); `flow_id` and `flow_action_id` name where it is sent from. A message without an id (a draft's)
    has nothing to key its row on, and is left out."""

    def records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        for kept in self.parent_records():
            for action in kept.related.get(self.part, []):
                for send, message in sent_messages((action.get("attributes") or {}).get("definition")):
                    if message.get("id") is None:
                        continue
                    yield {
                        "id": message["id"],
                        f"{kept.type}_id": kept.record["id"],
                        "flow_action_id": action.get("id"),
                        "channel": send[len(SEND) :].replace("-", "_"),
                        **{name: value for name, value in message.items() if name != "id"},
                    }


def sent_messages(definition: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(the sending action's type, its message) for each message a flow action's definition sends."""
    if not isinstance(definition, dict):
        return
    data = definition.get("data")
    kind = definition.get("type")
    if isinstance(kind, str) and kind.startswith(SEND):
        message = dig(data, "message")
        if isinstance(message, dict):
            yield kind, message
    if isinstance(data, dict) and "main_action" in data:
        # An experiment: the message it tests, and its variations.
        yield from sent_messages(data["main_action"])
        for variation in dig(data, "current_experiment.variations") or []:
            yield from sent_messages(variation)
