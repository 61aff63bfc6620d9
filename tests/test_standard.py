"""singer-sdk's standard tap tests, run against the fake Klaviyo."""

from __future__ import annotations

import atexit

from singer_sdk.testing import get_tap_test_class

from fake_klaviyo import FakeKlaviyo, generate_account
from tap_klaviyo.tap import TapKlaviyo
from tests.kit import API_KEY
from tests.reports_kit import REPORT_STREAMS

# The SDK builds its test class at import time, so the fake must already be listening then.
_fake = FakeKlaviyo(generate_account(seed=3, events_per_metric=25), api_key=API_KEY)
_fake.start()
atexit.register(_fake.stop)

# A conversion metric's events, so that event_attributions has rows too.
_config = {
    "api_key": API_KEY,
    "api_url": _fake.url,
    "event_metrics": [{"name": "Placed Order", "integration": "shopify"}],
}


def _every_stream_selected() -> dict:
    """The discovered catalog with the opt-in streams (profiles, members, attributions) selected too, but the report
    streams: at Klaviyo's two report requests a minute, all history takes many minutes a sync (tests/test_reports.py
    reads them end to end, against a fake that allows more)."""
    catalog = TapKlaviyo(config=_config).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] not in REPORT_STREAMS
    return catalog


TestTapKlaviyo = get_tap_test_class(TapKlaviyo, config=_config, catalog=_every_stream_selected())
