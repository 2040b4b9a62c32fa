"""Whether this node's eventual tier holds what its peers hold: the registry's vote in ``/readyz``.

A pure record the tier feeds (no clock, no I/O):

- A node starts **not synced**. It is synced once it has pulled the full state of one peer: an
  exchange of digests with that peer ended with nothing left differing. That is, the peer's
  answer to our digests came without ``more`` (it sent every shard that differed, or none: in
  step); or the peer's digests matched ours; or we answered its digests with every shard that
  differed and it sent its own back. While the node has no live peer at all, there is nothing
  to pull and it counts as synced.
- A peer this node declares failed (a partition, a pause) may hold names this node never sees
  meanwhile. From the moment it is live again (connected, or alive in the mesh) until this
  node has pulled its state, or it is gone for good, the node is **not synced**; nor while a
  live peer's names are still hidden (the mesh has not yet seen it back). The tier sends it
  digests the moment it is back, so this lasts one exchange.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["SyncState"]


class SyncState:
    """See the module docstring."""

    __slots__ = ("_answered", "joined", "last", "owed")

    def __init__(self) -> None:
        self.joined = False
        """A peer's full state was pulled since the node started."""
        self.last: str | None = None
        """The peer pulled from last."""
        self.owed: set[str] = set()
        """Peers declared failed whose state was not pulled since."""
        self._answered: set[str] = set()
        """Peers whose digests we answered with every shard that differed: their shards back
        complete a pull."""

    def pulled(self, peer: str) -> None:
        """An exchange with ``peer`` ended with nothing left differing."""
        self.joined = True
        self.last = peer
        self.owed.discard(peer)

    def answered(self, peer: str, *, complete: bool) -> None:
        """We answered ``peer``'s digests with our differing shards (all of them if
        ``complete``) and asked for its own."""
        if complete:
            self._answered.add(peer)
        else:
            self._answered.discard(peer)

    def returned(self, peer: str) -> None:
        """``peer`` sent the shards we asked for in our answer."""
        if peer in self._answered:
            self._answered.discard(peer)
            self.pulled(peer)

    def lost(self, peer: str) -> None:
        """``peer`` was declared failed: pull from it again once it is back."""
        self.owed.add(peer)

    def forget(self, peer: str) -> None:
        """``peer`` left or was removed for good: nothing is owed by it any more."""
        self.owed.discard(peer)
        self._answered.discard(peer)

    def check(self, live: Collection[str], hidden: Collection[str] = ()) -> tuple[bool, str]:
        """Whether the node is synced, given its live peers and the peers whose names it
        hides (declared failed), and why (for ``/readyz``)."""
        if not live:
            return True, "no live peer to pull from"
        waiting = sorted(self.owed.intersection(live))
        if waiting:
            return False, f"back after a failure, not pulled yet: {', '.join(waiting)}"
        still = sorted(set(hidden).intersection(live))
        if still:
            return False, f"back, names still hidden as failed: {', '.join(still)}"
        if not self.joined:
            return False, "has not pulled a peer's full state since it started"
        return True, f"synced (last pulled from {self.last})"
