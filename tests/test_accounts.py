"""`add_account_id`: every record of every stream names its account, and every key includes it."""

from __future__ import annotations

import json

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from fake_klaviyo.spec import ALL_READ_SCOPES
from tests.kit import API_KEY, STREAM_KEYS, run_tap, select
from tests.reports_kit import REPORT_STREAMS

pytestmark = pytest.mark.e2e

ON = {"add_account_id": True}
EXTRA = {"event_metrics": ["Placed Order"]}


@pytest.fixture(scope="module")
def account():
    return generate_account(seed=71, events_per_metric=40, profiles=400)


def every_stream(config: dict) -> dict:
    """The discovered catalog with every stream selected, the opt-in ones too, but the report streams (which ask for
    the account's timezone whatever the setting: tests/test_reports.py reads them with `add_account_id`)."""
    discovery = run_tap(config, "--discover")
    assert discovery.returncode == 0, discovery.stderr[-2000:]
    catalog = json.loads(discovery.stdout)
    return select(discovery, {entry["tap_stream_id"] for entry in catalog["streams"]} - REPORT_STREAMS)


def test_every_record_and_key_carries_the_account_id(account):
    account_id = account.account["id"]
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, **EXTRA}
        catalog = every_stream(config)
        off = run_tap(config, catalog=catalog)
        on = run_tap({**config, **ON}, catalog=every_stream({**config, **ON}))
        accounts_requests = [r for r in fake.requests if r.path == "/api/accounts"]
    assert off.returncode == 0 and on.returncode == 0, on.stderr[-2000:]
    assert len(accounts_requests) == 1, "the account is asked for once, by the run with the setting on"
    streams = set(STREAM_KEYS) - REPORT_STREAMS | {"placed_order"}
    assert set(on.by_stream()) == set(off.by_stream()) == streams
    for stream in sorted(streams):
        records = on.records(stream)
        assert records and {r["account_id"] for r in records} == {account_id}, stream
        # The same records as without the setting, each with the account's id added.
        assert [{k: v for k, v in r.items() if k != "account_id"} for r in records] == off.records(stream), stream
        assert not any("account_id" in r for r in off.records(stream)), stream
        (schema,) = [m for m in on.messages if m["type"] == "SCHEMA" and m["stream"] == stream]
        assert schema["key_properties"][0] == "account_id" and schema["schema"]["properties"]["account_id"]
    # State is the same either way.
    assert on.states[-1]["bookmarks"].keys() == off.states[-1]["bookmarks"].keys()
    for stream, bookmark in off.states[-1]["bookmarks"].items():
        assert on.states[-1]["bookmarks"][stream].get("replication_key_value") == bookmark.get("replication_key_value")


def test_discovery_shows_the_account_column_only_with_the_setting():
    config = {"api_key": API_KEY, "api_url": "http://127.0.0.1:9"}
    for settings, keys in (({}, STREAM_KEYS), (ON, {s: ["account_id", *k] for s, k in STREAM_KEYS.items()})):
        result = run_tap({**config, **settings}, "--discover")
        assert result.returncode == 0, result.stderr[-2000:]
        entries = json.loads(result.stdout)["streams"]
        assert {e["tap_stream_id"]: e["key_properties"] for e in entries} == keys
        assert all(("account_id" in e["schema"]["properties"]) == bool(settings) for e in entries)


def test_a_key_without_accounts_read_stops_before_any_record(account):
    with FakeKlaviyo(account, api_key=API_KEY, scopes=ALL_READ_SCOPES - {"accounts:read"}) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url, **ON})
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo: error:")]
    assert result.returncode == 1 and len(errors) == 1 and "'accounts:read'" in errors[0], result.stderr[-2000:]
    assert not [m for m in result.messages if m["type"] == "RECORD"]
