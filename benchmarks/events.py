"""How fast and how frugally the tap extracts a Klaviyo account from the fake Klaviyo, and whether it gets it right.

Run from the repository root: ``.venv/bin/python -m benchmarks.events [--scenario latency cpu memory incremental]``.

The fake runs in its own process (``python -m fake_klaviyo``) and the real ``tap-klaviyo`` command in
another, each pinned to a core of its own, the tap's stdout written to a file. The fake logs nothing per request
and the tap's INFO log only counts them per stream, so request counts and times come from urllib3's one DEBUG
line per response, switched on for that logger alone through the SDK's ``SINGER_SDK_LOG_CONFIG`` (and checked
against the tap's own counts). Every record is checked against the fake's account, rebuilt here from the same
seed: each event delivered once and in ``datetime`` order per stream, each entity once.

The tap's CPU time is its rusage from ``os.wait4`` (user + system, all threads); its peak memory is VmHWM polled
from /proc (``ru_maxrss`` is not the child's own, see README). The ``cpu`` scenario measures a minimal reference
reader (``benchmarks/reference_reader.py``) the same way, as the yardstick of events per CPU-second.

Speed is reported, never asserted: the exit status is 1 only when records are missing, duplicated, unknown or
out of order (2 when the benchmark cannot run at all).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dataclasses
import datetime
import functools
import io
import json
import math
import os
import pstats
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import common
from benchmarks.common import (
    API_KEY,
    REPO,
    TAP,
    BenchmarkError,
    FakeProcess,
    Order,
    Problems,
    epoch_seconds,
    fmt,
    log_time,
    parse_time,
    rounds,
)
from fake_klaviyo import ENDPOINTS, REVISION, Account, generate_account
from fake_klaviyo.clock import EVENT_SPAN_DAYS
from fake_klaviyo.layout import EventLayout
from tap_klaviyo.streams.table import STREAMS
from tests.oracle import expected_entities, keys_of

EMAIL_EVENTS = tuple((row.name, row.metric) for row in STREAMS if row.metric)
EVENT_STREAMS = tuple(name for name, _ in EMAIL_EVENTS)
# The streams a run without a catalog syncs (entity streams and the event streams; profiles and members are opt-in).
DEFAULT_STREAMS = tuple(row.name for row in STREAMS if row.selected_by_default)
ENTITY_STREAMS = tuple(name for name in DEFAULT_STREAMS if name not in EVENT_STREAMS)
STREAM_KEYS = {row.name: tuple(row.primary_keys) for row in STREAMS}
SPEC_PAGE_SIZE_MAX = ENDPOINTS["events"].page_size.max if ENDPOINTS["events"].page_size else 1000

# urllib3: `http://host:port "GET /api/events?... HTTP/1.1" 200 1234`; cursor pages use `/api/events/?...`.
REQUEST_LINE = re.compile(
    rb'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d{3}) .*"GET (/api/[^?" ]*)[^"]* HTTP/[\d.]+" (\d{3})\b', re.MULTILINE
)
TAP_SUMMARY = re.compile(rb"\| \w+: done: [\d,]+ records, ([\d,]+) requests")

DEFAULT_SIZES = {
    "latency": 5_000,
    "cpu": 40_000,
    "memory": math.ceil(1_000_000 / len(EVENT_STREAMS)),
    "incremental": 5_000,
}
TARGET_LATENCY_WALL = 2.0  # seconds, median, at the default concurrency (latency and each shape)
TARGET_READER_RATIO = 3.0  # the tap's events per CPU-second over the reference reader's
TARGET_RSS_MB = 128


# Before the first event of every shape: where a new user's `start_date` may well be.
FAR_START_DATE = "2015-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class Shape:
    """An account laid out in time as real ones are, read as the latency scenario reads its own (0.25 +- 0.05 s a
    request, Klaviyo's rate limits, the default selection) with `settings` (a `start_date` far before the first
    event, as a new user would set it): `span_days` of history, `bursts` campaign sends holding 80% of the events,
    'Opened Email' holding `skew` times the events of each other metric."""

    text: str
    span_days: float = EVENT_SPAN_DAYS
    bursts: int = 0
    skew: int = 1
    events_per_metric: int = 5_000
    settings: dict[str, str] = field(default_factory=lambda: {"start_date": FAR_START_DATE})

    def layout(self, events_per_metric: int) -> EventLayout:
        skewed = {"Opened Email": self.skew * events_per_metric} if self.skew != 1 else {}
        return EventLayout(self.span_days, self.bursts, metric_events=skewed)

    def flags(self, events_per_metric: int) -> list[str]:
        """The fake's command line for this layout."""
        layout = self.layout(events_per_metric)
        flags = ["--event-span-days", str(layout.span_days), "--bursts", str(layout.bursts)]
        for name, count in layout.metric_events.items():
            flags += ["--metric-events", f"{name}={count}"]
        return flags

    def bounds(self) -> tuple[int | None, int | None]:
        """[start_date, end_date) in epoch seconds (None: unbounded)."""
        start, end = (self.settings.get(name) for name in ("start_date", "end_date"))
        return (math.ceil(epoch_seconds(start)) if start else None, math.ceil(epoch_seconds(end)) if end else None)


