"""The command run unattended: whatever ends a run is one line on stderr with the exit code to match, never a
traceback, and the API key is never printed, whichever path an error takes."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    REPO,
    TAP,
    TapRun,
    clean_env,
    expected_keys,
    keys_of,
    refuse_dotenv_settings,
    run_tap,
)

pytestmark = pytest.mark.e2e

SECRET = API_KEY.removeprefix("pk_")


def said(result: TapRun) -> list[str]:
    """What the command itself printed on stderr (not log lines)."""
    return [line for line in result.stderr.splitlines() if line.startswith("tap-klaviyo:")]


# --- a target that stops reading ----------------------------------------------------------------------------


def test_a_target_that_stops_reading_gets_one_line_and_exit_1(config):
    refuse_dotenv_settings()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [str(TAP), "--config", "ENV"],
            stdout=subprocess.PIPE,
            stderr=err,
            env={**clean_env(), "TAP_KLAVIYO_API_KEY": API_KEY, "TAP_KLAVIYO_API_URL": config["api_url"]},
        )
        assert proc.stdout is not None
        assert proc.stdout.read(100)  # `head -c 100`
        proc.stdout.close()
        assert proc.wait(timeout=120) == 1
        err.seek(0)
        stderr = err.read()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("tap-klaviyo:")]
    assert lines == [
        "tap-klaviyo: error: the target stopped reading (broken pipe): see the target's own error; the next run "
        "resumes from the last STATE it saved"
    ], stderr[-3000:]


def test_discovery_into_a_closed_pipe_is_one_line_too():
    # Shell pipes: `tap-klaviyo --discover | head -c 10`.
    proc = subprocess.run(
        f"'{TAP}' --discover | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "broken pipe" in proc.stderr, proc.stderr[-3000:]


# --- unexpected errors, and the key -------------------------------------------------------------------------

# The real command, with a fault no user can cause: a library logs the key, then raises with it in the message.
BROKEN_COMMAND = """
import logging, sys
from tap_klaviyo import cli
from tap_klaviyo.tap import TapKlaviyo

def broken(self):
    key = self.config["api_key"]
    logging.getLogger("urllib3").warning("header was %r", "Klaviyo-API-Key " + key)
    raise ValueError("Invalid header value 'Klaviyo-API-Key " + key + "'")

