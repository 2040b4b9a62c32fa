"""Runs on one node, on virtual time: steps in parallel up to the bound, retries with backoff,
attempt timeouts, capability policies, the pure cache, failures, branches, collections,
composed contracts, cancellation, ctx, idempotent starts and input checks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import ember
from ember.contracts import (
    CapabilityDenied,
    CapabilityPolicy,
    CollectionResult,
    Contract,
    ContractsConfig,
    Input,
    InvalidInputs,
    Retry,
    RunCancelled,
    RunConflict,
    RunNotFound,
    StepContext,
    StepFailed,
    StepTimeout,
    branch,
    collection,
    compose,
    compute,
)

CALLS: list[str] = []


def now() -> float:
    return asyncio.get_running_loop().time()


class Sleepy(Contract):
    seconds = Input(float)

    @compute
    async def a(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "a"

    @compute
    async def b(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "b"

    @compute
    async def c(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "c"

    @compute
    def joined(a: str, b: str, c: str) -> str:
        return a + b + c

    outputs = ("joined",)


async def test_independent_steps_run_in_parallel(node: ember.Node) -> None:
    t0 = now()
    assert await Sleepy.run({"seconds": 2.0}) == {"joined": "abc"}
    assert now() - t0 == pytest.approx(2.0, abs=0.01)


async def test_parallelism_is_bounded_per_run(make_node: Any) -> None:
    node = await make_node("bounded")
    node.contracts.config = ContractsConfig(max_parallel=2)
    t0 = now()
    await Sleepy.run({"seconds": 1.0}, node=node)
    assert now() - t0 == pytest.approx(2.0, abs=0.01)  # a and b, then c


class Flaky(Contract):
    fails = Input(int)

    @compute(retry=Retry(attempts=5, initial=1.0, backoff=2.0))
    def attempt(fails: int) -> int:
        CALLS.append("attempt")
        if CALLS.count("attempt") <= fails:
            raise ConnectionError(f"try {CALLS.count('attempt')}")
        return CALLS.count("attempt")

    outputs = ("attempt",)


async def test_retries_back_off_then_succeed(node: ember.Node) -> None:
    CALLS.clear()
    t0 = now()
    handle = await Flaky.start({"fails": 2})
    assert await handle.result() == {"attempt": 3}
    assert now() - t0 == pytest.approx(3.0, abs=0.01)  # waits 1 s then 2 s
    status = await handle.status()
    assert status.steps["attempt"].attempts == 3 and status.steps["attempt"].status == "succeeded"


async def test_retries_exhausted_fail_with_the_step_and_node(node: ember.Node) -> None:
    CALLS.clear()
    handle = await Flaky.start({"fails": 10}, run_id="flaky-1")
    with pytest.raises(StepFailed) as err:
        await handle.result()
    e = err.value
    assert (e.run_id, e.step, e.node, e.attempts) == ("flaky-1", "attempt", "test", 5)
    assert e.kind == "ConnectionError" and e.message == "try 5"
    assert "ConnectionError: try 5" in e.remote_traceback
    status = await handle.status()
    assert status.status == "failed" and isinstance(status.error, StepFailed)
    assert status.steps["attempt"].error == "ConnectionError: try 5"


class Slow(Contract):
    @compute(timeout=2.0, retry=Retry(attempts=2, initial=1.0))
    async def forever() -> None:
        CALLS.append("start")
        try:
            await asyncio.sleep(3600)
        finally:
            CALLS.append("stopped")

    outputs = ("forever",)


async def test_attempt_timeout_stops_the_attempt(node: ember.Node) -> None:
    CALLS.clear()
    t0 = now()
    handle = await Slow.start({})
    with pytest.raises(StepTimeout) as err:
        await handle.result()
    assert isinstance(err.value, TimeoutError) and err.value.attempts == 2
    assert now() - t0 == pytest.approx(5.0, abs=0.05)  # 2 s, wait 1 s, 2 s
    await asyncio.sleep(0.1)
    assert CALLS == ["start", "stopped", "start", "stopped"]


class Network(Contract):
    url = Input(str)

    @compute
    def prepared(url: str) -> str:
        CALLS.append("prepared")
        return url

    @compute(capabilities=("network",))
    def fetch(prepared: str) -> str:
        CALLS.append("fetch")
        return prepared

    outputs = ("fetch",)


async def test_a_run_policy_denies_before_the_step_runs(node: ember.Node) -> None:
    CALLS.clear()
    handle = await Network.start({"url": "x"}, policy=CapabilityPolicy(deny=("network",)))
    with pytest.raises(CapabilityDenied) as err:
        await handle.result()
    assert (err.value.step, err.value.capability, err.value.by) == ("fetch", "network", "run")
    assert CALLS == ["prepared"]


async def test_a_node_policy_denies_too(make_node: Any) -> None:
    CALLS.clear()
    node = await make_node("strict")
    node.contracts.config = ContractsConfig(deny=("network",))
    with pytest.raises(CapabilityDenied) as err:
        await Network.run({"url": "x"}, node=node)
    assert err.value.capability == "network" and err.value.by == "node strict"
    assert "fetch" not in CALLS


class Priced(Contract):
    amount = Input(int)

    @compute(capabilities="pure")
    def taxed(amount: int) -> int:
        CALLS.append(f"taxed {amount}")
        return amount * 2

    @compute(capabilities="pure")
    async def rounded(taxed: int) -> int:
        CALLS.append(f"rounded {taxed}")
        return taxed

    outputs = ("rounded",)


async def test_pure_steps_are_cached_across_runs(node: ember.Node) -> None:
    CALLS.clear()
    assert await Priced.run({"amount": 3}) == {"rounded": 6}
    assert await Priced.run({"amount": 3}) == {"rounded": 6}
    assert await Priced.run({"amount": 4}) == {"rounded": 8}
    assert CALLS == ["taxed 3", "rounded 6", "taxed 4", "rounded 8"]
    stats = node.contracts.statistics()
    assert (stats.cache_hits, stats.cache_misses) == (2, 4)


class Routed(Contract):
    country = Input(str)
    amount = Input(float)
    items = Input(list, default=[])

    tax = branch("country", {"US": lambda amount: amount * 0.1, "UA": lambda amount: amount * 0.2})
    each = collection("items", lambda item, amount: item / amount, mode="collect")

    outputs = ("tax", "each")


async def test_branch_and_collection_end_to_end(node: ember.Node) -> None:
    out = await Routed.run({"country": "UA", "amount": 10.0, "items": [5, 0, 20]})
    assert out["tax"] == 2.0
    each = out["each"]
    assert isinstance(each, CollectionResult)
    assert each.values == [0.5, 0.0, 2.0] and each.ok
    with pytest.raises(StepFailed, match="no case for country = 'FR'"):
        await Routed.run({"country": "FR", "amount": 1.0})


class Invoice(Contract):
    customer = Input(str)

    @compute
    def line(customer: str) -> str:
        return f"line for {customer}"

    outputs = ("line",)


class Billing(Contract):
    customers = Input(list)
    lines = collection("customers", Invoice, item="customer")
    first = compose(Invoice, inputs={"customer": "lead"})
    lead = Input(str)
    outputs = ("lines", "first")


async def test_composed_contracts_run_as_children(node: ember.Node) -> None:
    out = await Billing.run({"customers": ["a", "b"], "lead": "c"})
    assert out == {
        "lines": [{"line": "line for a"}, {"line": "line for b"}],
        "first": {"line": "line for c"},
    }


async def test_cancel_stops_running_steps(node: ember.Node) -> None:
    CALLS.clear()
    handle = await Slow.start({})
    await asyncio.sleep(1.0)
    assert await handle.cancel("by the test") is True
    with pytest.raises(RunCancelled, match="by the test"):
        await handle.result()
    await asyncio.sleep(0.1)
    assert CALLS == ["start", "stopped"]
    assert (await handle.status()).status == "cancelled"
    assert await handle.cancel() is False


class Resumable(Contract):
    pages = Input(int)

    @compute(idempotent=True)
    async def crawl(pages: int, ctx: StepContext) -> list[Any]:
        got = ctx.checkpoints.get("done", 0)
        for page in range(got, pages):
            await ctx.checkpoint("done", page + 1)
        sent = await ctx.run(lambda: CALLS.append("mail") or "sent")
        return [ctx.checkpoints["done"], sent, ctx.run_id, ctx.attempt]

    outputs = ("crawl",)


async def test_ctx_checkpoints_and_side_effects(node: ember.Node) -> None:
    CALLS.clear()
    handle = await Resumable.start({"pages": 3}, run_id="crawl-1")
    assert await handle.result() == {"crawl": [3, "sent", "crawl-1", 1]}
    assert CALLS == ["mail"]
    rec = node.contracts.local.runs["crawl-1"]
    assert rec["tasks"]["crawl"]["cp"] == {"done": 3}
    assert rec["tasks"]["crawl"]["fx"] == {"effect-0": ["done", "sent"]}


async def test_the_run_id_is_an_idempotency_key(node: ember.Node) -> None:
    first = await Priced.start({"amount": 1}, run_id="same")
    again = await Priced.start({"amount": 1}, run_id="same")
    assert first.created and not again.created
    assert await again.result() == {"rounded": 2}
    assert node.contracts.statistics().runs_started == 1
    with pytest.raises(RunConflict, match="started with other inputs"):
        await Priced.start({"amount": 2}, run_id="same")
    with pytest.raises(RunConflict, match="it is a run of Priced v1, not Invoice v1"):
        await Invoice.start({"customer": "x"}, run_id="same")


async def test_inputs_are_checked(node: ember.Node) -> None:
    with pytest.raises(InvalidInputs, match="missing input 'amount'"):
        await Priced.start({})
    with pytest.raises(InvalidInputs, match=r"unknown inputs \['amont'\]"):
        await Priced.start({"amount": 1, "amont": 2})
    with pytest.raises(InvalidInputs, match="input 'amount' must be int, not str"):
        await Priced.start({"amount": "1"})
    with pytest.raises(RunNotFound):
        await node.contracts.status("nope")


class Blocking(Contract):
    @compute(blocking=True)
    def where() -> str:
        return threading.current_thread().name

    outputs = ("where",)


async def test_a_blocking_step_runs_in_a_thread(node: ember.Node) -> None:
    out = await Blocking.run({})
    assert out["where"] != threading.current_thread().name


class Breaks(Contract):
    @compute
    def boom() -> None:
        raise ValueError("bad data")

    outputs = ("boom",)


async def test_statistics_count_runs_and_steps(node: ember.Node) -> None:
    await Sleepy.run({"seconds": 0.5})
    with pytest.raises(StepFailed):
        await Breaks.run({})
    stats = node.contracts.statistics()
    assert (stats.runs_started, stats.runs_succeeded, stats.runs_failed) == (2, 1, 1)
    assert stats.steps_local == 3 and stats.steps_inline == 2
    assert stats.step_attempts == 3 and stats.step_seconds_max == pytest.approx(0.5)
    assert node.contracts.step_seconds.count == 3
    assert stats.coordinators == 0
    assert node.contracts.runs_by_status() == {"succeeded": 1, "failed": 1}
    listed = await node.contracts.runs(status="failed")
    assert [r.contract for r in listed] == ["Breaks"]


async def test_the_node_metrics_carry_the_contracts_counters(node: ember.Node) -> None:
    await Sleepy.run({"seconds": 0.5})
    text = node.metrics.exposition().decode()
    assert 'ember_contracts_runs_total{outcome="succeeded"} 1.0' in text
    assert "ember_contracts_runs_started_total 1.0" in text
    assert 'ember_contracts_steps_total{where="local"} 3.0' in text
    assert "ember_contracts_step_seconds_count 3.0" in text
    assert 'ember_contracts_local_runs{status="succeeded"} 1.0' in text
    summary = node.contracts.admin_summary()
    assert summary["succeeded"] == 1 and summary["coordinators"] == 0
    assert summary["runs"] == {"succeeded": 1, "failed": 0, "parked": 0}


class TwoSlow(Contract):
    @compute(idempotent=True)
    async def first() -> str:
        CALLS.append("first")
        await asyncio.sleep(1.0)
        return "one"

    @compute
    def second(first: str) -> str:
        CALLS.append("second")
        return first + "+two"

    outputs = ("second",)


async def test_a_crashed_coordinator_is_restarted_from_the_record(
    node: ember.Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ember.contracts import RunCrashed
    from ember.contracts._coordinator import RunCoordinator

    CALLS.clear()
    crashes = {"left": 1}
    real = RunCoordinator._settle

    def flaky(self: RunCoordinator, key: str, attempt: int) -> bool:
        if crashes["left"] > 0:
            crashes["left"] -= 1
            raise RuntimeError("a bug in the machinery")
        return real(self, key, attempt)

    monkeypatch.setattr(RunCoordinator, "_settle", flaky)
    handle = await TwoSlow.start({})
    assert await handle.result(timeout=30) == {"second": "one+two"}
    # first was running when its coordinator crashed: idempotent, so it ran again
    assert CALLS == ["first", "first", "second"]
    assert node.contracts.statistics().coordinators == 0

    crashes["left"] = 100
    doomed = await TwoSlow.start({}, run_id="doomed")
    with pytest.raises(RunCrashed, match="its coordinator crashed 4 times"):
        await doomed.result(timeout=60)
