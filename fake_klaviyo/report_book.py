"""What the Reporting API reports of an account: each campaign message's and flow message's performance, by send day.

Klaviyo attributes a message's statistics (recipients, opens, clicks, conversions and their value, ...) to the day
it was sent, in the account's timezone, and keeps revising recent days as late opens and conversions arrive. The
book holds that: a campaign message sends once (its campaign's send time) and a flow message sends on most days
since its flow was created; each send day's counts are drawn from a generator seeded with the message and the day,
so nothing is stored but the revisions. :meth:`ReportBook.revise` is a revision: every send in the last days gains
late activity, as Klaviyo's numbers grow between two reads.

The account's generator clock is fixed (``GENERATOR_NOW``) while reports are read up to today: the book moves every
send forward by whole days so that the newest sends are today's (a campaign sent a week before the generator's now
is reported as sent a week ago). Conversions depend on the conversion metric asked for, as Klaviyo's do.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from .clock import GENERATOR_NOW
from .data import Account
from .ids import Ids

UTC = UTC
# A campaign's channel (not an attribute of it) as the reports' send_channel names it.
SEND_CHANNELS = {"email": "email", "sms": "sms", "mobile_push": "push-notification"}
# Share of days a flow message sends on.
ACTIVE_SHARE = 0.6


@dataclass
class Counts:
    """A message's counts over some send days: what every statistic is computed from."""

    recipients: int = 0
    bounced: int = 0
    failed: int = 0
    opens: int = 0
    opens_unique: int = 0
    clicks: int = 0
    clicks_unique: int = 0
    unsubscribes: int = 0
    unsubscribe_uniques: int = 0
    spam_complaints: int = 0
    conversions: int = 0
    conversion_uniques: int = 0
    conversion_cents: int = 0
    message_segment_count_sum: int = 0
    text_message_spend_cents: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def statistics(self) -> dict[str, float]:
        """Every statistic the report queries offer: counts as floats (Klaviyo sends `2.0`), rates as fractions."""
        delivered = self.recipients - self.bounced - self.failed
        value = self.conversion_cents / 100
        spend = self.text_message_spend_cents / 100
        return {
            "average_order_value": _ratio(value, self.conversions, 2),
            "bounce_rate": _ratio(self.bounced, self.recipients),
            "bounced": float(self.bounced),
            "bounced_or_failed": float(self.bounced + self.failed),
            "bounced_or_failed_rate": _ratio(self.bounced + self.failed, self.recipients),
            "click_rate": _ratio(self.clicks_unique, delivered),
            "click_to_open_rate": _ratio(self.clicks_unique, self.opens_unique),
            "clicks": float(self.clicks),
            "clicks_unique": float(self.clicks_unique),
            "conversion_rate": _ratio(self.conversion_uniques, delivered),
            "conversion_uniques": float(self.conversion_uniques),
            "conversion_value": value,
            "conversions": float(self.conversions),
            "delivered": float(delivered),
            "delivery_rate": _ratio(delivered, self.recipients),
            "failed": float(self.failed),
            "failed_rate": _ratio(self.failed, self.recipients),
            "message_segment_count_sum": float(self.message_segment_count_sum),
            "open_rate": _ratio(self.opens_unique, delivered),
            "opens": float(self.opens),
            "opens_unique": float(self.opens_unique),
            "recipients": float(self.recipients),
            "revenue_per_recipient": _ratio(value, delivered, 2),
            "spam_complaint_rate": _ratio(self.spam_complaints, delivered),
            "spam_complaints": float(self.spam_complaints),
            "text_message_credit_usage_amount": float(self.message_segment_count_sum),
            "text_message_roi": _ratio(value - spend, spend),
            "text_message_spend": spend,
            "unsubscribe_rate": _ratio(self.unsubscribe_uniques, delivered),
            "unsubscribe_uniques": float(self.unsubscribe_uniques),
            "unsubscribes": float(self.unsubscribes),
        }


def _ratio(part: float, whole: float, digits: int = 6) -> float:
    return round(part / whole, digits) if whole else 0.0


@dataclass(frozen=True)
class Message:
    """A campaign message or a flow message, as the reports group by it."""

    owner_id: str  # the campaign's or the flow's id
    message_id: str
    send_channel: str
    name: str  # the message's name (campaign_message_name, flow_message_name)
    owner_name: str  # the flow's name (flow_name)


