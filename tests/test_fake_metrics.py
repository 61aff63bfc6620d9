"""The fake's pinned metrics: one name from two integrations, and SMS metrics, in every account."""

from __future__ import annotations

import pytest

from fake_klaviyo import EMAIL_METRICS, PINNED_METRICS, generate_account
from tests.kit import follow

pytestmark = pytest.mark.fake


@pytest.mark.parametrize(
    ("seed", "size"),
    [
        (1, {}),
        (2, {"metrics": 8}),  # too few for the generated pool to hold them all
        (31337, {"metrics": 20, "other_events_per_metric": 3}),
    ],
)
def test_every_account_holds_the_pinned_metrics_with_their_own_events(seed, size):
    account = generate_account(seed, events_per_metric=5, **size)
    per_metric = size.get("other_events_per_metric", 40)
    pinned = [account.metric_by_name(name, integration) for name, integration in PINNED_METRICS]
    assert all(pinned), "each pinned (name, integration) is in the account"
    assert len({m["id"] for m in pinned}) == len(pinned)
    for metric in pinned:
        events = account.events_for_metric(metric["id"])
        assert len(events) == per_metric
        assert {e["relationships"]["metric"]["data"]["id"] for e in events} == {metric["id"]}
    assert len(account.metrics) >= size.get("metrics", 40)
    for name in EMAIL_METRICS:
        assert account.metric_by_name(name) is not None


def test_at_the_default_size_only_the_api_placed_order_is_added():
    # The generated pool holds the other three whatever the seed: pinning adds one metric, last.
    for seed in (4, 5, 6):
        account = generate_account(seed, events_per_metric=5, other_events_per_metric=2)
        assert len(account.metrics) == 41
        last = account.metrics[-1]["attributes"]
        assert (last["name"], last["integration"]["name"]) == ("Placed Order", "API")


def test_same_named_metrics_are_told_apart_by_integration_and_each_serves_its_events(account, api):
    metrics = [m for m in follow(api, "/api/metrics") if m["attributes"]["name"] == "Placed Order"]
    by_integration = {m["attributes"]["integration"]["name"]: m for m in metrics}
    assert set(by_integration) == {"Shopify", "API"} and len(metrics) == 2
    assert by_integration["Shopify"]["id"] != by_integration["API"]["id"]
    served: dict[str, set[str]] = {}
    for integration, metric in by_integration.items():
        assert metric["id"] == account.metric_by_name("Placed Order", integration)["id"]
        rows = follow(api, "/api/events", filter=f"equals(metric_id,'{metric['id']}')")
        expected = [e["id"] for e in reversed(account.events_for_metric(metric["id"]))]  # newest first
        assert expected and [r["id"] for r in rows] == expected
        assert all(r["relationships"]["metric"]["data"]["id"] == metric["id"] for r in rows)
        served[integration] = {r["id"] for r in rows}
    assert not served["Shopify"] & served["API"]


@pytest.mark.parametrize("name", ["Received SMS", "Clicked SMS"])
def test_sms_metrics_are_klaviyo_metrics_with_events(account, api, name):
    metric = account.metric_by_name(name, "Klaviyo")
    rows = follow(api, "/api/events", filter=f"equals(metric_id,'{metric['id']}')", sort="datetime")
    assert rows and [r["id"] for r in rows] == [e["id"] for e in account.events_for_metric(metric["id"])]