SHAPES = {
    "recent": Shape("a young account: every event in the last 7 days", span_days=7),
    "thin": Shape("an old account: the events spread thinly over eight years", span_days=8 * 365.25),
    "bursts": Shape("10 campaign sends put 80% of two years' events in the hours after them", bursts=10),
    "skewed": Shape("'Opened Email' holds 20 times the events of each other metric", skew=20, events_per_metric=1_250),
    "far-start": Shape("the latency scenario's account (two years of events), `start_date` in 2015"),
    "end-date": Shape(
        "the latency scenario's account, `end_date` half-way through its two years",
        settings={"start_date": FAR_START_DATE, "end_date": "2025-01-01T00:00:00+00:00"},
    ),
}


# --- what the fake holds ----------------------------------------------------------------------


@dataclass
class Expected:
    """What the tap should send: each event stream's event ids (and their ascending timestamps), and, when entity
    streams are selected, each entity stream's primary keys.

    ``previous``: for a run from a previous run's state, the event ids that run delivered; they may be sent again
    (the bookmark's own second is read again) but at most once, and are counted as re-sent. ``entities_all``: every
    entity must arrive (a full run); otherwise only those changed since the bookmark do, so none is required.
    """

    ids: dict[str, set[str]]
    timestamps: dict[str, Sequence[int]]
    entities: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    previous: dict[str, set[str]] = field(default_factory=dict)
    entities_all: bool = True
    metric_ids: dict[str, str] = field(default_factory=dict)  # event stream -> the Klaviyo metric it reads
    # A run from a state: each event stream's bookmark in it; an old event sent again must be of that instant.
    bookmarks: dict[str, datetime.datetime] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(map(len, self.ids.values()))


def build_account(seed: int, events_per_metric: int, new_events: int = 0, layout: EventLayout | None = None) -> Account:
    return generate_account(seed, events_per_metric=events_per_metric, new_events=new_events, layout=layout)


def event_ids(
    account: Account, since: int | None = None, until: int | None = None
) -> tuple[dict[str, set[str]], dict[str, Sequence[int]], dict[str, str]]:
    """Each event stream's event ids (those timed in [since, until) seconds, if given), their ascending times, and
    the metric each stream reads."""
    store = account.events
    ids: dict[str, set[str]] = {}
    timestamps: dict[str, Sequence[int]] = {}
    metric_ids: dict[str, str] = {}
    for stream, metric_name in EMAIL_EVENTS:
        metric = account.metric_by_name(metric_name)  # Klaviyo's own metric, not the same-named decoy
        if metric is None:
            raise BenchmarkError(f"the generated account has no metric {metric_name!r}")
        index = store.metric_index[metric["id"]]
        times = store.ts_by_metric[index]
        lo = 0 if since is None else bisect.bisect_left(times, since)
        hi = len(times) if until is None else bisect.bisect_left(times, until)
        ids[stream] = {store.event_id(p) for p in store.by_metric[index][lo:hi]}
        timestamps[stream] = times[lo:hi]
        metric_ids[stream] = metric["id"]
    return ids, timestamps, metric_ids


def entity_keys(account: Account) -> dict[str, set[tuple[str, ...]]]:
    """Each default entity stream's primary keys, from the oracle the end-to-end tests compare with."""
    expected = expected_entities(account)
    missing = set(ENTITY_STREAMS) - set(expected)
    if missing:
        raise BenchmarkError(f"tests/oracle.py does not say what the default streams {sorted(missing)} should hold")
    return {stream: set(keys_of(expected[stream], stream)) for stream in ENTITY_STREAMS}


def expected_events(
    seed: int, events_per_metric: int, *, entities: bool = False, shape: Shape | None = None
) -> Expected:
    """A full run's records: the event streams', and with ``entities`` the default entity streams' too; with a
    ``shape``, of its account and within its `start_date` and `end_date`."""
    account = build_account(seed, events_per_metric, layout=shape.layout(events_per_metric) if shape else None)
    ids, timestamps, metric_ids = event_ids(account, *(shape.bounds() if shape else (None, None)))
    return Expected(ids, timestamps, entity_keys(account) if entities else {}, metric_ids=metric_ids)


def expected_increment(seed: int, events_per_metric: int, new_events: int) -> tuple[Expected, Expected]:
    """(the full run's records, the next run's): the same account plus ``new_events`` newer events per metric."""
    full = expected_events(seed, events_per_metric, entities=True)
    account = build_account(seed, events_per_metric, new_events)
    ids, timestamps, metric_ids = event_ids(account)
    for stream, old in full.ids.items():
        if not old <= ids[stream]:
            raise BenchmarkError(f"{stream}: the account with new events lost some of the old ones")
    new = {stream: ids[stream] - full.ids[stream] for stream in ids}
    return full, Expected(
        new, timestamps, entity_keys(account), previous=full.ids, entities_all=False, metric_ids=metric_ids
    )


# --- processes --------------------------------------------------------------------------------


