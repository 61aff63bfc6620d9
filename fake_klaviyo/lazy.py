"""Resources made when they are read, so that a store holds columns rather than a million dicts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from .spec import Resource


class LazyResources(Sequence[Resource]):
    """A sequence of resources: the one at each of :meth:`positions`, in that order, made by :meth:`make`."""

    def positions(self) -> Sequence[int]:
        raise NotImplementedError

    def make(self, position: int) -> Resource:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.positions())

    @overload
    def __getitem__(self, i: int) -> Resource: ...
    @overload
    def __getitem__(self, i: slice) -> list[Resource]: ...
    def __getitem__(self, i: int | slice) -> Resource | list[Resource]:
        if isinstance(i, slice):
            return [self.make(p) for p in self.positions()[i]]
        return self.make(self.positions()[i])

    def __iter__(self) -> Iterator[Resource]:
        return (self.make(p) for p in self.positions())