class ReportBook:
    """The reports of one account, read up to ``now`` (by default, when the book is made)."""

    def __init__(self, account: Account, *, now: datetime | None = None) -> None:
        self.account = account
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self.tz = ZoneInfo(account.account["attributes"]["timezone"])
        self.seed = account.seed
        self.shift = timedelta(days=(self.now.date() - GENERATOR_NOW.date()).days)
        # Revisions so far: the first send day each one revised.
        self.revisions: list[date] = []
        self.campaign_messages: list[tuple[Message, date]] = self._campaign_messages()
        self.flow_messages: list[tuple[Message, date]] = self._flow_messages()

    @property
    def today(self) -> date:
        """The account's day now, in its timezone."""
        return self.now.astimezone(self.tz).date()

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def _campaign_messages(self) -> list[tuple[Message, date]]:
        """Each sent campaign message, and the day it was sent."""
        out = []
        for campaign in self.account.campaigns:
            send_time = campaign["attributes"].get("send_time")
            sent = datetime.fromisoformat(send_time) + self.shift if send_time else None
            if sent is None or sent > self.now:
                continue
            channel = SEND_CHANNELS[self.account.campaign_channels[campaign["id"]]]
            for message in self.account.campaign_messages[campaign["id"]]:
                label = ((message["attributes"].get("definition") or {}).get("label")) or campaign["attributes"]["name"]
                out.append((Message(campaign["id"], message["id"], channel, label, ""), self.day_of(sent)))
        return out

    def _flow_messages(self) -> list[tuple[Message, date]]:
        """Each flow's messages (one to three, mostly email), and the first day each sends on."""
        rng = random.Random(f"report flows {self.seed}")
        ids = Ids(rng)
        out = []
        for flow in self.account.flows:
            created = datetime.fromisoformat(flow["attributes"]["created"]) + self.shift
            name = flow["attributes"]["name"]
            for k in range(rng.randint(1, 3)):
                channel = rng.choices(["email", "sms", "push-notification"], [8, 2, 1])[0]
                message = Message(flow["id"], ids.ulid(created), channel, f"{name}: message {k + 1}", name)
                out.append((message, self.day_of(created) + timedelta(days=rng.randint(0, 3))))
        return out

    def revise(self, days: int) -> None:
        """Late activity arrives for every send of the last ``days`` days (today included)."""
        self.revisions.append(self.today - timedelta(days=days - 1))

    def campaign_counts(self, message: Message, day: date, metric_id: str) -> Counts:
        return self._counts(message, day, metric_id, campaign=True)

    def flow_counts(self, message: Message, day: date, metric_id: str) -> Counts | None:
        """A flow message's counts on a day, None if it sent nothing that day."""
        if random.Random(f"{self.seed}|{message.message_id}|{day}|sends").random() >= ACTIVE_SHARE:
            return None
        return self._counts(message, day, metric_id, campaign=False)

    def flow_days(
        self, message: Message, first_day: date, first: date, last: date, metric_id: str
    ) -> Iterator[tuple[date, Counts]]:
        """The days within [first, last] a flow message (sending from ``first_day`` on) sent on, with their
        counts."""
        day = max(first, first_day)
        while day <= min(last, self.today):
            counts = self.flow_counts(message, day, metric_id)
            if counts is not None:
                yield day, counts
            day += timedelta(days=1)

    def _counts(self, message: Message, day: date, metric_id: str, *, campaign: bool) -> Counts:
        key = f"{self.seed}|{message.message_id}|{day}"
        counts = _draw(random.Random(key), message.send_channel, 20000 if campaign else 300)
        counts.add(_conversions(random.Random(f"{key}|{metric_id}"), counts))
        for n, first in enumerate(self.revisions):
            if day >= first:
                counts.add(_late(random.Random(f"{key}|late {n}|{metric_id}"), counts))
        return counts


def _draw(rng: random.Random, channel: str, most: int) -> Counts:
    """One send's counts on a channel: up to ``most`` recipients, some bounced or failed, some opens and clicks."""
    recipients = rng.randint(1, most)
    bounced = rng.randint(0, recipients // 50) if channel == "email" else 0
    failed = rng.randint(0, recipients // 40) if channel != "email" else 0
    delivered = recipients - bounced - failed
    opens_unique = rng.randint(0, delivered * 6 // 10) if channel != "sms" else 0
    clicks_unique = rng.randint(0, (opens_unique or delivered // 5) // 4)
    segments = recipients * rng.randint(1, 3) if channel == "sms" else 0
    return Counts(
        recipients=recipients,
        bounced=bounced,
        failed=failed,
        opens=opens_unique + rng.randint(0, opens_unique // 2),
        opens_unique=opens_unique,
        clicks=clicks_unique + rng.randint(0, clicks_unique // 3),
        clicks_unique=clicks_unique,
        unsubscribes=(unsubscribed := rng.randint(0, delivered // 100)) + rng.randint(0, 1),
        unsubscribe_uniques=unsubscribed,
        spam_complaints=rng.randint(0, delivered // 1000),
        message_segment_count_sum=segments,
        text_message_spend_cents=segments * 1,
    )


def _conversions(rng: random.Random, counts: Counts) -> Counts:
    """The conversions of one conversion metric that a send's clicks led to."""
    uniques = rng.randint(0, max(1, counts.clicks_unique // 3))
    return Counts(
        conversions=uniques + rng.randint(0, uniques // 4),
        conversion_uniques=uniques,
        conversion_cents=sum(rng.randint(500, 25000) for _ in range(uniques)),
    )


def _late(rng: random.Random, counts: Counts) -> Counts:
    """Activity that reaches Klaviyo after a first read: more opens, clicks and conversions."""
    delivered = counts.recipients - counts.bounced - counts.failed
    opened = rng.randint(0, max(1, (delivered - counts.opens_unique) // 20))
    clicked = rng.randint(0, max(1, opened // 3))
    converted = rng.randint(1, 3)
    return Counts(
        opens=opened,
        opens_unique=opened,
        clicks=clicked,
        clicks_unique=clicked,
        conversions=converted,
        conversion_uniques=converted,
        conversion_cents=sum(rng.randint(500, 25000) for _ in range(converted)),
    )
