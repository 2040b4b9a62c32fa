"""The durable Raft log: ``DurableStorage.save`` against a raw append + fsync, fsync on.

``python -m bench.raft_store [--quick] [--dir DIR] [--reps N]`` prints one JSON object.

For each batch size (1, 16, 64, 256 entries of 100 bytes) it measures, interleaved round-robin
so the drifts of a shared machine hit every variant alike:

- ``durable``: ``DurableStorage.save(HardState, batch)``: one SQLite transaction in WAL mode with
  ``synchronous=FULL`` (one WAL fsync per save, plus the periodic checkpoint's syncs);
- ``sqlite_bare``: the same inserts and one hard-state update through a bare ``sqlite3``
  connection with the same pragmas, without the store's checks and caches (the store's own cost);
- ``raw_append``: the floor for any design: each entry framed as ``index, term, length, crc32`` +
  data, the batch written with one ``os.write`` to a file opened ``O_APPEND``, then ``os.fsync``
  (what an append-only segment log does per batch, before any index, rotation or recovery);
- ``raw_prealloc``: the same frames ``pwrite``-n into a zero-filled, fsynced file and made
  durable with ``os.fdatasync``: no size or extent change, so the cheapest sync there is.

Reported: saves/s (median over reps), entries/s, p50/p99 latency of one call in ms (over all
calls), and ratios of durable to each baseline. The machine is shared and its disk is virtual:
compare ratios within one run, and expect p99 to carry the host's sync hiccups in every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ember.consensus._store import DurableStorage
from ember.consensus._types import Entry, HardState

from ._util import perf_counter

BATCHES = (1, 16, 64, 256)
ENTRY_BYTES = 100
_FRAME = struct.Struct("<QQII")


class Variant:
    """One way of persisting a batch; ``save(batch)`` must be durable when it returns."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.next_index = 1

    def batch(self, n: int) -> list[Entry]:
        lo = self.next_index
        self.next_index += n
        return [Entry(i, 1, data=os.urandom(ENTRY_BYTES)) for i in range(lo, lo + n)]

    def save(self, entries: list[Entry]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Durable(Variant):
    def __init__(self, directory: Path) -> None:
        super().__init__("durable", directory)
        self.store = DurableStorage(directory)

    def save(self, entries: list[Entry]) -> None:
        self.store.save(HardState(1, "n1", entries[0].index - 1), entries)

    def close(self) -> None:
        self.store.close()


class SqliteBare(Variant):
    def __init__(self, directory: Path) -> None:
        super().__init__("sqlite_bare", directory)
        directory.mkdir(parents=True)
        self.db = sqlite3.connect(directory / "bare.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER, type INTEGER, data BLOB)"
        )
        self.db.execute("CREATE TABLE hs (id INTEGER PRIMARY KEY, term, vote, commit_idx)")
        self.db.execute("INSERT INTO hs VALUES (0, 0, NULL, 0)")

    def save(self, entries: list[Entry]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?)",
            [(e.index, e.term, int(e.type), e.data) for e in entries],
        )
        db.execute("UPDATE hs SET term = 1, vote = 'n1', commit_idx = ?", (entries[0].index,))
        db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


