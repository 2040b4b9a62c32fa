"""The simulated world: whole ember.Nodes (transport, mesh, Raft) on one in-memory network."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ember
from ember.consensus import Cluster, NoLeader, OutcomeUnknown
from ember.mesh import MemberFailed, MemberJoined
from ember.testing import SimCluster, SimNetwork, run
from ember.transport import MemoryNetwork


class Echo(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return ("echo", ember.self().node, msg)


class Watcher(ember.Actor):
    """Monitors a pid and resolves ``downs`` with the reason of its Down."""

    def __init__(self, target: ember.Pid, down: asyncio.Future[Any]) -> None:
        self.target = target
        self.down = down

    async def started(self) -> None:
        ember.monitor(self.target)

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, ember.Down) and not self.down.done():
            self.down.set_result(msg.reason)
        return None


class Events(ember.Actor):
    """Collects the member events of its node."""

    def __init__(self, log: list[tuple[float, str, str]], t0: float) -> None:
        self.log = log
        self.t0 = t0

    async def started(self) -> None:
        ember.current().subscribe_members()  # type: ignore[attr-defined]

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, MemberJoined | MemberFailed):
            now = asyncio.get_running_loop().time() - self.t0
            self.log.append((round(now, 6), type(msg).__name__, msg.member.name))
        return None


def status(sim: SimCluster, viewer: str, name: str) -> str | None:
    """The status of member ``name`` in ``viewer``'s view."""
    return next((m.status.name for m in sim.node(viewer).members() if m.name == name), None)


def test_the_sim_network_is_the_memory_network() -> None:
    assert SimNetwork is MemoryNetwork


async def test_five_nodes_converge_and_call_each_other() -> None:
    async with SimCluster(5, seed=1) as sim:
        assert all(sim.alive_view(n) == set(sim.names) for n in sim.names)
        pid = await sim.node("n3").spawn(Echo)
        assert await sim.node("n0").call(pid, "hi", timeout=1.0) == ("echo", "n3", "hi")
        assert sim.node("n0").address == "n0.sim:7946"
        assert sim.network.datagram_stats.delivered > 0


async def test_a_partition_fails_the_cut_off_node_and_a_heal_brings_it_back() -> None:
    async with SimCluster(["a", "b", "c"], seed=2) as sim:
        sim.partition({"a"}, {"b", "c"})
        await sim.wait_for(lambda: "a" not in sim.alive_view("b"), what="a suspected by b")
        await sim.wait_for(lambda: status(sim, "c", "a") == "FAILED", what="a failed at c")
        assert sim.network.datagram_stats.dropped_partitioned > 0
        sim.heal()
        await sim.wait_converged()


async def test_a_killed_node_is_seen_down_and_a_restart_rejoins_with_a_new_creation() -> None:
    async with SimCluster(["a", "b", "c"], seed=3) as sim:
        pid = await sim.node("c").spawn(Echo)
        down: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await sim.node("a").spawn(Watcher, pid, down)
        old_creation = sim.node("c").creation
        await sim.kill("c")
        assert await asyncio.wait_for(down, 10.0) == ember.NOCONNECTION
        await sim.wait_for(
            lambda: all(
                m.status.name == "FAILED" for m in sim.node("a").members() if m.name == "c"
            ),
            what="c failed at a",
        )
        restarted = await sim.restart("c")
        assert restarted.creation == old_creation + 1
        await sim.wait_converged()
        with pytest.raises(ember.NoProc):  # the old pid names nothing in the new incarnation
            await sim.node("a").call(pid, "hi", timeout=1.0)


async def test_a_raft_group_elects_again_after_its_leaders_node_is_killed() -> None:
    async with SimCluster(["a", "b", "c"], seed=4) as sim:
        kv = await Cluster.start(["a", "b", "c"], name="kv", node=sim.node("a"))
        await kv.wait_for_leader()
        await kv.write({"key": "x", "value": 1})
        leader = (await kv.status())["leader"]
        survivor = next(n for n in sim.names if n != leader.partition("#")[0])
        client = Cluster.connect("kv", ["a", "b", "c"], node=sim.node(survivor))
        await sim.kill(leader.partition("#")[0])
        await client.write({"key": "x", "value": 2}, timeout=10.0)
        assert await client.read("x", consistency="linearizable") == 2


