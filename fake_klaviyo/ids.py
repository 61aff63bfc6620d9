"""Klaviyo's identifiers: 26-character ULIDs (campaigns, events, profiles) and 6-character short ids."""

from __future__ import annotations

import random
from datetime import datetime

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# Every 15-bit value as 3 Crockford digits: a ULID is 9 lookups rather than 26 shifts.
_DIGITS3 = [a + b + c for a in CROCKFORD for b in CROCKFORD for c in CROCKFORD]


def ulid(value: int) -> str:
    """The low 130 bits of ``value`` as 26 Crockford base-32 digits, most significant first."""
    d = _DIGITS3
    return (
        d[(value >> 120) & 32767]
        + d[(value >> 105) & 32767]
        + d[(value >> 90) & 32767]
        + d[(value >> 75) & 32767]
        + d[(value >> 60) & 32767]
        + d[(value >> 45) & 32767]
        + d[(value >> 30) & 32767]
        + d[(value >> 15) & 32767]
        + d[value & 32767]
    )[1:]  # 9 x 3 digits hold 135 bits: drop the top 5


def ulid_time(ident: str) -> int:
    """The millisecond time a ULID's first ten digits hold."""
    return int(ident[:10].translate(_FROM_CROCKFORD), 32)


# Crockford base-32 digits as the digits int(..., 32) reads.
_FROM_CROCKFORD = str.maketrans(CROCKFORD, "0123456789abcdefghijklmnopqrstuv")


class Ids:
    """Unique id factory shared by all resource types."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def short(self) -> str:
        # Lists, segments, metrics and flows use 6-char alphanumerics like "Y6nRLr".
        while True:
            v = "".join(self.rng.choice(_ALNUM) for _ in range(6))
            if v not in self.seen:
                self.seen.add(v)
                return v

    def drawing_from(self, rng: random.Random) -> Ids:
        """A factory drawing on ``rng`` instead, whose ids are unique among (and recorded with) this one's."""
        other = Ids(rng)
        other.seen = self.seen
        return other

    def ulid(self, at: datetime) -> str:
        while True:
            v = ulid((int(at.timestamp() * 1000) << 80) | self.rng.getrandbits(80))
            if v not in self.seen:
                self.seen.add(v)
                return v
