"""The project's meltano.yml, run by a real Meltano against the fake Klaviyo.

Meltano comes from `scripts/ci-services` (TAP_KLAVIYO_MELTANO) or PATH; without it the Meltano runs skip,
unless TAP_KLAVIYO_INTEGRATION_REQUIRED=1 (set by `.ci/run`), where they fail. The project is copied to a
temporary folder and `meltano install` runs there once per test session; each test gets its own Meltano
system database, so no state leaks between tests or into the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fake_klaviyo import FakeKlaviyo, generate_account
from tests.kit import (
    API_KEY,
    DEFAULT_STREAMS,
    EVENT_METRICS,
    STREAM_KEYS,
    assert_keys_equal,
    clean_env,
    drop_schema,
    event_metric_id,
    expected_keys,
    fake_events,
    keys_of,
    pg_dsn,
    postgres_config,
    psql,
    tap_argv,
    unavailable,
    utc,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
STATE_ID = "dev:tap-klaviyo-to-target-jsonl"
EVENTS_PER_METRIC = 1500  # more than one page of 1000 per event stream


def meltano_yml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "meltano.yml").read_text())


def plugin(kind: str, name: str) -> dict[str, Any]:
    return next(p for p in meltano_yml()["plugins"][kind] if p["name"] == name)


# --- meltano.yml against the tap's own description (no Meltano needed) -----------------------------------


def test_meltano_yml_declares_every_tap_setting_as_the_tap_describes_it():
    about = subprocess.run(tap_argv("--about", "--format=json"), capture_output=True, text=True, check=True)
    about = json.loads(about.stdout)
    declared = {s["name"]: s for s in plugin("extractors", "tap-klaviyo")["settings"]}
    properties = about["settings"]["properties"]
    assert set(properties) <= set(declared), f"settings missing in meltano.yml: {set(properties) - set(declared)}"
    kinds = {"string": "string", "integer": "integer", "boolean": "boolean", "object": "object", "array": "array"}
    for name, prop in properties.items():
        setting = declared[name]
        assert setting.get("label") and setting.get("description"), f"{name}: label and description"
        types = [t for t in (prop["type"] if isinstance(prop["type"], list) else [prop["type"]]) if t != "null"]
        expected_kind = "date_iso8601" if prop.get("format") == "date-time" else kinds.get(types[0])
        assert expected_kind, f"{name}: no Meltano kind for JSON type {types}"
        assert setting["kind"] == expected_kind, f"{name}: kind {setting['kind']}, the tap says {expected_kind}"
        assert bool(setting.get("sensitive")) == bool(prop.get("secret")), f"{name}: sensitive must match secret"
        if "default" in prop:
            assert setting.get("value") == prop["default"], f"{name}: value {setting.get('value')!r} != default"
        if "title" in prop and name in {"api_key", "start_date", "end_date", "revision", "api_url", "max_retries"}:
            assert setting["label"] == prop["title"], name
    required = about["settings"].get("required", [])
    assert plugin("extractors", "tap-klaviyo")["settings_group_validation"] == [required]


def test_meltano_yml_declares_the_plugins_inline():
    project = meltano_yml()
    assert "version" not in project, "`version: 1` is deprecated in Meltano"
    tap = plugin("extractors", "tap-klaviyo")
    assert (tap["namespace"], tap["pip_url"], tap["executable"]) == ("tap_klaviyo", "-e .", "tap-klaviyo")
    about = json.loads(subprocess.run(tap_argv("--about", "--format=json"), capture_output=True, check=True).stdout)
    wanted = {"catalog", "discover", "state", "about", "stream-maps", "schema-flattening", "batch"}
    assert wanted <= set(tap["capabilities"]) <= set(about["capabilities"])
    loaders = {p["name"]: p["pip_url"] for p in project["plugins"]["loaders"]}
    assert loaders["target-jsonl"] == "target-jsonl==0.1.4"
    assert loaders["target-csv"] == "meltanolabs-target-csv==0.5.0"
    assert loaders["target-postgres"].startswith("meltanolabs-target-postgres==")
    assert all(p.get("namespace") and p.get("executable") for p in project["plugins"]["loaders"])
    assert {"destination_path": "output"}.items() <= {
        s["name"]: s.get("value") for s in plugin("loaders", "target-jsonl")["settings"]
    }.items()


# --- a real Meltano ---------------------------------------------------------------------------------------


def meltano_exe() -> str:
    exe = os.environ.get("TAP_KLAVIYO_MELTANO") or shutil.which("meltano")
    if not exe or not os.access(exe, os.X_OK):
        unavailable("meltano is not installed (TAP_KLAVIYO_MELTANO is not set and no meltano on PATH)")
    return exe


@dataclass
class Meltano:
    exe: str
    root: Path
    base_env: dict[str, str]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.exe, *args],
            cwd=self.root,
            env={**self.base_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def meltano_env(database: Path) -> dict[str, str]:
    env = clean_env("TARGET_", "MELTANO_")
    env.update(
        MELTANO_DATABASE_URI=f"sqlite:///{database}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_DISABLE_TRACKING="true",
        NO_COLOR="1",
    )
    return env


@pytest.fixture(scope="session")
def meltano_project(tmp_path_factory) -> Meltano:
    """A copy of the project with its plugins installed by `meltano install` (once per session)."""
    exe = meltano_exe()
    root = tmp_path_factory.mktemp("meltano") / "project"
    root.mkdir()
    for name in ("meltano.yml", "pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "tap_klaviyo", root / "tap_klaviyo", ignore=shutil.ignore_patterns("__pycache__"))
    project = Meltano(exe, root, meltano_env(root.parent / "install.db"))
    proc = project.run("install")
    assert proc.returncode == 0, f"meltano install failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    for plugin_dir in (
        "extractors/tap-klaviyo",
        "loaders/target-jsonl",
        "loaders/target-csv",
        "loaders/target-postgres",
    ):
        assert (root / ".meltano" / plugin_dir / "venv").is_dir(), f"meltano install left no venv for {plugin_dir}"
    return project


@pytest.fixture
def meltano(meltano_project, tmp_path) -> Iterator[Meltano]:
    """The installed project with a fresh system database (so a fresh state) and an empty output/."""
    shutil.rmtree(meltano_project.root / "output", ignore_errors=True)
    yield Meltano(meltano_project.exe, meltano_project.root, meltano_env(tmp_path / "meltano.db"))
    shutil.rmtree(meltano_project.root / "output", ignore_errors=True)


@pytest.fixture(scope="module")
def big_account():
    return generate_account(seed=11, events_per_metric=EVENTS_PER_METRIC)


def read_output(root: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((root / "output").glob("*.jsonl")):
        stream = path.stem.rsplit("-", 1)[0]
        out.setdefault(stream, []).extend(json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x)
    return out


def events_since(fake: FakeKlaviyo) -> dict[str, list[str]]:
    """The `greater-or-equal(datetime, ...)` bound of each request for a page of events, by metric id (not those
    for a stream's newest event, sent beside its first page)."""
    out: dict[str, list[str]] = {}
    for r in fake.requests:
        if r.path != "/api/events" or r.query.get("sort") == ["-datetime"]:
            continue
        text = " ".join(r.query.get("filter", []))
        metric = re.search(r"equals\(metric_id,\s*['\"]?([^'\")]+)", text)
        since = re.search(r"greater-or-equal\(datetime,\s*['\"]?([^'\")]+)", text)
        key = metric.group(1) if metric else "?"
        out.setdefault(key, []).append(since.group(1) if since else "")
    return out


def get_state(meltano: Meltano, state_id: str = STATE_ID) -> dict[str, Any]:
    proc = meltano.run("state", "get", state_id)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)["singer_state"]


