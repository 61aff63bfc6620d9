"""How fast the tap extracts the `profiles` stream from the fake Klaviyo, how much memory it takes, and whether
it gets every profile exactly once.

Run from the repository root: ``.venv/bin/python -m benchmarks.profiles [--scenario latency steady memory]``.

As in ``benchmarks/events.py`` (this script shares no code with it, so that either can change alone): the fake
runs in its own process (``python -m fake_klaviyo --profiles N``) and the real ``tap-klaviyo`` command in
another, each pinned to a core of its own, the tap's stdout written to a file. Requests are counted from
urllib3's one DEBUG line per response, switched on for that logger alone through ``SINGER_SDK_LOG_CONFIG``.
The fake's profiles are rebuilt here from the same seed, and every run's output is checked against them: each
profile once, none unknown, oldest ``updated`` first.

Speed is reported, never asserted: the exit status is 1 only when profiles are missing, duplicated, unknown or
out of order (2 when the benchmark cannot run at all).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parent.parent
# The console script next to this interpreter: works for .venv and any other venv.
TAP = Path(sys.executable).with_name("tap-klaviyo")
API_KEY = "pk_benchmark_0123456789abcdef01234567"
STREAM = "profiles"
PAGE_SIZE = 100  # /api/profiles' largest page[size]
BURST_PER_SECOND = 75  # /api/profiles' rate limits (tap_klaviyo/endpoints.py, the fake's spec)
STEADY_PER_MINUTE = 750
STEADY_PER_SECOND = STEADY_PER_MINUTE / 60
# The fake's account needs some events; one per email metric keeps its start-up short (profiles are what count).
EVENTS_PER_METRIC = 1
STOP_GRACE_SECONDS = 10.0  # after SIGINT, before SIGKILL
POLL_SECONDS = 0.01
MAX_PROBLEMS_SHOWN = 8

DEFAULT_SIZES = {"latency": 20_000, "steady": 180_000, "memory": 1_000_000}
TARGET_LATENCY_WALL = 10.0
TARGET_STEADY_SHARE = 85.0
TARGET_RSS_MB = 200

# Only urllib3's request lines are added to the tap's usual INFO log.
LOG_CONFIG = """\
version: 1
incremental: true
loggers:
  urllib3.connectionpool:
    level: DEBUG
"""
# urllib3: `http://host:port "GET /api/profiles?... HTTP/1.1" 200 1234`; cursor pages may use `/api/profiles/?...`.
REQUEST_LINE = re.compile(
    rb'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d{3}) .*"GET (/api/profiles[/?][^"]*) HTTP/[\d.]+" (\d{3})\b'
)
# tap_klaviyo/progress.py: `profiles: 12,300 records, 125 requests, 0 throttled, through ..., 40% of the range,
# about 30s left, 20s so far`; the summary at the end says `profiles: done: ...` instead.
PROGRESS_LINE = re.compile(rb"\bprofiles: [\d,]+ records, [\d,]+ requests, ")
ETA = re.compile(rb"about [\d,]+s left")


class BenchmarkError(Exception):
    """The benchmark cannot run (exit status 2), as opposed to wrong data (1)."""


# --- what the fake holds ----------------------------------------------------------------------


@dataclass
class Expected:
    """The fake's profile ids, and their `updated` times (epoch seconds), ascending."""

    ids: set[str]
    updated: Sequence[int]


def expected_profiles(seed: int, profiles: int) -> Expected:
    from fake_klaviyo import generate_account

    try:
        account = generate_account(seed, events_per_metric=EVENTS_PER_METRIC, profiles=profiles)
    except ValueError as exc:
        raise BenchmarkError(f"the fake cannot hold {profiles:,} profiles: {exc}") from None
    store = account.profiles
    return Expected(set(store.ids), sorted(store.updated))


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


