"""The test kit every test module imports from: the tap's streams, a runner for the real `tap-klaviyo` command,
and what the fake Klaviyo's account says each stream should hold.

A plain module rather than conftest.py: pytest loads conftest.py as a plugin, for fixtures, and importing it by
name is fragile; here each helper has one name and one home. conftest.py holds the fixtures.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import requests
import singer_sdk
from jsonschema import Draft7Validator

from fake_klaviyo import REVISION, Account
from fake_klaviyo.make_endpoints import DEFAULT_SPEC
from tap_klaviyo.streams.table import STREAMS
from tests.oracle import (  # noqa: F401 (the kit is where tests find the oracle)
    EVENT_METRICS,
    STREAM_KEYS,
    Row,
    conversion_metric,
    event_metric_id,
    expected_attributions,
    expected_events,
    expected_keys,
    expected_members,
    expected_opt_in,
    expected_profiles,
    expected_reports,
    expected_streams,
    fake_events,
    keys_of,
    klaviyo_metric,
    rfc3339,
    rfc3339_consent,
)

API_KEY = "pk_test_0123456789abcdef0123456789abcdef"
# Where the client's unit tests mock Klaviyo (requests_mock), and the key they send.
CLIENT_API = "https://klaviyo.test"
CLIENT_KEY = "pk_secret_unit_test_key"
TAP = Path(sys.executable).with_name("tap-klaviyo")
# The marks of the test running now (conftest.py keeps them): only a test marked `e2e` runs the command, so that
# `-m "not e2e"` leaves out every test that does.
RUNNING_MARKS: set[str] = set()
REPO = Path(__file__).resolve().parent.parent

# The streams a run without a catalog syncs (the others are opt-in).
DEFAULT_STREAMS = {row.name for row in STREAMS if row.selected_by_default}

# The streams `emit_activate_version_messages` reads whole and mirrors: those of the families that say so.
MIRRORED = {row.name for row in STREAMS if row.family.READ_WHOLE_TO_MIRROR}
# Channels of campaigns, as the campaign streams name them.
CHANNELS = ("email", "sms", "mobile_push")


# --- the environment --------------------------------------------------------------------------------------


def clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without TAP_KLAVIYO_* settings, nor variables with the other prefixes."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TAP_KLAVIYO_", *prefixes))}


def refuse_dotenv_settings() -> None:
    """Fail where a .env file would set TAP_KLAVIYO_* variables in runs with `--config ENV`: singer-sdk then loads the
    first .env found walking up from where it is installed (here the repository's .venv, so the repository's own
    .env, as Meltano writes it), over the variables a test sets."""
    folder = Path(singer_sdk.__file__).resolve().parent / "configuration"
    for parent in [folder, *folder.parents]:
        dotenv = parent / ".env"
        if dotenv.is_file():
            if re.search(r"^\s*(export\s+)?TAP_KLAVIYO_", dotenv.read_text(errors="replace"), re.MULTILINE):
                pytest.fail(f"{dotenv} sets TAP_KLAVIYO_* variables over the test's own: move it away to run this test")
            return


def unavailable(reason: str) -> None:
    """Skip, or fail where CI promised the integration services (TAP_KLAVIYO_INTEGRATION_REQUIRED=1)."""
    if os.environ.get("TAP_KLAVIYO_INTEGRATION_REQUIRED") == "1":
        pytest.fail(f"{reason}, but TAP_KLAVIYO_INTEGRATION_REQUIRED=1: run scripts/ci-services first")
    pytest.skip(f'{reason}: run `eval "$(scripts/ci-services)"` to install and start it')


# --- running the tap --------------------------------------------------------------------------------------


def tap_argv(*args: str) -> list[str]:
    """The installed `tap-klaviyo` command with `args`, for a test marked `e2e`."""
    if "e2e" not in RUNNING_MARKS:
        pytest.fail("this test runs the tap-klaviyo command: mark it @pytest.mark.e2e", pytrace=False)
    return [str(TAP), *args]


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    state_file_after: str | None = None

    def records(self, stream: str) -> list[Row]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def by_stream(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = defaultdict(list)
        for m in self.messages:
            if m["type"] == "RECORD":
                out[m["stream"]].append(m["record"])
        return out

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]


def assert_one_line_error(result: TapRun, expected: str, *, mid_sync: bool = False) -> None:
    """The run failed with one line saying `expected`, and no traceback (nor STATE, unless `mid_sync`)."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo: error:")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0], errors[0]
    if not mid_sync:
        assert '"type":"STATE"' not in result.stdout.replace(" ", ""), "a rejected input must not emit STATE"


