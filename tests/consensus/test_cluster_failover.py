"""Leader loss on in-process groups (virtual time): writes in flight end in success or
OutcomeUnknown, and retrying with the same request id applies exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import ember
from ember.consensus import Cluster, ClusterConfig, OutcomeUnknown, StateMachine, apply


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


async def reached_leader(node: Any, group: str, leader: str) -> None:
    """Until writes in flight have reached ``leader``'s member (each loop turn counts)."""
    member = node.raft.members[(group, leader)]
    while not member._pending:  # noqa: ASYNC110 - a loop turn at a time, on purpose
        await asyncio.sleep(0)


async def lose_leader_mid_writes(
    cluster: Cluster, node: Any, tags: list[str], delay: int, *, named: bool
) -> tuple[str, list[Any]]:
    """Write ``tags`` concurrently (with ``request_id=tag`` if ``named``), stop the leader
    ``delay`` loop turns after the writes reached it; the leader and the outcomes."""
    leader = await cluster.wait_for_leader(timeout=10)
    tasks = [
        asyncio.ensure_future(
            cluster.write({"op": "incr", "tag": t}, request_id=t if named else None, timeout=10)
        )
        for t in tags
    ]
    await reached_leader(node, cluster.name, leader)
    for _ in range(delay):
        await asyncio.sleep(0)
    await cluster.stop_member(leader)
    return leader, await asyncio.gather(*tasks, return_exceptions=True)


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
        ids = [f"r{r}-{k}" for k in range(10)]
        leader, outcomes = await lose_leader_mid_writes(cluster, node, ids, r, named=True)
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


async def test_numbered_writes_retry_once_and_answered_ones_are_forgotten(tmp_path: Path) -> None:
    async with ember.Node("auto", data_dir=tmp_path) as node:
        await _numbered_rounds(node)


async def _numbered_rounds(node: ember.Node) -> None:
    cluster = await Cluster.start(nodes=5, state_machine=Counter, node=node, name="auto")
    applied_before_retry = 0
    for r in range(6):
        tags = [f"r{r}-{k}" for k in range(10)]
        leader, outcomes = await lose_leader_mid_writes(cluster, node, tags, r, named=False)
        unknown = {
            t: o.request_id
            for t, o in zip(tags, outcomes, strict=True)
            if isinstance(o, OutcomeUnknown)
        }
        await cluster.restart_member(leader)
        for _ in range(5):  # later writes advance the mark only up to the first open one
            await cluster.write({"op": "incr", "tag": "later"}, timeout=10)
        seen = await cluster.read("seen")
        applied_before_retry += sum(t in seen for t in unknown)
        for t, request_id in unknown.items():
            await cluster.write({"op": "incr", "tag": t}, request_id=request_id, timeout=10)
        seen = await cluster.read("seen")
        assert sorted(t for t in seen if t.startswith(f"r{r}-")) == sorted(tags)  # once each
    assert applied_before_retry > 0  # some retries did meet an applied original
    await cluster.write({"op": "incr", "tag": "last"})  # carries the mark past every answer
    status = await cluster.status()
    assert status["sessions"] == 1  # only the last write's: the client has every other answer
    await cluster.stop()


