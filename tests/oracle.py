"""What the fake Klaviyo's account says each stream should hold: the oracle the end-to-end tests and the
benchmarks both compare the tap's output with, written out here rather than borrowed from the tap."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fake_klaviyo import Account
from tap_klaviyo.streams.table import STREAMS

Row = dict[str, Any]

# The tap's streams and their keys, from the stream table (the README's table is checked against it), and the
# Klaviyo metric each event stream reads.
STREAM_KEYS = {row.name: list(row.primary_keys) for row in STREAMS}
EVENT_METRICS = {row.name: row.metric for row in STREAMS if row.metric}


def rfc3339(value: Any) -> Any:
    """A time as the tap must emit it: Klaviyo's form with a space gets its "T" back, offset and fraction kept."""
    return f"{value[:10]}T{value[11:]}" if isinstance(value, str) and value[10:11] == " " else value


def rfc3339_consent(subscriptions: Row) -> Row:
    """A profile's `subscriptions` as the tap must emit them: each channel's `consent_timestamp` in RFC 3339."""
    return {
        channel: {
            name: {**permission, "consent_timestamp": rfc3339(permission.get("consent_timestamp"))}
            if isinstance(permission, dict) and "consent_timestamp" in permission
            else permission
            for name, permission in kinds.items()
        }
        if isinstance(kinds, dict)
        else kinds
        for channel, kinds in subscriptions.items()
    }


def expected_row(resource: Row, **extra: Any) -> Row:
    """What the tap should emit for a resource, written out here rather than borrowed from the tap."""
    row = {"id": resource["id"], **resource["attributes"], **extra}
    return json.loads(json.dumps(row))


def related_ids(resource: Row) -> dict[str, str]:
    """A resource's to-one relationships that name a resource, as `<name>_id` columns."""
    return {
        f"{name}_id": relationship["data"]["id"]
        for name, relationship in (resource.get("relationships") or {}).items()
        if isinstance(relationship.get("data"), dict)
    }


def klaviyo_metric(account: Account, metric_name: str) -> Row:
    matches = [
        m
        for m in account.metrics
        if (m["attributes"]["name"] or "").lower() == metric_name.lower()
        and ((m["attributes"].get("integration") or {}).get("name") == "Klaviyo")
    ]
    assert len(matches) == 1, f"the fake account should hold one Klaviyo metric {metric_name!r}"
    return matches[0]


def event_metric_id(account: Account, stream: str) -> str:
    return klaviyo_metric(account, EVENT_METRICS[stream])["id"]


def fake_events(account: Account, stream: str) -> dict[str, Row]:
    """An event stream's events in the fake, by id."""
    return {e["id"]: e for e in account.events_for_metric(event_metric_id(account, stream))}


def expected_streams(account: Account, start_date: str | None = None) -> dict[str, list[Row]]:
    """Every default stream's records: the entity streams' and the event streams' (from `start_date` on)."""
    expected = expected_entities(account)
    for stream, metric_name in EVENT_METRICS.items():
        expected[stream] = expected_events(account, klaviyo_metric(account, metric_name)["id"], start_date)
    return expected


