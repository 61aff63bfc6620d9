"""Serve a generated account until Ctrl-C: ``python -m tests.fake_klaviyo --port 8000``."""

from __future__ import annotations

import argparse
import contextlib
import threading

from .data import generate_account
from .server import FakeKlaviyo, Faults


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.fake_klaviyo", description="Fake Klaviyo API on loopback.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", default="pk_fake_klaviyo", help="the private key clients must send")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--events-per-metric", type=int, default=300)
    p.add_argument("--latency", type=float, default=0.0, help="seconds slept per request")
    p.add_argument("--rate-limits", action="store_true", help="enforce the spec's per-endpoint limits")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests given a random fault")
    args = p.parse_args(argv)

    account = generate_account(args.seed, events_per_metric=args.events_per_metric)
    fake = FakeKlaviyo(
        account,
        api_key=args.api_key,
        latency=args.latency,
        rate_limits=args.rate_limits,
        faults=Faults(args.fault_rate) if args.fault_rate else None,
        host=args.host,
        port=args.port,
    )
    with fake:
        print(
            f"fake Klaviyo serving {fake.url} (seed {args.seed}, {len(account.events)} events); Ctrl-C stops",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
