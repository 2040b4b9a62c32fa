"""Leader loss on in-process groups (virtual time): writes in flight end in success or
OutcomeUnknown, and retrying with the same request id applies exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ember.consensus import Cluster, OutcomeUnknown, StateMachine, apply


class Counter(StateMachine):
    def __init__(self) -> None:
        self.state = {"n": 0, "seen": []}

    @apply("incr")
    def incr(self, cmd: dict[str, Any]) -> int:
        self.state["n"] += 1
        self.state["seen"].append(cmd["tag"])
        return int(self.state["n"])

    def read(self, key: Any) -> Any:
        return self.state[key]


async def test_same_request_id_applies_once(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, state_machine=Counter, node=node, name="once")
    await cluster.wait_for_leader(timeout=10)
    first = await cluster.write({"op": "incr", "tag": "a"}, request_id="r1")
    again = await cluster.write({"op": "incr", "tag": "a"}, request_id="r1")
    assert first == again == 1
    assert await cluster.write({"op": "incr", "tag": "b"}) == 2  # a fresh id applies
    assert await cluster.read("n") == 2
    other = Cluster.connect("once", cluster.members, node=node)  # another client: own session
    assert await other.write({"op": "incr", "tag": "c"}, request_id="r1") == 3
    same_client = Cluster.connect("once", cluster.members, node=node, client_id=cluster.client_id)
    assert await same_client.write({"op": "incr", "tag": "a"}, request_id="r1") == 1
    status = await cluster.status()
    assert status["duplicates"] == 2
    await cluster.stop()


@pytest.mark.parametrize("rounds", [range(6)])
async def test_leader_loss_then_retry_applies_each_write_once(node: Any, rounds: range) -> None:
    cluster = await Cluster.start(nodes=5, state_machine=Counter, node=node, name="loss")
    total = unknowns = 0
    for r in rounds:
        leader = await cluster.wait_for_leader(timeout=10)
        ids = [f"r{r}-{k}" for k in range(10)]
        tasks = [
            asyncio.ensure_future(cluster.write({"op": "incr", "tag": i}, request_id=i, timeout=10))
            for i in ids
        ]
        member = node.raft.members[("loss", leader)]
        while not member._pending:  # noqa: ASYNC110 - until the writes reached the leader
            await asyncio.sleep(0)
        for _ in range(r):  # lose the leader at a different point of the round each time
            await asyncio.sleep(0)
        await cluster.stop_member(leader)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        unknown = [i for i, o in zip(ids, outcomes, strict=True) if isinstance(o, OutcomeUnknown)]
        assert all(isinstance(o, int | OutcomeUnknown) for o in outcomes), outcomes
        for i in unknown:  # the retry says what happened, and applies at most once
            await cluster.write({"op": "incr", "tag": i}, request_id=i, timeout=10)
        unknowns += len(unknown)
        total += len(ids)
        assert await cluster.read("n") == total
        seen = await cluster.read("seen")
        assert sorted(seen[-len(ids) :]) == sorted(ids)
        cluster.members.remove(leader)
        # A new member catches up from the log and replaces the failed voter.
        await cluster.add_member(wait_voter=True)
    assert 0 < unknowns < total  # both outcomes were seen
    await cluster.stop()
