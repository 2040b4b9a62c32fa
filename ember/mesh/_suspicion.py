"""Lifeguard's dynamic suspicion timeout: one timer per suspected member.

A suspicion starts at its maximum timeout and shrinks towards the minimum as independent members
confirm it: after n of the k wanted confirmations the timeout is
``max - (max - min) * log(n + 1) / log(k + 1)`` (never below min), counted from the start. An
accuser alone, who may be the one at fault, waits longest; a crash that many see is declared
quickly. Pure: the caller passes times in and reads the deadline out.
"""

from __future__ import annotations

import math

__all__ = ["Suspicion", "suspicion_timeout"]


def suspicion_timeout(confirmations: int, k: int, low: float, high: float) -> float:
    """The total timeout of a suspicion after ``confirmations`` of the ``k`` wanted ones."""
    if k < 1:
        return low
    frac = math.log(confirmations + 1) / math.log(k + 1)
    return max(low, high - frac * (high - low))


class Suspicion:
    """The suspicion timer of one member, started at ``start`` on an accusation by ``accuser``.

    ``accuser`` does not count as a confirmation (our own suspicion may be gossiped back to us),
    nor does anyone twice. With ``k < 1`` (too few members to confirm) the timeout is ``low``.
    """

    __slots__ = ("_high", "_k", "_low", "_seen", "confirmations", "deadline", "start")

    def __init__(self, *, accuser: str, k: int, low: float, high: float, start: float) -> None:
        self._k = k
        self._low = low
        self._high = high
        self._seen = {accuser}
        self.start = start
        self.confirmations = 0
        """Independent confirmations counted so far (at most k)."""
        self.deadline = start + (high if k >= 1 else low)
        """When the suspected member is to be declared failed."""

    def confirm(self, sender: str) -> bool:
        """Count ``sender``'s accusation; True if it was new and moved the deadline."""
        if self.confirmations >= self._k or sender in self._seen:
            return False
        self._seen.add(sender)
        self.confirmations += 1
        timeout = suspicion_timeout(self.confirmations, self._k, self._low, self._high)
        self.deadline = self.start + timeout
        return True
