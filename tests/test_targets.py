"""`tap-klaviyo` piped into real Singer targets from PyPI, each in its own venv, against the fake Klaviyo.

The targets (target-jsonl, meltanolabs-target-csv, meltanolabs-target-postgres) and a PostgreSQL server come
from `scripts/ci-services`, which exports TAP_KLAVIYO_TARGETS_BIN and TAP_KLAVIYO_TEST_PG_DSN. Without them
these tests skip, unless TAP_KLAVIYO_INTEGRATION_REQUIRED=1 (set by `.ci/run`), where they fail instead.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account
from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    MIRRORED,
    STREAM_KEYS,
    TAP,
    Misbehaving,
    assert_keys_equal,
    clean_env,
    delete_and_change,
    down_past_the_first_page,
    drop_schema,
    expected_keys,
    fake_events,
    keys_of,
    pg_dsn,
    postgres_config,
    psql,
    run_tap,
    tap_argv,
    unavailable,
    utc,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# --- what is available ------------------------------------------------------------------------------------


def target_exe(name: str) -> Path:
    folder = os.environ.get("TAP_KLAVIYO_TARGETS_BIN")
    found = Path(folder) / name if folder else None
    if found is None or not os.access(found, os.X_OK):
        found = Path(shutil.which(name)) if shutil.which(name) else None
        # A target on PATH inside the tap's own venv does not count: targets need their own venvs.
        if found is not None and found.parent == TAP.parent:
            found = None
    if found is None:
        unavailable(f"{name} is not installed (TAP_KLAVIYO_TARGETS_BIN is {folder!r})")
    return found


# --- what the fake holds ----------------------------------------------------------------------------------


def split_date(account) -> str:
    """A date-time in the middle of the email events, to split a history into two incremental runs."""
    stamps = sorted(e["attributes"]["datetime"] for s in EVENT_METRICS for e in fake_events(account, s).values())
    return utc(stamps[len(stamps) // 2]).isoformat()


# --- running tap | target ---------------------------------------------------------------------------------


@dataclass
class Pipe:
    tap_messages: list[dict[str, Any]]
    tap_returncode: int
    tap_stderr: str
    target_returncode: int
    target_stdout: str
    target_stderr: str
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> Pipe:
        assert self.tap_returncode == 0, f"tap failed:\n{self.tap_stderr[-3000:]}"
        assert self.target_returncode == 0, f"target failed:\n{self.target_stderr[-3000:]}"
        return self

    @property
    def final_state(self) -> dict[str, Any]:
        states = [m["value"] for m in self.tap_messages if m["type"] == "STATE"]
        assert states, "the tap sent no STATE"
        return states[-1]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.tap_messages if m["type"] == "RECORD" and m["stream"] == stream]

    def schema(self, stream: str) -> dict[str, Any]:
        return next(m["schema"] for m in self.tap_messages if m["type"] == "SCHEMA" and m["stream"] == stream)


def pipe(
    tap_config: dict[str, Any],
    target: list[str],
    target_config: dict[str, Any] | None,
    workdir: Path,
    state: dict[str, Any] | None = None,
    timeout: float = 300,
) -> Pipe:
    """`tap-klaviyo --config c.json [--state s.json] | target --config t.json`, keeping the tap's messages."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = tap_argv("--config", str(workdir / "tap-config.json"))
    (workdir / "tap-config.json").write_text(json.dumps(tap_config))
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        argv += ["--state", str(workdir / "state.json")]
    target_argv = list(target)
    if target_config is not None:
        (workdir / "target-config.json").write_text(json.dumps(target_config))
        target_argv += ["--config", str(workdir / "target-config.json")]

    env = clean_env("TARGET_")
    with (
        open(workdir / "tap.stderr", "w+") as tap_err,
        open(workdir / "target.stderr", "w+") as target_err,
        open(workdir / "target.stdout", "w+") as target_out,
    ):
        tap = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=tap_err, env=env, cwd=workdir)
        sink = subprocess.Popen(
            target_argv, stdin=subprocess.PIPE, stdout=target_out, stderr=target_err, env=env, cwd=workdir
        )
        lines: list[bytes] = []

        def tee() -> None:
            assert tap.stdout is not None and sink.stdin is not None
            sink_open = True
            for line in tap.stdout:  # read to the end even if the target died, so the tap never blocks
                lines.append(line)
                if sink_open:
                    try:
                        sink.stdin.write(line)
                    except (BrokenPipeError, ValueError):
                        sink_open = False  # the target died; its exit code tells
            with contextlib.suppress(BrokenPipeError):
                sink.stdin.close()

        thread = threading.Thread(target=tee, daemon=True)
        thread.start()
        try:
            tap_rc = tap.wait(timeout=timeout)
            thread.join(timeout=timeout)
            target_rc = sink.wait(timeout=timeout)
        finally:
            for proc in (tap, sink):
                if proc.poll() is None:
                    proc.kill()
        tap_err.seek(0)
        target_err.seek(0)
        target_out.seek(0)
        return Pipe(
            tap_messages=[json.loads(x) for x in lines if x.strip()],
            tap_returncode=tap_rc,
            tap_stderr=tap_err.read(),
            target_returncode=target_rc,
            target_stdout=target_out.read(),
            target_stderr=target_err.read(),
            workdir=workdir,
        )


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(account) -> Iterator[FakeKlaviyo]:
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def tap_config(server) -> dict[str, Any]:
    return {"api_key": API_KEY, "api_url": server.url}


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tap-klaviyo-targets-") as tmp:
        yield Path(tmp)


