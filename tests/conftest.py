"""Fixtures: a fake Klaviyo on loopback serving one generated account, and a tap config pointing at it.

The helpers live in tests/kit.py. This module also re-exports the kit's names that work written before the kit
imports from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fake_klaviyo import Account, FakeKlaviyo, generate_account
from tests.kit import (
    API_KEY,
    EVENT_METRICS,
    STREAM_KEYS,
    TAP,
    TapRun,
    assert_exact,
    expected_streams,
    klaviyo_metric,
    run_tap,
    select,
)

__all__ = [
    "API_KEY",
    "EVENT_METRICS",
    "STREAM_KEYS",
    "TAP",
    "TapRun",
    "assert_exact",
    "expected_streams",
    "klaviyo_metric",
    "run_tap",
    "select",
]


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
