"""LeadWorkflow: qualify a sales lead once the CRM and billing systems have both reported on it.

A durable contract on three nodes: ``crm`` runs the CRM lookup (its node offers ``crm``), the
run waits for two external events matched by its correlation keys (``lead_id``, ``company``),
the billing event arrives *before* the run reaches its await and is kept, and the welcome mail
is a side effect that runs once.

Run it: ``python -m examples.lead_workflow`` (a simulated three-node cluster, instantly).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ember.testing
from ember.contracts import (
    Contract,
    ContractsConfig,
    Input,
    Retry,
    StepContext,
    await_event,
    compute,
    deliver_event,
)
from ember.testing import SimCluster

SENT: list[str] = []
"""Mails sent, in order (the side effect of the example)."""


class LeadWorkflow(Contract, version=1):
    """Qualify a lead: normalise it, look it up in the CRM, wait for the CRM sync and the billing
    check, score it, and welcome it once."""

    lead_id = Input(str)
    company = Input(str)
    email = Input(str)
    correlate_by = ("lead_id", "company")

    @compute(capabilities="pure")
    def normalized(email: str) -> str:
        return email.strip().lower()

    @compute(capabilities="crm", idempotent=True, timeout=10, retry=Retry(attempts=3))
    async def crm_record(lead_id: str, ctx: StepContext) -> dict[str, Any]:
        await asyncio.sleep(0.5)  # the CRM's API
        return {"lead": lead_id, "looked_up_on": ctx.node}

    crm_synced = await_event("crm_synced", after=("crm_record",), timeout=24 * 3600)
    billing = await_event("billing_checked", timeout=24 * 3600)

    @compute(capabilities="pure")
    def score(crm_synced: dict[str, Any], billing: dict[str, Any]) -> int:
        return int(crm_synced.get("employees", 0) > 50) * 50 + int(billing["credit_ok"]) * 50

    @compute(capabilities="network", idempotent=True)
    async def welcome(normalized: str, score: int, ctx: StepContext) -> str:
        tier = "gold" if score >= 100 else "standard"
        return await ctx.run(lambda: SENT.append(f"{tier} welcome to {normalized}") or tier)

    outputs = ("score", "welcome", "crm_record")


async def demo() -> dict[str, Any]:
    store = ContractsConfig(store=("a", "b", "c"))
    per_node = {
        "a": {"meta": {"capabilities": ["network"]}},
        "b": {"meta": {"capabilities": ["crm"]}},
        "c": {"meta": {"capabilities": ["network", "crm"]}},
    }
    async with SimCluster(
        ["a", "b", "c"], seed=1, node_options={"contracts": store}, per_node=per_node
    ) as sim:
        a, c = sim.node("a"), sim.node("c")
        handle = await LeadWorkflow.start(
            {"lead_id": "L-17", "company": "acme", "email": " Ann@Acme.example "},
            run_id="lead-L-17",
            node=a,
        )
        keys = {"lead_id": "L-17", "company": "acme"}
        # billing answers first: the run has not reached that await yet; the event is kept
        await deliver_event("billing_checked", keys, {"credit_ok": True}, node=c)
        await asyncio.sleep(2)
        print((await handle.status()).format())
        await deliver_event("crm_synced", keys, {"employees": 120}, node=c)
        result = await handle.result(timeout=60)
        print((await c.contracts.status("lead-L-17")).format())
        return result


def main() -> None:
    result = ember.testing.run(demo)
    print("result:", result)
    print("mails sent:", SENT)


if __name__ == "__main__":
    main()