@pytest.mark.slow
@pytest.mark.integration
def test_meltano_run_loads_every_stream_then_continues_from_its_state(meltano, big_account):
    with FakeKlaviyo(big_account, api_key=API_KEY) as fake:
        env = {"TAP_KLAVIYO_API_KEY": API_KEY, "TAP_KLAVIYO_API_URL": fake.url}

        first = meltano.run("run", "tap-klaviyo", "target-jsonl", env=env)
        assert first.returncode == 0, first.stderr[-5000:]
        loaded = read_output(meltano.root)
        assert set(loaded) == DEFAULT_STREAMS, f"output/ holds {sorted(loaded)}"
        for stream, keys in expected_keys(big_account).items():
            assert_keys_equal(keys_of(loaded[stream], stream), keys, f"meltano run 1, {stream}")
        first_requests = len(fake.requests)
        pages = events_since(fake)
        for stream in EVENT_METRICS:
            assert len(pages[event_metric_id(big_account, stream)]) >= 2, f"{stream}: 1500 events need 2+ requests"
        assert "" in {b for bounds in pages.values() for b in bounds}, "run 1 starts from no bookmark"

        # Meltano stored the tap's final state: each event stream's bookmark is its newest event.
        state = get_state(meltano)
        for stream in EVENT_METRICS:
            newest = max(utc(e["attributes"]["datetime"]) for e in fake_events(big_account, stream).values())
            assert utc(state["bookmarks"][stream]["replication_key_value"]) == newest, stream

        shutil.rmtree(meltano.root / "output")
        fake.clear_requests()
        second = meltano.run("run", "tap-klaviyo", "target-jsonl", env=env)
        assert second.returncode == 0, second.stderr[-5000:]

        # It read the state back and asked Klaviyo only for what is at or after each bookmark: one page each.
        pages = events_since(fake)
        for stream in EVENT_METRICS:
            bounds = pages.get(event_metric_id(big_account, stream))
            assert bounds and len(bounds) == 1, f"{stream}: {bounds}"
            assert utc(bounds[0]) == utc(state["bookmarks"][stream]["replication_key_value"]), stream
        again = read_output(meltano.root)
        for stream in EVENT_METRICS:
            # Exactly the events of the bookmark's own second come again.
            mark = utc(state["bookmarks"][stream]["replication_key_value"])
            same_second = {
                i for i, e in fake_events(big_account, stream).items() if utc(e["attributes"]["datetime"]) == mark
            }
            assert {r["id"] for r in again.get(stream, [])} == same_second, stream
        assert len(fake.requests) < first_requests
        assert get_state(meltano)["bookmarks"] == state["bookmarks"], "no new data: the same bookmarks"


