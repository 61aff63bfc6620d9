"""`emit_activate_version_messages`: the streams read whole are each followed by ACTIVATE_VERSION, after their last
record, so the destination keeps exactly Klaviyo's current rows; event streams stay incremental."""

from __future__ import annotations

from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    MIRRORED,
    STREAM_KEYS,
    Misbehaving,
    TapRun,
    assert_exact,
    bookmark,
    delete_and_change,
    down_past_the_first_page,
    expected_streams,
    run_tap,
    select,
    utc,
)

pytestmark = pytest.mark.e2e

ON = {"emit_activate_version_messages": True}


def activations(run: TapRun) -> dict[str, list[int]]:
    """Each stream's ACTIVATE_VERSION messages: their versions."""
    found: dict[str, list[int]] = {}
    for message in run.messages:
        if message["type"] == "ACTIVATE_VERSION":
            found.setdefault(message["stream"], []).append(message["version"])
    return found


def assert_mirrored(run: TapRun, expected: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Each mirrored stream is activated once, after its last record, at the version all its records carry, and
    those records are exactly the fake's current data. Returns the versions."""
    assert run.returncode == 0, run.stderr[-2000:]
    versions = {}
    for stream in MIRRORED:
        (version,) = activations(run)[stream]
        at = next(i for i, m in enumerate(run.messages) if m["type"] == "ACTIVATE_VERSION" and m["stream"] == stream)
        records = [i for i, m in enumerate(run.messages) if m["type"] == "RECORD" and m["stream"] == stream]
        assert records and max(records) < at, f"{stream}: ACTIVATE_VERSION comes after the stream's last record"
        assert {run.messages[i].get("version") for i in records} == {version}, stream
        assert_exact(run.records(stream), expected[stream], STREAM_KEYS[stream], stream)
        versions[stream] = version
    assert not set(activations(run)) & set(EVENT_METRICS), "event streams stay incremental"
    return versions


@pytest.fixture
def account():
    return generate_account(seed=61, events_per_metric=60)


def test_run_two_mirrors_deletions_and_audience_changes(account):
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, **ON}
        first = run_tap(config)
        before = assert_mirrored(first, expected_streams(account))
        state = first.states[-1]
        delete_and_change(account)
        second = run_tap(config, state=state)
    expected = expected_streams(account)
    after = assert_mirrored(second, expected)
    assert all(after[s] >= before[s] for s in MIRRORED)
    # Events: incremental, only what shares each bookmark's second comes again.
    for stream in EVENT_METRICS:
        mark = bookmark(state, stream)
        assert mark and mark == bookmark(second.states[-1], stream)
        assert_exact(second.records(stream), [r for r in expected[stream] if r["datetime"] == mark], ["id"], stream)


@pytest.mark.parametrize("with_actions", [False, True], ids=["flows-alone", "with-flow-actions"])
def test_a_mirrored_stream_that_fails_part_way_is_not_activated(with_actions):
    # Flows take three pages; Klaviyo fails every flows page past the first and the tap, told to retry nothing,
    # stops on the second.
    account = generate_account(seed=62, events_per_metric=20, flows=120)
    actions = {"flow_actions", "flow_messages"}
    down = down_past_the_first_page("/api/flows")
    with FakeKlaviyo(account, api_key=API_KEY) as fake, Misbehaving(fake.url, down) as proxy:
        config = {"api_key": API_KEY, "api_url": proxy.url, "max_retries": 0, **ON}
        streams = DEFAULT_STREAMS if with_actions else DEFAULT_STREAMS - actions
        result = run_tap(config, catalog=select(run_tap(config, "--discover"), streams))
    assert result.returncode == 1 and "/api/flows" in result.stderr, result.stderr[-2000:]
    if with_actions:
        # flow_actions, synced first, reads the flows walk whole before it writes a record.
        assert not any(result.records(s) for s in ("flows", *actions))
    else:
        assert 0 < len(result.records("flows")) < len(account.flows), "the run stopped inside flows"
    assert not {"flows", *actions} & set(activations(result)), "no version is activated for a stream not finished"
    # Streams are synced in name order: those before flows finished and were activated.
    assert {s for s in MIRRORED - actions if s < "flows"} <= set(activations(result))


def test_state_stays_valid_when_the_mirror_is_switched_on_and_off(account):
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        off = run_tap(config)
        assert off.returncode == 0, off.stderr[-2000:]
        campaigns_mark = bookmark(off.states[-1], "email_campaigns")
        assert campaigns_mark
        on = run_tap({**config, **ON}, state=off.states[-1])
        assert_mirrored(on, expected_streams(account))
        # The mirror reads campaigns whole and leaves their bookmark as it was; event bookmarks stay where they are.
        assert bookmark(on.states[-1], "email_campaigns") == campaigns_mark
        for stream in EVENT_METRICS:
            assert bookmark(on.states[-1], stream) == bookmark(off.states[-1], stream), stream
        off_again = run_tap(config, state=on.states[-1])
    assert off_again.returncode == 0, off_again.stderr[-2000:]
    assert not activations(off_again)
    changed = [r for r in expected_streams(account)["email_campaigns"] if utc(r["updated_at"]) >= utc(campaigns_mark)]
    assert_exact(off_again.records("email_campaigns"), changed, ["id"], "email_campaigns")


def test_members_are_mirrored_when_the_catalog_reads_them_whole():
    account = generate_account(seed=64, events_per_metric=10)
    stream = "lists_and_segments_members"
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, **ON}
        catalog = select(run_tap(config, "--discover"), {stream}, method="FULL_TABLE")
        first = run_tap(config, catalog=catalog)
        group = account.lists[0]["id"]
        leaving = [profile for profile, _ in account.members(group)[:3]]
        account.remove_members(group, leaving)
        second = run_tap(config, catalog=catalog, state=first.states[-1])
    for run in (first, second):
        assert run.returncode == 0, run.stderr[-2000:]
        (version,) = activations(run)[stream]
        assert {m.get("version") for m in run.messages if m["type"] == "RECORD"} == {version}
    rows = second.records(stream)
    assert not {(group, p) for p in leaving} & {(r["list_id"], r["profile_id"]) for r in rows}
    expected = [
        {"list_id": g["id"], "profile_id": p, "type": kind, "joined_group_at": at}
        for kind, groups in (("list", account.lists), ("segment", account.segments))
        for g in groups
        for p, at in account.members(g["id"])
    ]
    assert_exact(rows, expected, STREAM_KEYS[stream], stream)
