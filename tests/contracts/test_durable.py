"""Durable runs in the simulated world: the run lives in the replicated store (its own Raft
group), so it is reached from every node, a waiting run holds no actor, and a run whose owner
dies is taken over by another node and completes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ember.contracts import (
    Contract,
    ContractsConfig,
    DuplicateEvent,
    Input,
    RunCancelled,
    StepContext,
    StepOutcomeUnknown,
    await_event,
    compute,
)
from ember.contracts._coordinator import RunCoordinator
from ember.testing import SimCluster

LOG: list[Any] = []
STORE = ContractsConfig(store=("a", "b", "c"))


def durable(**kw: Any) -> SimCluster:
    options = {"contracts": kw.pop("contracts", STORE)}
    return SimCluster(["a", "b", "c"], seed=kw.pop("seed", 11), node_options=options, **kw)


def coordinators(sim: SimCluster) -> int:
    name = f"{RunCoordinator.__module__}.{RunCoordinator.__qualname__}"
    total = 0
    for node in sim.nodes.values():
        infos = [node.process_info(p) for p in node.processes()]
        total += sum(1 for i in infos if i is not None and i.behaviour == name)
    return total


class Order(Contract):
    order_id = Input(str)
    amount = Input(int)
    correlate_by = ("order_id",)

    @compute(idempotent=True)
    async def reserved(order_id: str, amount: int, ctx: StepContext) -> str:
        LOG.append(("reserve", ctx.node))
        await asyncio.sleep(2.0)
        return f"{order_id}:{amount}"

    paid = await_event("paid", after=("reserved",))

    @compute
    def receipt(reserved: str, paid: Any) -> str:
        return f"{reserved} paid {paid}"

    outputs = ("receipt",)


async def test_a_durable_run_is_reached_from_any_node() -> None:
    LOG.clear()
    async with durable() as sim:
        a, b, c = (sim.node(n) for n in "abc")
        handle = await Order.start({"order_id": "o1", "amount": 5}, run_id="o1", node=a)
        assert handle.durable and handle.created
        again = await Order.start({"order_id": "o1", "amount": 5}, run_id="o1", node=b)
        assert not again.created  # the run id is the idempotency key, from any node
        await sim.wait_for(lambda: a.contracts.stats.runs_parked == 1, timeout=30, what="waiting")
        status = await c.contracts.status("o1")
        assert status.status == "waiting" and status.waiting_on == ("paid",)
        assert status.owner == "a" and status.durable
        assert coordinators(sim) == 0  # a waiting run holds no actor anywhere
        assert await c.contracts.deliver_event("paid", {"order_id": "o1"}, "12 EUR") == ["o1"]
        with pytest.raises(DuplicateEvent):
            await b.contracts.deliver_event("paid", {"order_id": "o1"}, "13 EUR")
        assert await b.contracts.result("o1", timeout=30) == {"receipt": "o1:5 paid 12 EUR"}
        assert LOG == [("reserve", "a")]
        listed = await b.contracts.runs(contract="Order")
        assert [(r.run_id, r.status) for r in listed] == [("o1", "succeeded")]


async def test_the_owner_dies_mid_step_and_another_node_completes_the_run() -> None:
    LOG.clear()
    async with durable() as sim:
        a = sim.node("a")
        await Order.start({"order_id": "o2", "amount": 1}, run_id="o2", node=a)
        await sim.wait_for(lambda: LOG == [("reserve", "a")], what="reserve started")
        await sim.kill("a")
        b = sim.node("b")
        await sim.wait_for(lambda: len(LOG) == 2, timeout=60, what="reserve run again")
        status = await b.contracts.status("o2")
        assert status.owner in ("b", "c") and status.owner == LOG[1][1]
        await b.contracts.deliver_event("paid", {"order_id": "o2"}, "1 EUR")
        assert await b.contracts.result("o2", timeout=60) == {"receipt": "o2:1 paid 1 EUR"}
        assert b.contracts.stats.takeovers + sim.node("c").contracts.stats.takeovers == 1


class Payout(Contract):
    account = Input(str)

    @compute
    async def transfer(account: str, ctx: StepContext) -> str:
        LOG.append(("transfer", ctx.node))
        await asyncio.sleep(5.0)
        return "sent"

    outputs = ("transfer",)


async def test_a_non_idempotent_step_on_a_dead_owner_is_unknown_not_rerun() -> None:
    LOG.clear()
    async with durable() as sim:
        await Payout.start({"account": "x"}, run_id="p1", node=sim.node("a"))
        await sim.wait_for(lambda: LOG == [("transfer", "a")], what="transfer started")
        await sim.kill("a")
        b = sim.node("b")
        with pytest.raises(StepOutcomeUnknown) as err:
            await b.contracts.result("p1", timeout=60)
        assert err.value.step == "transfer" and err.value.node == "a"
        assert (await b.contracts.status("p1")).status == "unknown"
        assert LOG == [("transfer", "a")]


class Crawl(Contract):
    pages = Input(int)

    @compute(idempotent=True)
    async def crawl(pages: int, ctx: StepContext) -> list[Any]:
        start = ctx.checkpoints.get("next", 0)
        LOG.append(("resume at", start, ctx.node))
        mail = await ctx.run(lambda: LOG.append(("mail", ctx.node)) or "mailed", name="mail")
        for page in range(start, pages):
            await asyncio.sleep(1.0)
            await ctx.checkpoint("next", page + 1)
        return [mail, ctx.attempt]

    outputs = ("crawl",)


async def test_checkpoints_and_side_effects_survive_a_failover() -> None:
    LOG.clear()
    async with durable() as sim:
        await Crawl.start({"pages": 6}, run_id="c1", node=sim.node("a"))
        await sim.wait_for(lambda: ("mail", "a") in LOG, what="the side effect ran")
        await asyncio.sleep(3.5)  # pages 0..2 checkpointed
        await sim.kill("a")
        b = sim.node("b")
        out = await b.contracts.result("c1", timeout=60)
        resumed = [e for e in LOG if e[0] == "resume at"]
        assert resumed[0] == ("resume at", 0, "a")
        assert resumed[1][1] == 3 and resumed[1][2] in ("b", "c")
        assert [e for e in LOG if e[0] == "mail"] == [("mail", "a")]  # once
        assert out == {"crawl": ["mailed", 2]}


async def test_cancel_a_waiting_run_from_another_node() -> None:
    async with durable() as sim:
        await Order.start({"order_id": "o3", "amount": 1}, run_id="o3", node=sim.node("a"))
        c = sim.node("c")
        await sim.wait_for(lambda: sim.node("a").contracts.stats.runs_parked == 1, what="waiting")
        assert await c.contracts.cancel("o3", "customer left") is True
        with pytest.raises(RunCancelled, match="customer left"):
            await sim.node("a").contracts.result("o3", timeout=10)


async def test_a_waiting_run_survives_the_restart_of_every_node(tmp_path: Path) -> None:
    async with durable(data_root=tmp_path) as sim:
        await Order.start({"order_id": "o4", "amount": 2}, run_id="o4", node=sim.node("a"))
        await sim.wait_for(
            lambda: sim.node("a").contracts.stats.runs_parked == 1, timeout=30, what="waiting"
        )
        for name in ("a", "b", "c"):
            await sim.kill(name)
        for name in ("a", "b", "c"):
            await sim.restart(name)
        await sim.wait_converged()
        b = sim.node("b")
        status = await b.contracts.status("o4")
        assert status.status == "waiting"
        await b.contracts.deliver_event("paid", {"order_id": "o4"}, "2 EUR")
        assert await b.contracts.result("o4", timeout=60) == {"receipt": "o4:2 paid 2 EUR"}
