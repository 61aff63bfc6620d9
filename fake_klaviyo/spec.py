"""Per-endpoint rules distilled from Klaviyo's OpenAPI spec (see make_endpoints.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

# A resource as the API returns it: {"type", "id", "attributes", "relationships"?, "links"?}.
Resource = dict[str, Any]

_DATA = json.loads((Path(__file__).with_name("endpoints.json")).read_text(encoding="utf-8"))

REVISION: str = _DATA["revision"]
ENUMS: dict[str, list[Any]] = _DATA["enums"]


@dataclass(frozen=True)
class PageSize:
    default: int
    min: int
    max: int


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    resource_type: str
    scopes: tuple[str, ...]
    burst: int
    steady: int
    # additional field -> (burst, steady): lower limits for the requests that ask for it
    field_rate_limits: dict[str, tuple[int, int]]
    query_params: frozenset[str]
    page_size: PageSize | None
    paginated: bool
    prose_max_page_size: int | None
    sort: tuple[str, ...] | None
    include: tuple[str, ...] | None
    fields: dict[str, tuple[str, ...]]
    # resource type -> what additional-fields[type] may ask for
    additional_fields: dict[str, tuple[str, ...]]
    filter_required: bool
    # field -> {"operators": {"single"|"list"|"none": [ops]}, "value": {"type", "format"?, "enum"?}}
    filter_fields: dict[str, Any] | None
    attributes: dict[str, Any]
    # relationship name -> {"kind": "one"|"many", "type": resource type}
    relationships: dict[str, Any]
    # resource type -> {"attributes", "relationships"} (as above): what the compound document may include
    included: dict[str, Any]
    # A report query is a POST, with a daily quota besides its burst and steady limits, and the rules of its body
    # (see make_report_endpoints.py).
    method: str = "GET"
    daily: int | None = None
    report: dict[str, Any] | None = None


def _endpoint(name: str, raw: dict[str, Any]) -> Endpoint:
    ps = raw["page_size"]
    filt = raw["filter"]
    return Endpoint(
        name=name,
        path=raw["path"],
        resource_type=raw["resource_type"],
        scopes=tuple(raw["scopes"]),
        burst=raw["rate_limit"]["burst"],
        steady=raw["rate_limit"]["steady"],
        field_rate_limits={k: (v["burst"], v["steady"]) for k, v in raw["field_rate_limits"].items()},
        query_params=frozenset(raw["query_params"]),
        page_size=PageSize(**ps) if ps else None,
        paginated=raw["paginated"],
        prose_max_page_size=raw["prose_max_page_size"],
        sort=tuple(raw["sort"]) if raw["sort"] else None,
        include=tuple(raw["include"]) if raw["include"] else None,
        fields={k: tuple(v) for k, v in raw["fields"].items()},
        additional_fields={k: tuple(v) for k, v in raw["additional_fields"].items()},
        filter_required=bool(filt and filt["required"]),
        filter_fields=filt["fields"] if filt else None,
        attributes=raw["attributes"],
        relationships=raw["relationships"],
        included=raw["included"],
        method=raw.get("method", "GET"),
        daily=raw["rate_limit"].get("daily"),
        report=raw.get("report"),
    )


ENDPOINTS: dict[str, Endpoint] = {n: _endpoint(n, r) for n, r in _DATA["endpoints"].items()}
ALL_READ_SCOPES: frozenset[str] = frozenset(s for e in ENDPOINTS.values() for s in e.scopes)


def _pattern(path: str) -> re.Pattern[str]:
    # "/api/lists/{id}/profiles": a path parameter is any one non-empty segment.
    parts = ("([^/]+)" if p.startswith("{") else re.escape(p) for p in path.split("/"))
    return re.compile("/".join(parts) + "$")


_ROUTES = [(_pattern(e.path), e) for e in ENDPOINTS.values()]


def route(path: str) -> tuple[Endpoint, str | None] | None:
    """The endpoint serving a request path (a trailing "/" allowed, as Klaviyo's own links end in one) and its
    ``{id}``, percent-decoded; None if no endpoint does."""
    path = path.rstrip("/") or "/"
    for pattern, ep in _ROUTES:
        m = pattern.match(path)
        if m:
            return ep, unquote(m.group(1)) if m.groups() else None
    return None
