"""singer-sdk's standard tap tests, run against the fake Klaviyo."""

from __future__ import annotations

import atexit

from singer_sdk.testing import get_tap_test_class

from fake_klaviyo import FakeKlaviyo, generate_account
from tap_klaviyo.tap import TapKlaviyo
from tests.kit import API_KEY

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
    """The discovered catalog with the opt-in streams (profiles, members, attributions) selected too."""
    catalog = TapKlaviyo(config=_config).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = True
    return catalog


TestTapKlaviyo = get_tap_test_class(TapKlaviyo, config=_config, catalog=_every_stream_selected())
