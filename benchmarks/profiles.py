"""How fast the tap extracts the `profiles` stream from the fake Klaviyo, how much memory it takes, and whether
it gets every profile exactly once.

Run from the repository root: ``.venv/bin/python -m benchmarks.profiles [--scenario latency steady memory]``.

As in ``benchmarks/events.py`` (the two share ``benchmarks/common.py``): the fake
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
import re
import sys
import tempfile
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from benchmarks import common
from benchmarks.common import BenchmarkError, FakeProcess, Order, Problems, fmt, rounds
from benchmarks.common import epoch_seconds as epoch_seconds  # for tests/test_benchmark_profiles.py
from tap_klaviyo.endpoints import PROFILES

STREAM = "profiles"
PAGE_SIZE = PROFILES.page_sizes[0]  # /api/profiles' largest page[size]
BURST_PER_SECOND = PROFILES.burst_per_second
STEADY_PER_MINUTE = PROFILES.steady_per_minute
STEADY_PER_SECOND = STEADY_PER_MINUTE / 60
# The fake's account needs some events; one per email metric keeps its start-up short (profiles are what count).
EVENTS_PER_METRIC = 1

DEFAULT_SIZES = {"latency": 20_000, "steady": 180_000, "memory": 1_000_000}
TARGET_LATENCY_WALL = 6.0
TARGET_STEADY_SHARE = 85.0
TARGET_RSS_MB = 200

# urllib3: `http://host:port "GET /api/profiles?... HTTP/1.1" 200 1234`; cursor pages may use `/api/profiles/?...`.
REQUEST_LINE = re.compile(
    rb'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d{3}) .*"GET (/api/profiles[/?][^"]*) HTTP/[\d.]+" (\d{3})\b'
)
# tap_klaviyo/progress.py: `profiles: 12,300 records, 125 requests, 0 throttled, through ..., 40% of the range,
# about 30s left, 20s so far`; the summary at the end says `profiles: done: ...` instead.
PROGRESS_LINE = re.compile(rb"\bprofiles: [\d,]+ records, [\d,]+ requests, ")
ETA = re.compile(rb"about [\d,]+s left")


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


def running_fake(
    args: argparse.Namespace, workdir: Path, profiles: int, *, latency: float, rate_limits: bool
) -> contextlib.AbstractContextManager[FakeProcess]:
    return common.running_fake(
        args,
        workdir,
        events_per_metric=EVENTS_PER_METRIC,
        profiles=profiles,
        latency=latency,
        rate_limits=rate_limits,
    )


def profiles_catalog(url: str, workdir: Path) -> Path:
    """The discovered catalog with only `profiles` selected (it is opt-in), as tests/kit.py `select` does."""
    catalog = common.discover(url, workdir, what="--discover")
    if not any(entry["tap_stream_id"] == STREAM for entry in catalog["streams"]):
        raise BenchmarkError(f"tap-klaviyo --discover offers no `{STREAM}` stream")
    return common.write_selected(catalog, lambda stream: stream == STREAM, workdir)


# --- reading the tap's output and log ---------------------------------------------------------


class _Record(msgspec.Struct):
    id: str
    updated: str | None = None


class _Message(msgspec.Struct):
    type: str
    stream: str = ""
    record: _Record | None = None


def check_output(lines: Iterator[bytes], expected: Expected, *, complete: bool) -> tuple[int, list[str]]:
    """(profile records emitted, problems): each of the fake's profiles exactly once, none unknown, `updated`
    non-decreasing.

    A run stopped early (`complete` False) must have emitted a prefix: every profile updated before its last
    record's `updated`. Its last line may be cut short by the stop.
    """
    decode = msgspec.json.Decoder(_Message).decode
    seen: set[str] = set()
    problems = Problems(("duplicate", "unknown", "out of order", "no updated"))
    problem = problems.add
    order = Order()  # the newest `updated` so far, and how many records share it
    records = 0
    for number, message in common.messages(lines, decode, problems=problems, complete=complete):
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
        if not order.add(record.updated):
            problem(
                "out of order", f"profile {record.id} updated {record.updated} after {order.last_text} (line {number})"
            )

    got = len(seen & expected.ids)
    if complete and got != len(expected.ids):
        problems.append(f"{len(expected.ids) - got:,} of the fake's {len(expected.ids):,} profiles missing")
    elif not complete and (prefix := order.prefix(expected.updated, len(seen))):
        older, emitted_older = prefix
        problems.append(
            f"{older:,} profiles were updated before the last one emitted ({order.last_text}), "
            f"{emitted_older:,} of them emitted"
        )
    problems.add_totals("profiles")
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
        moment = common.log_time(match.group(1))
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


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float  # seconds from start to exit, or to the stop signal of a capped run
    profiles: int
    requests: Requests | None
    rss_mb: float
    cpu: float  # seconds of CPU of the tap, user and system
    fake_cpu: float
    exact: bool
    capped: bool
    problems: list[str] = field(default_factory=list)
    progress: tuple[int, int, str | None] = (0, 0, None)

    @property
    def request_rate(self) -> float | None:
        return self.requests.rate if self.requests else None


def run_tap(
    args: argparse.Namespace, variant: Variant, catalog: Path, workdir: Path, expected: Expected, fake: FakeProcess
) -> Run:
    argv, env = common.tap_command(fake.url, variant.config, catalog, workdir, tap=variant.tap)
    out, err = workdir / "tap.jsonl", workdir / "tap.log"
    proc = common.run_process(argv, out, err, cwd=workdir, env=env, core=args.tap_core, cap=variant.cap, fake=fake)

    with out.open("rb") as lines:
        profiles, problems = check_output(lines, expected, complete=not proc.capped)
    if not proc.capped and proc.returncode != 0:
        problems.insert(0, f"tap-klaviyo exited with {proc.returncode}: {common.last_error(err)}")
    with err.open("rb") as lines:
        requests = count_requests(lines)
    with err.open("rb") as lines:
        progress = progress_lines(lines)
    out.unlink()
    return Run(**proc.outcome(problems), profiles=profiles, requests=requests, progress=progress)


# --- variants, medians, tables ----------------------------------------------------------------


@dataclass
class Variant(common.Variant["Run"]):
    """The tap with some settings, and its runs."""

    tap: Path = common.TAP


def variants(default_concurrency: int | None, cap: float | None, tap: Path | None = None) -> list[Variant]:
    """The tap's defaults, then the baseline: `tap` (another venv's, at its default settings) if given, and one
    page at a time (`concurrency: 1`, stopped after `cap` seconds)."""
    default, one = common.concurrency_variants(Variant, default_concurrency, cap, baseline=tap is None)
    if tap is None:
        return [default, one]
    where = tap.parents[2] if len(tap.parents) > 2 and tap.parent.parent.name == ".venv" else tap
    return [default, Variant(f"--tap {where} (default settings)", {}, tap=tap, baseline=True), one]


def measure(
    args: argparse.Namespace, variant: Variant, catalog: Path, workdir: Path, expected: Expected, fake: FakeProcess
) -> Run:
    run = run_tap(args, variant, catalog, workdir, expected, fake)
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
    common.print_problems(run.problems)
    return run


def share(rate: float | None) -> float | None:
    """Requests per second as a percentage of /api/profiles' steady limit."""
    return None if rate is None else rate / STEADY_PER_SECOND * 100


