"""The query string, checked against the spec as Klaviyo checks it: parameters, page sizes, sorts, sparse
fieldsets, includes, filters and cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import filters
from .responses import ApiError, invalid
from .spec import Endpoint

# Includes whose related resources the fake does not model, and filters on what it does not model (Klaviyo's
# exchange id): answered 501, not faked.
_UNMODELLED_INCLUDES = frozenset({"conversations", "push-tokens"})
_UNMODELLED_FILTERS = frozenset({"_kx"})


@dataclass
class Query:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    size: int | None = None
    sort: str | None = None
    fields: dict[str, list[str]] = field(default_factory=dict)
    additional: dict[str, list[str]] = field(default_factory=dict)  # resource type -> additional-fields[type]
    include: list[str] = field(default_factory=list)
    filter_text: str | None = None
    conds: list[filters.Condition] = field(default_factory=list)
    offset: int = 0
    digest: str = ""
    path_id: str | None = None  # the {id} of /api/lists/{id}/profiles


class QueryParser:
    """Parses a query for an endpoint or raises the :class:`ApiError` Klaviyo would answer with.

    ``page_size_max`` lowers an endpoint's largest ``page[size]``; ``metrics_page_size`` is the fixed page
    of /api/metrics (no ``page[size]`` there).
    """

    def __init__(self, page_size_max: Mapping[str, int], metrics_page_size: int) -> None:
        self.page_size_max = page_size_max
        self.metrics_page_size = metrics_page_size

    def parse(self, ep: Endpoint, pairs: list[tuple[str, str]], path_id: str | None = None) -> Query:
        seen: set[str] = set()
        for k, _ in pairs:
            if k not in ep.query_params:
                raise invalid(f"'{k}' is not a valid query parameter for {ep.path}.", k)
            if k in seen:
                raise invalid(f"Query parameter '{k}' was given more than once.", k)
            seen.add(k)
        params = dict(pairs)

        size = self._page_size(ep, params.get("page[size]"))

        sort = params.get("sort")
        if sort is not None and (ep.sort is None or sort not in ep.sort):
            raise invalid(f"'{sort}' is not a valid sort value; allowed: {', '.join(ep.sort or ())}.", "sort")

        fields: dict[str, list[str]] = {}
        for rtype, allowed in ep.fields.items():
            key = f"fields[{rtype}]"
            if key in params:
                fields[rtype] = _csv(key, params[key], allowed)

        additional: dict[str, list[str]] = {}
        for rtype, allowed in ep.additional_fields.items():
            key = f"additional-fields[{rtype}]"
            if key in params:
                additional[rtype] = _csv(key, params[key], allowed)

        include = _csv("include", params["include"], ep.include or ()) if "include" in params else []
        _unmodelled("include", sorted(set(include) & _UNMODELLED_INCLUDES))

        text = params.get("filter")
        conds = self._conditions(ep, text)
        _unmodelled("filter", sorted({c.field for c in conds} & _UNMODELLED_FILTERS))

        # A cursor is good for the query it came from only, on the list or segment it came from.
        unpaged = sorted(p for p in pairs if p[0] != "page[cursor]")
        digest = hashlib.sha256(json.dumps([ep.name, path_id, size, unpaged]).encode()).hexdigest()[:16]
        offset = decode_cursor(params["page[cursor]"], digest) if "page[cursor]" in params else 0
        return Query(pairs, size, sort, fields, additional, include, text, conds, offset, digest, path_id)

    def _page_size(self, ep: Endpoint, raw: str | None) -> int | None:
        if ep.page_size is None:
            return self.metrics_page_size if ep.name == "metrics" else None
        hi = min(self.page_size_max.get(ep.name, ep.page_size.max), ep.page_size.max)
        if raw is None:
            return min(ep.page_size.default, hi)
        if not raw.isascii() or not raw.isdigit() or not ep.page_size.min <= int(raw) <= hi:
            raise invalid(
                f"page[size] must be an integer between {ep.page_size.min} and {hi}, got {raw!r}.", "page[size]"
            )
        return int(raw)

    def _conditions(self, ep: Endpoint, text: str | None) -> list[filters.Condition]:
        conds: list[filters.Condition] = []
        if text is not None:
            try:
                conds = filters.parse(text)
                filters.validate(conds, ep.filter_fields or {})
            except filters.FilterError as e:
                raise invalid(str(e), "filter") from None
        if ep.filter_required and text is None:
            raise invalid(f"The 'filter' query parameter is required for {ep.path}.", "filter")
        if ep.name == "campaigns" and not any(c.field == "messages.channel" for c in conds):
            raise invalid(
                "A channel filter is required to list campaigns, e.g. equals(messages.channel,'email').", "filter"
            )
        return conds


def _unmodelled(parameter: str, what: list[str]) -> None:
    if what:
        raise ApiError(
            501,
            "not_implemented",
            "Not implemented by the fake.",
            f"fake_klaviyo does not model {parameter}={','.join(what)}.",
            parameter=parameter,
        )


def _csv(key: str, raw: str, allowed: Sequence[str]) -> list[str]:
    items = raw.split(",")
    for item in items:
        if item not in allowed:
            raise invalid(f"'{item}' is not a valid value for {key}; allowed: {', '.join(allowed)}.", key)
    return items


def encode_cursor(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "q": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, digest: str) -> int:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        obj = json.loads(raw)
        offset, issued_for = obj["o"], obj["q"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid("Invalid cursor.", "page[cursor]") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or issued_for != digest:
        # A cursor only works with the exact query (filter, sort, size, fields...) it came from.
        raise invalid("Invalid cursor: it does not belong to this query.", "page[cursor]")
    return offset