def two_runs(account, tap_config, target, target_config, workdir) -> tuple[Pipe, Pipe]:
    """History up to the middle of the events, then an incremental run from the first run's final STATE."""
    first = pipe({**tap_config, "end_date": split_date(account)}, target, target_config(1), workdir / "run1").check()
    second = pipe(tap_config, target, target_config(2), workdir / "run2", state=first.final_state).check()
    return first, second


def assert_split_runs(account, first_rows: dict[str, list[tuple]], second_rows: dict[str, list[tuple]]) -> None:
    """Run 1 and run 2 together hold exactly the fake's keys; run 1 alone holds only events before the split."""
    expected = expected_keys(account)
    assert set(first_rows) == DEFAULT_STREAMS, f"run 1 loaded {sorted(first_rows)}"
    for stream, keys in expected.items():
        both = set(first_rows.get(stream, [])) | set(second_rows.get(stream, []))
        assert both == set(keys), f"{stream}: runs 1 and 2 together miss {len(set(keys) - both)} keys"
        assert len(set(first_rows[stream])) == len(first_rows[stream]), f"{stream}: duplicates in run 1"
    split = utc(split_date(account))
    for stream in EVENT_METRICS:
        events = fake_events(account, stream)
        early = {(i,) for i, e in events.items() if utc(e["attributes"]["datetime"]) < split}
        assert set(first_rows[stream]) == early, f"{stream}: run 1 should hold exactly the events before the split"
        # Run 2 repeats exactly the events of run 1's last second (where its bookmark is).
        last = max(utc(events[i]["attributes"]["datetime"]) for (i,) in early)
        same_second = {(i,) for (i,) in early if utc(events[i]["attributes"]["datetime"]) == last}
        assert set(first_rows[stream]) & set(second_rows[stream]) == same_second, stream


# --- target-jsonl -----------------------------------------------------------------------------------------


def read_jsonl_dir(folder: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        stream = path.name.rsplit("-", 1)[0] if "-" in path.stem else path.stem
        with path.open(encoding="utf-8") as f:
            out.setdefault(stream, []).extend(json.loads(line) for line in f if line.strip())
    return out


def test_target_jsonl_loads_every_stream_and_an_incremental_run(account, tap_config, workdir):
    exe = target_exe("target-jsonl")
    first, second = two_runs(
        account, tap_config, [str(exe)], lambda n: {"destination_path": str(workdir / f"out{n}")}, workdir
    )
    files1, files2 = read_jsonl_dir(workdir / "out1"), read_jsonl_dir(workdir / "out2")
    # The target writes exactly what the tap sent: no record lost, changed or added.
    for stream in DEFAULT_STREAMS:
        assert files1.get(stream, []) == first.records(stream), f"{stream}: target-jsonl changed run 1's records"
        assert files2.get(stream, []) == second.records(stream), f"{stream}: target-jsonl changed run 2's records"
    assert_split_runs(
        account,
        {s: keys_of(rows, s) for s, rows in files1.items()},
        {s: keys_of(rows, s) for s, rows in files2.items()},
    )
    # target-jsonl echoes the last STATE it read: the tap's final one.
    assert json.loads(second.target_stdout.strip().splitlines()[-1]) == second.final_state


# --- meltanolabs-target-csv -------------------------------------------------------------------------------


def read_csv_dir(folder: Path) -> dict[str, list[dict[str, str]]]:
    csv.field_size_limit(sys.maxsize)  # event_properties can be long
    out: dict[str, list[dict[str, str]]] = {}
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            out[path.stem] = list(csv.DictReader(f))
    return out


def parse_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)


