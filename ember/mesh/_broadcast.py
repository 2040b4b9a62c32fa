"""The transmit-limited broadcast queue: what gossip piggybacks, and how often.

Each queued message is about one member (its key) and a newer message about the same member
replaces the older one, so the queue holds at most one message per member. Each message is sent
at most ``retransmit_mult * ceil(log10(n + 1))`` times; a take prefers the least transmitted
messages (the newest news first), newer before older among equals, and packs greedily to the
bytes left in the packet, skipping what does not fit rather than stopping at it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._messages import Message, packet_header_size

__all__ = ["BroadcastQueue"]


@dataclass(slots=True)
class _Item:
    key: str
    message: Message
    size: int
    transmits: int
    order: int


class BroadcastQueue:
    """Pending gossip, one message per member, each transmitted a bounded number of times.

    ``max_size`` is the largest message that could ever be sent (the packet budget less a
    packet header): a larger one is refused by :meth:`push`, which returns False and counts it
    in ``oversized``, instead of waiting in the queue for ever.
    """

    __slots__ = ("_items", "_mult", "_next_order", "max_size", "oversized")

    def __init__(self, *, retransmit_mult: int, max_size: int) -> None:
        self._mult = retransmit_mult
        self._items: dict[str, _Item] = {}
        self._next_order = 0
        self.max_size = max_size
        self.oversized = 0
        """Messages refused because they could never fit in a packet."""

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def limit(self, n: int) -> int:
        """Transmissions per message in a cluster of ``n`` members."""
        return self._mult * math.ceil(math.log10(max(n, 0) + 1))

    def push(self, key: str, message: Message, size: int) -> bool:
        """Queue ``message`` (of encoded ``size``) about ``key``, replacing any older one."""
        if size > self.max_size:
            self.oversized += 1
            return False
        self._next_order += 1
        self._items[key] = _Item(key, message, size, 0, self._next_order)
        return True

    def discard(self, key: str) -> None:
        """Drop the message about ``key``, if any."""
        self._items.pop(key, None)

    def transmits(self, key: str) -> int | None:
        """How often the message about ``key`` was sent, or None if none is queued."""
        item = self._items.get(key)
        return None if item is None else item.transmits

    def take(self, used: int, count: int, budget: int, n: int) -> list[tuple[Message, int]]:
        """Messages (with sizes) to add to a packet holding ``count`` messages in ``used``
        bytes (header included), so that the packet stays within ``budget``; each taken message
        counts one transmission, and one sent ``limit(n)`` times leaves the queue."""
        if not self._items:
            return []
        limit = self.limit(n)
        items = sorted(self._items.values(), key=lambda i: (i.transmits, -i.order))
        taken: list[tuple[Message, int]] = []
        body = used - packet_header_size(count)
        for item in items:
            free = budget - body - packet_header_size(count + 1)
            if free < 4:  # no message is smaller than an Ack
                break
            if item.size > free:
                continue
            taken.append((item.message, item.size))
            body += item.size
            count += 1
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.key]
        return taken
