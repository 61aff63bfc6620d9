"""How fast the tap extracts the six email-event streams from the fake Klaviyo, and whether it gets them right.

Run from the repository root: ``.venv/bin/python -m benchmarks.events [--scenario latency cpu memory]``.

The fake runs in its own process (``python -m fake_klaviyo``) and the real ``tap-klaviyo`` command in
another, each pinned to a core of its own, the tap's stdout written to a file. The fake logs nothing per request
and the tap's INFO log only counts them per stream, so request counts and times come from urllib3's one DEBUG
line per response, switched on for that logger alone through the SDK's ``SINGER_SDK_LOG_CONFIG`` (and checked
against the tap's own counts). Every event is checked against the fake's account, rebuilt here from the same
seed: delivered once, and in ``datetime`` order per stream.

Speed is reported, never asserted: the exit status is 1 only when events are missing, duplicated, unknown or
out of order (2 when the benchmark cannot run at all).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import platform
import pstats
import re
import selectors
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from fake_klaviyo import ENDPOINTS, generate_account
from tap_klaviyo.streams.table import STREAMS

REPO = Path(__file__).resolve().parent.parent
# The console script next to this interpreter, as tests/kit.py finds it: works for .venv and any other venv.
TAP = Path(sys.executable).with_name("tap-klaviyo")
API_KEY = "pk_benchmark_0123456789abcdef01234567"
EMAIL_EVENTS = tuple((row.name, row.metric) for row in STREAMS if row.metric)
EVENT_STREAMS = tuple(name for name, _ in EMAIL_EVENTS)
STEADY_PER_SECOND = ENDPOINTS["events"].steady / 60  # /api/events: 3,500 a minute
SPEC_PAGE_SIZE_MAX = ENDPOINTS["events"].page_size.max if ENDPOINTS["events"].page_size else 1000
STOP_GRACE_SECONDS = 10.0  # after SIGINT, before SIGKILL
POLL_SECONDS = 0.01
MAX_PROBLEMS_SHOWN = 8

# Only urllib3's request lines are added to the tap's usual INFO log, so the tap does no extra work worth measuring.
LOG_CONFIG = """\
version: 1
incremental: true
loggers:
  urllib3.connectionpool:
    level: DEBUG
"""
# urllib3: `http://host:port "GET /api/events?... HTTP/1.1" 200 1234`; cursor pages use `/api/events/?...`.
REQUEST_LINE = re.compile(
    rb'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d{3}) .*"GET /api/events[/?][^"]* HTTP/[\d.]+" (\d{3})\b'
)

ANY_REQUEST_LINE = re.compile(rb'"GET /api/[^"]* HTTP/[\d.]+" \d{3}\b')
TAP_SUMMARY = re.compile(rb"\| \w+: done: [\d,]+ records, ([\d,]+) requests")

DEFAULT_SIZES = {"latency": 20_000, "cpu": 200_000, "memory": math.ceil(1_000_000 / len(EVENT_STREAMS))}
TARGET_REQUEST_RATIO = 15.0
TARGET_STEADY_SHARE = 85.0
TARGET_EVENTS_PER_SECOND = 50_000
TARGET_RSS_MB = 200


class BenchmarkError(Exception):
    """The benchmark cannot run (exit status 2), as opposed to wrong data (1)."""


# --- what the fake holds ----------------------------------------------------------------------


@dataclass
class Expected:
    """Each event stream's event ids and their ascending timestamps, as the fake serves them."""

    ids: dict[str, set[str]]
    timestamps: dict[str, Sequence[int]]


def expected_events(seed: int, events_per_metric: int) -> Expected:
    account = generate_account(seed, events_per_metric=events_per_metric)
    store = account.events
    ids: dict[str, set[str]] = {}
    timestamps: dict[str, Sequence[int]] = {}
    for stream, metric_name in EMAIL_EVENTS:
        metric = account.metric_by_name(metric_name)  # Klaviyo's own metric, not the same-named decoy
        if metric is None:
            raise BenchmarkError(f"the generated account has no metric {metric_name!r}")
        index = store.metric_index[metric["id"]]
        ids[stream] = {store.event_id(p) for p in store.by_metric[index]}
        timestamps[stream] = store.ts_by_metric[index]
    return Expected(ids, timestamps)


# --- processes --------------------------------------------------------------------------------


