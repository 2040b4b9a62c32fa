"""SIGKILL a process in the middle of writing its Raft log, many times: every acknowledged write
survives with its content, the log stays contiguous, and a torn WAL tail is discarded on open.

A child (``store_writer.py``) follows a seeded plan of saves (batches, suffix overwrites by a new
term, compactions that keep some entries behind their snapshot, installed snapshots) and prints
``ack n`` after each returns. The test kills it after a random number of acks plus a random delay,
sometimes appends a torn tail to the WAL (random bytes, or a partial copy of the last frames: right
salt, broken checksum chain), then reopens the store. Because the plan is deterministic, the store
must equal the model after exactly the acknowledged operations, or after one more (committed but
killed before the ack).
``EMBER_SEED=<n>`` replays a run's decisions (the plans, kill points in acks, tears); where
within a save the kill lands depends on timing.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ember.consensus._store import DB_NAME, SNAP_PREFIX, DurableStorage

from .store_writer import LogModel, plan

ROOT = Path(__file__).resolve().parents[2]
BOUND = 30.0  # generous: a shared, small machine


def _seed() -> int:
    return int(os.environ.get("EMBER_SEED", random.randrange(2**32)))


def _tear_wal(wal: Path, rng: random.Random) -> str:
    size = wal.stat().st_size if wal.exists() else 0
    if size <= 32:  # no frame yet (only the WAL header, or no WAL)
        return "no frames"
    with wal.open("ab") as f:
        if rng.random() < 0.5:
            f.write(rng.randbytes(rng.randint(1, 6000)))
            return "random tail"
        # A partial copy of the last frames (header of each carries the live salt).
        with wal.open("rb") as r:
            r.seek(max(32, size - rng.randint(100, 9000)))
            chunk = r.read()
        f.write(chunk[: rng.randint(1, len(chunk))])
        return "copied tail"


def _round(store_dir: Path, child_seed: int, rng: random.Random) -> tuple[int, str]:
    """Run the writer, kill it with SIGKILL; return the number of acks and how the tail was torn."""
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    errors = store_dir.parent / "writer.stderr"
    with errors.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.store_writer",
                str(store_dir),
                str(child_seed),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    acks = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + BOUND
        line = proc.stdout.readline()
        assert line == "ready\n", f"writer said {line!r}: {errors.read_text()}"
        target = rng.randint(0, 80)
        while acks < target:
            line = proc.stdout.readline()
            assert line.startswith("ack "), f"writer said {line!r}: {errors.read_text()}"
            acks = int(line.split()[1])
            assert time.monotonic() < deadline, "writer too slow"
        time.sleep(rng.uniform(0, 0.003))  # lands the kill at a random point of a save
        proc.send_signal(signal.SIGKILL)
        # Through the same buffered reader: lines it already buffered count too.
        rest = proc.stdout.read()
        proc.wait(timeout=BOUND)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait(timeout=BOUND)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, errors.read_text()
    for line in rest.splitlines():
        acks = int(line.split()[1])
    torn = _tear_wal(store_dir / (DB_NAME + "-wal"), rng) if rng.random() < 0.5 else "intact"
    return acks, torn


def _crash_rounds(tmp_path: Path, rounds: int) -> None:
    seed = _seed()
    print(f"EMBER_SEED={seed}")
    rng = random.Random(seed)
    store_dir = tmp_path / "raft" / "g1"
    model = LogModel()
    total_acks = 0
    outcomes: dict[str, int] = {}
    for r in range(rounds):
        child_seed = rng.randrange(2**32)
        acks, torn = _round(store_dir, child_seed, rng)
        total_acks += acks
        ops = plan(child_seed, model)
        for _ in range(acks):
            model.apply(next(ops))
        after_next = copy.deepcopy(model)
        after_next.apply(next(ops))
        with DurableStorage(store_dir) as store:
            files = sorted(f.name for f in store_dir.glob(f"{SNAP_PREFIX}*"))
            assert len(files) <= 1, f"EMBER_SEED={seed} round {r}: stray snapshot files {files}"
            why = model.mismatch(store)
            if why is not None:
                why_next = after_next.mismatch(store)
                assert why_next is None, (
                    f"EMBER_SEED={seed} round {r} ({acks} acks, {torn}): store matches neither "
                    f"the acknowledged state ({why}) nor the next one ({why_next})"
                )
                model = after_next
            outcome = f"{torn}, {'unacknowledged op committed' if why else 'acknowledged state'}"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"{rounds} rounds, {total_acks} acks, last index {model.last}: {outcomes}")
    assert total_acks > rounds  # the kills did land in the middle of real work
    assert model.last > 0


def test_sigkill_mid_write_loses_no_acknowledged_write(tmp_path: Path) -> None:
    _crash_rounds(tmp_path, rounds=20)


@pytest.mark.slow
def test_sigkill_mid_write_soak(tmp_path: Path) -> None:
    _crash_rounds(tmp_path, rounds=300)
