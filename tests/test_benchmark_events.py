"""The events benchmark's own reckoning: round trips on the critical path from the fake's request log, and what
each account shape should send."""

from __future__ import annotations

import json

from benchmarks.common import FakeProcess, critical_path
from benchmarks.events import SHAPES, epoch_seconds, expected_events


def test_the_critical_path_is_the_longest_chain_of_requests_each_sent_after_the_last_answered():
    assert critical_path([]) == 0
    assert critical_path([(0, 1), (0, 1), (0.2, 1.1)]) == 1, "side by side: one round trip"
    # Two chains: 0 -> 1.1 -> 2.1 (three deep) and 0.5 -> 1.6 (two); an overlap is no chain.
    assert critical_path([(0, 1), (1.1, 2), (0.5, 1.5), (2.1, 3), (1.6, 2.5), (0.9, 1.2)]) == 3


def test_round_trips_come_from_the_requests_logged_during_the_run(tmp_path):
    fake = FakeProcess.__new__(FakeProcess)
    fake.requests = tmp_path / "requests.jsonl"
    spans = [(10.0, 10.3), (10.31, 10.6), (10.61, 10.9), (20.0, 20.3)]
    lines = [json.dumps({"start": a, "end": b, "path": "/", "status": 200}) for a, b in spans]
    fake.requests.write_text("\n".join(lines))
    assert fake.round_trips(9.0, 11.0) == 3, "the run's own requests only"
    assert fake.round_trips(30.0, 40.0) is None


def test_a_shape_with_end_date_expects_only_the_events_before_it():
    shape = SHAPES["end-date"]
    full = expected_events(3, 200, shape=SHAPES["far-start"])
    cut = expected_events(3, 200, shape=shape)
    end = epoch_seconds(shape.settings["end_date"])
    assert 0 < cut.events < full.events
    for stream, times in cut.timestamps.items():
        assert len(times) == len(cut.ids[stream]) and all(t < end for t in times)
        assert cut.ids[stream] <= full.ids[stream]
    skewed = expected_events(3, 20, shape=SHAPES["skewed"])
    assert len(skewed.ids["opened_email"]) == 400 and len(skewed.ids["bounced_email"]) == 20
