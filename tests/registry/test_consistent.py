"""The consistent tier in the simulated world: the system group forms by itself (once), names
are linearizable and fenced, exits and failed nodes release them through Raft."""

from __future__ import annotations

from typing import Any

import pytest
from registrykit import Sleeper, inside, kill, probe

import ember
from ember import Name, Pid
from ember.registry import SYSTEM_GROUP, RegistryConfig, TierUnavailable
from ember.testing import SimCluster
from ember.transport import MemoryNetwork

FAST = RegistryConfig.local(expect=3)


def cluster(names: Any, seed: int, **kw: Any) -> SimCluster:
    options = {"registry": kw.pop("registry", FAST), **kw.pop("node_options", {})}
    return SimCluster(names, seed=seed, node_options=options, **kw)


def members(sim: SimCluster) -> dict[str, Any]:
    """Each live node's member of the system group (None for none)."""
    out = {}
    for name, node in sim.nodes.items():
        member = node.service("raft").members.get((SYSTEM_GROUP, name))
        out[name] = member if member is not None and member.running else None
    return out


async def formed(sim: SimCluster, voters: int = 3) -> None:
    def ready() -> bool:
        ms = [m for m in members(sim).values() if m is not None]
        leaders = {m.leader for m in ms}
        return len(ms) >= voters and len(leaders) == 1 and None not in leaders

    await sim.wait_for(ready, what="the system group formed", timeout=60)


def everywhere(sim: SimCluster, name: Any, pid: Pid | None) -> bool:
    return all(n.names.whereis(name, "consistent") == pid for n in sim.nodes.values())


async def test_the_group_forms_once_and_names_are_seen_everywhere() -> None:
    async with cluster(["a", "b", "c"], 31) as sim:
        await formed(sim)
        a, c = sim.node("a"), sim.node("c")
        pid, box = await probe(a)
        token = await a.names.register("leader", pid, tier="consistent", meta={"v": 1})
        assert isinstance(token, int) and token > 0
        assert await a.names.register("leader", pid, tier="consistent") == token  # idempotent
        await sim.wait_for(lambda: everywhere(sim, "leader", pid), what="replicated")
        reg = c.names.lookup("leader", "consistent")
        assert reg is not None and (reg.token, reg.meta) == (token, {"v": 1})
        assert await c.names.whereis("leader", consistency="linearizable") == pid
        c.send(Name("leader", tier="consistent"), "hi")
        assert await box.get() == "hi"
        other = await c.spawn(Sleeper)
        with pytest.raises(ember.NameTaken) as taken:
            await c.names.register("leader", other, tier="consistent")
        assert taken.value.owner == pid
        groups = {tuple(m.conf.voters) for m in members(sim).values() if m is not None}
        assert groups == {("a", "b", "c")}


async def test_fenced_sends_reach_only_the_holder_of_that_token() -> None:
    async with cluster(["a", "b", "c"], 32) as sim:
        await formed(sim)
        a, b = sim.node("a"), sim.node("b")
        first, first_box = await probe(b)
        old = await a.names.register("lock", first, tier="consistent")
        assert isinstance(old, int)
        a.send(Name("lock", fence=old), "for the first")
        assert await first_box.get() == "for the first"
        await b.names.unregister("lock", tier="consistent")
        second, second_box = await probe(b)
        new = await b.names.register("lock", second, tier="consistent")
        assert isinstance(new, int) and new > old
        await sim.wait_for(lambda: a.names.whereis("lock") == second, what="a's cache")
        a.send(Name("lock", fence=old), "stale")  # dropped at b, counted
        a.send(Name("lock", fence=new), "fresh")
        assert await second_box.get() == "fresh"
        await sim.wait_for(
            lambda: b.names.statistics()["fenced_drops"] == 1, what="the stale one dropped"
        )
        assert second_box.pending() == [] and first_box.pending() == []


async def test_an_exit_releases_the_name_and_a_failed_node_releases_all_in_one_entry() -> None:
    async with cluster(["a", "b", "c", "d"], 33) as sim:
        await formed(sim)
        a, d = sim.node("a"), sim.node("d")
        pid = await a.spawn(Sleeper)
        await a.names.register("job", pid, tier="consistent")
        await kill(a, pid)
        await sim.wait_for(lambda: everywhere(sim, "job", None), what="released on exit")
        pids = [await d.spawn(Sleeper) for _ in range(20)]
        for i, p in enumerate(pids):
            await d.names.register(("d", i), p, tier="consistent")
        await sim.wait_for(lambda: a.names.whereis(("d", 19)) == pids[19], what="replicated")
        watcher, box = await probe(a)
        ref = await inside(a, watcher, lambda: a.names.monitor(("d", 3)))
        await sim.kill("d")
        down = await box.get(within=60)
        assert down == ember.Down(ref, pids[3], "released")
        await sim.wait_for(
            lambda: not any(a.names.whereis(("d", i)) for i in range(20)), what="all released"
        )
        releases = sum(
            n.names.statistics()["consistent"]["node_releases"] for n in sim.nodes.values()
        )
        assert releases == 1
        again = await a.spawn(Sleeper)
        await a.names.register(("d", 3), again, tier="consistent")


