"""Contracts the node processes of ``test_contracts_processes.py`` load
(``--contracts-load tests.integration.contracts_kit``)."""

from __future__ import annotations

import asyncio
from typing import Any

from ember.contracts import Contract, Input, StepContext, await_event, compute


class Render(Contract):
    """One long idempotent step on a node offering ``gpu``, then a plain one where it started."""

    job = Input(str)
    seconds = Input(float)

    @compute(capabilities="gpu", idempotent=True)
    async def frame(job: str, seconds: float, ctx: StepContext) -> list[Any]:
        await asyncio.sleep(seconds)
        return [job, ctx.node, ctx.attempt]

    @compute
    def done(frame: list[Any]) -> str:
        return f"{frame[0]} rendered on {frame[1]}"

    outputs = ("frame", "done")


class Shipment(Contract):
    """Waits for a ``delivered`` event, then counts it in a step that runs once."""

    order = Input(str)
    correlate_by = ("order",)
    delivered = await_event("delivered")

    @compute
    async def confirm(order: str, delivered: Any, ctx: StepContext) -> list[Any]:
        return [order, delivered, ctx.node]

    outputs = ("confirm",)
