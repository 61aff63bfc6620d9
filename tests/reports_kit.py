"""What the report streams' tests share: the fake's limits for them, the request bodies the tap sent, and the spec's
schema of those bodies (what each stream should hold is the oracle's, `tests/oracle.py`)."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft7Validator

from fake_klaviyo import FakeKlaviyo
from fake_klaviyo.make_endpoints import DEFAULT_SPEC
from tests.kit import STREAM_KEYS, TAP, Row, _json_schema, clean_env

CAMPAIGNS, FLOWS = "campaign_values_reports", "flow_series_reports"
REPORT_STREAMS = {CAMPAIGNS, FLOWS}
# The fake's endpoint of each report stream, and its path.
ENDPOINT = {CAMPAIGNS: "campaign_values", FLOWS: "flow_series"}
PATH = {CAMPAIGNS: "/api/campaign-values-reports", FLOWS: "/api/flow-series-reports"}


def limits(daily: int = 225) -> dict[str, tuple[int, ...]]:
    """Klaviyo's limits of the report queries but for two a minute, which the fake states in RateLimit-Limit, so that
    a test does not wait half a minute a request; a daily quota of `daily`."""
    return {"campaign_values": (1, 600, daily), "flow_series": (1, 600, daily)}


def key(row: Row, stream: str) -> tuple:
    return tuple(row[k] for k in STREAM_KEYS[stream])


def upserted(runs: Iterable[list[Row]], stream: str) -> dict[tuple, Row]:
    """Rows loaded run after run, each replacing the one of its primary key."""
    table: dict[tuple, Row] = {}
    for rows in runs:
        for row in rows:
            table[key(row, stream)] = row
    return table


def bodies(fake: FakeKlaviyo, stream: str, since: int = 0, until: int | None = None) -> list[dict[str, Any]]:
    """The report query bodies the fake answered for a stream (its requests from `since` to `until`), pages
    included."""
    return [
        json.loads(r.body)
        for r in fake.requests[since:until]
        if r.method == "POST" and r.endpoint == ENDPOINT[stream] and r.status == 200
    ]


def timeframes(fake: FakeKlaviyo, stream: str, since: int = 0, until: int | None = None) -> list[tuple[date, date]]:
    """The timeframes the fake answered (first pages only: a next page repeats its body), as the account's days."""
    found = [
        json.loads(r.body)["data"]["attributes"]["timeframe"]
        for r in fake.requests[since:until]
        if r.method == "POST" and r.endpoint == ENDPOINT[stream] and "page_cursor" not in r.query and r.status == 200
    ]
    return [(_day(t["start"]), _day(t["end"])) for t in found]


def _day(text: str) -> date:
    return datetime.fromisoformat(text).date()


def assert_whole_days(fake: FakeKlaviyo, stream: str, tz: ZoneInfo, since: int = 0) -> None:
    """Every timeframe starts at a midnight and ends at the last second of a day, with the account's offset then."""
    for body in bodies(fake, stream, since):
        frame = body["data"]["attributes"]["timeframe"]
        start, end = datetime.fromisoformat(frame["start"]), datetime.fromisoformat(frame["end"])
        assert (start.time(), end.time()) == (datetime.min.time(), datetime.max.time().replace(microsecond=0))
        for moment in (start, end):
            assert moment.utcoffset() == moment.replace(tzinfo=tz).utcoffset(), frame


def days_read(frames: list[tuple[date, date]]) -> list[date]:
    return [first + timedelta(days=n) for first, last in frames for n in range((last - first).days + 1)]


@functools.cache
def validator(path: str, part: str) -> Draft7Validator:
    """A validator for the spec's (the vendored copy's) request body ("request") or answer ("response") of
    ``POST path``."""
    spec = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))
    operation = spec["paths"][path]["post"]
    found = operation["requestBody"] if part == "request" else operation["responses"]["200"]
    schema = found["content"]["application/vnd.api+json"]["schema"]
    return Draft7Validator({**_json_schema(schema), "definitions": _json_schema(spec["components"]["schemas"])})


def assert_fits(document: dict[str, Any], path: str, part: str) -> None:
    errors = sorted(validator(path, part).iter_errors(document), key=str)
    assert not errors, f"a {part} of POST {path} breaks the spec's schema: {errors[0]}"


def assert_bodies_valid(fake: FakeKlaviyo, stream: str) -> None:
    for body in bodies(fake, stream):
        assert_fits(body, PATH[stream], "request")


def run_and_signal_at(
    config: dict[str, Any], catalog: dict[str, Any], when: Any, signum: int = signal.SIGKILL
) -> tuple[list[dict], dict | None, int, float]:
    """Run the tap and send it `signum` at the first message for which `when` is true, reading on until it exits:
    what it wrote, its last STATE, its exit code and the seconds from the signal to its exit."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [str(TAP)]
        for name, content in {"config": config, "catalog": catalog}.items():
            (Path(tmp) / f"{name}.json").write_text(json.dumps(content))
            argv += [f"--{name}", str(Path(tmp) / f"{name}.json")]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env())
        assert proc.stdout is not None
        messages: list[dict] = []
        state, signalled = None, None
        for line in proc.stdout:
            messages.append(json.loads(line))
            if messages[-1]["type"] == "STATE":
                state = messages[-1]["value"]
            if signalled is None and when(messages[-1]):
                proc.send_signal(signum)
                signalled = time.monotonic()
        code = proc.wait(timeout=120)
    assert signalled is not None, "the run ended before the moment to signal it"
    return messages, state, code, time.monotonic() - signalled
