"""Every error a ``Cluster`` call raises is typed, documented and tells the truth (issue 10), on
in-process groups in virtual time; across nodes in ``test_cluster_errors_nodes.py``."""

from __future__ import annotations

import asyncio
import gc
import re
from typing import Any

import pytest

from ember import UnsendableError, UsageError
from ember.consensus import (
    ChangePending,
    Cluster,
    ClusterConfig,
    CommandTooLarge,
    GroupExists,
    KVStateMachine,
    NoLeader,
    ReadTimeout,
    StateMachine,
    UnknownGroup,
    apply,
)


class Tally(StateMachine):
    """Another state machine than the KV one."""

    def __init__(self) -> None:
        self.state = {"n": 0}

    @apply("add")
    def add(self, cmd: dict[str, Any]) -> int:
        self.state["n"] += cmd["k"]
        return int(self.state["n"])

    def read(self, key: Any) -> Any:
        if key == "a set":
            return {1, 2}
        if key == "3 MB":
            return b"x" * 3_000_000
        return self.state.get(key)


class Unretrieved:
    """Collects what the loop reports as never retrieved (futures and tasks)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        loop = asyncio.get_running_loop()
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._handle)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "never retrieved" in message:
            self.seen.append(f"{message}: {context.get('exception')!r}")
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def check(self) -> None:
        gc.collect()
        assert self.seen == []


async def test_an_unencodable_command_or_key_is_unsendable_and_nothing_is_written(
    node: Any,
) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="sets")
    await cluster.write({"key": "b", "value": 0})
    before = (await cluster.status())["last_index"]
    with pytest.raises(UnsendableError, match="set"):
        await cluster.write({"key": "a", "value": {1, 2}})
    with pytest.raises(UnsendableError, match="object"):
        await cluster.read(object())
    assert (await cluster.status())["last_index"] == before
    assert await cluster.write({"key": "a", "value": [1, 2]}) is None  # the handle still works
    await cluster.stop()


async def test_a_command_over_the_limit_is_refused_up_front_naming_the_limit(node: Any) -> None:
    config = ClusterConfig(max_command_bytes=1000)
    cluster = await Cluster.start(nodes=3, node=node, name="big", config=config)
    await cluster.wait_for_leader(timeout=10)
    before = (await cluster.status())["last_index"]
    with pytest.raises(CommandTooLarge, match=r"max_command_bytes \(1,000 bytes\)") as err:
        await cluster.write({"key": "a", "value": b"x" * 2000})
    assert err.value.limit == 1000 and err.value.size > 2000
    assert isinstance(err.value, UsageError)
    # A handle that does not know the limit (connect) is refused by the members.
    other = Cluster.connect("big", cluster.members, node=node)
    with pytest.raises(CommandTooLarge, match="max_command_bytes"):
        await other.write({"key": "a", "value": b"x" * 2000})
    assert (await cluster.status())["last_index"] == before  # nothing reached the log
    await cluster.write({"key": "a", "value": b"x" * 500})
    await cluster.stop()


def test_the_default_limit_is_one_mebibyte_and_validated() -> None:
    assert ClusterConfig().max_command_bytes == 1 << 20
    with pytest.raises(UsageError, match="max_command_bytes"):
        ClusterConfig(max_command_bytes=0)


async def test_starting_an_existing_group_with_another_state_machine_is_refused(
    node: Any,
) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="kv")
    await cluster.write({"key": "a", "value": 1})
    again = await Cluster.start(nodes=3, node=node, name="kv")  # the same: a handle on it
    assert await again.read("a") == 1
    with pytest.raises(GroupExists, match=r"state machine .*KVStateMachine.*asked for .*Tally"):
        await Cluster.start(nodes=3, node=node, name="kv", state_machine=Tally)
    with pytest.raises(GroupExists, match=r"snapshot_every=10000 \(asked for 5\)"):
        await Cluster.start(nodes=3, node=node, name="kv", config=ClusterConfig(snapshot_every=5))
    assert await cluster.read("a") == 1  # the group is untouched
    await cluster.stop()


async def test_a_stopped_member_restarted_by_start_must_match_too(tmp_path: Any) -> None:
    import ember

    async with ember.Node("solo", data_dir=tmp_path) as node:
        cluster = await Cluster.start(nodes=1, node=node, name="kept")
        await cluster.write({"key": "a", "value": 1})
        await cluster.stop()
        with pytest.raises(GroupExists, match="state machine"):
            await Cluster.start(nodes=1, node=node, name="kept", state_machine=Tally)
        resumed = await Cluster.start(nodes=1, node=node, name="kept", state_machine=KVStateMachine)
        assert await resumed.read("a") == 1
        await resumed.stop()


async def test_a_group_that_does_not_exist_says_so_at_once(node: Any) -> None:
    ghost = Cluster.connect("ghost", [f"{node.name}#1", f"{node.name}#2"], node=node)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for call in (
        ghost.write({"key": "a", "value": 1}, timeout=30),
        ghost.wait_for_leader(timeout=30),
        ghost.read("a", timeout=30),
        ghost.status(timeout=30),
    ):
        with pytest.raises(UnknownGroup, match="no group 'ghost' on test") as err:
            await call
        assert err.value.group == "ghost" and err.value.nodes == ["test"]
    assert loop.time() - t0 < 0.5  # not after the 30 s timeouts
    with pytest.raises(UnknownGroup):
        await ghost.status(f"{node.name}#1")


async def test_no_leader_says_how_long_it_waited(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="q")
    leader = await cluster.wait_for_leader(timeout=10)
    for member in cluster.members:
        if member != leader:
            await cluster.stop_member(member)
    await asyncio.sleep(2)  # check-quorum: the leader steps down
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(NoLeader) as err:
        await cluster.write({"key": "a", "value": 1}, timeout=3)
    waited = loop.time() - t0
    assert 2.9 <= waited <= 3.1
    said = re.search(r"answered in ([0-9.]+) s", str(err.value))
    assert said is not None and abs(float(said.group(1)) - waited) < 0.1, str(err.value)
    with pytest.raises(NoLeader, match=r"answered in (2|1\.9\d*) s"):
        await cluster.wait_for_leader(timeout=2)
    await cluster.stop()


async def test_a_linearizable_read_without_quorum_is_a_read_timeout(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="rq")
    leader = await cluster.wait_for_leader(timeout=10)
    await cluster.write({"key": "a", "value": 1})
    for member in cluster.members:
        if member != leader:
            await cluster.stop_member(member)
    for where in (None, leader, next(m for m in cluster.members if m != leader)):
        with pytest.raises(ReadTimeout, match="not served within 2 s") as err:
            await cluster.read("a", timeout=2, member=where)
        assert isinstance(err.value, TimeoutError)
    assert await cluster.read("a", consistency="stale", member=leader) == 1
    await cluster.stop()


async def test_a_read_result_that_cannot_be_sent_is_a_usage_error(node: Any) -> None:
    cluster = await Cluster.start(nodes=1, node=node, name="odd", state_machine=Tally)
    await cluster.wait_for_leader(timeout=10)
    # In-process the result is not encoded; a remote reader gets a typed error (see the nodes
    # tests). Here the read itself works.
    assert await cluster.read("a set") == {1, 2}
    await cluster.stop()


async def test_membership_changes_refused_for_now_are_change_pending(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="mem")
    await cluster.wait_for_leader(timeout=10)
    # Two additions at once: the second reaches the leader while the first is not applied.
    results = await asyncio.gather(
        cluster.add_member(f"{node.name}#4", timeout=10),
        cluster.add_member(f"{node.name}#5", timeout=10),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ChangePending)]
    assert len(refused) == 1, results
    assert refused[0].reason == "conf_change_pending" and refused[0].op == "add_learner"
    with pytest.raises(UsageError, match="already a member"):
        await cluster.add_member(cluster.members[0], timeout=10)
    await cluster.stop()


async def test_transfer_to_a_non_voter_is_a_usage_error(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="tr")
    await cluster.wait_for_leader(timeout=10)
    with pytest.raises(UsageError, match="not a voter"):
        await cluster.transfer_leadership("nobody", timeout=5)
    await cluster.stop()


async def test_a_cluster_has_a_useful_repr(node: Any) -> None:
    cluster = await Cluster.start(nodes=3, node=node, name="shown")
    leader = await cluster.wait_for_leader(timeout=10)
    text = repr(cluster)
    assert text.startswith("<Cluster 'shown' members=['test#1', 'test#2', 'test#3']")
    assert f"leader={leader!r}" in text and "via='test'" in text and cluster.client_id in text
    await cluster.stop()


async def test_failed_calls_leave_no_exception_unretrieved(node: Any) -> None:
    watch = Unretrieved()
    cluster = await Cluster.start(nodes=3, node=node, name="u")
    leader = await cluster.wait_for_leader(timeout=10)
    ghost = Cluster.connect("none", ["test#1"], node=node)
    for call in (
        ghost.write({"key": "a"}, timeout=1),
        cluster.write({"key": "a", "value": {1}}),
        Cluster.start(nodes=3, node=node, name="u", state_machine=Tally),
    ):
        with pytest.raises((UnknownGroup, UnsendableError, GroupExists)):
            await call
    # Writes and reads in flight while the quorum goes: each fails, none is left unobserved.
    pending = [
        asyncio.ensure_future(cluster.write({"key": f"k{i}", "value": i}, timeout=2))
        for i in range(5)
    ] + [asyncio.ensure_future(cluster.read("a", timeout=2)) for _ in range(5)]
    for member in cluster.members:
        if member != leader:
            await cluster.stop_member(member)
    await asyncio.gather(*pending, return_exceptions=True)
    await cluster.stop()
    await asyncio.sleep(1)
    watch.check()