def print_table(title: str, items: list[Variant], rate_limited: bool, pages: int) -> None:
    base = next((v for v in items if v.baseline and v.runs), None)
    base_rps = base.median(lambda r: r.request_rate) if base else None
    # A baseline stopped at the cap has no wall time to compare with.
    base_wall = base.median(lambda r: r.wall) if base and not any(r.capped for r in base.runs) else None
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
        "speed-up",
    ]
    rows = []
    for v in items:
        if not v.runs:
            continue
        rps = v.median(lambda r: r.request_rate)
        wall = None if any(r.capped for r in v.runs) else v.median(lambda r: r.wall)
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
                fmt(v.median(lambda r: r.cpu / r.wall if r.wall else None), "{:.0%}"),
                fmt(v.median(lambda r: r.fake_cpu / r.wall if r.wall else None), "{:.0%}"),
                "yes" if all(r.exact for r in v.runs) else "NO",
                fmt(rps / base_rps if rps and base_rps else None, "{:.1f}x"),
                fmt(base_wall / wall if base_wall and wall else None, "{:.2f}x"),
            ]
        )
    common.print_table(title, headers, rows)
    notes = [common.runs_note(items)]
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

    def start(self, header: str) -> list[Variant]:
        """Print the scenario's header; the variants to run."""
        print(f"\n== {header}", flush=True)
        return variants(self.default_concurrency, self.args.baseline_seconds or None, self.args.tap)


def pages(n: int) -> int:
    return -(-n // PAGE_SIZE)


def paced_minutes(n: int) -> float:
    """About how long the tap's pacer takes over the pages of `n` profiles: it sends up to 95% of a minute's
    allowance at 90% of the burst, then waits for the minute to pass (a sliding window)."""
    steady, burst = int(STEADY_PER_MINUTE * 0.95), int(BURST_PER_SECOND * 0.9)
    minutes, rest = divmod(max(pages(n) - 1, 0), steady)
    return minutes + rest / burst / 60


def rate_limited_runs(ctx: Context, workdir: Path, scenario: str, n: int, header: str) -> list[Variant]:
    """The scenario's runs and table. Each run against a freshly started fake: its rate-limit windows start empty,
    as a scheduled run's would."""
    args = ctx.args
    items = ctx.start(header)
    expected = expected_profiles(args.seed, n)
    for variant in rounds(args.repeat, items):
        with running_fake(args, workdir, n, latency=args.latency, rate_limits=True) as fake:
            measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)
    print_table(f"{scenario} ({n:,} profiles, {args.latency} s, rate limits on)", items, True, pages(n))
    return items


