"""Fixtures: a fake Klaviyo on loopback serving one generated account, and a tap config pointing at it.

The helpers live in tests/kit.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fake_klaviyo import Account, FakeKlaviyo, generate_account
from tests.kit import API_KEY


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