@pytest.mark.parametrize("seed", [41, 42, 43])
async def test_five_nodes_starting_at_once_form_exactly_one_group(seed: int) -> None:
    async with cluster(["e", "d", "c", "b", "a"], seed) as sim:
        await formed(sim)
        await sim.wait_for(
            lambda: all(m is not None for m in members(sim).values()),
            what="the others joined as learners",
            timeout=60,
        )
        ms = members(sim)
        confs = {
            (tuple(sorted(m.conf.voters)), tuple(sorted(m.conf.learners))) for m in ms.values()
        }
        assert len(confs) == 1
        ((voters, learners),) = confs
        assert len(voters) + len(learners) == 5 and len(voters) >= 3
        assert len({m.leader for m in ms.values()}) == 1


async def test_a_client_node_registers_and_looks_up_through_the_others() -> None:
    per_node = {"cl": {"registry": RegistryConfig.local(expect=3, member=False)}}
    async with cluster(["a", "b", "c", "cl"], 34, per_node=per_node) as sim:
        await formed(sim)
        client = sim.node("cl")
        pid = await client.spawn(Sleeper)
        token = await client.names.register("from-client", pid, tier="consistent")
        assert isinstance(token, int)
        await sim.wait_for(lambda: everywhere(sim, "from-client", pid), what="client cache")
        assert members(sim)["cl"] is None
        await kill(client, pid)
        await sim.wait_for(lambda: everywhere(sim, "from-client", None), what="released")


async def test_before_formation_the_tier_is_unavailable() -> None:
    async with cluster(["a", "b"], 35) as sim:  # expect=3: two nodes never form
        a = sim.node("a")
        pid = await a.spawn(Sleeper)
        with pytest.raises(TierUnavailable) as err:
            await a.names.register("x", pid, tier="consistent")
        assert "not formed" in str(err.value)


async def test_a_single_local_node_with_expect_one_forms_a_solo_group() -> None:
    async with ember.Node("solo", registry=RegistryConfig.local(expect=1)) as node:
        pid = await node.spawn(Sleeper)

        async def register() -> int | None:
            for _ in range(100):
                try:
                    return await node.names.register("me", pid, tier="consistent")
                except TierUnavailable:
                    await __import__("asyncio").sleep(0.1)
            return None

        token = await register()
        assert isinstance(token, int)
        assert node.names.whereis("me") == pid


def leader_node(sim: SimCluster) -> str | None:
    for name, member in members(sim).items():
        if member is not None and member.role.name == "LEADER":
            return name
    return None


@pytest.mark.parametrize("seed", [51, 52])
async def test_the_history_is_linearizable_under_leader_loss_and_partitions(seed: int) -> None:
    import asyncio
    import random

    from namesworkload import NamesModel, Recorder, check_tokens, consistent_op

    from ember.testing import Verdict, check_linearizability

    async with cluster(["a", "b", "c", "d", "e"], seed) as sim:
        await formed(sim, voters=5)
        rng = random.Random(seed)
        rec = Recorder()
        names = ["n0", "n1", "n2"]
        stop = asyncio.Event()
        pids: dict[str, list[Pid]] = {}

        async def client(node_name: str, pid: Pid, crng: random.Random) -> None:
            node = sim.node(node_name)
            while not stop.is_set() and node_name in sim.nodes:
                await consistent_op(rec, node, pid, crng.choice(names), crng)
                await asyncio.sleep(crng.uniform(0.0, 0.05))

        tasks = []
        for name in sim.nodes:
            pids[name] = [await sim.node(name).spawn(Sleeper) for _ in range(2)]
            for pid in pids[name]:
                crng = random.Random(rng.getrandbits(32))
                tasks.append(asyncio.create_task(client(name, pid, crng)))
        leaders = []
        for round_ in range(3):
            await asyncio.sleep(1.0)
            await sim.wait_for(lambda: leader_node(sim) is not None, what="a leader")
            leader = leader_node(sim)
            assert leader is not None
            leaders.append(leader)
            if round_ == 1:  # lose the leader's node for good
                for pid in pids[leader]:
                    rec.may_release(pid, names)
                await sim.kill(leader)
            else:  # cut the leader off with one follower: a minority
                other = next(n for n in sim.nodes if n != leader)
                sim.partition({leader, other})
                await asyncio.sleep(2.0)
                sim.heal()
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        result = check_linearizability(rec.ops, NamesModel(), budget=30.0)
        assert result.verdict is Verdict.OK, result
        done = [op for op in rec.ops if op.end is not None and op.input[0] != "release"]
        assert len(done) > 50 and len(set(leaders)) >= 2  # the nemesis did bite
        check_tokens(rec)


