"""The fake's attributions: conversions (order events) credited to a campaign or flow message of the account,
served with include=attributions on /api/events, as the spec shapes them."""

from __future__ import annotations

import pytest

from fake_klaviyo.flow_actions import flow_messages
from tests.kit import assert_valid, pages

pytestmark = pytest.mark.fake


def placed_order(account):
    return account.metric_by_name("Placed Order", "Shopify")


def test_conversions_carry_attributions_to_the_accounts_messages(account, api):
    metric = placed_order(account)
    docs = pages(
        api, "/api/events", include="attributions", filter=f"equals(metric_id,'{metric['id']}')", **{"page[size]": 7}
    )
    assert len(docs) > 2, "several pages"
    campaign_messages = {(c, m["id"]) for c, held in account.campaign_messages.items() for m in held}
    flows = {(m.flow_id, m.message_id, m.variation_id) for m in flow_messages(account.flow_actions)}
    events = {e["id"]: e for e in account.events}
    kinds = set()
    for doc in docs:
        assert_valid(doc, "/api/events")
        included = {a["id"]: a for a in doc["included"]}
        assert len(included) == len(doc["included"]) and {a["type"] for a in included.values()} <= {"attribution"}
        listed = [ref["id"] for e in doc["data"] for ref in e["relationships"]["attributions"]["data"]]
        assert sorted(listed) == sorted(included), "each event's attributions, each included once"
        for event in doc["data"]:
            for ref in event["relationships"]["attributions"]["data"]:
                related = {k: v["data"]["id"] for k, v in included[ref["id"]]["relationships"].items() if "data" in v}
                assert related["event"] == event["id"]
                if "campaign" in related:
                    kinds.add("campaign")
                    assert (related["campaign"], related["campaign-message"]) in campaign_messages
                else:
                    kinds.add("flow" if "flow-message-variation" not in related else "variation")
                    assert (related["flow"], related["flow-message"], related.get("flow-message-variation")) in flows
                if "attributed-event" in related:
                    touched = events[related["attributed-event"]]["attributes"]["timestamp"]
                    assert touched <= event["attributes"]["timestamp"], "a conversion follows what earned it"
    assert kinds == {"campaign", "flow", "variation"}


def test_attributions_are_the_same_on_every_read_and_need_the_include(account, api):
    metric = placed_order(account)
    query = {"filter": f"equals(metric_id,'{metric['id']}')", "page[size]": 50}
    first, again = (api("/api/events", include="attributions", **query).json() for _ in range(2))
    assert first == again and first["included"]
    plain = api("/api/events", **query).json()
    assert "included" not in plain
    assert all(set(e["relationships"]["attributions"]) == {"links"} for e in plain["data"])
    sparse = api("/api/events", include="attributions", **{**query, "fields[attribution]": "id"}).json()
    assert sparse["included"] == first["included"], "an attribution has no attributes to leave out"
