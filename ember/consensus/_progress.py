"""The leader's view of each peer (etcd's ``tracker.Progress``): how far its log matches, what to
send next, and in which of three states replication to it is.

- ``probe``: the leader does not know where the peer's log matches; it sends one append at a
  time and waits for the answer before sending another (or re-sends it after a heartbeat round
  that began after it, when it was probably lost).
- ``replicate``: the peer's log is known to match; appends are pipelined optimistically, up to
  ``max_inflight_msgs`` unacknowledged messages or ``max_inflight_bytes`` of entry data
  (:class:`Inflights`). With a full window, a heartbeat response lets one *empty* append out
  (a probe that re-sends nothing: its rejection tells the window was lost).
- ``snapshot``: the peer needs entries the leader compacted away; a snapshot is being streamed.

Nothing here re-sends what is in flight on a heartbeat: only a lost message (an answer that
shows it, or silence across a whole heartbeat round sent after it) makes the leader send
entries again, so a lagging peer costs the leader one read of each entry, at the peer's pace.
"""

from __future__ import annotations

from collections import deque

from ._types import Snapshot

__all__ = ["PROBE", "REPLICATE", "SNAPSHOT", "Inflights", "Progress"]

PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"


class Inflights:
    """Append messages sent but not acknowledged, as (last index, bytes of entry data), oldest
    first; full at ``capacity`` messages or at (not beyond: a message may cross it) ``max_bytes``
    bytes, as etcd's ``MaxInflightMsgs`` and ``MaxInflightBytes``."""

    __slots__ = ("_q", "bytes", "capacity", "max_bytes")

    def __init__(self, capacity: int, max_bytes: int) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0
        self._q: deque[tuple[int, int]] = deque()

    def add(self, last_index: int, nbytes: int) -> None:
        self._q.append((last_index, nbytes))
        self.bytes += nbytes

    def free_le(self, index: int) -> None:
        """Forget the messages whose entries are all at or before ``index`` (acknowledged)."""
        q = self._q
        while q and q[0][0] <= index:
            self.bytes -= q.popleft()[1]

    def full(self) -> bool:
        return len(self._q) >= self.capacity or self.bytes >= self.max_bytes

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()
        self.bytes = 0


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
        "sent_tick",
        "snap",
        "snap_idle",
        "snap_offset",
        "state",
    )

    def __init__(
        self, next_index: int, max_inflight: int, max_inflight_bytes: int, is_learner: bool
    ) -> None:
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.probe_sent = False
        """Probe: an append is out, unanswered. Replicate: the window is full and its empty
        probe is out. Either way nothing more goes until an answer or a later heartbeat."""
        self.sent_tick = -1
        """The leader tick of the last append sent: a heartbeat sent no later than that and
        answered says nothing of whether the append arrived."""
        self.recent_active = False
        self.is_learner = is_learner
        self.inflights = Inflights(max_inflight, max_inflight_bytes)
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
            return self.probe_sent and self.inflights.full()
        return True

    def sent_entries(self, last_index: int, count: int, nbytes: int, tick: int) -> None:
        """An append carrying entries up to ``last_index`` (``count`` of them, ``nbytes`` of
        data) was sent at leader tick ``tick``."""
        self.sent_tick = tick
        if self.state == REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index, nbytes)
            self.probe_sent = self.inflights.full()
        elif self.state == PROBE:
            self.probe_sent = True

    def heartbeat_answered(self, sent_tick: int) -> None:
        """The peer answered a heartbeat sent at leader tick ``sent_tick``. One sent after the
        last append, answered while that append is not (messages to a peer arrive in order),
        means the append was probably lost: allow one more probe."""
        if sent_tick > self.sent_tick:
            self.probe_sent = False
