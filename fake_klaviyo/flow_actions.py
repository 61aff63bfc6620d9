"""Generated flow actions: each flow's steps, shaped as the spec's FlowActionEncodedResponseObjectResource, of the
spec's kinds: delays, splits, profile and list updates, send actions carrying their whole message (email, SMS,
mobile push, WhatsApp, webhook, internal alert), and A/B tests and content experiments of a send action with a
variation.

They are drawn after the rest of the account, from a generator of their own, so that each seed's other data is
what it was before flow actions were generated. The n-th flow's actions start at the n-th kind of KINDS, so that
every account of the default size holds each kind, and the oddities are pinned to flows by rank.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .clock import GENERATOR_NOW, iso
from .entities import consent_condition
from .ids import Ids
from .samples import MEDIA_URLS, PREVIEW_TEXTS, PUSH_TEXTS, SENDERS, SMS_BODIES, SUBJECTS, URLS
from .spec import Resource

KINDS = (
    "send-email",
    "time-delay",
    "send-sms",
    "send-mobile-push",
    "conditional-split",
    "send-webhook",
    "ab-test",
    "send-whatsapp",
    "trigger-split",
    "send-internal-alert",
    "update-profile",
    "content-experiment",
    "list-update",
    "back-in-stock-delay",
    "target-date",
    "countdown-delay",
    "code",
    "multi-branch-split",
    "action-output-split",
    "internal-service",
)
# Flows by rank: one without actions, and one whose first send action is a draft whose message has no id yet.
_NO_ACTIONS, _MESSAGE_WITHOUT_ID = 2, 3
_STATUSES = ["live", "live", "live", "draft", "manual", "disabled"]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

Definition = dict[str, Any]


@dataclass(frozen=True)
class FlowMessage:
    """A message a flow sends, for attributions to name: its flow, its id, and the variation tested against it."""

    flow_id: str
    message_id: str
    variation_id: str | None = None


def generate_flow_actions(rng: random.Random, ids: Ids, flows: list[Resource]) -> dict[str, list[Resource]]:
    """Each flow's actions by flow id, in the order the flow runs them."""
    out: dict[str, list[Resource]] = {}
    for n, flow in enumerate(flows):
        count = 0 if n == _NO_ACTIONS else rng.randint(1, 5)
        kinds = [KINDS[(n + k) % len(KINDS)] for k in range(count)]
        action_ids = [_numeric(rng, ids) for _ in kinds]
        created = datetime.fromisoformat(flow["attributes"]["created"])
        actions = []
        for k, kind in enumerate(kinds):
            maker = _Maker(rng, ids, flow, no_message_id=n == _MESSAGE_WITHOUT_ID and k == 0)
            definition = maker.definition(kind, action_ids[k], action_ids[k + 1] if k + 1 < len(kinds) else None)
            made = created + timedelta(seconds=60 * k + rng.randrange(60))
            edited = made + timedelta(seconds=rng.randrange(0, max(1, int((GENERATOR_NOW - made).total_seconds()))))
            actions.append(
                {
                    "type": "flow-action",
                    "id": action_ids[k],
                    "attributes": {
                        "created": iso(made),
                        "updated": None if k == 1 and n % 7 == 0 else iso(edited),
                        "definition": definition,
                    },
                    "relationships": {"flow": {"data": {"type": "flow", "id": flow["id"]}}},
                }
            )
        out[flow["id"]] = actions
    return out


def flow_messages(actions: dict[str, list[Resource]]) -> list[FlowMessage]:
    """The messages the flows send that have an id, as attributions name them (a tested message alone, and once
    per variation)."""
    out = []
    for flow_id, held in actions.items():
        for action in held:
            definition = action["attributes"]["definition"]
            data = definition.get("data") or {}
            if definition["type"].startswith("send-") and (data.get("message") or {}).get("id"):
                out.append(FlowMessage(flow_id, data["message"]["id"]))
            elif "main_action" in data:
                main = data["main_action"]["data"]["message"]["id"]
                out.append(FlowMessage(flow_id, main))
                for variation in data["current_experiment"]["variations"]:
                    out.append(FlowMessage(flow_id, main, variation["data"]["message"]["id"]))
    return out


def _numeric(rng: random.Random, ids: Ids) -> str:
    # Klaviyo's flow action ids are numeric strings.
    while True:
        value = str(rng.randrange(10**7, 10**9))
        if value not in ids.seen:
            ids.seen.add(value)
            return value