def scenario_latency(ctx: Context, workdir: Path) -> list[Variant]:
    args = ctx.args
    n = ctx.size("latency")
    header = f"latency: {n:,} profiles, {args.latency} s per request, Klaviyo's rate limits"
    items = rate_limited_runs(ctx, workdir, "latency", n, header)
    default, one = items[0], items[-1]
    wall = default.median(lambda r: r.wall)
    if wall is not None:
        verdict = met(wall <= TARGET_LATENCY_WALL)
        print(f"  default run: {wall:.1f} s wall (target <= {TARGET_LATENCY_WALL:.0f} s): {verdict}")
    rps, base_rps = default.median(lambda r: r.request_rate), one.median(lambda r: r.request_rate)
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
    header = (
        f"steady: {n:,} profiles, {args.latency} s per request, Klaviyo's rate limits "
        f"(at {STEADY_PER_MINUTE}/min, about {paced_minutes(n):.1f} min)"
    )
    items = rate_limited_runs(ctx, workdir, "steady", n, header)
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
    items = ctx.start(
        f"memory: {n:,} profiles, no latency, no rate limits (the tap still paces itself: "
        f"about {pages(n) / STEADY_PER_SECOND / 60 * 0.95**-1:.0f} min a run)"
    )
    with FakeProcess(
        seed=args.seed,
        events_per_metric=EVENTS_PER_METRIC,
        profiles=n,
        latency=0.0,
        rate_limits=False,
        core=args.fake_core,
        log=workdir / "fake.log",
    ) as fake:
        expected = expected_profiles(args.seed, n)  # while the fake builds the same account
        fake.wait_ready()
        for variant in rounds(args.repeat, items):
            measure(args, variant, ctx.catalog_for(fake.url, workdir), workdir, expected, fake)
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


def default_concurrency(workdir: Path) -> int | None:
    """The tap's default `concurrency` (tap-klaviyo --about), if it has that setting."""
    setting = common.concurrency_setting(workdir, what="--about")
    if setting is None:
        raise BenchmarkError("the tap has no `concurrency` setting (tap-klaviyo --about): no baseline to compare")
    return setting.get("default")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.profiles",
        description="Measure how fast, and in how much memory, tap-klaviyo extracts the profiles stream from the "
        "fake Klaviyo, checking that every profile arrives exactly once.",
    )
    common.add_scenario_argument(
        p,
        SCENARIOS,
        "latency: 20,000 profiles at 0.25 s per request and rate limits; steady: 180,000 so (minutes, the "
        "minute limit sets the pace); memory: peak RSS at 1,000,000, no latency (default: all three)",
    )
    p.add_argument("--profiles", type=int, metavar="N", help="profiles in every scenario (a quick check: 2000)")
    common.add_repeat_and_seed(p)
    p.add_argument("--latency", type=float, default=0.25, help="seconds per request in latency and steady")
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=60.0,
        help="stop the concurrency=1 baseline after this long and report its rates (0: no cap)",
    )
    p.add_argument(
        "--tap",
        type=Path,
        help="another tap-klaviyo executable (e.g. a previous commit's venv's) run as the same-run baseline",
    )
    common.add_no_pin(p)
    args = p.parse_args(argv)
    if args.repeat < 1 or (args.profiles is not None and args.profiles < 1):
        p.error("--repeat and --profiles must be at least 1")
    return common.settle_args(args, SCENARIOS)


def run(args: argparse.Namespace) -> bool:
    """Every selected scenario; True when all the data was exact."""
    common.check_tap()
    if args.tap is not None and not args.tap.exists():
        raise BenchmarkError(f"no {args.tap} (--tap)")
    for tap in (common.TAP, *([args.tap] if args.tap else [])):
        common.compile_tap(tap)
    with tempfile.TemporaryDirectory(prefix="tap-klaviyo-bench-profiles-") as tmp:
        workdir = Path(tmp)
        ctx = Context(args, default_concurrency(workdir))
        common.print_header()
        print(f"pinning: {common.pinning(args)}; seed {args.seed}")
        exact = True
        for name in args.scenarios:
            items = SCENARIOS[name](ctx, workdir)
            exact &= all(r.exact for v in items for r in v.runs)
    return exact


def main(argv: list[str] | None = None) -> int:
    return common.main(parse_args(argv), run, "profiles")


if __name__ == "__main__":
    sys.exit(main())
