"""What the report streams cost under Klaviyo's real limits: requests and wall time of a backfill, then of the next
day's run (the lookback only), against the fake with the spec's limits (1 a second, 2 a minute, 225 a day per
report query) and its pages of `--page-size` results (Klaviyo does not document its own).

    .venv/bin/python -m benchmarks.reports                     # 3 years, 300 flows, 5,000 campaigns: about 20 min
    .venv/bin/python -m benchmarks.reports --days 40 --flows 20 --campaigns 100    # a quick check of the script

The tap runs as a user runs it, the two report streams selected; every row is checked against the fake's book.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from fake_klaviyo import FakeKlaviyo, generate_account
from fake_klaviyo.report_book import ReportBook
from tests.kit import API_KEY, run_tap, select
from tests.oracle import conversion_metric, expected_reports
from tests.reports_kit import REPORT_STREAMS, key, timeframes, upserted

PATHS = {"campaign_values": "campaign_values_reports", "flow_series": "flow_series_reports"}


def run(fake: FakeKlaviyo, config: dict[str, Any], catalog: dict[str, Any], state: dict | None) -> dict[str, Any]:
    since = len(fake.requests)
    began = time.monotonic()
    result = run_tap(config, catalog=catalog, state=state, timeout=3 * 3600)
    wall = time.monotonic() - began
    if result.returncode != 0:
        raise SystemExit(f"the tap failed: {result.stderr[-2000:]}")
    asked = [r for r in fake.requests[since:] if r.endpoint in PATHS]
    return {
        "result": result,
        "wall": wall,
        "requests": {PATHS[e]: sum(1 for r in asked if r.endpoint == e) for e in PATHS},
        "timeframes": {s: len(timeframes(fake, s, since)) for s in REPORT_STREAMS},
        "throttled": sum(1 for r in asked if r.status == 429),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3 * 365, help="days of the backfill, today included")
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--campaigns", type=int, default=5000)
    parser.add_argument("--page-size", type=int, default=500, help="results per page of the fake's reports")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    account = generate_account(
        args.seed, campaigns=args.campaigns, flows=args.flows, events_per_metric=5, other_events_per_metric=2
    )
    book = ReportBook(account)
    first_day = book.today - timedelta(days=args.days - 1)
    metric = conversion_metric(account)["id"]
    sent = sum(1 for _, day in book.campaign_messages if day >= first_day)
    print(
        f"{args.days} days ({first_day} to {book.today}, {book.tz.key}): {sent} campaign messages sent, "
        f"{len(book.flow_messages)} flow messages of {args.flows} flows; {args.page_size} results a page",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    start = datetime.combine(first_day, datetime.min.time().replace(hour=12), book.tz).isoformat()
    for name in ("backfill", "next day"):
        if runs:
            # The next day: every window and the daily quota whole again, and Klaviyo has revised the last week.
            book.revise(7)
        with FakeKlaviyo(
            account, api_key=API_KEY, reports=book, rate_limits=True, report_page_size=args.page_size
        ) as fake:
            config = {"api_key": API_KEY, "api_url": fake.url, "start_date": start}
            catalog = select(run_tap(config, "--discover"), REPORT_STREAMS)
            runs.append(run(fake, config, catalog, runs[-1]["result"].states[-1] if runs else None))
        done = runs[-1]
        print(
            f"{name}: {done['wall'] / 60:.1f} min, requests {json.dumps(done['requests'])}, "
            f"timeframes {json.dumps(done['timeframes'])}, {done['throttled']} throttled",
            flush=True,
        )
    expected = expected_reports(book, metric, first_day, book.today)
    for stream in sorted(REPORT_STREAMS):
        table = upserted([r["result"].records(stream) for r in runs], stream)
        exact = table == {key(row, stream): row for row in expected[stream]}
        print(f"{stream}: {len(table)} rows, {'exact' if exact else 'NOT exact'}")
        if not exact:
            sys.exit(1)


if __name__ == "__main__":
    main()