def test_target_csv_loads_every_stream_and_an_incremental_run(account, tap_config, workdir):
    exe = target_exe("target-csv")
    first, second = two_runs(
        account,
        tap_config,
        [str(exe)],
        lambda n: {"output_path": str(workdir / f"out{n}"), "file_naming_scheme": "{stream_name}.csv"},
        workdir,
    )
    files1, files2 = read_csv_dir(workdir / "out1"), read_csv_dir(workdir / "out2")
    for stream in DEFAULT_STREAMS:
        assert len(files1.get(stream, [])) == len(first.records(stream)), f"{stream}: rows lost in run 1"
        assert len(files2.get(stream, [])) == len(second.records(stream)), f"{stream}: rows lost in run 2"
    assert_split_runs(
        account,
        {s: keys_of(rows, s) for s, rows in files1.items()},
        {s: keys_of(rows, s) for s, rows in files2.items()},
    )
    # Values survive the trip: objects as JSON, date-times as sent.
    opened = fake_events(account, "opened_email")
    for row in files1["opened_email"]:
        event = opened[row["id"]]
        # target-csv 0.5.0 writes an object as Python's repr, not JSON: read either.
        assert parse_object(row["event_properties"]) == event["attributes"]["event_properties"], row["id"]
        assert utc(row["datetime"]) == utc(event["attributes"]["datetime"]), row["id"]
        assert int(row["timestamp"]) == event["attributes"]["timestamp"], row["id"]


# --- meltanolabs-target-postgres --------------------------------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    dsn = pg_dsn()
    schema = f"klaviyo_test_{uuid.uuid4().hex[:10]}"
    try:
        yield dsn, schema
    finally:
        drop_schema(dsn, schema)