def expected_entities(account: Account) -> dict[str, list[Row]]:
    """The records of the default streams that are not event streams."""
    campaigns = account.email_campaigns()
    return {
        "lists_and_segments": [expected_row(r, type=r["type"]) for r in [*account.lists, *account.segments]],
        "email_campaigns": [expected_row(c) for c in campaigns],
        "email_campaigns_vs_lists_included": [
            {"campaign_id": c["id"], "list_id": i}
            for c in campaigns
            for i in dict.fromkeys(c["attributes"]["audiences"]["included"] or [])
        ],
        "email_campaigns_vs_lists_excluded": [
            {"campaign_id": c["id"], "list_id": i}
            for c in campaigns
            for i in dict.fromkeys(c["attributes"]["audiences"].get("excluded") or [])
        ],
        "email_campaign_messages": [
            expected_row(m, **{**related_ids(m), "campaign_id": c["id"]})
            for c in campaigns
            for m in account.campaign_messages[c["id"]]
        ],
        "campaigns": [expected_row(c, channel=account.campaign_channels[c["id"]]) for c in account.campaigns],
        "campaign_messages": [
            expected_row(m, **{**related_ids(m), "campaign_id": c["id"], "channel": account.campaign_channels[c["id"]]})
            for c in account.campaigns
            for m in account.campaign_messages[c["id"]]
        ],
        "campaign_audiences": [
            {"campaign_id": c["id"], "list_id": i, "audience": kind, "channel": account.campaign_channels[c["id"]]}
            for c in account.campaigns
            for kind in ("included", "excluded")
            for i in dict.fromkeys(c["attributes"]["audiences"].get(kind) or [])
        ],
        "flows": [expected_row(f) for f in account.flows],
        "flow_actions": [
            expected_row(
                a,
                flow_id=f["id"],
                action_type=a["attributes"]["definition"]["type"],
                status=(a["attributes"]["definition"].get("data") or {}).get("status"),
            )
            for f in account.flows
            for a in account.flow_actions[f["id"]]
        ],
        "flow_messages": expected_flow_messages(account),
        "metrics": [expected_row(m) for m in account.metrics],
    }


def expected_flow_messages(account: Account) -> list[Row]:
    """Each message the flows' actions send (a send action's; an experiment's main message and variations) that
    has an id, with its flow, action and channel."""
    rows = []
    for flow in account.flows:
        for action in account.flow_actions[flow["id"]]:
            definition = action["attributes"]["definition"]
            data = definition.get("data") or {}
            sends = [definition] if definition["type"].startswith("send-") else []
            if "main_action" in data:
                sends = [data["main_action"], *data["current_experiment"]["variations"]]
            for send in sends:
                message = send["data"]["message"]
                if message["id"] is not None:
                    channel = send["type"].removeprefix("send-").replace("-", "_")
                    fields = {k: v for k, v in message.items() if k != "id"}
                    row = {
                        "id": message["id"],
                        "flow_id": flow["id"],
                        "flow_action_id": action["id"],
                        "channel": channel,
                    }
                    rows.append(json.loads(json.dumps({**row, **fields})))
    return rows


ATTRIBUTED = ("attributed-event", "campaign", "campaign-message", "flow", "flow-message", "flow-message-variation")


def expected_attributions(account: Account, metric_ids: Iterable[str]) -> list[Row]:
    """The `event_attributions` rows of the events of these metrics: each attribution the fake makes for them."""
    rows = []
    for metric_id in metric_ids:
        view = account.events_for_metric(metric_id)
        for position in view.positions():
            event_id = account.events.event_id(position)
            for attribution in account.attributions.of(position):
                related = attribution["relationships"]
                ids = {
                    f"{name.replace('-', '_')}_id": related.get(name, {}).get("data", {}).get("id")
                    for name in ATTRIBUTED
                }
                rows.append({"id": attribution["id"], "event_id": event_id, **ids})
    return rows


def expected_events(account: Account, metric_id: str, start_date: str | None = None) -> list[Row]:
    """The records an event stream of that metric should emit (from `start_date` on, if given)."""
    events = account.events_for_metric(metric_id)
    if start_date:
        since = datetime.fromisoformat(start_date)
        events = [e for e in events if datetime.fromisoformat(e["attributes"]["datetime"]) >= since]
    return [
        expected_row(
            e,
            datetime=rfc3339(e["attributes"]["datetime"]),
            metric_id=e["relationships"]["metric"]["data"]["id"],
            profile_id=e["relationships"]["profile"]["data"]["id"],
        )
        for e in events
    ]


def keys_of(rows: list[Row], stream: str) -> list[tuple]:
    return [tuple(str(r[k]) for k in STREAM_KEYS[stream]) for r in rows]


def expected_keys(account: Account) -> dict[str, list[tuple]]:
    """Every stream's primary keys as the fake serves them (one entry per record the tap should send)."""
    return {stream: keys_of(rows, stream) for stream, rows in expected_streams(account).items()}
