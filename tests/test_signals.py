"""SIGTERM and SIGINT (a scheduler's timeout, Kubernetes, Ctrl-C) stop a run cleanly: the last STATE covers what was
written, the exit code says the run was stopped, and a rerun from that state loses nothing."""

from __future__ import annotations

import gzip
import json
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from fake_klaviyo import REVISION, FakeKlaviyo, generate_account
from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    TapRun,
    expected_keys,
    fake_events,
    keys_of,
    run_and_signal,
    run_tap,
)

# How long the fake holds every /api/flows request: far longer than a stopped run may take to exit.
HOLD = 60
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (DEBUG|INFO) ")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("signum", "code", "settings"),
    [(signal.SIGTERM, 143, {}), (signal.SIGINT, 130, {}), (signal.SIGTERM, 143, {"concurrency": 1})],
    ids=["TERM", "INT", "TERM-one-page-at-a-time"],
)
def test_a_signal_stops_the_run_with_its_code_and_a_rerun_from_the_last_state_loses_nothing(
    account, signum, code, settings
):
    # /api/flows answers its first page (every stream's first request is answered before any record is written),
    # then hangs: the run is stopped while it waits for flows' second page, with a worker of the window pool inside
    # that request (one page at a time: the main thread). Neither the wait nor the request may keep it from exiting.
    assert len(account.flows) > 50, "flows take two pages"
    hang = {"endpoint_latency": {"flows": HOLD}, "endpoint_latency_spares": {"flows": 1}}
    with FakeKlaviyo(account, api_key=API_KEY, **hang) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, **settings}
        # The first stream of the flows walk (flow_actions comes before flows) is the one waiting for its second page.
        stopped, seconds = run_and_signal(
            config, signum, lambda m: m["type"] == "SCHEMA" and m["stream"].startswith("flow")
        )
    assert stopped.returncode == code, stopped.stderr[-3000:]
    assert seconds < 10, f"the run took {seconds:.1f}s to stop"
    said = [line for line in stopped.stderr.splitlines() if not LOG_LINE.match(line)]
    name = signal.Signals(signum).name
    assert said == [
        f"tap-klaviyo: interrupted by {name}: stopped cleanly; a run from the last STATE written resumes where "
        "this one stopped"
    ], stopped.stderr[-3000:]
    assert stopped.messages[-1]["type"] == "STATE", "the last message is the STATE that covers everything before it"
    assert len(stopped.records("flows")) < len(account.flows), "flows' second page never came"
    assert stopped.records("bounced_email"), "streams before flows were written"

    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        rerun = run_tap({"api_key": API_KEY, "api_url": fake.url}, state=stopped.states[-1])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    expected = expected_keys(account)
    for stream in DEFAULT_STREAMS:
        delivered = set(keys_of(stopped.records(stream), stream)) | set(keys_of(rerun.records(stream), stream))
        assert delivered == set(expected[stream]), f"{stream}: the stopped run and its rerun lost records"


@pytest.mark.e2e
def test_a_signal_while_the_first_requests_are_awaited_stops_the_run_before_it_writes_anything(account):
    # No record is written before every selected stream's first request is answered: /api/flows hangs on its first.
    with FakeKlaviyo(account, api_key=API_KEY, endpoint_latency={"flows": HOLD}) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url}
        stopped, seconds = run_and_signal(config, signal.SIGTERM, None, delay=4.0)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert seconds < 10, f"the run took {seconds:.1f}s to stop"
    assert not [m for m in stopped.messages if m["type"] == "RECORD"]
    assert "interrupted by SIGTERM" in stopped.stderr


