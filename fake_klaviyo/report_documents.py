"""A report query's answer: the book's statistics for the timeframe asked, one result per grouping, a page at a time.

A values report totals each grouping's sends within the timeframe; a series report gives, per grouping, a value
per day of the timeframe, in the order of ``date_times`` (each day's midnight in the account's timezone, with its
offset). Counts come as floats, as Klaviyo sends them. Results beyond a page go to the next, which ``links.next``
asks for with a ``page_cursor``, to be sent with the same body.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from . import filters
from .data import Account
from .links import encode
from .report_book import Counts, Message, ReportBook
from .report_queries import ReportQuery, encode_cursor, parse
from .responses import dumps
from .spec import Endpoint

Grouping = tuple[tuple[str, str], ...]


def _value(message: Message, name: str) -> str:
    return {
        "campaign_id": message.owner_id,
        "flow_id": message.owner_id,
        "campaign_message_id": message.message_id,
        "flow_message_id": message.message_id,
        "campaign_message_name": message.name,
        "flow_message_name": message.name,
        "flow_name": message.owner_name,
        "send_channel": message.send_channel,
    }[name]


def _matches(conditions: list[filters.Condition]) -> Callable[[Message], bool]:
    def test(message: Message) -> bool:
        for c in conditions:
            wanted = c.python_value()
            value = _value(message, c.field)
            if value not in (wanted if isinstance(wanted, list) else [wanted]):
                return False
        return True

    return test


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def document(book: ReportBook, q: ReportQuery, base: str, page_size: int) -> dict[str, Any]:
    """The page of the report ``q`` asks for."""
    test = _matches(q.conditions)
    series = q.ep.report is not None and q.ep.report["intervals"] is not None
    if series:
        days = _days(q.first, q.last)
        results = _series(book, q, days, [(m, first) for m, first in book.flow_messages if test(m)])
    else:
        chosen = [m for m, day in book.campaign_messages if q.first <= day <= q.last and test(m)]
        results = _values(book, q, chosen)
    page = results[q.offset : q.offset + page_size]
    attributes: dict[str, Any] = {"results": [{"groupings": dict(g), "statistics": s} for g, s in page]}
    if series:
        attributes["date_times"] = [datetime.combine(day, time(), book.tz).isoformat() for day in days]
    if q.fields is not None:
        attributes = {k: v for k, v in attributes.items() if k in q.fields}
    report_id = q.digest
    collection = f"{base}{q.ep.path}/"
    links: dict[str, Any] = {"self": collection, "next": None, "prev": None}
    if q.offset + page_size < len(results):
        links["next"] = collection + "?" + encode([("page_cursor", encode_cursor(q.offset + page_size, q.digest))])
    if q.offset > 0:
        links["prev"] = (
            collection + "?" + encode([("page_cursor", encode_cursor(max(0, q.offset - page_size), q.digest))])
        )
    relationships = {
        name: {
            "data": [{"type": rtype, "id": i} for i in sorted({dict(g)[key] for g, _ in page if key in dict(g)})],
            "links": {
                "self": f"{collection}{report_id}/relationships/{name}/",
                "related": f"{collection}{report_id}/{name}/",
            },
        }
        for name, key, rtype in _related(q)
    }
    data: dict[str, Any] = {"type": q.ep.resource_type, "id": report_id, "attributes": attributes}
    if relationships:
        data["relationships"] = relationships
    return {"data": data, "links": links}


def _related(q: ReportQuery) -> list[tuple[str, str, str]]:
    """The relationships the answer names: each one's name, the grouping that gives its ids, and their type."""
    keys = {"campaigns": "campaign_id", "flows": "flow_id", "flow-messages": "flow_message_id"}
    return [(name, keys[name], rel["type"]) for name, rel in q.ep.relationships.items()]


def _grouping(message: Message, group_by: list[str]) -> Grouping:
    return tuple((name, _value(message, name)) for name in group_by)


def _values(book: ReportBook, q: ReportQuery, messages: Iterable[Message]) -> list[tuple[Grouping, dict[str, Any]]]:
    days = dict((m, day) for m, day in book.campaign_messages)
    totals: dict[Grouping, Counts] = {}
    for message in messages:
        totals.setdefault(_grouping(message, q.group_by), Counts()).add(
            book.campaign_counts(message, days[message], q.metric_id)
        )
    return [(g, _pick(totals[g].statistics(), q.statistics)) for g in sorted(totals)]


def _series(
    book: ReportBook, q: ReportQuery, days: list[date], messages: list[tuple[Message, date]]
) -> list[tuple[Grouping, dict[str, Any]]]:
    index = {day: n for n, day in enumerate(days)}
    per_day: dict[Grouping, list[Counts]] = {}
    for message, first_day in messages:
        for day, counts in book.flow_days(message, first_day, q.first, q.last, q.metric_id):
            row = per_day.setdefault(_grouping(message, q.group_by), [Counts() for _ in days])
            row[index[day]].add(counts)
    out = []
    for g in sorted(per_day):
        stats = [counts.statistics() for counts in per_day[g]]
        out.append((g, {name: [day[name] for day in stats] for name in q.statistics}))
    return out


def _pick(statistics: dict[str, float], names: list[str]) -> dict[str, float]:
    return {name: statistics[name] for name in names}


class Reports:
    """The report queries of one account: its book (made when first asked for, unless given) and the page size."""

    def __init__(self, account: Account, book: ReportBook | None, page_size: int) -> None:
        if page_size < 1:
            raise ValueError("report_page_size must be at least 1")
        self.account = account
        self.page_size = page_size
        self._book = book
        self._lock = threading.Lock()

    @property
    def book(self) -> ReportBook:
        with self._lock:
            if self._book is None:
                self._book = ReportBook(self.account)
            return self._book

    def body(
        self, ep: Endpoint, body: bytes, content_type: str | None, pairs: list[tuple[str, str]], base: str
    ) -> bytes:
        book = self.book
        metrics = {m["id"]: m for m in self.account.metrics}
        q = parse(ep, body, content_type, pairs, book.today, metrics)
        return dumps(document(book, q, base, self.page_size))
