"""The core over the durable SQLite store: a few simulator scenarios with every member's log in
its own :class:`DurableStorage`, reopened from disk at each restart (the two parts agree on the
``LogStorage`` contract: snapshots replace the log, entries overwrite a conflicting suffix)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from raftkit import ids

from ember.consensus._sim import Simulation
from ember.consensus._store import DurableStorage


class DurableSimulation(Simulation):
    """A restart closes the member's store and opens it again from its directory."""

    def start(self, node_id: str) -> None:
        m = self.members.get(node_id)
        if m is not None and isinstance(m.storage, DurableStorage) and m.node is None:
            path = m.storage.path
            m.storage.close()
            m.storage = DurableStorage(path)
        super().start(node_id)


@pytest.fixture
def durable(tmp_path: Path):  # type: ignore[no-untyped-def]
    stores: list[DurableStorage] = []

    def make(name: str) -> DurableStorage:
        store = DurableStorage(tmp_path / name)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_agreement_crashes_and_restarts_from_disk(durable) -> None:  # type: ignore[no-untyped-def]
    sim = DurableSimulation(ids(3), 81, storage=durable)
    sim.one(b"a", 3)
    for i in ids(3):
        sim.crash(i)
    for i in ids(3):
        sim.restart(i)
    sim.one(b"b", 3)
    leader = sim.wait_leader()
    sim.crash(leader)
    sim.one(b"c", 2)
    sim.restart(leader)
    sim.one(b"d", 3)
    for i in ids(3):
        assert [d for _, d in sim.members[i].applied] == [b"a", b"b", b"c", b"d"]


@pytest.mark.parametrize("keep", [0, 7])
def test_snapshots_and_churn_on_disk(durable, keep: int) -> None:  # type: ignore[no-untyped-def]
    sim = DurableSimulation(
        ids(3),
        82,
        storage=durable,
        snapshot_every=5,
        compaction_keep=keep,
        snapshot_chunk_size=32,
        drop=0.05,
    )
    rng = random.Random(82)
    leader = sim.wait_leader()
    slow = next(i for i in ids(3) if i != leader)
    sim.crash(slow)
    for k in range(25):
        sim.one(b"s%d" % k, 2)
    sim.restart(slow)
    for k in range(30):
        sim.propose(b"c%d" % k)
        victim = rng.choice(ids(3))
        if rng.random() < 0.2:
            sim.crash(victim)
        sim.tick(rng.randint(1, 6))
        sim.restart(victim)
    sim.drop = 0.0
    index = sim.one(b"end", 3, max_ticks=600)
    logs = {tuple(sim.members[i].applied) for i in ids(3)}
    assert len(logs) == 1 and sim.members[slow].last_applied >= index