def cpu_seconds(pid: int) -> float:
    """A process's user and system CPU time so far, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def high_water_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM) in KiB; 0 once it has exited or where /proc has none."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Fake:
    """`python -m fake_klaviyo --profiles N` in its own process, on its own core; stopped with Ctrl-C."""

    def __init__(
        self, *, seed: int, profiles: int, latency: float, rate_limits: bool, core: int | None, log: Path
    ) -> None:
        argv = [sys.executable, "-m", "fake_klaviyo", "--port", "0", "--api-key", API_KEY, "--seed", str(seed)]
        argv += ["--events-per-metric", str(EVENTS_PER_METRIC), "--profiles", str(profiles)]
        if latency:
            argv += ["--latency", str(latency)]
        if rate_limits:
            argv.append("--rate-limits")
        self.log = log
        with log.open("wb") as stderr:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr)
        pin(self.proc.pid, core)
        self.url = ""

    def wait_ready(self, timeout: float = 900.0) -> str:
        """The URL from the fake's `serving http://...` line (printed once its account is built)."""
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


@contextlib.contextmanager
def running_fake(
    args: argparse.Namespace, workdir: Path, profiles: int, *, latency: float, rate_limits: bool
) -> Iterator[Fake]:
    fake = Fake(
        seed=args.seed,
        profiles=profiles,
        latency=latency,
        rate_limits=rate_limits,
        core=args.fake_core,
        log=workdir / "fake.log",
    )
    try:
        fake.wait_ready()
        yield fake
    finally:
        fake.stop()


def profiles_catalog(url: str, workdir: Path) -> Path:
    """The discovered catalog with only `profiles` selected (it is opt-in), as tests/kit.py `select` does."""
    config = workdir / "discover-config.json"
    config.write_text(json.dumps({"api_key": API_KEY, "api_url": url}))
    proc = subprocess.run(
        [str(TAP), "--config", str(config), "--discover"], cwd=workdir, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchmarkError(f"tap-klaviyo --discover failed: {proc.stderr.strip()[-500:]}")
    catalog = json.loads(proc.stdout)
    if not any(entry["tap_stream_id"] == STREAM for entry in catalog["streams"]):
        raise BenchmarkError(f"tap-klaviyo --discover offers no `{STREAM}` stream")
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] == STREAM
    path = workdir / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


# --- reading the tap's output and log ---------------------------------------------------------


class _Record(msgspec.Struct):
    id: str
    updated: str | None = None


class _Message(msgspec.Struct):
    type: str
    stream: str = ""
    record: _Record | None = None


def epoch_seconds(text: str) -> float:
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def check_output(lines: Iterator[bytes], expected: Expected, *, complete: bool) -> tuple[int, list[str]]:
    """(profile records emitted, problems): each of the fake's profiles exactly once, none unknown, `updated`
    non-decreasing.

    A run stopped early (`complete` False) must have emitted a prefix: every profile updated before its last
    record's `updated`. Its last line may be cut short by the stop.
    """
    decoder = msgspec.json.Decoder(_Message)
    seen: set[str] = set()
    problems: list[str] = []
    counts = dict.fromkeys(("duplicate", "unknown", "out of order", "no updated"), 0)
    records = 0
    last_text, last, at_last = "", float("-inf"), 0  # the newest `updated` so far, and how many records share it
    unreadable: int | None = None  # a bad line is only forgiven as the last one of a stopped run

    def problem(kind: str, text: str) -> None:
        counts[kind] += 1
        if counts[kind] <= 3:
            problems.append(text)

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
        if message.type != "RECORD" or message.stream != STREAM or message.record is None:
            continue
        records += 1
        record = message.record
        if record.id in seen:
            problem("duplicate", f"profile {record.id} emitted twice (line {number})")
        elif record.id not in expected.ids:
            problem("unknown", f"profile {record.id} is not one of the fake's (line {number})")
        seen.add(record.id)
        if record.updated is None:
            problem("no updated", f"profile {record.id} has no `updated` (line {number})")
            continue
        if record.updated == last_text:
            at_last += 1
            continue
        moment = epoch_seconds(record.updated)
        if moment > last:
            last, last_text, at_last = moment, record.updated, 1
        elif moment == last:
            at_last += 1  # the same instant spelled differently
        else:
            problem("out of order", f"profile {record.id} updated {record.updated} after {last_text} (line {number})")
    if unreadable is not None and complete:
        problems.append(f"line {unreadable} of the tap's output is not a Singer message")

    got = len(seen & expected.ids)
    if complete and got != len(expected.ids):
        problems.append(f"{len(expected.ids) - got:,} of the fake's {len(expected.ids):,} profiles missing")
    elif not complete and last_text:
        older = bisect_left(expected.updated, last)
        emitted_older = len(seen) - at_last
        if emitted_older != older:
            problems.append(
                f"{older:,} profiles were updated before the last one emitted ({last_text}), "
                f"{emitted_older:,} of them emitted"
            )
    for kind, count in counts.items():
        if count > 3:
            problems.append(f"... {count:,} {kind} profiles in all")
    return records, problems