def run_tap(
    config: dict[str, Any] | str,
    *args: str,
    state: dict[str, Any] | str | None = None,
    catalog: dict[str, Any] | str | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> TapRun:
    """Run the installed `tap-klaviyo` command as a user would, with files for config, state and catalog
    (dicts are written as JSON, strings as they are)."""
    if "ENV" in args:
        refuse_dotenv_settings()
    with tempfile.TemporaryDirectory() as tmp:
        files = {"config": config, "state": state, "catalog": catalog}
        argv = tap_argv()
        for name, content in files.items():
            if content is not None:
                path = Path(tmp) / f"{name}.json"
                path.write_text(content if isinstance(content, str) else json.dumps(content))
                argv += [f"--{name}", str(path)]
        proc = subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**clean_env(), **(env or {})},
            cwd=tmp,
            check=False,
        )
        state_path = Path(tmp) / "state.json"
        state_after = state_path.read_text() if state_path.exists() else None
    messages = []
    if proc.stdout.lstrip().startswith("{") and "--discover" not in args and "--about" not in args:
        messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return TapRun(proc.returncode, proc.stdout, proc.stderr, messages, state_after)


def run_and_kill(
    config: dict[str, Any],
    kill_after_states: int,
    *,
    catalog: dict[str, Any] | None = None,
    streams: Iterable[str] = EVENT_METRICS,
) -> tuple[dict[str, list], dict | None]:
    """Run the tap and SIGKILL it after it has emitted some STATE messages holding a bookmark of one of `streams`;
    return what it had sent, and its last STATE."""
    delivered: dict[str, list] = {}
    last_state = None
    seen = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        argv = tap_argv("--config", str(path))
        if catalog is not None:
            (Path(tmp) / "catalog.json").write_text(json.dumps(catalog))
            argv += ["--catalog", str(Path(tmp) / "catalog.json")]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=clean_env(),
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            if message["type"] == "RECORD":
                delivered.setdefault(message["stream"], []).append(message["record"])
            elif message["type"] == "STATE":
                last_state = message["value"]
                if any(bookmark(last_state, s) for s in streams):
                    seen += 1
                if seen >= kill_after_states:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait()
    return delivered, last_state


def run_and_signal(
    config: dict[str, Any],
    signum: int,
    when: Callable[[dict[str, Any]], bool] | None,
    *,
    delay: float = 0.0,
    timeout: float = 120,
) -> tuple[TapRun, float]:
    """Run the tap, send it `signum` `delay` seconds after it writes a message for which `when` is true (None: after
    it starts), and read on until it exits: what it wrote and said, and the seconds from the signal to its exit."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        with (Path(tmp) / "stderr").open("w+") as err:
            proc = subprocess.Popen(
                [str(TAP), "--config", str(path)], stdout=subprocess.PIPE, stderr=err, text=True, env=clean_env()
            )
            assert proc.stdout is not None
            lines: list[str] = []
            signalled: list[float] = []

            def send() -> None:
                proc.send_signal(signum)
                signalled.append(time.monotonic())

            timer = None
            if when is None:
                timer = threading.Timer(delay, send)
                timer.start()
            for line in proc.stdout:
                lines.append(line)
                if timer is None and when is not None and when(json.loads(line)):
                    timer = threading.Timer(delay, send)
                    timer.start()
            proc.wait(timeout=timeout)
            assert timer is not None, "the run ended before the moment to signal it"
            timer.join()
            assert signalled, "the run ended before the signal was sent"
            elapsed = time.monotonic() - signalled[0]
            err.seek(0)
            stderr = err.read()
    messages = [json.loads(line) for line in lines]
    return TapRun(proc.returncode, "".join(lines), stderr, messages), elapsed


def select(discovery: TapRun, streams: set[str], method: str | None = None) -> dict[str, Any]:
    """The discovered catalog with only `streams` selected (and their replication method forced)."""
    catalog = json.loads(discovery.stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
                if method and entry["tap_stream_id"] in streams:
                    item["metadata"]["forced-replication-method"] = method
        if method and entry["tap_stream_id"] in streams:
            entry["replication_method"] = method
    return catalog


def bookmark(state: dict[str, Any], stream: str) -> str | None:
    return state["bookmarks"].get(stream, {}).get("replication_key_value")


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class FakeTime:
    """Stands in for the `time` module of the client and the pacer: sleeping moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- changing what the fake holds ------------------------------------------------------------------------


def delete_and_change(account: Account) -> None:
    """Between two runs: a list, a segment, an email campaign and a flow deleted, and a campaign's audiences
    changed."""
    campaigns = account.email_campaigns()
    audience = next(c for c in campaigns if len(c["attributes"]["audiences"]["included"]) > 1)
    included = audience["attributes"]["audiences"]["included"]
    account.set_audiences(audience["id"], included[1:], [account.lists[-1]["id"]])
    account.delete("campaign", next(c for c in campaigns if c is not audience)["id"])
    account.delete("list", account.lists[0]["id"])
    account.delete("segment", account.segments[0]["id"])
    account.delete("flow", account.flows[0]["id"])


