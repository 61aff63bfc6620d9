"""Generated metrics: Klaviyo's built-in email metrics, a decoy of the same name, a pool of others, and the
metrics every account holds whatever its seed and size."""

from __future__ import annotations

import random
from typing import Any

from .clock import created_updated
from .ids import Ids
from .samples import CUSTOM_METRIC_NAMES, OTHER_KLAVIYO_METRICS, SHOPIFY_METRICS
from .spec import Resource

# Klaviyo's built-in email metrics (Title Case, as connectors list them).
EMAIL_METRICS: tuple[str, ...] = (
    "Bounced Email",
    "Clicked Email",
    "Opened Email",
    "Received Email",
    "Dropped Email",
    "Marked Email as Spam",
)
# Spelled as Klaviyo's current help centre does, so name matching must ignore case.
_SENTENCE_CASE = {"Marked Email as Spam": "Marked email as spam"}


INTEGRATION_KLAVIYO: dict[str, Any] = {
    "object": "integration",
    "id": "0rG4eQ",
    "key": "klaviyo",
    "name": "Klaviyo",
    "category": "Internal",
}
INTEGRATION_API: dict[str, Any] = {
    "object": "integration",
    "id": "7FtS4J",
    "key": "api",
    "name": "API",
    "category": "API",
}
INTEGRATION_SHOPIFY: dict[str, Any] = {
    "object": "integration",
    "id": "0eMvjm",
    "key": "shopify",
    "name": "Shopify",
    "category": "eCommerce",
}
_INTEGRATIONS = {i["name"]: i for i in (INTEGRATION_KLAVIYO, INTEGRATION_API, INTEGRATION_SHOPIFY)}

# (name, integration name) of the metrics every account holds: one name from two integrations, each with its
# own events (pinning a metric's integration picks one), and the SMS metrics an event stream may read by name.
PINNED_METRICS: tuple[tuple[str, str], ...] = (
    ("Placed Order", "Shopify"),
    ("Placed Order", "API"),
    ("Received SMS", "Klaviyo"),
    ("Clicked SMS", "Klaviyo"),
)


def generate_metrics(rng: random.Random, ids: Ids, total: int, missing: set[str]) -> tuple[list[Resource], list[str]]:
    specs: list[tuple[str, dict[str, Any] | None, str]] = []
    for name in EMAIL_METRICS:
        if name.casefold() not in missing:
            specs.append((_SENTENCE_CASE.get(name, name), INTEGRATION_KLAVIYO, "email:" + name.split()[0].lower()))
    # Decoy: same name as a built-in, but an API metric with its own events.
    specs.append(("Opened Email", INTEGRATION_API, "custom"))
    pool: list[tuple[str, dict[str, Any] | None, str]] = (
        [(n, INTEGRATION_SHOPIFY, "order" if "Order" in n else "generic") for n in SHOPIFY_METRICS]
        + [(n, INTEGRATION_KLAVIYO, "site" if n == "Active on Site" else "generic") for n in OTHER_KLAVIYO_METRICS]
        + [(n, None, "custom") for n in CUSTOM_METRIC_NAMES]
        + [(n + " (API)", INTEGRATION_API, "custom") for n in CUSTOM_METRIC_NAMES[:3]]
    )
    rng.shuffle(pool)
    k = 0
    while len(specs) < total:
        name, integ, kind = pool[k % len(pool)]
        specs.append((name if k < len(pool) else f"{name} {k // len(pool) + 1}", integ, kind))
        k += 1
    rng.shuffle(specs)
    # Put the decoy before the real "Opened Email" so first-match-by-name picks the wrong one.
    names = [s[0] for s in specs]
    if "Opened Email" in names:
        real = next(i for i, s in enumerate(specs) if s[0] == "Opened Email" and s[1] is INTEGRATION_KLAVIYO)
        decoy = next(i for i, s in enumerate(specs) if s[0] == "Opened Email" and s[1] is INTEGRATION_API)
        if decoy > real:
            specs[decoy], specs[real] = specs[real], specs[decoy]
    return [_metric(rng, ids, name, integ) for name, integ, _ in specs], [s[2] for s in specs]


def pin_metrics(rng: random.Random, ids: Ids, metrics: list[Resource], kinds: list[str]) -> None:
    """Append to ``metrics`` (and their event kinds to ``kinds``) the PINNED_METRICS they lack.

    ``rng`` and ``ids`` are the pinned metrics' own, so that the metrics generated before keep their ids.
    """
    held = {(m["attributes"]["name"], (m["attributes"]["integration"] or {}).get("name")) for m in metrics}
    for name, integration in PINNED_METRICS:
        if (name, integration) not in held:
            metrics.append(_metric(rng, ids, name, _INTEGRATIONS[integration]))
            kinds.append("order" if "Order" in name else "generic")


def _metric(rng: random.Random, ids: Ids, name: str, integration: dict[str, Any] | None) -> Resource:
    created, updated, _c = created_updated(rng, 0.0)
    return {
        "type": "metric",
        "id": ids.short(),
        "attributes": {
            "name": name,
            "created": created,
            "updated": updated,
            "integration": dict(integration) if integration else None,
        },
    }
