"""The fake's campaign messages: generated per channel as the spec shapes them, and served with
include=campaign-messages on /api/campaigns, with their own sparse fieldsets."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from fake_klaviyo import ENDPOINTS, generate_account
from fake_klaviyo.filters import parse_datetime
from tests.kit import assert_valid, error, pages

pytestmark = pytest.mark.fake

CHANNELS = ("email", "sms", "mobile_push")
MESSAGE_ATTRIBUTES = set(ENDPOINTS["campaigns"].included["campaign-message"]["attributes"])


def identifiers(resources: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"type": r["type"], "id": r["id"]} for r in resources]


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(
    "params",
    [
        {"include": "campaign-messages", "page[size]": 10},
        {"include": "campaign-messages,tags", "sort": "-updated_at", "page[size]": 7},
    ],
)
def test_each_page_includes_its_campaigns_messages_once(account, api, channel, params):
    docs = pages(api, "/api/campaigns", filter=f"equals(messages.channel,'{channel}')", **params)
    assert len(docs) > 2, "several pages"
    for doc in docs:
        assert_valid(doc, "/api/campaigns")
        expected = [m for c in doc["data"] for m in account.campaign_messages[c["id"]]]
        assert expected, "every campaign has a message"
        included = doc["included"]
        assert len(included) == len({(m["type"], m["id"]) for m in included}), "each included resource once"
        assert Counter(m["id"] for m in included) == Counter(m["id"] for m in expected)
        messages = {m["id"]: m for m in expected}
        for m in included:
            assert m["attributes"] == messages[m["id"]]["attributes"]
            assert m["relationships"]["campaign"]["data"] == messages[m["id"]]["relationships"]["campaign"]["data"]
            assert m["links"]["self"].endswith(f"/api/campaign-messages/{m['id']}/")
            definition = m["attributes"]["definition"]
            assert definition is None or definition["channel"] == channel
        for c in doc["data"]:
            rel = c["relationships"]["campaign-messages"]
            assert rel["data"] == identifiers(account.campaign_messages[c["id"]])
            if "tags" in params["include"]:
                assert c["relationships"]["tags"]["data"] == []  # the fake holds no tags


def test_without_the_include_campaigns_only_link_their_messages(api):
    doc = api("/api/campaigns", filter="equals(messages.channel,'email')").json()
    assert "included" not in doc
    rels = [c["relationships"]["campaign-messages"] for c in doc["data"]]
    assert rels and all(set(r) == {"links"} for r in rels)


def expected_sparse(attributes: dict[str, Any]) -> dict[str, Any]:
    """A message's attributes under fields[campaign-message]=definition.content.subject,send_times."""
    definition = attributes["definition"]
    if definition is None:
        sparse: Any = None
    elif definition["content"] is None:
        sparse = {"content": None}
    else:
        sparse = {"content": {"subject": definition["content"]["subject"]}}
    return {"definition": sparse, "send_times": attributes["send_times"]}


def test_sparse_fieldsets_apply_to_included_messages(account, api):
    docs = pages(
        api,
        "/api/campaigns",
        filter="equals(messages.channel,'email')",
        include="campaign-messages",
        **{"fields[campaign-message]": "definition.content.subject,send_times", "fields[campaign]": "name"},
    )
    messages = {m["id"]: m for ms in account.campaign_messages.values() for m in ms}
    shapes = set()
    for doc in docs:
        assert all(set(c["attributes"]) == {"name"} for c in doc["data"])
        for m in doc["included"]:
            assert m["attributes"] == expected_sparse(messages[m["id"]]["attributes"])
            d = m["attributes"]["definition"]
            shapes.add("no definition" if d is None else "no content" if d["content"] is None else "content")
    assert shapes == {"no definition", "no content", "content"}


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"include": "campaign-messages", "fields[campaign-message]": "subject"}, "fields[campaign-message]"),
        ({"fields[campaign-message]": "definition.content.sender"}, "fields[campaign-message]"),
        ({"include": "campaign-message"}, "include"),
        ({"include": "campaign-messages,messages"}, "include"),
    ],
)
def test_bad_includes_and_message_fieldsets_are_400(api, params, parameter):
    resp = api("/api/campaigns", filter="equals(messages.channel,'email')", **params)
    assert resp.status_code == 400, resp.text
    err = error(resp)
    assert err["code"] == "invalid"
    assert err["source"] == {"parameter": parameter}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_campaign_has_messages_of_its_channel_with_the_pinned_oddities(seed):
    account = generate_account(seed, events_per_metric=5, other_events_per_metric=1)
    messages = account.campaign_messages
    assert list(messages) == [c["id"] for c in account.campaigns]
    every = [m for ms in messages.values() for m in ms]
    ids = [m["id"] for m in every]
    assert len(set(ids)) == len(ids) and not set(ids) & {c["id"] for c in account.campaigns}
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    for c in account.campaigns:
        channel = account.campaign_channels[c["id"]]
        for m in messages[c["id"]]:
            assert m["type"] == "campaign-message" and set(m["attributes"]) <= MESSAGE_ATTRIBUTES
            assert m["relationships"]["campaign"]["data"] == {"type": "campaign", "id": c["id"]}
            definition = m["attributes"]["definition"]
            assert definition is None or definition["channel"] == channel
            for stamp in (m["attributes"]["created_at"], m["attributes"]["updated_at"]):
                assert stamp is None or parse_datetime(stamp) >= parse_datetime(c["attributes"]["created_at"])

    emails = [m["attributes"]["definition"] for c in account.email_campaigns() for m in messages[c["id"]]]
    contents = [d["content"] for d in emails if d and d["content"]]
    assert any(len(messages[c["id"]]) == 2 for c in account.email_campaigns())
    assert None in emails and any(d and d["content"] is None for d in emails)
    assert any(not x["subject"].isascii() for x in contents if x["subject"])
    assert any(x["preview_text"] == "" for x in contents) and any(x["from_label"] is None for x in contents)
    assert any(m["attributes"]["send_times"] is None for ms in messages.values() for m in ms)
    sms = [m for c in account.campaigns_for_channel("sms") for m in messages[c["id"]]]
    assert any("image" in m["relationships"] for m in sms) and any(
        m["attributes"]["definition"]["render_options"] is None for m in sms
    )
    push = [
        m["attributes"]["definition"] for c in account.campaigns_for_channel("mobile_push") for m in messages[c["id"]]
    ]
    assert {d["notification_type"] for d in push} == {"standard", "silent"}
