"""A client's requests to a leader that was deposed move to the new leader as soon as one is
known, not when the transport gives up on the old one (issue 9, point 2). Three nodes and a
client node on the simulated network (1-2 ms per hop), in virtual time: the leader's node is
frozen (SIGSTOP) or killed under writers and readers. The clients' stall must be about an
election timeout (before: 3.0 s for a pause, the transport's heartbeat timeout, against 0.7 s
for a kill), and every acknowledged write must be there."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from ember.consensus import (
    Cluster,
    ClusterError,
    OutcomeUnknown,
    ReadTimeout,
    StateMachine,
    apply,
)
from ember.testing import SimCluster
from ember.transport import MemoryNetwork

MEMBERS = ["n0", "n1", "n2"]


async def _stall_after(sim: SimCluster, fault: str) -> tuple[float, dict[str, int], Cluster]:
    """Run 2 writers and a reader, apply ``fault`` to the leader's node, and return the
    longest time without an acknowledged write after it, each key's last value, the handle."""
    cluster = await Cluster.start(nodes=MEMBERS, name="kv", node=sim.node("client"))
    leader = await cluster.wait_for_leader(timeout=30)
    loop = asyncio.get_running_loop()
    acked: list[float] = []
    last: dict[str, int] = {}
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        j = 0
        while not stop.is_set():
            key, request = f"w{w}-{j % 8}", f"w{w}-{j}"
            try:
                await cluster.write({"key": key, "value": j}, request_id=request, timeout=10)
            except OutcomeUnknown:
                continue  # retried with its request id: it applies once
            except ClusterError:
                await asyncio.sleep(0.01)
                continue
            acked.append(loop.time())
            last[key] = j
            j += 1

    async def reader() -> None:
        while not stop.is_set():
            try:
                await cluster.read("w0-0", timeout=10)
            except ReadTimeout:
                pass

    tasks = [asyncio.ensure_future(writer(w)) for w in range(2)]
    tasks.append(asyncio.ensure_future(reader()))
    await asyncio.sleep(0.5)
    fault_at = loop.time()
    if fault == "pause":
        sim.pause(leader)
    else:
        await sim.kill(leader)
    await asyncio.sleep(4.0)
    stop.set()
    await asyncio.gather(*tasks)
    if fault == "pause":
        sim.resume(leader)
    times = [fault_at, *sorted(t for t in acked if t > fault_at)]
    return max(b - a for a, b in itertools.pairwise(times)), last, cluster


@pytest.mark.parametrize("fault", ["pause", "kill"])
async def test_clients_move_to_the_new_leader_within_about_an_election(fault: str) -> None:
    network = MemoryNetwork(11, delay=(0.001, 0.002))
    async with SimCluster([*MEMBERS, "client"], seed=11, network=network) as sim:
        stall, last, cluster = await _stall_after(sim, fault)
        # An election takes 0.5-1 s (ClusterConfig defaults) plus a pre-vote round; the
        # transport's heartbeat timeout (3 s) is what a frozen leader used to cost.
        assert stall < 1.5, f"clients stood still {stall:.2f} s after the {fault}"
        for key, value in last.items():  # every acknowledged write is there
            assert await cluster.read(key, timeout=30) == value
        await cluster.stop()


class Tags(StateMachine):
    """Records every tag applied, in order (a duplicate application shows twice)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"seen": []}

    @apply("tag")
    def tag(self, cmd: dict[str, Any]) -> int:
        self.state["seen"].append(cmd["tag"])
        return len(self.state["seen"])

    def read(self, key: Any) -> Any:
        return self.state[key]


async def test_requests_given_up_on_apply_once_when_the_frozen_leader_resumes() -> None:
    # Paused for less than the heartbeat timeout, the old leader keeps its connections: on
    # resuming it receives the requests its clients gave up on, and (now a follower) forwards
    # them to the new leader. Their sessions are held, so each applies once.
    network = MemoryNetwork(12, delay=(0.001, 0.002))
    async with SimCluster([*MEMBERS, "client"], seed=12, network=network) as sim:
        cluster = await Cluster.start(
            nodes=MEMBERS, name="tags", state_machine=Tags, node=sim.node("client")
        )
        leader = await cluster.wait_for_leader(timeout=30)
        acked: list[str] = []
        stop = asyncio.Event()

        async def writer(w: int) -> None:
            j = 0
            while not stop.is_set():
                tag, request = f"w{w}-{j}", None  # numbered by the handle
                while True:
                    try:
                        await cluster.write({"op": "tag", "tag": tag}, request_id=request)
                        break
                    except OutcomeUnknown as exc:
                        request = exc.request_id  # the same request again
                acked.append(tag)
                j += 1

        tasks = [asyncio.ensure_future(writer(w)) for w in range(3)]
        await asyncio.sleep(0.5)
        sim.pause(leader)
        await asyncio.sleep(2.0)
        sim.resume(leader)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*tasks)
        seen = await cluster.read("seen", timeout=30)
        assert len(seen) == len(set(seen)), sorted(t for t in set(seen) if seen.count(t) > 1)
        assert set(acked) <= set(seen)
        await cluster.stop()
