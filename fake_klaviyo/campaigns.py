"""Generated campaigns on every channel, with the send strategies, tracking options and audiences of each."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from .clock import GENERATOR_NOW, iso
from .ids import Ids
from .samples import CAMPAIGN_NAMES
from .spec import ENUMS, Resource

_STATUS_WEIGHTS = [
    ("Sent", 60),
    ("Draft", 15),
    ("Scheduled", 7),
    ("Cancelled", 4),
    ("Cancelled: No Recipients", 2),
    ("Sending", 2),
    ("Variations Sent", 2),
    ("Adding Recipients", 1),
    ("Preparing to send", 1),
    ("Queued without Recipients", 1),
    ("Cancelled: Smart Sending", 1),
    ("Unknown", 1),
]


def generate_campaigns(
    rng: random.Random, ids: Ids, n: int, audiences: list[Resource], email_share: float
) -> tuple[list[Resource], dict[str, str]]:
    statuses = [s for s, _ in _STATUS_WEIGHTS]
    weights = [w for _, w in _STATUS_WEIGHTS]
    n_email = round(n * email_share)
    channels = ["email"] * n_email + [("sms", "mobile_push")[i % 2] for i in range(n - n_email)]
    rng.shuffle(channels)
    audience_ids = [a["id"] for a in audiences]
    throttles = ENUMS["ThrottledSendStrategy.throttle_percentage"]
    dynamic = ENUMS["DynamicTrackingParam.value"]
    out: list[Resource] = []
    chan: dict[str, str] = {}
    base_names = list(CAMPAIGN_NAMES)
    for i, channel in enumerate(channels):
        micro = rng.random() < 0.4
        created = GENERATOR_NOW - timedelta(seconds=rng.randrange(86400, 2 * 365 * 86400))
        created = created.replace(microsecond=rng.randrange(1, 1_000_000))
        status = rng.choices(statuses, weights)[0]
        scheduled = None if status == "Draft" else created + timedelta(seconds=rng.randrange(60, 14 * 86400))
        if status == "Scheduled" and scheduled is not None:
            scheduled = GENERATOR_NOW + timedelta(days=rng.randint(1, 20))
        sending = scheduled if scheduled is not None else created + timedelta(days=rng.randint(1, 30))
        send_time = None if status == "Draft" or status.startswith("Cancelled") else sending
        updated = max(created, scheduled or created) + timedelta(seconds=rng.randrange(0, 3 * 86400))

        r = rng.random()
        strategy: dict[str, Any]
        if r < 0.6:
            options = rng.choice(
                [
                    None,
                    {"is_local": False},
                    {"is_local": True, "send_past_recipients_immediately": rng.random() < 0.5},
                ]
            )
            strategy = {"method": "static", "datetime": iso(sending), "options": options}
        elif r < 0.75:
            strategy = {"method": "smart_send_time", "date": sending.date().isoformat()}
        elif r < 0.9 and channel == "email":
            strategy = {"method": "throttled", "datetime": iso(sending), "throttle_percentage": rng.choice(throttles)}
        else:
            strategy = {"method": "immediate"}

        params: list[dict[str, Any]] | None = rng.choice(
            [
                None,
                [],
                [
                    {"type": "dynamic", "value": rng.choice(dynamic), "name": "utm_campaign"},
                    {"type": "static", "value": "klaviyo ✉️", "name": "utm_source"},
                ],
            ]
        )
        tracking: dict[str, Any] | None
        if channel == "email":
            tracking = {
                "add_tracking_params": rng.random() < 0.6,
                "custom_tracking_params": params,
                "is_tracking_clicks": rng.choice([True, True, False, None]),
                "is_tracking_opens": rng.choice([True, True, False, None]),
            }
        elif channel == "sms":
            tracking = {"add_tracking_params": rng.random() < 0.5, "custom_tracking_params": params}
        else:
            tracking = None

        excluded = rng.choice([None, None, [], "some"])
        cid = ids.ulid(created)
        out.append(
            {
                "type": "campaign",
                "id": cid,
                "attributes": {
                    "name": f"{base_names[i % len(base_names)]} {i // 3 + 1}"
                    if i % 5
                    else base_names[i % len(base_names)],
                    "status": status,
                    "archived": rng.random() < 0.1,
                    "audiences": {
                        "included": rng.sample(audience_ids, min(len(audience_ids), rng.randint(1, 3))),
                        "excluded": (
                            rng.sample(audience_ids, min(len(audience_ids), rng.randint(1, 2)))
                            if excluded == "some"
                            else excluded
                        ),
                    },
                    "send_options": {"use_smart_sending": rng.choice([True, False, None])},
                    "tracking_options": tracking,
                    "send_strategy": strategy,
                    "created_at": iso(created, micro),
                    "scheduled_at": iso(scheduled, micro) if scheduled else None,
                    "updated_at": iso(updated, micro),
                    "send_time": iso(send_time) if send_time else None,
                },
            }
        )
        chan[cid] = channel
    return out, chan
