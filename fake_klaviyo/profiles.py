"""Profiles, held column-wise (id, created, updated, last event, suppressions) so that a million stay cheap to
build and hold; the rest of a profile (names, identifiers, location, properties, consent, predictions) is drawn
when asked for, from a generator of its own, and comes out the same each time.

The first profiles are those the events name (``Account.profile_ids``, in that order), created when their ULIDs
say; the others have no events. Profiles 0 to 9 carry pinned oddities in every account: 0 has no identifier at
all, 1 has every attribute, 2 and 3 have an apostrophe and a plus in their emails, 1 to 3 hold each consent value
on SMS and push, 4 to 8 each global suppression reason, 8 and 9 list suppressions.
"""

from __future__ import annotations

import random
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from . import consent
from .clock import GENERATOR_NOW, stamp
from .consent import Facts, Suppression
from .ids import ulid, ulid_time
from .lazy import LazyResources
from .samples import (
    EMAIL_DOMAINS,
    EMAIL_LOCALS,
    EXTERNAL_ID_FORMATS,
    FIRST_NAMES,
    IMAGES,
    LAST_NAMES,
    LOCALES,
    LOCATIONS,
    ORGANIZATIONS,
    PHONE_FORMATS,
    PROFILE_PROPERTIES,
    TITLES,
)
from .spec import ENUMS, Resource

PINNED = 10
_ANONYMOUS, _FULL = 0, 1
_EMAIL_LOCAL_PINS = {2: "o'brien", 3: "anne-marie+news"}
_M64 = (1 << 64) - 1
_M40 = (1 << 40) - 1
SUPPRESSION_REASONS: list[str] = ENUMS["EmailMarketingSuppression.reason"]


