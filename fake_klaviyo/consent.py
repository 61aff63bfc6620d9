"""A profile's additional fields: its consent per channel (``subscriptions``, shaped as the spec's Subscriptions)
and its ``predictive_analytics``, drawn when asked for from the facts the profile store holds.

Email consent follows Klaviyo's rules: a global suppression stops email marketing whatever the consent, and an
unsubscribe is a suppression of reason UNSUBSCRIBE. Profiles 1 to 3 carry each consent value on every channel
(see profiles.py), so that every account holds each of them.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

from .clock import klaviyo_form, stamp
from .samples import EMAIL_METHODS, METHOD_DETAILS, SMS_METHODS
from .spec import ENUMS

SUBSCRIBED, UNSUBSCRIBED, NEVER_SUBSCRIBED = "SUBSCRIBED", "UNSUBSCRIBED", "NEVER_SUBSCRIBED"
# Profile k of 1..3 holds the (k-1)-th on its SMS and push channels.
_PINNED_CONSENT = (SUBSCRIBED, UNSUBSCRIBED, NEVER_SUBSCRIBED)
CHANNEL_AFFINITIES: list[str] = ENUMS["PredictiveAnalytics.ranked_channel_affinity"]

Json = dict[str, Any]


@dataclass(frozen=True)
class Suppression:
    """A profile's email suppressions: global (reason, timestamp) if any, and per list (list id, reason, timestamp)."""

    suppressed: tuple[str, int] | None
    lists: tuple[tuple[str, str, int], ...] = ()

    def global_times(self) -> list[int]:
        return [self.suppressed[1]] if self.suppressed else []

    def list_times(self) -> list[int]:
        return [ts for _, _, ts in self.lists]


@dataclass(frozen=True)
class Facts:
    """What a profile's consent must agree with."""

    index: int
    email: bool
    phone: str | None
    push: bool
    created: int
    updated: int
    suppression: Suppression | None


def subscriptions(rng: random.Random, f: Facts) -> Json:
    if f.index == 0 and not (f.email or f.phone or f.push):
        return {"email": None, "sms": None, "mobile_push": None}  # an anonymous profile: every channel null
    out: Json = {"email": {"marketing": _email(rng, f)}}
    if rng.random() < 0.3:
        out["email"]["open_tracking"] = _permission(rng, f, None)  # a newer channel: absent from most profiles
    out["sms"] = {
        "marketing": _sms(rng, f, "can_receive_sms_marketing"),
        "transactional": _sms(rng, f, "can_receive_sms_transactional") if _has_transactional(rng, f) else None,
    }
    consent = _consent(rng, f, f.push)
    out["mobile_push"] = {
        "marketing": {
            "can_receive_push_marketing": consent == SUBSCRIBED,
            "consent": consent,
            "consent_timestamp": None if consent == NEVER_SUBSCRIBED else stamp(_moment(rng, f)),
        }
    }
    if f.phone and rng.random() < 0.1:
        out["whatsapp"] = {
            "marketing": _permission(rng, f, f.phone),
            "transactional": None,
            "conversational": _permission(rng, f, f.phone),
        }
    return out


def _email(rng: random.Random, f: Facts) -> Json:
    s = f.suppression or Suppression(None)
    if not f.email:
        consent, at = NEVER_SUBSCRIBED, None
    elif s.suppressed and s.suppressed[0] == "UNSUBSCRIBE":
        consent, at = UNSUBSCRIBED, s.suppressed[1]
    else:
        consent = SUBSCRIBED if f.index == 1 or (f.index != 2 and rng.random() < 0.55) else NEVER_SUBSCRIBED
        at = _moment(rng, f) if consent == SUBSCRIBED else None
    subscribed = consent == SUBSCRIBED
    changes = [t for t in (at, *s.global_times(), *s.list_times()) if t is not None]
    return {
        # Implicit consent: whoever has an email and no global suppression may be sent marketing.
        "can_receive_email_marketing": f.email and s.suppressed is None,
        "consent": consent,
        "consent_timestamp": stamp(at) if at is not None else None,
        "last_updated": stamp(max(changes)) if changes else None,
        "method": rng.choice(EMAIL_METHODS) if subscribed else "PREFERENCE_PAGE" if consent == UNSUBSCRIBED else None,
        "method_detail": rng.choice(METHOD_DETAILS) if at is not None else "",
        "custom_method_detail": rng.choice([None, "marketing drive", "Salon «Printemps» 2025"]) if subscribed else None,
        "double_optin": rng.choice([True, False, None]) if subscribed else None,
        "suppression": [{"reason": s.suppressed[0], "timestamp": stamp(s.suppressed[1])}] if s.suppressed else [],
        "list_suppressions": [{"list_id": i, "reason": r, "timestamp": stamp(t)} for i, r, t in s.lists],
    }


