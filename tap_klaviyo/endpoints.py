"""What Klaviyo's OpenAPI spec (revision 2026-07-15) says about each endpoint the tap reads.

One row per endpoint: the scopes its key needs, the `page[size]` values to ask for, largest first (empty: the
endpoint takes no `page[size]`), its rate limits from `x-klaviyo-ratelimit` (burst per second, steady per minute),
and for an endpoint that needs one scope, the cheapest query it answers (one record of it, with as few fields as
its sparse fieldset allows, at `page[size]=1` where it takes one): a run that has not asked it yet asks that to
learn whether the key holds the scope. A path may hold `{id}`, filled in per request. The Reporting API's queries
(POST, the report asked for in the body) also have a daily quota per account (`x-klaviyo-ratelimit`'s `daily`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    path: str
    scopes: tuple[str, ...]
    page_sizes: tuple[int, ...]
    burst_per_second: int
    steady_per_minute: int
    cheapest: tuple[tuple[str, str], ...] = ()
    daily_quota: int | None = None


LISTS = Endpoint("/api/lists", ("lists:read",), (10,), 75, 750, (("fields[list]", "name"),))
SEGMENTS = Endpoint("/api/segments", ("segments:read",), (10,), 75, 750, (("fields[segment]", "name"),))
# Klaviyo requires a channel filter on campaigns.
CAMPAIGNS = Endpoint(
    "/api/campaigns",
    ("campaigns:read",),
    (100,),
    10,
    150,
    (("filter", "equals(messages.channel,'email')"), ("fields[campaign]", "name")),
)
FLOWS = Endpoint("/api/flows", ("flows:read",), (50,), 3, 60, (("fields[flow]", "name"),))
METRICS = Endpoint("/api/metrics", ("metrics:read",), (), 10, 150, (("fields[metric]", "name"),))
# The schema allows 1000 per page, the prose 200: the client falls back to 200 if Klaviyo refuses 1000.
EVENTS = Endpoint("/api/events", ("events:read",), (1000, 200), 350, 3500, (("fields[event]", "datetime"),))
PROFILES = Endpoint("/api/profiles", ("profiles:read",), (100,), 75, 750, (("fields[profile]", "created"),))
# Asking for `additional-fields[profile]=predictive_analytics` lowers the limits (the endpoint's description says
# so; `x-klaviyo-ratelimit` does not).
PROFILES_PREDICTIVE = Endpoint("/api/profiles", ("profiles:read",), (100,), 10, 150)
LIST_MEMBERS = Endpoint("/api/lists/{id}/profiles", ("lists:read", "profiles:read"), (100,), 75, 750)
SEGMENT_MEMBERS = Endpoint("/api/segments/{id}/profiles", ("segments:read", "profiles:read"), (100,), 75, 750)
ACCOUNTS = Endpoint("/api/accounts", ("accounts:read",), (), 1, 15, (("fields[account]", "timezone"),))
# The Reporting API's queries: 225 a day per account, shared by every private-key integration on it.
CAMPAIGN_VALUES = Endpoint("/api/campaign-values-reports", ("campaigns:read",), (), 1, 2, daily_quota=225)
FLOW_SERIES = Endpoint("/api/flow-series-reports", ("flows:read",), (), 1, 2, daily_quota=225)
