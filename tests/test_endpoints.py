"""tap_klaviyo/endpoints.py, copied by hand from Klaviyo's spec, held against the fake's table of the same
endpoints (fake_klaviyo/endpoints.json, which fake_klaviyo/make_endpoints.py derives from the vendored spec and
tests/test_fake_klaviyo.py holds to it): two derivations of the scopes, page sizes and rate limits, which must
agree."""

from __future__ import annotations

import json
from typing import Any

from tap_klaviyo import endpoints
from tap_klaviyo.endpoints import Endpoint
from tap_klaviyo.settings import DEFAULT_REVISION
from tests.kit import REPO

SPEC = json.loads((REPO / "fake_klaviyo" / "endpoints.json").read_text(encoding="utf-8"))
BY_PATH = {entry["path"]: entry for entry in SPEC["endpoints"].values()}
TAP_ENDPOINTS = {name: value for name, value in vars(endpoints).items() if isinstance(value, Endpoint)}
# Rows for requests that ask for an additional field: the limits the endpoint's description gives for it.
WITH_FIELD = {"PROFILES_PREDICTIVE": "predictive_analytics"}


def from_spec(name: str, path: str) -> Endpoint:
    """The row the spec gives for the tap's constant `name` on `path`: its scopes, the largest page size the
    schema allows then the smaller one its prose promises (if any), and its rate limits."""
    entry: dict[str, Any] = BY_PATH[path]
    sizes: tuple[int, ...] = ()
    if entry["page_size"] is not None:
        promised = {entry["page_size"]["max"], entry["prose_max_page_size"] or entry["page_size"]["max"]}
        sizes = tuple(sorted(promised, reverse=True))
    limits = entry["field_rate_limits"][WITH_FIELD[name]] if name in WITH_FIELD else entry["rate_limit"]
    return Endpoint(path, tuple(sorted(entry["scopes"])), sizes, limits["burst"], limits["steady"])


def test_the_tap_and_the_fake_read_the_same_endpoints():
    assert {e.path for e in TAP_ENDPOINTS.values()} == set(BY_PATH)
    assert set(WITH_FIELD) <= set(TAP_ENDPOINTS)


def test_every_endpoint_row_is_what_the_spec_says():
    wrong = {}
    for name, endpoint in TAP_ENDPOINTS.items():
        written = Endpoint(
            endpoint.path,
            tuple(sorted(endpoint.scopes)),
            endpoint.page_sizes,
            endpoint.burst_per_second,
            endpoint.steady_per_minute,
        )
        spec = from_spec(name, endpoint.path)
        if written != spec:
            wrong[name] = f"endpoints.py has {written}, the spec {spec}"
    assert not wrong, "tap_klaviyo/endpoints.py disagrees with the spec: " + "; ".join(wrong.values())


def test_the_rows_and_the_default_revision_are_of_the_fakes_revision():
    assert f"revision {SPEC['revision']}" in (endpoints.__doc__ or "")
    assert SPEC["revision"] == DEFAULT_REVISION
