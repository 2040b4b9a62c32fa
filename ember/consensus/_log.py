"""The Raft log as the core sees it: the stable part in :class:`LogStorage` plus an unstable tail
(entries and possibly a snapshot received but not yet persisted), with the commit and apply
positions. Indices and terms follow Raft Figure 2; index 0 / term 0 is "before the first"."""

from __future__ import annotations

from ._types import Compacted, Entry, LogStorage, Snapshot, StorageError, Unavailable

__all__ = ["RaftLog"]


class RaftLog:
    """Storage + unstable tail. ``committed`` is the highest index known committed; ``applying``
    the highest handed out to apply; ``applied`` the highest the shell confirmed applied."""

    __slots__ = ("applied", "applying", "committed", "offset", "storage", "unstable", "usnap")

    def __init__(self, storage: LogStorage, committed: int, applied: int) -> None:
        self.storage = storage
        self.offset = storage.last_index() + 1  # index of unstable[0]
        self.unstable: list[Entry] = []
        self.usnap: Snapshot | None = None  # received snapshot not yet persisted
        self.committed = committed
        self.applied = applied
        self.applying = applied

    # --- reading ---

    def first_index(self) -> int:
        """The first index held as an entry: at or before the snapshot's index + 1 (a compaction
        may keep entries behind its snapshot; a received snapshot replaces the whole log).
        ``applied`` never lags the snapshot, so applying never reaches back into kept entries."""
        if self.usnap is not None:
            return self.usnap.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.usnap is not None:
            return self.usnap.meta.index
        return self.storage.last_index()

    def term(self, index: int) -> int | None:
        """The term of ``index``, or None if it is compacted away or not in the log yet."""
        if self.unstable and index >= self.offset:
            k = index - self.offset
            return self.unstable[k].term if k < len(self.unstable) else None
        if self.usnap is not None:
            return self.usnap.meta.term if index == self.usnap.meta.index else None
        try:
            return self.storage.term(index)
        except (Compacted, Unavailable):
            return None

    def last_term(self) -> int:
        term = self.term(self.last_index())
        assert term is not None
        return term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Raft §5.4.1: a candidate's log is at least as up-to-date as ours."""
        mine = self.last_term()
        return term > mine or (term == mine and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo..hi-1`` (at least one if ``lo < hi``, up to ``max_bytes`` of data);
        raises :class:`Compacted` when ``lo`` was compacted away."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise Compacted(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise Unavailable(f"index {hi - 1} is after the last index")
        out: list[Entry] = []
        if lo < self.offset:
            out = self.storage.entries(lo, min(hi, self.offset), max_bytes)
            if len(out) < min(hi, self.offset) - lo:
                return out  # size-limited
        if hi > self.offset:
            tail = self.unstable[max(lo, self.offset) - self.offset : hi - self.offset]
            if max_bytes is None:
                return out + tail
            size = sum(len(e.data) for e in out)
            for e in tail:
                size += len(e.data)
                if size > max_bytes and out:
                    break
                out.append(e)
        return out

    def entries_from(self, lo: int, max_bytes: int) -> list[Entry]:
        return self.slice(lo, self.last_index() + 1, max_bytes)

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applying, self.first_index() - 1)

    def next_committed(self, max_bytes: int) -> list[Entry]:
        lo = max(self.applying + 1, self.first_index())
        return self.slice(lo, self.committed + 1, max_bytes)

    def find_conflict(self, entries: list[Entry] | tuple[Entry, ...]) -> int:
        """The index of the first of ``entries`` whose term differs from ours, or 0."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index at or before ``index`` whose term is at most ``term``, with that
        term (0 if unknown): every entry after it that the asker has is in a later term than
        ours, so the asker can skip them all at once (Raft §5.3, the optimisation at its end)."""
        index = min(index, self.last_index())
        while index > 0:
            t = self.term(index)
            if t is None:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # --- writing ---

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> int:
        """Append after truncating any conflicting suffix; returns the new last index."""
        if not entries:
            return self.last_index()
        first = entries[0].index
        if first <= self.committed:
            raise StorageError(f"refusing to overwrite committed index {first}")
        end = self.offset + len(self.unstable)
        if first == end:
            self.unstable.extend(entries)
        elif first <= self.offset:
            self.offset = first
            self.unstable = list(entries)
        else:
            del self.unstable[first - self.offset :]
            self.unstable.extend(entries)
        return self.last_index()

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """AppendEntries receiver steps 2-5 (Figure 2): the last new index, or None to reject."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            self.append(entries[conflict - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise StorageError(f"commit {index} is beyond the last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit ``index`` if it is in ``term`` (Raft §5.4.2: only current-term entries are
        committed by counting replicas)."""
        if index > self.committed and self.term(index) == term:
            self.commit_to(index)
            return True
        return False

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log with a received snapshot (to be persisted by the shell)."""
        self.committed = snap.meta.index
        self.offset = snap.meta.index + 1
        self.unstable = []
        self.usnap = snap

    def stable_to(self, index: int, term: int) -> None:
        """Entries through ``index`` (with ``term``) are now in storage."""
        if self.unstable and self.offset <= index and self.term(index) == term:
            del self.unstable[: index - self.offset + 1]
            self.offset = index + 1

    def persisted_index(self) -> int:
        """The last index that storage holds as this log does (with every entry before it)."""
        return 0 if self.usnap is not None else self.offset - 1

    def stable_snap_to(self, index: int) -> None:
        if self.usnap is not None and self.usnap.meta.index == index:
            self.usnap = None
