"""The Cluster API on in-process groups (members on one node, MemoryStorage, virtual time):
election, replication in order, forwarding, reads, custom state machines."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from clusterkit import wait_applied

from ember import UsageError
from ember.consensus import (
    Cluster,
    ClusterConfig,
    CommandFailed,
    NoLeader,
    OutcomeUnknown,
    StateMachine,
    apply,
)


class OrderBook(StateMachine):
    """A custom state machine: orders by id, and a count of applications."""

    def __init__(self) -> None:
        self.state = {"orders": {}, "applied": 0}

    @apply("add_order")
    def add_order(self, cmd: dict[str, Any]) -> int:
        if cmd["id"] in self.state["orders"]:
            raise ValueError(f"order {cmd['id']} exists")
        self.state["orders"][cmd["id"]] = cmd["qty"]
        self.state["applied"] += 1
        return len(self.state["orders"])

    @apply("cancel")
    def cancel(self, cmd: dict[str, Any]) -> bool:
        self.state["applied"] += 1
        return self.state["orders"].pop(cmd["id"], None) is not None

    def read(self, key: Any) -> Any:
        return self.state["orders"].get(key)


async def snapshots(cluster: Cluster) -> list[Any]:
    return [
        msgpack.unpackb(await cluster.state_machine_snapshot(m), strict_map_key=False)
        for m in cluster.members
    ]


async def test_elects_one_leader_and_reports_status(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="g1")
    leader = await cluster.wait_for_leader(timeout=10)
    assert leader in cluster.members
    await cluster.write({"key": "a", "value": 1})  # every member has heard from the leader
    statuses = [await cluster.status(m) for m in cluster.members]
    assert [s["role"] for s in statuses].count("leader") == 1
    assert {s["leader"] for s in statuses} == {leader}
    assert {s["term"] for s in statuses} == {statuses[0]["term"]}
    lead = await cluster.status()
    assert lead["id"] == leader and set(lead["progress"]) == set(cluster.members)
    assert cluster.quorum_size == 2
    assert await cluster.has_quorum()
    await cluster.stop()


async def test_writes_apply_on_every_member_in_order(node: Any) -> None:
    cluster = await Cluster.start(nodes=5, node=node, name="kv")
    await cluster.wait_for_leader(timeout=10)
    results = [await cluster.write({"key": "k", "value": i}) for i in range(20)]
    assert results == [None, *range(19)]  # each set returns the previous value
    assert await cluster.write({"key": "k", "op": "delete"}) is True
    assert await cluster.write({"key": "k", "op": "delete"}) is False
    await cluster.write({"key": "z", "value": "last"})
    status = await cluster.status()
    for member in cluster.members:  # stale reads see each member's own state once applied
        await wait_applied(cluster, member, status["commit"])
    assert all(s == {"z": "last"} for s in await snapshots(cluster))
    await cluster.stop()


async def test_follower_forwards_writes_and_reads_to_the_leader(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="fw")
    leader = await cluster.wait_for_leader(timeout=10)
    follower = next(m for m in cluster.members if m != leader)
    via_follower = Cluster.connect("fw", [follower], node=node)
    assert await via_follower.write({"key": "a", "value": 1}) is None
    assert await via_follower.read("a") == 1  # ReadIndex through the follower
    assert (await cluster.status())["id"] == leader  # leadership did not move
    await cluster.stop()


async def test_concurrent_writers_all_apply(node: Any) -> None:
    import asyncio

    cluster = await Cluster.start(nodes=3, node=node, name="conc")
    await cluster.wait_for_leader(timeout=10)
    await asyncio.gather(*(cluster.write({"key": f"k{i}", "value": i}) for i in range(200)))
    assert [await cluster.read(f"k{i}") for i in range(0, 200, 37)] == list(range(0, 200, 37))
    await cluster.stop()


async def test_read_consistencies(node: Any) -> None:
    plain = await Cluster.start(nodes=3, node=node, name="plain")
    await plain.wait_for_leader(timeout=10)
    await plain.write({"key": "x", "value": 7})
    assert await plain.read("x") == 7
    assert await plain.read("x", consistency="linearizable") == 7
    leader = await plain.wait_for_leader()
    assert await plain.read("x", consistency="stale", member=leader) == 7
    with pytest.raises(UsageError, match="lease"):
        await plain.read("x", consistency="lease")
    with pytest.raises(UsageError):
        await plain.read("x", consistency="eventual")  # type: ignore[arg-type]
    leased = await Cluster.start(
        nodes=3, node=node, name="leased", config=ClusterConfig(lease_reads=True)
    )
    await leased.wait_for_leader(timeout=10)
    await leased.write({"key": "y", "value": 8})
    assert await leased.read("y", consistency="lease") == 8
    await plain.stop()
    await leased.stop()


async def test_custom_state_machine_handlers_and_errors(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, state_machine=OrderBook, node=node, name="orders")
    await cluster.wait_for_leader(timeout=10)
    assert await cluster.write({"op": "add_order", "id": "o1", "qty": 5}) == 1
    assert await cluster.write({"op": "add_order", "id": "o2", "qty": 3}) == 2
    with pytest.raises(CommandFailed, match="order o1 exists") as info:
        await cluster.write({"op": "add_order", "id": "o1", "qty": 9})
    assert info.value.kind == "builtins.ValueError"
    with pytest.raises(CommandFailed, match="no handler"):
        await cluster.write({"op": "bogus"})
    assert await cluster.write({"op": "cancel", "id": "o2"}) is True
    assert await cluster.read("o1") == 5
    assert await cluster.read("o2") is None
    await cluster.stop()


async def test_bad_arguments_are_usage_errors(node: Any) -> None:
    class Local(StateMachine):
        pass

    with pytest.raises(UsageError, match="defined in a function"):
        await Cluster.start(nodes=3, state_machine=Local, node=node)
    with pytest.raises(UsageError, match="group name"):
        await Cluster.start(nodes=3, node=node, name="bad name")
    with pytest.raises(UsageError):
        await Cluster.start(nodes=0, node=node)
    with pytest.raises(UsageError, match="StateMachine"):
        await Cluster.start(nodes=3, state_machine=dict, node=node)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="import"):
        await Cluster.start(nodes=3, state_machine="no.such.module:Thing", node=node)
    cluster = await Cluster.start(nodes=1, node=node, name="wire")
    leader = await cluster.wait_for_leader(timeout=10)
    for session in (["c"], ["c", "s", "r", "1", 1], ["c", "s", "r", None, True], "c/r"):
        with pytest.raises(UsageError, match="malformed write session"):
            await node.raft.call(node.name, "write", ["wire", leader, session, {}, False, 1.0], 5)


async def test_no_quorum_no_leader(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="minority")
    leader = await cluster.wait_for_leader(timeout=10)
    for member in cluster.members:
        if member != leader:
            await cluster.stop_member(member)
    # The leader cannot commit; check-quorum makes it step down, so the write's outcome is
    # unknown (it was proposed), and later writes find no leader.
    with pytest.raises(OutcomeUnknown):
        await cluster.write({"key": "a", "value": 1}, timeout=5)
    with pytest.raises(NoLeader):
        await cluster.write({"key": "a", "value": 2}, timeout=2)
    assert not await cluster.has_quorum(timeout=1)
    await cluster.stop()


async def test_several_groups_on_one_node_stay_apart(node: Any) -> None:
    # Groups share the node's host and the RAFT channel; each keeps its own log and state.
    kv = await Cluster.start(nodes=3, node=node, name="kv2")
    orders = await Cluster.start(nodes=3, node=node, name="orders", state_machine=OrderBook)
    await kv.wait_for_leader(timeout=10)
    await orders.wait_for_leader(timeout=10)
    assert await kv.write({"key": "a", "value": 1}) is None
    assert await orders.write({"op": "add_order", "id": "o1", "qty": 3}) == 1
    assert await kv.read("a") == 1
    assert await orders.read("o1") == 3
    assert await kv.read("o1") is None
    assert await orders.read("a") is None
    assert (await kv.status())["commit"] != 0 and (await orders.status())["commit"] != 0
    await kv.stop()
    assert await orders.write({"op": "add_order", "id": "o2", "qty": 1}) == 2
    await orders.stop()
