"""The eventual tier on whole nodes in the simulated world: propagation, release on exit and on
node failure, conflicts after a partition heals, a late node's full pull, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from registrykit import Sleeper, inside, kill, probe

import ember
from ember import Down, Name, Pid
from ember.registry import RELEASED, NameConflict, NameLost
from ember.testing import SimCluster


def everywhere(sim: SimCluster, name: Any, pid: Pid | None) -> bool:
    return all(n.names.whereis(name, "eventual") == pid for n in sim.nodes.values())


async def test_a_name_is_seen_everywhere_and_reached_by_name() -> None:
    async with SimCluster(["a", "b", "c"], seed=21) as sim:
        a, c = sim.node("a"), sim.node("c")
        pid, box = await probe(a)
        assert await a.names.register("orders", pid, tier="eventual", meta={"v": 1}) is None
        await sim.wait_for(lambda: everywhere(sim, "orders", pid), what="propagated")
        reg = c.names.lookup("orders")
        assert reg is not None and (reg.tier, reg.meta) == ("eventual", {"v": 1})
        c.send(Name("orders"), "hello")
        assert await box.get() == "hello"
        assert "orders" in sim.node("b").names.registered("eventual")
        await kill(a, pid)
        await sim.wait_for(lambda: everywhere(sim, "orders", None), what="released")


async def test_register_a_remote_pid_and_name_taken_anywhere() -> None:
    async with SimCluster(["a", "b"], seed=22) as sim:
        a, b = sim.node("a"), sim.node("b")
        on_b = await b.spawn(Sleeper)
        await a.names.register("svc", on_b, tier="eventual")  # performed on b
        assert b.names.whereis("svc", "eventual") == on_b
        await sim.wait_for(lambda: a.names.whereis("svc") == on_b, what="seen on a")
        other = await a.spawn(Sleeper)
        with pytest.raises(ember.NameTaken) as taken:
            await a.names.register("svc", other, tier="eventual")
        assert taken.value.owner == on_b
        await a.names.register("svc", on_b, tier="eventual")  # the same pid: idempotent
        await a.names.unregister("svc", tier="eventual")
        await sim.wait_for(lambda: everywhere(sim, "svc", None), what="unregistered")
        with pytest.raises(ember.UnknownName):
            await a.names.unregister("svc", tier="eventual")
        dead = await a.spawn(Sleeper)
        await kill(a, dead)
        with pytest.raises(ember.NoProc):
            await b.names.register("late", dead, tier="eventual")


async def test_local_and_global_names_do_not_shadow_each_other() -> None:
    async with SimCluster(["a", "b"], seed=23) as sim:
        a = sim.node("a")
        p, q = await a.spawn(Sleeper), await a.spawn(Sleeper)
        await a.names.register("x", p)
        with pytest.raises(ember.NameTaken) as taken:
            await a.names.register("x", q, tier="eventual")
        assert taken.value.owner == p
        await a.names.register("y", q, tier="eventual")
        with pytest.raises(ember.NameTaken):
            await a.names.register("y", p)


@pytest.mark.parametrize("policy", ["kill", "notify", "function"])
async def test_a_partition_conflict_leaves_one_owner_and_tells_the_loser(policy: str) -> None:
    async with SimCluster(["a", "b", "c"], seed=24) as sim:
        a, c = sim.node("a"), sim.node("c")
        sim.partition({"a", "b"}, {"c"})
        await sim.wait_for(
            lambda: "c" not in sim.alive_view("a") and "a" not in sim.alive_view("c"),
            what="split",
        )
        winner = await a.spawn(Sleeper)
        loser, loser_box = await probe(c)
        told: list[tuple[Any, Pid, Pid]] = []
        how: Any = (lambda *args: told.append(args)) if policy == "function" else policy
        watcher, box = await probe(c)
        await a.names.register("leader", winner, tier="eventual")
        await c.names.register("leader", loser, tier="eventual", on_conflict=how)
        ref = await inside(c, watcher, lambda: ember.monitor(loser))
        assert c.names.whereis("leader") == loser  # each side has its own owner
        sim.heal()
        await sim.wait_for(lambda: everywhere(sim, "leader", winner), what="one owner")
        for node in sim.nodes.values():
            core = node.names.tiers["eventual"].core  # type: ignore[attr-defined]
            assert len(core.claims("leader")) == 1
        if policy == "kill":
            down = await box.get()
            assert isinstance(down, Down) and down.ref == ref
            assert isinstance(down.reason, NameConflict) and down.reason.winner == winner
        elif policy == "notify":
            assert await loser_box.get() == NameLost("leader", winner)
            assert c.process_info(loser) is not None
        else:
            assert told == [("leader", loser, winner)]
        assert c.names.statistics()["eventual"]["conflicts"] == 1


async def test_a_failed_nodes_names_are_released_and_can_be_taken_again() -> None:
    async with SimCluster(["a", "b", "c"], seed=25) as sim:
        a, b = sim.node("a"), sim.node("b")
        pid = await a.spawn(Sleeper)
        await a.names.register("job", pid, tier="eventual")
        await sim.wait_for(lambda: everywhere(sim, "job", pid), what="propagated")
        watcher, box = await probe(b)
        ref = await inside(b, watcher, lambda: b.names.monitor("job"))
        await sim.kill("a")
        assert await box.get(within=60) == Down(ref, pid, RELEASED)
        await sim.wait_for(lambda: everywhere(sim, "job", None), what="released", timeout=60)
        again = await b.spawn(Sleeper)
        await b.names.register("job", again, tier="eventual")
        await sim.wait_for(lambda: everywhere(sim, "job", again), what="taken again")


async def test_a_late_node_pulls_the_full_state() -> None:
    async with SimCluster(["a", "b"], seed=26) as sim:
        a = sim.node("a")
        pids = [await a.spawn(Sleeper) for _ in range(300)]
        for i, pid in enumerate(pids):
            await a.names.register(("w", i), pid, tier="eventual")
        late = await sim.add("late")
        await sim.wait_for(lambda: len(late.names.registered("eventual")) == 300, what="full pull")
        assert late.names.whereis(("w", 7)) == pids[7]


async def test_a_restarted_node_drops_its_old_incarnations_names() -> None:
    async with SimCluster(["a", "b"], seed=27) as sim:
        b = sim.node("b")
        pid = await b.spawn(Sleeper)
        await b.names.register("old", pid, tier="eventual")
        await sim.wait_for(lambda: everywhere(sim, "old", pid), what="propagated")
        a = sim.node("a")
        await sim.kill("b")
        b2 = await sim.restart("b")
        assert b2.creation != b.creation
        fresh = await b2.spawn(Sleeper)
        await b2.names.register("new", fresh, tier="eventual")
        await sim.wait_for(
            lambda: a.names.whereis("new") == fresh and a.names.whereis("old") is None,
            what="old incarnation retired",
            timeout=60,
        )
        assert b2.names.whereis("old") is None


async def test_gossip_alone_carries_a_small_delta() -> None:
    async with SimCluster(["a", "b", "c"], seed=28) as sim:
        a = sim.node("a")
        tier = a.names.tiers["eventual"]
        tier._send = lambda peer, frame: None  # type: ignore[attr-defined]  # no TCP at all
        pid = await a.spawn(Sleeper)
        await a.names.register("by-gossip", pid, tier="eventual")
        await sim.wait_for(lambda: everywhere(sim, "by-gossip", pid), what="gossiped")
        assert a.names.statistics()["eventual"]["gossiped"] >= 1


async def test_wait_for_returns_once_the_name_is_seen_and_times_out_typed() -> None:
    from ember.registry import WaitTimeout

    async with SimCluster(["a", "b"], seed=29) as sim:
        a, b = sim.node("a"), sim.node("b")
        waiter = asyncio.ensure_future(b.names.wait_for("later", "eventual", timeout=30))
        pid = await a.spawn(Sleeper)
        await a.names.register("later", pid, tier="eventual")
        reg = await waiter
        assert (reg.pid, reg.tier) == (pid, "eventual")
        assert (await b.names.wait_for("later")).pid == pid  # already there: at once
        with pytest.raises(WaitTimeout) as err:
            await b.names.wait_for("never", timeout=1.0)
        assert isinstance(err.value, TimeoutError) and isinstance(err.value, ember.EmberError)
        assert b.names._waiters == {}


async def test_a_local_name_for_a_remote_pid_follows_that_process() -> None:
    async with SimCluster(["a", "b"], seed=30) as sim:
        a, b = sim.node("a"), sim.node("b")
        remote, box = await probe(b)
        await a.names.register("there", remote)  # a local name of a, for a process of b
        assert a.names.whereis("there", "local") == remote
        a.send(Name("there", tier="local"), "via a's local name")
        assert await box.get() == "via a's local name"
        with pytest.raises(ember.NameTaken):
            await a.names.register("there", await a.spawn(Sleeper))
        await kill(b, remote)
        await sim.wait_for(lambda: a.names.whereis("there") is None, what="freed on exit")
