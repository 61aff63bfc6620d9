"""Shared test kit: a fake Klaviyo on loopback and a runner for the real `tap-klaviyo` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fake_klaviyo import FakeKlaviyo, generate_account

API_KEY = "pk_test_0123456789abcdef0123456789abcdef"
TAP = Path(sys.executable).with_name("tap-klaviyo")

# The tap's streams and their keys: a contract with users' tables.
STREAM_KEYS = {
    "lists_and_segments": ["id"],
    "email_campaigns": ["id"],
    "email_campaigns_vs_lists_included": ["campaign_id", "list_id"],
    "email_campaigns_vs_lists_excluded": ["campaign_id", "list_id"],
    "flows": ["id"],
    "metrics": ["id"],
    "bounced_email": ["id"],
    "clicked_email": ["id"],
    "opened_email": ["id"],
    "received_email": ["id"],
    "dropped_email": ["id"],
    "marked_email_as_spam": ["id"],
}
EVENT_METRICS = {
    "bounced_email": "Bounced Email",
    "clicked_email": "Clicked Email",
    "opened_email": "Opened Email",
    "received_email": "Received Email",
    "dropped_email": "Dropped Email",
    "marked_email_as_spam": "Marked Email as Spam",
}


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    state_file_after: str | None = None

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def by_stream(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in self.messages:
            if m["type"] == "RECORD":
                out[m["stream"]].append(m["record"])
        return out

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]


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
    with tempfile.TemporaryDirectory() as tmp:
        files = {"config": config, "state": state, "catalog": catalog}
        argv = [str(TAP)]
        for name, content in files.items():
            if content is not None:
                path = Path(tmp) / f"{name}.json"
                path.write_text(content if isinstance(content, str) else json.dumps(content))
                argv += [f"--{name}", str(path)]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KLAVIYO_")}
        proc = subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**environment, **(env or {})},
            cwd=tmp,
            check=False,
        )
        state_path = Path(tmp) / "state.json"
        state_after = state_path.read_text() if state_path.exists() else None
    messages = []
    if proc.stdout.lstrip().startswith("{") and "--discover" not in args and "--about" not in args:
        messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return TapRun(proc.returncode, proc.stdout, proc.stderr, messages, state_after)


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


@pytest.fixture(scope="session")
def account():
    return generate_account(seed=20261128)


@pytest.fixture
def fake(account) -> Iterator[FakeKlaviyo]:
    with FakeKlaviyo(account, api_key=API_KEY, metrics_page_size=7) as server:
        yield server


@pytest.fixture
def config(fake) -> dict[str, Any]:
    return {"api_key": API_KEY, "api_url": fake.url}
