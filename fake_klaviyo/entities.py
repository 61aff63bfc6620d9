"""Generated lists, segments (with their definitions), flows and the account itself.

Metrics are in metrics.py, campaigns in campaigns.py, events in events.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .clock import GENERATOR_NOW, created_updated, iso
from .ids import Ids
from .samples import FLOW_NAMES, NAMES
from .spec import ENDPOINTS, ENUMS, Resource


def _names(rng: random.Random, n: int, pool: Sequence[str]) -> list[str]:
    names = list(pool)
    rng.shuffle(names)
    out = [names[i % len(names)] + (f" {i // len(names) + 1}" if i >= len(names) else "") for i in range(n)]
    if n >= 3:
        out[-1] = out[0]  # Klaviyo allows duplicate names: sorting by name needs the id tie-break
    return out


def generate_lists(rng: random.Random, ids: Ids, n: int) -> list[Resource]:
    out: list[Resource] = []
    # Index-pinned oddities make every seed carry each nasty case at least once.
    for i, name in enumerate(_names(rng, n, NAMES)):
        created, updated, _c = created_updated(rng, 0.4)
        out.append(
            {
                "type": "list",
                "id": ids.short(),
                "attributes": {
                    "name": name,
                    "created": created,
                    "updated": updated,
                    "opt_in_process": None if i == 1 else rng.choice(["double_opt_in", "single_opt_in", None]),
                },
            }
        )
    return out


def _date_filter(rng: random.Random) -> dict[str, Any]:
    r = rng.random()
    if r < 0.4:
        return {"type": "date", "operator": "alltime"}
    if r < 0.8:
        return {
            "type": "date",
            "operator": rng.choice(ENUMS["RelativeDateOperatorBaseRelativeDateFilter.operator"]),
            "unit": rng.choice(ENUMS["RelativeDateOperatorBaseRelativeDateFilter.unit"]),
            "quantity": rng.randint(1, 90),
        }
    return {
        "type": "date",
        "operator": rng.choice(ENUMS["StaticDateFilter.operator"]),
        "date": iso(GENERATOR_NOW - timedelta(days=rng.randint(1, 700))),
    }


def _condition(rng: random.Random, list_ids: list[str], metric_ids: list[str]) -> dict[str, Any]:
    kind = rng.choice(["member", "nonmember", "metric", "property", "consent"])
    if kind in ("member", "nonmember") and list_ids:
        cond: dict[str, Any] = {
            "type": "profile-group-membership",
            "is_member": kind == "member",
            "group_ids": rng.sample(list_ids, min(len(list_ids), rng.randint(1, 2))),
        }
        if kind == "member":
            cond["timeframe_filter"] = None if rng.random() < 0.5 else _date_filter(rng)
        return cond
    if kind == "metric" and metric_ids:
        return {
            "type": "profile-metric",
            "metric_id": rng.choice(metric_ids),
            "measurement": rng.choice(["count", "sum"]),
            "measurement_filter": {
                "type": "numeric",
                "operator": rng.choice(ENUMS["NumericOperatorNumericFilter.operator"]),
                "value": rng.choice([0, 1, 2.5, 10]),
            },
            "timeframe_filter": _date_filter(rng),
            "metric_filters": None,
        }
    if kind == "property":
        return {
            "type": "profile-property",
            "property": rng.choice(["email", "first_name", "properties['Couleur préférée 🎨']"]),
            "filter": {
                "type": "string",
                "operator": rng.choice(ENUMS["StringOperatorStringFilter.operator"]),
                "value": rng.choice(["Bleu 💙", "例", 'a"b\\c', None]),
            },
        }
    return consent_condition()


def consent_condition() -> dict[str, Any]:
    """A segment's or a flow's condition: subscribed to email marketing."""
    return {
        "type": "profile-marketing-consent",
        "consent": {
            "channel": "email",
            "can_receive_marketing": True,
            "consent_status": {"subscription": "subscribed", "filters": None},
        },
    }


def generate_segments(
    rng: random.Random, ids: Ids, n: int, list_ids: list[str], metric_ids: list[str]
) -> list[Resource]:
    out: list[Resource] = []
    for i, name in enumerate(_names(rng, n, list(reversed(NAMES)))):
        created, updated, _c = created_updated(rng, 0.4)
        definition = (
            None
            if i == 2 or rng.random() < 0.1
            else {
                "condition_groups": [
                    {"conditions": [_condition(rng, list_ids, metric_ids) for _ in range(rng.randint(1, 2))]}
                    for _ in range(rng.randint(1, 3))
                ]
            }
        )
        out.append(
            {
                "type": "segment",
                "id": ids.short(),
                "attributes": {
                    "name": name,
                    "definition": definition,
                    "created": created,
                    "updated": updated,
                    "is_active": i != 1 and rng.random() < 0.9,
                    "is_processing": rng.random() < 0.1,
                    "is_starred": rng.random() < 0.2,
                },
            }
        )
    return out


def generate_flows(rng: random.Random, ids: Ids, n: int) -> list[Resource]:
    triggers = ENDPOINTS["flows"].attributes["trigger_type"]["enum"]
    out: list[Resource] = []
    for i, name in enumerate(_names(rng, n, FLOW_NAMES)):
        created, updated, _c = created_updated(rng, 0.0)
        out.append(
            {
                "type": "flow",
                "id": ids.short(),
                "attributes": {
                    "name": name,
                    "status": rng.choice(["live", "live", "live", "draft", "manual"]),
                    "archived": rng.random() < 0.1,
                    "created": created,
                    "updated": updated,
                    "trigger_type": None if i == 2 or rng.random() < 0.1 else rng.choice(triggers),
                },
            }
        )
    return out


def account_resource(rng: random.Random, ids: Ids) -> Resource:
    key = ids.short()
    return {
        "type": "account",
        "id": key,
        "attributes": {
            "test_account": False,
            "contact_information": {
                "default_sender_name": "Boutique Éclair 🌸",
                "default_sender_email": "bonjour@eclair.example",
                "website_url": "https://eclair.example",
                "organization_name": "Boutique Éclair «Démo»",
                "street_address": {
                    "address1": "12 Rue de l'Église",
                    "address2": None,
                    "city": "Montréal",
                    "region": "QC",
                    "country": "CA",
                    "zip": "H2X 1Y4",
                },
            },
            "industry": rng.choice(["Retail", None]),
            "timezone": "America/Toronto",
            "preferred_currency": "CAD",
            "public_api_key": key,
            "locale": "fr-CA",
        },
    }