class RawAppend(Variant):
    def __init__(self, directory: Path) -> None:
        super().__init__("raw_append", directory)
        directory.mkdir(parents=True)
        self.fd = os.open(directory / "segment.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def save(self, entries: list[Entry]) -> None:
        os.write(self.fd, _frames(entries))
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class RawPrealloc(RawAppend):
    """``raw_append`` into a zero-filled, fsynced file, overwritten in place (wrapping around)
    with ``pwrite`` + ``os.fdatasync``: the file's size and extents never change, so a sync
    flushes data only, with no filesystem metadata (what etcd's preallocated WAL aims for)."""

    SIZE = 32 << 20

    def __init__(self, directory: Path) -> None:
        Variant.__init__(self, "raw_prealloc", directory)
        directory.mkdir(parents=True)
        self.fd = os.open(directory / "segment.log", os.O_RDWR | os.O_CREAT, 0o644)
        chunk = bytes(1 << 20)
        for _ in range(self.SIZE // len(chunk)):
            os.write(self.fd, chunk)
        os.fsync(self.fd)
        self.offset = 0

    def save(self, entries: list[Entry]) -> None:
        buf = _frames(entries)
        if self.offset + len(buf) > self.SIZE:
            self.offset = 0
        os.pwrite(self.fd, buf, self.offset)
        os.fdatasync(self.fd)
        self.offset += len(buf)


def _frames(entries: list[Entry]) -> bytes:
    return b"".join(
        _FRAME.pack(e.index, e.term, len(e.data), zlib.crc32(e.data)) + e.data for e in entries
    )


def _run(variant: Variant, n_batch: int, calls: int, latencies: list[float]) -> float:
    """``calls`` saves of ``n_batch`` entries; returns the elapsed seconds."""
    batches = [variant.batch(n_batch) for _ in range(calls)]
    start = perf_counter()
    for entries in batches:
        t0 = perf_counter()
        variant.save(entries)
        latencies.append(perf_counter() - t0)
    return perf_counter() - start


def _pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(root: Path, n_batch: int, calls: int, reps: int) -> dict[str, Any]:
    makers: dict[str, Callable[[Path], Variant]] = {
        "durable": Durable,
        "sqlite_bare": SqliteBare,
        "raw_append": RawAppend,
        "raw_prealloc": RawPrealloc,
    }
    variants = {name: make(root / f"{name}-{n_batch}") for name, make in makers.items()}
    latencies: dict[str, list[float]] = {name: [] for name in variants}
    elapsed: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for v in variants.values():  # warm up: create files, first checkpoint state
            _run(v, n_batch, 20, [])
        for _ in range(reps):
            for name, v in variants.items():
                elapsed[name].append(_run(v, n_batch, calls, latencies[name]))
    finally:
        for v in variants.values():
            v.close()
    results: dict[str, Any] = {}
    for name in variants:
        saves = calls / statistics.median(elapsed[name])
        results[name] = {
            "saves_per_s": round(saves, 1),
            "entries_per_s": round(saves * n_batch, 1),
            "p50_ms": round(_pct(latencies[name], 0.50) * 1e3, 3),
            "p99_ms": round(_pct(latencies[name], 0.99) * 1e3, 3),
        }
    d, bare = results["durable"], results["sqlite_bare"]
    raw, pre = results["raw_append"], results["raw_prealloc"]
    return {
        "batch": n_batch,
        "calls_per_rep": calls,
        "results": results,
        "ratios": {
            "durable/raw_append saves_per_s": round(d["saves_per_s"] / raw["saves_per_s"], 3),
            "durable/raw_append p50": round(d["p50_ms"] / raw["p50_ms"], 3),
            "durable/raw_prealloc saves_per_s": round(d["saves_per_s"] / pre["saves_per_s"], 3),
            "durable/raw_prealloc p50": round(d["p50_ms"] / pre["p50_ms"], 3),
            "durable/sqlite_bare saves_per_s": round(d["saves_per_s"] / bare["saves_per_s"], 3),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls: a smoke run")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dir", help="where the files go (default: a temporary directory)")
    args = parser.parse_args(argv)
    calls = 30 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="ember-raft-store-", dir=args.dir) as tmp:
        root = Path(tmp)
        sections = []
        for n in BATCHES:
            print(f"batch {n} ...", file=sys.stderr)
            sections.append(measure(root, n, calls, 1 if args.quick else args.reps))
    out = {
        "name": "raft_store",
        "params": {
            "entry_bytes": ENTRY_BYTES,
            "batches": list(BATCHES),
            "calls_per_rep": calls,
            "reps": 1 if args.quick else args.reps,
            "sqlite": sqlite3.sqlite_version,
            "fsync": True,
        },
        "batches": sections,
    }
    sys.stdout.write(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
