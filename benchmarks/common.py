"""What ``benchmarks/events.py`` and ``benchmarks/profiles.py`` share: the fake Klaviyo in a process of its own,
the tap run as a process pinned to a core (its CPU from ``os.wait4``, its peak RSS from /proc's VmHWM), urllib3's
request lines switched on in its log, the order and problem bookkeeping of the output checks, medians and tables,
the command line's common options and the header lines every run prints.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

REPO = Path(__file__).resolve().parent.parent
# The console script next to this interpreter, as tests/kit.py finds it: works for .venv and any other venv.
TAP = Path(sys.executable).with_name("tap-klaviyo")
API_KEY = "pk_benchmark_0123456789abcdef01234567"
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


class BenchmarkError(Exception):
    """The benchmark cannot run (exit status 2), as opposed to wrong data (1)."""


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


class FakeProcess:
    """`python -m fake_klaviyo` in its own process, on its own core; stopped with Ctrl-C."""

    def __init__(
        self,
        *,
        seed: int,
        events_per_metric: int,
        latency: float,
        rate_limits: bool,
        core: int | None,
        log: Path,
        profiles: int = 0,
        latency_jitter: float = 0.0,
        new_events: int = 0,
        page_size_max: int | None = None,
        spec_times: bool = False,
        flags: Sequence[str] = (),
    ) -> None:
        """`flags`: more of the fake's command line (an account's shape). Every request is logged to `log`'s
        sibling `requests.jsonl` (`python -m fake_klaviyo --request-log`), read by `round_trips`."""
        self.requests = log.with_name("requests.jsonl")
        self.requests.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "fake_klaviyo", "--port", "0", "--api-key", API_KEY]
        argv += ["--request-log", str(self.requests), *flags]
        argv += ["--seed", str(seed), "--events-per-metric", str(events_per_metric)]
        if profiles:
            argv += ["--profiles", str(profiles)]
        if latency:
            argv += ["--latency", str(latency)]
        if latency_jitter:
            argv += ["--latency-jitter", str(latency_jitter)]
        if new_events:
            argv += ["--new-events", str(new_events)]
        if rate_limits:
            argv.append("--rate-limits")
        if page_size_max:
            argv += ["--events-page-size-max", str(page_size_max)]
        if spec_times:
            argv.append("--spec-times")
        self.log = log
        with log.open("wb") as stderr:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr)
        pin(self.proc.pid, core)
        self.url = ""

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def served(self, start: float, end: float) -> list[tuple[float, float]]:
        """When each request the fake served between `start` and `end` (seconds since the epoch) arrived and was
        answered, in that order."""
        spans = []
        with contextlib.suppress(OSError):
            for line in self.requests.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    if start <= entry["start"] and entry["end"] <= end:
                        spans.append((float(entry["start"]), float(entry["end"])))
        return sorted(spans)

    def round_trips(self, start: float, end: float) -> int | None:
        """Round trips on the critical path of the requests served between `start` and `end`: see `critical_path`.
        None when the fake logged none (an older fake)."""
        spans = self.served(start, end)
        return critical_path(spans) if spans else None

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


@contextlib.contextmanager
def running_fake(args: argparse.Namespace, workdir: Path, **kwargs: Any) -> Iterator[FakeProcess]:
    """A fake with `args.seed`, on `args.fake_core`, its log in `workdir`, ready to serve."""
    with FakeProcess(seed=args.seed, core=args.fake_core, log=workdir / "fake.log", **kwargs) as fake:
        fake.wait_ready()
        yield fake


@dataclass
class Process:
    """What `run_process` saw of a process: its wall time, rusage, peak RSS and exit code, and the CPU time another
    process (the fake) spent meanwhile."""

    wall: float
    cpu: float
    peak_kib: int
    returncode: int
    stopped_at: float | None
    started: float  # time.time() at the start, to place its log's request times
    fake_cpu: float

    @property
    def capped(self) -> bool:
        return self.stopped_at is not None

    @property
    def rss_mb(self) -> float:
        return self.peak_kib / 1024

    def outcome(self, problems: list[str]) -> dict[str, Any]:
        """What every benchmark's record of a run holds: wall time (to the stop signal of a capped run), peak RSS,
        CPU of the process and of the fake, whether it was stopped, and exact when there are no `problems`."""
        return {
            "wall": self.stopped_at if self.stopped_at is not None else self.wall,
            "rss_mb": self.rss_mb,
            "cpu": self.cpu,
            "fake_cpu": self.fake_cpu,
            "capped": self.capped,
            "exact": not problems,
            "problems": problems,
        }


def run_process(
    argv: list[str],
    stdout: Path,
    stderr: Path,
    *,
    cwd: Path,
    env: dict[str, str] | None,
    core: int | None,
    cap: float | None,
    fake: FakeProcess,
) -> Process:
    """Run a command to its end (or SIGINT it at `cap` seconds), its output to files, pinned to `core`."""
    fake_cpu = cpu_seconds(fake.proc.pid)
    started = time.time()
    start = time.perf_counter()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env)
    pin(proc.pid, core)
    stopped_at: float | None = None
    killed = False
    peak_kib = 0
    while True:
        # Not ru_maxrss: a child started by (v)fork and exec reports the parent's peak if that is higher, and
        # this process holds every expected id. VmHWM is the child's own high-water mark since its exec.
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
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_utime + ru_stime: the child's CPU, every thread of it (only ru_maxrss is not the child's own).
    return Process(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_kib=peak_kib or usage.ru_maxrss,
        returncode=proc.returncode,
        stopped_at=stopped_at,
        started=started,
        fake_cpu=cpu_seconds(fake.proc.pid) - fake_cpu,
    )


def tap_command(
    url: str,
    settings: dict[str, Any],
    catalog: Path | None,
    workdir: Path,
    *,
    tap: Path = TAP,
    state: bytes | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of a run of `tap` against the fake at `url` with `settings`: its config, catalog and
    state written to `workdir`, urllib3's request lines switched on in its log."""
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps({"api_key": API_KEY, "api_url": url, **settings}))
    log_config = workdir / "logging.yml"
    log_config.write_text(LOG_CONFIG)
    argv = [str(tap), "--config", str(config_path)]
    if catalog is not None:
        argv += ["--catalog", str(catalog)]
    if state is not None:
        (workdir / "state.json").write_bytes(state)
        argv += ["--state", str(workdir / "state.json")]
    # A caller's TAP_KLAVIYO_* settings or LOGLEVEL=DEBUG would change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KLAVIYO_") and k != "LOGLEVEL"}
    env["SINGER_SDK_LOG_CONFIG"] = str(log_config)
    return argv, env


