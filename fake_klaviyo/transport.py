"""HTTP on loopback: a threading server with keep-alive, the wire format of responses, drops and truncation."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .responses import CONTENT_TYPE, Response

# Serves one request: the handler, whose ``command`` is the method, and whose answer it writes.
Serve = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]  # decoded
    headers: dict[str, str]  # lower-cased names, never Authorization
    status: int  # 0 when the connection was dropped without a response
    endpoint: str | None  # short name ("events"), None for unknown paths
    fault: str | None
    started: float  # time.monotonic()
    duration: float
    body: bytes = b""  # a report query's


def read_body(h: BaseHTTPRequestHandler) -> bytes:
    """A request's body (a report query's, or one the fake refuses), read so that the connection stays in sync; a
    chunked one is not read, and its connection closed."""
    if h.command in ("GET", "HEAD"):
        return b""
    if h.headers.get("Content-Length", "").isdigit():
        return h.rfile.read(int(h.headers["Content-Length"]))
    if "Transfer-Encoding" in h.headers:
        h.close_connection = True
    return b""


def write(h: BaseHTTPRequestHandler, resp: Response | None, *, truncate: bool) -> None:
    """Send ``resp``; None hangs up without a byte, ``truncate`` promises the full body and sends half."""
    if resp is None:
        h.close_connection = True
        return
    h.send_response(resp.status)
    h.send_header("Content-Type", CONTENT_TYPE)
    h.send_header("Content-Length", str(len(resp.body)))
    for k, v in resp.headers.items():
        h.send_header(k, v)
    h.end_headers()
    if h.command == "HEAD":
        return
    if truncate:
        h.wfile.write(resp.body[: len(resp.body) // 2])
        h.close_connection = True
    else:
        h.wfile.write(resp.body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], serve: Serve) -> None:
        self.serve = serve
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can stall on hosts with slow DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # Idle keep-alive handlers would otherwise linger after stop().
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "fake-klaviyo"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end eventually
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read fake.requests instead

    def version_string(self) -> str:
        return "fake-klaviyo"

    def serve(self) -> None:
        self.server.serve(self)

    # Every method reaches the fake, which answers those it does not serve with Klaviyo's 405.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = serve
