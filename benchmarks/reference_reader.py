"""A minimal reference reader: the CPU yardstick of ``benchmarks.events --scenario cpu``.

For each metric id given, it reads ``/api/events`` as the tap does (``sort=datetime``,
``filter=equals(metric_id,'...')``, ``page[size]=1000``, the revision and auth headers), one page at a time
following ``links.next`` with a ``requests`` session, decodes each body with ``json.loads`` and writes each event
to stdout with ``json.dumps`` and a newline. Nothing else: no schema, no typing, no state, no concurrency.

Its summary goes to stderr as one JSON line: ``{"requests": N, "events": {metric_id: count, ...}}``. A non-200
answer stops it with exit status 1; a timeout or dropped connection is retried twice (a loaded machine can stall
the fake), as the tap would.
"""

from __future__ import annotations

import argparse
import json
import sys

import requests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference_reader", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--api-key", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("metric_ids", nargs="+")
    args = p.parse_args(argv)

    write = sys.stdout.write
    counts: dict[str, int] = {}
    sent = 0
    with requests.Session() as session:
        session.headers.update(
            {
                "Authorization": f"Klaviyo-API-Key {args.api_key}",
                "revision": args.revision,
                "accept": "application/json",
            }
        )
        for metric in args.metric_ids:
            url: str | None = args.url.rstrip("/") + "/api/events"
            params: dict[str, str] | None = {
                "sort": "datetime",
                "filter": f"equals(metric_id,'{metric}')",
                "page[size]": str(args.page_size),
            }
            counts[metric] = 0
            while url:
                for attempt in range(3):
                    sent += 1
                    try:
                        response = session.get(url, params=params, timeout=120)
                        break
                    except (requests.ConnectionError, requests.Timeout) as exc:
                        print(f"GET {url}: {exc!r}; attempt {attempt + 1} of 3", file=sys.stderr)
                        if attempt == 2:
                            raise
                if response.status_code != 200:
                    print(f"GET {response.url}: {response.status_code} {response.text[:300]}", file=sys.stderr)
                    return 1
                document = json.loads(response.content)
                for event in document["data"]:
                    write(json.dumps(event) + "\n")
                counts[metric] += len(document["data"])
                url, params = document["links"].get("next"), None  # the next link carries the whole query
    sys.stdout.flush()
    print(json.dumps({"requests": sent, "events": counts}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
