"""What the fake Klaviyo's account says each stream should hold: the oracle the end-to-end tests and the
benchmarks both compare the tap's output with, written out here rather than borrowed from the tap."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from fake_klaviyo import Account
from fake_klaviyo.report_book import ReportBook
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


def expected_opt_in(
    account: Account, book: ReportBook, metric_ids: Iterable[str], start_date: str | None = None
) -> dict[str, list[Row]]:
    """Every opt-in stream's records, on a run (from `start_date`, if given) with every stream selected: the
    attributions of the events of `metric_ids` (the run's event streams'), the report streams' days as `book` holds
    them (to today, the conversion metric left at its default), the people whole."""
    first_day = datetime.fromisoformat(start_date).astimezone(book.tz).date() if start_date else date.min
    reports = expected_reports(book, conversion_metric(account)["id"], first_day, book.today)
    return {
        "profiles": expected_profiles(account),
        "lists_and_segments_members": [row for rows in expected_members(account).values() for row in rows],
        "event_attributions": expected_attributions(account, metric_ids, start_date),
        "campaign_values_reports": reports["campaign_values_reports"],
        "flow_series_reports": reports["flow_series_reports"],
    }


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


def expected_profiles(account: Account, *, predictive: bool = False) -> list[Row]:
    """Every profile as the tap should emit it, oldest `updated` first."""
    rows = []
    for resource in account.profiles_in_order("updated"):
        i = account.profiles.position(resource["id"])
        subscriptions = rfc3339_consent(account.profiles.subscriptions(i))
        row = {"id": resource["id"], **resource["attributes"], "subscriptions": subscriptions}
        if predictive:
            row["predictive_analytics"] = account.profiles.predictive_analytics(i)
        rows.append(json.loads(json.dumps(row)))
    return rows


def expected_members(account: Account) -> dict[tuple[str, str], list[Row]]:
    """Each list's and segment's members as the tap should emit them, oldest `joined_group_at` first."""
    groups = [(g["id"], "list") for g in account.lists] + [(g["id"], "segment") for g in account.segments]
    return {
        (kind, group): [
            {"list_id": group, "profile_id": profile, "type": kind, "joined_group_at": joined}
            for profile, joined in account.members(group)
        ]
        for group, kind in groups
    }


def conversion_metric(account: Account, name: str = "Placed Order") -> Row:
    """The metric a name finds: Klaviyo's own first, then the oldest (as docs/streams.md says)."""
    found = [m for m in account.metrics if (m["attributes"]["name"] or "").casefold() == name.casefold()]
    klaviyo = [m for m in found if ((m["attributes"].get("integration") or {}).get("name")) == "Klaviyo"]
    return sorted(klaviyo or found, key=lambda m: (m["attributes"]["created"], m["id"]))[0]


def expected_reports(book: ReportBook, metric_id: str, first: date, last: date) -> dict[str, list[Row]]:
    """Each report stream's rows for the days `first` to `last`, as the book holds them now."""
    campaigns = [
        {
            "campaign_id": m.owner_id,
            "campaign_message_id": m.message_id,
            "send_channel": m.send_channel,
            "conversion_metric_id": metric_id,
            **book.campaign_counts(m, day, metric_id).statistics(),
        }
        for m, day in book.campaign_messages
        if first <= day <= last
    ]
    flows = [
        {
            "flow_id": m.owner_id,
            "flow_message_id": m.message_id,
            "send_channel": m.send_channel,
            "date": day.isoformat(),
            "conversion_metric_id": metric_id,
            **counts.statistics(),
        }
        for m, first_day in book.flow_messages
        for day, counts in book.flow_days(m, first_day, first, last, metric_id)
    ]
    return {"campaign_values_reports": campaigns, "flow_series_reports": flows}


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


def expected_attributions(account: Account, metric_ids: Iterable[str], start_date: str | None = None) -> list[Row]:
    """The `event_attributions` rows of the events of these metrics (from `start_date` on, if given): each
    attribution the fake makes for them."""
    since = datetime.fromisoformat(start_date).timestamp() if start_date else float("-inf")
    rows = []
    for metric_id in metric_ids:
        view = account.events_for_metric(metric_id)
        for position in view.positions():
            if account.events.ts[position] < since:
                continue
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
