"""`scripts/demo` extracts from a fake Klaviyo of its own, never from whatever else holds a port."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fake_klaviyo import generate_account
from tests.kit import DEFAULT_STREAMS, EVENT_METRICS, REPO, clean_env, refuse_dotenv_settings

OLD_PORT = 8765  # the port the demo used to take for granted


class Stranger(ThreadingHTTPServer):
    """Another server on the demo's old port: it answers 401 to anything, and counts what it was asked."""

    def __init__(self, port: int) -> None:
        self.asked = 0
        server = self

        class Refuse(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.asked += 1
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", port), Refuse)


@contextlib.contextmanager
def stranger(port: int) -> Iterator[Stranger | None]:
    """A Stranger on `port` (None if something else holds it already)."""
    try:
        server = Stranger(port)
    except OSError:
        yield None
        return
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run_demo(**env: str) -> subprocess.CompletedProcess[str]:
    refuse_dotenv_settings()  # the demo runs with --config ENV
    return subprocess.run(
        [str(REPO / "scripts" / "demo")],
        capture_output=True,
        text=True,
        env={**clean_env("DEMO_"), **env},
        timeout=600,
        check=False,
    )


def test_the_demo_reads_its_own_fake_whatever_holds_its_old_port():
    with stranger(OLD_PORT) as other:
        demo = run_demo()
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert other is None or other.asked == 0, f"the demo read the server on port {OLD_PORT}"
    counts = dict(re.findall(r"^(\w+) +(\d+) records$", demo.stdout, re.MULTILINE))
    assert set(counts) == DEFAULT_STREAMS
    account = generate_account(1)  # the fake's default seed
    for stream, metric in EVENT_METRICS.items():
        metric_ids = {m["id"] for m in account.metrics if m["attributes"]["name"].lower() == metric.lower()}
        assert int(counts[stream]) in {len(account.events_for_metric(i)) for i in metric_ids}, stream


def test_a_taken_demo_port_stops_the_demo_in_one_line():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        demo = run_demo(DEMO_PORT=str(taken))
    assert demo.returncode == 1
    said = [line for line in demo.stderr.splitlines() if line.startswith("scripts/demo:")]
    assert said == [
        f"scripts/demo: the fake Klaviyo did not start (port {taken} taken? set DEMO_PORT to a free port, or unset "
        "it to let it pick one): see output/fake-klaviyo.log"
    ]
    assert demo.stderr.rstrip().endswith(said[0])
