"""A group across networked nodes in one process (real loopback TCP, real time): members on
named nodes, a client node with no member, leader node stopped, restarted from its data_dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import ember
from ember.consensus import Cluster, ClusterConfig, ClusterError, NoLeader, OutcomeUnknown
from ember.transport import TransportConfig

pytestmark = pytest.mark.ember_realtime

COOKIE = "raft-test-cookie"


def _fast() -> TransportConfig:
    return TransportConfig(heartbeat_interval=0.05, heartbeat_timeout=0.5)


async def _start(
    name: str, data: Path, peers: list[ember.Node], listen: str = "127.0.0.1:0"
) -> ember.Node:
    connect = [f"{p.name}@{p.address}" for p in peers if p.address]
    node = ember.Node(
        name,
        listen=listen,
        cookie=COOKIE,
        config=_fast(),
        data_dir=data / name,
        connect=connect,
    )
    await node.start()
    return node


async def test_group_across_nodes_survives_the_leader_node(tmp_path: Path) -> None:
    nodes: dict[str, ember.Node] = {}
    client: ember.Node | None = None
    try:
        for name in ("a", "b", "c"):
            nodes[name] = await _start(name, tmp_path, list(nodes.values()))
        client = await _start("client", tmp_path, list(nodes.values()))
        cluster = await Cluster.start(
            nodes=["a", "b", "c"], name="orders", node=client, config=ClusterConfig()
        )
        leader = await cluster.wait_for_leader(timeout=20)
        acked = {}
        for i in range(30):
            await cluster.write({"key": f"k{i}", "value": i}, timeout=10)
            acked[f"k{i}"] = i
        assert (tmp_path / leader / "raft" / "orders" / "member.json").exists()

        stopped = nodes.pop(leader)
        address = stopped.address
        assert address is not None
        await stopped.stop()
        for i in range(30, 40):  # a new leader takes writes
            for _ in range(100):
                try:
                    await cluster.write({"key": f"k{i}", "value": i}, request_id=f"k{i}")
                    break
                except (OutcomeUnknown, NoLeader):
                    await asyncio.sleep(0.05)
            acked[f"k{i}"] = i
        assert await cluster.wait_for_leader(timeout=20) != leader
        for key, value in acked.items():
            assert await cluster.read(key) == value

        # The stopped node restarts from disk, resumes its member unasked and catches up.
        nodes[leader] = await _start(leader, tmp_path, list(nodes.values()), listen=address)
        async with asyncio.timeout(30):
            while True:
                try:
                    if await cluster.read("k39", consistency="stale", member=leader) == 39:
                        break
                except (ClusterError, TimeoutError):  # not connected yet, or not started
                    pass
                await asyncio.sleep(0.05)
        status = await cluster.status(leader)
        assert status["role"] == "follower" and status["voters"] == ["a", "b", "c"]
    finally:
        for node in [client, *nodes.values()]:
            if node is not None:
                await node.stop()