async def test_a_process_that_died_while_its_node_was_cut_off_is_released_on_reconnect() -> None:
    from ember.mesh import SwimConfig

    patient = SwimConfig.local(suspicion_mult=12)  # cut off, but not declared failed
    async with cluster(["a", "b", "c", "d"], 36, mesh=patient) as sim:
        await formed(sim)
        d = sim.node("d")
        pid = await d.spawn(Sleeper)
        await d.names.register("cut", pid, tier="consistent")
        await sim.wait_for(lambda: everywhere(sim, "cut", pid), what="replicated")
        sim.partition({"d"})
        await sim.wait_for(
            lambda: "a" not in d.connected_nodes(), what="d's links down", timeout=30
        )
        await kill(d, pid)  # its release cannot commit now: no quorum on d's side
        assert d.names.statistics()["consistent"]["pending_releases"] == 1
        assert sim.node("a").names.whereis("cut") == pid
        sim.heal()
        await sim.wait_for(lambda: everywhere(sim, "cut", None), what="released", timeout=60)
        stats = [n.names.statistics()["consistent"] for n in sim.nodes.values()]
        assert sum(s["node_releases"] for s in stats) == 0  # d's own retried write did it
        assert d.names.statistics()["consistent"]["pending_releases"] == 0


async def test_register_reads_its_own_write_on_every_kind_of_node() -> None:
    """Once register returns, the registering node's cached whereis shows the new owner: on a
    member node (it waits for its own apply) and on a client (its cache takes the entry), even
    while the name moves from a dead owner to a new one."""
    per_node = {"cl": {"registry": RegistryConfig.local(expect=3, member=False)}}
    slow = MemoryNetwork(35, delay=(0.001, 0.03))  # followers and pushes lag the leader's reply
    async with cluster(["a", "b", "c", "cl"], 35, per_node=per_node, network=slow) as sim:
        await formed(sim)
        leader = next(m.leader for m in members(sim).values() if m is not None)
        follower = next(n for n in ("a", "b", "c") if n != leader)
        for node in (sim.node("cl"), sim.node(follower), sim.node("cl")):
            first = await node.spawn(Sleeper)
            name = f"ryw-{node.name}-{first.serial}"
            await node.names.register(name, first, tier="consistent")
            assert node.names.whereis(name, "consistent") == first
            await kill(node, first)
            await sim.wait_for(lambda n=node, k=name: n.names.whereis(k) is None, what="freed")
            second = await node.spawn(Sleeper)
            await node.names.register(name, second, tier="consistent")
            assert node.names.whereis(name, "consistent") == second


async def test_fenced_call_link_and_monitor_are_checked_at_the_owners_node() -> None:
    """The caller's cache may lag (here: its source of changes is cut off while the name
    moves); the owner's node decides, as for a send: a stale token reaches nobody even where
    the caller's cache still shows it, and the current one reaches the holder."""
    per_node = {"a": {"registry": RegistryConfig.local(expect=3, member=False)}}
    nodes = ["a", "b", "c", "o"]
    async with cluster(nodes, 36, per_node=per_node) as sim:
        await formed(sim)
        a, o = sim.node("a"), sim.node("o")
        first, first_box = await probe(o)
        old = await o.names.register("lock", first, tier="consistent")
        await sim.wait_for(lambda: a.names.whereis("lock") == first, what="a's cache")
        source = a.names._consistent._source  # the member whose pushes a's cache follows
        assert source in ("b", "c")  # this seed: not the owner's node
        sim.partition([n for n in nodes if n != source], [source])
        await o.names.unregister("lock", tier="consistent")
        second, second_box = await probe(o)
        new = await o.names.register("lock", second, tier="consistent")
        assert isinstance(old, int) and isinstance(new, int) and new > old
        reg = a.names.lookup("lock", "consistent")
        assert reg is not None and (reg.pid, reg.token) == (first, old)  # a has not seen it
        with pytest.raises(ember.NoProc):
            await a.call(Name("lock", fence=old), "stale call", timeout=5)
        assert await a.call(Name("lock", fence=new), "fresh call", timeout=5) is None
        watcher, box = await probe(a)
        ref = await inside(a, watcher, lambda: ember.monitor(Name("lock", fence=old)))
        down = await box.get()
        assert isinstance(down, ember.Down) and (down.ref, down.reason) == (ref, "noproc")

        def link_stale() -> None:
            ember.trap_exits(True)
            ember.link(Name("lock", fence=old))

        await inside(a, watcher, link_stale)
        exit_signal = await box.get()
        assert isinstance(exit_signal, ember.Exit) and exit_signal.reason == "noproc"
        assert await second_box.get() == "fresh call"
        assert first_box.pending() == [] and second_box.pending() == []
        assert o.names.statistics()["fenced_drops"] >= 3  # the owner's node dropped them
        assert a.names.statistics()["fenced_drops"] == 0


