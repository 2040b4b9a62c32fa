"""Pipelined dispatch, in the simulated world: a plain step placed on another node goes with the
step after it when that one would be placed there too; the host starts it as soon as the first
succeeds (one round trip for two steps), never when the first fails, and a held step counts as
launched when its node is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ember.contracts import (
    Contract,
    Input,
    Retry,
    RunCancelled,
    RunHandle,
    StepOutcomeUnknown,
    compute,
)
from ember.contracts._coordinator import RunCoordinator
from ember.testing import SimCluster

CALLS: list[str] = []  # the steps that ran, in order


def caps(*names: str) -> dict[str, Any]:
    return {"meta": {"capabilities": list(names)}}


async def warm(sim: SimCluster, *far: str) -> None:
    """Have node a find the step hosts of ``far`` first, so what a paused node then holds up
    is the frame of steps on the wire (not the host's lookup, which sends nothing)."""
    for node in far:
        await sim.node("a").contracts.host_of(node)


async def held(sim: SimCluster, contract: type[Contract], *far: str, **start: Any) -> RunHandle:
    """Start ``contract`` on node a with ``far`` paused (their hosts found first), and wait
    until its first two steps are sent together (held on the wire)."""
    a = sim.node("a")
    await warm(sim, *far)
    for node in far:
        sim.pause(node)
    handle = await contract.start({"x": 0}, node=a, **start)
    await sim.wait_for(lambda: a.contracts.statistics().steps_pipelined == 1, what="s0 and s1 sent")
    return handle


def cluster(**per_node: dict[str, Any]) -> SimCluster:
    nodes = {"a": caps(), "b": caps(), "c": caps("far"), **per_node}
    return SimCluster(list(nodes), seed=5, per_node=nodes)


def chain(cls: str, n: int, **options: Any) -> type[Contract]:
    """Contract ``cls`` (importable from here, as a node resolves it): ``s0 .. s{n-1}``, each
    adding 1 to the one before, on a node offering ``far``; ``options[name]`` are the options
    of step ``name``."""
    body: dict[str, Any] = {"x": Input(int), "__module__": __name__, "__qualname__": cls}
    prev = "x"
    for i in range(n):
        name = f"s{i}"

        def fn(name: str = name, **kw: int) -> int:
            CALLS.append(name)
            return next(iter(kw.values())) + 1

        opts = {"capabilities": "far", **options.get(name, {})}
        body[name] = compute(depends_on=(prev,), **opts)(fn)
        prev = name
    body["outputs"] = (prev,)
    made = globals()[cls] = type(cls, (Contract,), body)
    return made


Five = chain("Five", 5)


Three = chain("Three", 3)
TimedOut = chain("TimedOut", 2, s1={"timeout": 0.5})
HalfIdempotent = chain("HalfIdempotent", 2, s0={"idempotent": True})
Idempotent = chain("Idempotent", 2, s0={"idempotent": True}, s1={"idempotent": True})
TRIES = [0]


class Flaky(Contract):
    x = Input(int)

    @compute(capabilities="far", retry=Retry(attempts=3, initial=1.0))
    def k(x: int) -> int:
        CALLS.append("k")
        TRIES[0] += 1
        if TRIES[0] == 1:
            raise ValueError("first try")
        return x + 1

    @compute(capabilities="far")
    def s(k: int) -> int:
        CALLS.append("s")
        return k * 10

    outputs = ("s",)


class Fan(Contract):
    x = Input(int)

    @compute(capabilities="far")
    def k(x: int) -> int:
        return x + 1

    @compute(capabilities="far")
    def left(k: int) -> int:
        return k * 2

    @compute(capabilities="far")
    def right(k: int) -> int:
        return k * 3

    @compute(capabilities="far")
    def join(left: int, right: int) -> int:
        return left + right

    outputs = ("join",)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many frames coordinators sent to step hosts (one per round trip)."""
    count = [0]
    original = RunCoordinator._send_run

    def counted(self: RunCoordinator, *args: Any) -> None:
        count[0] += 1
        original(self, *args)

    monkeypatch.setattr(RunCoordinator, "_send_run", counted)
    return count


async def test_a_far_chain_sends_two_steps_per_round_trip(sends: list[int]) -> None:
    CALLS.clear()
    async with cluster() as sim:
        a = sim.node("a")
        handle = await Five.start({"x": 0}, node=a)
        assert await handle.result(timeout=30) == {"s4": 5}
        assert CALLS == ["s0", "s1", "s2", "s3", "s4"]
        stats = a.contracts.statistics()
        assert (stats.steps_remote, stats.steps_pipelined) == (5, 2)
        assert sends[0] == 3  # (s0, s1), (s2, s3), s4
        status = await handle.status()
        steps = status.steps
        assert all(steps[f"s{i}"].node == "c" and steps[f"s{i}"].attempts == 1 for i in range(5))
        # a held step starts when the one before it is done (both reported in one reply)
        for first, second in (("s0", "s1"), ("s2", "s3")):
            assert steps[second].started == steps[first].finished
            assert steps[first].started is not None and steps[second].duration == 0.0


async def test_a_step_after_a_failed_one_never_runs_and_is_launched_after_its_retry() -> None:
    CALLS.clear()
    TRIES[0] = 0
    async with cluster() as sim:
        a = sim.node("a")
        handle = await Flaky.start({"x": 1}, node=a)
        assert await handle.result(timeout=30) == {"s": 20}
        assert CALLS == ["k", "k", "s"]
        assert a.contracts.statistics().steps_pipelined == 1  # only with k's first attempt
        steps = (await handle.status()).steps
        assert (steps["k"].attempts, steps["s"].attempts) == (2, 1)
        assert steps["s"].started is not None and steps["k"].finished is not None
        assert steps["s"].started >= steps["k"].finished


async def test_cancel_while_a_step_is_held_cancels_both() -> None:
    CALLS.clear()
    async with cluster() as sim:
        handle = await held(sim, Three, "c", run_id="held")
        assert await handle.cancel("stop")
        with pytest.raises(RunCancelled):
            await handle.result(timeout=10)
        assert (await handle.status()).status == "cancelled"
        sim.resume("c")
        # The frame was on the wire: c runs both steps when it wakes (as it would run one
        # remote plain step sent before a cancel); their reports are ignored, nothing follows.
        await sim.wait_for(lambda: CALLS == ["s0", "s1"], what="the frame ran")
        await asyncio.sleep(1.0)
        assert CALLS == ["s0", "s1"] and (await handle.status()).status == "cancelled"


async def test_a_held_step_times_out_from_its_start_not_its_dispatch() -> None:
    CALLS.clear()
    async with cluster() as sim:
        handle = await held(sim, TimedOut, "c")
        await asyncio.sleep(1.0)  # longer than s1's timeout since its launch
        sim.resume("c")
        assert await handle.result(timeout=30) == {"s1": 2}
        steps = (await handle.status()).steps
        s0, s1 = steps["s0"], steps["s1"]
        assert s0.started is not None and s1.started is not None
        assert s1.started - s0.started >= 1.0 and s1.attempts == 1


async def test_a_node_lost_while_a_step_is_held_there() -> None:
    CALLS.clear()
    # s0 idempotent (run again elsewhere), s1 not: held on the lost node, it may have run
    async with cluster() as sim:
        handle = await held(sim, HalfIdempotent, "c")
        await sim.kill("c")
        with pytest.raises(StepOutcomeUnknown) as err:
            await handle.result(timeout=60)
        assert (err.value.step, err.value.node) == ("s1", "c")
        assert CALLS == []
    # both idempotent: both run again on another node, once each
    CALLS.clear()
    async with cluster(b=caps("far")) as sim:
        handle = await held(sim, Idempotent, "b", "c")
        first = (await handle.status()).steps["s0"].node
        assert first in ("b", "c")
        sim.resume("c" if first == "b" else "b")
        await sim.kill(first)
        assert await handle.result(timeout=60) == {"s1": 2}
        steps = (await handle.status()).steps
        assert CALLS.count("s0") == CALLS.count("s1") == 1
        assert steps["s1"].node == steps["s0"].node != first
        assert steps["s1"].attempts == 1


async def test_a_fan_out_and_a_join_are_not_pipelined() -> None:
    async with cluster() as sim:
        a = sim.node("a")
        assert await Fan.run({"x": 1}, node=a) == {"join": 10}
        assert a.contracts.statistics().steps_pipelined == 0
