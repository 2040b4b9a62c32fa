"""CallLifecycle: a phone call from dial to bill, driven by the telephony system's events.

The run dials (a side effect that runs once, on a node offering ``telephony``), waits for
``answered`` (30 s, then it goes on as a missed call), waits for ``hung_up``, and bills by a
``branch`` on the outcome: a missed call costs nothing and leaves a voicemail notice.

Run it: ``python -m examples.call_lifecycle`` (one answered and one missed call on a simulated
three-node cluster, instantly).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ember.testing
from ember.contracts import (
    Contract,
    ContractsConfig,
    EventTimedOut,
    Input,
    StepContext,
    await_event,
    branch,
    compute,
    deliver_event,
)
from ember.testing import SimCluster

DIALED: list[str] = []
"""Calls actually dialed (the side effect of the example)."""


def billed(duration: float, callee: str) -> dict[str, Any]:
    minutes = max(1, int(duration + 59) // 60)
    return {"callee": callee, "minutes": minutes, "cents": 12 * minutes}


def missed(callee: str) -> dict[str, Any]:
    return {"callee": callee, "minutes": 0, "cents": 0, "notice": "voicemail"}


class CallLifecycle(Contract, version=1):
    call_id = Input(str)
    caller = Input(str)
    callee = Input(str)
    correlate_by = ("call_id",)

    @compute(capabilities="telephony", idempotent=True)
    async def dialed(call_id: str, caller: str, callee: str, ctx: StepContext) -> str:
        return await ctx.run(lambda: DIALED.append(call_id) or f"{caller}->{callee}", name="dial")

    answered = await_event("answered", after=("dialed",), timeout=30, on_timeout="continue")
    hung_up = await_event("hung_up", after=("dialed",), timeout=4 * 3600, on_timeout="continue")

    @compute(capabilities="pure")
    def outcome(answered: Any) -> str:
        return "missed" if isinstance(answered, EventTimedOut) else "answered"

    @compute(capabilities="pure")
    def duration(answered: Any, hung_up: Any) -> float:
        if isinstance(answered, EventTimedOut) or isinstance(hung_up, EventTimedOut):
            return 0.0
        return float(hung_up["at"] - answered["at"])

    bill = branch("outcome", {"answered": billed, "missed": missed})
    outputs = ("outcome", "duration", "bill")


async def demo() -> list[dict[str, Any]]:
    store = ContractsConfig(store=("a", "b", "c"))
    per_node = {  # a node with no capabilities list offers every capability: give one
        "a": {"meta": {"capabilities": []}},
        "b": {"meta": {"capabilities": ["telephony"]}},
        "c": {"meta": {"capabilities": []}},
    }
    async with SimCluster(
        ["a", "b", "c"], seed=2, node_options={"contracts": store}, per_node=per_node
    ) as sim:
        a, b = sim.node("a"), sim.node("b")
        one = await CallLifecycle.start(
            {"call_id": "call-1", "caller": "+3801", "callee": "+3802"}, run_id="call-1", node=a
        )
        two = await CallLifecycle.start(
            {"call_id": "call-2", "caller": "+3801", "callee": "+3803"}, run_id="call-2", node=a
        )
        await asyncio.sleep(1)
        await deliver_event("answered", {"call_id": "call-1"}, {"at": 1000.0}, node=b)
        await asyncio.sleep(1)
        await deliver_event("hung_up", {"call_id": "call-1"}, {"at": 1185.0}, node=b)
        # call-2 is never answered; the caller gives up after a minute
        await asyncio.sleep(60)
        await deliver_event("hung_up", {"call_id": "call-2"}, {"at": 60.0}, node=b)
        results = [await one.result(timeout=60), await two.result(timeout=60)]
        print((await b.contracts.status("call-2")).format())
        return results


def main() -> None:
    for result in ember.testing.run(demo):
        print("result:", result)
    print("dialed:", DIALED)


if __name__ == "__main__":
    main()
