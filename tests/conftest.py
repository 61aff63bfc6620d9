"""Fixtures: a fake Klaviyo on loopback serving one generated account, a tap config pointing at it, and a way
to ask the fake directly; and the running test's marks, for the kit (only `e2e` tests run the command).

The helpers live in tests/kit.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from fake_klaviyo import REVISION, Account, FakeKlaviyo, generate_account
from tests import kit
from tests.kit import API_KEY


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
