"""The stream schemas, built from Klaviyo's OpenAPI spec as a run starts: one for every row, typed for targets."""

from __future__ import annotations

import pytest

from tap_klaviyo.schemas.from_spec import stream_schemas
from tap_klaviyo.streams.table import STREAMS, stream_rows
from tap_klaviyo.tap import TapKlaviyo


@pytest.fixture(scope="module")
def schemas():
    return stream_schemas()


def test_every_row_has_a_schema_with_its_key_and_cursor(schemas):
    rows = stream_rows({"event_metrics": ["Placed Order"]})
    assert {row.schema for row in rows} == set(schemas), "one schema per schema name the rows use, no other"
    for row in rows:
        properties = schemas[row.schema]["properties"]
        assert set(row.primary_keys) <= set(properties), row.name
        if row.replication_key:
            assert properties[row.replication_key].get("format") == "date-time", row.name


def test_event_schema_types_suit_typed_targets(schemas):
    (row,) = [row for row in STREAMS if row.name == "opened_email"]
    events = schemas[row.schema]["properties"]
    assert events["id"]["type"] == "string"
    assert events["datetime"] == {**events["datetime"], "type": ["string", "null"], "format": "date-time"}
    assert events["timestamp"]["type"] == ["integer", "null"]
    assert events["event_properties"]["type"] == ["object", "null"]
    assert {"metric_id", "profile_id"} <= set(events)


def test_streams_of_one_schema_each_adjust_their_own_copy():
    tap = TapKlaviyo(config={"api_key": "pk_test", "add_account_id": True}, parse_env_config=False)
    opened, clicked = tap.streams["opened_email"], tap.streams["clicked_email"]
    assert opened.schema is not clicked.schema
    firsts = [next(iter(stream.schema["properties"])) for stream in (opened, clicked)]
    assert firsts == ["account_id", "account_id"]
    assert "account_id" not in tap.run.schemas["email_events"]["properties"], "the run's own schemas stay as built"