@dataclass
class Requests:
    """What urllib3's DEBUG lines say about /api/profiles."""

    count: int = 0
    throttled: int = 0
    first: datetime.datetime | None = None
    last: datetime.datetime | None = None
    # Pages per time window (its `filter`, which Klaviyo's `links.next` URLs carry too), the newest-record probe
    # (`sort=-updated`) left out: how many pages a worker read one after another.
    windows: Counter[str] = field(default_factory=Counter)

    @property
    def longest_window(self) -> int:
        return max(self.windows.values(), default=0)

    @property
    def span(self) -> float:
        return (self.last - self.first).total_seconds() if self.first and self.last else 0.0

    @property
    def rate(self) -> float | None:
        """Requests per second over the profiles phase, first to last response."""
        return (self.count - 1) / self.span if self.count > 1 and self.span > 0 else None


def count_requests(lines: Iterator[bytes]) -> Requests | None:
    """/api/profiles responses, their first and last time and the 429s, from the tap's log (None: no lines)."""
    found = Requests()
    for line in lines:
        if b"/api/profiles" not in line or not (match := REQUEST_LINE.match(line)):
            continue
        moment = datetime.datetime.strptime(match.group(1).decode().replace(".", ","), "%Y-%m-%d %H:%M:%S,%f")
        found.count += 1
        found.throttled += match.group(3) == b"429"
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(match.group(2).decode()).query)
        if query.get("sort") != ["-updated"]:
            found.windows[query.get("filter", [""])[0]] += 1
        found.first = moment if found.first is None else min(found.first, moment)
        found.last = moment if found.last is None else max(found.last, moment)
    return found if found.count else None


def progress_lines(lines: Iterator[bytes]) -> tuple[int, int, str | None]:
    """(the stream's progress lines, those with an ETA, one with an ETA, else any) from the tap's log."""
    count = with_eta = 0
    example: str | None = None
    for line in lines:
        if not PROGRESS_LINE.search(line):
            continue
        count += 1
        has_eta = bool(ETA.search(line))
        with_eta += has_eta
        if example is None or (has_eta and not ETA.search(example.encode())):
            example = line.decode(errors="replace").rstrip()
    return count, with_eta, example


def last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if "| DEBUG " not in line]
    return lines[-1][-300:] if lines else "no message"


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float  # seconds from start to exit, or to the stop signal of a capped run
    profiles: int
    requests: Requests | None
    rss_mb: float
    tap_cpu: float  # seconds of CPU, user and system
    fake_cpu: float
    exact: bool
    capped: bool
    problems: list[str] = field(default_factory=list)
    progress: tuple[int, int, str | None] = (0, 0, None)

    @property
    def request_rate(self) -> float | None:
        return self.requests.rate if self.requests else None