def last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if "| DEBUG " not in line]
    return lines[-1][-300:] if lines else "no message"


def log_time(stamp: bytes) -> datetime.datetime:
    """A log line's `2026-12-02 10:11:12,345` (or `.345`)."""
    return datetime.datetime.strptime(stamp.decode().replace(".", ","), "%Y-%m-%d %H:%M:%S,%f")


def tap_json(*argv: str, cwd: Path, tap: Path = TAP, what: str = "") -> Any:
    """`tap-klaviyo ARGV`'s JSON output; `what` names the command in the error (default: its argv)."""
    proc = subprocess.run([str(tap), *argv], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchmarkError(f"tap-klaviyo {what or ' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def concurrency_setting(workdir: Path, *, what: str = "") -> dict[str, Any] | None:
    """The tap's `concurrency` setting (tap-klaviyo --about), if it has one."""
    about = tap_json("--about", "--format=json", cwd=workdir, what=what)
    return about.get("settings", {}).get("properties", {}).get("concurrency")


def discover(url: str, workdir: Path, *, what: str = "") -> dict[str, Any]:
    """The tap's catalog of the fake at `url`."""
    config = workdir / "discover-config.json"
    config.write_text(json.dumps({"api_key": API_KEY, "api_url": url}))
    return tap_json("--config", str(config), "--discover", cwd=workdir, what=what)


def write_selected(catalog: dict[str, Any], selected: Callable[[str], bool], workdir: Path) -> Path:
    """`catalog` with only the streams `selected` says yes to, selected, written to `workdir`. The others are left out
    rather than deselected: a tap reads no stream its catalog does not name, and a tap of another commit (a
    baseline, which may lack some streams) refuses a catalog naming a stream it does not have."""
    catalog = {**catalog, "streams": [entry for entry in catalog["streams"] if selected(entry["tap_stream_id"])]}
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = True
    path = workdir / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def critical_path(spans: Iterable[tuple[float, float]]) -> int:
    """The longest chain of requests (start, end) each of which started after the one before it was answered: the
    round trips a run waited for one after another, whatever it overlapped beside them (a request's latency at
    least, each, on its wall time)."""
    ordered = sorted(spans)
    by_end = sorted(range(len(ordered)), key=lambda i: ordered[i][1])
    depth = [0] * len(ordered)
    deepest_ended = 0  # the deepest chain among the requests answered before the current one started
    k = 0
    for i, (start, _end) in enumerate(ordered):
        while k < len(by_end) and ordered[by_end[k]][1] <= start:
            deepest_ended = max(deepest_ended, depth[by_end[k]])
            k += 1
        depth[i] = deepest_ended + 1
    return max(depth, default=0)


# --- checking output --------------------------------------------------------------------------


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 time; UTC when it names no zone."""
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def epoch_seconds(text: str) -> float:
    return parse_time(text).timestamp()


class Problems(list[str]):
    """What is wrong with a run's output: the first three of each kind in full, the rest counted."""

    def __init__(self, kinds: Iterable[str]) -> None:
        super().__init__()
        self.counts = dict.fromkeys(kinds, 0)

    def add(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= 3:
            self.append(text)

    def add_totals(self, noun: str, number: str = "{:,}") -> None:
        """`... N <kind> <noun> in all` for each kind with more than three."""
        for kind, count in self.counts.items():
            if count > 3:
                self.append(f"... {number.format(count)} {kind} {noun} in all")


M = TypeVar("M")


def messages(
    lines: Iterable[bytes], decode: Callable[[bytes], M], *, problems: list[str], complete: bool
) -> Iterator[tuple[int, M]]:
    """(line number, message) of each line `decode` can read. A line it cannot is a problem, unless it is the last
    one of a run stopped early (`complete` False), which the stop may have cut short."""
    unreadable: int | None = None
    for number, line in enumerate(lines, 1):
        if unreadable is not None:
            problems.append(f"line {unreadable} of the tap's output is not a Singer message")
            unreadable = None
        try:
            message = decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            if line.strip():
                unreadable = number
            continue
        yield number, message
    if unreadable is not None and complete:
        problems.append(f"line {unreadable} of the tap's output is not a Singer message")


@dataclass
class Order:
    """A stream's records in time order: the newest time so far (epoch seconds, and as sent) and how many records
    share it."""

    last_text: str = ""
    last: float = -math.inf
    at_last: int = 0

    def add(self, text: str) -> bool:
        """Take a record's time; False when it is older than the newest so far."""
        if text == self.last_text:
            self.at_last += 1
            return True
        moment = epoch_seconds(text)
        if moment > self.last:
            self.last, self.last_text, self.at_last = moment, text, 1
        elif moment == self.last:
            self.at_last += 1  # the same instant spelled differently
        else:
            return False
        return True

    def prefix(self, times: Sequence[int], emitted: int) -> tuple[int, int] | None:
        """For a run stopped early: (records older than the newest sent, of those sent), when they differ. `times`:
        every record's time in whole seconds, ascending; `emitted`: how many distinct records were sent."""
        if not self.last_text:
            return None
        older = bisect_left(times, math.ceil(self.last))
        emitted_older = emitted - self.at_last
        return None if emitted_older == older else (older, emitted_older)


# --- variants, medians, tables ----------------------------------------------------------------

R = TypeVar("R")


@dataclass
class Variant(Generic[R]):
    label: str
    config: dict[str, Any]
    cap: float | None = None
    baseline: bool = False  # the same-run baseline the others are compared with
    runs: list[R] = field(default_factory=list)

    def median(self, value: Callable[[R], float | None]) -> float | None:
        values = [v for v in map(value, self.runs) if v is not None]
        return statistics.median(values) if values else None


V = TypeVar("V", bound=Variant)


def concurrency_variants(make: type[V], default: int | None, cap: float | None, *, baseline: bool = True) -> list[V]:
    """The tap at its default concurrency, and one page at a time (`concurrency: 1`, stopped after `cap` seconds)."""
    label = f"concurrency {default} (default)" if default is not None else "default"
    return [make(label, {}), make("concurrency 1", {"concurrency": 1}, cap=cap, baseline=baseline)]


def rounds(repeat: int, variants: list[V]) -> Iterator[V]:
    # Interleaved, so that a noisy neighbour hurts every variant alike.
    for _ in range(repeat):
        yield from variants


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """The title, then the rows under their headers: the first column left-aligned, figures right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    for cells in (headers, *rows):
        print(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        )


def runs_note(variants: Sequence[Variant]) -> str:
    runs = max(len(v.runs) for v in variants)
    return f"medians of {runs} runs" if runs > 1 else "one run each"


def print_problems(problems: list[str]) -> None:
    for text in problems[:MAX_PROBLEMS_SHOWN]:
        print(f"    ! {text}")


# --- the command line -------------------------------------------------------------------------


def add_scenario_argument(p: argparse.ArgumentParser, scenarios: Iterable[str], help: str) -> None:
    p.add_argument("--scenario", nargs="+", choices=[*scenarios, "all"], default=["all"], help=help)


def add_repeat_and_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeat", type=int, default=1, help="runs per variant, interleaved; medians are reported")
    p.add_argument("--seed", type=int, default=20261128)


def add_no_pin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-pin", action="store_true", help="do not pin the tap and the fake to a core each")


def settle_args(args: argparse.Namespace, scenarios: Iterable[str]) -> argparse.Namespace:
    """`args.scenarios` (every one for `all`, each once, in order), and the cores to pin the tap and fake to."""
    args.scenarios = list(scenarios) if "all" in args.scenario else list(dict.fromkeys(args.scenario))
    args.tap_core, args.fake_core = (None, None) if args.no_pin else cores()
    return args


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


def check_tap() -> None:
    if not TAP.exists():
        raise BenchmarkError(f"no {TAP}: run scripts/test or scripts/demo first, or use that venv's python")


def compile_tap(tap: Path = TAP) -> None:
    """Compile the tap's modules to bytecode, as `pip install` does: an editable install (this repository's, or
    another commit's worktree) run with PYTHONDONTWRITEBYTECODE set would compile them from source on every run,
    a start-up no user's pays."""
    python = tap.with_name("python")
    where = subprocess.run(
        [str(python), "-c", "import os, tap_klaviyo; print(os.path.dirname(tap_klaviyo.__file__))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if where.returncode == 0:
        subprocess.run([str(python), "-m", "compileall", "-q", where.stdout.strip()], capture_output=True, check=False)


def print_header() -> None:
    print(f"tap-klaviyo at {tap_version()}; {machine()}")


def pinning(args: argparse.Namespace) -> str:
    if args.tap_core is None:
        return "no"
    return f"tap on core {args.tap_core}, fake on core {args.fake_core}"


def main(args: argparse.Namespace, run: Callable[[argparse.Namespace], bool], what: str) -> int:
    """Exit status 0 when every run's data was exact, 1 when not (`what`: the records checked), 2 when the
    benchmark could not run."""
    try:
        exact = run(args)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    if not exact:
        print(f"\nWRONG DATA: some {what} were missing, duplicated, unknown or out of order (see above)")
    return 0 if exact else 1