@pytest.mark.slow
@pytest.mark.integration
def test_meltano_job_and_daily_schedule_share_the_runs_state(meltano, account):
    listed = meltano.run("schedule", "list", "--format=json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    schedules = {s["name"]: s for s in json.loads(listed.stdout)["schedules"]["job"]}
    daily = schedules["klaviyo-daily"]
    assert daily["cron_interval"] == "0 0 * * *"
    assert daily["job"]["tasks"] == ["tap-klaviyo target-jsonl"]

    with FakeKlaviyo(account, api_key=API_KEY) as fake:
        env = {"TAP_KLAVIYO_API_KEY": API_KEY, "TAP_KLAVIYO_API_URL": fake.url}
        # What a scheduler runs: the schedule's job, by name.
        first = meltano.run("schedule", "run", "klaviyo-daily", env=env)
        assert first.returncode == 0, first.stderr[-5000:]
        loaded = read_output(meltano.root)
        for stream, keys in expected_keys(account).items():
            assert_keys_equal(keys_of(loaded.get(stream, []), stream), keys, f"schedule run, {stream}")
        state = get_state(meltano)  # the job's state is the pipeline's: dev:tap-klaviyo-to-target-jsonl
        fake.clear_requests()
        shutil.rmtree(meltano.root / "output")
        second = meltano.run("run", "klaviyo-to-jsonl", env=env)
        assert second.returncode == 0, second.stderr[-5000:]
        pages = events_since(fake)
        for stream in EVENT_METRICS:
            bounds = pages[event_metric_id(account, stream)]
            assert [utc(b) for b in bounds] == [utc(state["bookmarks"][stream]["replication_key_value"])], stream


@pytest.mark.slow
@pytest.mark.integration
def test_meltano_reads_settings_from_the_environment_and_hides_the_key(meltano):
    env = {
        "TAP_KLAVIYO_API_KEY": API_KEY,
        "TAP_KLAVIYO_API_URL": "http://127.0.0.1:9",
        "TAP_KLAVIYO_LOOKBACK_MINUTES": "15",
    }
    printed = meltano.run("config", "print", "tap-klaviyo", env=env)
    assert printed.returncode == 0, printed.stderr[-3000:]
    config = json.loads(printed.stdout)
    assert config["api_url"] == "http://127.0.0.1:9"
    assert config["lookback_minutes"] == 15
    assert config["max_retries"] == 8 and config["revision"] == "2026-07-15"
    assert API_KEY not in printed.stdout + printed.stderr, "the key is sensitive: never printed"
    listed = meltano.run("config", "list", "tap-klaviyo", env=env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert API_KEY not in listed.stdout + listed.stderr
    missing = meltano.run("run", "tap-klaviyo", "target-jsonl", env={"TAP_KLAVIYO_API_URL": "http://127.0.0.1:9"})
    assert missing.returncode != 0, "a run without api_key must fail"
    assert "api_key" in missing.stdout + missing.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_two_accounts_run_in_parallel_into_one_postgres(meltano, tmp_path):
    # The meltano.yml layout for many accounts: a plugin and a job per account, the same tables for both.
    dsn, schema = pg_dsn(), f"klaviyo_accounts_{uuid.uuid4().hex[:8]}"
    accounts = {
        "a": generate_account(seed=81, events_per_metric=60),
        "b": generate_account(seed=82, events_per_metric=60),
    }
    keys = {"a": API_KEY, "b": API_KEY.replace("0123", "9876")}
    target = postgres_config(dsn, schema)
    env = {f"TARGET_POSTGRES_{name.upper()}": str(value) for name, value in target.items()}
    try:
        with (
            FakeKlaviyo(accounts["a"], api_key=keys["a"]) as fake_a,
            FakeKlaviyo(accounts["b"], api_key=keys["b"]) as fake_b,
        ):
            fakes = {"a": fake_a, "b": fake_b}
            for brand, fake in fakes.items():
                env[f"KLAVIYO_BRAND_{brand.upper()}_API_KEY"] = keys[brand]
                env[f"TAP_KLAVIYO_BRAND_{brand.upper()}_API_URL"] = fake.url

            def in_parallel(label: str, brands: tuple[str, ...] = ("a", "b")) -> None:
                runs = {
                    brand: subprocess.Popen(
                        [meltano.exe, "run", f"klaviyo-brand-{brand}-to-postgres"],
                        cwd=meltano.root,
                        env={**meltano.base_env, **env},
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                    for brand in brands
                }
                for brand, proc in runs.items():
                    out, _ = proc.communicate(timeout=600)
                    assert proc.returncode == 0, f"{label}, account {brand}:\n{out[-5000:]}"

            # As docs/operations.md says: one account's first run creates the tables (target-postgres does not guard its
            # CREATE TABLE against a second writer); from then on, the accounts run side by side.
            in_parallel("first run of account a", ("a",))
            states_a = get_state(meltano, "dev:tap-klaviyo-brand-a-to-target-postgres")
            for fake in fakes.values():
                fake.clear_requests()
            in_parallel("run 1")
            assert events_since(fakes["a"]), "account a went on from its state while b ran its first"
            for stream in DEFAULT_STREAMS:
                cols = ", ".join(STREAM_KEYS[stream])
                rows = psql(dsn, f"SELECT account_id, {cols} FROM {schema}.{stream}")
                for brand, account in accounts.items():
                    mine = [
                        tuple(str(r[k]) for k in STREAM_KEYS[stream])
                        for r in rows
                        if r["account_id"] == account.account["id"]
                    ]
                    assert_keys_equal(mine, expected_keys(account)[stream], f"{stream}, account {brand}")
                assert {r["account_id"] for r in rows} <= {a.account["id"] for a in accounts.values()}, stream
            states = {brand: get_state(meltano, f"dev:tap-klaviyo-brand-{brand}-to-target-postgres") for brand in fakes}
            for brand, account in accounts.items():
                for stream in EVENT_METRICS:
                    newest = max(utc(e["attributes"]["datetime"]) for e in fake_events(account, stream).values())
                    assert utc(states[brand]["bookmarks"][stream]["replication_key_value"]) == newest, (brand, stream)

            assert states["a"]["bookmarks"].keys() == states_a["bookmarks"].keys()
            for fake in fakes.values():
                fake.clear_requests()
            in_parallel("run 2")
            # Each account went on from its own state: one page per event stream, from its own bookmark.
            for brand, fake in fakes.items():
                pages = events_since(fake)
                for stream in EVENT_METRICS:
                    bounds = pages.get(event_metric_id(accounts[brand], stream))
                    assert bounds and len(bounds) == 1, (brand, stream, bounds)
                    assert utc(bounds[0]) == utc(states[brand]["bookmarks"][stream]["replication_key_value"])
    finally:
        drop_schema(dsn, schema)
