"""The fake's options for benchmarks: latency with jitter, new events for an incremental run after a full one, the
account's layout in time (span, bursts, events per metric) and a log of every request."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests

from fake_klaviyo import EMAIL_METRICS, GENERATOR_NOW, REVISION, FakeKlaviyo, generate_account
from fake_klaviyo.layout import EventLayout
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


def _times(account, name="Opened Email"):
    metric = account.metric_by_name(name)["id"]
    return list(account.events.ts_by_metric[account.events.metric_index[metric]])


def test_the_default_layout_is_the_generators_own_and_each_layout_is_deterministic():
    plain = generate_account(seed=4, events_per_metric=200)
    same = generate_account(seed=4, events_per_metric=200, layout=EventLayout())
    assert [e["id"] for e in same.events] == [e["id"] for e in plain.events]
    layout = EventLayout(span_days=7, bursts=3, metric_events={"opened email": 900})
    once, again = (generate_account(seed=4, events_per_metric=200, layout=layout) for _ in range(2))
    assert list(once.events)[-20:] == list(again.events)[-20:]
    assert [e["id"] for e in once.events] == [e["id"] for e in again.events]
    assert once.metrics == plain.metrics and once.campaigns == plain.campaigns


def test_a_layout_sets_the_span_the_bursts_and_each_email_metrics_count():
    now = int(GENERATOR_NOW.timestamp())
    recent = generate_account(seed=4, events_per_metric=300, layout=EventLayout(span_days=7))
    assert all(now - 7 * 86400 <= t < now for t in _times(recent))
    thin = _times(generate_account(seed=4, events_per_metric=300, layout=EventLayout(span_days=8 * 365)))
    assert min(thin) < now - 7 * 365 * 86400 and max(thin) < now
    # Most events fall in the hours after the sends: a few hours hold 80% of them.
    bursts = generate_account(seed=4, events_per_metric=2000, layout=EventLayout(bursts=5))
    hours = sorted(Counter(t // 3600 for t in _times(bursts, "Received Email")).values(), reverse=True)
    assert sum(hours[:10]) >= 0.75 * 2000 > sum(hours[10:])
    skewed = generate_account(seed=4, events_per_metric=100, layout=EventLayout(metric_events={"OPENED EMAIL": 2000}))
    assert len(_times(skewed)) == 2000 and len(_times(skewed, "Bounced Email")) == 100
    for wrong in ({"span_days": 0}, {"bursts": -1}, {"burst_share": 2}, {"metric_events": {"Placed Order": 5}}):
        with pytest.raises(ValueError):
            EventLayout(**wrong)


def test_the_command_line_takes_a_layout_and_logs_each_request(tmp_path):
    log = tmp_path / "requests.jsonl"
    flags = ["--events-per-metric", "20", "--seed", "3", "--event-span-days", "7", "--bursts", "2"]
    flags += ["--metric-events", "Opened Email=1500", "--request-log", str(log)]
    layout = EventLayout(span_days=7, bursts=2, metric_events={"Opened Email": 1500})
    account = generate_account(3, events_per_metric=20, layout=layout)
    metric = account.metric_by_name("Opened Email")["id"]
    started = time.time()
    with fake_command(*flags) as fake:
        events = follow(fake.get, "/api/events", filter=f'equals(metric_id,"{metric}")', sort="datetime")
    assert [e["id"] for e in events] == [e["id"] for e in account.events_for_metric(metric)]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # The first page, then a page by cursor after another.
    assert [line["path"] for line in lines] == ["/api/events"] + ["/api/events/"] * (len(lines) - 1)
    assert all(started <= line["start"] <= line["end"] <= time.time() and line["status"] == 200 for line in lines)
    wrong = subprocess.run(
        [*fake_argv("--metric-events", "Opened Email")], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert wrong.returncode == 2 and "NAME=N" in wrong.stderr