class _Maker:
    """The definitions of one flow's actions."""

    def __init__(self, rng: random.Random, ids: Ids, flow: Resource, *, no_message_id: bool) -> None:
        self.rng, self.ids, self.flow, self.no_message_id = rng, ids, flow, no_message_id

    def definition(self, kind: str, action_id: str, next_id: str | None) -> Definition:
        rng = self.rng
        links: dict[str, Any] = {"next": next_id}
        data: Any
        if kind.startswith("send-"):
            return self.send(kind, action_id, next_id, rng.choice(_STATUSES))
        if kind == "time-delay":
            data = {
                "unit": rng.choice(["days", "hours", "minutes"]),
                "value": rng.randint(1, 30),
                "secondary_value": rng.choice([None, 12]),
                "timezone": rng.choice(["profile", "America/Toronto"]),
                "delay_until_time": rng.choice([None, "09:30:00"]),
                "delay_until_weekdays": rng.choice([None, _WEEKDAYS[:5]]),
            }
        elif kind in ("conditional-split", "trigger-split", "action-output-split"):
            links = {"next_if_true": next_id, "next_if_false": None}
            data = self.split(kind)
        elif kind == "update-profile":
            data = {
                "status": rng.choice(_STATUSES),
                "profile_operations": [
                    {
                        "operator": "update",
                        "property_type": "string",
                        "property_key": "Étape 🎯",
                        "property_value": "B",
                    },
                    {"operator": "delete", "property_key": "Ancienne clé"},
                ],
            }
        elif kind == "list-update":
            data = {"name": "Ajouter à la liste", "on_execution": True, "list_id": self.ids.short(), "status": "live"}
        elif kind in ("ab-test", "content-experiment"):
            data = self.experiment(kind, action_id)
        elif kind == "target-date":
            data = {"timezone": "profile", "target_time": "08:00:00", "target_days": ["friday"]}
        elif kind == "countdown-delay":
            data = {"unit": "weeks", "value": 2, "timezone": "profile", "delay_until_time": None}
        elif kind == "multi-branch-split":
            links = None
            data = {
                "name": "Par pays 🌍",
                "branches": [
                    {
                        "branch_id": "1",
                        "order": 0,
                        "is_else": False,
                        "branch_filter": {"condition_groups": [{"conditions": [consent_condition()]}]},
                        "links": {"next": next_id},
                    },
                    {"branch_id": "2", "order": 1, "is_else": True, "branch_filter": None, "links": {"next": None}},
                ],
            }
        elif kind == "internal-service":
            data = {
                "status": "live",
                "service_configuration": {
                    "service_method_type": "track-event",
                    "event_key": "Étape",
                    "event_payload": {"n": 1},
                },
            }
        elif kind == "code":
            data = None
        else:
            assert kind == "back-in-stock-delay", kind
            return {"id": action_id, "type": kind, "links": links}
        return {"id": action_id, "type": kind, "links": links, "data": data}

    def split(self, kind: str) -> dict[str, Any]:
        if kind == "conditional-split":
            return {"profile_filter": {"condition_groups": [{"conditions": [consent_condition()]}]}}
        if kind == "trigger-split":
            condition = {
                "type": "metric-property",
                "metric_id": self.ids.short(),
                "field": "$value",
                "filter": {"type": "numeric", "operator": "greater-than", "value": 50},
            }
            return {
                "trigger_filter": {"condition_groups": [{"conditions": [condition]}]},
                "trigger_id": self.ids.short(),
                "trigger_type": "metric",
                "trigger_subtype": None,
            }
        output = {
            "type": "action-output",
            "output_config_id": 7,
            "field": "status",
            "filter": {"type": "string", "operator": "equals", "value": "ok"},
        }
        return {"action_output_filter": {"condition_groups": [{"conditions": [output]}]}}

    def experiment(self, kind: str, action_id: str) -> dict[str, Any]:
        send = "send-email" if kind == "ab-test" else "send-mobile-push"
        main = self.send(send, action_id, None, "live")
        variation = self.send(send, _numeric(self.rng, self.ids), None, "live")
        experiment: dict[str, Any] = {
            "id": self.ids.short(),
            "name": "Test A/B ✉️",
            "variations": [variation],
            "allocations": {main["data"]["message"]["id"]: 50, variation["data"]["message"]["id"]: 50},
            "started": iso(GENERATOR_NOW - timedelta(days=self.rng.randint(1, 90))),
            "winner_metric": "unique-opens" if kind == "ab-test" else "open-rate",
        }
        if kind == "ab-test":
            experiment["automatic_winner_selection_settings"] = {
                "enabled": True,
                "automatic_end_date": None,
                "automatic_end_statistical_certainty": True,
            }
        return {"status": "live", "experiment_status": "live", "main_action": main, "current_experiment": experiment}

    def send(self, kind: str, action_id: str, next_id: str | None, status: str) -> Definition:
        rng = self.rng
        name = f"{self.flow['attributes']['name']}: {kind[5:]} {rng.randint(1, 5)}"
        message: dict[str, Any]
        if kind == "send-email":
            from_email, from_label = rng.choice(SENDERS)
            message = {
                "from_email": from_email,
                "from_label": from_label,
                "reply_to_email": rng.choice([None, "service+réponse@eclair.example"]),
                "cc_email": None,
                "bcc_email": rng.choice([None, "archive@eclair.example"]),
                "subject_line": rng.choice(SUBJECTS),
                "preview_text": rng.choice(PREVIEW_TEXTS),
                "template_id": self.ids.short(),
                "smart_sending_enabled": rng.random() < 0.8,
                "transactional": False,
                "add_tracking_params": rng.random() < 0.5,
                "custom_tracking_params": rng.choice([None, [{"param": "utm_source", "value": "klaviyo ✉️"}]]),
                "additional_filters": rng.choice([None, {"condition_groups": [{"conditions": [consent_condition()]}]}]),
            }
        elif kind == "send-sms":
            message = {
                "body": rng.choice(SMS_BODIES),
                "image_id": rng.choice([None, str(rng.randrange(10**7, 10**9))]),
                "dynamic_image": None,
                "message_hierarchy": None,
                "shorten_links": True,
                "include_contact_card": False,
                "add_org_prefix": rng.random() < 0.5,
                "add_info_link": False,
                "add_opt_out_language": True,
                "smart_sending_enabled": True,
                "sms_quiet_hours_enabled": rng.random() < 0.5,
                "transactional": False,
                "add_tracking_params": False,
                "custom_tracking_params": None,
                "template_id": None,
                "additional_filters": None,
            }
        elif kind == "send-mobile-push":
            title, body = rng.choice(PUSH_TEXTS)
            message = {
                "title": title,
                "body": body or "…",
                "sound": rng.random() < 0.5,
                "badge": True,
                "badge_options": {"badge_config": "set_count", "value": "3"},
                "image_id": None,
                "dynamic_image": rng.choice([None, MEDIA_URLS[0]]),
                "video_asset_id": None,
                "on_open": "open_url",
                "ios_link": None,
                "android_link": None,
                "web_url": URLS[2],
                "push_type": "standard",
                "kv_pairs": rng.choice([None, {"écran": "soldes"}]),
                "conversion_metric_id": None,
                "smart_sending_enabled": True,
                "additional_filters": None,
                "action_buttons": [{"label": "Voir 👀", "action_type": "open_url", "position": 0, "url": URLS[0]}],
            }
        elif kind == "send-whatsapp":
            message = {
                "vendor_id": str(rng.randrange(10**12, 10**13)),
                "smart_sending_enabled": True,
                "transactional": False,
                "add_tracking_params": True,
                "additional_filters": None,
            }
        elif kind == "send-webhook":
            message = {
                "url": "https://hooks.eclair.example/klaviyo?x=1&y=é",
                "headers": {"X-Boutique": "Éclair", "Authorization": "Bearer ***"},
                "body": '{"profile": "{{ person.id }}", "note": "\\"quoted\\""}',
            }
        else:
            assert kind == "send-internal-alert", kind
            from_email, from_label = rng.choice(SENDERS)
            message = {
                "from_email": from_email,
                "from_label": from_label,
                "to_emails": ["equipe@eclair.example", "ops@eclair.example"],
                "subject_line": "Nouvelle commande 📦",
                "template_id": None,
            }
        message["name"] = name
        message["id"] = None if self.no_message_id else self.ids.short()
        if self.no_message_id:
            status, self.no_message_id = "draft", False
        return {
            "id": action_id,
            "type": kind,
            "links": {"next": next_id},
            "data": {"message": message, "status": status},
        }
