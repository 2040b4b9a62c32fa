"""Supervision across nodes: every supervisor verb works on a supervisor of another node, by pid
or as ``(name, node)``; child specs cross the wire by reference, checked against the receiving
node's ``spawn_allow``. Two nodes in one event loop over loopback TCP; the test runs as node b
(the node it entered last), and every pid of a it uses came over the wire, so each call goes
through distribution."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import ember
from ember import Supervisor, child
from ember.transport._config import TransportConfig

pytestmark = pytest.mark.ember_realtime

COOKIE = "test-cookie"
BOUND = 10.0


class Worker(ember.Actor):
    def __init__(self, tag: str = "w") -> None:
        self.tag = tag

    async def receive(self, msg: Any) -> Any:
        match msg:
            case "node":
                return self.node.name
            case "crash":
                raise RuntimeError("crash")
        return self.tag


class Broken(ember.Actor):
    async def started(self) -> None:
        raise ValueError("cannot start")


def fast() -> TransportConfig:
    return TransportConfig(heartbeat_interval=0.05, heartbeat_timeout=0.5)


@contextlib.asynccontextmanager
async def pair(**a_kwargs: Any) -> AsyncIterator[tuple[ember.Node, ember.Node]]:
    async with ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=fast(), **a_kwargs) as a:
        async with ember.Node(
            "b", listen="127.0.0.1:0", cookie=COOKIE, config=fast(), connect=[f"a@{a.address}"]
        ) as b:
            yield a, b


SUPERVISOR = "ember.actors._supervisor:Supervisor"


async def test_every_supervisor_verb_works_on_a_remote_supervisor() -> None:
    async with pair() as (_a, b), asyncio.timeout(BOUND):
        sup = await b.spawn(SUPERVISOR, [child(Worker, "first", id="first")], name="sup", on="a")
        for ref in (sup, ("sup", "a")):  # by pid, and by name on its node
            [row] = await Supervisor.which_children(ref)
            assert (row.id, row.kind, row.behaviour) == ("first", "worker", Worker)
            assert row.pid is not None and row.pid.node == "a"
            assert await Supervisor.count_children(ref) == {
                "specs": 1,
                "active": 1,
                "supervisors": 0,
                "workers": 1,
            }
        pid = await Supervisor.start_child(sup, child(Worker, "second", id="second"))
        assert pid.node == "a" and await b.call(pid, "node") == "a"
        assert await b.call(pid, "tag") == "second"
        await Supervisor.terminate_child(("sup", "a"), "second")
        assert [c.pid for c in await Supervisor.which_children(sup)][1] is None
        again = await Supervisor.restart_child(sup, "second")
        assert again.node == "a" and again != pid
        await Supervisor.terminate_child(sup, "second")
        await Supervisor.delete_child(sup, "second")
        assert [c.id for c in await Supervisor.which_children(sup)] == ["first"]
        # a nested supervisor, specs and all, travels too
        nested = await Supervisor.start_child(
            sup, child(Supervisor, [child(Worker, "deep")], id="nested")
        )
        [deep] = await Supervisor.which_children(nested)
        assert deep.pid is not None and await b.call(deep.pid, "tag") == "deep"
        kinds = {c.id: c.kind for c in await Supervisor.which_children(sup)}
        assert kinds == {"first": "worker", "nested": "supervisor"}


async def test_a_remote_simple_one_for_one_supervisor() -> None:
    async with pair() as (_a, b), asyncio.timeout(BOUND):
        template = [child(Worker, restart="temporary")]
        pool = await b.spawn(SUPERVISOR, template, strategy="simple_one_for_one", on="a")
        pids = [await Supervisor.start_child(pool, f"job-{i}") for i in range(3)]
        assert [await b.call(p, "tag") for p in pids] == ["job-0", "job-1", "job-2"]
        await Supervisor.terminate_child(pool, pids[1])
        rows = await Supervisor.which_children(pool)
        assert [r.pid for r in rows] == [pids[0], pids[2]] and {r.id for r in rows} == {None}


async def test_remote_supervisor_errors_arrive_with_their_type() -> None:
    async with pair() as (_a, b), asyncio.timeout(BOUND):
        sup = await b.spawn(SUPERVISOR, [child(Worker, id="w")], name="sup", on="a")
        with pytest.raises(ember.UsageError, match="already started"):
            await Supervisor.start_child(sup, child(Worker, id="w"))
        with pytest.raises(ember.UsageError, match="no child"):
            await Supervisor.restart_child(sup, "ghost")
        with pytest.raises(ember.UsageError, match="is running"):
            await Supervisor.delete_child(("sup", "a"), "w")
        with pytest.raises(ember.StartError) as info:
            await Supervisor.start_child(sup, child(Broken, id="broken"))
        assert info.value.reason == ("exception", "builtins.ValueError", "cannot start")
        with pytest.raises(ember.NoProc) as gone:
            await Supervisor.which_children(("nosuch", "a"))
        assert gone.value.pid == ("nosuch", "a")

        class Local(ember.Actor):  # not importable by another node
            pass

        with pytest.raises(ember.UnsendableError, match="cannot be imported"):
            await Supervisor.start_child(sup, child(Local))
        assert [c.id for c in await Supervisor.which_children(sup)] == ["w"]


async def test_a_child_spec_is_checked_against_the_receiving_nodes_spawn_allow() -> None:
    async with pair(spawn_allow=("examples",)) as (a, b), asyncio.timeout(BOUND):
        sup = await b.spawn(SUPERVISOR, on="a")
        with pytest.raises(ember.UsageError, match="not allowed on a"):
            await Supervisor.start_child(sup, child(Worker))
        # nested specs are checked too; Ember's own Supervisor is always allowed
        with pytest.raises(ember.UsageError, match="not allowed on a"):
            await Supervisor.start_child(sup, child(Supervisor, [child(Worker)], id="n"))
        from examples.cluster_actors import Counter

        pid = await Supervisor.start_child(sup, child(Counter, 5))
        assert await b.call(pid, "get") == ("a", 5)
        assert a.dist is not None and a.dist.undecodable == 2


async def test_names_on_other_nodes_take_send_cast_and_call() -> None:
    async with pair() as (a, b), asyncio.timeout(BOUND):
        worker = "tests.dist.test_dist_supervision:Worker"
        pid = await b.spawn(worker, "named", name="worker", on="a")
        assert await b.call(("worker", "a"), "tag") == "named"
        assert await a.call(("worker", "a"), "tag") == "named"  # its own node: local
        before = a.statistics().counters["messages_processed"]
        b.send(("worker", "a"), "tag")
        b.cast(("worker", "a"), "tag")
        b.send(("nobody", "a"), "lost")  # as Erlang's {Name, Node} ! Msg: no error
        assert await b.call(pid, "tag") == "named"  # behind the sends on one channel
        assert a.statistics().counters["messages_processed"] == before + 3
        assert a.statistics().counters["dropped_dead"] >= 1
        with pytest.raises(ember.UnknownName):
            b.send(("nobody", "b"), "x")  # a name on this node is checked here
