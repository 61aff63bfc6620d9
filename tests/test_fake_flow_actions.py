"""The fake's flow actions: generated for each flow, of the spec's kinds, and served with include=flow-actions on
/api/flows, as the spec shapes them."""

from __future__ import annotations

from collections import Counter

import pytest

from fake_klaviyo.flow_actions import KINDS
from tests.kit import assert_valid, pages

pytestmark = pytest.mark.fake

SENDS = {"send-email", "send-sms", "send-mobile-push", "send-whatsapp", "send-webhook", "send-internal-alert"}


def test_each_page_includes_its_flows_actions_once_as_the_spec_shapes_them(account, api):
    docs = pages(api, "/api/flows", include="flow-actions", **{"page[size]": 20})
    assert len(docs) > 2, "several pages"
    for doc in docs:
        assert_valid(doc, "/api/flows")
        expected = [a for f in doc["data"] for a in account.flow_actions[f["id"]]]
        included = doc["included"]
        assert [(a["type"], a["id"]) for a in included] == [("flow-action", a["id"]) for a in expected]
        for action, want in zip(included, expected, strict=True):
            assert action["attributes"] == want["attributes"]
            assert action["relationships"]["flow"]["data"] == want["relationships"]["flow"]["data"]
            assert action["links"]["self"].endswith(f"/api/flow-actions/{action['id']}/")
        for flow in doc["data"]:
            listed = flow["relationships"]["flow-actions"]["data"]
            assert listed == [{"type": "flow-action", "id": a["id"]} for a in account.flow_actions[flow["id"]]]


def test_without_the_include_flows_only_link_their_actions(api):
    doc = api("/api/flows").json()
    assert "included" not in doc
    assert all(set(f["relationships"]["flow-actions"]) == {"links"} for f in doc["data"])


def test_sparse_fieldsets_apply_to_included_actions(api):
    doc = api("/api/flows", include="flow-actions", **{"fields[flow-action]": "definition"}).json()
    assert doc["included"] and all(set(a["attributes"]) == {"definition"} for a in doc["included"])
    assert api("/api/flows", include="flow-steps").status_code == 400


def test_every_kind_of_action_and_every_channel_of_message_is_generated(account):
    actions = [a for held in account.flow_actions.values() for a in held]
    kinds = Counter(a["attributes"]["definition"]["type"] for a in actions)
    assert set(kinds) == set(KINDS)
    assert any(not held for held in account.flow_actions.values()), "a flow without actions"
    sends = [a["attributes"]["definition"] for a in actions if a["attributes"]["definition"]["type"] in SENDS]
    assert {d["type"] for d in sends} == SENDS
    assert all(isinstance(d["data"]["message"], dict) for d in sends), "every send action carries its message"
    assert [d for d in sends if d["data"]["message"]["id"] is None], "a draft's message without an id"
    experiments = [
        a["attributes"]["definition"]["data"]
        for a in actions
        if "main_action" in (a["attributes"]["definition"].get("data") or {})
    ]
    assert {e["main_action"]["type"] for e in experiments} == {"send-email", "send-mobile-push"}
    assert all(e["current_experiment"]["variations"] for e in experiments)