async def _trace(seed: int) -> tuple[list[tuple[float, str, str]], Any]:
    log: list[tuple[float, str, str]] = []
    t0 = asyncio.get_running_loop().time()
    async with SimCluster(4, seed=seed, network=MemoryNetwork(seed, drop=0.05)) as sim:
        await sim.node("n0").spawn(Events, log, t0)
        sim.partition({"n0", "n1"}, {"n2", "n3"})
        await asyncio.sleep(8.0)
        sim.heal()
        await sim.wait_converged(60.0)
        await sim.kill("n3")
        await asyncio.sleep(5.0)
        return log, sim.network.datagram_stats


def test_one_seed_replays_the_same_run() -> None:
    # Each run on a fresh loop, as the chaos runner does: the same seed, the same run, event for
    # event (the loop's absolute time changes float rounding, so runs are compared from t=0).
    first, stats_first = run(_trace(11))
    second, stats_second = run(_trace(11))
    assert any(kind == "MemberFailed" for _, kind, _ in first)
    assert first == second
    assert stats_first == stats_second
    other, _ = run(_trace(12))
    assert other != first


async def test_discovery_that_needs_real_sockets_is_refused_on_a_simulated_network() -> None:
    net = MemoryNetwork(seed=5)
    with pytest.raises(ember.UsageError, match="simulated network"):
        await ember.Node("a", network=net, discovery="mdns").start()
    with pytest.raises(ember.UsageError, match="simulated network"):
        ember.Node("b", network=net, listen="127.0.0.1:0")
    with pytest.raises(ember.UsageError, match="simulated network"):
        await ember.Node("c", listen="127.0.0.1:0", cookie="x", discovery="sim").start()


async def test_two_live_nodes_cannot_share_a_name_on_one_network() -> None:
    async with SimCluster(["a"], seed=6) as sim:
        with pytest.raises(ember.UsageError, match="already"):
            await ember.Node("a", network=sim.network, discovery="sim").start()


class Ticker(ember.Actor):
    """Records the loop time of a tick every 0.1 s."""

    def __init__(self, ticks: list[float]) -> None:
        self.ticks = ticks

    async def started(self) -> None:
        ember.send_after(0.1, ember.self(), "tick")

    async def receive(self, msg: Any) -> Any:
        self.ticks.append(asyncio.get_running_loop().time())
        ember.send_after(0.1, ember.self(), "tick")
        return None


async def test_a_paused_node_runs_nothing_until_it_is_resumed() -> None:
    async with SimCluster(["a", "b", "c"], seed=8) as sim:
        ticks: list[float] = []
        await sim.node("b").spawn(Ticker, ticks)
        await asyncio.sleep(1.0)
        loop = asyncio.get_running_loop()
        sim.pause("b")
        paused_at = loop.time()
        assert sim.paused() == {"b"}
        await sim.wait_for(lambda: status(sim, "a", "b") == "FAILED", what="b failed at a")
        await asyncio.sleep(1.0)
        resumed_at = loop.time()
        sim.resume("b")
        await asyncio.sleep(1.0)
        assert not [t for t in ticks if paused_at < t < resumed_at]
        assert [t for t in ticks if t > resumed_at]
        assert sim.alive_view("b") == {"b"} or "b" in sim.alive_view("b")
        await sim.wait_converged(60.0)


async def test_a_paused_raft_leader_is_replaced_and_steps_down_when_it_resumes() -> None:
    async with SimCluster(["a", "b", "c"], seed=9) as sim:
        kv = await Cluster.start(["a", "b", "c"], name="kv", node=sim.node("a"))
        await kv.wait_for_leader()
        await kv.write({"key": "x", "value": 1})
        old = (await kv.status())["leader"]
        old_node = old.partition("#")[0]
        old_term = (await kv.status(old))["term"]
        others = [n for n in sim.names if n != old_node]
        client = Cluster.connect("kv", ["a", "b", "c"], node=sim.node(others[0]))
        sim.pause(old_node)
        for _ in range(10):  # the write's id makes a retry safe
            try:
                await client.write({"key": "x", "value": 2}, request_id="w2", timeout=15.0)
                break
            except (OutcomeUnknown, NoLeader):
                continue
        new = (await client.status(others[0]))["leader"]
        assert new != old
        sim.resume(old_node)

        async def stepped_down() -> bool:
            try:
                st = await client.status(old)
            except ember.EmberError:  # its connections are coming back
                return False
            return bool(st["role"] != "leader" and st["term"] > old_term)

        for _ in range(200):
            if await stepped_down():
                break
            await asyncio.sleep(0.05)
        assert await stepped_down()
        assert await client.read("x", consistency="linearizable") == 2
