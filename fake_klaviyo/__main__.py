"""Serve a generated account until Ctrl-C: ``python -m fake_klaviyo --port 8000``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .clock import EVENT_SPAN_DAYS
from .data import Account, generate_account
from .layout import EventLayout
from .server import FakeKlaviyo, Faults
from .transport import RequestRecord


class RequestLog:
    """One JSON line per request served: its path, query, status, and when it arrived and was answered (seconds
    since the epoch, so that another process can place it beside its own times)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.offset = time.time() - time.monotonic()

    def __call__(self, record: RequestRecord) -> None:
        start = record.started + self.offset
        line = {"start": start, "end": start + record.duration, "path": record.path, "status": record.status}
        line["query"] = {key: values[0] if len(values) == 1 else values for key, values in record.query.items()}
        with self.lock:
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()


def metric_events(text: str) -> tuple[str, int]:
    """`NAME=N`, for --metric-events."""
    name, _, count = text.rpartition("=")
    if not name or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=N (e.g. 'Opened Email=100000'), not {text!r}")
    return name, int(count)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m fake_klaviyo", description="Fake Klaviyo API on loopback.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", default="pk_fake_klaviyo", help="the private key clients must send")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--events-per-metric", type=int, default=300)
    p.add_argument(
        "--profiles",
        type=int,
        metavar="N",
        help="how many profiles (default: those the events name and a quarter more; about 13 s and 0.3 GB a million)",
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds slept per request")
    p.add_argument(
        "--latency-jitter",
        type=float,
        default=0.0,
        metavar="S",
        help="each request sleeps the latency plus a uniform draw in [-S, +S], never below 0",
    )
    p.add_argument(
        "--new-events",
        type=int,
        default=0,
        metavar="N",
        help="N more events per email metric, dated in the day after the rest (for an incremental run after a "
        "full one against the same seed without them)",
    )
    p.add_argument(
        "--spec-times",
        action="store_true",
        help='write events\' datetime and consent timestamps as the spec does ("T"), not as Klaviyo does (a space)',
    )
    p.add_argument(
        "--event-span-days",
        type=float,
        default=EVENT_SPAN_DAYS,
        metavar="D",
        help=f"the events lie in the D days before the generator's now (default {EVENT_SPAN_DAYS}; 7: a young "
        "account's last week, 2922: eight years)",
    )
    p.add_argument(
        "--bursts",
        type=int,
        default=0,
        metavar="N",
        help="N campaign sends over that span, each putting events in the hour after it (most in its first minutes)",
    )
    p.add_argument(
        "--burst-share", type=float, default=0.8, metavar="F", help="the share of events in the sends' hours (0.8)"
    )
    p.add_argument(
        "--metric-events",
        type=metric_events,
        action="append",
        default=[],
        metavar="NAME=N",
        help="N events for this built-in email metric instead of --events-per-metric (repeatable)",
    )
    p.add_argument(
        "--rate-limits",
        action="store_true",
        help="enforce the spec's per-endpoint limits (and the report queries' daily quota of 225)",
    )
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests given a random fault")
    p.add_argument(
        "--events-page-size-max",
        type=int,
        metavar="N",
        help="largest page[size] /api/events accepts (default: the spec's 1000)",
    )
    p.add_argument(
        "--metrics-page-size", type=int, default=200, metavar="N", help="metrics per /api/metrics page (default: 200)"
    )
    p.add_argument(
        "--report-page-size",
        type=int,
        default=500,
        metavar="N",
        help="results per page of the report queries (Klaviyo does not document its own; default: 500)",
    )
    p.add_argument(
        "--no-prewarm",
        dest="prewarm",
        action="store_false",
        help="serve at once and JSON-encode each event on first request, rather than all before serving "
        "(about 20 s and 0.5 GB per million events)",
    )
    p.add_argument(
        "--request-log",
        type=Path,
        metavar="FILE",
        help="append a JSON line per request to FILE: path, query, status, start and end (seconds since the epoch)",
    )
    args = p.parse_args(argv)
    if args.events_page_size_max is not None and args.events_page_size_max < 1:
        p.error("--events-page-size-max must be at least 1")
    if args.latency < 0 or args.latency_jitter < 0 or args.new_events < 0:
        p.error("--latency, --latency-jitter and --new-events must not be negative")
    if args.metrics_page_size < 1 or args.report_page_size < 1:
        p.error("--metrics-page-size and --report-page-size must be at least 1")

    try:
        account = generate_account(
            args.seed,
            events_per_metric=args.events_per_metric,
            new_events=args.new_events,
            profiles=args.profiles,
            spec_times=args.spec_times,
            layout=EventLayout(args.event_span_days, args.bursts, args.burst_share, dict(args.metric_events)),
        )
    except ValueError as e:
        p.error(str(e))
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(args.request_log.open("a", encoding="utf-8")) if args.request_log else None
        serve(args, account, RequestLog(log) if log else None)


def serve(args: argparse.Namespace, account: Account, observe: Callable[[RequestRecord], None] | None) -> None:
    fake = FakeKlaviyo(
        account,
        api_key=args.api_key,
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        rate_limits=args.rate_limits,
        faults=Faults(args.fault_rate) if args.fault_rate else None,
        page_size_max={"events": args.events_page_size_max} if args.events_page_size_max else None,
        metrics_page_size=args.metrics_page_size,
        report_page_size=args.report_page_size,
        host=args.host,
        port=args.port,
        observe=observe,
    )
    if args.prewarm:
        started = time.monotonic()
        size = fake.encode_events()
        print(
            f"encoded {len(account.events)} events ({size / 1e6:.0f} MB) in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    with fake:
        print(
            f"fake Klaviyo serving {fake.url} (seed {args.seed}, {len(account.events)} events, "
            f"{len(account.profiles)} profiles); Ctrl-C stops",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
