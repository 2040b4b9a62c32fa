"""An in-memory :class:`~ember.consensus._types.LogStorage`, for tests and the simulator. What it
holds is exactly what a crash keeps: the simulator "crashes" a node by dropping its core and
restarting a new one from the same storage."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import UsageError
from ._types import (
    Compacted,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
    StorageError,
    Unavailable,
)

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """The log as a list after the compaction point (at or before the latest snapshot).
    ``saves`` counts ``save`` calls (syncs)."""

    def __init__(self) -> None:
        self._hard = HardState()
        self._snap = Snapshot()
        self._base = 0  # the compaction point C: entries C+1.. are held
        self._base_term = 0  # the term of entry C
        self._ents: list[Entry] = []  # entries C+1 ..
        self.saves = 0

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard, self._snap.meta.conf

    def first_index(self) -> int:
        return self._base + 1

    def last_index(self) -> int:
        return self._base + len(self._ents)

    def term(self, index: int) -> int:
        base = self._base
        if index < base:
            raise Compacted(f"index {index} is compacted (first held index is {base + 1})")
        if index == base:
            return self._base_term
        if index > self.last_index():
            raise Unavailable(f"index {index} is after the last index {self.last_index()}")
        return self._ents[index - base - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        base = self._base
        if lo <= base:
            raise Compacted(f"index {lo} is compacted (first held index is {base + 1})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"index {hi - 1} is after the last index {self.last_index()}")
        out = self._ents[lo - base - 1 : hi - base - 1]
        if max_bytes is not None:
            size = 0
            for k, e in enumerate(out):
                size += len(e.data)
                if size > max_bytes and k > 0:
                    return out[:k]
        return out

    def snapshot(self) -> Snapshot:
        return self._snap

    def snapshot_meta(self) -> SnapshotMeta:
        return self._snap.meta

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        if snapshot is not None and snapshot.meta.index > 0:
            if snapshot.meta.index <= self._snap.meta.index:
                raise StorageError(
                    f"snapshot at {snapshot.meta.index} is not newer than {self._snap.meta.index}"
                )
            self._snap = snapshot
            self._base, self._base_term = snapshot.meta.index, snapshot.meta.term
            self._ents = []
        if entries:
            first = entries[0].index
            if first > self.last_index() + 1:
                raise StorageError(f"gap: entry {first} after last index {self.last_index()}")
            # Entries the snapshot covers are committed: never rewritten.
            entries = [e for e in entries if e.index > self._snap.meta.index]
            if entries:
                del self._ents[entries[0].index - self._base - 1 :]
                self._ents.extend(entries)
        if hard_state is not None:
            self._hard = hard_state
        self.saves += 1

    def compact(self, snapshot: Snapshot, keep: int = 0) -> None:
        if keep < 0:
            raise UsageError(f"keep must not be negative: {keep}")
        index = snapshot.meta.index
        if index <= self._snap.meta.index:
            return
        if index > self.last_index():
            raise Unavailable(f"cannot compact to {index} beyond last index {self.last_index()}")
        if self.term(index) != snapshot.meta.term:
            raise UsageError(
                f"snapshot term {snapshot.meta.term} differs from the term {self.term(index)} "
                f"of entry {index}"
            )
        base = max(self._base, index - keep)
        if base > self._base:
            self._base_term = self._ents[base - self._base - 1].term
            del self._ents[: base - self._base]
            self._base = base
        self._snap = snapshot

    def close(self) -> None:
        pass
