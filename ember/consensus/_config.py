"""The Raft core's configuration: one frozen keyword-only dataclass, every field documented and
validated on construction, defaults chosen in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._errors import RaftUsageError

__all__ = ["RaftConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    """How one Raft member behaves. Time is counted in ticks; the shell decides how long a tick is
    (the default profile assumes about 100 ms: a leader heartbeats every tick and a follower waits
    10 to 19 ticks, i.e. 1 to 2 s, before it campaigns)."""

    id: str
    """This member's id, as it appears in :class:`~ember.consensus._types.ConfState`."""

    election_tick: int = 10
    """Ticks without hearing from a leader before a follower campaigns. The actual timeout is drawn
    uniformly from ``[election_tick, 2 * election_tick)`` each time (Raft §5.2, randomized
    timeouts), so split votes are rare. Must exceed ``heartbeat_tick`` several times over so a
    follower does not campaign because of one lost heartbeat; the validator asks for at least
    twice."""

    heartbeat_tick: int = 1
    """Ticks between a leader's heartbeats. Heartbeats carry the commit index and, in ``safe``
    read mode, confirm leadership for ReadIndex reads."""

    pre_vote: bool = True
    """Run a pre-vote round (thesis §9.6) before a real election: a node that cannot win (it is
    partitioned, or its log is behind) never bumps its term, so it cannot disrupt a healthy leader
    when it rejoins."""

    check_quorum: bool = True
    """A leader steps down when it has not heard from a quorum within an election timeout
    (thesis §6.2), and followers that heard from a leader within the election timeout ignore vote
    requests (the leader "lease"). Required by ``read_only="lease"``."""

    max_size_per_msg: int = 1 << 20
    """The most bytes of entry data in one append message (at least one entry is always sent).
    Batches many small proposals per message; bounds the latency of one message."""

    max_inflight_msgs: int = 256
    """The most append messages in flight to one follower in the replicate state (pipelining).
    With ``max_size_per_msg`` this bounds the bytes buffered per follower."""

    max_inflight_bytes: int = 8 << 20
    """The most bytes of entry data in flight to one follower (etcd's ``MaxInflightBytes``):
    the window is full once this much is unacknowledged (the last message may cross it). The
    tighter of this and ``max_inflight_msgs x max_size_per_msg`` bounds what a lagging follower
    costs the leader in memory and storage reads at any time. 8 MiB keeps a LAN link busy and
    is far under the transport's RAFT queue."""

    max_uncommitted_bytes: int = 1 << 26
    """The most bytes of proposed but uncommitted entry data a leader accepts; beyond that
    :meth:`propose` raises ``ProposalDropped("uncommitted_limit")`` (back-pressure). A single
    proposal is accepted when nothing is uncommitted, whatever its size."""

    read_only: Literal["safe", "lease"] = "safe"
    """How the leader confirms it is still leader for a ReadIndex read: ``"safe"`` (a heartbeat
    round with a quorum, thesis §6.4) or ``"lease"`` (trust check-quorum's lease; relies on
    bounded clock drift between members, thesis §6.4.1)."""

    snapshot_chunk_size: int = 1 << 20
    """Bytes of snapshot data per InstallSnapshot message; the follower reassembles the chunks."""

    applied: int = 0
    """The index the shell's state machine has already applied (for a state machine that
    persists itself); committed entries up to here are not handed out again after a restart.
    0 means "from the snapshot on"."""

    max_committed_size_per_ready: int = 1 << 26
    """The most bytes of committed entries one ``ready()`` hands out to apply (at least one)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise RaftUsageError(f"id must be a non-empty string, not {self.id!r}")
        for name in (
            "election_tick",
            "heartbeat_tick",
            "max_size_per_msg",
            "max_inflight_msgs",
            "max_inflight_bytes",
            "max_uncommitted_bytes",
            "snapshot_chunk_size",
            "max_committed_size_per_ready",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RaftUsageError(f"{name} must be a positive int, not {value!r}")
        if not isinstance(self.applied, int) or self.applied < 0:
            raise RaftUsageError(f"applied must be an int >= 0, not {self.applied!r}")
        if self.election_tick < 2 * self.heartbeat_tick:
            raise RaftUsageError(
                f"election_tick ({self.election_tick}) must be at least twice heartbeat_tick "
                f"({self.heartbeat_tick})"
            )
        if self.read_only not in ("safe", "lease"):
            raise RaftUsageError(f"read_only must be 'safe' or 'lease', not {self.read_only!r}")
        if self.read_only == "lease" and not self.check_quorum:
            raise RaftUsageError("read_only='lease' requires check_quorum=True")
