"""Content-addressed results of ``pure`` steps, shared by the runs of one node: the key is the
step's code fingerprint and its arguments, so a code change or other arguments miss."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import msgpack  # type: ignore[import-untyped]

__all__ = ["PureCache"]


def _canonical(value: Any) -> Any:
    """``value`` with every mapping's items in a fixed order (equal data, equal bytes)."""
    if isinstance(value, Mapping):
        return [[_canonical(k), _canonical(v)] for k, v in sorted(value.items(), key=repr)]
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


class PureCache:
    """At most ``size`` results, the least recently used evicted first (0 disables it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.unhashable = 0
        """Lookups whose arguments could not be serialized (those steps just run)."""

    def key(self, fingerprint: str, args: Mapping[str, Any]) -> bytes | None:
        """The content address of a call, or None if its arguments cannot be serialized."""
        if self.size == 0:
            return None
        try:
            data = msgpack.packb(_canonical(args))
        except (TypeError, ValueError, OverflowError):
            self.unhashable += 1
            return None
        return hashlib.blake2b(fingerprint.encode() + b"\0" + data, digest_size=20).digest()

    def get(self, key: bytes) -> tuple[bool, Any]:
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
            self.hits += 1
            return True, entries[key]
        self.misses += 1
        return False, None

    def put(self, key: bytes, value: Any) -> None:
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self.size:
            entries.popitem(last=False)
            self.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)
