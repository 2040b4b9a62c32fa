"""Durable in-process groups: snapshots compact the log, members restart from DurableStorage
(alone, or with the whole node), and a member far behind catches up by snapshot."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import eventually, wait_applied

import ember
from ember.consensus import Cluster, ClusterConfig, ClusterError, DurableStorage, OutcomeUnknown
from ember.consensus._types import Snapshot, StorageError


async def test_snapshot_and_restart_from_disk(tmp_path: Path) -> None:
    config = ClusterConfig(snapshot_every=10, compaction_keep=4)
    async with ember.Node("d", data_dir=tmp_path) as node:
        cluster = await Cluster.start(nodes=3, node=node, name="kv", config=config)
        assert cluster.members == ["d#1", "d#2", "d#3"]
        await cluster.wait_for_leader(timeout=10)
        for i in range(35):
            await cluster.write({"key": f"k{i % 7}", "value": i})
        commit = (await cluster.status())["commit"]
        for m in cluster.members:
            await wait_applied(cluster, m, commit)
        dirs = sorted(p.name for p in (tmp_path / "raft").iterdir())
        assert dirs == ["kv#1", "kv#2", "kv#3"]
    for name in dirs:  # the node stopped: every member compacted behind a snapshot
        with DurableStorage(tmp_path / "raft" / name) as store:
            assert store.snapshot().meta.index >= 30
            assert store.first_index() == store.snapshot().meta.index - 4 + 1  # 4 kept
    async with ember.Node("d", data_dir=tmp_path) as node:  # the members come back by themselves
        cluster = Cluster.connect("kv", ["d#1", "d#2", "d#3"], node=node)
        await cluster.wait_for_leader(timeout=10)
        assert [await cluster.read(f"k{j}") for j in range(7)] == [28, 29, 30, 31, 32, 33, 34]
        for m in cluster.members:
            assert await cluster.read("k6", consistency="stale", member=m) == 34
        assert await cluster.write({"key": "k0", "value": "again"}) == 28


async def test_stopped_member_catches_up_by_snapshot(tmp_path: Path) -> None:
    config = ClusterConfig(snapshot_every=5)
    async with ember.Node("s", data_dir=tmp_path) as node:
        cluster = await Cluster.start(nodes=3, node=node, name="lag", config=config)
        leader = await cluster.wait_for_leader(timeout=10)
        behind = next(m for m in cluster.members if m != leader)
        await cluster.stop_member(behind)
        for i in range(40):  # the others compact past everything the stopped one has
            await cluster.write({"key": "n", "value": i})
        await cluster.restart_member(behind)
        commit = (await cluster.status())["commit"]
        await wait_applied(cluster, behind, commit)
        assert await cluster.read("n", consistency="stale", member=behind) == 39
        st = await cluster.status(behind)
        assert st["role"] == "follower" and st["leader"] == leader


async def test_memory_group_on_a_node_without_data_dir(node: Any) -> None:
    cluster = await Cluster.start(nodes=1, node=node, name="solo")
    assert await cluster.wait_for_leader(timeout=10) == "test#1"
    assert await cluster.write({"key": "a", "value": 1}) is None
    assert node.raft.root is None


@contextlib.asynccontextmanager
async def solo_group(path: Path, snapshot_every: int) -> AsyncIterator[tuple[Cluster, Any]]:
    """A one-member durable group on a node of its own: the handle and the member."""
    async with ember.Node("solo", data_dir=path) as node:
        config = ClusterConfig(snapshot_every=snapshot_every, compaction_keep=0)
        cluster = await Cluster.start(nodes=1, node=node, name="g", config=config)
        await cluster.wait_for_leader(timeout=10)
        yield cluster, node.raft.local_member("g")


async def test_writes_go_on_while_a_compaction_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with solo_group(tmp_path, snapshot_every=5) as (cluster, member):
        compacting, release = threading.Event(), threading.Event()
        compact = member.storage.compact

        def held(snapshot: Snapshot, keep: int) -> None:
            compacting.set()
            assert release.wait(30)
            compact(snapshot, keep)

        monkeypatch.setattr(member.storage, "compact", held)
        try:
            for i in range(5):
                await cluster.write({"key": "k", "value": i})
            assert compacting.wait(30)
            for i in range(5, 20):  # all applied while the first compaction is held
                await cluster.write({"key": "k", "value": i})
            assert member.applied >= 20 and member.storage.first_index() == 1
        finally:
            release.set()

        async def compacted() -> bool:
            return member.storage.first_index() > 5

        await eventually(compacted)
        assert await cluster.read("k") == 19


async def test_a_failed_compaction_fails_the_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with solo_group(tmp_path, snapshot_every=3) as (cluster, member):

        def broken(snapshot: Snapshot, keep: int) -> None:
            raise StorageError("disk full")

        monkeypatch.setattr(member.storage, "compact", broken)
        for i in range(3):  # the compaction (in a thread) may fail the member in the middle
            with contextlib.suppress(OutcomeUnknown):
                await cluster.write({"key": "k", "value": i})

        async def failed() -> bool:
            return member.failure is not None

        await eventually(failed)
        assert isinstance(member.failure, StorageError)
        with pytest.raises(ClusterError):
            await cluster.write({"key": "k", "value": "lost"}, timeout=1)


@pytest.mark.parametrize(("members", "threaded"), [(3, True), (1, False)])
async def test_members_sharing_a_node_save_in_threads(
    tmp_path: Path, members: int, threaded: bool
) -> None:
    """A one-entry save runs on the loop, unless the node runs another member of the group:
    then every save goes to a worker thread, so the members' fsyncs overlap instead of taking
    turns on the loop."""
    async with ember.Node("t", data_dir=tmp_path) as node:
        cluster = await Cluster.start(nodes=members, node=node, name="kv")
        await cluster.wait_for_leader(timeout=10)
        await cluster.write({"key": "k", "value": 0})  # settled: elections and config done
        saved_in: list[bool] = []
        for (group, _), member in node.raft.members.items():
            if group == "kv":
                save = member.storage.save

                def spy(*args: Any, save: Any = save) -> None:
                    saved_in.append(threading.current_thread() is not threading.main_thread())
                    save(*args)

                member.storage.save = spy  # type: ignore[method-assign]
        for i in range(3):
            await cluster.write({"key": "k", "value": i})
        assert len(saved_in) >= 3
        assert set(saved_in) == {threaded}
