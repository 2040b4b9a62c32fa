"""Admission of inbound connections: which handshakes may run, and which make room for others.

A pure core (no clock, no sockets): the transport tells it when a connection arrives, when it
*speaks* (its first handshake message was complete and valid), and when it leaves the table
(open, failed or closed), each time with ``now``; it answers with verdicts. The rules, in order:

1. **Silent handshakes never hold a slot a speaking peer needs.** At most ``max_pending``
   handshakes run at once. When that many are pending, a new arrival evicts the oldest one that
   has not spoken yet; only if every pending handshake has spoken is the newcomer refused
   (``"busy"``). A correct peer speaks within a round trip of connecting, so a flood of sockets
   that connect and say nothing cannot keep it out: the flood only evicts itself.
2. **Under pressure silence is cut short.** While at least half of the table is in use, a
   handshake silent for ``silent_timeout`` is evicted at the next arrival (rather than holding
   its slot for the whole handshake timeout).
3. **A bad address is paced, not locked out.** Failed handshakes are counted per remote address
   in a sliding window. An address over ``failure_limit`` becomes *suspect*: it may run at most
   ``suspect_pending`` handshakes at once (a new one past that evicts its oldest silent one, or
   is refused ``"rate_limited"``), and the shell delays its answers by ``suspect_delay``, so a
   peer retrying a wrong cookie in a loop costs little CPU. A suspect connection is never
   refused for its address alone: a peer that proves the cookie from a suspect address gets in.
   Every peer behind one NAT shares one address, and so does every client on one host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ._backoff import FailureLimiter

__all__ = ["Admission", "Admit", "Refuse"]

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Admit(Generic[K]):
    """Start the handshake. Close the connections in ``evict`` first (they made room)."""

    evict: tuple[K, ...] = ()
    suspect: bool = False
    """The address is over its failure budget: pace this handshake (``suspect_delay``)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Refuse the connection on arrival; tell the peer ``kind`` and ``detail``."""

    kind: Literal["busy", "rate_limited"]
    detail: str


@dataclass(slots=True)
class _Pending:
    address: str
    since: float
    spoke: bool = False
    suspect: bool = False


@dataclass(slots=True)
class AdmissionCounts:
    """What the core decided, for the transport's statistics."""

    evicted_silent: int = 0
    """Pending handshakes closed because they had said nothing and another needed the slot."""
    refused_busy: int = 0
    """Arrivals refused because every pending handshake had spoken."""
    rate_limited: int = 0
    """Arrivals from a suspect address refused because it had its share of handshakes."""
    suspect: int = 0
    """Handshakes admitted from a suspect address (paced)."""


class Admission(Generic[K]):
    """The table of pending inbound handshakes, keyed by the caller's connection objects."""

    def __init__(
        self,
        *,
        max_pending: int,
        silent_timeout: float,
        failure_limit: int,
        failure_window: float,
        suspect_pending: int,
    ) -> None:
        self.max_pending = max_pending
        self.silent_timeout = silent_timeout
        self.suspect_pending = suspect_pending
        self.failure_limit = failure_limit
        self.failure_window = failure_window
        self._failures = FailureLimiter(failure_limit, failure_window)
        self._pending: dict[K, _Pending] = {}  # in arrival order, so oldest first
        self._by_address: dict[str, int] = {}
        self.counts = AdmissionCounts()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def arrive(self, key: K, address: str, now: float) -> Admit[K] | Refuse:
        """A connection from ``address`` arrived at ``now``: admit it (evicting others to make
        room) or refuse it. Evicted connections count as failed handshakes of their address."""
        suspect = self.is_suspect(address, now)
        evict: list[K] = []
        if len(self._pending) * 2 >= self.max_pending:
            horizon = now - self.silent_timeout
            for k, p in self._pending.items():
                if p.since > horizon:
                    break
                if not p.spoke:
                    evict.append(k)
        refusal: Refuse | None = None
        if suspect and self._by_address.get(address, 0) - self._among(evict, address) >= (
            self.suspect_pending
        ):
            victim = self._oldest_silent(address, evict)
            if victim is None:
                self.counts.rate_limited += 1
                refusal = Refuse(
                    "rate_limited",
                    f"{address} failed over {self.failure_limit} handshakes in "
                    f"{self.failure_window:g} s and has {self.suspect_pending} in progress",
                )
            else:
                evict.append(victim)
        if refusal is None and len(self._pending) - len(evict) >= self.max_pending:
            victim = self._oldest_silent(None, evict)
            if victim is None:
                self.counts.refused_busy += 1
                refusal = Refuse("busy", f"{self.max_pending} handshakes in progress")
            else:
                evict.append(victim)
        for k in evict:
            self.counts.evicted_silent += 1
            self.leave(k, now, failed=True)
        if refusal is not None:
            return refusal
        self._pending[key] = _Pending(address, now, suspect=suspect)
        self._by_address[address] = self._by_address.get(address, 0) + 1
        if suspect:
            self.counts.suspect += 1
        return Admit(tuple(evict), suspect)

    def spoke(self, key: K) -> None:
        """The handshake of ``key`` received a complete, valid first message."""
        p = self._pending.get(key)
        if p is not None:
            p.spoke = True

    def leave(self, key: K, now: float, *, failed: bool) -> None:
        """``key`` is no longer pending (open, or closed); ``failed``: its handshake failed
        through the peer's fault (a protocol error, a timeout, silence), which counts against
        its address. A key not in the table (evicted already) is ignored."""
        p = self._pending.pop(key, None)
        if p is None:
            return
        left = self._by_address[p.address] - 1
        if left:
            self._by_address[p.address] = left
        else:
            del self._by_address[p.address]
        if failed:
            self._failures.failed(p.address, now)

    def is_suspect(self, address: str, now: float) -> bool:
        """Whether ``address`` is over its failure budget at ``now``."""
        return not self._failures.allowed(address, now)

    def _among(self, keys: list[K], address: str) -> int:
        return sum(1 for k in keys if self._pending[k].address == address)

    def _oldest_silent(self, address: str | None, taken: list[K]) -> K | None:
        """The oldest pending handshake (from ``address``, if given) that has not spoken and is
        not in ``taken``."""
        for k, p in self._pending.items():
            if not p.spoke and (address is None or p.address == address) and k not in taken:
                return k
        return None
