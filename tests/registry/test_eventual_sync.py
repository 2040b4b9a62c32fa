"""The eventual tier's sync signal, the registry's vote in ``/readyz``: a node that joins is not
ready until it has pulled a peer's full state, nor after a partition heals until it has pulled
the state of the peers that came back."""

from __future__ import annotations

import asyncio

from registrykit import Sleeper

from ember import Node
from ember.mesh import MemberStatus
from ember.registry import RegistryConfig
from ember.registry._eventual import EventualTier
from ember.registry._metrics import NamesProbe
from ember.registry._sync import SyncState
from ember.testing import SimCluster, SimNetwork

# Delays on the wire and small exchanges (a few shards each): a pull takes many round trips,
# so the polls below see it under way.
SLOW_PULL = {"registry": RegistryConfig.local(anti_entropy_limit=8)}


def failed(node: Node, *peers: str) -> bool:
    """``node`` has declared every one of ``peers`` failed."""
    status = {m.name: m.status for m in node.members()}
    return all(status.get(p) is MemberStatus.FAILED for p in peers)


def tier(node: Node) -> EventualTier:
    eventual = node.names.tiers["eventual"]
    assert isinstance(eventual, EventualTier)
    return eventual


async def watch_readiness(
    node: Node, complete: int, within: float = 30.0
) -> list[tuple[bool, str]]:
    """Poll ``node``'s readiness every simulated millisecond until it is synced with a peer;
    every time it says so it must see all ``complete`` eventual names. Returns the polls."""
    probe = NamesProbe(node.names)
    polls: list[tuple[bool, str]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        ok, detail = probe.ready()
        polls.append((ok, detail))
        if ok and "synced" in detail:
            assert len(node.names.registered("eventual")) == complete, (detail, polls[-5:])
            return polls
        await asyncio.sleep(0.001)
    raise AssertionError(f"{node.name} never synced: {polls[-3:]}")


def test_sync_state_needs_one_pull_after_start_and_one_per_peer_back_from_a_failure() -> None:
    sync = SyncState()
    assert sync.check([]) == (True, "no live peer to pull from")
    assert sync.check(["b"])[0] is False
    sync.pulled("b")
    assert sync.check(["b", "c"]) == (True, "synced (last pulled from b)")
    sync.lost("c")
    sync.lost("d")
    assert sync.check(["b"])[0] is True  # they owe a pull, but are not back yet
    ok, detail = sync.check(["b", "c", "d"])
    assert not ok and detail.endswith("c, d")
    sync.pulled("b")  # a peer that never went away does not make up for them
    assert sync.check(["b", "c", "d"])[0] is False
    sync.pulled("c")
    sync.forget("d")  # d left: nothing is owed by it
    assert sync.check(["b", "c", "d"])[0] is True
    ok, detail = sync.check(["b", "c"], hidden=["c"])  # pulled, but the mesh still hides it
    assert not ok and detail.endswith("hidden as failed: c")


def test_our_complete_answer_and_the_peers_shards_back_make_a_pull() -> None:
    sync = SyncState()
    sync.returned("b")  # shards back for an answer we did not give: nothing
    assert not sync.check(["b"])[0]
    sync.answered("b", complete=False)  # more shards differ: another exchange follows
    sync.returned("b")
    assert not sync.check(["b"])[0]
    sync.answered("b", complete=True)
    sync.returned("b")
    assert sync.check(["b"]) == (True, "synced (last pulled from b)")


async def test_a_joining_node_is_not_ready_until_it_has_pulled_the_full_state() -> None:
    net = SimNetwork(seed=41, delay=(0.002, 0.004))
    async with SimCluster(["a", "b"], seed=41, network=net, node_options=SLOW_PULL) as sim:
        a = sim.node("a")
        for i in range(200):
            await a.names.register(("w", i), await a.spawn(Sleeper), tier="eventual")
        await sim.wait_for(
            lambda: len(sim.node("b").names.registered("eventual")) == 200, what="b has all"
        )
        await sim.wait_for(lambda: NamesProbe(sim.node("b").names).ready()[0], what="b ready")
        late = await sim.add("late")
        polls = await watch_readiness(late, complete=200)
        assert any(not ok for ok, _ in polls), polls[:3]  # it was seen not ready, pulling
        assert any("has not pulled" in detail for _, detail in polls)


async def test_after_a_heal_a_node_is_not_ready_until_it_has_pulled_the_other_side() -> None:
    net = SimNetwork(seed=42, delay=(0.002, 0.004))
    async with SimCluster(["a", "b", "c"], seed=42, network=net, node_options=SLOW_PULL) as sim:
        a, b = sim.node("a"), sim.node("b")
        await sim.wait_for(lambda: NamesProbe(a.names).ready()[0], what="a ready")
        sim.partition({"a"}, {"b", "c"})
        await sim.wait_for(
            lambda: failed(a, "b", "c") and failed(b, "a"),
            what="split",
            timeout=60,
        )
        # Alone on its side, a has no live peer to pull from: it counts as synced.
        assert NamesProbe(a.names).ready() == (True, "eventual tier: no live peer to pull from")
        for i in range(100):
            await b.names.register(("split", i), await b.spawn(Sleeper), tier="eventual")
        assert len(a.names.registered("eventual")) == 0
        sim.heal()
        polls = await watch_readiness(a, complete=100, within=60)
        assert any("back after a failure" in detail for ok, detail in polls if not ok), polls[:3]


async def test_an_answer_in_step_completes_the_askers_sync() -> None:
    # No periodic rounds: only the exchange started here runs, and b has nothing to send but
    # the answer that the two are in step.
    options = {"registry": RegistryConfig.local(anti_entropy_interval=10_000.0)}
    async with SimCluster(["a", "b"], seed=43, node_options=options) as sim:
        ta = tier(sim.node("a"))
        await sim.wait_for(lambda: ta.synced()[0], what="a synced after the start")
        ta.sync = SyncState()  # as if it had just started
        assert not ta.synced()[0]
        ta._send_digests("b")
        await sim.wait_for(lambda: ta.synced()[0], what="a synced by b's answer", timeout=5)
        assert ta.synced() == (True, "synced (last pulled from b)")