TapKlaviyo.before_sync = broken
sys.argv = ["tap-klaviyo", *sys.argv[1:]]
cli.main()
"""


def run_broken(config: dict, **env: str) -> TapRun:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        proc = subprocess.run(
            [sys.executable, "-c", BROKEN_COMMAND, "--config", str(path)],
            capture_output=True,
            text=True,
            env={**clean_env(), **env},
            cwd=REPO,
            timeout=120,
            check=False,
        )
    return TapRun(proc.returncode, proc.stdout, proc.stderr)


def test_an_unexpected_error_is_one_line_with_the_key_masked_and_its_traceback_only_at_debug(config):
    result = run_broken(config)
    assert result.returncode == 1
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert said(result) == [
        "tap-klaviyo: error: ValueError: Invalid header value 'Klaviyo-API-Key <api_key>' (unexpected: "
        "TAP_KLAVIYO_LOGLEVEL=DEBUG logs where it happened)"
    ]
    assert "header was 'Klaviyo-API-Key <api_key>'" in result.stderr, "a library's log line is masked too"

    debug = run_broken(config, TAP_KLAVIYO_LOGLEVEL="DEBUG")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "in broken" in debug.stderr, debug.stderr[-3000:]
    assert SECRET not in debug.stderr + debug.stdout
    assert len(said(debug)) == 1


@contextmanager
def echoing_server() -> Iterator[str]:
    """A server answering every request with a 400 whose detail repeats the request's Authorization header (as a
    proxy or an API might in an error)."""

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            detail = f"Bad header: {self.headers.get('Authorization')}"
            body = json.dumps({"errors": [{"status": 400, "title": "Invalid input.", "detail": detail}]}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/vnd.api+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_error_that_quotes_the_key_back_never_prints_it():
    with echoing_server() as url:
        result = run_tap({"api_key": API_KEY, "api_url": url}, env={"TAP_KLAVIYO_LOGLEVEL": "DEBUG"})
    assert result.returncode == 1
    assert SECRET not in result.stderr + result.stdout
    assert len(said(result)) == 1 and "Bad header: Klaviyo-API-Key <api_key>" in said(result)[0], result.stderr[-3000:]


# --- the key ------------------------------------------------------------------------------------------------


def test_whitespace_around_the_key_is_not_part_of_it(account, fake):
    # A key pasted from a file into the config, or an environment variable holding the file's trailing newline.
    from_file = run_tap({"api_key": f"  {API_KEY}\n", "api_url": fake.url})
    from_env = run_tap(
        "{}", "--config", "ENV", env={"TAP_KLAVIYO_API_KEY": f"{API_KEY}\n", "TAP_KLAVIYO_API_URL": fake.url}
    )
    expected = expected_keys(account)
    for result in (from_file, from_env):
        assert result.returncode == 0, result.stderr[-3000:]
        for stream in DEFAULT_STREAMS:
            assert sorted(keys_of(result.records(stream), stream)) == sorted(expected[stream]), stream
    assert {r.headers.get("authorization") for r in fake.requests} == {None}, "the fake records no key"


# --- --config ENV -------------------------------------------------------------------------------------------


def test_an_unknown_tap_klaviyo_variable_is_named_with_the_setting_it_is_closest_to(fake):
    env = {"TAP_KLAVIYO_API_KEY": API_KEY, "TAP_KLAVIYO_API_URL": fake.url, "TAP_KLAVIYO_START_DATA": "2025-06-01"}
    result = run_tap("{}", "--config", "ENV", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert said(result) == [
        "tap-klaviyo: error: Environment variable TAP_KLAVIYO_START_DATA is no setting of tap-klaviyo "
        "(--config ENV): did you mean TAP_KLAVIYO_START_DATE?"
    ]
    assert not fake.requests
    nothing_like = run_tap("{}", "--config", "ENV", env={**env, "TAP_KLAVIYO_START_DATA": "", "TAP_KLAVIYO_XYZZY": "1"})
    assert "Environment variable TAP_KLAVIYO_XYZZY is no setting of tap-klaviyo" in said(nothing_like)[0]
    assert "remove it (settings: " in said(nothing_like)[0] and "TAP_KLAVIYO_STREAM_MAPS" in said(nothing_like)[0]


def test_the_environment_may_hold_the_sdks_settings_and_meltanos_variables(fake):
    env = {
        "TAP_KLAVIYO_API_KEY": API_KEY,
        "TAP_KLAVIYO_API_URL": fake.url,
        # The SDK's own settings and log level.
        "TAP_KLAVIYO_STREAM_MAPS": json.dumps({"flows": {"name": "name.upper() if name else None"}}),
        "TAP_KLAVIYO_FLATTENING_ENABLED": "false",
        "TAP_KLAVIYO_LOGLEVEL": "INFO",
        # Meltano's extras, and a plugin inheriting from tap-klaviyo (tap-klaviyo-brand-a).
        "TAP_KLAVIYO__SELECT": '["flows.*"]',
        "TAP_KLAVIYO_BRAND_A_API_KEY": "pk_other",
        # This project's CI and test tools.
        "TAP_KLAVIYO_TEST_PG_DSN": "postgresql://localhost/test",
        "TAP_KLAVIYO_INTEGRATION_REQUIRED": "1",
    }
    result = run_tap("{}", "--config", "ENV", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(r["name"] == r["name"].upper() for r in result.records("flows") if r["name"])
    # Without --config ENV the environment holds no settings, so it is not checked either.
    unused = run_tap({"api_key": API_KEY, "api_url": fake.url}, "--discover", env={"TAP_KLAVIYO_START_DATA": "x"})
    assert unused.returncode == 0, unused.stderr[-3000:]


# --- files and discovery ------------------------------------------------------------------------------------


def test_a_directory_given_as_the_config_is_one_line(tmp_path):
    proc = subprocess.run(
        [str(TAP), "--config", str(tmp_path)], capture_output=True, text=True, env=clean_env(), timeout=60, check=False
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == (
        f"tap-klaviyo: error: The config file {tmp_path} is a directory: give the path of a JSON file."
    )


def test_discovery_needs_no_config(tmp_path):
    # The streams come from the settings alone: `meltano select --list` works before a key is set.
    proc = subprocess.run(
        [str(TAP), "--discover"],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {entry["tap_stream_id"] for entry in json.loads(proc.stdout)["streams"]} >= DEFAULT_STREAMS
    assert "WARNING" not in proc.stderr and "validation failed" not in proc.stderr, proc.stderr[-3000:]
    bad = run_tap({"event_metrics": [""]}, "--discover")
    assert bad.returncode == 1
    assert said(bad) == [
        "tap-klaviyo: error: Setting `event_metrics` entry 1 has no metric name: give the Klaviyo metric's name, "
        'e.g. "Placed Order"'
    ]


def test_a_run_without_a_key_says_it_needs_one():
    result = run_tap({})
    assert said(result) == [
        "tap-klaviyo: error: Missing setting `api_key`: set it to a Klaviyo private API key (or TAP_KLAVIYO_API_KEY)"
    ]


@pytest.mark.parametrize("argv", [["--about"], ["--version"], ["--help"]])
def test_informational_options_still_exit_0(argv):
    proc = subprocess.run([str(TAP), *argv], capture_output=True, text=True, env=clean_env(), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()


def test_a_usage_mistake_is_clicks_usage_error():
    proc = subprocess.run(
        [str(TAP), "--no-such-option"], capture_output=True, text=True, env=clean_env(), timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "Error: No such option '--no-such-option'" in proc.stderr and "Traceback" not in proc.stderr


# --- the end of a run ---------------------------------------------------------------------------------------

# The real command, with an exit handler of the kind coverage tools and sitecustomize modules register.
WITH_EXIT_HANDLER = """
import atexit, pathlib, sys
from tap_klaviyo import cli

ran = pathlib.Path(sys.argv.pop())
atexit.register(lambda: ran.write_text("ran"))
sys.argv = ["tap-klaviyo", *sys.argv[1:]]
cli.main()
"""


def test_a_run_ends_with_every_record_written_and_the_exit_handlers_run(account, config, tmp_path):
    # The interpreter's teardown is skipped (it only frees memory): what the exit handlers do is not.
    path, ran = tmp_path / "config.json", tmp_path / "ran"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-c", WITH_EXIT_HANDLER, "--config", str(path), str(ran)],
        capture_output=True,
        env=clean_env(),
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert ran.read_text() == "ran"
    result = TapRun(0, "", "", [json.loads(line) for line in proc.stdout.splitlines()])
    expected = expected_keys(account)
    for stream in DEFAULT_STREAMS:
        assert sorted(keys_of(result.records(stream), stream)) == sorted(expected[stream]), stream
    assert result.messages[-1]["type"] == "STATE"
