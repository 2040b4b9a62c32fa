"""The durable Raft log of one group: a SQLite database in WAL mode with ``synchronous=FULL``,
and the latest snapshot's data in a file beside it.

Why SQLite, the file layout and the measurements are in ``docs/consensus.md`` (The durable
log). In short: each ``save`` is one transaction, and committing a WAL transaction with
``synchronous=FULL`` fsyncs the WAL once, so a batch of entries costs one sync (group commit).
A torn or corrupt WAL tail (frames after the last one whose checksum chain is intact) is
discarded by SQLite's WAL recovery when the store is opened; the committed prefix survives.

A snapshot's data (megabytes) is written and fsynced to its own file *before* the write lock is
taken, and the database then only records its name and CRC: saves never wait behind a large
write, and the WAL never carries (and checkpoints) the blob. A crash between the two leaves an
unreferenced file, which the next open deletes.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .._errors import UsageError
from ._store_cache import Tail, TermRuns
from ._types import (
    Compacted,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
    StorageError,
    Unavailable,
)

__all__ = ["DurableStorage"]

DB_NAME = "log.sqlite3"
LOCK_NAME = "LOCK"
SNAP_PREFIX = "snap-"
FORMAT_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    term INTEGER NOT NULL, vote TEXT, commit_idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 0), idx INTEGER NOT NULL, term INTEGER NOT NULL,
    voters TEXT NOT NULL, learners TEXT NOT NULL, data BLOB NOT NULL);
INSERT OR IGNORE INTO hard_state VALUES (0, 0, NULL, 0);
INSERT OR IGNORE INTO snapshot VALUES (0, 0, 0, '[]', '[]', x'');
"""

_MIGRATIONS = {
    # Version 2 keeps the snapshot's data in a file (named here, with its CRC-32); a NULL file
    # means the data is inline in ``data``, as version 1 wrote it.
    2: "ALTER TABLE snapshot ADD COLUMN file TEXT; ALTER TABLE snapshot ADD COLUMN crc INTEGER;",
    # Version 3 records the compaction point C (entries C+1.. are held, C <= the snapshot's
    # index: a compaction may keep entries behind its snapshot) and the term of entry C.
    3: "ALTER TABLE snapshot ADD COLUMN compact_idx INTEGER NOT NULL DEFAULT 0;"
    " ALTER TABLE snapshot ADD COLUMN compact_term INTEGER NOT NULL DEFAULT 0;"
    " UPDATE snapshot SET compact_idx = idx, compact_term = term;",
}


