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


class Quote(Contract, name="Quote", version=1):
    customer = Input(str)
    correlate_by = ("customer",)
    accepted = await_event("accepted")

    @compute
    def price(accepted: Any) -> str:
        return f"v1 price for {accepted}"

    outputs = ("price",)


class QuoteV2(Quote, name="Quote", version=2):
    @compute
    def price(accepted: Any) -> str:
        return f"v2 price for {accepted}"


async def test_a_running_version_1_run_is_not_broken_by_version_2() -> None:
    async with durable() as sim:
        a, b = sim.node("a"), sim.node("b")
        await Quote.start({"customer": "ann"}, run_id="q1", node=a)
        await sim.wait_for(lambda: a.contracts.stats.runs_parked == 1, what="q1 waiting")
        # version 2 is deployed; a new run uses it, the waiting one keeps version 1
        await QuoteV2.start({"customer": "bob"}, run_id="q2", node=b)
        await b.contracts.deliver_event("accepted", {"customer": "ann"}, "ann")
        await b.contracts.deliver_event("accepted", {"customer": "bob"}, "bob")
        assert await b.contracts.result("q1", timeout=30) == {"price": "v1 price for ann"}
        assert await b.contracts.result("q2", timeout=30) == {"price": "v2 price for bob"}
        assert (await a.contracts.status("q1")).version == 1
        assert (await a.contracts.status("q2")).version == 2


async def test_a_run_whose_version_is_loaded_nowhere_is_reported_not_stuck() -> None:
    class Local(Contract):  # defined here: importable nowhere, registered on a only
        key = Input(str)
        correlate_by = ("key",)
        go = await_event("go")
        outputs = ("go",)

    async with durable(contracts=ContractsConfig(store=("a", "b", "c"), sweep_interval=0.2)) as sim:
        await Local.start({"key": "k"}, run_id="l1", node=sim.node("a"))
        await sim.wait_for(lambda: sim.node("a").contracts.stats.runs_parked == 1, what="wait")
        await sim.kill("a")
        b = sim.node("b")

        async def declined_by_both() -> bool:
            return set((await b.contracts.status("l1")).declined) == {"b", "c"}

        async with asyncio.timeout(60):
            while not await declined_by_both():  # noqa: ASYNC110 - simulated time
                await asyncio.sleep(0.2)
        status = await b.contracts.status("l1")
        assert status.status == "unknown"
        assert "version 1 of contract Local unavailable: not loaded on node" in status.reason


class Expiring(Contract):
    key = Input(str)
    correlate_by = ("key",)
    signed = await_event("signed", timeout=20)
    outputs = ("signed",)


async def test_a_durable_await_times_out_with_its_owner_alive_or_dead() -> None:
    from ember.contracts import AwaitTimeout

    async with durable() as sim:
        a, b = sim.node("a"), sim.node("b")
        t0 = asyncio.get_running_loop().time()
        await Expiring.start({"key": "alive"}, run_id="e1", node=a)
        with pytest.raises(AwaitTimeout):
            await b.contracts.result("e1", timeout=60)
        assert asyncio.get_running_loop().time() - t0 == pytest.approx(20, abs=2)
        await Expiring.start({"key": "dead"}, run_id="e2", node=a)
        await sim.wait_for(lambda: a.contracts.stats.runs_parked == 2, what="e2 waiting")
        await sim.kill("a")
        with pytest.raises(AwaitTimeout):
            await b.contracts.result("e2", timeout=60)


async def test_an_event_delivered_during_a_leader_change_is_consumed_once() -> None:
    LOG.clear()
    async with durable() as sim:
        store = sim.node("a").contracts.cluster
        assert store is not None
        leader = await store.wait_for_leader(timeout=30)
        owner, sender = [n for n in ("a", "b", "c") if n != leader]
        await Order.start({"order_id": "o5", "amount": 3}, run_id="o5", node=sim.node(owner))
        await sim.wait_for(
            lambda: sim.node(owner).contracts.stats.runs_parked == 1, what="o5 waiting"
        )
        delivery = asyncio.ensure_future(
            sim.node(sender).contracts.deliver_event(
                "paid", {"order_id": "o5"}, "3 EUR", event_id="pay-o5", timeout=60
            )
        )
        await asyncio.sleep(0)
        await sim.kill(leader)
        assert await delivery == ["o5"]
        # the sender retries (it could not know): the same delivery, not a duplicate
        again = await sim.node(sender).contracts.deliver_event(
            "paid", {"order_id": "o5"}, "3 EUR", event_id="pay-o5", timeout=60
        )
        assert again == ["o5"]
        out = await sim.node(owner).contracts.result("o5", timeout=60)
        assert out == {"receipt": "o5:3 paid 3 EUR"}
        status = await sim.node(owner).contracts.status("o5")
        assert [e.verdict for e in status.events if e.verdict == "delivered"] == ["delivered"]


async def test_cancel_a_running_run_from_another_node_stops_its_steps() -> None:
    LOG.clear()
    async with durable() as sim:
        a, c = sim.node("a"), sim.node("c")
        await Payout.start({"account": "y"}, run_id="p2", node=a)
        await sim.wait_for(lambda: LOG == [("transfer", "a")], what="transfer started")
        assert await c.contracts.cancel("p2", "operator") is True
        with pytest.raises(RunCancelled, match="operator"):
            await c.contracts.result("p2", timeout=10)
        await sim.wait_for(lambda: a.contracts.statistics().coordinators == 0, what="stopped")
        assert a.contracts.load.get("a", 0) == 0  # its step was aborted, not left running