def fake_flags() -> str:
    return subprocess.run(
        [sys.executable, "-m", "fake_klaviyo", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def running_fake(
    args: argparse.Namespace, workdir: Path, events_per_metric: int, **kwargs: Any
) -> contextlib.AbstractContextManager[FakeProcess]:
    return common.running_fake(
        args, workdir, events_per_metric=events_per_metric, page_size_max=args.events_page_size_max, **kwargs
    )


def paced(args: argparse.Namespace) -> dict[str, Any]:
    """The fake's options of the scenarios read as latency is: its latency, and Klaviyo's rate limits."""
    return {"latency": args.latency, "latency_jitter": args.latency_jitter, "rate_limits": True}


def event_catalog(url: str, workdir: Path) -> Path:
    """The discovered catalog with only the six event streams selected."""
    return common.write_selected(common.discover(url, workdir), lambda stream: stream in EVENT_STREAMS, workdir)


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Span:
    """One endpoint's requests in a run: how many, how many throttled, and the first and last answer's time (seconds
    since the process started)."""

    count: int = 0
    throttled: int = 0
    first: float = math.inf
    last: float = -math.inf


@dataclass
class Run:
    wall: float  # seconds from start to exit, or to the stop signal of a capped run
    events: int  # event records sent (the reference reader: events written)
    records: int  # records of every stream
    requests: int | None  # to every endpoint; None: no request lines in the tap's log
    throttled: int | None
    round_trips: int | None  # on the critical path (the fake's request log); None: not known
    first_request: float | None  # seconds from the start to the first request the fake saw: the start-up
    rss_mb: float
    cpu: float  # seconds of CPU of the tap (or reader), user and system, all threads
    fake_cpu: float
    exact: bool
    capped: bool = False
    resent: int | None = None  # a run from a previous run's state: events that run had already sent
    timeline: dict[str, Span] = field(default_factory=dict)
    state: bytes | None = None  # the last STATE message's value, as sent
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: Path | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall if self.wall else 0.0

    @property
    def events_per_cpu_second(self) -> float | None:
        return self.events / self.cpu if self.cpu > 0 else None


def run_tap(
    args: argparse.Namespace,
    variant: Variant,
    catalog: Path | None,
    workdir: Path,
    expected: Expected,
    fake: FakeProcess,
    state: bytes | None = None,
    settings: dict[str, Any] | None = None,
) -> Run:
    """One run of the variant's tap (no catalog: its default selection; `state`: a STATE value to start from;
    `settings`: beside the variant's own)."""
    tap, cprofile = variant.tap, args.cprofile
    config = {**(settings or {}), **variant.config}
    argv, env = common.tap_command(fake.url, config, catalog, workdir, tap=tap, state=state)
    out, err, profile = workdir / "tap.jsonl", workdir / "tap.log", workdir / "tap.prof"
    if cprofile:
        argv = [str(tap.with_name("python")), "-m", "cProfile", "-o", str(profile), *argv]
    proc = common.run_process(argv, out, err, cwd=workdir, env=env, core=args.tap_core, cap=variant.cap, fake=fake)

    check = check_output(out, expected, complete=not proc.capped)
    problems = check.problems
    if not proc.capped and proc.returncode != 0:
        problems.insert(0, f"tap-klaviyo exited with {proc.returncode}: {common.last_error(err)}")
    requests, throttled, timeline = read_requests(err, proc.started)
    notes = []
    tap_says = requests_logged_by_tap(err)
    # A stopped run logs no summary for the stream it was in.
    if not proc.capped and tap_says is not None and requests and tap_says != requests:
        notes.append(f"the tap's summaries count {tap_says:,} requests, urllib3 logged {requests:,}")
    out.unlink()
    return Run(
        **proc.outcome(problems),
        events=check.events,
        records=check.records,
        requests=requests,
        throttled=throttled,
        round_trips=fake.round_trips(proc.started, proc.started + proc.wall),
        first_request=first_request(fake, proc),
        resent=check.resent if expected.previous else None,
        timeline=timeline,
        state=check.state,
        notes=notes,
        profile=profile if cprofile else None,
    )


def run_reader(workdir: Path, expected: Expected, fake: FakeProcess, *, core: int | None) -> Run:
    """One run of the reference reader over the six metrics' events; exact when it wrote each metric's count."""
    out, err = workdir / "reader.jsonl", workdir / "reader.log"
    argv = [sys.executable, "-m", "benchmarks.reference_reader", "--url", fake.url, "--api-key", API_KEY]
    argv += ["--revision", REVISION, *expected.metric_ids.values()]
    proc = common.run_process(argv, out, err, cwd=REPO, env=None, core=core, cap=None, fake=fake)
    problems: list[str] = []
    summary: dict[str, Any] = {}
    with contextlib.suppress(ValueError, IndexError):
        summary = json.loads(err.read_text().strip().splitlines()[-1])
    if proc.returncode != 0 or not summary:
        problems.append(f"the reference reader exited with {proc.returncode}: {common.last_error(err)}")
    counts = summary.get("events", {})
    for stream, metric in expected.metric_ids.items():
        if counts.get(metric) != len(expected.ids[stream]):
            problems.append(f"reader, {stream}: {counts.get(metric)} events written, {len(expected.ids[stream])} held")
    with out.open("rb") as lines:
        written = sum(1 for _ in lines)
    out.unlink()
    return Run(
        **proc.outcome(problems),
        events=written,
        records=written,
        requests=summary.get("requests"),
        throttled=None,
        round_trips=fake.round_trips(proc.started, proc.started + proc.wall),
        first_request=first_request(fake, proc),
    )


def first_request(fake: FakeProcess, proc: common.Process) -> float | None:
    """Seconds from a process's start to the first request the fake saw from it: its start-up."""
    spans = fake.served(proc.started, proc.started + proc.wall)
    return spans[0][0] - proc.started if spans else None


def endpoint_of(path: bytes) -> str:
    """`/api/events/?...` and `/api/events?...` are one endpoint; ids in a path become `{id}`."""
    parts = path.decode(errors="replace").rstrip("/").split("/")
    return "/".join(parts[:3] + ["{id}" if i % 2 == 0 else p for i, p in enumerate(parts[3:])])


def read_requests(log: Path, started: float) -> tuple[int | None, int | None, dict[str, Span]]:
    """(requests to every endpoint, 429s, each endpoint's Span) from urllib3's lines in the tap's log."""
    timeline: dict[str, Span] = {}
    parsed: dict[bytes, float] = {}  # log times repeat: parse each once
    for match in REQUEST_LINE.finditer(log.read_bytes()):
        stamp, path, status = match.groups()
        moment = parsed.get(stamp)
        if moment is None:
            moment = parsed[stamp] = log_time(stamp).timestamp() - started
        span = timeline.setdefault(endpoint_of(path), Span())
        span.count += 1
        span.throttled += status == b"429"
        span.first, span.last = min(span.first, moment), max(span.last, moment)
    if not timeline:
        return None, None, {}
    return sum(s.count for s in timeline.values()), sum(s.throttled for s in timeline.values()), timeline


def requests_logged_by_tap(log: Path) -> int | None:
    """The requests the tap's own per-stream summaries count (`<stream>: done: N records, R requests, ...`)."""
    counts = [int(m.group(1).replace(b",", b"")) for m in TAP_SUMMARY.finditer(log.read_bytes())]
    return sum(counts) if counts else None


class _Record(msgspec.Struct):
    id: str
    datetime: str | None = None


class _Message(msgspec.Struct):
    type: str
    stream: str = ""
    # Not `Raw | None`: msgspec takes that for null only. An empty Raw: absent.
    record: msgspec.Raw = msgspec.Raw(b"")
    value: msgspec.Raw = msgspec.Raw(b"")


@dataclass
class Checked:
    events: int = 0
    records: int = 0
    resent: int = 0
    state: bytes | None = None
    problems: list[str] = field(default_factory=list)


def check_output(path: Path, expected: Expected, *, complete: bool) -> Checked:
    """Each event of the fake's exactly once, in datetime order per stream, and each entity of the streams in
    ``expected.entities`` once; no records of other streams.

    A run stopped early (`complete` False) must have emitted a prefix of each event stream: nothing older than its
    last record missing. Its last line may be cut short by the stop.
    """
    decode_message = msgspec.json.Decoder(_Message).decode
    decode_event = msgspec.json.Decoder(_Record).decode
    decode_entity = msgspec.json.Decoder(dict[str, Any]).decode
    seen: dict[str, set[str]] = {stream: set() for stream in EVENT_STREAMS}
    orders = {stream: Order() for stream in EVENT_STREAMS}
    entities: dict[str, set[tuple[str, ...]]] = {stream: set() for stream in expected.entities}
    problems = Problems(
        ("duplicate", "unknown", "re-sent", "out of order", "no datetime", "not RFC 3339", "unexpected stream")
    )
    out = Checked(problems=problems)
    problem = problems.add

    with path.open("rb") as lines:
        for number, message in common.messages(lines, decode_message, problems=problems, complete=complete):
            if message.type == "STATE" and len(message.value):
                out.state = bytes(message.value)
            if message.type != "RECORD" or not len(message.record):
                continue
            out.records += 1
            stream = message.stream
            if stream in entities:
                row = decode_entity(message.record)
                key = tuple(str(row.get(k)) for k in STREAM_KEYS[stream])
                if key in entities[stream]:
                    problem("duplicate", f"{stream}: record {key} emitted twice (line {number})")
                elif key not in expected.entities[stream]:
                    problem("unknown", f"{stream}: record {key} is not one of the fake's (line {number})")
                entities[stream].add(key)
                continue
            if stream not in orders:
                problem("unexpected stream", f"{stream}: a record of a stream not selected (line {number})")
                continue
            out.events += 1
            record, ids, order = decode_event(message.record), seen[stream], orders[stream]
            if record.id in ids:
                problem("duplicate", f"{stream}: event {record.id} emitted twice (line {number})")
            elif record.id not in expected.ids[stream]:
                if record.id in expected.previous.get(stream, ()):
                    out.resent += 1
                    mark = expected.bookmarks.get(stream)
                    if mark is not None and record.datetime and parse_time(record.datetime) != mark:
                        problem(
                            "re-sent",
                            f"{stream}: old event {record.id} at {record.datetime} re-sent, its bookmark is {mark} "
                            f"(line {number})",
                        )
                else:
                    problem("unknown", f"{stream}: event {record.id} is not one of the fake's (line {number})")
            ids.add(record.id)
            if record.datetime is None:
                problem("no datetime", f"{stream}: event {record.id} has no datetime (line {number})")
                continue
            if record.datetime[10:11] != "T":
                problem("not RFC 3339", f"{stream}: event {record.id} at {record.datetime!r} (line {number})")
            if not order.add(record.datetime):
                problem(
                    "out of order",
                    f"{stream}: event {record.id} at {record.datetime} after {order.last_text} (line {number})",
                )

    for stream, order in orders.items():
        wanted = expected.ids[stream]
        got = len(seen[stream] & wanted) if seen[stream] else 0
        if complete and got != len(wanted):
            problems.append(f"{stream}: {len(wanted) - got} of the fake's {len(wanted)} events missing")
        elif not complete and (prefix := order.prefix(expected.timestamps[stream], len(seen[stream]))):
            older, emitted_older = prefix
            problems.append(
                f"{stream}: {older} events are older than its last one ({order.last_text}), "
                f"{emitted_older} of them emitted"
            )
    if complete and expected.entities_all:
        for stream, got_keys in entities.items():
            if missing := len(expected.entities[stream] - got_keys):
                problems.append(f"{stream}: {missing} of the fake's {len(expected.entities[stream])} records missing")
    problems.add_totals("records", "{}")
    return out


def top_costs(profile: Path, limit: int = 15) -> str:
    out = io.StringIO()
    pstats.Stats(str(profile), stream=out).sort_stats("tottime").print_stats(limit)
    text = out.getvalue()
    text = text[text.find("   ncalls") :] if "   ncalls" in text else text
    # Shorter lines: the tap runs in this venv, so its libraries live where this interpreter's do.
    for prefix in (sysconfig.get_paths()["purelib"], str(REPO)):
        text = text.replace(prefix + os.sep, "")
    return text.rstrip()


# --- variants, medians, tables ----------------------------------------------------------------


@dataclass
class Variant(common.Variant["Run"]):
    tap: Path = TAP
    reader: bool = False  # the reference reader, not the tap


def measure(
    args: argparse.Namespace,
    variant: Variant,
    catalog: Path | None,
    workdir: Path,
    expected: Expected,
    fake: FakeProcess,
    state: bytes | None = None,
    settings: dict[str, Any] | None = None,
) -> Run:
    if variant.reader:
        run = run_reader(workdir, expected, fake, core=args.tap_core)
    else:
        run = run_tap(args, variant, catalog, workdir, expected, fake, state, settings)
    variant.runs.append(run)
    note = " (stopped at the cap)" if run.capped else ""
    resent = f", {run.resent:,} old events re-sent" if run.resent is not None else ""
    print(
        f"  {variant.label}: {run.wall:.2f} s, {run.events:,} events, CPU {run.cpu:.2f} s "
        f"({fmt(run.events_per_cpu_second, '{:,.0f}')} events/CPU-s), {fmt(run.requests, '{:,}')} requests, "
        f"{fmt(run.round_trips, '{}')} round trips (the first sent at {fmt(run.first_request, '{:.2f}')} s), "
        f"{fmt(run.throttled, '{}')} 429s, peak RSS {run.rss_mb:.0f} MB, "
        f"{'exact' if run.exact else 'WRONG'}{resent}{note}",
        flush=True,
    )
    common.print_problems(run.problems)
    for text in run.notes:
        print(f"    note: {text}")
    if args.timeline and run.timeline:
        print(timeline(run))
    if run.profile is not None:
        print(top_costs(run.profile))
    return run


def timeline(run: Run) -> str:
    """One line per endpoint, by its first answer: requests, 429s, first and last answer (s since the start)."""
    lines = [f"    {'endpoint':<40} {'requests':>8} {'429s':>5} {'first s':>8} {'last s':>8}"]
    for name, span in sorted(run.timeline.items(), key=lambda item: item[1].first):
        lines.append(f"    {name:<40} {span.count:>8,} {span.throttled:>5} {span.first:>8.2f} {span.last:>8.2f}")
    lines.append(f"    {'(exit)':<40} {'':>8} {'':>5} {'':>8} {run.wall:>8.2f}")
    return "\n".join(lines)


def round_ratios(variant: Variant, yardstick: Variant) -> list[float]:
    """Per round (runs are interleaved, so the i-th runs of two variants ran side by side in time): the variant's
    events per CPU-second over the yardstick's; rounds where either was not exact are left out."""
    return [
        a / b
        for run, other in zip(variant.runs, yardstick.runs, strict=False)
        if run.exact and other.exact and (a := run.events_per_cpu_second) and (b := other.events_per_cpu_second)
    ]


def print_table(
    title: str, variants: list[Variant], *, yardstick: Variant | None = None, pages: int | None = None
) -> None:
    """One row per variant (medians), with ratios to the same-run baseline (and to the reference reader)."""
    base = next((v for v in variants if v.baseline and v.runs), None)
    # A baseline stopped at the cap has no wall time to compare with.
    base_wall = base.median(lambda r: r.wall) if base and not any(r.capped for r in base.runs) else None
    base_eps = base.median(lambda r: r.events_per_cpu_second) if base else None
    resent = any(r.resent is not None for v in variants for r in v.runs)
    headers = ["variant", "wall s", "first request s", "events", "tap CPU s", "events/CPU-s", "requests"]
    headers += ["round trips", "429s"]
    headers += ["peak RSS MB", "exact"]
    headers += ["re-sent"] if resent else []
    headers += ["speed-up", "events/CPU-s x"]
    headers += ["x reader"] if yardstick else []
    rows = []
    for v in variants:
        if not v.runs:
            continue
        wall, eps = v.median(lambda r: r.wall), v.median(lambda r: r.events_per_cpu_second)
        capped = any(r.capped for r in v.runs)
        row = [
            v.label + (" *" if capped else ""),
            fmt(wall, "{:.2f}"),
            fmt(v.median(lambda r: r.first_request), "{:.2f}"),
            fmt(v.median(lambda r: r.events), "{:,.0f}"),
            fmt(v.median(lambda r: r.cpu), "{:.2f}"),
            fmt(eps, "{:,.0f}"),
            fmt(v.median(lambda r: r.requests), "{:,.0f}"),
            fmt(v.median(lambda r: r.round_trips), "{:.0f}"),
            fmt(v.median(lambda r: r.throttled), "{:.0f}"),
            fmt(v.median(lambda r: r.rss_mb), "{:.0f}"),
            "yes" if all(r.exact for r in v.runs) else "NO",
        ]
        if resent:
            row.append(fmt(v.median(lambda r: r.resent), "{:,.0f}"))
        row += [
            # The reader is a yardstick, not a variant of the tap: no speed-up for it.
            fmt(
                base_wall / wall if wall and base_wall and not capped and not (v is base or v.reader) else None,
                "{:.2f}x",
            ),
            fmt(eps / base_eps if eps and base_eps and not (v is base or v.reader) else None, "{:.2f}x"),
        ]
        if yardstick:
            ratios = round_ratios(v, yardstick) if v is not yardstick else []
            row.append(fmt(statistics.median(ratios) if ratios else None, "{:.2f}x"))
        rows.append(row)
    common.print_table(title, headers, rows)
    notes = [common.runs_note(variants)]
    if base is not None:
        notes.append(
            f"speed-up: {base.label}'s wall over the variant's; events/CPU-s x: the variant's over {base.label}'s "
            "(same run)"
        )
    if yardstick is not None:
        notes.append("x reader: events/CPU-s over the reference reader's, per round, median of the rounds")
    if any(r.capped for v in variants for r in v.runs):
        notes.append("* stopped at the cap: output checked as a prefix of each event stream")
    if any(v.runs and v.runs[0].requests is None for v in variants):
        notes.append("requests: no urllib3 request lines in the tap's log (is it still using requests?)")
    if pages:
        notes.append(f"{pages:,} pages hold these events, the fewest /api/events requests that can fetch them")
    for text in notes:
        print(f"  {text}")


def tap_variants(ctx: Context, cap: float | None = None, *, one_at_a_time: bool = True) -> list[Variant]:
    """The tap at its default concurrency (and at each `--concurrency`), then the baseline: `--tap`'s tap if given,
    and concurrency 1 (unless not `one_at_a_time`)."""
    setting = ctx.concurrency
    default, one = common.concurrency_variants(
        Variant, setting.get("default") if setting else None, cap, baseline=not ctx.args.tap
    )
    variants = [default, *(Variant(f"concurrency {n}", {"concurrency": n}) for n in ctx.args.concurrency)]
    if ctx.args.tap:
        path = ctx.args.tap
        where = path.parents[2] if len(path.parents) > 2 and path.parent.parent.name == ".venv" else path
        variants.append(Variant(f"--tap {where} (default settings)", {}, tap=path, baseline=True))
    if setting is not None and one_at_a_time:
        variants.append(one)
    return variants


# --- scenarios --------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    concurrency: dict[str, Any] | None  # the tap's `concurrency` setting from --about, if it has one
    catalog: Path | None = None

    def catalog_for(self, url: str, workdir: Path) -> Path:
        if self.catalog is None:
            self.catalog = event_catalog(url, workdir)
        return self.catalog


def pages(args: argparse.Namespace, events_per_metric: int) -> int:
    size = min(args.events_page_size_max or SPEC_PAGE_SIZE_MAX, SPEC_PAGE_SIZE_MAX)
    return math.ceil(events_per_metric / size) * len(EVENT_STREAMS)


def size_of(args: argparse.Namespace, scenario: str) -> int:
    return args.events_per_metric or DEFAULT_SIZES[scenario]


def latency_text(args: argparse.Namespace) -> str:
    return f"{args.latency} +- {args.latency_jitter} s per request, Klaviyo's rate limits"


def report_latency_target(variants: list[Variant]) -> None:
    default = variants[0]
    wall = default.median(lambda r: r.wall)
    throttled = sum(r.throttled or 0 for r in default.runs)
    exact = all(r.exact for r in default.runs)
    if wall is not None:
        print(
            f"  {default.label}: median wall {wall:.2f} s (target <= {TARGET_LATENCY_WALL} s), {throttled} 429s in "
            f"all (target 0), {'exact' if exact else 'NOT exact'}"
        )


def scenario_latency(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n = size_of(args, "latency")
    print(
        f"\n== latency: {latency_text(args)}, the default selection ({len(DEFAULT_STREAMS)} streams), "
        f"{n:,} events per metric ({n * len(EVENT_STREAMS):,} events)",
        flush=True,
    )
    variants = tap_variants(ctx, args.baseline_seconds or None)
    expected = expected_events(args.seed, n, entities=True)
    for variant in rounds(args.repeat, variants):
        # A fresh fake per run: each run starts with the rate-limit windows empty, as a scheduled run would.
        with running_fake(args, workdir, n, **paced(args)) as fake:
            measure(args, variant, None, workdir, expected, fake)
    print_table(f"latency ({latency_text(args)}, {n:,} events per metric, all default streams)", variants)
    report_latency_target(variants)
    return variants


def scenario_cpu(ctx: Context, workdir: Path) -> list[Variant]:
    """The tap's CPU per event against the reference reader's, on pages with the times as Klaviyo writes them (a
    space for the "T") and as its spec does."""
    args = ctx.args
    n = size_of(args, "cpu")
    expected = expected_events(args.seed, n)
    variants: list[Variant] = []
    for form, spec_times in (("Klaviyo's form of times (a space)", False), ("the spec's form of times (T)", True)):
        print(
            f"\n== cpu: no latency, no rate limits, the six event streams, {n:,} events per metric "
            f"({n * len(EVENT_STREAMS):,} events), {form}; the reference reader as the yardstick",
            flush=True,
        )
        reader = Variant("reference reader", {}, reader=True)
        these = [*tap_variants(ctx), reader]
        with running_fake(args, workdir, n, latency=0.0, rate_limits=False, spec_times=spec_times) as fake:
            for variant in rounds(args.repeat, these):
                measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)
        print_table(f"cpu (no latency, {n:,} events per metric, {form})", these, yardstick=reader, pages=pages(args, n))
        ratios = round_ratios(these[0], reader)
        if ratios:
            each = ", ".join(f"{r:.2f}x" for r in ratios)
            print(
                f"  {these[0].label}, {form}: {statistics.median(ratios):.2f}x the reference reader's events per "
                f"CPU-second (median of rounds: {each}; target >= {TARGET_READER_RATIO}x)"
            )
        variants += these
    return variants


def scenario_memory(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    full = size_of(args, "memory")
    sizes = [full, max(1, full // 4)]
    print(f"\n== memory: peak RSS at {sizes[0] * 6:,} and {sizes[1] * 6:,} events, no latency", flush=True)
    variants = [Variant(f"{n * len(EVENT_STREAMS):,} events", {}) for n in sizes]
    for n, variant in zip(sizes, variants, strict=True):
        expected = expected_events(args.seed, n)
        with running_fake(args, workdir, n, latency=0.0, rate_limits=False) as fake:
            for _ in range(args.repeat):
                measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)
        del expected
    print_table("memory (no latency, default settings, the six event streams)", variants)
    big, small = (v.median(lambda r: r.rss_mb) for v in variants)
    if big is not None and small:
        print(f"  peak RSS {big:.0f} MB (target < {TARGET_RSS_MB} MB); {big / small:.2f}x the quarter-size run's")
    return variants


def scenario_incremental(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n, new = size_of(args, "incremental"), args.new_events
    print(
        f"\n== incremental: {latency_text(args)}, the default selection; a full run of {n:,} events per metric, "
        f"then, from its final state, a run with {new:,} new events per metric",
        flush=True,
    )
    full_expected, next_expected = expected_increment(args.seed, n, new)
    full = Variant("full run (default settings)", {})
    variants = tap_variants(ctx)
    for _ in range(args.repeat):
        with running_fake(args, workdir, n, **paced(args)) as fake:
            first = measure(args, full, None, workdir, full_expected, fake)
        if first.state is None:
            raise BenchmarkError("the full run sent no STATE message: no incremental run to make")
        expected = dataclasses.replace(next_expected, bookmarks=event_bookmarks(first.state))
        for variant in variants:
            with running_fake(
                args,
                workdir,
                n,
                **paced(args),
                new_events=new,
            ) as fake:
                measure(args, variant, None, workdir, expected, fake, state=first.state)
    print_table(f"incremental (from a full run's state, {new:,} new events per metric, {latency_text(args)})", variants)
    wall = full.median(lambda r: r.wall)
    print(f"  the full runs before them: median wall {fmt(wall, '{:.2f}')} s; re-sent: old events sent again")
    return [full, *variants]


def scenario_shape(ctx: Context, workdir: Path, name: str) -> list[Variant]:
    """An account of one of `SHAPES`, read as in the latency scenario, against the same-run baseline (`--tap`)."""
    args, shape = ctx.args, SHAPES[name]
    n = args.events_per_metric or shape.events_per_metric
    settings = ", ".join(f"{key} {value[:10]}" for key, value in shape.settings.items())
    print(
        f"\n== {name}: {shape.text}; {n:,} events per metric; {latency_text(args)}, the default selection, {settings}",
        flush=True,
    )
    variants = tap_variants(ctx, one_at_a_time=False)
    expected = expected_events(args.seed, n, entities=True, shape=shape)
    print(f"  {expected.events:,} events to send", flush=True)
    for variant in rounds(args.repeat, variants):
        with running_fake(
            args,
            workdir,
            n,
            **paced(args),
            flags=shape.flags(n),
        ) as fake:
            measure(args, variant, None, workdir, expected, fake, settings=shape.settings)
    print_table(f"{name} ({shape.text}; {latency_text(args)}, all default streams)", variants)
    report_latency_target(variants)
    return variants


def event_bookmarks(state: bytes) -> dict[str, datetime.datetime]:
    """Each event stream's bookmark in a STATE value (those it has)."""
    bookmarks = json.loads(state).get("bookmarks", {})
    return {
        stream: parse_time(value)
        for stream in EVENT_STREAMS
        if isinstance(value := bookmarks.get(stream, {}).get("replication_key_value"), str)
    }


SCENARIOS = {
    "latency": scenario_latency,
    "cpu": scenario_cpu,
    "memory": scenario_memory,
    "incremental": scenario_incremental,
    **{name: functools.partial(scenario_shape, name=name) for name in SHAPES},
}


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.events",
        description="Measure how fast, at what CPU and memory cost, and how exactly tap-klaviyo extracts an account "
        "from the fake Klaviyo.",
    )
    common.add_scenario_argument(
        p,
        SCENARIOS,
        "latency: 0.25 +- 0.05 s per request, rate limits, all default streams; cpu: no latency, the event "
        "streams, against a reference reader; memory: peak RSS at 1M events and a quarter of that; incremental: a "
        "run from a full run's state with new events; the shapes, each read as latency is: "
        + "; ".join(f"{name}: {shape.text}".replace("%", "%%") for name, shape in SHAPES.items())
        + " (default: all)",
    )
    p.add_argument(
        "--events-per-metric",
        type=int,
        help="events per email metric (defaults: latency 5,000; cpu 40,000; memory 166,667, and a quarter; "
        "incremental 5,000; each shape 5,000, skewed 1,250 and 20 times that for 'Opened Email')",
    )
    p.add_argument("--new-events", type=int, default=300, help="the incremental scenario's new events per metric")
    common.add_repeat_and_seed(p)
    p.add_argument("--latency", type=float, default=0.25, help="seconds per request (latency, incremental)")
    p.add_argument(
        "--latency-jitter", type=float, default=0.05, help="give or take this, uniformly (latency, incremental)"
    )
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=0.0,
        help="stop the latency scenario's concurrency=1 run after this long (0, the default: no cap)",
    )
    p.add_argument(
        "--events-page-size-max",
        type=int,
        help="the fake's largest page[size] for /api/events (Klaviyo's prose says 200, its schema 1000)",
    )
    p.add_argument(
        "--tap",
        type=Path,
        help="another tap-klaviyo executable (e.g. a previous commit's venv's) run as the same-run baseline",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also run the tap at these `concurrency` settings, beside its default",
    )
    p.add_argument(
        "--timeline", action="store_true", help="per run: each endpoint's requests, 429s, first and last answer"
    )
    common.add_no_pin(p)
    p.add_argument(
        "--cprofile", action="store_true", help="run the tap under cProfile and print its top costs (slows it)"
    )
    args = p.parse_args(argv)
    if args.repeat < 1 or (args.events_per_metric is not None and args.events_per_metric < 1):
        p.error("--repeat and --events-per-metric must be at least 1")
    if args.new_events < 1:
        p.error("--new-events must be at least 1")
    return common.settle_args(args, SCENARIOS)


def main(argv: list[str] | None = None) -> int:
    return common.main(parse_args(argv), run, "records")


def run(args: argparse.Namespace) -> bool:
    """Every selected scenario; True when all the data was exact."""
    common.check_tap()
    if args.tap is not None and not args.tap.exists():
        raise BenchmarkError(f"no {args.tap} (--tap)")
    for tap in (TAP, *([args.tap] if args.tap else [])):
        common.compile_tap(tap)
    if args.events_page_size_max and "--events-page-size-max" not in fake_flags():
        raise BenchmarkError(
            "the fake has no --events-page-size-max flag (python -m fake_klaviyo --help), "
            "though FakeKlaviyo(page_size_max=...) supports it"
        )
    with tempfile.TemporaryDirectory(prefix="tap-klaviyo-bench-") as tmp:
        workdir = Path(tmp)
        setting = common.concurrency_setting(workdir)
        common.print_header()
        if args.tap is not None:
            print(f"--tap: {args.tap}")
        page = args.events_page_size_max or f"the spec's {SPEC_PAGE_SIZE_MAX}"
        print(f"pinning: {common.pinning(args)}; /api/events page size up to {page}; seed {args.seed}")
        ctx = Context(args, setting)
        exact = True
        for name in args.scenarios:
            variants = SCENARIOS[name](ctx, workdir)
            # The tap's data decides the exit status; a failed yardstick run is reported and left out of the ratios.
            exact &= all(r.exact for v in variants if not v.reader for r in v.runs)
            for v in variants:
                if v.reader and (failed := sum(not r.exact for r in v.runs)):
                    print(f"  note: the reference reader failed in {failed} round(s), left out of the ratios")
    return exact


if __name__ == "__main__":
    sys.exit(main())
