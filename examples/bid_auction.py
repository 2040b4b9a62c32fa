"""BidAuction: sealed bids placed in parallel, each committed, before the winner is chosen.

Each bidder's bid is an item of a ``collection``: the items run in parallel on the nodes that
offer ``bidding``, each bid is recorded with ``ctx.run`` (it happens once, even if its node
fails and the item runs again elsewhere), and every item's result is in the replicated store
before ``winner`` runs, which waits for the ``closed`` event too. A bidder whose bid fails is
reported in the collection's outcome (``mode="collect"``) without spoiling the auction.

Run it: ``python -m examples.bid_auction`` (a simulated three-node cluster, instantly).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ember.testing
from ember.contracts import (
    CollectionResult,
    Contract,
    ContractsConfig,
    Input,
    StepContext,
    await_event,
    collection,
    compute,
    deliver_event,
)
from ember.testing import SimCluster

LEDGER: list[tuple[str, str, int]] = []
"""Bids committed to the (pretend) bid ledger: (auction, bidder, amount)."""


async def place_bid(item: dict[str, Any], auction_id: str, ctx: StepContext) -> dict[str, Any]:
    """Commit one sealed bid (at most once) and return it."""
    if item["amount"] <= 0:
        raise ValueError(f"{item['bidder']} bid nothing")
    await asyncio.sleep(0.2)  # the ledger's round trip
    await ctx.run(
        lambda: LEDGER.append((auction_id, item["bidder"], item["amount"])), name="commit"
    )
    return {"bidder": item["bidder"], "amount": item["amount"], "node": ctx.node}


class BidAuction(Contract, version=1):
    auction_id = Input(str)
    bidders = Input(list)
    reserve = Input(int, default=0)
    correlate_by = ("auction_id",)

    bids = collection("bidders", place_bid, capabilities="bidding", idempotent=True, mode="collect")
    closed = await_event("closed", timeout=3600, on_timeout="continue")

    @compute(capabilities="pure")
    def winner(bids: CollectionResult, closed: Any, reserve: int) -> dict[str, Any] | None:
        valid = [b for b in bids.values if b["amount"] >= reserve]
        if not valid:
            return None
        best = max(valid, key=lambda b: (b["amount"], -ord(b["bidder"][0])))
        return {"bidder": best["bidder"], "amount": best["amount"]}

    @compute(capabilities="pure")
    def rejected(bids: CollectionResult) -> list[str]:
        return [f.message or "" for f in bids.failures]

    outputs = ("winner", "rejected")


async def demo() -> dict[str, Any]:
    store = ContractsConfig(store=("a", "b", "c"))
    per_node = {
        "a": {"meta": {"capabilities": []}},
        "b": {"meta": {"capabilities": ["bidding"]}},
        "c": {"meta": {"capabilities": ["bidding"]}},
    }
    async with SimCluster(
        ["a", "b", "c"], seed=3, node_options={"contracts": store}, per_node=per_node
    ) as sim:
        a = sim.node("a")
        bidders = [
            {"bidder": "ann", "amount": 120},
            {"bidder": "bob", "amount": 150},
            {"bidder": "cy", "amount": 0},
            {"bidder": "dee", "amount": 90},
        ]
        handle = await BidAuction.start(
            {"auction_id": "lot-7", "bidders": bidders, "reserve": 100}, run_id="lot-7", node=a
        )
        await asyncio.sleep(2)
        status = await handle.status()
        print(status.format())
        await deliver_event("closed", {"auction_id": "lot-7"}, {"by": "auctioneer"}, node=a)
        return await handle.result(timeout=60)


def main() -> None:
    print("result:", ember.testing.run(demo))
    print("ledger:", LEDGER)


if __name__ == "__main__":
    main()