def pg_tables(dsn: str, schema: str) -> set[str]:
    rows = psql(dsn, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'")
    return {r["table_name"] for r in rows}


def pg_keys(dsn: str, schema: str, stream: str) -> list[tuple]:
    cols = ", ".join(STREAM_KEYS[stream])
    return [tuple(str(r[k]) for k in STREAM_KEYS[stream]) for r in psql(dsn, f"SELECT {cols} FROM {schema}.{stream}")]


def pg_columns(dsn: str, schema: str) -> dict[tuple[str, str], str]:
    rows = psql(
        dsn,
        f"SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = '{schema}'",
    )
    return {(r["table_name"], r["column_name"]): r["data_type"] for r in rows}


@pytest.fixture(scope="module")
def postgres_loaded(account, server, tmp_path_factory):
    """Two runs into PostgreSQL (history up to the split, then incremental from the final STATE), upserting."""
    dsn = pg_dsn()
    exe = target_exe("target-postgres")
    schema = f"klaviyo_test_{uuid.uuid4().hex[:10]}"
    workdir = tmp_path_factory.mktemp("postgres")
    tap_config = {"api_key": API_KEY, "api_url": server.url}
    try:
        first = pipe(
            {**tap_config, "end_date": split_date(account)}, [str(exe)], postgres_config(dsn, schema), workdir / "run1"
        )
        first.check()
        after_first = {s: pg_keys(dsn, schema, s) for s in DEFAULT_STREAMS}
        second = pipe(tap_config, [str(exe)], postgres_config(dsn, schema), workdir / "run2", state=first.final_state)
        second.check()
        yield dsn, schema, first, second, after_first
    finally:
        drop_schema(dsn, schema)


@pytest.mark.slow
def test_target_postgres_loads_every_stream_and_an_incremental_run(account, postgres_loaded):
    dsn, schema, _first, second, after_first = postgres_loaded
    assert pg_tables(dsn, schema) == DEFAULT_STREAMS
    assert_split_runs(account, after_first, {s: keys_of(second.records(s), s) for s in DEFAULT_STREAMS})
    # Upserting on the primary keys, the tables now equal the fake's data: no row twice, none missing.
    for stream, keys in expected_keys(account).items():
        assert_keys_equal(pg_keys(dsn, schema, stream), keys, f"postgres {stream} after two runs")
    # Values survive: an event's time, its object of properties.
    opened = fake_events(account, "opened_email")
    rows = psql(dsn, f"SELECT id, datetime, timestamp, event_properties FROM {schema}.opened_email")
    for row in rows:
        event = opened[row["id"]]["attributes"]
        assert datetime.fromisoformat(row["datetime"]) == utc(event["datetime"]).replace(tzinfo=None), row["id"]
        assert row["timestamp"] == event["timestamp"]
        assert row["event_properties"] == event["event_properties"], row["id"]


def test_postgres_column_types_follow_the_schemas(postgres_loaded):
    dsn, schema, first, _second, _ = postgres_loaded
    columns = pg_columns(dsn, schema)
    wrong = []
    for stream in DEFAULT_STREAMS:
        for name, prop in first.schema(stream)["properties"].items():
            types = set(prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]) - {"null"}
            if prop.get("format") == "date-time":
                allowed = {"timestamp without time zone", "timestamp with time zone"}
            elif types == {"integer"}:
                allowed = {"bigint", "integer", "smallint"}
            elif types == {"number"}:
                allowed = {"numeric", "double precision", "real"}
            elif types == {"boolean"}:
                allowed = {"boolean"}
            elif types == {"object"}:
                allowed = {"jsonb", "json"}
            elif types == {"array"}:
                # target-postgres makes a top-level array an array column (of jsonb for objects).
                allowed = {"ARRAY", "jsonb", "json"}
            elif types == {"string"}:
                allowed = {"text", "character varying"}
            else:
                continue
            actual = columns.get((stream, name))
            if actual not in allowed:
                wrong.append(f"{stream}.{name}: {actual} (schema {prop.get('type')}, {prop.get('format')})")
    assert not wrong, "columns of the wrong type:\n" + "\n".join(wrong)
    # The checks that matter for a warehouse, spelled out.
    for stream in EVENT_METRICS:
        assert columns[(stream, "datetime")].startswith("timestamp"), stream
        assert columns[(stream, "timestamp")] == "bigint", stream
        assert columns[(stream, "event_properties")] == "jsonb", stream
    assert columns[("email_campaigns", "audiences")] == "jsonb"
    assert columns[("lists_and_segments", "updated")].startswith("timestamp")
    # Any time-like column beyond the known ones that lands as text is a schema regression.
    untyped = {
        (table, col)
        for (table, col), kind in columns.items()
        if kind == "text" and (col in {"created", "updated", "datetime"} or col.endswith("_at"))
    }
    assert not untyped, f"time columns landing as text: {sorted(untyped)}"


# --- BATCH messages ---------------------------------------------------------------------------------------


def batch_config(folder: Path) -> dict[str, Any]:
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": folder.as_uri(), "prefix": "klaviyo-"},
        "batch_size": 100,
    }