class DurableStorage:
    """The log, hard state and latest snapshot of one Raft group, in the directory ``path``
    (created if missing; one directory per group, e.g. ``.ember/<node>/raft/<group>``).

    Implements :class:`~ember.consensus._types.LogStorage`. ``save`` and ``compact`` are atomic
    and durable when they return, each with one fsync. The hard state, the snapshot's metadata,
    the term of every held entry and the newest ``cache_entries`` entries (at most
    ``cache_bytes`` of data) are kept in memory, so ``initial_state``, ``first_index``,
    ``last_index``, ``term`` and ``entries`` near the tail never read the database.

    Thread safety: methods may be called from any thread. Writes are serialized; reads never
    wait for a write's fsync (they see the state before it until it has committed). Only one
    ``DurableStorage`` may hold a directory at a time, across processes (an ``flock`` on
    ``LOCK``). After a :class:`StorageError` from ``save`` or ``compact`` the store refuses
    further use: the shell should restart the group, which reopens it from disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        cache_entries: int = 4096,
        cache_bytes: int = 8 << 20,
    ) -> None:
        if cache_entries < 1 or cache_bytes < 1:
            raise UsageError("cache_entries and cache_bytes must be positive")
        self.path = Path(path)
        self._write_lock = threading.Lock()  # serializes save/compact/close
        self._mem = threading.Lock()  # guards the in-memory state; never held across I/O
        self._read_lock = threading.Lock()  # guards the reader connection
        self._files = threading.Lock()  # held to open the snapshot file or to delete one
        self._file_seq = itertools.count(1)
        self._snap_file: tuple[str, int] | None = None  # name and CRC-32; None: inline data
        self._failed: BaseException | None = None
        self._closed = False
        self._lock_fd = -1
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        try:
            self._open(cache_entries, cache_bytes)
        except BaseException:
            self._release()
            raise

    # -- opening ---------------------------------------------------------------------------

    def _open(self, cache_entries: int, cache_bytes: int) -> None:
        with _translated(f"cannot open the Raft store in {self.path}"):
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError(f"the Raft store in {self.path} is in use") from None
            db_file = self.path / DB_NAME
            created = not db_file.exists()
            self._db = _connect(db_file)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if not 0 <= version <= FORMAT_VERSION:
                raise StorageError(f"{db_file}: unknown format version {version}")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StorageError(f"{db_file}: cannot use WAL mode (got {mode!r})")
            if version != FORMAT_VERSION:
                script = _SCHEMA if version == 0 else ""
                script += "".join(
                    _MIGRATIONS[v] for v in range(max(version, 1) + 1, FORMAT_VERSION + 1)
                )
                self._db.executescript(
                    f"BEGIN IMMEDIATE;{script}PRAGMA user_version={FORMAT_VERSION};COMMIT;"
                )
            if created:
                _fsync_dir(self.path)
            self._reader = _connect(db_file)
            self._load(self._db, cache_entries, cache_bytes)
            self._sweep_files()

    def _load(self, db: sqlite3.Connection, cache_entries: int, cache_bytes: int) -> None:
        term, vote, commit = db.execute("SELECT term, vote, commit_idx FROM hard_state").fetchone()
        self._hard = HardState(term=term, vote=vote, commit=commit)
        idx, sterm, voters, learners, file, crc, base, base_term = db.execute(
            "SELECT idx, term, voters, learners, file, crc, compact_idx, compact_term FROM snapshot"
        ).fetchone()
        self._snap_file = None if file is None else (file, crc)
        self._snap = SnapshotMeta(
            index=idx,
            term=sterm,
            conf=ConfState(voters=tuple(json.loads(voters)), learners=tuple(json.loads(learners))),
        )
        # The compaction point C (entries C+1.. are held) and the term of entry C.
        self._base: tuple[int, int] = (base, base_term)
        # One pass over the terms: rebuilds the term runs and proves the log contiguous
        # (Raft terms never decrease along a log, so each term is one run).
        runs = db.execute(
            "SELECT term, MIN(idx), MAX(idx), COUNT(*) FROM entries GROUP BY term ORDER BY 2"
        ).fetchall()
        self._runs = TermRuns(base)
        expect = base + 1
        for t, lo, hi, count in runs:
            if lo != expect or hi - lo + 1 != count:
                raise StorageError(
                    f"{self.path}: the log is not contiguous after the compaction point "
                    f"{base} (term {t} holds {count} entries in {lo}..{hi}, "
                    f"expected to start at {expect})"
                )
            self._runs.append(lo, t)
            self._runs.last = hi
            expect = hi + 1
        last = self._runs.last
        if not base <= idx <= last:
            raise StorageError(
                f"{self.path}: the log holds {base + 1}..{last}, not the entries up to the "
                f"snapshot at {idx} it must hold"
            )
        self._tail = Tail(last + 1, cache_entries, cache_bytes)
        lo = max(base + 1, last - cache_entries + 1)
        self._tail.reset(lo)
        self._tail.extend(self._select(db, lo, last + 1, None))

    # -- reads -----------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and the membership as of the snapshot."""
        self._check_usable()
        with self._mem:
            return self._hard, self._snap.conf

    def first_index(self) -> int:
        """The first index held as an entry (the compaction point + 1, at or before the
        snapshot's index + 1)."""
        self._check_usable()
        with self._mem:
            return self._base[0] + 1

    def last_index(self) -> int:
        """The last index held (the snapshot's index when the log is empty)."""
        self._check_usable()
        with self._mem:
            return self._runs.last

    def term(self, index: int) -> int:
        """The term of entry ``index`` (or of the last compacted entry, kept for this)."""
        self._check_usable()
        with self._mem:
            base, base_term = self._base
            if index < base:
                raise Compacted(f"index {index} is compacted (first held index is {base + 1})")
            if index == base:
                return base_term
            if index > self._runs.last:
                raise Unavailable(f"index {index} is after the last entry {self._runs.last}")
            return self._runs.term(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries ``lo..hi-1``, at least one when ``lo < hi`` even if over ``max_bytes``."""
        self._check_usable()
        with self._mem:
            first, last = self._base[0] + 1, self._runs.last
            self._check_range(lo, hi, first, last)
            if lo == hi:
                return []
            if self._tail.covers(lo):
                return _limit(self._tail.slice(lo, hi), max_bytes)
        with self._read_lock, _translated("cannot read entries"):
            assert self._reader is not None
            got = self._select(self._reader, lo, hi, max_bytes)
        if not got or got[0].index != lo:
            # A concurrent compaction removed them between the check and the read.
            raise Compacted(f"index {lo} is compacted (first held index is {self.first_index()})")
        return got

    @staticmethod
    def _check_range(lo: int, hi: int, first: int, last: int) -> None:
        if lo > hi:
            raise UsageError(f"entries({lo}, {hi}): lo is after hi")
        if lo < first:
            raise Compacted(f"index {lo} is compacted (first held index is {first})")
        if hi > last + 1:
            raise Unavailable(f"index {hi - 1} is after the last entry {last}")

    @staticmethod
    def _select(db: sqlite3.Connection, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        out: list[Entry] = []
        size = 0
        rows = db.execute(
            "SELECT idx, term, type, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (lo, hi),
        )
        for idx, term, kind, data in rows:
            size += len(data)
            if out and max_bytes is not None and size > max_bytes:
                break
            out.append(Entry(idx, term, EntryType(kind), data))
        return out

    def snapshot_meta(self) -> SnapshotMeta:
        """The latest snapshot's metadata (from memory: never reads the snapshot's file)."""
        self._check_usable()
        with self._mem:
            return self._snap

    def snapshot(self) -> Snapshot:
        """The latest snapshot (empty, at index 0, before the first), read from its file."""
        self._check_usable()
        while True:
            with self._files:  # a replaced file is deleted under this lock: open it first
                with self._mem:
                    meta, file = self._snap, self._snap_file
                if file is not None:
                    with _translated("cannot read the snapshot"):
                        f = (self.path / file[0]).open("rb")
                    break
            inline = self._inline_snapshot()
            if inline is not None:
                return inline
            # A file was recorded since the metadata was read: read that.
        with f, _translated("cannot read the snapshot"):
            data = f.read()
        if zlib.crc32(data) != file[1]:
            raise StorageError(f"{self.path}: the snapshot file {file[0]} is damaged (bad CRC)")
        return Snapshot(meta, data)

    def _inline_snapshot(self) -> Snapshot | None:
        """The empty snapshot, or one a version 1 store kept inside the database; None if the
        database now names a file."""
        with self._read_lock, _translated("cannot read the snapshot"):
            assert self._reader is not None
            # One read transaction, so the metadata and the data belong together.
            idx, term, voters, learners, data, file = self._reader.execute(
                "SELECT idx, term, voters, learners, data, file FROM snapshot"
            ).fetchone()
        if file is not None:
            return None
        conf = ConfState(tuple(json.loads(voters)), tuple(json.loads(learners)))
        return Snapshot(SnapshotMeta(idx, term, conf), bytes(data))

    # -- writes ----------------------------------------------------------------------------

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Atomically and durably store one ``ready()``: with one fsync, ``snapshot`` replaces
        the whole log (etcd's semantics: a follower that installs a snapshot discards its log),
        then ``entries`` are appended, replacing any stored entries from their first index on,
        and ``hard_state`` replaces the stored one. Entries at or before the snapshot index are
        skipped; a gap after the last entry is a :class:`UsageError`."""
        if snapshot is not None and snapshot.meta.index == 0:
            snapshot = None  # the empty snapshot: nothing to install
        if hard_state is None and not entries and snapshot is None:
            return
        _check_batch(entries)
        self._locked_with_file(snapshot, lambda f: self._save(hard_state, entries, snapshot, f))

    def _locked_with_file(
        self,
        snapshot: Snapshot | None,
        write: Callable[[tuple[str, int] | None], tuple[str, int] | None],
    ) -> None:
        """Write ``snapshot``'s file (if any) outside the write lock, then ``write(file)``
        under it, which returns the file left unused: the one it replaced, or the new one if it
        did not adopt it (or raised). That file is deleted."""
        file = None if snapshot is None else self._write_file(snapshot)
        unused = file
        try:
            with self._write_lock:
                unused = write(file)
        finally:
            if unused is not None:
                self._discard(unused[0])

    def _save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        file: tuple[str, int] | None,
    ) -> tuple[str, int] | None:
        """``save`` under the write lock; returns the snapshot file it replaced."""
        replaced = None
        self._check_usable()
        snap_index = self._snap.index
        last = self._runs.last
        if snapshot is not None:
            if snapshot.meta.index <= snap_index:
                raise Compacted(
                    f"snapshot at {snapshot.meta.index} is not newer than the one held "
                    f"at {snap_index}"
                )
            snap_index = last = snapshot.meta.index
        new = [e for e in entries if e.index > snap_index]
        if new:
            self._check_follows(new[0], snap_index, snapshot, last)
        with self._transaction("save") as db:
            if snapshot is not None:
                db.execute("DELETE FROM entries")
                _record_snapshot(db, snapshot.meta, file, (snapshot.meta.index, snapshot.meta.term))
            if new and new[0].index <= last:
                db.execute("DELETE FROM entries WHERE idx >= ?", (new[0].index,))
            if new:
                db.executemany(
                    "INSERT INTO entries VALUES (?, ?, ?, ?)",
                    [(e.index, e.term, int(e.type), e.data) for e in new],
                )
            if hard_state is not None:
                db.execute(
                    "UPDATE hard_state SET term = ?, vote = ?, commit_idx = ?",
                    (hard_state.term, hard_state.vote, hard_state.commit),
                )
        with self._mem:
            if snapshot is not None:
                self._snap = snapshot.meta
                self._base = (snapshot.meta.index, snapshot.meta.term)
                replaced, self._snap_file = self._snap_file, file
                self._runs.truncate_from(1)
                self._runs.last = snapshot.meta.index
                self._tail.reset(snapshot.meta.index + 1)
            if new:
                self._runs.truncate_from(new[0].index)
                self._tail.truncate_from(new[0].index)
                self._runs.extend(new)
                self._tail.extend(new)
            if hard_state is not None:
                self._hard = hard_state
        return replaced

    def _check_follows(self, e: Entry, snap_index: int, snap: Snapshot | None, last: int) -> None:
        """``e`` (after the snapshot) must leave no gap and keep terms non-decreasing, which
        the term runs and the contiguity check on open rely on."""
        if e.index > last + 1:
            raise UsageError(f"entry {e.index} leaves a gap after the last entry {last}")
        if e.index - 1 == snap_index:
            before = snap.meta.term if snap is not None else self._snap.term
        else:
            before = self._runs.term(e.index - 1)
        if e.term < before:
            raise UsageError(f"entry {e.index} has term {e.term}, below {before} before it")

    def compact(self, snapshot: Snapshot, keep: int = 0) -> None:
        """Store ``snapshot`` (taken at an applied index ``S``) and drop the entries up to
        ``max(previous compaction point, S - keep)``, keeping the later ones. Its term must be
        the term of the entry at its index; a snapshot not newer than the one held is ignored
        (one was installed meanwhile)."""
        if keep < 0:
            raise UsageError(f"keep must not be negative: {keep}")
        if snapshot.meta.index <= self.snapshot_meta().index:
            return  # a newer one is held already: spare writing a file for nothing
        self._locked_with_file(snapshot, lambda f: self._compact(snapshot, keep, f))

    def _compact(
        self, snapshot: Snapshot, keep: int, file: tuple[str, int] | None
    ) -> tuple[str, int] | None:
        """``compact`` under the write lock; returns the snapshot file to delete."""
        index = snapshot.meta.index
        self._check_usable()
        if index <= self._snap.index:
            return file  # a newer snapshot was installed meanwhile: nothing left to do
        if index > self._runs.last:
            raise Unavailable(f"cannot compact to {index}: last entry is {self._runs.last}")
        if self._runs.term(index) != snapshot.meta.term:
            raise UsageError(
                f"snapshot term {snapshot.meta.term} differs from the term "
                f"{self._runs.term(index)} of entry {index}"
            )
        upto = max(self._base[0], index - keep)
        base = (upto, self._runs.term(upto)) if upto > self._base[0] else self._base
        with self._transaction("compact") as db:
            _record_snapshot(db, snapshot.meta, file, base)
            db.execute("DELETE FROM entries WHERE idx <= ?", (upto,))
        with self._mem:
            self._snap = snapshot.meta
            self._base = base
            replaced, self._snap_file = self._snap_file, file
            self._runs.drop_through(upto)
            self._tail.drop_through(upto)
        return replaced

    # -- snapshot files --------------------------------------------------------------------

    def _write_file(self, snapshot: Snapshot) -> tuple[str, int]:
        """Write ``snapshot``'s data durably to a new file (not yet recorded): its name and
        CRC-32. Runs outside the write lock, so saves go on meanwhile."""
        name = f"{SNAP_PREFIX}{snapshot.meta.index:016x}-{next(self._file_seq)}.bin"
        tmp = self.path / f"{name}.tmp"
        try:
            with _translated("cannot write the snapshot"), tmp.open("wb") as f:
                f.write(snapshot.data)
                f.flush()
                os.fsync(f.fileno())
            with _translated("cannot write the snapshot"):
                tmp.rename(self.path / name)
                _fsync_dir(self.path)  # the rename is durable before the database names it
        except BaseException:
            self._discard(tmp.name)
            raise
        return name, zlib.crc32(snapshot.data)

    def _discard(self, name: str) -> None:
        with self._files, contextlib.suppress(OSError):
            (self.path / name).unlink()

    def _sweep_files(self) -> None:
        """Delete the snapshot files no record names (left by a crash between writing one and
        recording it, or before deleting the one it replaced); the named one must exist."""
        keep = None if self._snap_file is None else self._snap_file[0]
        for f in self.path.glob(f"{SNAP_PREFIX}*"):
            if f.name != keep:
                f.unlink()
        if keep is None:
            return
        if not (self.path / keep).is_file():
            raise StorageError(f"{self.path}: the snapshot file {keep} is missing")
        seq = int(keep.removesuffix(".bin").rsplit("-", 1)[1])
        self._file_seq = itertools.count(seq + 1)

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            # After a failed write (above all a failed fsync) what is on disk is unknown:
            # refuse further use until the store is reopened and recovers from the file.
            self._failed = exc
            raise StorageError(f"{self.path}: {what} failed: {exc}") from exc

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (checkpointing the WAL) and release the directory; idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    def _release(self) -> None:
        errors: list[BaseException] = []
        for conn in (self._reader, self._db):
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    errors.append(exc)
        self._reader = self._db = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1
        if errors:
            raise StorageError(f"{self.path}: close failed: {errors[0]}") from errors[0]

    def __enter__(self) -> DurableStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise UsageError(f"the Raft store in {self.path} is closed")
        if self._failed is not None:
            raise StorageError(
                f"the Raft store in {self.path} failed earlier ({self._failed}); reopen it"
            )

    def __repr__(self) -> str:
        return f"DurableStorage({str(self.path)!r})"


