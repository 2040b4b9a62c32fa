"""Lifeguard's local health multiplier (LHM): how much this member distrusts its own timing.

A member that is itself slow (CPU starved, paused, its socket buffers full) misses acks from
healthy peers and would accuse them. The score rises when our probes fail without the nacks that
prove the relays were reachable, and when we have to refute a suspicion of ourselves; it falls
with every successful probe. Probe intervals and timeouts are scaled by ``score + 1``, so a sick
member probes less and waits longer instead of spreading false suspicions.
"""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    """A health score in ``0 .. max_multiplier - 1``; 0 is healthy."""

    __slots__ = ("_max", "score")

    def __init__(self, max_multiplier: int) -> None:
        self._max = max_multiplier
        self.score = 0

    def apply(self, delta: int) -> int:
        """Add ``delta`` to the score, clamped to its range; returns the new score."""
        self.score = min(max(self.score + delta, 0), self._max - 1)
        return self.score

    def scale(self, timeout: float) -> float:
        """``timeout`` stretched by the current health: ``timeout * (score + 1)``."""
        return timeout * (self.score + 1)
