"""Who is in each list and segment, and since when (``joined_group_at``): profile indexes and join times held
column-wise per group, ascending by (joined_group_at, profile id), as /api/lists/{id}/profiles serves them.

The first list is the large one (60% of the profiles by default), the third list and the third segment (whose
definition is empty) have no members, and profile 1 is in every other group, so that a profile in several
lists is there in every account. Members join in bulk too (imports, segment rebuilds): ties on the second.
"""

from __future__ import annotations

import random
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from .clock import GENERATOR_NOW, stamp
from .profiles import ProfileStore
from .spec import Resource

EMPTY = 2  # the index of the list, and of the segment, without members
_SHARES = (0.001, 0.005, 0.02, 0.05, 0.1)  # of all profiles, for the groups but the large list
_IN_EVERY_GROUP = 1


@dataclass
class Group:
    """One list's or segment's members: ``profiles[k]`` joined at ``joined[k]`` (whole seconds)."""

    kind: str  # "list" | "segment"
    profiles: array = field(default_factory=lambda: array("I"))
    joined: array = field(default_factory=lambda: array("q"))


class Memberships:
    """Every list's and segment's members, by group id."""

    def __init__(self, store: ProfileStore, groups: dict[str, Group]) -> None:
        self.store = store
        self.groups = groups
        self._lock = threading.Lock()

    def group(self, group_id: str, kind: str) -> Group | None:
        g = self.groups.get(group_id)
        return g if g is not None and g.kind == kind else None

    def members(self, group_id: str) -> list[tuple[str, str]]:
        """(profile id, joined_group_at) of each member, ascending by (joined_group_at, profile id)."""
        g = self.groups[group_id]
        ids = self.store.ids
        return [(ids[p], stamp(t)) for p, t in zip(g.profiles, g.joined, strict=True)]

    def add(self, group_id: str, indexes: Iterable[int], at: int) -> None:
        """Profiles join a group at ``at``; one already in it stays as it was (Klaviyo adds members idempotently)."""
        with self._lock:
            g = self.groups[group_id]
            held = set(g.profiles)
            pairs = list(zip(g.profiles, g.joined, strict=True))
            pairs += [(i, at) for i in dict.fromkeys(indexes) if i not in held]
            self.groups[group_id] = self._group(g.kind, pairs)

    def remove(self, group_id: str, indexes: Iterable[int]) -> None:
        """Profiles leave a group: they are simply no longer served (Klaviyo keeps no tombstone)."""
        with self._lock:
            g = self.groups[group_id]
            gone = set(indexes)
            pairs = [(p, t) for p, t in zip(g.profiles, g.joined, strict=True) if p not in gone]
            self.groups[group_id] = self._group(g.kind, pairs)

    def _group(self, kind: str, pairs: list[tuple[int, int]]) -> Group:
        # A new Group rather than new columns in the old one: a request reading the old one reads it whole.
        ids = self.store.ids
        pairs.sort(key=lambda pt: (pt[1], ids[pt[0]]))
        return Group(kind, array("I", (p for p, _ in pairs)), array("q", (t for _, t in pairs)))


def generate_memberships(
    rng: random.Random, store: ProfileStore, lists: list[Resource], segments: list[Resource], large_list: int
) -> Memberships:
    """Members for every list and segment: ``large_list`` profiles in the first list, a share of them in others."""
    memberships = Memberships(store, {})
    n = len(store)
    end = int(GENERATOR_NOW.timestamp())
    for kind, resources in (("list", lists), ("segment", segments)):
        for k, res in enumerate(resources):
            if k == EMPTY or n == 0:
                memberships.groups[res["id"]] = Group(kind)
                continue
            size = min(n, large_list) if kind == "list" and k == 0 else max(1, int(n * rng.choice(_SHARES)))
            chosen = rng.sample(range(n), size)
            if n > _IN_EVERY_GROUP and _IN_EVERY_GROUP not in chosen:
                chosen[0] = _IN_EVERY_GROUP
            bulk = [end - rng.randrange(1, 2 * 365 * 86400) for _ in range(1 + size // 50)]
            pairs = []
            for p in chosen:
                created = store.created[p]
                if rng.random() < 0.3:
                    t = max(created, rng.choice(bulk))
                else:
                    t = created + rng.randrange(max(1, end - created))
                pairs.append((p, t))
            memberships.groups[res["id"]] = memberships._group(kind, pairs)
    return memberships