async def test_an_unknown_outcome_is_held_for_the_retry_window(node: Any) -> None:
    config = ClusterConfig(retry_window=30)
    cluster = await Cluster.start(
        nodes=3, state_machine=Counter, node=node, name="held", config=config
    )
    leader = await cluster.wait_for_leader(timeout=10)
    member = node.raft.members[("held", leader)]
    task = asyncio.ensure_future(cluster.write({"op": "incr", "tag": "cancelled"}))
    await reached_leader(node, "held", leader)
    task.cancel()  # the caller gave up: the write may still apply
    with pytest.raises(asyncio.CancelledError):
        await task
    for k in range(5):
        await cluster.write({"op": "incr", "tag": k})
    first = f"{cluster._stream}-1"  # the handle's own id for its first write
    assert (cluster.client_id, first) in member.replica.sessions  # held for a retry
    assert await cluster.write({"op": "incr", "tag": "cancelled"}, request_id=first) == 1
    assert (await cluster.read("seen")).count("cancelled") == 1
    task = asyncio.ensure_future(cluster.write({"op": "incr", "tag": "again"}))
    await reached_leader(node, "held", leader)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cluster.write({"op": "incr", "tag": "x"})
    seventh = f"{cluster._stream}-7"
    assert (cluster.client_id, seventh) in member.replica.sessions
    await asyncio.sleep(31)  # the retry window passes: the next write lets the members forget
    await cluster.write({"op": "incr", "tag": "y"})
    assert (cluster.client_id, seventh) not in member.replica.sessions
    assert len(member.replica.sessions) == 1
    await cluster.stop()


async def test_a_reused_client_id_neither_collides_with_nor_forgets_the_old_handle(
    node: Any,
) -> None:
    cluster = await Cluster.start(nodes=3, state_machine=Counter, node=node, name="again")
    leader = await cluster.wait_for_leader(timeout=10)
    task = asyncio.ensure_future(cluster.write({"op": "incr", "tag": "open"}))
    await reached_leader(node, "again", leader)
    task.cancel()  # its outcome is unknown to the old handle, which then goes away
    with pytest.raises(asyncio.CancelledError):
        await task
    open_id = f"{cluster._stream}-1"
    # A restarted process makes a handle with the same client id: its own writes apply (they
    # are not mistaken for the old handle's), and its marks leave the old open one alone.
    restarted = Cluster.connect("again", cluster.members, node=node, client_id=cluster.client_id)
    base = await restarted.read("n")  # 1 if the cancelled write was applied, else 0
    for k in range(5):
        assert await restarted.write({"op": "incr", "tag": k}) == base + k + 1
    seen = await restarted.read("seen")
    assert [t for t in seen if t != "open"] == [0, 1, 2, 3, 4]
    await restarted.write({"op": "incr", "tag": "open"}, request_id=open_id)  # the retry
    assert (await restarted.read("seen")).count("open") == 1
    await cluster.stop()


async def test_a_lone_write_applied_then_retried_applies_once(tmp_path: Path) -> None:
    async with ember.Node("lone", data_dir=tmp_path) as node:
        await _lone_rounds(node)


async def _lone_rounds(node: ember.Node) -> None:
    # A write's own session must not let the members forget its outcome (its mark is at most
    # its number): the original applies, its answer is lost with the leader, and the retry
    # with its request id returns the kept outcome instead of applying again.
    cluster = await Cluster.start(nodes=3, state_machine=Counter, node=node, name="lone")
    sent: list[list[Any]] = []
    call = node.raft.call

    async def spy(peer: str, op: str, args: list[Any], within: float) -> Any:
        if op == "write":
            sent.append(args[2])
        return await call(peer, op, args, within)

    node.raft.call = spy  # type: ignore[assignment, method-assign]
    for r in range(8):  # until an original applied before its answer was lost
        leader, (outcome,) = await lose_leader_mid_writes(
            cluster, node, [f"solo{r}"], delay=3, named=False
        )
        await cluster.restart_member(leader)
        if isinstance(outcome, OutcomeUnknown):
            applied = f"solo{r}" in await cluster.read("seen", timeout=10)
            await cluster.write(
                {"op": "incr", "tag": f"solo{r}"}, request_id=outcome.request_id, timeout=10
            )
            assert (await cluster.read("seen", timeout=10)).count(f"solo{r}") == 1
            if applied:
                break
    else:
        pytest.fail("no original applied before its answer was lost")
    for _client, _stream, request, seq, mark in sent:
        assert seq is not None and mark <= seq, (request, seq, mark)
    await cluster.stop()
