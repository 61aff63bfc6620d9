"""Who may ask for what, checked before the query: the path and method, the API key, the revision, the scopes."""

from __future__ import annotations

import re
from collections.abc import Set
from datetime import date

from .responses import ApiError
from .spec import REVISION, Endpoint

_REVISION = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:\.([A-Za-z0-9]+))?$")
_LATEST_REVISION = date.fromisoformat(REVISION)


def check_route(method: str, path: str, ep: Endpoint | None) -> Endpoint:
    if ep is None:
        raise ApiError(404, "not_found", "Not found.", f"The requested path {path!r} was not found.")
    if method != ep.method:
        raise ApiError(
            405,
            "method_not_allowed",
            "Method not allowed.",
            f'Method "{method}" not allowed.',
            headers={"Allow": ep.method},
        )
    return ep


def check_auth(value: str | None, api_key: str) -> None:
    scheme = "Klaviyo-API-Key "
    if not value or not value.startswith(scheme):
        raise ApiError(
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
            pointer="/data/",
        )
    if value[len(scheme) :] != api_key:
        raise ApiError(
            401,
            "not_authenticated",
            "Incorrect authentication credentials.",
            "The API key specified is invalid.",
            pointer="/data/",
        )


def check_revision(value: str | None) -> None:
    if value is None:
        raise ApiError(400, "invalid", "Invalid input.", "The 'revision' header is required.", parameter="revision")
    m = _REVISION.match(value)
    try:
        day = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
    except ValueError:
        day = None
    if day is None:
        raise ApiError(
            400,
            "invalid",
            "Invalid input.",
            f"Invalid revision {value!r}: expected YYYY-MM-DD with an optional .suffix.",
            parameter="revision",
        )
    if day > _LATEST_REVISION:
        raise ApiError(
            400,
            "invalid",
            "Invalid input.",
            f"Revision {value!r} does not exist; the latest is {REVISION}.",
            parameter="revision",
        )


def check_scopes(ep: Endpoint, granted: Set[str]) -> None:
    missing = [s for s in ep.scopes if s not in granted]
    if missing:
        raise ApiError(
            403,
            "permission_denied",
            "You do not have permission to perform this action.",
            f"This API key is missing required scopes: {', '.join(missing)}",
            pointer="/data/",
        )