def cores() -> tuple[int | None, int | None]:
    """(tap core, fake core): two different cores when there are two, else no pinning."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else (None, None)


def pin(pid: int, core: int | None) -> None:
    # Set right after start, before the process starts threads: its threads inherit the affinity.
    if core is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {core})


def fake_flags() -> str:
    return subprocess.run(
        [sys.executable, "-m", "fake_klaviyo", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


class FakeProcess:
    """`python -m fake_klaviyo` in its own process, on its own core; stopped with Ctrl-C."""

    def __init__(
        self,
        *,
        seed: int,
        events_per_metric: int,
        latency: float,
        rate_limits: bool,
        page_size_max: int | None,
        core: int | None,
        log: Path,
    ) -> None:
        argv = [sys.executable, "-m", "fake_klaviyo", "--port", "0", "--api-key", API_KEY]
        argv += ["--seed", str(seed), "--events-per-metric", str(events_per_metric)]
        if latency:
            argv += ["--latency", str(latency)]
        if rate_limits:
            argv.append("--rate-limits")
        if page_size_max:
            argv += ["--events-page-size-max", str(page_size_max)]
        self.log = log
        with log.open("wb") as stderr:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr)
        pin(self.proc.pid, core)
        self.url = ""

    def wait_ready(self, timeout: float = 900.0) -> str:
        """The URL from the fake's `serving http://...` line (it prints it once its account is built)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=0.5):
                    line = self.proc.stdout.readline().decode(errors="replace")
                    if match := re.search(r"http://\S+", line):
                        self.url = match.group(0)
                        return self.url
                    if not line:
                        break
                if self.proc.poll() is not None:
                    break
        self.stop()
        tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
        raise BenchmarkError(f"the fake Klaviyo did not start: {' | '.join(tail) or 'no output'}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def cpu_seconds(self) -> float:
        """User and system CPU time so far, from /proc (0 where there is none)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running_fake(
    args: argparse.Namespace, workdir: Path, events_per_metric: int, **kwargs: Any
) -> Iterator[FakeProcess]:
    fake = FakeProcess(
        seed=args.seed,
        events_per_metric=events_per_metric,
        page_size_max=args.events_page_size_max,
        core=args.fake_core,
        log=workdir / "fake.log",
        **kwargs,
    )
    try:
        fake.wait_ready()
        yield fake
    finally:
        fake.stop()


def tap_json(*argv: str, cwd: Path) -> Any:
    proc = subprocess.run([str(TAP), *argv], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchmarkError(f"tap-klaviyo {' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def event_catalog(url: str, workdir: Path) -> Path:
    """The discovered catalog with only the six event streams selected."""
    config = workdir / "discover-config.json"
    config.write_text(json.dumps({"api_key": API_KEY, "api_url": url}))
    catalog = tap_json("--config", str(config), "--discover", cwd=workdir)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in EVENT_STREAMS
    path = workdir / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float  # seconds from start to exit, or to the stop signal of a capped run
    events: int
    requests: int | None  # None: no request lines in the tap's log
    request_rate: float | None  # over the events phase: first to last /api/events response
    throttled: int | None
    rss_mb: float
    tap_cpu: float  # seconds of CPU, user and system
    fake_cpu: float
    exact: bool
    capped: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: Path | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall if self.wall else 0.0


def run_tap(
    config: dict[str, Any],
    catalog: Path,
    workdir: Path,
    expected: Expected,
    fake: FakeProcess,
    *,
    cap: float | None,
    core: int | None,
    cprofile: bool,
) -> Run:
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    log_config = workdir / "logging.yml"
    log_config.write_text(LOG_CONFIG)
    out, err, profile = workdir / "tap.jsonl", workdir / "tap.log", workdir / "tap.prof"
    argv = [str(TAP), "--config", str(config_path), "--catalog", str(catalog)]
    if cprofile:
        argv = [sys.executable, "-m", "cProfile", "-o", str(profile), *argv]
    # A caller's TAP_KLAVIYO_* settings or LOGLEVEL=DEBUG would change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KLAVIYO_") and k != "LOGLEVEL"}
    env["SINGER_SDK_LOG_CONFIG"] = str(log_config)

    fake_cpu = fake.cpu_seconds()
    start = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, cwd=workdir, env=env)
    pin(proc.pid, core)
    stopped_at: float | None = None
    killed = False
    peak_kib = 0
    while True:
        # Not ru_maxrss: a child started by (v)fork and exec reports the parent's peak if that is higher, and
        # this process holds every expected event id. VmHWM is the tap's own high-water mark since its exec.
        peak_kib = max(peak_kib, high_water_kib(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.perf_counter() - start
        if cap and stopped_at is None and elapsed >= cap:
            proc.send_signal(signal.SIGINT)  # SIGINT, not SIGTERM: Python flushes stdout on the way out
            stopped_at = elapsed
        elif stopped_at is not None and not killed and elapsed >= stopped_at + STOP_GRACE_SECONDS:
            proc.kill()
            killed = True
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - start
    fake_cpu = fake.cpu_seconds() - fake_cpu
    proc.returncode = os.waitstatus_to_exitcode(status)

    capped = stopped_at is not None
    events, problems = check_output(out, expected, complete=not capped)
    if not capped and proc.returncode != 0:
        problems.insert(0, f"tap-klaviyo exited with {proc.returncode}: {last_error(err)}")
    requests, rate, throttled = count_requests(err)
    notes = []
    tap_says, all_requests = requests_logged_by_tap(err), count_all_requests(err)
    # A stopped run logs no summary for the stream it was in.
    if not capped and tap_says is not None and all_requests and tap_says != all_requests:
        notes.append(f"the tap's summaries count {tap_says:,} requests, urllib3 logged {all_requests:,}")
    out.unlink()
    return Run(
        wall=stopped_at if capped else wall,
        events=events,
        requests=requests,
        request_rate=rate,
        throttled=throttled,
        rss_mb=(peak_kib or usage.ru_maxrss) / 1024,
        tap_cpu=usage.ru_utime + usage.ru_stime,
        fake_cpu=fake_cpu,
        exact=not problems,
        capped=capped,
        problems=problems,
        notes=notes,
        profile=profile if cprofile else None,
    )


def high_water_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM) in KiB; 0 once it has exited or where /proc has none."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if "| DEBUG " not in line]
    return lines[-1][-300:] if lines else "no message"


def count_requests(log: Path) -> tuple[int | None, float | None, int | None]:
    """(requests to /api/events, their rate per second, 429s) from the tap's log."""
    times: list[datetime.datetime] = []
    throttled = 0
    with log.open("rb") as lines:
        for line in lines:
            if b"/api/events" not in line:
                continue
            match = REQUEST_LINE.match(line)
            if match:
                times.append(
                    datetime.datetime.strptime(match.group(1).decode().replace(".", ","), "%Y-%m-%d %H:%M:%S,%f")
                )
                throttled += match.group(2) == b"429"
    if not times:
        return None, None, None
    span = (max(times) - min(times)).total_seconds()
    rate = (len(times) - 1) / span if len(times) > 1 and span > 0 else None
    return len(times), rate, throttled


def count_all_requests(log: Path) -> int:
    """Requests to any endpoint: the tap's summaries also count its one /api/metrics read."""
    return len(ANY_REQUEST_LINE.findall(log.read_bytes()))


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
    record: _Record | None = None


@dataclass
class _StreamCheck:
    seen: set[str] = field(default_factory=set)
    last_text: str = ""
    last: datetime.datetime | None = None
    at_last: int = 0  # records sharing the last datetime


def parse_datetime(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def check_output(path: Path, expected: Expected, *, complete: bool) -> tuple[int, list[str]]:
    """(event records emitted, problems): each event of the fake's exactly once, in datetime order per stream.

    A run stopped early (`complete` False) must have emitted a prefix of each stream: nothing older than its last
    record missing. Its last line may be cut short by the stop.
    """
    decoder = msgspec.json.Decoder(_Message)
    checks = {stream: _StreamCheck() for stream in EVENT_STREAMS}
    problems: list[str] = []
    counts = dict.fromkeys(("duplicate", "unknown", "out of order", "no datetime"), 0)
    events = 0
    unreadable: int | None = None  # a bad line is only forgiven as the last one of a stopped run

    def problem(kind: str, text: str) -> None:
        counts[kind] += 1
        if counts[kind] <= 3:
            problems.append(text)

    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if unreadable is not None:
                problems.append(f"line {unreadable} of the tap's output is not a Singer message")
                unreadable = None
            try:
                message = decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                if line.strip():
                    unreadable = number
                continue
            if message.type != "RECORD" or message.stream not in checks or message.record is None:
                continue
            events += 1
            record, check = message.record, checks[message.stream]
            if record.id in check.seen:
                problem("duplicate", f"{message.stream}: event {record.id} emitted twice (line {number})")
            elif record.id not in expected.ids[message.stream]:
                problem("unknown", f"{message.stream}: event {record.id} is not one of the fake's (line {number})")
            check.seen.add(record.id)
            if record.datetime is None:
                problem("no datetime", f"{message.stream}: event {record.id} has no datetime (line {number})")
                continue
            if record.datetime == check.last_text:
                check.at_last += 1
                continue
            moment = parse_datetime(record.datetime)
            if check.last is None or moment > check.last:
                check.last, check.last_text, check.at_last = moment, record.datetime, 1
            elif moment == check.last:
                check.at_last += 1  # the same instant spelled differently
            else:
                problem(
                    "out of order",
                    f"{message.stream}: event {record.id} at {record.datetime} after {check.last_text} (line {number})",
                )
    if unreadable is not None and complete:
        problems.append(f"line {unreadable} of the tap's output is not a Singer message")

    for stream, check in checks.items():
        wanted = expected.ids[stream]
        got = len(check.seen & wanted) if check.seen else 0
        if complete and got != len(wanted):
            problems.append(f"{stream}: {len(wanted) - got} of the fake's {len(wanted)} events missing")
        elif not complete and check.last is not None:
            older = bisect_left(expected.timestamps[stream], math.ceil(check.last.timestamp()))
            emitted_older = len(check.seen) - check.at_last
            if emitted_older != older:
                problems.append(
                    f"{stream}: {older} events are older than its last one ({check.last_text}), "
                    f"{emitted_older} of them emitted"
                )
    for kind, count in counts.items():
        if count > 3:
            problems.append(f"... {count} {kind} events in all")
    return events, problems


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
class Variant:
    label: str
    config: dict[str, Any]
    cap: float | None = None
    baseline: bool = False
    runs: list[Run] = field(default_factory=list)

    def median(self, value: Callable[[Run], float | None]) -> float | None:
        values = [v for v in map(value, self.runs) if v is not None]
        return statistics.median(values) if values else None


def measure(
    args: argparse.Namespace, variant: Variant, catalog: Path, workdir: Path, expected: Expected, fake: FakeProcess
) -> None:
    run = run_tap(
        {"api_key": API_KEY, "api_url": fake.url, **variant.config},
        catalog,
        workdir,
        expected,
        fake,
        cap=variant.cap,
        core=args.tap_core,
        cprofile=args.cprofile,
    )
    variant.runs.append(run)
    note = " (stopped at the cap)" if run.capped else ""
    print(
        f"  {variant.label}: {run.wall:.1f} s, {run.events:,} events, {fmt(run.requests, '{:,}')} requests, "
        f"peak RSS {run.rss_mb:.0f} MB, {'exact' if run.exact else 'WRONG'}{note}",
        flush=True,
    )
    for text in run.problems[:MAX_PROBLEMS_SHOWN]:
        print(f"    ! {text}")
    for text in run.notes:
        print(f"    note: {text}")
    if run.profile is not None:
        print(top_costs(run.profile))


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def print_table(title: str, variants: list[Variant], rate_limited: bool, pages: int | None = None) -> None:
    """One row per variant (medians); `pages`: how many full pages hold the events, the fewest requests."""
    base = next((v for v in variants if v.baseline and v.runs), None)
    base_rps = base.median(lambda r: r.request_rate) if base else None
    base_eps = base.median(lambda r: r.events_per_second) if base else None
    headers = [
        "variant",
        "wall s",
        "events",
        "events/s",
        "requests",
        "req/s",
        "% steady",
        "429s",
        "peak RSS MB",
        "tap CPU",
        "fake CPU",
        "exact",
        "req/s x",
        "events/s x",
    ]
    rows = []
    for v in variants:
        if not v.runs:
            continue
        rps, eps = v.median(lambda r: r.request_rate), v.median(lambda r: r.events_per_second)
        share = rps / STEADY_PER_SECOND * 100 if rps is not None and rate_limited else None
        capped = any(r.capped for r in v.runs)
        rows.append(
            [
                v.label + (" *" if capped else ""),
                fmt(v.median(lambda r: r.wall), "{:.1f}"),
                fmt(v.median(lambda r: r.events), "{:,.0f}"),
                fmt(eps, "{:,.0f}"),
                fmt(v.median(lambda r: r.requests), "{:,.0f}"),
                fmt(rps, "{:.1f}"),
                fmt(share, "{:.0f}%"),
                fmt(v.median(lambda r: r.throttled), "{:.0f}"),
                fmt(v.median(lambda r: r.rss_mb), "{:.0f}"),
                fmt(v.median(lambda r: r.tap_cpu / r.wall if r.wall else None), "{:.0%}"),
                fmt(v.median(lambda r: r.fake_cpu / r.wall if r.wall else None), "{:.0%}"),
                "yes" if all(r.exact for r in v.runs) else "NO",
                fmt(rps / base_rps if rps and base_rps else None, "{:.1f}x"),
                fmt(eps / base_eps if eps and base_eps else None, "{:.1f}x"),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    for cells in (headers, *rows):
        # The variant left-aligned, figures right-aligned.
        print(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        )
    runs = max(len(v.runs) for v in variants)
    notes = [f"medians of {runs} runs" if runs > 1 else "one run each"]
    if any(r.capped for v in variants for r in v.runs):
        notes.append("* stopped at the cap: rates over the time it ran, output checked as a prefix of each stream")
    if any(v.runs and v.runs[0].requests is None for v in variants):
        notes.append("requests: no urllib3 request lines in the tap's log (is it still using requests?)")
    if not rate_limited and any((r.requests or 0) > ENDPOINTS["events"].steady for v in variants for r in v.runs):
        notes.append(
            f"over {ENDPOINTS['events'].steady:,} requests, a minute's worth: the tap paces itself to Klaviyo's steady "
            "limit even when the fake enforces none, so that limit, not CPU, may set the pace"
        )
    if pages:
        notes.append(f"{pages:,} pages hold these events, the fewest requests that can fetch them")
    for text in notes:
        print(f"  {text}")


def concurrency_variants(setting: dict[str, Any] | None, cap: float | None) -> list[Variant]:
    if setting is None:
        return [Variant("default", {})]
    default = setting.get("default")
    label = f"concurrency {default} (default)" if default is not None else "concurrency default"
    return [Variant(label, {}), Variant("concurrency 1", {"concurrency": 1}, cap=cap, baseline=True)]


def rounds(args: argparse.Namespace, variants: list[Variant]) -> Iterator[Variant]:
    # Interleaved, so that a noisy neighbour hurts every variant alike.
    for _ in range(args.repeat):
        yield from variants


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


def scenario_latency(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n = size_of(args, "latency")
    print(
        f"\n== latency: {args.latency} s per request, Klaviyo's rate limits, {n:,} events per metric "
        f"({n * len(EVENT_STREAMS):,} events)",
        flush=True,
    )
    if ctx.concurrency is None:
        print("  the tap has no `concurrency` setting (tap-klaviyo --about): no one-page-at-a-time comparison")
    variants = concurrency_variants(ctx.concurrency, args.baseline_seconds or None)
    expected = expected_events(args.seed, n)
    for variant in rounds(args, variants):
        # A fresh fake per run: each run starts with the rate-limit windows empty, as a scheduled run would.
        with running_fake(args, workdir, n, latency=args.latency, rate_limits=True) as fake:
            measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)
    print_table(
        f"latency ({args.latency} s, rate limits on, {n:,} events per metric)",
        variants,
        rate_limited=True,
        pages=pages(args, n),
    )
    default, base = variants[0], next((v for v in variants if v.baseline), None)
    rps = default.median(lambda r: r.request_rate)
    if rps is not None:
        print(
            f"  share of /api/events' steady limit ({STEADY_PER_SECOND:.1f}/s): {rps / STEADY_PER_SECOND:.0%} "
            f"(target >= {TARGET_STEADY_SHARE:.0f}%)"
        )
        spans = [r.requests / r.request_rate for r in default.runs if r.requests and r.request_rate]
        if spans and max(spans) < 60:
            print("  the default run's events phase lasted under a minute: only the burst window was exercised")
    if base is not None and rps is not None and (base_rps := base.median(lambda r: r.request_rate)):
        print(
            f"  requests/s against one page at a time: {rps / base_rps:.1f}x (target about {TARGET_REQUEST_RATIO:.0f}x)"
        )
    return variants


def scenario_cpu(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n = size_of(args, "cpu")
    print(
        f"\n== cpu: no latency, no rate limits, {n:,} events per metric ({n * len(EVENT_STREAMS):,} events)", flush=True
    )
    variants = concurrency_variants(ctx.concurrency, None)
    expected = expected_events(args.seed, n)
    with running_fake(args, workdir, n, latency=0.0, rate_limits=False) as fake:
        for variant in rounds(args, variants):
            measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)
    print_table(f"cpu (no latency, {n:,} events per metric)", variants, rate_limited=False, pages=pages(args, n))
    for v in variants:
        if (eps := v.median(lambda r: r.events_per_second)) is not None:
            print(f"  {v.label}: {eps:,.0f} events/s (target >= {TARGET_EVENTS_PER_SECOND:,})")
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
    print_table("memory (no latency, default settings)", variants, rate_limited=False)
    big, small = (v.median(lambda r: r.rss_mb) for v in variants)
    if big is not None and small:
        print(f"  peak RSS {big:.0f} MB (target < {TARGET_RSS_MB} MB); {big / small:.2f}x the quarter-size run's")
    return variants


SCENARIOS = {"latency": scenario_latency, "cpu": scenario_cpu, "memory": scenario_memory}


# --- main -------------------------------------------------------------------------------------


def tap_version() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # The figures depend on the fake's speed as well as the tap's.
    dirty = [path for path in ("tap_klaviyo/", "fake_klaviyo/") if git("status", "--porcelain", "--", path)]
    return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores{', ' + model if model else ''}, Python {platform.python_version()}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.events",
        description="Measure how fast tap-klaviyo extracts the six email-event streams from the fake Klaviyo.",
    )
    p.add_argument(
        "--scenario",
        nargs="+",
        choices=[*SCENARIOS, "all"],
        default=["all"],
        help="latency: 0.25 s per request and rate limits; cpu: no latency, big account; "
        "memory: peak RSS at 1M events and a quarter of that (default: all three)",
    )
    p.add_argument(
        "--events-per-metric",
        type=int,
        help="events per email metric (defaults: latency 20,000; cpu 200,000; memory 166,667, and a quarter)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per variant; medians are reported")
    p.add_argument("--seed", type=int, default=20261128)
    p.add_argument("--latency", type=float, default=0.25, help="the latency scenario's seconds per request")
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=60.0,
        help="stop the latency scenario's concurrency=1 run after this long and report its rates (0: no cap)",
    )
    p.add_argument(
        "--events-page-size-max",
        type=int,
        help="the fake's largest page[size] for /api/events (Klaviyo's prose says 200, its schema 1000)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin the tap and the fake to a core each")
    p.add_argument(
        "--cprofile", action="store_true", help="run the tap under cProfile and print its top costs (slows it)"
    )
    args = p.parse_args(argv)
    if args.repeat < 1 or (args.events_per_metric is not None and args.events_per_metric < 1):
        p.error("--repeat and --events-per-metric must be at least 1")
    args.scenarios = list(SCENARIOS) if "all" in args.scenario else list(dict.fromkeys(args.scenario))
    args.tap_core, args.fake_core = (None, None) if args.no_pin else cores()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        exact = run(args)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    if not exact:
        print("\nWRONG DATA: some events were missing, duplicated, unknown or out of order (see above)")
    return 0 if exact else 1


def run(args: argparse.Namespace) -> bool:
    """Every selected scenario; True when all the data was exact."""
    if not TAP.exists():
        raise BenchmarkError(f"no {TAP}: run scripts/test or scripts/demo first, or use that venv's python")
    if args.events_page_size_max and "--events-page-size-max" not in fake_flags():
        raise BenchmarkError(
            "the fake has no --events-page-size-max flag (python -m fake_klaviyo --help), "
            "though FakeKlaviyo(page_size_max=...) supports it"
        )
    with tempfile.TemporaryDirectory(prefix="tap-klaviyo-bench-") as tmp:
        workdir = Path(tmp)
        about = tap_json("--about", "--format=json", cwd=workdir)
        setting = about.get("settings", {}).get("properties", {}).get("concurrency")
        print(f"tap-klaviyo at {tap_version()}; {machine()}")
        pinning = f"tap on core {args.tap_core}, fake on core {args.fake_core}" if args.tap_core is not None else "no"
        page = args.events_page_size_max or f"the spec's {SPEC_PAGE_SIZE_MAX}"
        print(f"pinning: {pinning}; /api/events page size up to {page}; seed {args.seed}")
        ctx = Context(args, setting)
        exact = True
        for name in args.scenarios:
            variants = SCENARIOS[name](ctx, workdir)
            exact &= all(r.exact for v in variants for r in v.runs)
    return exact


if __name__ == "__main__":
    sys.exit(main())