def run_tap(
    config: dict[str, Any],
    catalog: Path,
    workdir: Path,
    expected: Expected,
    fake: Fake,
    *,
    cap: float | None,
    core: int | None,
) -> Run:
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    log_config = workdir / "logging.yml"
    log_config.write_text(LOG_CONFIG)
    out, err = workdir / "tap.jsonl", workdir / "tap.log"
    argv = [str(TAP), "--config", str(config_path), "--catalog", str(catalog)]
    # A caller's TAP_KLAVIYO_* settings or LOGLEVEL=DEBUG would change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KLAVIYO_") and k != "LOGLEVEL"}
    env["SINGER_SDK_LOG_CONFIG"] = str(log_config)

    fake_cpu = cpu_seconds(fake.proc.pid)
    start = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, cwd=workdir, env=env)
    pin(proc.pid, core)
    stopped_at: float | None = None
    killed = False
    peak_kib = 0
    while True:
        # Not ru_maxrss: a child started by (v)fork and exec reports its parent's peak if that is higher, and this
        # process holds every expected profile id. VmHWM is the tap's own high-water mark since its exec.
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
    fake_cpu = cpu_seconds(fake.proc.pid) - fake_cpu
    returncode = os.waitstatus_to_exitcode(status)

    capped = stopped_at is not None
    with out.open("rb") as lines:
        profiles, problems = check_output(lines, expected, complete=not capped)
    if not capped and returncode != 0:
        problems.insert(0, f"tap-klaviyo exited with {returncode}: {last_error(err)}")
    with err.open("rb") as lines:
        requests = count_requests(lines)
    with err.open("rb") as lines:
        progress = progress_lines(lines)
    out.unlink()
    return Run(
        wall=stopped_at if capped else wall,
        profiles=profiles,
        requests=requests,
        rss_mb=(peak_kib or usage.ru_maxrss) / 1024,
        tap_cpu=usage.ru_utime + usage.ru_stime,
        fake_cpu=fake_cpu,
        exact=not problems,
        capped=capped,
        problems=problems,
        progress=progress,
    )


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


def variants(default_concurrency: int | None, cap: float | None) -> list[Variant]:
    """The tap's defaults, and one page at a time (`concurrency: 1`, stopped after `cap` seconds), the baseline."""
    label = f"concurrency {default_concurrency} (default)" if default_concurrency else "default"
    return [Variant(label, {}), Variant("concurrency 1", {"concurrency": 1}, cap=cap, baseline=True)]


def rounds(repeat: int, items: list[Variant]) -> Iterator[Variant]:
    # Interleaved, so that a noisy neighbour hurts every variant alike.
    for _ in range(repeat):
        yield from items


def measure(
    args: argparse.Namespace, variant: Variant, catalog: Path, workdir: Path, expected: Expected, fake: Fake
) -> Run:
    run = run_tap(
        {"api_key": API_KEY, "api_url": fake.url, **variant.config},
        catalog,
        workdir,
        expected,
        fake,
        cap=variant.cap,
        core=args.tap_core,
    )
    variant.runs.append(run)
    note = " (stopped at the cap)" if run.capped else ""
    requests = run.requests
    print(
        f"  {variant.label}: {run.wall:.1f} s, {run.profiles:,} profiles, "
        f"{fmt(requests.count if requests else None, '{:,}')} requests "
        f"({fmt(requests.throttled if requests else None, '{}')} 429s), {fmt(run.request_rate, '{:.1f}')} req/s, "
        f"peak RSS {run.rss_mb:.0f} MB, {'exact' if run.exact else 'WRONG'}{note}",
        flush=True,
    )
    for text in run.problems[:MAX_PROBLEMS_SHOWN]:
        print(f"    ! {text}")
    return run


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def share(rate: float | None) -> float | None:
    """Requests per second as a percentage of /api/profiles' steady limit."""
    return None if rate is None else rate / STEADY_PER_SECOND * 100


