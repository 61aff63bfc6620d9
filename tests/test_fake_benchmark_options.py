"""The fake's options for benchmarks: latency with jitter, and new events for an incremental run after a full one."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import requests

from fake_klaviyo import EMAIL_METRICS, GENERATOR_NOW, REVISION, FakeKlaviyo, generate_account
from tests.kit import API_KEY, REPO, fake_argv, fake_command, follow

pytestmark = pytest.mark.fake


def test_new_events_are_the_same_account_plus_newer_email_events():
    before = generate_account(seed=5, events_per_metric=60)
    after = generate_account(seed=5, events_per_metric=60, new_events=25)
    for name in ("lists", "segments", "campaigns", "flows", "metrics", "campaign_messages", "profile_ids"):
        assert getattr(after, name) == getattr(before, name), name
    # The old events are all there, unchanged, and sort before the new ones.
    assert list(after.events)[: len(before.events)] == list(before.events)
    newest_old = max(e["attributes"]["timestamp"] for e in before.events)
    emails = {before.metric_by_name(n)["id"] for n in EMAIL_METRICS}
    for metric in before.metrics:
        old = list(before.events_for_metric(metric["id"]))
        now = list(after.events_for_metric(metric["id"]))
        assert now[: len(old)] == old
        new = now[len(old) :]
        assert len(new) == (25 if metric["id"] in emails else 0), metric["attributes"]["name"]
        for event in new:
            moment = datetime.fromisoformat(event["attributes"]["datetime"])
            assert event["attributes"]["timestamp"] > newest_old
            assert GENERATOR_NOW <= moment < GENERATOR_NOW + timedelta(days=1) <= datetime.now(UTC)
    ids = [e["id"] for e in after.events]
    assert len(set(ids)) == len(ids)
    # Deterministic by seed, like the rest of the account.
    again = generate_account(seed=5, events_per_metric=60, new_events=25)
    assert [e["id"] for e in again.events] == ids
    assert list(again.events)[-10:] == list(after.events)[-10:]


def test_latency_jitter_spreads_the_delay_and_never_goes_below_zero(account):
    fake = FakeKlaviyo(account, api_key=API_KEY, latency=0.25, latency_jitter=0.05)
    delays = [fake.delay() for _ in range(2000)]
    assert all(0.2 <= d <= 0.3 for d in delays)
    assert min(delays) < 0.21 and max(delays) > 0.29
    assert 0.24 < sum(delays) / len(delays) < 0.26
    low = FakeKlaviyo(account, api_key=API_KEY, latency=0.01, latency_jitter=0.05)
    low_delays = [low.delay() for _ in range(500)]
    assert min(low_delays) == 0.0 and max(low_delays) <= 0.06
    assert FakeKlaviyo(account, api_key=API_KEY, latency=0.25).delay() == 0.25


def test_each_request_sleeps_its_own_jittered_latency(account):
    with FakeKlaviyo(account, api_key=API_KEY, latency=0.05, latency_jitter=0.04) as fake:
        headers = {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION}
        with requests.Session() as session:
            for _ in range(12):
                assert session.get(fake.url + "/api/lists", headers=headers, timeout=10).status_code == 200
        durations = [r.duration for r in fake.requests]
    assert len(durations) == 12 and min(durations) >= 0.01
    assert max(durations) - min(durations) > 0.01, "every request slept the same"


def test_the_command_line_takes_jitter_and_new_events():
    flags = ["--events-per-metric", "30", "--latency", "0.02", "--latency-jitter", "0.01", "--new-events", "7"]
    flags += ["--seed", "3"]
    metric = generate_account(3, events_per_metric=30).metric_by_name("Opened Email")["id"]
    with fake_command(*flags) as fake:
        events = follow(fake.get, "/api/events", filter=f'equals(metric_id,"{metric}")', sort="datetime")
    assert len(events) == 37
    assert all(datetime.fromisoformat(e["attributes"]["datetime"]) >= GENERATOR_NOW for e in events[-7:])
    negative = subprocess.run(
        [*fake_argv(*flags[:-2]), "--latency-jitter", "-1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert negative.returncode == 2 and "must not be negative" in negative.stderr