# --- comparing ------------------------------------------------------------------------------------------


def assert_exact(actual: list[Row], expected: list[Row], keys: list[str], stream: str) -> None:
    def key(row: Row) -> tuple:
        return tuple(row[k] for k in keys)

    counts = Counter(key(r) for r in actual)
    duplicates = [k for k, n in counts.items() if n > 1]
    assert not duplicates, f"{stream}: {len(duplicates)} keys emitted more than once, e.g. {duplicates[:3]}"
    missing = {key(r) for r in expected} - set(counts)
    extra = set(counts) - {key(r) for r in expected}
    assert not missing and not extra, f"{stream}: {len(missing)} missing, {len(extra)} unexpected"
    by_key = {key(r): r for r in actual}
    for row in expected:
        assert by_key[key(row)] == row, f"{stream}: record {key(row)} differs from the fake's data"


def assert_keys_equal(actual: list[tuple], expected: list[tuple], what: str) -> None:
    duplicates = [k for k, n in Counter(actual).items() if n > 1]
    assert not duplicates, f"{what}: {len(duplicates)} keys loaded more than once, e.g. {duplicates[:3]}"
    missing, extra = set(expected) - set(actual), set(actual) - set(expected)
    assert not missing and not extra, f"{what}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), {len(extra)} extra"
    assert len(actual) == len(expected), what


# --- asking the fake Klaviyo directly (with the `api` fixture) ------------------------------------------------


def error(resp: requests.Response) -> dict[str, Any]:
    """The one error of an errors document, checked for the shape Klaviyo gives it."""
    assert resp.headers["Content-Type"] == "application/vnd.api+json"
    body = resp.json()
    assert len(body["errors"]) == 1
    err = body["errors"][0]
    assert err["status"] == resp.status_code
    assert re.fullmatch(r"[0-9a-f-]{36}", err["id"])
    return err


def _json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema (draft 7): ``nullable`` becomes a null alternative, ``$ref`` points
    into ``definitions``, and ``oneOf`` is ``anyOf``: the spec's unions are not exclusive (email tracking
    options also fit the SMS ones, which list fewer properties and allow others)."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {("anyOf" if k == "oneOf" else k): _json_schema(v) for k, v in node.items() if k != "nullable"}
    if "$ref" in out:
        out["$ref"] = "#/definitions/" + out["$ref"].rsplit("/", 1)[1]
    return {"anyOf": [{"type": "null"}, out]} if node.get("nullable") else out


@functools.cache
def spec_validator(path: str) -> Draft7Validator:
    """A validator for the spec's (the vendored copy's) response schema of ``GET path``, e.g. "/api/campaigns"."""
    spec = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))
    response = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/vnd.api+json"]
    definitions = _json_schema(spec["components"]["schemas"])
    # Where Klaviyo answers otherwise than its spec, as the fake does: a collection's `links.next` and `prev` are
    # null, not left out, where there is no such page (klaviyo/openapi#5).
    for name in ("next", "prev"):
        link = definitions["CollectionLinks"]["properties"][name]
        definitions["CollectionLinks"]["properties"][name] = {"anyOf": [{"type": "null"}, link]}
    return Draft7Validator({**_json_schema(response["schema"]), "definitions": definitions})


def assert_valid(document: dict[str, Any], path: str) -> None:
    """``document`` fits the spec's response schema of ``GET path``."""
    errors = sorted(spec_validator(path).iter_errors(document), key=str)
    assert not errors, f"the document breaks the spec's schema of {path}: {errors[0]}"