def print_table(title: str, items: list[Variant], rate_limited: bool, pages: int) -> None:
    base = next((v for v in items if v.baseline and v.runs), None)
    base_rps = base.median(lambda r: r.request_rate) if base else None
    headers = [
        "variant",
        "wall s",
        "profiles",
        "profiles/s",
        "requests",
        "req/s",
        "% steady",
        "429s",
        "peak RSS MB",
        "tap CPU",
        "fake CPU",
        "exact",
        "req/s x",
    ]
    rows = []
    for v in items:
        if not v.runs:
            continue
        rps = v.median(lambda r: r.request_rate)
        rows.append(
            [
                v.label + (" *" if any(r.capped for r in v.runs) else ""),
                fmt(v.median(lambda r: r.wall), "{:.1f}"),
                fmt(v.median(lambda r: r.profiles), "{:,.0f}"),
                fmt(v.median(lambda r: r.profiles / r.wall if r.wall else None), "{:,.0f}"),
                fmt(v.median(lambda r: r.requests.count if r.requests else None), "{:,.0f}"),
                fmt(rps, "{:.2f}"),
                fmt(share(rps) if rate_limited else None, "{:.0f}%"),
                fmt(v.median(lambda r: r.requests.throttled if r.requests else None), "{:.0f}"),
                fmt(v.median(lambda r: r.rss_mb), "{:.0f}"),
                fmt(v.median(lambda r: r.tap_cpu / r.wall if r.wall else None), "{:.0%}"),
                fmt(v.median(lambda r: r.fake_cpu / r.wall if r.wall else None), "{:.0%}"),
                "yes" if all(r.exact for r in v.runs) else "NO",
                fmt(rps / base_rps if rps and base_rps else None, "{:.1f}x"),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    for cells in (headers, *rows):
        print(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        )
    runs = max(len(v.runs) for v in items)
    notes = [f"medians of {runs} runs" if runs > 1 else "one run each"]
    if any(r.capped for v in items for r in v.runs):
        notes.append("* stopped at the cap: rates over the time it ran, output checked as a prefix of the stream")
    if any(v.runs and v.runs[0].requests is None for v in items):
        notes.append("requests: no urllib3 request lines for /api/profiles in the tap's log")
    notes.append(f"{pages:,} pages of {PAGE_SIZE} hold these profiles, the fewest requests that can fetch them")
    if not rate_limited:
        notes.append(
            f"the tap paces /api/profiles to Klaviyo's limits ({STEADY_PER_MINUTE}/min) even when the fake enforces "
            "none: that, not CPU, sets the pace of a run over a minute"
        )
    for text in notes:
        print(f"  {text}")


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --- scenarios --------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    default_concurrency: int | None
    catalog: Path | None = None

    def catalog_for(self, url: str, workdir: Path) -> Path:
        if self.catalog is None:
            self.catalog = profiles_catalog(url, workdir)
        return self.catalog

    def size(self, scenario: str) -> int:
        return self.args.profiles or DEFAULT_SIZES[scenario]


def pages(n: int) -> int:
    return -(-n // PAGE_SIZE)


def paced_minutes(n: int) -> float:
    """About how long the tap's pacer takes over the pages of `n` profiles: it sends up to 95% of a minute's
    allowance at 90% of the burst, then waits for the minute to pass (a sliding window)."""
    steady, burst = int(STEADY_PER_MINUTE * 0.95), int(BURST_PER_SECOND * 0.9)
    minutes, rest = divmod(max(pages(n) - 1, 0), steady)
    return minutes + rest / burst / 60


def rate_limited_runs(ctx: Context, workdir: Path, n: int, items: list[Variant]) -> None:
    """Each run against a freshly started fake: its rate-limit windows start empty, as a scheduled run's would."""
    args = ctx.args
    expected = expected_profiles(args.seed, n)
    for variant in rounds(args.repeat, items):
        with running_fake(args, workdir, n, latency=args.latency, rate_limits=True) as fake:
            measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)


def scenario_latency(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n = ctx.size("latency")
    print(f"\n== latency: {n:,} profiles, {args.latency} s per request, Klaviyo's rate limits", flush=True)
    items = variants(ctx.default_concurrency, args.baseline_seconds or None)
    rate_limited_runs(ctx, workdir, n, items)
    print_table(f"latency ({n:,} profiles, {args.latency} s, rate limits on)", items, True, pages(n))
    default, base = items
    wall = default.median(lambda r: r.wall)
    if wall is not None:
        verdict = met(wall <= TARGET_LATENCY_WALL)
        print(f"  default run: {wall:.1f} s wall (target <= {TARGET_LATENCY_WALL:.0f} s): {verdict}")
    rps, base_rps = default.median(lambda r: r.request_rate), base.median(lambda r: r.request_rate)
    if rps and base_rps:
        print(f"  requests/s against one page at a time: {rps / base_rps:.1f}x")
    windows = default.median(lambda r: len(r.requests.windows) if r.requests else None)
    longest = default.median(lambda r: r.requests.longest_window if r.requests else None)
    if windows and longest:
        # Pages of one window are read one after another, by cursor: the longest sets a floor under the wall time.
        print(
            f"  default run: {windows:.0f} time windows; the longest read {longest:.0f} pages one after another "
            f"(at least {longest * args.latency:.1f} s at {args.latency} s a request)"
        )
    return items


def scenario_steady(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n = ctx.size("steady")
    print(
        f"\n== steady: {n:,} profiles, {args.latency} s per request, Klaviyo's rate limits "
        f"(at {STEADY_PER_MINUTE}/min, about {paced_minutes(n):.1f} min)",
        flush=True,
    )
    items = variants(ctx.default_concurrency, args.baseline_seconds or None)
    rate_limited_runs(ctx, workdir, n, items)
    print_table(f"steady ({n:,} profiles, {args.latency} s, rate limits on)", items, True, pages(n))
    default = items[0]
    rps = default.median(lambda r: r.request_rate)
    throttled = default.median(lambda r: r.requests.throttled if r.requests else None)
    if rps is not None:
        pct = share(rps) or 0.0
        print(
            f"  default run: {rps:.2f} requests/s over the profiles phase, {pct:.0f}% of {STEADY_PER_MINUTE}/min "
            f"(target >= {TARGET_STEADY_SHARE:.0f}%): {met(pct >= TARGET_STEADY_SHARE)}"
        )
        spans = [r.requests.span for r in default.runs if r.requests]
        if spans and max(spans) < 120:
            print(
                f"  the profiles phase lasted {max(spans):.0f} s: the first minute's allowance (a burst) weighs on "
                "the average; run at least 150,000 profiles for the minute limit to set the pace"
            )
    if throttled is not None:
        print(f"  default run: {throttled:.0f} 429s (target 0): {met(throttled == 0)}")
    return items


def scenario_memory(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n = ctx.size("memory")
    print(
        f"\n== memory: {n:,} profiles, no latency, no rate limits (the tap still paces itself: "
        f"about {pages(n) / STEADY_PER_SECOND / 60 * 0.95**-1:.0f} min a run)",
        flush=True,
    )
    items = variants(ctx.default_concurrency, args.baseline_seconds or None)
    fake = Fake(
        seed=args.seed, profiles=n, latency=0.0, rate_limits=False, core=args.fake_core, log=workdir / "fake.log"
    )
    try:
        expected = expected_profiles(args.seed, n)  # while the fake builds the same account
        fake.wait_ready()
        for variant in rounds(args.repeat, items):
            measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)
    finally:
        fake.stop()
    print_table(f"memory ({n:,} profiles, no latency)", items, False, pages(n))
    default = items[0]
    rss = default.median(lambda r: r.rss_mb)
    if rss is not None:
        print(f"  default run: peak RSS {rss:.0f} MB (target < {TARGET_RSS_MB} MB): {met(rss < TARGET_RSS_MB)}")
    for run in default.runs:
        count, with_eta, example = run.progress
        print(f"  progress lines for profiles: {count} ({with_eta} with an ETA) in a {run.wall:.0f} s run")
    example = next((r.progress[2] for r in default.runs if r.progress[2]), None)
    if example:
        print(f"  e.g. {example}")
    if not any(r.progress[1] for r in default.runs):
        print("  no progress line with an ETA (the tap logs one every 30 s: a shorter run has none)")
    return items


SCENARIOS = {"latency": scenario_latency, "steady": scenario_steady, "memory": scenario_memory}


# --- main -------------------------------------------------------------------------------------


def tap_version() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
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


def default_concurrency(workdir: Path) -> int | None:
    """The tap's default `concurrency` (tap-klaviyo --about), if it has that setting."""
    proc = subprocess.run(
        [str(TAP), "--about", "--format=json"], cwd=workdir, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchmarkError(f"tap-klaviyo --about failed: {proc.stderr.strip()[-500:]}")
    setting = json.loads(proc.stdout).get("settings", {}).get("properties", {}).get("concurrency")
    if setting is None:
        raise BenchmarkError("the tap has no `concurrency` setting (tap-klaviyo --about): no baseline to compare")
    return setting.get("default")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.profiles",
        description="Measure how fast, and in how much memory, tap-klaviyo extracts the profiles stream from the "
        "fake Klaviyo, checking that every profile arrives exactly once.",
    )
    p.add_argument(
        "--scenario",
        nargs="+",
        choices=[*SCENARIOS, "all"],
        default=["all"],
        help="latency: 20,000 profiles at 0.25 s per request and rate limits; steady: 180,000 so (minutes, the "
        "minute limit sets the pace); memory: peak RSS at 1,000,000, no latency (default: all three)",
    )
    p.add_argument("--profiles", type=int, metavar="N", help="profiles in every scenario (a quick check: 2000)")
    p.add_argument("--repeat", type=int, default=1, help="runs per variant, interleaved; medians are reported")
    p.add_argument("--seed", type=int, default=20261128)
    p.add_argument("--latency", type=float, default=0.25, help="seconds per request in latency and steady")
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=60.0,
        help="stop the concurrency=1 baseline after this long and report its rates (0: no cap)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin the tap and the fake to a core each")
    args = p.parse_args(argv)
    if args.repeat < 1 or (args.profiles is not None and args.profiles < 1):
        p.error("--repeat and --profiles must be at least 1")
    args.scenarios = list(SCENARIOS) if "all" in args.scenario else list(dict.fromkeys(args.scenario))
    args.tap_core, args.fake_core = (None, None) if args.no_pin else cores()
    return args


def run(args: argparse.Namespace) -> bool:
    """Every selected scenario; True when all the data was exact."""
    if not TAP.exists():
        raise BenchmarkError(f"no {TAP}: run scripts/test or scripts/demo first, or use that venv's python")
    with tempfile.TemporaryDirectory(prefix="tap-klaviyo-bench-profiles-") as tmp:
        workdir = Path(tmp)
        ctx = Context(args, default_concurrency(workdir))
        print(f"tap-klaviyo at {tap_version()}; {machine()}")
        pinning = f"tap on core {args.tap_core}, fake on core {args.fake_core}" if args.tap_core is not None else "no"
        print(f"pinning: {pinning}; seed {args.seed}")
        exact = True
        for name in args.scenarios:
            items = SCENARIOS[name](ctx, workdir)
            exact &= all(r.exact for v in items for r in v.runs)
    return exact


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        exact = run(args)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    if not exact:
        print("\nWRONG DATA: some profiles were missing, duplicated, unknown or out of order (see above)")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
