"""What only the durable store has: one transaction per save, recovery from a torn or corrupt WAL
tail, detection of a damaged database, the directory lock, typed errors, and concurrent readers.
The contract shared with ``MemoryStorage`` is in ``test_store_conformance.py``."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import threading
import zlib
from pathlib import Path

import pytest

from ember import UsageError
from ember.consensus._store import (
    _MIGRATIONS,
    _SCHEMA,
    DB_NAME,
    FORMAT_VERSION,
    SNAP_PREFIX,
    DurableStorage,
)
from ember.consensus._types import (
    Compacted,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
    StorageError,
)

WAL = DB_NAME + "-wal"
SEED = int(os.environ.get("EMBER_SEED", "20261124"))


def batch(lo: int, n: int, term: int, size: int) -> list[Entry]:
    return [Entry(i, term, data=bytes([i % 251]) * size) for i in range(lo, lo + n)]


def state(store: DurableStorage) -> tuple[object, ...]:
    return (
        store.initial_state(),
        store.snapshot(),
        store.first_index(),
        store.entries(store.first_index(), store.last_index() + 1),
    )


def open_image(image: Path, into: Path) -> DurableStorage:
    shutil.copytree(image, into)
    return DurableStorage(into)


@pytest.fixture
def wal_history(tmp_path: Path) -> tuple[Path, list[int], list[tuple[object, ...]]]:
    """A crash image (database + WAL copied while the store is open, so nothing was
    checkpointed) and, for each commit, the WAL size after it and the state it left."""
    live = tmp_path / "live"
    store = DurableStorage(live)
    sizes = [(live / WAL).stat().st_size]
    states = [state(store)]
    last = 0
    for k in range(1, 13):
        n = (1, 3, 20)[k % 3]
        entries = batch(last + 1, n, k, size=(10, 700, 3000)[k % 3])
        store.save(HardState(k, "a", last), entries)
        last += n
        sizes.append((live / WAL).stat().st_size)
        states.append(state(store))
    image = tmp_path / "image"
    image.mkdir()
    for name in (DB_NAME, WAL):
        shutil.copy(live / name, image / name)
    store.close()
    assert sizes == sorted(set(sizes)), "every commit appended frames to the WAL"
    return image, sizes, states


def test_a_torn_wal_tail_is_discarded_and_the_committed_prefix_survives(
    tmp_path: Path, wal_history: tuple[Path, list[int], list[tuple[object, ...]]]
) -> None:
    image, sizes, states = wal_history
    rng = random.Random(SEED)
    for k in range(1, len(sizes)):
        # Cut inside commit k's frames, sometimes with garbage where the rest should be.
        cut = rng.randrange(sizes[k - 1], sizes[k])
        trial = tmp_path / f"cut{k}"
        shutil.copytree(image, trial)
        with (trial / WAL).open("r+b") as f:
            f.truncate(cut)
            if k % 2:
                f.seek(cut)
                f.write(rng.randbytes(rng.randint(1, 5000)))
        with DurableStorage(trial) as store:
            assert state(store) == states[k - 1], f"seed {SEED}: cut at {cut} in commit {k}"
    with open_image(image, tmp_path / "whole") as store:
        assert state(store) == states[-1]


def test_a_corrupt_frame_drops_its_commit_and_every_later_one(
    tmp_path: Path, wal_history: tuple[Path, list[int], list[tuple[object, ...]]]
) -> None:
    image, sizes, states = wal_history
    rng = random.Random(SEED)
    for k in (1, 5, len(sizes) - 1):
        spot = rng.randrange(sizes[k - 1] + 24, sizes[k])  # past the first frame's header
        trial = tmp_path / f"flip{k}"
        shutil.copytree(image, trial)
        with (trial / WAL).open("r+b") as f:
            f.seek(spot)
            byte = f.read(1)[0]
            f.seek(spot)
            f.write(bytes([byte ^ 0x5A]))
        with DurableStorage(trial) as store:
            assert state(store) == states[k - 1], f"seed {SEED}: byte {spot} in commit {k}"


def test_each_save_is_one_transaction(tmp_path: Path) -> None:
    store = DurableStorage(tmp_path / "g")
    statements: list[str] = []
    assert store._db is not None  # the writer connection, to watch what a save sends
    store._db.set_trace_callback(statements.append)
    store.save(HardState(1, "a", 0), batch(1, 64, 1, 100))
    store.save(HardState(2, "b", 0), batch(60, 10, 2, 100))  # truncates, then appends
    store.compact(Snapshot(SnapshotMeta(30, 1), b"s"))
    store.close()
    verbs = [s.split()[0].upper() for s in statements]
    assert verbs.count("BEGIN") == verbs.count("COMMIT") == 3
    assert "ROLLBACK" not in verbs


def test_a_second_opener_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = DurableStorage(tmp_path / "g")
    with pytest.raises(StorageError, match="in use"):
        DurableStorage(tmp_path / "g")
    first.close()
    DurableStorage(tmp_path / "g").close()


def test_a_closed_store_refuses_use_and_close_is_idempotent(tmp_path: Path) -> None:
    store = DurableStorage(tmp_path / "g")
    store.close()
    store.close()
    with pytest.raises(UsageError):
        store.last_index()
    with pytest.raises(UsageError):
        store.save(HardState(1), [])


def test_a_database_that_is_not_sqlite_is_a_storage_error(tmp_path: Path) -> None:
    DurableStorage(tmp_path / "g").close()
    with (tmp_path / "g" / DB_NAME).open("r+b") as f:
        f.write(b"this is not a database header" * 4)
    with pytest.raises(StorageError) as info:
        DurableStorage(tmp_path / "g")
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_hole_in_the_log_is_detected_on_open(tmp_path: Path) -> None:
    with DurableStorage(tmp_path / "g") as store:
        store.save(None, batch(1, 10, 1, 10))
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        db.execute("DELETE FROM entries WHERE idx = 5")
    with pytest.raises(StorageError, match="not contiguous"):
        DurableStorage(tmp_path / "g")


def test_an_unknown_format_version_is_refused(tmp_path: Path) -> None:
    DurableStorage(tmp_path / "g").close()
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StorageError, match="format version 99"):
        DurableStorage(tmp_path / "g")


def test_after_a_failed_write_the_store_refuses_use_until_reopened(tmp_path: Path) -> None:
    store = DurableStorage(tmp_path / "g")
    store.save(HardState(1), batch(1, 3, 1, 10))
    assert store._db is not None
    store._db.close()  # stands in for an I/O error under the connection
    with pytest.raises(StorageError) as info:
        store.save(None, batch(4, 1, 1, 10))
    assert isinstance(info.value.__cause__, sqlite3.Error)
    with pytest.raises(StorageError, match="reopen"):
        store.last_index()
    store.close()
    with DurableStorage(tmp_path / "g") as again:
        assert again.last_index() == 3


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    with DurableStorage(tmp_path / "g") as store:
        store.save(None, batch(1, 5, 2, 10))
        with pytest.raises(UsageError, match="gap"):
            store.save(None, batch(7, 1, 2, 10))
        with pytest.raises(UsageError, match="contiguous"):
            store.save(None, [Entry(6, 2), Entry(8, 2)])
        with pytest.raises(UsageError, match="terms decrease"):
            store.save(None, [Entry(6, 3), Entry(7, 2)])
        with pytest.raises(UsageError, match="below 2"):
            store.save(None, [Entry(6, 1)])
        with pytest.raises(UsageError, match="term"):
            store.compact(Snapshot(SnapshotMeta(3, 1)))
        with pytest.raises(UsageError):
            store.entries(4, 3)
        with pytest.raises(UsageError):
            DurableStorage(tmp_path / "h", cache_entries=0)
        store.compact(Snapshot(SnapshotMeta(3, 2)))
        with pytest.raises(Compacted):
            store.save(None, [], Snapshot(SnapshotMeta(2, 2, ConfState(("a",)))))
        assert store.last_index() == 5


def test_old_entries_beyond_the_cache_are_read_from_the_database(tmp_path: Path) -> None:
    with DurableStorage(tmp_path / "g", cache_entries=8, cache_bytes=1 << 20) as store:
        for lo in range(1, 200, 10):
            store.save(None, batch(lo, 10, 1 + lo // 50, 30))
        everything = store.entries(1, 201)
        assert [e.index for e in everything] == list(range(1, 201))
        assert store.entries(3, 201, max_bytes=95) == everything[2:5]
        assert store.term(1) == 1
        assert store.term(200) == 4


def test_readers_in_other_threads_see_consistent_states_during_saves(tmp_path: Path) -> None:
    store = DurableStorage(tmp_path / "g", cache_entries=16)
    done = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        seen = 0
        while not done.is_set():
            last = store.last_index()
            if last < seen:
                problems.append(f"last index went back from {seen} to {last}")
            seen = last
            if last:
                lo = max(store.first_index(), last - 40)
                got = store.entries(lo, last + 1)
                if [e.index for e in got] != list(range(lo, last + 1)):
                    problems.append(f"entries({lo}, {last + 1}) returned {len(got)} entries")
                if got and got[-1].term != store.term(last):
                    problems.append(f"term({last}) disagrees with the entry")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for lo in range(1, 400, 8):
            store.save(HardState(1), batch(lo, 8, 1, 50))
    finally:
        done.set()
        thread.join()
        store.close()
    assert problems == []


def snap_files(path: Path) -> list[str]:
    return sorted(f.name for f in path.iterdir() if f.name.startswith(SNAP_PREFIX))


def compacted_store(path: Path, upto: int = 30, at: int = 20) -> DurableStorage:
    store = DurableStorage(path)
    store.save(HardState(1), batch(1, upto, 1, 10))
    store.compact(Snapshot(SnapshotMeta(at, 1, ConfState(("a",))), b"state@%d" % at))
    return store


def test_a_snapshot_lives_in_its_own_file_and_replaces_the_previous_one(tmp_path: Path) -> None:
    store = compacted_store(tmp_path / "g")
    first = snap_files(tmp_path / "g")
    assert len(first) == 1
    store.compact(Snapshot(SnapshotMeta(25, 1, ConfState(("a",))), b"state@25"))
    assert len(snap_files(tmp_path / "g")) == 1
    assert snap_files(tmp_path / "g") != first
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        assert db.execute("SELECT length(data) FROM snapshot").fetchone() == (0,)
    store.close()
    with DurableStorage(tmp_path / "g") as again:
        assert again.snapshot() == Snapshot(SnapshotMeta(25, 1, ConfState(("a",))), b"state@25")
        assert again.first_index() == 26
        # An installed snapshot (a follower's) also moves to a file; the old one goes.
        again.save(None, [], Snapshot(SnapshotMeta(40, 2, ConfState(("a", "b"))), b"leader's"))
        assert again.snapshot().data == b"leader's"
        assert len(snap_files(tmp_path / "g")) == 1


def test_files_left_by_a_crash_are_deleted_on_open(tmp_path: Path) -> None:
    compacted_store(tmp_path / "g").close()
    (kept,) = snap_files(tmp_path / "g")
    (tmp_path / "g" / f"{SNAP_PREFIX}{99:016x}-7.bin.tmp").write_bytes(b"torn")
    (tmp_path / "g" / f"{SNAP_PREFIX}{98:016x}-6.bin").write_bytes(b"never recorded")
    with DurableStorage(tmp_path / "g") as store:
        assert snap_files(tmp_path / "g") == [kept]
        assert store.snapshot().data == b"state@20"
        store.compact(Snapshot(SnapshotMeta(30, 1, ConfState(("a",))), b"state@30"))
        (newer,) = snap_files(tmp_path / "g")
        assert newer != kept


def test_a_damaged_or_missing_snapshot_file_is_a_storage_error(tmp_path: Path) -> None:
    compacted_store(tmp_path / "g").close()
    (name,) = snap_files(tmp_path / "g")
    (tmp_path / "g" / name).write_bytes(b"state@21")  # same length, other bytes
    with DurableStorage(tmp_path / "g") as store, pytest.raises(StorageError, match="bad CRC"):
        store.snapshot()
    (tmp_path / "g" / name).unlink()
    with pytest.raises(StorageError, match="missing"):
        DurableStorage(tmp_path / "g")


def test_a_version_1_store_with_an_inline_snapshot_opens_and_migrates(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        db.executescript(_SCHEMA)
        db.execute("UPDATE snapshot SET idx = 5, term = 1, voters = '[\"a\"]', data = x'0102'")
        db.executemany("INSERT INTO entries VALUES (?, 1, 0, x'')", [(i,) for i in (6, 7, 8)])
        db.execute("PRAGMA user_version = 1")
    with DurableStorage(tmp_path / "g") as store:
        assert store.snapshot() == Snapshot(SnapshotMeta(5, 1, ConfState(("a",))), b"\x01\x02")
        assert (store.first_index(), store.last_index()) == (6, 8)
        store.compact(Snapshot(SnapshotMeta(7, 1, ConfState(("a",))), b"new"))
    with DurableStorage(tmp_path / "g") as store:
        assert store.snapshot().data == b"new"
        assert (store.first_index(), store.term(7)) == (8, 1)
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (FORMAT_VERSION,)


def test_a_version_2_store_migrates_and_then_keeps_entries_behind_snapshots(
    tmp_path: Path,
) -> None:
    # Version 2 had no compaction point: the entries after the snapshot were all it held.
    (tmp_path / "g").mkdir()
    name = f"{SNAP_PREFIX}{5:016x}-3.bin"
    (tmp_path / "g" / name).write_bytes(b"v2 state")
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        db.executescript(_SCHEMA + _MIGRATIONS[2])
        db.execute(
            "UPDATE snapshot SET idx = 5, term = 1, voters = '[\"a\"]', file = ?, crc = ?",
            (name, zlib.crc32(b"v2 state")),
        )
        db.executemany("INSERT INTO entries VALUES (?, ?, 0, x'')", [(6, 1), (7, 1), (8, 2)])
        db.execute("PRAGMA user_version = 2")
    with DurableStorage(tmp_path / "g") as store:
        assert store.snapshot() == Snapshot(SnapshotMeta(5, 1, ConfState(("a",))), b"v2 state")
        assert (store.first_index(), store.last_index(), store.term(5)) == (6, 8, 1)
        with pytest.raises(Compacted):
            store.term(4)
        store.compact(Snapshot(SnapshotMeta(8, 2, ConfState(("a",))), b"at 8"), keep=2)
    with DurableStorage(tmp_path / "g") as store:
        assert store.snapshot_meta() == SnapshotMeta(8, 2, ConfState(("a",)))
        assert (store.first_index(), store.last_index(), store.term(6)) == (7, 8, 1)
        assert [e.term for e in store.entries(7, 9)] == [1, 2]
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (FORMAT_VERSION,)
        assert db.execute("SELECT compact_idx, compact_term FROM snapshot").fetchone() == (6, 1)


def test_missing_entries_behind_the_snapshot_are_a_storage_error(tmp_path: Path) -> None:
    store = DurableStorage(tmp_path / "g")
    store.save(HardState(1), batch(1, 30, 1, 10))
    store.compact(Snapshot(SnapshotMeta(20, 1, ConfState(("a",))), b"s"), keep=5)
    store.close()
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        db.execute("DELETE FROM entries WHERE idx > 18")  # the log must reach the snapshot
    with pytest.raises(StorageError, match="snapshot at 20"):
        DurableStorage(tmp_path / "g")
    with sqlite3.connect(tmp_path / "g" / DB_NAME) as db:
        db.execute("DELETE FROM entries WHERE idx = 16")  # the first kept entry is gone
    with pytest.raises(StorageError, match="not contiguous after the compaction point 15"):
        DurableStorage(tmp_path / "g")


def test_saves_do_not_wait_while_a_snapshot_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DurableStorage(tmp_path / "g")
    store.save(HardState(1), batch(1, 10, 1, 10))
    writing, release = threading.Event(), threading.Event()
    write_file = store._write_file

    def slow_write(snapshot: Snapshot) -> tuple[str, int]:
        writing.set()
        assert release.wait(30)
        return write_file(snapshot)

    monkeypatch.setattr(store, "_write_file", slow_write)
    compaction = threading.Thread(
        target=store.compact, args=(Snapshot(SnapshotMeta(8, 1, ConfState(("a",))), b"s"),)
    )
    compaction.start()
    try:
        assert writing.wait(30)
        store.save(HardState(1, None, 10), batch(11, 5, 1, 10))  # would hang if it waited
        assert store.last_index() == 15
    finally:
        release.set()
        compaction.join()
    assert store.first_index() == 9
    store.close()


def test_readers_of_the_snapshot_never_see_a_deleted_file(tmp_path: Path) -> None:
    store = DurableStorage(tmp_path / "g")
    store.save(HardState(1), batch(1, 200, 1, 10))
    done = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not done.is_set():
            try:
                snap = store.snapshot()
            except StorageError as exc:
                problems.append(repr(exc))
                return
            if snap.meta.index and snap.data != b"state@%d" % snap.meta.index:
                problems.append(f"data {snap.data!r} at {snap.meta.index}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for at in range(1, 200, 3):
            store.compact(Snapshot(SnapshotMeta(at, 1, ConfState(("a",))), b"state@%d" % at))
    finally:
        done.set()
        thread.join()
        store.close()
    assert problems == []
