"""A Raft group across three node processes on loopback (durable storage, fsync on): the test
process joins the mesh as a client node, writes, SIGKILLs the leader's process, writes through
the new leader, restarts the killed node from its data directory and waits until it caught up.
Every wait is on a condition, with generous bounds."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from ember.consensus import Cluster, ClusterError, NoLeader, NotLeader, OutcomeUnknown
from ember.testing._localcluster import LocalCluster

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0


async def write_until_acked(cluster: Cluster, key: str, value: int) -> None:
    """Write with one request id until acknowledged (retries apply at most once)."""
    while True:
        try:
            await cluster.write({"key": key, "value": value}, request_id=key, timeout=5.0)
            return
        except (OutcomeUnknown, NoLeader, NotLeader):  # none of these is a lost write
            await asyncio.sleep(0.05)


async def read_stale(cluster: Cluster, member: str, key: str) -> object:
    try:
        return await cluster.read(key, consistency="stale", member=member, timeout=2.0)
    except (ClusterError, TimeoutError):
        return None


async def test_kill_9_the_leader_process_and_restart_it(tmp_path: Path) -> None:
    procs = LocalCluster(3, workdir=tmp_path, discovery="seeds", cluster=f"r{secrets.token_hex(4)}")
    async with asyncio.timeout(BOUND * 4):
        await procs.start()
        client = await procs.client("client", BOUND)  # sees n1..n3 alive
        try:
            cluster = await Cluster.start(nodes=["n1", "n2", "n3"], name="acct", node=client)
            leader = await cluster.wait_for_leader(timeout=BOUND)
            acked: dict[str, int] = {}
            for i in range(50):
                await write_until_acked(cluster, f"k{i}", i)
                acked[f"k{i}"] = i

            # Writes in flight while the leader's process dies.
            inflight = [
                asyncio.ensure_future(write_until_acked(cluster, f"k{i}", i)) for i in range(50, 80)
            ]
            await asyncio.sleep(0.01)
            procs.kill(leader)
            await procs.wait(leader)
            await asyncio.gather(*inflight)
            acked.update({f"k{i}": i for i in range(50, 80)})
            new_leader = await cluster.wait_for_leader(timeout=BOUND)
            assert new_leader != leader
            for i in range(80, 100):  # the new leader takes writes
                await write_until_acked(cluster, f"k{i}", i)
                acked[f"k{i}"] = i
            for key, value in acked.items():  # no acknowledged write is lost
                assert await cluster.read(key, timeout=10) == value

            # The killed node restarts from disk, resumes its member unasked, and catches up.
            others = [p for n, p in procs.nodes.items() if n != leader]
            await procs.start_node(leader, connect=others)
            while await read_stale(cluster, leader, "k99") != 99:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            snaps = {m: await cluster.state_machine_snapshot(m) for m in ("n1", "n2", "n3")}
            while len(set(snaps.values())) != 1:  # followers apply a bit later
                await asyncio.sleep(0.1)
                snaps = {m: await cluster.state_machine_snapshot(m) for m in ("n1", "n2", "n3")}
            status = await cluster.status(leader)
            assert status["voters"] == ["n1", "n2", "n3"] and status["role"] == "follower"
            assert status["applied"] >= 100
        finally:
            await client.stop()
            await procs.stop()