def test_batch_files_hold_every_record(account, tap_config, workdir):
    exe = target_exe("target-csv")
    batches = workdir / "batches"
    batches.mkdir()
    run = pipe(
        {**tap_config, "batch_config": batch_config(batches)},
        [str(exe)],
        {"output_path": str(workdir / "csv")},
        workdir / "run",
    ).check()
    assert not [m for m in run.tap_messages if m["type"] == "RECORD"], "with batch_config the tap sends no RECORD"
    manifests: dict[str, list[str]] = {}
    for m in run.tap_messages:
        if m["type"] == "BATCH":
            assert m["encoding"] == {"format": "jsonl", "compression": "gzip"}
            manifests.setdefault(m["stream"], []).extend(m["manifest"])
    assert set(manifests) == DEFAULT_STREAMS
    assert len(manifests["opened_email"]) >= 3, "300 events in batches of 100 make several files"
    plain = run_tap(tap_config)
    assert plain.returncode == 0, plain.stderr
    for stream, keys in expected_keys(account).items():
        rows = []
        for uri in manifests[stream]:
            path = Path(unquote(urlparse(uri).path))
            assert path.parent == batches, f"{uri} is not under the configured storage root"
            with gzip.open(path, "rt", encoding="utf-8") as f:
                rows.extend(json.loads(line) for line in f if line.strip())
        assert_keys_equal(keys_of(rows, stream), keys, f"batch files of {stream}")
        by_key = dict(zip(keys_of(rows, stream), rows, strict=True))
        for record in plain.records(stream):
            assert by_key[keys_of([record], stream)[0]] == record, f"{stream}: a batch row differs from its RECORD"
    # target-csv reads the BATCH messages: every row lands.
    loaded = read_csv_dir(workdir / "csv")
    for stream, keys in expected_keys(account).items():
        assert_keys_equal(keys_of(loaded.get(stream, []), stream), keys, f"target-csv from BATCH, {stream}")


@pytest.mark.slow
def test_batch_messages_load_into_postgres(account, tap_config, workdir, pg_schema):
    dsn, schema = pg_schema
    exe = target_exe("target-postgres")
    batches = workdir / "batches"
    batches.mkdir()
    pipe(
        {**tap_config, "batch_config": batch_config(batches)}, [str(exe)], postgres_config(dsn, schema), workdir / "run"
    ).check()
    for stream, keys in expected_keys(account).items():
        assert_keys_equal(pg_keys(dsn, schema, stream), keys, f"postgres from BATCH, {stream}")


# --- stream maps and flattening ---------------------------------------------------------------------------


def test_stream_map_columns_from_event_properties_land_in_postgres(account, tap_config, workdir, pg_schema):
    dsn, schema = pg_schema
    exe = target_exe("target-postgres")
    maps = {
        "opened_email": {
            "subject": "event_properties.get('Subject')",
            "client_name": "event_properties.get('Client Name')",
            "event_properties": "__NULL__",
        },
        "received_email": "__NULL__",
    }
    run = pipe({**tap_config, "stream_maps": maps}, [str(exe)], postgres_config(dsn, schema), workdir / "run").check()
    assert "received_email" not in {m.get("stream") for m in run.tap_messages}
    assert "received_email" not in pg_tables(dsn, schema)
    columns = pg_columns(dsn, schema)
    assert columns[("opened_email", "subject")] == "text"
    assert columns[("opened_email", "client_name")] == "text"
    assert ("opened_email", "event_properties") not in columns
    opened = fake_events(account, "opened_email")
    rows = psql(dsn, f"SELECT id, subject, client_name FROM {schema}.opened_email")
    assert {r["id"] for r in rows} == set(opened)
    for row in rows:
        props = opened[row["id"]]["attributes"]["event_properties"]
        assert row["subject"] == props.get("Subject"), row["id"]
        assert row["client_name"] == props.get("Client Name"), row["id"]


def test_flattening_expands_nested_objects_into_columns(account, tap_config, workdir, pg_schema):
    dsn, schema = pg_schema
    exe = target_exe("target-postgres")
    flat = {**tap_config, "flattening_enabled": True, "flattening_max_depth": 1}
    pipe(flat, [str(exe)], postgres_config(dsn, schema), workdir / "run").check()
    columns = pg_columns(dsn, schema)
    assert columns[("email_campaigns", "send_options__use_smart_sending")] == "boolean"
    assert columns[("email_campaigns", "send_strategy__method")] == "text"
    # Depth 1: the object one level further down stays one JSON value.
    assert ("email_campaigns", "send_strategy__options") in columns
    assert not any(c.startswith("send_strategy__options__") for t, c in columns if t == "email_campaigns")
    assert ("email_campaigns", "send_options") not in columns
    campaigns = {c["id"]: c["attributes"] for c in account.email_campaigns()}
    rows = psql(
        dsn,
        f"SELECT id, send_options__use_smart_sending AS s, send_strategy__method AS m FROM {schema}.email_campaigns",
    )
    assert {r["id"] for r in rows} == set(campaigns)
    for row in rows:
        assert row["s"] == campaigns[row["id"]]["send_options"].get("use_smart_sending"), row["id"]
        assert row["m"] == (campaigns[row["id"]]["send_strategy"] or {}).get("method"), row["id"]


