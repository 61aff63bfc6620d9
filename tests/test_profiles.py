"""`profiles` and `lists_and_segments_members`: opt-in, complete and exact, incremental, resumable, and never
printing a person's data."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tap_klaviyo.streams.profiles import PAGE
from tests.kit import (
    API_KEY,
    Answer,
    Misbehaving,
    assert_exact,
    assert_one_line_error,
    expected_members,
    expected_profiles,
    run_and_kill,
    run_tap,
    select,
    utc,
)

pytestmark = pytest.mark.e2e

PEOPLE = {"profiles", "lists_and_segments_members"}
MEMBER_KEY = ["list_id", "profile_id"]


def assert_members_exact(records: list[dict[str, Any]], expected: dict[tuple[str, str], list[dict]]) -> None:
    assert_exact(records, [r for rows in expected.values() for r in rows], MEMBER_KEY, "lists_and_segments_members")
    for _, group in expected:
        joined = [r["joined_group_at"] for r in records if r["list_id"] == group]
        assert joined == sorted(joined), f"{group}: members in joined_group_at order"


def partition_bookmarks(state: dict[str, Any]) -> dict[str, str]:
    partitions = state["bookmarks"]["lists_and_segments_members"]["partitions"]
    return {p["context"]["list_id"]: p["replication_key_value"] for p in partitions if "replication_key_value" in p}


@pytest.fixture(scope="module")
def account():
    return generate_account(seed=51, events_per_metric=20, profiles=2300, large_list=900)


def test_they_are_opt_in(account):
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        discovery = run_tap(config, "--discover")
        result = run_tap(config)
        paths = {r.path for r in fake.requests}
    entries = {e["tap_stream_id"]: e for e in json.loads(discovery.stdout)["streams"]}
    for stream in PEOPLE:
        (root,) = [m["metadata"] for m in entries[stream]["metadata"] if m["breadcrumb"] == []]
        assert root["selected-by-default"] is False, stream
    assert result.returncode == 0, result.stderr[-2000:]
    assert not PEOPLE & set(result.by_stream())
    assert not [p for p in paths if "profiles" in p], "a run without a catalog asks for no profiles"


def test_full_then_incremental_runs_are_exact(account):
    with FakeKlaviyo(account, api_key=API_KEY, page_size_max={"events": 200}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        catalog = select(run_tap(config, "--discover"), PEOPLE)
        first = run_tap(config, catalog=catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        assert_exact(first.records("profiles"), expected_profiles(account), ["id"], "profiles")
        updated = [r["updated"] for r in first.records("profiles")]
        assert updated == sorted(updated), "profiles come oldest `updated` first"
        assert_members_exact(first.records("lists_and_segments_members"), expected_members(account))
        state = first.states[-1]
        profiles_mark = state["bookmarks"]["profiles"]["replication_key_value"]
        assert profiles_mark == updated[-1]
        marks = partition_bookmarks(state)
        for (_, group), rows in expected_members(account).items():
            assert marks.get(group) == (rows[-1]["joined_group_at"] if rows else None), group

        # Between the runs: new profiles, edited ones, new members of a list.
        later = datetime(2026, 3, 1, tzinfo=UTC)
        new = account.add_profiles(7, at=later)
        edited = [r["id"] for r in first.records("profiles")[:5]]
        account.update_profiles(edited, at=later + timedelta(seconds=1))
        group = account.lists[0]["id"]
        account.add_members(group, new[:4], at=later + timedelta(seconds=2))
        assert [r for r in fake.requests if r.status != 200] == [], "every request of the full run is valid"
        fake.clear_requests()
        second = run_tap(config, catalog=catalog, state=state)
        assert second.returncode == 0, second.stderr[-2000:]
        requests = [r for r in fake.requests if r.status != 200]
    assert requests == [], "every request is valid for the fake"
    # Profiles: those changed since the bookmark, and those sharing its second (read again, never lost).
    want = [r for r in expected_profiles(account) if utc(r["updated"]) >= utc(profiles_mark)]
    assert {r["id"] for r in want} >= set(new) | set(edited) and any(r["updated"] == profiles_mark for r in want)
    assert_exact(second.records("profiles"), want, ["id"], "profiles")
    # Members: per list or segment, from its own bookmark on.
    expected = {
        key: [r for r in rows if key[1] not in marks or utc(r["joined_group_at"]) >= utc(marks[key[1]])]
        for key, rows in expected_members(account).items()
    }
    assert {r["profile_id"] for r in expected["list", group]} >= set(new[:4])
    assert_members_exact(second.records("lists_and_segments_members"), expected)


def test_a_killed_profiles_sync_resumes_losing_nothing(account):
    with FakeKlaviyo(account, api_key=API_KEY, latency=0.002) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        catalog = select(run_tap(config, "--discover"), {"profiles"})
        delivered, last_state = run_and_kill(config, 3, catalog=catalog, streams=["profiles"])
        assert last_state is not None
        resumed = run_tap(config, catalog=catalog, state=last_state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = expected_profiles(account)
    before = [r["id"] for r in delivered.get("profiles", [])]
    assert 0 < len(before) < len(expected), "the kill landed inside the stream"
    ids = before + [r["id"] for r in resumed.records("profiles")]
    assert set(ids) == {r["id"] for r in expected}
    # Re-sent: at most what followed the last STATE (a page), and what shares its bookmark's second.
    mark = last_state["bookmarks"]["profiles"]["replication_key_value"]
    same_second = sum(1 for r in expected if r["updated"] == mark)
    assert len(ids) - len(expected) <= PAGE - 1 + same_second


@pytest.mark.parametrize(
    ("scopes", "stream", "message"),
    [
        ({"lists:read", "segments:read"}, "profiles", "lacks the scope 'profiles:read' (for stream 'profiles')"),
        (
            {"lists:read", "segments:read"},
            "lists_and_segments_members",
            "lacks the scope 'profiles:read' (for stream 'lists_and_segments_members')",
        ),
        ({"profiles:read"}, "lists_and_segments_members", "lacks the scopes 'lists:read' (for stream 'lists_and_se"),
    ],
)
def test_a_missing_scope_is_one_line_for_the_stream_that_needs_it(account, scopes, stream, message):
    with FakeKlaviyo(account, api_key=API_KEY, scopes=scopes) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        catalog = select(run_tap(config, "--discover"), {stream})
        result = run_tap(config, catalog=catalog)
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo: error:")]
    assert result.returncode == 1 and len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_predictive_analytics_are_paced_under_their_lower_limits(account):
    with FakeKlaviyo(account, api_key=API_KEY, rate_limits=True) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "profiles_predictive_analytics": True}
        catalog = select(run_tap(config, "--discover"), {"profiles"})
        result = run_tap(config, catalog=catalog)
        requests = [r for r in fake.requests if r.path.rstrip("/") == "/api/profiles"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert_exact(result.records("profiles"), expected_profiles(account, predictive=True), ["id"], "profiles")
    # The fake throttles those requests at 10/s: more than that many, and none throttled.
    t0 = requests[0].started if requests else 0
    timeline = [(round(r.started - t0, 3), r.status, r.query.get("page[size]")) for r in requests]
    assert len(requests) > 10 and all(r.status == 200 for r in requests), f"no request throttled: {timeline}"
    assert {r.query["additional-fields[profile]"][0] for r in requests} == {"subscriptions,predictive_analytics"}


def test_no_log_line_prints_a_persons_data(tmp_path, account):
    log_config = tmp_path / "logging.json"
    root = {"level": "DEBUG", "handlers": ["err"]}
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
                "handlers": {"err": handler},
                "root": root,
            }
        )
    )
    env = {"TAP_KLAVIYO_LOGLEVEL": "DEBUG", "SINGER_SDK_LOG_CONFIG": str(log_config)}
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        catalog = select(run_tap(config, "--discover"), PEOPLE)
        result = run_tap(config, catalog=catalog, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DEBUG" in result.stderr and "/api/profiles" in result.stderr
    personal = set()
    for row in expected_profiles(account):
        personal |= {row[f] for f in ("email", "phone_number", "external_id", "last_name") if row.get(f)}
    leaked = sorted(value for value in personal if len(value) > 5 and value in result.stderr)
    assert leaked == [], f"{len(leaked)} profile values appear in the log"


def test_the_readme_stream_map_is_harmless_while_profiles_are_not_selected(account):
    # profiles are opt-in: the privacy map of docs/streams.md is set up before anyone selects them.
    stream_maps = {"profiles": {"phone_number": None, "email": "md5(email) if email else None"}}
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        result = run_tap({"api_key": API_KEY, "api_url": fake.url, "stream_maps": stream_maps})
    assert result.returncode == 0, result.stderr[-2000:]
    assert not result.records("profiles")
    assert result.records("opened_email") and result.records("flows")


def test_the_readme_stream_map_drops_and_hashes_personal_fields(account):
    stream_maps = {"profiles": {"phone_number": None, "email": "md5(email) if email else None"}}
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "stream_maps": stream_maps}
        catalog = select(run_tap(config, "--discover"), {"profiles"})
        result = run_tap(config, catalog=catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    by_id = {r["id"]: r for r in expected_profiles(account)}
    records = result.records("profiles")
    assert len(records) == len(by_id)
    for record in records:
        assert "phone_number" not in record
        email = by_id[record["id"]]["email"]
        assert record["email"] == (hashlib.md5(email.encode()).hexdigest() if email else None)


def members_catalog(config: dict[str, Any]) -> dict[str, Any]:
    return select(run_tap(config, "--discover"), {"lists_and_segments_members"})


@pytest.mark.parametrize("concurrency", [1, 16])
def test_a_list_deleted_during_the_run_is_skipped(concurrency):
    account = generate_account(seed=52, events_per_metric=20, profiles=400)
    gone = account.lists[3]["id"]

    def delete_on_first_read(path: str, answer: Answer) -> Answer:
        # Deleted after the run listed it, before its members were read: the fake answers that read 404.
        if path.startswith(f"/api/lists/{gone}/profiles") and any(g["id"] == gone for g in account.lists):
            account.delete("list", gone)
            return Answer(404, answer.headers, b'{"errors": [{"status": 404, "detail": "List not found."}]}')
        return answer

    with FakeKlaviyo(account, api_key=API_KEY) as fake, Misbehaving(fake.url, delete_on_first_read) as proxy:
        config = {"api_key": API_KEY, "api_url": proxy.url, "concurrency": concurrency}
        result = run_tap(config, catalog=members_catalog(config))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not any(g["id"] == gone for g in account.lists), "the list was deleted during the run"
    warnings = [line for line in result.stderr.splitlines() if "was deleted during the run" in line]
    assert len(warnings) == 1 and f"/api/lists/{gone}/profiles" in warnings[0], warnings
    assert_members_exact(result.records("lists_and_segments_members"), expected_members(account))


@pytest.mark.parametrize(("concurrency", "groups"), [(1, None), (16, None), (16, 1)])
def test_every_list_answering_404_stops_the_run(account, concurrency, groups):
    # A proxy at api_url that does not pass the members' paths on, answering in JSON:API as Klaviyo would (an HTML
    # answer stops the run at once: tests/test_network.py): every list would look deleted. An account with one list
    # and one segment stops as well, once both have answered.
    if groups is not None:
        account = generate_account(seed=53, lists=groups, segments=groups, events_per_metric=20, profiles=200)
    error = {"errors": [{"id": "e", "status": 404, "code": "not_found", "title": "Not found", "detail": "Not Found"}]}

    def not_routed(path: str, answer: Answer) -> Answer:
        if re.match(r"/api/(lists|segments)/[^/]+/profiles", path):
            return Answer(404, {"Content-Type": "application/vnd.api+json"}, json.dumps(error).encode())
        return answer

    with FakeKlaviyo(account, api_key=API_KEY) as fake, Misbehaving(fake.url, not_routed) as proxy:
        config = {"api_key": API_KEY, "api_url": proxy.url, "concurrency": concurrency}
        result = run_tap(config, catalog=members_catalog(config))
    # The lists' and the segments' members are asked for at once: either may be the 404 that tips it.
    assert_one_line_error(result, "answered 404, none with members (Klaviyo found no /api/", mid_sync=True)
    assert re.search(
        r"found no /api/(lists|segments)/\{id\}/profiles for stream 'lists_and_segments_members' \(404\): Not Found\)",
        result.stderr,
    ), result.stderr[-2000:]
    assert "Stream 'lists_and_segments_members': every list and segment read so far (" in result.stderr
    assert "check `api_url`" in result.stderr
