"""The state a run starts from: what the tap can use it uses (Meltano's wrapper, a whole STATE message, singer-io's
`since`, a bookmark without its replication key), what it cannot is refused in one line before the first request
with the state file left as it was, and a bookmark in the future is ignored with a warning."""

from __future__ import annotations

import datetime
import json
import subprocess
from typing import Any

import pytest

from tap_klaviyo.state import Keeps, review
from tests.kit import TapRun, clean_env, klaviyo_metric, run_tap, select, tap_argv, utc

STREAM = "opened_email"
MEMBERS = "lists_and_segments_members"
# An hour that falls among the fake account's Opened Email events.
MIDDLE = "2025-06-01T12:00:00+00:00"


def plain(value: Any, **more: Any) -> dict[str, Any]:
    return {"bookmarks": {STREAM: {"replication_key": "datetime", "replication_key_value": value, **more}}}


@pytest.fixture
def catalog(config):
    return select(run_tap(config, "--discover"), {STREAM})


def new_events(account, since: str) -> list[str]:
    """The ids of the Opened Email events a run from `since` should send."""
    metric = klaviyo_metric(account, "Opened Email")
    return sorted(
        e["id"] for e in account.events_for_metric(metric["id"]) if utc(e["attributes"]["datetime"]) >= utc(since)
    )


def log_lines(run: TapRun, level: str) -> list[str]:
    return [line for line in run.stderr.splitlines() if f"| {level}" in line and "state" in line]


def test_the_fake_has_events_on_both_sides_of_the_bookmark(account):
    metric = klaviyo_metric(account, "Opened Email")
    assert 0 < len(new_events(account, MIDDLE)) < len(account.events_for_metric(metric["id"])) / 2


USED = [
    ("Meltano's wrapper", {"singer_state": plain(MIDDLE)}, "INFO", "The state is Meltano's `singer_state`"),
    ("a STATE message", {"type": "STATE", "value": plain(MIDDLE)}, "INFO", "The state is a STATE message's `value`"),
    (
        "a STATE message in Meltano's wrapper",
        {"singer_state": {"type": "STATE", "value": plain(MIDDLE)}},
        "INFO",
        "The state is Meltano's `singer_state`, in a STATE message's `value`",
    ),
    (
        "singer-io's since",
        {"bookmarks": {STREAM: {"since": MIDDLE.replace("+00:00", "Z")}}},
        "INFO",
        f"The state's bookmark for stream '{STREAM}' is singer-io's `since` ('2025-06-01T12:00:00Z'): read as its "
        "`datetime`",
    ),
    (
        "no replication_key",
        {"bookmarks": {STREAM: {"replication_key_value": MIDDLE}}},
        "INFO",
        f"The state's bookmark for stream '{STREAM}' is a value without a replication_key",
    ),
    ("Klaviyo's space form", plain(MIDDLE.replace("T", " ")), None, None),
    ("old Singer's currently_syncing", {**plain(MIDDLE), "currently_syncing": STREAM}, None, None),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("state", "level", "said"), [u[1:] for u in USED], ids=[u[0] for u in USED])