def _sms(rng: random.Random, f: Facts, can_receive: str) -> Json:
    consent = _consent(rng, f, f.phone is not None)
    at = None if consent == NEVER_SUBSCRIBED else stamp(_moment(rng, f))
    return {
        can_receive: consent == SUBSCRIBED,
        "consent": consent,
        "consent_timestamp": at,
        "method": rng.choice(SMS_METHODS) if at else None,
        "method_detail": rng.choice(["JOIN", "", None]) if at else "",
        "last_updated": at,
    }


def _permission(rng: random.Random, f: Facts, phone: str | None) -> Json:
    """The shape open tracking and WhatsApp share: a consent, whether it allows sending, and its times."""
    consent = rng.choice(_PINNED_CONSENT)
    at = None if consent == NEVER_SUBSCRIBED else stamp(_moment(rng, f))
    out: Json = {
        "consent": consent,
        "consent_timestamp": at,
        "last_updated": at,
        "created_timestamp": stamp(f.created),
        "metadata": rng.choice([None, {}, {"source": "préférences"}]),
        "can_receive": consent == SUBSCRIBED,
        "valid_until": None,
    }
    if phone is not None:
        out["phone_number"] = phone
    return out


def _consent(rng: random.Random, f: Facts, reachable: bool) -> str:
    if 1 <= f.index <= 3:
        return _PINNED_CONSENT[f.index - 1]
    if not reachable:
        return NEVER_SUBSCRIBED
    return rng.choice(_PINNED_CONSENT)


def _has_transactional(rng: random.Random, f: Facts) -> bool:
    return 1 <= f.index <= 3 or rng.random() < 0.6


def _moment(rng: random.Random, f: Facts) -> int:
    """A time between the profile's creation and its last update."""
    return f.created + rng.randint(0, max(0, f.updated - f.created))


def predictive_analytics(rng: random.Random, f: Facts) -> Json | None:
    """A model's guesses: none for some profiles, nulls throughout for those it knows too little of."""
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.35:
        return {k: None for k in _PREDICTIONS}
    orders = rng.randint(1, 12)
    value = round(rng.uniform(5, 400), 2)
    predicted = round(rng.uniform(0, 300), 2)
    channels = rng.sample(CHANNEL_AFFINITIES, rng.randint(0, len(CHANNEL_AFFINITIES)))
    return {
        "historic_clv": round(value * orders, 2),
        "predicted_clv": predicted,
        "total_clv": round(value * orders + predicted, 2),
        "historic_number_of_orders": orders,
        "predicted_number_of_orders": round(rng.uniform(0, 3), 2),
        "average_days_between_orders": rng.randint(3, 400) if orders > 1 else None,
        "average_order_value": value,
        "churn_probability": round(rng.random(), 2),
        "expected_date_of_next_order": stamp(f.updated + rng.randint(1, 365) * 86400) if orders > 1 else None,
        "ranked_channel_affinity": channels if rng.random() < 0.9 else None,
    }


_PREDICTIONS = (
    "historic_clv",
    "predicted_clv",
    "total_clv",
    "historic_number_of_orders",
    "predicted_number_of_orders",
    "average_days_between_orders",
    "average_order_value",
    "churn_probability",
    "expected_date_of_next_order",
    "ranked_channel_affinity",
)


def klaviyo_consent_times(subscriptions: Json) -> None:
    """Every channel's ``consent_timestamp`` rewritten, in place, as Klaviyo really writes it: with a space for the
    "T" and microseconds (drawn from the time itself, so a profile reads the same each time)."""
    for channel in subscriptions.values():
        for permission in (channel or {}).values():
            at = permission.get("consent_timestamp") if isinstance(permission, dict) else None
            if isinstance(at, str):
                permission["consent_timestamp"] = klaviyo_form(at, micro=zlib.crc32(at.encode()) % 1_000_000)