def _connect(db_file: Path) -> sqlite3.Connection:
    db = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
    # FULL: the WAL is fsynced at every commit, so a transaction is durable when COMMIT returns.
    db.execute("PRAGMA synchronous=FULL")
    return db


def _record_snapshot(
    db: sqlite3.Connection,
    m: SnapshotMeta,
    file: tuple[str, int] | None,
    base: tuple[int, int],
) -> None:
    """Record the snapshot ``m`` (its data in ``file``) and the compaction point with its term."""
    name, crc = file if file is not None else (None, None)
    db.execute(
        "UPDATE snapshot SET idx = ?, term = ?, voters = ?, learners = ?, data = x'', file = ?,"
        " crc = ?, compact_idx = ?, compact_term = ?",
        (
            m.index,
            m.term,
            json.dumps(m.conf.voters),
            json.dumps(m.conf.learners),
            name,
            crc,
            *base,
        ),
    )


def _check_batch(entries: Sequence[Entry]) -> None:
    for a, b in itertools.pairwise(entries):
        if b.index != a.index + 1:
            raise UsageError(f"entries are not contiguous: {a.index} then {b.index}")
        if b.term < a.term:
            raise UsageError(
                f"terms decrease: entry {a.index} has {a.term}, {b.index} has {b.term}"
            )
    if entries and entries[0].index < 1:
        raise UsageError(f"entry index {entries[0].index} is below 1")


def _limit(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    if max_bytes is None:
        return entries
    size = 0
    for k, e in enumerate(entries):
        size += len(e.data)
        if k and size > max_bytes:
            return entries[:k]
    return entries


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"{what}: {exc}") from exc
