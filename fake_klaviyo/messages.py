"""Generated campaign messages: what each campaign said on its channel, shaped as the spec's
CampaignMessageResponseObjectResource (an email, SMS, or standard or silent mobile push definition).

They are drawn after the rest of the account, from a generator of their own, so that each seed's other data
is what it was before messages were generated. The n-th campaign of a channel carries the oddity pinned to n,
so that every account of the default size (and most smaller ones) holds each of them.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from .clock import iso
from .ids import Ids
from .samples import MEDIA_URLS, PREVIEW_TEXTS, PUSH_TEXTS, SENDERS, SMS_BODIES, SUBJECTS, URLS
from .spec import Resource

# Email campaigns (by their rank among email campaigns) with a second message, and with one oddity each.
_TWO_MESSAGES = frozenset({0, 3, 11})
_UNICODE_SUBJECT, _EMPTY_PREVIEW, _NO_CONTENT, _NO_DEFINITION, _NO_LABEL, _NO_SEND_TIMES = 1, 2, 4, 5, 6, 7
UNICODE_SUBJECT = "Ünïcödé ✉️ «Soldes» 春のセール — עברית"
# SMS and push campaigns, by rank on their channel.
_NO_RENDER_OPTIONS, _WITH_MEDIA, _NO_SMS_CONTENT = 0, 1, 2
_SILENT, _NO_OPTIONS, _EVERY_OPTION = 0, 1, 2

_ON_OPEN: list[dict[str, Any] | None] = [
    None,
    {"type": "open_app"},
    {"type": "deep_link", "ios_deep_link": "eclair://soldes?ü=1", "android_deep_link": None},
    {"type": "open_web_url", "web_url": URLS[2]},
]
_BADGES: list[dict[str, Any] | None] = [
    None,
    {"display": False},
    {"display": True, "badge_options": None},
    {"display": True, "badge_options": {"badge_config": "increment_one"}},
    {"display": True, "badge_options": {"badge_config": "set_count", "value": "3"}},
    {"display": True, "badge_options": {"badge_config": "set_property", "set_from_property": "Nombre non lus"}},
]
_BUTTONS = [
    {"label": "Voir 👀", "action_type": "open_url", "position": 0, "url": URLS[0]},
    {"label": "Plus tard", "action_type": "dismiss", "position": None, "url": None},
]

Relationships = dict[str, Any]
Definition = Callable[[random.Random, Ids, Resource, int, int], tuple[dict[str, Any] | None, Relationships]]


def generate_campaign_messages(
    rng: random.Random, ids: Ids, campaigns: list[Resource], channels: dict[str, str]
) -> dict[str, list[Resource]]:
    """Each campaign's messages by campaign id: one, or two for some email campaigns."""
    definitions: dict[str, Definition] = {"email": _email, "sms": _sms, "mobile_push": _push}
    rank: Counter[str] = Counter()
    out: dict[str, list[Resource]] = {}
    for campaign in campaigns:
        channel = channels[campaign["id"]]
        n = rank[channel]
        rank[channel] += 1
        count = 2 if channel == "email" and n in _TWO_MESSAGES else 1
        out[campaign["id"]] = []
        for k in range(count):
            definition, related = definitions[channel](rng, ids, campaign, n, k)
            no_times = channel == "email" and n == _NO_SEND_TIMES
            out[campaign["id"]].append(_message(rng, ids, campaign, k, definition, related, no_times))
    return out


def _message(
    rng: random.Random,
    ids: Ids,
    campaign: Resource,
    k: int,
    definition: dict[str, Any] | None,
    related: Relationships,
    no_times: bool,
) -> Resource:
    a = campaign["attributes"]
    micro = "." in a["created_at"]
    # The k-th message is made with its campaign, k ten-minute steps on; it was edited until the campaign was.
    created = datetime.fromisoformat(a["created_at"]) + timedelta(seconds=600 * k + rng.randrange(600))
    span = max(0, int((datetime.fromisoformat(a["updated_at"]) - created).total_seconds()))
    updated = created + timedelta(seconds=rng.randint(0, span))
    options = a["send_strategy"].get("options") or {}
    sent = [{"datetime": a["send_time"], "is_local": bool(options.get("is_local"))}] if a["send_time"] else []
    return {
        "type": "campaign-message",
        "id": ids.ulid(created),
        "attributes": {
            "definition": copy.deepcopy(definition),  # no two messages share a nested object
            "send_times": None if no_times else sent,
            "created_at": iso(created, micro),
            "updated_at": None if no_times else iso(updated, micro),
        },
        "relationships": {"campaign": {"data": {"type": "campaign", "id": campaign["id"]}}, **related},
    }


