"""A fake Klaviyo REST API on loopback, written from Klaviyo's OpenAPI spec (stdlib only).

Usage: ``with FakeKlaviyo(generate_account(seed=7), api_key="pk_test_123") as fake:`` then point
the client at ``fake.url``; ``python -m fake_klaviyo`` serves one from the command line.
"""

from .clock import GENERATOR_NOW
from .data import Account, generate_account
from .events import EventStore, EventView
from .limits import FAULT_KINDS, Faults
from .metrics import EMAIL_METRICS, PINNED_METRICS
from .report_book import ReportBook
from .server import FakeKlaviyo
from .spec import ENDPOINTS, REVISION
from .transport import RequestRecord

__all__ = [
    "EMAIL_METRICS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "GENERATOR_NOW",
    "PINNED_METRICS",
    "REVISION",
    "Account",
    "EventStore",
    "EventView",
    "FakeKlaviyo",
    "Faults",
    "ReportBook",
    "RequestRecord",
    "generate_account",
]