# --- mirroring deletions into target-postgres ---------------------------------------------------------------


def pg_live_and_deleted(dsn: str, schema: str, stream: str) -> tuple[set[tuple], set[tuple]]:
    """A table's keys without and with `_sdc_deleted_at`."""
    cols = ", ".join(STREAM_KEYS[stream])
    rows = psql(dsn, f"SELECT {cols}, _sdc_deleted_at FROM {schema}.{stream}")
    keys = [(tuple(str(r[k]) for k in STREAM_KEYS[stream]), r["_sdc_deleted_at"]) for r in rows]
    return {k for k, deleted in keys if deleted is None}, {k for k, deleted in keys if deleted is not None}


@pytest.mark.slow
@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft-delete", "hard-delete"])
def test_target_postgres_mirrors_klaviyo_and_a_failed_run_deletes_nothing(pg_schema, tmp_path, hard_delete):
    dsn, schema = pg_schema
    exe = [str(target_exe("target-postgres"))]
    target = {**postgres_config(dsn, schema), "hard_delete": hard_delete}
    account = generate_account(seed=63, events_per_metric=40, flows=120)
    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        tap_config = {"api_key": API_KEY, "api_url": fake.url, "emit_activate_version_messages": True}
        first = pipe(tap_config, exe, target, tmp_path / "run1").check()
        loaded = {s: pg_live_and_deleted(dsn, schema, s)[0] for s in MIRRORED}
        delete_and_change(account)
        second = pipe(tap_config, exe, target, tmp_path / "run2", state=first.final_state).check()
        after_second = {s: pg_live_and_deleted(dsn, schema, s) for s in MIRRORED}
        third = pipe(tap_config, exe, target, tmp_path / "run3", state=second.final_state).check()
    expected = expected_keys(account)
    assert third.records("flows") and after_second == {s: pg_live_and_deleted(dsn, schema, s) for s in MIRRORED}, (
        "a third run with nothing changed in Klaviyo changes nothing"
    )
    for stream in MIRRORED:
        live, deleted = pg_live_and_deleted(dsn, schema, stream)
        assert live == set(expected[stream]), f"{stream}: the table's live rows are Klaviyo's current ones"
        gone = loaded[stream] - live
        assert deleted == (set() if hard_delete else gone), f"{stream}: rows gone from Klaviyo, marked or removed"
    assert any(loaded[s] - set(expected[s]) for s in MIRRORED), "the changes deleted something"
    for stream in EVENT_METRICS:
        live, deleted = pg_live_and_deleted(dsn, schema, stream)
        assert deleted == set() and live == set(expected[stream]), f"{stream}: events are never deleted"

    # A run that fails inside mirrored streams (those of the flows walk: Klaviyo fails every flows page past the
    # first, and the tap retries nothing) activates nothing for them: every current row stays live.
    before = {s: pg_live_and_deleted(dsn, schema, s) for s in MIRRORED}
    with (
        FakeKlaviyo(account, api_key=API_KEY) as fake,
        Misbehaving(fake.url, down_past_the_first_page("/api/flows")) as proxy,
    ):
        failing = {"api_key": API_KEY, "api_url": proxy.url, "emit_activate_version_messages": True, "max_retries": 0}
        broken = pipe(failing, exe, target, tmp_path / "run4", state=third.final_state)
    # flow_actions, synced first of the three streams of the flows walk, reads it whole before writing a record.
    flow_streams = ("flow_actions", "flow_messages", "flows")
    assert broken.tap_returncode == 1 and "/api/flows" in broken.tap_stderr, "the run stopped inside the flows walk"
    assert not [m for m in broken.tap_messages if m["type"] == "ACTIVATE_VERSION" and m["stream"] in flow_streams]
    for stream in flow_streams:
        assert pg_live_and_deleted(dsn, schema, stream) == before[stream], stream