def _email(
    rng: random.Random, ids: Ids, campaign: Resource, n: int, k: int
) -> tuple[dict[str, Any] | None, Relationships]:
    if n == _NO_DEFINITION:
        return None, {}
    name = campaign["attributes"]["name"]
    from_email, from_label = rng.choice(SENDERS)
    content = {
        "subject": UNICODE_SUBJECT if n == _UNICODE_SUBJECT else rng.choice(SUBJECTS),
        "preview_text": "" if n == _EMPTY_PREVIEW else rng.choice(PREVIEW_TEXTS),
        "from_email": from_email,
        "from_label": None if n == _NO_LABEL else from_label,
        "reply_to_email": rng.choice([None, None, "service+réponse@eclair.example"]),
        "cc_email": "cc@eclair.example" if n == _NO_LABEL else rng.choice([None] * 9 + ["cc@eclair.example"]),
        "bcc_email": rng.choice([None] * 9 + ["archive@eclair.example"]),
    }
    label = name if k == 0 else f"{name} (B)"
    definition = {
        "channel": "email",
        "label": None if n == _NO_LABEL else label,
        "content": None if n == _NO_CONTENT else content,
    }
    if n == _NO_CONTENT:
        return definition, {}
    return definition, {"template": {"data": {"type": "template", "id": ids.short()}}}


def _sms(rng: random.Random, ids: Ids, campaign: Resource, n: int, k: int) -> tuple[dict[str, Any], Relationships]:
    media = rng.choice(MEDIA_URLS) if n == _WITH_MEDIA or rng.random() < 0.15 else None
    render_options = {
        "shorten_links": rng.choice([True, True, False]),
        "add_org_prefix": rng.choice([True, False]),
        "add_info_link": rng.choice([True, False, None]),
        "add_opt_out_language": rng.choice([False, True, None]),
    }
    definition = {
        "channel": "sms",
        "content": None if n == _NO_SMS_CONTENT else {"body": rng.choice(SMS_BODIES), "media_url": media},
        "render_options": None if n == _NO_RENDER_OPTIONS else render_options,
    }
    if media is None or n == _NO_SMS_CONTENT:
        return definition, {}
    # Klaviyo image ids are numeric strings.
    return definition, {"image": {"data": {"type": "image", "id": str(rng.randrange(10**7, 10**9))}}}


def _push(rng: random.Random, ids: Ids, campaign: Resource, n: int, k: int) -> tuple[dict[str, Any], Relationships]:
    kv_pairs = rng.choice([None, {}, {"écran": "soldes", "n": "1"}])
    if n == _SILENT or (n > _EVERY_OPTION and rng.random() < 0.1):
        return {"channel": "mobile_push", "notification_type": "silent", "kv_pairs": kv_pairs}, {}
    title, body = rng.choice(PUSH_TEXTS)
    every = n == _EVERY_OPTION
    options = {
        "on_open": _ON_OPEN[3] if every else rng.choice(_ON_OPEN),
        "badge": _BADGES[4] if every else rng.choice(_BADGES),
        "play_sound": True if every else rng.choice([True, False, None]),
    }
    definition = {
        "channel": "mobile_push",
        "notification_type": "standard",
        "content": {
            "title": title,
            "body": body,
            "dynamic_image": MEDIA_URLS[0] if every else rng.choice([None, None, MEDIA_URLS[0]]),
            "action_buttons": list(_BUTTONS) if every else rng.choice([None, [], _BUTTONS[:1]]),
        },
        "kv_pairs": None if n == _NO_OPTIONS else kv_pairs,
        "options": None if n == _NO_OPTIONS else options,
    }
    return definition, {}
