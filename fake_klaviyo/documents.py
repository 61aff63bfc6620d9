"""Whole response documents: a page of resources, its links and included resources, encoded."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from . import resources
from .data import Account
from .encoded_events import EncodedEvents
from .links import collection_links, encode
from .profile_documents import ProfileDocuments
from .query import Query
from .responses import dumps
from .selection import Selector
from .spec import ENDPOINTS, Endpoint, Resource


class Documents:
    """Renders answers from one account; each event is JSON-encoded once, when first served."""

    def __init__(
        self, account: Account, selector: Selector, profiles: ProfileDocuments, metrics: Mapping[str, Resource]
    ) -> None:
        self.account = account
        self.selector = selector
        self.profiles = profiles
        self.metrics = metrics
        self._lock = threading.Lock()
        self._encoded: EncodedEvents | None = None

    def body(self, ep: Endpoint, q: Query, base: str) -> bytes:
        """The encoded document: events pages without sparse fieldsets or includes take the fast path."""
        if ep.resource_type == "profile":
            return dumps(self.profiles.document(ep, q, base))
        if ep.name != "events" or q.include or ep.resource_type in q.fields or not EncodedEvents.fits(base):
            return dumps(self.document(ep, q, base))
        assert q.size is not None
        sel = self.selector.events(q)
        descending = q.sort is None or q.sort.startswith("-")  # default: newest first
        links = dumps(collection_links(ep.path, q, base, len(sel)))
        # The same bytes as dumps({"data": [...], "links": {...}}), since JSON encoding composes.
        return self.encoded_events().document(sel.page(q.offset, q.size, descending), links, base)

    def encoded_events(self) -> EncodedEvents:
        enc = self._encoded
        if enc is None:
            with self._lock:
                if self._encoded is None:
                    self._encoded = EncodedEvents(self.account.events)
                enc = self._encoded
        return enc

    def document(self, ep: Endpoint, q: Query, base: str) -> dict[str, Any]:
        if ep.name == "accounts":
            data = [resources.render(ep, self.account.account, base, q)]
            self_link = f"{base}{ep.path}/" + (("?" + encode(q.pairs)) if q.pairs else "")
            return {"data": data, "links": {"self": self_link, "next": None, "prev": None}}

        assert q.size is not None
        included: list[Resource] = []
        related = self._related(ep, q)
        if ep.name == "events":
            sel = self.selector.events(q)
            total = len(sel)
            descending = q.sort is None or q.sort.startswith("-")  # default: newest first
            store = self.account.events
            positions = sel.page(q.offset, q.size, descending)
            rows = [store.resource(p) for p in positions]
            if "attributions" in q.include:
                related["attributions"] = {store.event_id(p): self.account.attributions.of(p) for p in positions}
        else:
            matched = self.selector.rows(ep, q)
            total = len(matched)
            rows = matched[q.offset : q.offset + q.size]
        data = [
            resources.render(ep, r, base, q, {n: by_id.get(r["id"], []) for n, by_id in related.items()}) for r in rows
        ]
        if ep.name == "events" and q.include:
            included = self._event_includes(rows, related.get("attributions", {}), base, q)
        elif related:
            included = self._included(ep, rows, related, base, q)
        doc: dict[str, Any] = {"data": data, "links": collection_links(ep.path, q, base, total)}
        if q.include:
            doc["included"] = included
        return doc

    def _related(self, ep: Endpoint, q: Query) -> dict[str, Mapping[str, list[Resource]]]:
        """The included to-many relationships the account holds: name -> (resource id -> related resources)."""
        held = {
            "campaigns": {"campaign-messages": self.account.campaign_messages},
            "flows": {"flow-actions": self.account.flow_actions},
        }.get(ep.name, {})
        return {name: by_id for name, by_id in held.items() if name in q.include}

    def _included(
        self,
        ep: Endpoint,
        rows: list[Resource],
        related: Mapping[str, Mapping[str, list[Resource]]],
        base: str,
        q: Query,
    ) -> list[Resource]:
        """The related resources of a page's rows, each once, with their own types' fieldsets."""
        out: list[Resource] = []
        seen: set[tuple[str, str]] = set()
        for r in rows:
            for name, by_id in related.items():
                rtype = ep.relationships[name]["type"]
                for res in by_id[r["id"]]:
                    if (rtype, res["id"]) in seen:
                        continue
                    seen.add((rtype, res["id"]))
                    # Klaviyo's paths name the type in the plural: /api/campaign-messages/{id}/.
                    url = f"{base}/api/{rtype}s/{res['id']}/"
                    out.append(resources.resource(res, url, ep.included[rtype]["relationships"], q.fields.get(rtype)))
        return out

    def _event_includes(
        self, rows: list[Resource], attributions: Mapping[str, list[Resource]], base: str, q: Query
    ) -> list[Resource]:
        out: list[Resource] = []
        seen: set[tuple[str, str]] = set()
        metrics_ep = ENDPOINTS["metrics"]
        metric_q = Query(fields={"metric": q.fields["metric"]} if "metric" in q.fields else {})
        profile_relationships = ENDPOINTS["events"].included["profile"]["relationships"]
        attribution_relationships = ENDPOINTS["events"].included["attribution"]["relationships"]
        for r in rows:
            for attribution in attributions.get(r["id"], []):
                url = f"{base}/api/attributions/{attribution['id']}/"
                wanted = q.fields.get("attribution")
                out.append(resources.resource(attribution, url, attribution_relationships, wanted))
            for rel in ("metric", "profile"):
                if rel not in q.include:
                    continue
                ident = r["relationships"][rel]["data"]
                k = (ident["type"], ident["id"])
                if k in seen:
                    continue
                seen.add(k)
                if rel == "metric":
                    out.append(resources.render(metrics_ep, self.metrics[ident["id"]], base, metric_q))
                else:
                    index = self.account.profiles.position(ident["id"])
                    assert index is not None, "every profile an event names is a profile of the account"
                    out.append(self.profiles.render(index, profile_relationships, base, q.fields.get("profile")))
        return out
