"""The leader's view of each peer (etcd's ``tracker.Progress``): how far its log matches, what to
send next, and in which of three states replication to it is.

- ``probe``: the leader does not know where the peer's log matches; it sends one append at a
  time and waits for the answer (or the next heartbeat) before sending another.
- ``replicate``: the peer's log is known to match; appends are pipelined optimistically, up to
  ``max_inflight_msgs`` unacknowledged messages (:class:`Inflights`).
- ``snapshot``: the peer needs entries the leader compacted away; a snapshot is being streamed.
"""

from __future__ import annotations

from collections import deque

from ._types import Snapshot

__all__ = ["PROBE", "REPLICATE", "SNAPSHOT", "Inflights", "Progress"]

PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"


class Inflights:
    """Append messages sent but not acknowledged, as (last index, bytes), oldest first; full at
    ``capacity`` messages."""

    __slots__ = ("_q", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._q: deque[int] = deque()

    def add(self, last_index: int) -> None:
        self._q.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget the messages whose entries are all at or before ``index`` (acknowledged)."""
        q = self._q
        while q and q[0] <= index:
            q.popleft()

    def free_first(self) -> None:
        if self._q:
            self._q.popleft()

    def full(self) -> bool:
        return len(self._q) >= self.capacity

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()


class Progress:
    """Replication state of one peer, kept by the leader."""

    __slots__ = (
        "inflights",
        "is_learner",
        "lease_tick",
        "match",
        "next",
        "probe_sent",
        "recent_active",
        "snap",
        "snap_idle",
        "snap_offset",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.probe_sent = False
        self.recent_active = False
        self.is_learner = is_learner
        self.inflights = Inflights(max_inflight)
        self.snap: Snapshot | None = None  # the snapshot being streamed in SNAPSHOT state
        self.snap_offset = 0  # bytes of it the peer acknowledged
        self.snap_idle = 0  # heartbeats since the last chunk was sent
        # The leader tick at which the newest heartbeat this peer answered was sent: the peer
        # reset its election timer no earlier than that.
        self.lease_tick = -1

    def _reset(self, state: str) -> None:
        self.state = state
        self.probe_sent = False
        self.snap = None
        self.snap_offset = 0
        self.snap_idle = 0
        self.inflights.reset()

    def become_probe(self) -> None:
        """Back to probing: after a rejection in replicate state, or after a snapshot."""
        if self.state == SNAPSHOT and self.snap is not None:
            pending = self.snap.meta.index
            self._reset(PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snap: Snapshot) -> None:
        self._reset(SNAPSHOT)
        self.snap = snap

    def maybe_update(self, index: int) -> bool:
        """The peer acknowledged ``index``: raise ``match``; False if the ack is stale."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease(self, rejected: int, match_hint: int) -> bool:
        """The peer rejected an append at ``rejected``; its log may match up to ``match_hint``.
        Move ``next`` back; False if the rejection is stale (answers an older message)."""
        if self.state == REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def paused(self) -> bool:
        """Whether the leader must not send another append now."""
        if self.state == PROBE:
            return self.probe_sent
        if self.state == REPLICATE:
            return self.inflights.full()
        return True

    def sent_entries(self, last_index: int, count: int) -> None:
        """An append carrying entries up to ``last_index`` (``count`` of them) was sent."""
        if self.state == REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state == PROBE:
            self.probe_sent = True