def pages(api: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a collection (each a whole document), following links.next verbatim."""
    resp = api(path, **params)
    assert resp.status_code == 200, resp.text
    docs = [resp.json()]
    while (nxt := docs[-1]["links"].get("next")) is not None:
        resp = requests.get(nxt, headers=resp.request.headers, timeout=10)
        assert resp.status_code == 200, resp.text
        docs.append(resp.json())
    return docs


def follow(api: Any, path: str, **params: Any) -> list[Row]:
    """Every resource of a collection, page after page."""
    return [r for doc in pages(api, path, **params) for r in doc["data"]]


def fake_argv(*flags: str, api_key: str = API_KEY) -> list[str]:
    """`python -m fake_klaviyo` on a free port, with `api_key` and `flags` (run it from REPO)."""
    return [sys.executable, "-m", "fake_klaviyo", "--port", "0", "--api-key", api_key, *flags]


@dataclass
class FakeCommand:
    """The fake started by `fake_command`: its URL, and once stopped what it wrote to stderr."""

    url: str
    api_key: str
    stderr: bytes = b""

    def get(self, path: str, **params: Any) -> requests.Response:
        """GET `path` with the API key and the revision header; `follow` and `pages` take it."""
        headers = {"Authorization": f"Klaviyo-API-Key {self.api_key}", "revision": REVISION}
        return requests.get(self.url + path, params=params, headers=headers, timeout=10)


@contextlib.contextmanager
def fake_command(*flags: str, api_key: str = API_KEY) -> Iterator[FakeCommand]:
    """The fake's command line (`fake_argv`) in a process of its own, as the benchmarks start it; stopped with
    Ctrl-C on the way out."""
    with subprocess.Popen(
        fake_argv(*flags, api_key=api_key), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            found = re.search(r"http://\S+", proc.stdout.readline().decode())
            assert found, "the fake printed no URL"
            fake = FakeCommand(found.group(0), api_key)
            yield fake
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        fake.stderr = proc.stderr.read()


# --- a server that misbehaves, alone or in front of the fake Klaviyo -------------------------------------------


@dataclass
class Answer:
    """What a server answers: status, headers (without Content-Length) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def with_next(self, url: str | None) -> Answer:
        """The same page with `links.next` set to `url`."""
        document = json.loads(self.body)
        document["links"]["next"] = url
        return Answer(self.status, self.headers, json.dumps(document).encode())


# (path with query, what the fake answered or would answer) -> what to answer instead.
Tamper = Callable[[str, Answer], Answer]
EMPTY_PAGE = Answer(200, {"Content-Type": "application/vnd.api+json"}, b'{"data": [], "links": {"next": null}}')


def down_past_the_first_page(path: str) -> Tamper:
    """Answers 503 to every page of the collection at `path` past its first (a request with a cursor): with
    `max_retries` 0, a run that stops inside that collection, every time."""
    down = Answer(503, {"Content-Type": "application/vnd.api+json"}, b'{"errors": [{"status": 503, "detail": "down"}]}')

    def tamper(requested: str, answer: Answer) -> Answer:
        return down if urlparse(requested).path.rstrip("/") == path and "cursor" in requested else answer

    return tamper


class Misbehaving:
    """A server on loopback that records the path and query of every request it gets, and whether it carried the
    API key (`keyed`), and answers `tamper(path, answer)`. The answer is the fake's, at `upstream`, which gets the
    request with its Host unchanged so that its links point back here; without an upstream, an empty page."""

    def __init__(self, upstream: str | None = None, tamper: Tamper = lambda path, answer: answer) -> None:
        self.upstream, self.tamper = upstream, tamper
        self.requests: list[str] = []
        self.keyed: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _MisbehavingHandler)
        self._server.daemon_threads = True
        self._server.misbehaving = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Misbehaving:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, headers: dict[str, str]) -> Answer:
        self.requests.append(path)
        if API_KEY in headers.get("Authorization", ""):
            self.keyed.append(path)
        if self.upstream is None:
            return self.tamper(path, EMPTY_PAGE)
        passed = {k: v for k, v in headers.items() if k.lower() in ("authorization", "revision", "accept", "host")}
        response = requests.get(self.upstream + path, headers=passed, allow_redirects=False, timeout=60)
        kept = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "connection")}
        return self.tamper(path, Answer(response.status_code, kept, response.content))


class _MisbehavingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        answer = self.server.misbehaving.answer(self.path, dict(self.headers))  # type: ignore[attr-defined]
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """An http URL on loopback where a connection is never accepted nor refused, as behind a firewall that drops
    packets: a listening socket whose queue of connections is full, so that the kernel ignores further SYNs."""
    with socket.socket() as listener, contextlib.ExitStack() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        while True:
            sock = queued.enter_context(socket.socket())
            sock.settimeout(0.2)
            try:
                sock.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        yield f"http://127.0.0.1:{port}"


# --- PostgreSQL (from scripts/ci-services) ------------------------------------------------------------


def pg_dsn() -> str:
    dsn = os.environ.get("TAP_KLAVIYO_TEST_PG_DSN")
    if not dsn:
        unavailable("PostgreSQL is not available (TAP_KLAVIYO_TEST_PG_DSN is not set)")
    if not shutil.which("psql"):
        unavailable("psql is not installed")
    return dsn


def psql(dsn: str, sql: str) -> Any:
    """Run one query and return its rows as JSON (json_agg), through the psql client."""
    proc = subprocess.run(
        ["psql", dsn, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", f"SELECT coalesce(json_agg(q), '[]') FROM ({sql}) q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def postgres_config(dsn: str, schema: str) -> dict[str, Any]:
    url = urlparse(dsn)
    return {
        "host": url.hostname,
        "port": url.port or 5432,
        "user": unquote(url.username or ""),
        "password": unquote(url.password or ""),
        "database": url.path.lstrip("/"),
        "default_target_schema": schema,
        "load_method": "upsert",
    }


def drop_schema(dsn: str, schema: str) -> None:
    subprocess.run(
        ["psql", dsn, "-qX", "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], capture_output=True, check=False
    )
