"""The registry under a random simulation of many nodes: registrations in both global tiers,
process exits, node kills and partitions, then a heal. Afterwards every replica of the eventual
tier holds the same map and no name has two owners; the consistent tier's history is
linearizable and its fencing tokens grow.

The default suite runs 8 nodes; ``-m slow`` runs the issue's 20."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from namesworkload import NamesModel, Recorder, check_tokens, consistent_op
from registrykit import Sleeper

import ember
from ember import Pid
from ember.registry import RegistryConfig, TierUnavailable
from ember.testing import SimCluster, Verdict, check_linearizability

NAMES = [f"name{i}" for i in range(6)]


async def run_simulation(n: int, seed: int, duration: float) -> None:
    rng = random.Random(seed)
    names = [f"n{i:02}" for i in range(n)]
    options = {"registry": RegistryConfig.local(expect=3)}
    async with SimCluster(names, seed=seed, node_options=options) as sim:
        await sim.wait_for(
            lambda: all(
                node.names.statistics()["consistent"]["group_nodes"] for node in sim.nodes.values()
            ),
            what="the system group formed",
            timeout=60,
        )
        rec = Recorder()
        stop = asyncio.Event()
        killed: set[str] = set()
        current: dict[tuple[str, int], Pid] = {}

        async def client(node_name: str, index: int, crng: random.Random) -> None:
            node = sim.node(node_name)
            pid = current[node_name, index] = await node.spawn(Sleeper)
            while not stop.is_set() and node_name in sim.nodes:
                roll = crng.random()
                if roll < 0.05:  # exit: its names go, then a fresh process carries on
                    rec.may_release(pid, NAMES)
                    node.exit(pid, ember.KILL)
                    pid = current[node_name, index] = await node.spawn(Sleeper)
                elif roll < 0.45:
                    await consistent_op(rec, node, pid, crng.choice(NAMES), crng)
                else:
                    await eventual_op(node, pid, crng)
                await asyncio.sleep(crng.uniform(0.01, 0.1))
            if node_name in killed:
                rec.may_release(pid, NAMES)

        tasks = [
            asyncio.create_task(client(name, i, random.Random(rng.getrandbits(32))))
            for name in names
            for i in range(2)
        ]
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        while loop.time() < end:
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            fault = rng.choice(["partition", "partition", "kill"])
            live = sorted(sim.nodes)
            if fault == "kill" and len(killed) < n // 4:
                victim = rng.choice(live)
                killed.add(victim)
                await sim.kill(victim)
            else:
                side = set(rng.sample(live, rng.randint(1, len(live) // 2)))
                # Nodes on either side may be declared failed, which releases their
                # consistent names (those registered before the failure was seen).
                for pid in current.values():
                    rec.may_release(pid, NAMES)
                sim.partition(side)
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                sim.heal()
        sim.heal()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await check_eventual_converged(sim)
        result = check_linearizability(rec.ops, NamesModel(), budget=60.0)
        assert result.verdict is Verdict.OK, result
        check_tokens(rec)
        assert sum(1 for op in rec.ops if op.end is not None) > 20


async def eventual_op(node: ember.Node, pid: Pid, rng: random.Random) -> None:
    name = ("ev", rng.choice(NAMES))
    try:
        if rng.random() < 0.7:
            await node.names.register(name, pid, tier="eventual")
        else:
            await node.names.unregister(name, tier="eventual")
    except (ember.NameTaken, ember.UnknownName, ember.NoProc, TierUnavailable):
        pass


async def check_eventual_converged(sim: SimCluster) -> None:
    """Every live replica holds the same claims, and each name has one owner."""

    def view(node: ember.Node) -> dict[Any, Any]:
        return {
            name: node.names.whereis(name, "eventual") for name in node.names.registered("eventual")
        }

    def converged() -> bool:
        views = [view(node) for node in sim.nodes.values()]
        if any(v != views[0] for v in views):
            return False
        cores = [node.names.tiers["eventual"].core for node in sim.nodes.values()]  # type: ignore[attr-defined]
        return all(len(core.claims(name)) == 1 for core in cores for name in views[0])

    await sim.wait_converged(timeout=120)
    await sim.wait_for(converged, what="eventual replicas converged", timeout=60)
    digests = {tuple(node.names.tiers["eventual"].core.digests()) for node in sim.nodes.values()}  # type: ignore[attr-defined]
    assert len(digests) == 1


async def test_simulation_of_8_nodes() -> None:
    await run_simulation(8, seed=61, duration=8.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [71, 72, 73])
async def test_simulation_of_20_nodes(seed: int) -> None:
    await run_simulation(20, seed=seed, duration=20.0)