def _mix(x: int) -> int:
    """splitmix64's finaliser: a bijection on 64 bits whose outputs look independent."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class ProfileStore(LazyResources):
    """Every profile of an account, by index; ``store[i]`` is profile i as the API returns it, without its
    additional fields (:meth:`subscriptions`, :meth:`predictive_analytics`)."""

    def __init__(
        self, seed: int, ids: list[str], created: array, updated: array, last_event: array, with_events: int
    ) -> None:
        self.ids = ids
        # Consent timestamps as Klaviyo writes them (a space, microseconds), or as its spec does (`spec_times`).
        self.klaviyo_consent_times = True
        self.created = created  # whole seconds, as Klaviyo gives profile times
        self.updated = updated
        self.last_event = last_event  # the profile's newest event, -1 for none
        self.with_events = with_events  # profiles 0 .. with_events-1 are those the events name
        self.suppressions: dict[int, Suppression] = {}  # the suppressed profiles only
        self.edits: dict[int, int] = {}  # how many times update() changed a profile
        self.version = 0  # bumped by every change, for whatever is derived from the store
        self._key = _mix(seed & _M64)
        self._drawn_until: dict[int, int] = {}  # an edited profile's `updated` before its first edit
        self._lock = threading.Lock()
        self._by_id: tuple[int, dict[str, int]] | None = None

    def positions(self) -> Sequence[int]:
        return range(len(self.ids))

    def make(self, position: int) -> Resource:
        return self.resource(position)

    def position(self, profile_id: str) -> int | None:
        """The index of the profile with that id, if any."""
        cached = self._by_id
        if cached is None or cached[0] != self.version:
            cached = self._by_id = (self.version, {p: i for i, p in enumerate(self.ids)})
        return cached[1].get(profile_id)

    # --- identifiers: cheap functions of the index, unique as they embed it ---------------------------------

    def _hash(self, i: int) -> int:
        return _mix((self._key + i) & _M64)

    def has_email(self, i: int) -> bool:
        return i != _ANONYMOUS and (i < PINNED or self._hash(i) & 127 >= 9)

    def email(self, i: int) -> str | None:
        if not self.has_email(i):
            return None
        h = self._hash(i)
        local = _EMAIL_LOCAL_PINS.get(i) or EMAIL_LOCALS[(h >> 28) % len(EMAIL_LOCALS)]
        return f"{local}.{i}@{EMAIL_DOMAINS[(h >> 36) % len(EMAIL_DOMAINS)]}"

    def phone_number(self, i: int) -> str | None:
        h = self._hash(i)
        if not (1 <= i <= 3 or (i >= PINNED and (h >> 7) & 127 < 58)):
            return None
        return PHONE_FORMATS[(h >> 44) % len(PHONE_FORMATS)].format(i)

    def external_id(self, i: int) -> str | None:
        h = self._hash(i)
        if not (i == _FULL or (i >= PINNED and (h >> 14) & 127 < 32)):
            return None
        return EXTERNAL_ID_FORMATS[(h >> 48) % len(EXTERNAL_ID_FORMATS)].format(i)

    def push_token(self, i: int) -> str | None:
        """The profile's device token (an APNs-like 64 hex digits), which only the members' filter shows."""
        h = self._hash(i)
        if not (i in (1, 2) or (i >= PINNED and (h >> 21) & 127 < 26)):
            return None
        return "".join(f"{_mix(h + k):016x}" for k in range(4))

    # --- the rest, drawn ---------------------------------------------------------------------------------

    def _rng(self, i: int, part: int) -> random.Random:
        # Each of a profile's parts draws from its own generator, so that one does not move another.
        return random.Random(_mix(self._key ^ (i * 4 + part)))

    def resource(self, i: int) -> Resource:
        rng = self._rng(i, 0)
        full = i == _FULL

        def some(pool: list[Any], none_share: float) -> Any:
            return None if i == _ANONYMOUS or (not full and rng.random() < none_share) else rng.choice(pool)

        first, last = some(FIRST_NAMES, 0.12), some(LAST_NAMES, 0.2)
        organization, title, locale, image = (
            some(ORGANIZATIONS, 0.7),
            some(TITLES, 0.75),
            some(LOCALES, 0.4),
            some(IMAGES, 0.8),
        )
        location = LOCATIONS[1] if full else some(LOCATIONS, 0.25)
        chosen = PROFILE_PROPERTIES if full else rng.sample(PROFILE_PROPERTIES, rng.choice([0, 0, 1, 2, 3, 5]))
        properties: dict[str, Any] = {k: v for k, v in chosen} if i != _ANONYMOUS else {}
        if i in self.edits:
            properties["Edits"] = self.edits[i]  # what update() changed, beside `updated`
        last_event = self.last_event[i]
        return {
            "type": "profile",
            "id": self.ids[i],
            "attributes": {
                "email": self.email(i),
                "phone_number": self.phone_number(i),
                "external_id": self.external_id(i),
                "first_name": first,
                "last_name": last,
                "organization": organization,
                "locale": locale,
                "title": title,
                "image": image,
                "created": stamp(self.created[i]),
                "updated": stamp(self.updated[i]),
                "last_event_date": stamp(last_event) if last_event >= 0 else None,
                "location": dict(location) if location is not None else None,
                "properties": properties,
            },
        }

    def facts(self, i: int) -> Facts:
        return Facts(
            index=i,
            email=self.has_email(i),
            phone=self.phone_number(i),
            push=self.push_token(i) is not None,
            created=self.created[i],
            updated=self._drawn_until.get(i, self.updated[i]),  # an edit leaves consent as it was
            suppression=self.suppressions.get(i),
        )

    def subscriptions(self, i: int) -> dict[str, Any]:
        subscriptions = consent.subscriptions(self._rng(i, 1), self.facts(i))
        if self.klaviyo_consent_times:
            consent.klaviyo_consent_times(subscriptions)
        return subscriptions

    def predictive_analytics(self, i: int) -> dict[str, Any] | None:
        return consent.predictive_analytics(self._rng(i, 2), self.facts(i))

    # --- changes between two reads ("as of") ------------------------------------------------------------

    def add(self, count: int, at: int) -> list[int]:
        """``count`` new profiles, without events, created and updated at ``at``; their indexes."""
        with self._lock:
            start = len(self.ids)
            for i in range(start, start + count):
                j = i - self.with_events
                self.ids.append(_profile_id(at * 1000 + j % 1000, j, self._hash(i) & _M40))
                self.created.append(at)
                self.updated.append(at)
                self.last_event.append(-1)
            self.version += 1
        return list(range(start, start + count))

    def update(self, indexes: Iterable[int], at: int) -> None:
        """Profiles edited at ``at``: their ``updated`` is ``at`` and a custom property counts the edits."""
        with self._lock:
            for i in indexes:
                if at < self.created[i]:
                    raise ValueError(f"profile {self.ids[i]} cannot be updated before it was created")
                self._drawn_until.setdefault(i, self.updated[i])
                self.updated[i] = at
                self.edits[i] = self.edits.get(i, 0) + 1
            self.version += 1


def _profile_id(ms: int, j: int, noise: int) -> str:
    # Bit 79 set: never the id of a profile the events name, whose bits 56..79 are zero (events.py).
    return ulid((ms << 80) | (1 << 79) | (j << 40) | noise)


def generate_profiles(
    rng: random.Random, seed: int, count: int, event_ids: list[str], last_events: array, list_ids: list[str]
) -> ProfileStore:
    """``count`` profiles: first those the events name (``last_events`` holds each one's newest event), then
    others created in bursts (imports), updated at random times or in bulk (ties on the second), some suppressed."""
    if count < len(event_ids):
        raise ValueError(f"profiles must be at least {len(event_ids)}, the profiles the events name")
    end = int(GENERATOR_NOW.timestamp())
    ids = list(event_ids)
    created = array("q", (ulid_time(p) // 1000 for p in event_ids))
    j = 0
    while len(ids) < count:
        t = end - rng.randrange(86400, 3 * 365 * 86400)
        for _ in range(1 if rng.random() < 0.7 else min(count - len(ids), rng.randint(2, 20))):
            ids.append(_profile_id(t * 1000 + rng.randrange(1000), j, rng.getrandbits(40)))
            created.append(t)
            j += 1
    bulk = sorted(end - rng.randrange(1, 400 * 86400) for _ in range(max(3, count // 200)))
    updated = array("q")
    for c in created:
        r = rng.random()
        if r < 0.25:
            updated.append(c)  # never updated since
        elif r < 0.5 and bulk[-1] >= c:
            updated.append(bulk[rng.randrange(bisect_left(bulk, c), len(bulk))])  # a bulk update: many share it
        else:
            updated.append(c + rng.randrange(end - c + 1))
    last = array("q", last_events)
    last.extend([-1] * (count - len(last)))
    store = ProfileStore(seed, ids, created, updated, last, len(event_ids))
    for i in range(count):
        s = _suppression(rng, store, i, list_ids)
        if s is not None:
            store.suppressions[i] = s
    return store


def _suppression(rng: random.Random, store: ProfileStore, i: int, list_ids: list[str]) -> Suppression | None:
    if not store.has_email(i):
        return None
    c, u = store.created[i], store.updated[i]
    pinned = 4 <= i <= 8
    suppressed = None
    if pinned or (i >= PINNED and rng.random() < 0.1):
        reason = SUPPRESSION_REASONS[i - 4] if pinned else rng.choice(SUPPRESSION_REASONS)
        suppressed = (reason, rng.randint(c, u))
    lists: tuple[tuple[str, str, int], ...] = ()
    if list_ids and (i in (8, 9) or (i >= PINNED and rng.random() < 0.06)):
        chosen = rng.sample(list_ids, min(len(list_ids), 2 if i == 9 else rng.randint(1, 2)))
        lists = tuple((x, rng.choice(["USER_SUPPRESSED", "UNSUBSCRIBE"]), rng.randint(c, u)) for x in chosen)
    return Suppression(suppressed, lists) if suppressed or lists else None
