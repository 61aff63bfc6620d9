"""The committed schemas are what the generator makes from Klaviyo's OpenAPI spec."""

from __future__ import annotations

import json

from tap_klaviyo.schemas import generate


def test_committed_schemas_match_the_spec():
    built = generate.build(json.loads(generate.DEFAULT_SPEC.read_text(encoding="utf-8")))
    for name, schema in built.items():
        committed = (generate.HERE / f"{name}.json").read_text(encoding="utf-8")
        assert committed == generate.render(schema), f"{name}.json is stale: run python -m tap_klaviyo.schemas.generate"


def test_event_schema_types_suit_typed_targets():
    events = json.loads((generate.HERE / "email_events.json").read_text(encoding="utf-8"))["properties"]
    assert events["id"]["type"] == "string"
    assert events["datetime"] == {**events["datetime"], "type": ["string", "null"], "format": "date-time"}
    assert events["timestamp"]["type"] == ["integer", "null"]
    assert events["event_properties"]["type"] == ["object", "null"]
    assert {"metric_id", "profile_id"} <= set(events)