async def test_concurrent_registrations_share_entries_and_each_gets_its_own_outcome() -> None:
    """Group commit: while a write of this node is in flight, its further registrations queue
    and go as one entry; each still gets its own verdict (NameTaken decided in log order) and
    its own fencing token, which fences as any other."""
    import asyncio

    from ember.registry._names_sm import index_of

    per_node = {"cl": {"registry": RegistryConfig.local(expect=3, member=False)}}
    async with cluster(["a", "b", "c", "cl"], 37, per_node=per_node) as sim:
        await formed(sim)
        cl, a = sim.node("cl"), sim.node("a")
        holder, box = await probe(cl)
        pids = [holder, *[await cl.spawn(Sleeper) for _ in range(63)]]
        rival = await cl.spawn(Sleeper)
        results = await asyncio.gather(
            *(cl.names.register(("g", i), p, tier="consistent") for i, p in enumerate(pids)),
            cl.names.register(("g", 0), rival, tier="consistent"),
            return_exceptions=True,
        )
        tokens, rivalry = results[:64], results[64]
        assert all(isinstance(t, int) for t in tokens), tokens
        assert len(set(tokens)) == 64
        assert isinstance(rivalry, ember.NameTaken) and rivalry.owner == holder
        stats = cl.names.statistics()["consistent"]
        assert stats["batched"] == 65 and stats["registered"] == 64
        assert stats["batch_writes"] <= 3  # one alone, then the rest together
        assert len({index_of(t) for t in tokens}) == stats["batch_writes"]
        await sim.wait_for(lambda: everywhere(sim, ("g", 63), pids[63]), what="replicated")
        reg = a.names.lookup(("g", 0), "consistent")
        assert reg is not None and reg.token == tokens[0]
        a.send(Name(("g", 0), fence=tokens[0]), "fenced")
        assert await box.get() == "fenced"
        a.send(Name(("g", 0), fence=tokens[1]), "another name's token")
        await sim.wait_for(lambda: cl.names.statistics()["fenced_drops"] == 1, what="dropped")
        gone = await asyncio.gather(
            *(cl.names.unregister(("g", i), tier="consistent") for i in range(64)),
            cl.names.unregister("never", tier="consistent"),
            return_exceptions=True,
        )
        assert gone[:64] == [None] * 64 and isinstance(gone[64], ember.UnknownName)
        assert cl.names.statistics()["consistent"]["batch_writes"] <= stats["batch_writes"] + 3
        await sim.wait_for(lambda: everywhere(sim, ("g", 5), None), what="unregistered")
        again = await cl.names.register(("g", 1), rival, tier="consistent")
        assert isinstance(again, int) and again > tokens[1]


async def test_the_group_commit_queue_is_bounded_and_refusals_are_counted() -> None:
    import asyncio

    tight = RegistryConfig.local(expect=3, member=False, batch_queue=8)
    async with cluster(["a", "b", "c", "cl"], 38, per_node={"cl": {"registry": tight}}) as sim:
        await formed(sim)
        cl = sim.node("cl")
        pids = [await cl.spawn(Sleeper) for _ in range(20)]
        results = await asyncio.gather(
            *(cl.names.register(("q", i), p, tier="consistent") for i, p in enumerate(pids)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, TierUnavailable)]
        assert len(refused) == 12 and "queue" in str(refused[0])
        assert [isinstance(r, int) for r in results] == [True] * 8 + [False] * 12
        assert cl.names.statistics()["consistent"]["queue_full"] == 12
        assert isinstance(await cl.names.register(("q", 9), pids[9], tier="consistent"), int)
