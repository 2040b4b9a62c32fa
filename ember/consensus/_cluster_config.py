"""How a replicated group runs: timing, snapshots, membership policy and reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .._checks import check_int, check_positive
from .._errors import UsageError
from ._config import RaftConfig

__all__ = ["ClusterConfig"]


_MAX_INT = 2**63 - 1
DEFAULT_RETRY_WINDOW = 300.0
"""Seconds: see :attr:`ClusterConfig.retry_window`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """The settings every member of a group shares (stored with each member on disk)."""

    tick_interval: float = 0.05
    """Seconds per Raft tick. The leader heartbeats every ``heartbeat_tick`` ticks and a
    follower campaigns after ``election_tick`` to ``2 * election_tick`` silent ticks: with the
    defaults, 50 ms heartbeats and a 0.5-1 s election timeout (a failover takes about that)."""

    election_tick: int = 10
    """See :attr:`RaftConfig.election_tick`."""

    heartbeat_tick: int = 1
    """See :attr:`RaftConfig.heartbeat_tick`."""

    snapshot_every: int = 10_000
    """A member snapshots its state machine and compacts its log once it has applied this many
    entries since its last snapshot."""

    compaction_keep: int = 5_000
    """A compaction keeps this many entries behind the snapshot (etcd's
    ``SnapshotCatchUpEntries``, 5,000), so a follower that is at most that far behind when the
    leader compacts catches up from the log instead of being sent the whole snapshot. Costs
    that many entries of disk per member; 0 keeps none."""

    max_voters: int = 5
    """The voter cap: members beyond it stay learners, promoted when a voter fails."""

    catchup_lag: int = 64
    """A learner within this many entries of the leader's log counts as caught up (promotable)."""

    lease_reads: bool = False
    """Serve ReadIndex from the leader's check-quorum lease instead of a heartbeat round
    (``read(consistency="lease")``); relies on bounded clock drift between members."""

    session_limit: int = 100_000
    """At most this many write outcomes are kept for exactly-once retries. A client's outcomes
    go as soon as it has them (Raft thesis §6.3), so the limit binds only on outcomes of
    caller-chosen request ids and of clients that vanished mid-write (the oldest go first)."""

    retry_window: float = DEFAULT_RETRY_WINDOW
    """Seconds a :class:`Cluster` handle made by ``start`` keeps the session of a write whose
    outcome is unknown, so that a retry with its ``request_id`` still applies once."""

    max_command_bytes: int = 1 << 20
    """The largest write: a command whose log entry (the msgpack of the command and its
    session) is larger is refused before anything is sent (:class:`CommandTooLarge`). Each
    entry travels in one frame, so this must fit, with a batch's framing, in every member's
    transport ``max_frame_size`` (8 MiB by default; checked when a member starts). 1 MiB, as
    etcd's default request limit (1.5 MiB): a log of megabyte entries is a blob store."""

    def __post_init__(self) -> None:
        if not isinstance(self.tick_interval, (int, float)) or not 0 < self.tick_interval <= 10:
            raise UsageError(f"tick_interval must be in (0, 10] seconds: {self.tick_interval!r}")
        for name in (
            "snapshot_every",
            "max_voters",
            "catchup_lag",
            "session_limit",
            "max_command_bytes",
        ):
            check_int(name, getattr(self, name), 1, _MAX_INT)
        check_int("compaction_keep", self.compaction_keep, 0, _MAX_INT)
        check_positive("retry_window", self.retry_window)
        self.raft_config("check")  # validates the Raft fields

    def raft_config(self, member: str) -> RaftConfig:
        """The core's configuration for ``member``."""
        return RaftConfig(
            id=member,
            election_tick=self.election_tick,
            heartbeat_tick=self.heartbeat_tick,
            pre_vote=True,
            check_quorum=True,
            read_only="lease" if self.lease_reads else "safe",
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})
