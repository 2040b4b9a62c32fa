"""Content-addressed results of ``pure`` steps, shared by the runs of one node: the key is the
step's code fingerprint and its arguments, so a code change or other arguments miss."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

import msgpack  # type: ignore[import-untyped]

__all__ = ["PureCache"]


_SCALARS = frozenset((int, float, str, bytes, bool, type(None)))


class PureCache:
    """At most ``size`` results, the least recently used evicted first (0 disables it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.unhashable = 0
        """Lookups whose arguments could not be serialized (those steps just run)."""

    def key(self, fingerprint: str, args: Mapping[str, Any]) -> Hashable | None:
        """The content address of a call (None if its arguments cannot be serialized).

        Arguments come in the step's parameter order, so equal arguments give equal keys.
        Scalars are keyed by type and value (``1``, ``1.0`` and ``True`` stay apart); anything
        else by its msgpack bytes, so containers that are equal as data share a result (a
        mapping with the same items in another order misses, which is only a lost hit)."""
        if self.size == 0:
            return None
        values = tuple(args.values())
        kinds = tuple(map(type, values))
        if _SCALARS.issuperset(kinds):
            return (fingerprint, values, kinds)
        try:
            data = msgpack.packb(values)
        except (TypeError, ValueError, OverflowError):
            self.unhashable += 1
            return None
        return (fingerprint, hashlib.blake2b(data, digest_size=20).digest())

    def get(self, key: Hashable) -> tuple[bool, Any]:
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
            self.hits += 1
            return True, entries[key]
        self.misses += 1
        return False, None

    def put(self, key: Hashable, value: Any) -> None:
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self.size:
            entries.popitem(last=False)
            self.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)
