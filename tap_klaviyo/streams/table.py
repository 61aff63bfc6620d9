"""The stream table: every stream of the tap, one row each.

A row names the stream, the family of stream that reads it, its schema (built from the spec by
`tap_klaviyo/schemas/from_spec.py` as a run starts), where its
records come from (endpoints with the fixed part of their query, or a field of another stream's records), its
primary key, and how it is read incrementally: the replication key and the server filter operator on it.
Discovery, the schema builder, the README's stream table check and the tests all read this table; the
`event_metrics` setting adds an event row per metric it names. A new stream of an existing family is one more
row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tap_klaviyo.endpoints import (
    CAMPAIGN_VALUES,
    CAMPAIGNS,
    EVENTS,
    FLOW_SERIES,
    FLOWS,
    LIST_MEMBERS,
    LISTS,
    METRICS,
    PROFILES,
    SEGMENT_MEMBERS,
    SEGMENTS,
)
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.event_metrics import event_metrics
from tap_klaviyo.streams.attributions import AttributionsStream
from tap_klaviyo.streams.base import Source, StreamRow
from tap_klaviyo.streams.derived import FlowMessagesStream, IncludedStream, LinkStream
from tap_klaviyo.streams.entities import EntityStream
from tap_klaviyo.streams.events import EventStream
from tap_klaviyo.streams.metrics import MetricsStream
from tap_klaviyo.streams.profiles import MembersStream, ProfilesStream
from tap_klaviyo.streams.reports import CampaignValuesStream, FlowSeriesStream

# Klaviyo lists campaigns one channel at a time (the filter is required): one walk of /api/campaigns per channel.
CHANNELS = ("email", "sms", "mobile_push")


def campaigns_of(channel: str) -> Source:
    """The campaigns of one channel (the streams that read it share its walk)."""
    return Source(CAMPAIGNS, {"filter": f"equals(messages.channel,'{channel}')"}, {"channel": channel})


def event_row(name: str, metric: str, integration: str | None = None) -> StreamRow:
    """The stream of one Klaviyo metric's events, found by the metric's name (and integration) at run time."""
    return StreamRow(
        name,
        EventStream,
        "email_events",
        sources=(Source(EVENTS),),
        replication_key="datetime",
        filter_operator="greater-or-equal",
        metric=metric,
        integration=integration,
    )


STREAMS: tuple[StreamRow, ...] = (
    StreamRow(
        "lists_and_segments",
        EntityStream,
        "lists_and_segments",
        sources=(Source(LISTS), Source(SEGMENTS)),
        replication_key="updated",
        filter_operator="greater-than",  # the only operator lists and segments offer on `updated`
    ),
    StreamRow(
        "email_campaigns",
        EntityStream,
        "email_campaigns",
        sources=(Source(CAMPAIGNS, campaigns_of("email").query),),
        replication_key="updated_at",
        filter_operator="greater-or-equal",
    ),
    StreamRow(
        "email_campaigns_vs_lists_included",
        LinkStream,
        "email_campaigns_vs_lists",
        derived_from=("email_campaigns", "audiences.included"),
        primary_keys=("campaign_id", "list_id"),
    ),
    StreamRow(
        "email_campaigns_vs_lists_excluded",
        LinkStream,
        "email_campaigns_vs_lists",
        derived_from=("email_campaigns", "audiences.excluded"),
        primary_keys=("campaign_id", "list_id"),
    ),
    StreamRow(
        "email_campaign_messages",
        IncludedStream,
        "email_campaign_messages",
        derived_from=("email_campaigns", "campaign-messages"),
    ),
    StreamRow(
        "campaigns",
        EntityStream,
        "campaigns",
        sources=tuple(campaigns_of(channel) for channel in CHANNELS),
        replication_key="updated_at",
        filter_operator="greater-or-equal",
    ),
    StreamRow(
        "campaign_messages",
        IncludedStream,
        "campaign_messages",
        derived_from=("campaigns", "campaign-messages"),
        carries=("channel",),
    ),
    StreamRow(
        "campaign_audiences",
        LinkStream,
        "campaign_audiences",
        derived_from=("campaigns", "audiences"),
        primary_keys=("campaign_id", "list_id", "audience"),
        carries=("channel",),
    ),
    StreamRow(
        "flows",
        EntityStream,
        "flows",
        sources=(Source(FLOWS),),
        replication_key="updated",
        filter_operator="greater-or-equal",
    ),
    # Whether editing an action moves its flow's `updated` is not documented: with these selected, the flows walk
    # reads every flow (a few requests), and `flows` keeps those past its bookmark.
    StreamRow(
        "flow_actions",
        IncludedStream,
        "flow_actions",
        derived_from=("flows", "flow-actions"),
        picks={"action_type": "definition.type", "status": "definition.data.status"},
        whole=True,
    ),
    StreamRow(
        "flow_messages",
        FlowMessagesStream,
        "flow_messages",
        derived_from=("flows", "flow-actions"),
        whole=True,
    ),
    StreamRow("metrics", MetricsStream, "metrics", sources=(Source(METRICS),)),
    StreamRow(
        "profiles",
        ProfilesStream,
        "profiles",
        sources=(Source(PROFILES, {"additional-fields[profile]": "subscriptions"}),),
        replication_key="updated",
        filter_operator="greater-than",  # the only operator profiles offer on `updated`
        selected_by_default=False,
    ),
    StreamRow(
        "lists_and_segments_members",
        MembersStream,
        "lists_and_segments_members",
        sources=(
            Source(LIST_MEMBERS, {"fields[profile]": "joined_group_at"}),
            Source(SEGMENT_MEMBERS, {"fields[profile]": "joined_group_at"}),
        ),
        primary_keys=("list_id", "profile_id"),
        replication_key="joined_group_at",
        filter_operator="greater-or-equal",
        selected_by_default=False,
    ),
    event_row("bounced_email", "Bounced Email"),
    event_row("clicked_email", "Clicked Email"),
    event_row("opened_email", "Opened Email"),
    event_row("received_email", "Received Email"),
    event_row("dropped_email", "Dropped Email"),
    event_row("marked_email_as_spam", "Marked Email as Spam"),
    StreamRow(
        "event_attributions",
        AttributionsStream,
        "event_attributions",
        sources=(Source(EVENTS, {"include": "attributions"}),),
        primary_keys=("event_id", "id"),
        selected_by_default=False,
    ),
    # Klaviyo's Reporting API: opt-in, as its daily quota is shared by every integration on the account.
    StreamRow(
        "campaign_values_reports",
        CampaignValuesStream,
        "campaign_values_reports",
        sources=(Source(CAMPAIGN_VALUES),),
        primary_keys=("campaign_message_id", "send_channel", "conversion_metric_id"),
        selected_by_default=False,
    ),
    StreamRow(
        "flow_series_reports",
        FlowSeriesStream,
        "flow_series_reports",
        sources=(Source(FLOW_SERIES),),
        primary_keys=("flow_id", "flow_message_id", "send_channel", "date", "conversion_metric_id"),
        selected_by_default=False,
    ),
)


def stream_rows(config: Mapping[str, Any]) -> tuple[StreamRow, ...]:
    """The table, and a row for each metric the `event_metrics` setting names."""
    value = config.get("event_metrics")
    extra, problems = event_metrics([] if value is None else value, {row.name for row in STREAMS})
    if problems:
        raise KlaviyoError("; ".join(problems))
    return STREAMS + tuple(event_row(entry.stream, entry.metric, entry.integration) for entry in extra)