@pytest.mark.fake
def test_the_fake_can_hang_one_endpoint_until_it_stops(account):
    headers = {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION}
    with FakeKlaviyo(account, api_key=API_KEY, endpoint_latency={"flows": HOLD}) as fake:
        started = time.monotonic()
        assert requests.get(f"{fake.url}/api/lists", headers=headers, timeout=10).status_code == 200
        assert time.monotonic() - started < 5
        with pytest.raises(requests.Timeout):
            requests.get(f"{fake.url}/api/flows", headers=headers, timeout=1)
    spared = {"endpoint_latency": {"flows": HOLD}, "endpoint_latency_spares": {"flows": 1}}
    with FakeKlaviyo(account, api_key=API_KEY, **spared) as fake:
        started = time.monotonic()
        assert requests.get(f"{fake.url}/api/flows", headers=headers, timeout=10).status_code == 200
        assert time.monotonic() - started < 5
        with pytest.raises(requests.Timeout):
            requests.get(f"{fake.url}/api/flows", headers=headers, timeout=1)
    with pytest.raises(ValueError, match="endpoint_latency"):
        FakeKlaviyo(account, api_key=API_KEY, endpoint_latency={"nowhere": 1})
    with pytest.raises(ValueError, match="endpoint_latency_spares"):
        FakeKlaviyo(account, api_key=API_KEY, endpoint_latency_spares={"flows": 1})


@pytest.mark.e2e
@pytest.mark.parametrize(
    "settings",
    [{}, {"flattening_enabled": True, "flattening_max_depth": 1}],
    ids=["page-at-a-time", "record-by-record"],
)
def test_a_signal_mid_stream_stops_after_the_records_its_state_covers(settings):
    # One page at a time, the main thread reads each page itself; a stream of three pages is stopped after the page
    # the signal found it on (or in the request for the next one), whether records are written a page at a time or
    # one by one through the SDK's loop.
    account = generate_account(seed=19, events_per_metric=2500)
    with FakeKlaviyo(account, api_key=API_KEY, latency=0.5) as fake:
        config = {"api_key": API_KEY, "api_url": fake.url, "concurrency": 1, **settings}
        stopped, _ = run_and_signal(
            config, signal.SIGTERM, lambda m: m["type"] == "RECORD" and m["stream"] == "clicked_email"
        )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    written, held = len(stopped.records("clicked_email")), len(fake_events(account, "clicked_email"))
    assert 0 < written < held, f"{written} of {held} clicked_email records before the stop: not mid-stream"
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        rerun = run_tap({**config, "api_url": fake.url}, state=stopped.states[-1])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for stream in EVENT_METRICS:
        delivered = {r["id"] for r in stopped.records(stream)} | {r["id"] for r in rerun.records(stream)}
        assert delivered == set(fake_events(account, stream)), f"{stream}: the stopped run and its rerun lost events"


@pytest.mark.e2e
def test_with_batch_files_the_last_state_is_the_one_after_the_last_whole_batch(tmp_path):
    # A batch spans two pages; the signal comes while the tap waits for the second, records of the first already
    # in a batch file that is not whole.
    account = generate_account(seed=19, events_per_metric=2500)
    batches = {"encoding": {"format": "jsonl", "compression": "gzip"}, "batch_size": 1500}

    def config(url: str, folder: str) -> dict:
        root = tmp_path / folder
        root.mkdir()
        storage = {"root": root.as_uri(), "prefix": "klaviyo-"}
        return {"api_key": API_KEY, "api_url": url, "concurrency": 1, "batch_config": {**batches, "storage": storage}}

    with FakeKlaviyo(account, api_key=API_KEY, latency=0.5) as fake:
        stopped, _ = run_and_signal(
            config(fake.url, "stopped"),
            signal.SIGTERM,
            lambda m: m["type"] == "SCHEMA" and m["stream"] == "clicked_email",
            delay=0.8,
        )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        rerun = run_tap(config(fake.url, "rerun"), state=stopped.states[-1])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for stream in EVENT_METRICS:
        delivered = batched_ids(stopped, stream) | batched_ids(rerun, stream)
        assert delivered == set(fake_events(account, stream)), f"{stream}: the stopped run and its rerun lost events"


def batched_ids(run: TapRun, stream: str) -> set[str]:
    """The ids of the records a run announced in BATCH messages of `stream`."""
    ids = set()
    for message in run.messages:
        if message["type"] == "BATCH" and message["stream"] == stream:
            for url in message["manifest"]:
                with gzip.open(Path(url.removeprefix("file://")), "rt") as lines:
                    ids |= {json.loads(line)["id"] for line in lines}
    return ids
