"""The contract the contracts workload runs (node processes import it by reference,
``ember.chaos._orders:ChaosOrder``), and the ledger its steps write their executions to.

A run prices an order (a pure step), reserves it (idempotent: it may run again after its node
is lost), waits for the ``paid`` event, then charges it (not idempotent: it must run at most
once). Every execution of ``reserve`` and ``charge`` is noted in the KV group's ledger before
the step returns: ``{"op": "note", "key": "ledger/<run>", "token": <execution>, ...}`` (the
ledger state machine keeps one entry per token, so a retried note is one entry), so the checker
counts executions from outside the contracts layer, as a bank would count charges.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

from .. import actors
from .._errors import EmberError
from ..consensus import Cluster
from ..contracts import Contract, Input, StepContext, await_event, compute
from ._driver import KV_GROUP

__all__ = ["LEDGER_PREFIX", "ChaosOrder", "ledger_key"]

LEDGER_PREFIX: Final = "ledger/"
_NOTE_TIMEOUT = 2.0  # seconds per attempt to note an execution
_NOTE_BOUND = 120.0  # seconds in all: a step outlives any fault of a scenario


def ledger_key(run_id: str) -> str:
    """The KV key under which run ``run_id``'s executions are noted."""
    return f"{LEDGER_PREFIX}{run_id}"


async def _note(ctx: StepContext, members: list[str]) -> None:
    """Note this execution of the step in the ledger, retrying through faults (one token per
    execution: a retry of the note is the same entry)."""
    kv = Cluster.connect(KV_GROUP, members, node=actors.current())  # type: ignore[arg-type]
    command = {
        "op": "note",
        "key": ledger_key(ctx.run_id),
        "token": uuid.uuid4().hex,
        "value": [ctx.key, ctx.node, ctx.attempt],
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _NOTE_BOUND
    while True:
        try:
            await kv.write(command, timeout=_NOTE_TIMEOUT)
            return
        except (EmberError, TimeoutError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.1)


class ChaosOrder(Contract, name="ChaosOrder", version=1):
    """An order: priced, reserved, paid (an external event), charged once. Its outputs are
    :func:`ember.chaos._checkers.expected_order_result` of its inputs and payment."""

    order = Input(str)
    amount = Input(int)
    ledger = Input(list, doc="the KV group's member nodes, where executions are noted")
    correlate_by = ("order",)

    @compute(capabilities="pure")
    def price(amount: int) -> int:
        return amount * 3

    @compute(idempotent=True)
    async def reserve(order: str, price: int, ledger: list[str], ctx: StepContext) -> str:
        await _note(ctx, ledger)
        return f"{order}:{price}"

    paid = await_event("paid", after=("reserve",))

    @compute
    async def charge(reserve: str, paid: Any, ledger: list[str], ctx: StepContext) -> str:
        await _note(ctx, ledger)
        return f"charged {reserve} with {paid}"

    outputs = ("charge",)
