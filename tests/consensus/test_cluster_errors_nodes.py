"""Cluster errors across nodes (real loopback TCP, real time): each arrives with its type and
fields, promptly, and none is a transport error in disguise (issue 10)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_cluster_errors import Tally, Unretrieved

import ember
from ember import UsageError
from ember.consensus import (
    Cluster,
    CommandTooLarge,
    GroupExists,
    NodeUnreachable,
    ReadTimeout,
    UnknownGroup,
)
from ember.transport import TransportConfig

pytestmark = pytest.mark.ember_realtime

COOKIE = "raft-errors-cookie"
FAST = TransportConfig(heartbeat_interval=0.05, heartbeat_timeout=0.5)


@contextlib.asynccontextmanager
async def nodes(
    tmp_path: Path,
    *names: str,
    config: TransportConfig = FAST,
    members: TransportConfig = FAST,
) -> AsyncIterator[dict[str, ember.Node]]:
    started: dict[str, ember.Node] = {}
    try:
        for name in names:
            connect = [f"{p.name}@{p.address}" for p in started.values()]
            node = ember.Node(
                name,
                listen="127.0.0.1:0",
                cookie=COOKIE,
                config=config if name == "client" else members,
                data_dir=tmp_path / name,
                connect=connect,
            )
            await node.start()
            started[name] = node
        yield started
    finally:
        for node in reversed(started.values()):
            await node.stop()


async def test_start_on_an_unknown_node_is_node_unreachable_at_once(tmp_path: Path) -> None:
    async with nodes(tmp_path, "a", "b", "client") as ns:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(NodeUnreachable, match="node nosuch is unreachable") as err:
            await Cluster.start(nodes=["a", "b", "nosuch"], name="g", node=ns["client"])
        assert err.value.node == "nosuch"
        assert loop.time() - t0 < 1.0
        # The members on the reachable nodes run; a start without the unknown node finds them.
        cluster = await Cluster.start(nodes=["a", "b"], name="g2", node=ns["client"])
        await cluster.write({"key": "k", "value": 1}, timeout=10)


async def test_remote_errors_keep_their_type(tmp_path: Path) -> None:
    small = FAST.replace(max_frame_size=64 * 1024)
    async with nodes(tmp_path, "a", "b", "c", "client", config=small) as ns:
        client = ns["client"]
        cluster = await Cluster.start(nodes=["a", "b", "c"], name="kv", node=client)
        await cluster.wait_for_leader(timeout=20)
        await cluster.write({"key": "k", "value": 1}, timeout=10)

        with pytest.raises(GroupExists, match=r"on [abc] with state machine") as exists:
            await Cluster.start(nodes=["a", "b", "c"], name="kv", state_machine=Tally, node=client)
        assert exists.value.group == "kv"

        ghost = Cluster.connect("ghost", ["a", "b", "c"], node=client)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(UnknownGroup) as unknown:
            await ghost.write({"key": "k", "value": 1}, timeout=30)
        assert unknown.value.nodes == ["a", "b", "c"] and loop.time() - t0 < 1.0

        # Over the client's own frame limit: refused before anything is sent.
        with pytest.raises(CommandTooLarge, match="max_frame_size") as big:
            await cluster.write({"key": "big", "value": b"x" * 100_000}, timeout=10)
        assert big.value.limit == 64 * 1024
        # Under the frame but over the group's limit, from a handle that does not know it.
        near = Cluster.connect("kv", ["a", "b", "c"], node=client)
        big_config = await Cluster.start(
            nodes=["a", "b", "c"],
            name="small",
            node=client,
            config=ember.consensus.ClusterConfig(max_command_bytes=1000),
        )
        await big_config.wait_for_leader(timeout=20)
        with pytest.raises(CommandTooLarge, match="max_command_bytes") as limited:
            await Cluster.connect("small", ["a", "b", "c"], node=client).write(
                {"key": "k", "value": b"x" * 5000}, timeout=10
            )
        assert limited.value.limit == 1000
        assert await near.read("k") == 1


async def test_a_read_result_that_cannot_be_sent_is_a_usage_error(tmp_path: Path) -> None:
    frame = FAST.replace(max_frame_size=5 << 19)  # 2.5 MiB: room for 1 MiB appends, not 3 MB
    async with nodes(tmp_path, "a", "client", members=frame) as ns:
        cluster = await Cluster.start(
            nodes=["a"], name="odd", state_machine=Tally, node=ns["client"]
        )
        await cluster.wait_for_leader(timeout=20)
        with pytest.raises(UsageError, match="set"):
            await cluster.read("a set", timeout=10)
        with pytest.raises(UsageError, match="max_frame_size"):
            await cluster.read("3 MB", timeout=10)
        assert await cluster.read("n", timeout=10) == 0
        # A group whose largest append would not fit this node's frames is refused there.
        with pytest.raises(UsageError, match="do not fit"):
            await Cluster.start(
                nodes=["a"],
                name="huge",
                node=ns["client"],
                config=ember.consensus.ClusterConfig(max_command_bytes=4 << 20),
            )


async def test_reads_without_quorum_across_nodes_are_read_timeouts(tmp_path: Path) -> None:
    async with nodes(tmp_path, "a", "b", "c", "client") as ns:
        watch = Unretrieved()
        client = ns["client"]
        cluster = await Cluster.start(nodes=["a", "b", "c"], name="rq", node=client)
        leader = await cluster.wait_for_leader(timeout=20)
        await cluster.write({"key": "k", "value": 1}, timeout=10)
        survivor = next(n for n in ("a", "b", "c") if n != leader)
        # Reads in flight while two nodes go: each ends as a ReadTimeout (or a result).
        pending = [asyncio.ensure_future(cluster.read("k", timeout=1.5)) for _ in range(10)]
        await asyncio.sleep(0.01)
        for name in ("a", "b", "c"):
            if name != survivor:
                await ns[name].stop()
        pending += [
            asyncio.ensure_future(cluster.read("k", timeout=1.0, member=member))
            for member in (None, leader, survivor)
        ]
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            assert result == 1 or isinstance(result, ReadTimeout), repr(result)
        assert all(isinstance(r, ReadTimeout) for r in results[-3:]), results[-3:]
        with pytest.raises(NodeUnreachable):
            await cluster.status(leader, timeout=2)
        await asyncio.sleep(0.5)
        watch.check()
