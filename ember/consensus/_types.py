"""The data the Raft core, its storage and its shell share: entries, hard state, membership
configuration, snapshots, and the storage interface.

The core (``_raft.py``) reads the stable log through :class:`LogStorage`; the shell persists what
the core's ``ready()`` hands it through the same object (``save``), then calls ``advance()``.
:class:`~ember.consensus.MemoryStorage` (tests, simulation) and the durable store implement it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from .._errors import EmberError

__all__ = [
    "Compacted",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "LogStorage",
    "Snapshot",
    "SnapshotMeta",
    "StorageError",
    "Unavailable",
]


class EntryType(IntEnum):
    """What an entry's ``data`` holds."""

    NORMAL = 0
    """A command for the state machine (empty ``data``: the no-op a new leader appends)."""
    CONF_CHANGE = 1
    """A membership change, encoded by the core."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry."""

    index: int
    term: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before a message that depends on it is sent (Raft §5, Figure 2:
    "persistent state on all servers"), plus the commit index so a restart can re-apply."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """The group's membership: voters, and learners that receive the log but do not vote."""

    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot stands in the log, and the membership as of that index."""

    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A state-machine snapshot: everything up to ``meta.index`` applied, as opaque bytes."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""


class StorageError(EmberError):
    """The store failed or found itself corrupt beyond the torn tail it repairs itself."""


class Compacted(StorageError):
    """The requested index was compacted away (``term``: before the compaction point;
    ``entries``: before ``first_index()``)."""


class Unavailable(StorageError):
    """The requested index is after the last entry."""


class LogStorage(Protocol):
    """The log as the core sees it (etcd's ``Storage`` plus the writes the shell makes).

    Indices: with the snapshot at ``S`` and the compaction point ``C`` (``C <= S``), entries
    ``C+1..last_index()`` are held and ``first_index() == C + 1``. A compaction may keep entries
    behind its snapshot (``C < S``: the entries ``C+1..S`` the snapshot also covers, so a
    follower a little behind catches up from the log); installing a snapshot leaves ``C == S``.
    ``term(C)`` is still answered (the term of the last compacted entry, the snapshot's term when
    ``C == S``); indices before ``C`` raise :class:`Compacted`. ``last_index() >= S`` always.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and membership the node restarts with."""
        ...

    def first_index(self) -> int:
        """The first index still held as an entry."""
        ...

    def last_index(self) -> int:
        """The last index in the log (the snapshot's index when no entry is held)."""
        ...

    def term(self, index: int) -> int:
        """The term of entry ``index``; raises :class:`Compacted` / :class:`Unavailable`."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo..hi-1``; at least one (if ``lo < hi``) even if over ``max_bytes``."""
        ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot (empty, index 0, before the first); may read a large file."""
        ...

    def snapshot_meta(self) -> SnapshotMeta:
        """The latest snapshot's metadata alone (cheap: never reads the snapshot's data)."""
        ...

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Durably and atomically store what one ``ready()`` asks for, with one sync.

        ``snapshot`` (if any, a leader's, newer than the held one) replaces the whole log: the
        compaction point becomes its index. ``entries`` are contiguous; those at or before the
        snapshot index are skipped; the first may be at or before ``last_index() + 1``, in which
        case the stored entries from there on are replaced (a new leader overwrote a conflicting
        suffix)."""
        ...

    def compact(self, snapshot: Snapshot, keep: int = 0) -> None:
        """Store ``snapshot`` (made by the application at an applied index ``S``) and drop the
        entries up to ``C = max(previous C, S - keep)``, keeping ``keep`` entries behind the
        snapshot for followers a little behind, and all the later ones. A snapshot not newer
        than the held one is ignored."""
        ...

    def close(self) -> None:
        """Release the store; idempotent."""
        ...
