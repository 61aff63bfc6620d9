"""Pages of profiles: /api/profiles, the members of a list or segment, and the profiles events include."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from . import resources
from .clock import stamp
from .links import collection_links
from .members import Memberships
from .profile_selection import ProfileSelector
from .profiles import ProfileStore
from .query import Query
from .responses import ApiError
from .spec import Endpoint, Resource

# The member endpoints, by name: which kind of group their {id} names.
GROUP_KINDS = {"list_profiles": "list", "segment_profiles": "segment"}


class ProfileDocuments:
    def __init__(self, store: ProfileStore, memberships: Memberships, selector: ProfileSelector) -> None:
        self.store = store
        self.memberships = memberships
        self.selector = selector

    def document(self, ep: Endpoint, q: Query, base: str) -> dict[str, Any]:
        assert q.size is not None
        page: list[tuple[int, int | None]]  # (profile index, joined_group_at)
        if ep.name in GROUP_KINDS:
            group = self.memberships.group(q.path_id or "", GROUP_KINDS[ep.name])
            if group is None:
                kind = GROUP_KINDS[ep.name]
                raise ApiError(
                    404, "not_found", "Not found.", f"A {kind} with id {q.path_id} does not exist.", pointer="/data/"
                )
            positions = self.selector.members(group, q)
            total = len(positions)
            page = [(group.profiles[k], group.joined[k]) for k in positions[q.offset : q.offset + q.size]]
            path = ep.path.replace("{id}", q.path_id or "")
        else:
            indexes = self.selector.profiles(q)
            total = len(indexes)
            page = [(i, None) for i in indexes[q.offset : q.offset + q.size]]
            path = ep.path
        extra = q.additional.get("profile", [])
        data = [self.render(i, ep.relationships, base, q.fields.get("profile"), extra, joined) for i, joined in page]
        return {"data": data, "links": collection_links(path, q, base, total)}

    def render(
        self,
        i: int,
        relationships: Mapping[str, Any],
        base: str,
        wanted: list[str] | None,
        additional: Collection[str] = (),
        joined: int | None = None,
    ) -> Resource:
        """Profile ``i`` with the additional fields asked for and, as a member, the time it joined."""
        res = self.store.resource(i)
        attrs = res["attributes"]
        if joined is not None:
            attrs["joined_group_at"] = stamp(joined)
        if "subscriptions" in additional:
            attrs["subscriptions"] = self.store.subscriptions(i)
        if "predictive_analytics" in additional:
            attrs["predictive_analytics"] = self.store.predictive_analytics(i)
        return resources.resource(res, f"{base}/api/profiles/{res['id']}/", relationships, wanted)
