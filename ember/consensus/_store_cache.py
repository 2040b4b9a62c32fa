"""The in-memory part of the durable store: the term of every held entry as runs of equal terms,
and a bounded window of the most recent entries, so the core's hot reads never touch SQLite."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from ._types import Entry


class TermRuns:
    """Terms of entries ``first..last`` as runs: ``starts[k]`` is the first index of a run whose
    entries all have term ``terms[k]``. Terms change rarely, so this is a handful of pairs."""

    __slots__ = ("last", "starts", "terms")

    def __init__(self, last: int) -> None:
        self.starts: list[int] = []
        self.terms: list[int] = []
        self.last = last

    def term(self, index: int) -> int:
        """The term of ``index``, which the caller has checked is held."""
        return self.terms[bisect_right(self.starts, index) - 1]

    def truncate_from(self, index: int) -> None:
        """Forget the entries from ``index`` on."""
        k = bisect_right(self.starts, index - 1)
        del self.starts[k:]
        del self.terms[k:]
        self.last = min(self.last, index - 1)

    def drop_through(self, index: int) -> None:
        """Forget the entries up to ``index`` (compaction), keeping the later ones."""
        k = bisect_right(self.starts, index) - 1
        if k < 0:
            return
        del self.starts[:k]
        del self.terms[:k]
        if self.last > index:
            self.starts[0] = index + 1
        else:
            self.starts.clear()
            self.terms.clear()

    def append(self, index: int, term: int) -> None:
        """Record a run of ``term`` starting at ``index == last + 1``."""
        if not self.terms or self.terms[-1] != term:
            self.starts.append(index)
            self.terms.append(term)

    def extend(self, entries: Sequence[Entry]) -> None:
        """Record contiguous entries with non-decreasing terms appended after ``last``."""
        if entries and entries[0].term == entries[-1].term:
            self.append(entries[0].index, entries[0].term)  # the usual batch: one term
        else:
            for e in entries:
                self.append(e.index, e.term)
        if entries:
            self.last = entries[-1].index


class Tail:
    """The newest entries, a contiguous suffix ``lo..`` of the log, bounded in count and bytes."""

    __slots__ = ("entries", "lo", "max_bytes", "max_entries", "nbytes")

    def __init__(self, lo: int, max_entries: int, max_bytes: int) -> None:
        self.entries: list[Entry] = []
        self.lo = lo
        self.nbytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get(self, index: int) -> Entry | None:
        k = index - self.lo
        return self.entries[k] if 0 <= k < len(self.entries) else None

    def covers(self, lo: int) -> bool:
        return lo >= self.lo

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.lo : hi - self.lo]

    def reset(self, lo: int) -> None:
        """Empty the window; the next entry appended will be ``lo``."""
        self.entries.clear()
        self.lo = lo
        self.nbytes = 0

    def truncate_from(self, index: int) -> None:
        if index <= self.lo:
            self.reset(index)
            return
        k = index - self.lo
        self.nbytes -= sum(len(e.data) for e in self.entries[k:])
        del self.entries[k:]

    def drop_through(self, index: int) -> None:
        k = index + 1 - self.lo
        if k <= 0:
            return
        if k >= len(self.entries):
            self.reset(index + 1)
            return
        self.nbytes -= sum(len(e.data) for e in self.entries[:k])
        del self.entries[:k]
        self.lo = index + 1

    def extend(self, entries: Sequence[Entry]) -> None:
        """Append entries that follow the window's last one."""
        self.entries.extend(entries)
        self.nbytes += sum(len(e.data) for e in entries)
        if len(self.entries) > self.max_entries or self.nbytes > self.max_bytes:
            self._shrink()

    def _shrink(self) -> None:
        # Trim to three quarters of the bounds, so trimming happens once per many appends.
        keep_n = self.max_entries * 3 // 4
        keep_b = self.max_bytes * 3 // 4
        n = 0
        size = 0
        for e in reversed(self.entries):
            if n >= keep_n or size + len(e.data) > keep_b:
                break
            n += 1
            size += len(e.data)
        drop = len(self.entries) - n
        del self.entries[:drop]
        self.lo += drop
        self.nbytes = size
