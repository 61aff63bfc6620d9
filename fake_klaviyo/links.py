"""A collection's ``links``: the page itself and, where there are more, the next and previous pages."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from .query import Query, encode_cursor


def collection_links(path: str, q: Query, base: str, total: int) -> dict[str, str]:
    """The links of the page ``q`` asks for, of the ``total`` resources at ``path`` (the request's own path)."""
    coll = f"{base}{path}/"
    links: dict[str, str] = {"self": coll + (("?" + encode(q.pairs)) if q.pairs else "")}
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
