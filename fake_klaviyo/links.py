"""A collection's ``links``: the page itself and, where there are more, the next and previous pages."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from .query import Query, encode_cursor


def collection_links(path: str, q: Query, base: str, total: int) -> dict[str, str | None]:
    """The links of the page ``q`` asks for, of the ``total`` resources at ``path`` (the request's own path). As
    Klaviyo sends them, ``next`` and ``prev`` are there on every page, null where there is none; the spec would
    leave them out (klaviyo/openapi#5)."""
    coll = f"{base}{path}/"
    links: dict[str, str | None] = {
        "self": coll + (("?" + encode(q.pairs)) if q.pairs else ""),
        "next": None,
        "prev": None,
    }
    assert q.size is not None
    plain = [p for p in q.pairs if p[0] != "page[cursor]"]
    if q.offset + q.size < total:
        nxt = encode_cursor(q.offset + q.size, q.digest)
        links["next"] = coll + "?" + encode([*plain, ("page[cursor]", nxt)])
    if q.offset > 0:
        prev = encode_cursor(max(0, q.offset - q.size), q.digest)
        links["prev"] = coll + "?" + encode([*plain, ("page[cursor]", prev)])
    return links


def encode(pairs: list[tuple[str, str]]) -> str:
    # Percent-encode everything, as Klaviyo's own links do ("page%5Bcursor%5D=...").
    return urlencode(pairs, quote_via=quote, safe="")
