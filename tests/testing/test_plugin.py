"""The pytest plugin: async tests run on virtual time, and the node fixtures."""

import asyncio
import time

import pytest

import ember
from ember.testing import VirtualTimeLoop, run_test
from ember.testing._plugin import _NodeRequest


class Echo(ember.Actor):
    async def receive(self, msg):
        return msg


async def test_async_test_runs_on_virtual_time():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    start, real = loop.time(), time.perf_counter()
    await asyncio.sleep(3600)
    assert loop.time() - start == pytest.approx(3600)
    assert time.perf_counter() - real < 1.0


async def test_node_fixture_is_running(node):
    assert isinstance(node, ember.Node)
    pid = await node.spawn(Echo)
    assert await ember.call(pid, "hi") == "hi"


async def test_make_node_gives_independent_nodes(make_node):
    a = await make_node("a")
    b = await make_node("b")
    pa = await a.spawn(Echo)
    pb = await b.spawn(Echo)
    assert pa.node == "a" and pb.node == "b"
    assert await a.call(pa, 1) == 1 and await b.call(pb, 2) == 2


@pytest.mark.ember_realtime
async def test_realtime_marker_uses_a_real_loop():
    assert not isinstance(asyncio.get_running_loop(), VirtualTimeLoop)


def test_nodes_are_stopped_after_the_test():
    seen = []

    class Recorder(ember.Actor):
        def terminate(self, reason):
            seen.append(reason)

    async def body(node):
        await node.spawn(Recorder)

    run_test(body, {"node": _NodeRequest(factory=False)})
    assert seen == ["shutdown"]


def test_a_seed_replays_the_protocol_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    from ember.consensus import Cluster

    runs: list[tuple[str | None, int, float]] = []

    async def elect(node: ember.Node) -> None:
        cluster = await Cluster.start(nodes=3, node=node)
        try:
            await cluster.wait_for_leader(timeout=30)
            status = await cluster.status()
            runs.append((status["leader"], status["term"], asyncio.get_running_loop().time()))
        finally:
            await cluster.stop()

    monkeypatch.setenv("EMBER_SEED", "1234")
    for _ in range(2):
        run_test(elect, {"node": _NodeRequest(factory=False)})
    assert runs[0] == runs[1]  # same leader, term and (virtual) time of election


def test_a_failing_test_carries_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fail(node: ember.Node) -> None:
        raise AssertionError("boom")

    monkeypatch.setenv("EMBER_SEED", "77")
    with pytest.raises(AssertionError) as info:
        run_test(fail, {"node": _NodeRequest(factory=False)})
    assert "EMBER_SEED=77" in "".join(info.value.__notes__)


def test_nodes_a_test_makes_itself_replay_from_the_test_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws: list[tuple[float, float, float]] = []

    async def body() -> None:
        async with ember.Node("a") as a, ember.Node("b") as b, ember.Node("c", seed=5) as c:
            draws.append((a.rng.random(), b.rng.random(), c.rng.random()))

    monkeypatch.setenv("EMBER_SEED", "4321")
    run_test(body, {})
    run_test(body, {})
    monkeypatch.setenv("EMBER_SEED", "4322")
    run_test(body, {})
    first, again, other = draws
    assert first == again  # the same test seed: the same draws, node by node
    assert first[0] != first[1]  # each node's own stream (its name is mixed in)
    assert other[:2] != first[:2] and other[2] == first[2]  # an explicit seed= wins