def test_a_state_the_tap_can_use_is_used(account, config, catalog, state, level, said):
    text = json.dumps(state)
    result = run_tap(config, state=text, catalog=catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(r["id"] for r in result.records(STREAM)) == new_events(account, MIDDLE), "only what is new"
    if said:
        assert any(said in line for line in log_lines(result, level)), result.stderr[-3000:]
    assert not log_lines(result, "WARNING"), "nothing to warn about"
    # The tap writes the plain Singer state, in the stream's own form, whatever it was given.
    first = result.states[0]
    assert set(first) == {"bookmarks"}
    assert first["bookmarks"][STREAM]["replication_key"] == "datetime"
    assert utc(first["bookmarks"][STREAM]["replication_key_value"]) == utc(MIDDLE)
    assert "since" not in first["bookmarks"][STREAM]
    assert result.state_file_after == text, "the state file is left as it was"


@pytest.mark.e2e
def test_an_empty_state_imports_everything(account, config, catalog):
    for state in ("{}", '{"bookmarks": {}}', '{"currently_syncing": null}'):
        result = run_tap(config, state=state, catalog=catalog)
        assert result.returncode == 0, result.stderr[-2000:]
        assert sorted(r["id"] for r in result.records(STREAM)) == new_events(account, "2000-01-01T00:00:00Z"), state
        assert not log_lines(result, "WARNING"), state


@pytest.mark.e2e
def test_meltano_hands_its_state_over_a_pipe(account, config, catalog, tmp_path):
    """The state read from a pipe (read once, by the SDK) is unwrapped and checked as a file's is."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))

    def run(state: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        argv = tap_argv("--config", "config.json", "--catalog", "catalog.json", "--state", "/dev/stdin")
        return subprocess.run(
            argv, input=json.dumps(state), capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120
        )

    good = run({"singer_state": plain(MIDDLE)})
    assert good.returncode == 0, good.stderr[-2000:]
    records = [json.loads(line) for line in good.stdout.splitlines()]
    assert sorted(m["record"]["id"] for m in records if m["type"] == "RECORD") == new_events(account, MIDDLE)
    assert "The state is Meltano's `singer_state`" in good.stderr
    bad = run({"singer_state": {"bookmarks": {STREAM: ["not", "an", "object"]}}})
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and not bad.stdout
    assert bad.stderr.strip().splitlines()[-1] == (
        "tap-klaviyo: error: The state must map each stream name to an object under `bookmarks` "
        "(in Meltano's `singer_state`)."
    )


@pytest.mark.e2e
def test_a_bookmark_in_the_future_is_ignored_with_a_warning(account, config, catalog):
    result = run_tap(config, state=plain("2100-01-01T00:00:00Z"), catalog=catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    (warning,) = log_lines(result, "WARNING")
    assert f"stream '{STREAM}' is '2100-01-01T00:00:00Z', in the future" in warning
    assert "read as if it had none" in warning
    assert sorted(r["id"] for r in result.records(STREAM)) == new_events(account, "2000-01-01T00:00:00Z")
    final = result.states[-1]["bookmarks"][STREAM]["replication_key_value"]
    assert utc(final) <= datetime.datetime.now(datetime.UTC), "the next run goes on from a real bookmark"


REFUSED = [
    (
        "another tap's state",
        {"bookmarks": {"open": {"since": "2024-01-01T00:00:00Z"}, "receive": {"since": "2024-01-01T00:00:00Z"}}},
        "The state holds bookmarks for open, receive but none for tap-klaviyo's streams",
    ),
    (
        "another tap's state in Meltano's wrapper",
        {"singer_state": {"bookmarks": {"open": {"since": "2024-01-01T00:00:00Z"}}}},
        "The state holds bookmarks for open but none for tap-klaviyo's streams",
    ),
    (
        "no bookmarks but something else",
        {"state": plain(MIDDLE)},
        "The state holds the key(s) state but none for tap-klaviyo's streams",
    ),
    (
        "another replication key",
        {"bookmarks": {STREAM: {"replication_key": "timestamp", "replication_key_value": MIDDLE}}},
        f"The state's bookmark for stream '{STREAM}' is on `timestamp` ('{MIDDLE}'), but the stream's replication "
        "key is `datetime`",
    ),
    (
        "a bookmark of unknown keys",
        {"bookmarks": {STREAM: {"last_event": MIDDLE}}},
        f"The state's bookmark for stream '{STREAM}' holds last_event but no `replication_key_value`",
    ),
    ("a number", plain(1717243200), f"The state's bookmark for stream '{STREAM}' is not a date-time: 1717243200"),
    ("since, not a time", {"bookmarks": {STREAM: {"since": "last week"}}}, "is not a date-time: 'last week'"),
    (
        "year 1",
        plain("0001-01-01T00:00:00Z"),
        f"The state's bookmark for stream '{STREAM}' is '0001-01-01T00:00:00Z', before 2000-01-01",
    ),
    (
        "members: a partition's bookmark not a time",
        {
            "bookmarks": {
                MEMBERS: {
                    "partitions": [
                        {"context": {"list_id": "Xy12ab", "type": "list"}, "replication_key_value": {"at": "noon"}}
                    ]
                }
            }
        },
        f"The state's bookmark for stream '{MEMBERS}' (list_id Xy12ab, type list) is not a date-time: {{'at': 'noon'}}",
    ),
    (
        "members: a bookmark for the whole stream",
        {"bookmarks": {MEMBERS: {"replication_key": "joined_group_at", "replication_key_value": MIDDLE}}},
        f"The state's bookmark for stream '{MEMBERS}' is one for the whole stream ('{MIDDLE}')",
    ),
    (
        "members: a partition without its context",
        {"bookmarks": {MEMBERS: {"partitions": [{"replication_key_value": MIDDLE}]}}},
        f"must list stream '{MEMBERS}'s `partitions` as objects, each with a `context` object",
    ),
    (
        "members: a partition twice",
        {"bookmarks": {MEMBERS: {"partitions": [{"context": {"list_id": "Xy12ab", "type": "list"}}] * 2}}},
        f"lists the partition list_id Xy12ab, type list of stream '{MEMBERS}' twice",
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("state", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_state_the_tap_cannot_use_is_refused_in_one_line(fake, config, state, message):
    text = json.dumps(state, indent=1)
    result = run_tap(config, state=text)
    assert_refused(result, message)
    assert result.state_file_after == text, "the state file is left as it was, byte for byte"
    assert not fake.requests, "the state is checked before the first request"


def assert_refused(result: TapRun, message: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("tap-klaviyo: error: "), lines[-1]
    assert message in lines[-1], lines[-1]
    assert sum(line.startswith("tap-klaviyo: error:") for line in lines) == 1
    assert not result.messages, "nothing is written, neither RECORD nor STATE"


@pytest.mark.e2e
def test_a_year_1_bookmark_with_a_lookback_is_one_line_not_an_overflow(config):
    result = run_tap({**config, "lookback_minutes": 60}, state=plain("0001-01-01T00:00:00+00:00"))
    assert_refused(result, "before 2000-01-01")


@pytest.mark.e2e
@pytest.mark.parametrize("minutes", [43201, 10**12])
def test_lookback_is_at_most_30_days(fake, config, minutes):
    result = run_tap({**config, "lookback_minutes": minutes}, state=plain(MIDDLE))
    assert_refused(result, f"Setting `lookback_minutes` must be at most 43200 (30 days), not {minutes}")
    assert not fake.requests


@pytest.mark.e2e
def test_members_partitions_are_read_from_their_own_bookmarks(account, config):
    """A partition's bookmark without its replication key is used too; one in the future is ignored."""
    groups = [g["id"] for g in account.lists if len(account.members(g["id"])) > 4][:2]
    middle = {g: account.members(g)[len(account.members(g)) // 2][1] for g in groups}
    catalog = select(run_tap(config, "--discover"), {MEMBERS})
    partitions = [{"context": {"list_id": groups[0], "type": "list"}, "replication_key_value": middle[groups[0]]}]
    partitions.append(
        {
            "context": {"list_id": groups[1], "type": "list"},
            "replication_key": "joined_group_at",
            "replication_key_value": "2100-01-01T00:00:00+00:00",
        }
    )
    result = run_tap(config, state={"bookmarks": {MEMBERS: {"partitions": partitions}}}, catalog=catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = result.records(MEMBERS)
    first = {r["profile_id"] for r in rows if r["list_id"] == groups[0]}
    assert first == {p for p, joined in account.members(groups[0]) if utc(joined) >= utc(middle[groups[0]])}
    assert len(first) < len(account.members(groups[0])), "read from the partition's bookmark"
    assert {r["profile_id"] for r in rows if r["list_id"] == groups[1]} == {p for p, _ in account.members(groups[1])}
    (warning,) = log_lines(result, "WARNING")
    assert (
        f"stream '{MEMBERS}' (list_id {groups[1]}, type list) is '2100-01-01T00:00:00+00:00', in the future" in warning
    )


NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("2000-01-01T00:00:00Z", True),
        ("2026-06-01T23:00:00+00:00", True),  # Klaviyo dates some events a little ahead: not a wrong bookmark
        ("2026-06-02T01:00:00+00:00", False),
    ],
)
def test_the_limits_of_a_bookmark(value, kept):
    state = plain(value)
    found = review(state, (), {STREAM: Keeps("datetime")}, NOW)
    assert not found.problems
    assert ("replication_key_value" in state["bookmarks"][STREAM]) is kept
    assert bool(found.warnings) is not kept


def test_just_before_2000_is_refused():
    found = review(plain("1999-12-31T23:59:59Z"), (), {STREAM: Keeps("datetime")}, NOW)
    assert found.error() and "before 2000-01-01" in found.error()


def test_many_problems_are_still_one_line():
    state = {"bookmarks": {f"s{i}": {"replication_key": "datetime", "replication_key_value": "?"} for i in range(9)}}
    found = review(state, (), {f"s{i}": Keeps("datetime") for i in range(9)}, NOW)
    error = found.error()
    assert error and "\n" not in error and error.count("is not a date-time") == 3 and "and 6 more" in error


def test_keys_beside_the_bookmarks_are_named_and_ignored():
    state = plain(MIDDLE)
    found = review(state, ("singer_state",), {STREAM: Keeps("datetime")}, NOW)
    assert not found.problems and not found.notes
    assert found.warnings == ["The state's key(s) singer_state are not Singer's: ignored."]
    assert state == plain(MIDDLE), "the bookmark is used as it is"
