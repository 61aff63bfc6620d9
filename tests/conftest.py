"""Fixtures: a fake Klaviyo on loopback serving one generated account, a tap config pointing at it, and a way
to ask the fake directly; the client of a mocked Klaviyo with its clock; and the running test's marks, for the kit
(only `e2e` tests run the command).

The helpers live in tests/kit.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from fake_klaviyo import REVISION, Account, FakeKlaviyo, generate_account
from tap_klaviyo import client as client_module
from tap_klaviyo import pacing
from tap_klaviyo.client import KlaviyoClient
from tests import kit
from tests.kit import API_KEY, CLIENT_API, CLIENT_KEY, FakeTime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the test's fixtures are set up: a fixture may run the command too.
    kit.RUNNING_MARKS.clear()
    kit.RUNNING_MARKS.update(mark.name for mark in item.iter_markers())


@pytest.fixture(scope="session")
def account() -> Account:
    return generate_account(seed=20261128)


@pytest.fixture
def fake(account: Account) -> Iterator[FakeKlaviyo]:
    with FakeKlaviyo(account, api_key=API_KEY, metrics_page_size=7) as server:
        yield server


@pytest.fixture
def config(fake: FakeKlaviyo) -> dict[str, Any]:
    return {"api_key": API_KEY, "api_url": fake.url}


@pytest.fixture
def api(fake: FakeKlaviyo) -> Iterator[Callable[..., requests.Response]]:
    """GET from the fake with its key and revision: ``api("/api/lists", sort="name")``."""
    with requests.Session() as s:
        s.headers.update(
            {"Authorization": f"Klaviyo-API-Key {fake.api_key}", "revision": REVISION, "accept": "application/json"}
        )
        yield lambda path, **params: s.get(fake.url + path, params=params, timeout=10)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """The client's and the pacer's time, moved only by their sleeps."""
    fake = FakeTime()
    monkeypatch.setattr(client_module, "time", fake)
    monkeypatch.setattr(pacing, "time", fake)
    return fake


@pytest.fixture
def client(clock: FakeTime) -> KlaviyoClient:
    """A client of the mocked Klaviyo at CLIENT_API (requests_mock), on `clock`."""
    return KlaviyoClient(
        api_key=CLIENT_KEY,
        api_url=CLIENT_API,
        revision="2026-07-15",
        user_agent="t/1",
        max_retries=3,
        sleep=clock.sleep,
    )
