"""The patterns of docs/consensus.md (Patterns), run: an auction and a lock with fencing tokens."""

from __future__ import annotations

from typing import Any

import pytest

from ember.consensus import Cluster, CommandFailed, StateMachine, apply


class BidAuction(StateMachine):
    """Bids on items; the highest bid wins; closing an item freezes it."""

    def __init__(self) -> None:
        self.state = {}  # item -> {"high": amount, "bidder": name, "open": bool}

    @apply("open")
    def open(self, cmd: dict[str, Any]) -> None:
        self.state[cmd["item"]] = {"high": cmd.get("reserve", 0), "bidder": None, "open": True}

    @apply("bid")
    def bid(self, cmd: dict[str, Any]) -> bool:
        lot = self.state[cmd["item"]]
        if not lot["open"] or cmd["amount"] <= lot["high"]:
            return False
        lot["high"], lot["bidder"] = cmd["amount"], cmd["bidder"]
        return True

    @apply("close")
    def close(self, cmd: dict[str, Any]) -> Any:
        lot = self.state[cmd["item"]]
        lot["open"] = False
        return lot["bidder"]


class Locks(StateMachine):
    """Named locks; each grant carries a fencing token that only grows."""

    def __init__(self) -> None:
        self.state = {"token": 0, "held": {}}  # held: name -> [owner, token]

    @apply("acquire")
    def acquire(self, cmd: dict[str, Any]) -> int | None:
        if cmd["name"] in self.state["held"]:
            return None
        self.state["token"] += 1
        self.state["held"][cmd["name"]] = [cmd["owner"], self.state["token"]]
        return int(self.state["token"])

    @apply("release")
    def release(self, cmd: dict[str, Any]) -> bool:
        owner, token = self.state["held"].get(cmd["name"], (None, None))
        if owner != cmd["owner"] or token != cmd["token"]:
            return False
        del self.state["held"][cmd["name"]]
        return True

    def read(self, key: Any) -> Any:
        return self.state["held"].get(key)


async def test_bid_auction(node: Any) -> None:
    auction = await Cluster.start(nodes=3, state_machine=BidAuction, node=node, name="auction")
    await auction.wait_for_leader(timeout=10)
    await auction.write({"op": "open", "item": "vase", "reserve": 10})
    assert await auction.write({"op": "bid", "item": "vase", "bidder": "ann", "amount": 5}) is False
    assert await auction.write({"op": "bid", "item": "vase", "bidder": "bob", "amount": 12})
    assert await auction.write({"op": "bid", "item": "vase", "bidder": "cy", "amount": 15})
    assert await auction.write({"op": "close", "item": "vase"}) == "cy"
    assert not await auction.write({"op": "bid", "item": "vase", "bidder": "bob", "amount": 99})
    assert (await auction.read("vase"))["high"] == 15
    with pytest.raises(CommandFailed, match="KeyError"):
        await auction.write({"op": "bid", "item": "nothing", "bidder": "x", "amount": 1})


async def test_lock_with_fencing_tokens(node: Any) -> None:
    locks = await Cluster.start(nodes=3, state_machine=Locks, node=node, name="locks")
    await locks.wait_for_leader(timeout=10)
    token = await locks.write({"op": "acquire", "name": "db", "owner": "w1"})
    assert token == 1
    assert await locks.write({"op": "acquire", "name": "db", "owner": "w2"}) is None
    assert await locks.read("db") == ["w1", 1]
    assert not await locks.write({"op": "release", "name": "db", "owner": "w2", "token": 1})
    assert await locks.write({"op": "release", "name": "db", "owner": "w1", "token": token})
    assert await locks.write({"op": "acquire", "name": "db", "owner": "w2"}) == 2  # grows
