"""The `tap-klaviyo` command: the SDK's CLI, where whatever ends a run is one line on stderr, never a traceback, and
the exit code says how it ended: 0 done, 1 an error (a user's mistake, Klaviyo's refusal, a target that stopped
reading, or an unexpected failure, whose traceback is logged at DEBUG), 143 or 130 stopped by SIGTERM or SIGINT.

The SDK reads the files named by `--config`, `--state` and `--catalog` itself and fails on a bad one with a
traceback that does not name the file, so each is read here first.
"""

from __future__ import annotations

import atexit
import codecs
import ctypes
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from tap_klaviyo import stopping
from tap_klaviyo.errors import KlaviyoError
from tap_klaviyo.output import OutputClosed, silence_stdout
from tap_klaviyo.redaction import redact
from tap_klaviyo.state import shape_problem as state_shape
from tap_klaviyo.tap import TapKlaviyo

FILE_OPTIONS = {"--config": "config", "--state": "state", "--catalog": "catalog"}


# glibc's mallopt parameters (malloc.h).
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8


TARGET_GONE = (
    "the target stopped reading (broken pipe): see the target's own error; the next run resumes from the last "
    "STATE it saved"
)


def main() -> None:
    limit_allocator()
    stopping.install()
    code: Any = 0
    try:
        check_files(sys.argv[1:])
        code = TapKlaviyo.cli.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except stopping.Interrupted as exc:
        leave(exc.exit_code, str(exc))
    except (OutputClosed, BrokenPipeError):
        silence_stdout()
        # Ctrl-C in a shell stops the target too: then the signal is what ended the run (below).
        if stopping.requested() is None:
            leave(1, f"error: {TARGET_GONE}")
    except KlaviyoError as exc:
        fail(str(exc))
    except Exception as exc:
        logging.getLogger(TapKlaviyo.name).debug("Where the error below happened:", exc_info=True)
        fail(f"{type(exc).__name__}: {exc} (unexpected: TAP_KLAVIYO_LOGLEVEL=DEBUG logs where it happened)")
    if (signum := stopping.requested()) is not None:
        # A signal the run did not stop for (it came as the run ended, or during discovery) still ends it so.
        interrupted = stopping.Interrupted(signum)
        leave(interrupted.exit_code, str(interrupted))
    finish(code if isinstance(code, int) else 0)


def finish(code: int) -> NoReturn:
    """Exit with `code` once everything is out: the exit handlers run (the writer's last records, the log's), but
    not the interpreter's teardown, which frees every object and module one by one and joins the idle window
    workers: a tenth of a second or more of every run's wall time, after its last record. A run under a profiler,
    tracer or debugger exits the usual way, for the tool to write what it found."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        if stopping.requested() is None:
            code = 1
            print(f"tap-klaviyo: error: {TARGET_GONE}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(code)


def fail(message: str) -> NoReturn:
    """Exit 1 with one line, the API key masked (an error may quote a response or a header)."""
    print(f"tap-klaviyo: error: {redact(' '.join(message.split()))}", file=sys.stderr)
    sys.exit(1)


def leave(code: int, line: str) -> NoReturn:
    """Exit now with `code` after one line: the window pool's workers may be in a request or its retries, and the
    interpreter's exit would wait for them. What the tap wrote is flushed first."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    print(f"tap-klaviyo: {line}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(code)


def limit_allocator() -> None:
    """Keep glibc from holding on to memory the event streams' worker threads have freed: by default each
    thread gets an arena of its own, and freeing one page body raises the size below which later ones are
    carved from those arenas, where they fragment. Big bodies are mapped and unmapped instead, which lowers a
    large sync's peak memory (see benchmarks/README.md); nothing changes on other C libraries."""
    if platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL(None)
    libc.mallopt(M_ARENA_MAX, 2)
    libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)


def file_arguments(argv: list[str]) -> list[tuple[str, str]]:
    """(kind, path) for every file option on the command line, in both `--opt path` and `--opt=path` forms."""
    found = []
    for i, arg in enumerate(argv):
        option, _, value = arg.partition("=")
        if option in FILE_OPTIONS:
            path = value if value else (argv[i + 1] if i + 1 < len(argv) else "")
            if path and not (option == "--config" and path == "ENV"):
                found.append((FILE_OPTIONS[option], path))
    return found


def check_files(argv: list[str]) -> None:
    for kind, path in file_arguments(argv):
        if Path(path).is_dir():
            raise KlaviyoError(f"The {kind} file {path} is a directory: give the path of a JSON file.")
        if Path(path).exists() and not Path(path).is_file():
            continue  # A pipe (`--config <(...)`) can be read once only: the SDK's read must be that one.
        document = read_json(kind, path)
        problem = {"config": _config_shape, "state": state_shape, "catalog": _catalog_shape}[kind](document)
        if problem:
            raise KlaviyoError(f"The {kind} file {path} {problem}.")


def read_json(kind: str, path: str) -> Any:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KlaviyoError(f"Cannot read the {kind} file {path}: {exc.strerror}.") from None
    try:
        if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise UnicodeError
        text = data.decode("utf-8")
    except UnicodeError:
        # An editor's "Unicode" (UTF-16), or UTF-8 with a byte-order mark: the SDK reads UTF-8 only, and so do we.
        raise KlaviyoError(
            f"The {kind} file {path} is not plain UTF-8 text (UTF-16, or a byte-order mark at its start): save it "
            "as UTF-8 without a byte-order mark."
        ) from None
    if not text.strip():
        # A state file created empty (`touch`), or cut short while it was written.
        nothing = "write {} in it for a run from no state, or leave --state out" if kind == "state" else "fix it"
        raise KlaviyoError(f"The {kind} file {path} is empty: {nothing}.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise KlaviyoError(f"The {kind} file {path} is not valid JSON ({exc}): fix or replace it.") from None


def _config_shape(document: Any) -> str | None:
    return None if isinstance(document, dict) else "must hold a JSON object of settings"


def _catalog_shape(document: Any) -> str | None:
    streams = document.get("streams") if isinstance(document, dict) else None
    if not isinstance(streams, list) or not all(_is_catalog_entry(s) for s in streams):
        return (
            "is not a Singer catalog: it needs a `streams` list whose entries have a `tap_stream_id`, a `schema` "
            "object and a `metadata` list of {breadcrumb, metadata} (run `tap-klaviyo --discover` for one)"
        )
    return None


def _is_catalog_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("tap_stream_id") or entry.get("stream"), str)
        and isinstance(entry.get("schema"), dict)
        and isinstance(entry.get("metadata", []), list)
        and all(
            isinstance(m, dict) and isinstance(m.get("breadcrumb"), list) and isinstance(m.get("metadata"), dict)
            for m in entry.get("metadata", [])
        )
    )
