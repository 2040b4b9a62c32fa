"""spawn_link and spawn_monitor on another node are atomic, as Erlang's spawn_link/4 and
spawn_monitor/4: the link or monitor exists before the child runs, so a child that exits at
once still reaches its spawner, and a spawn that fails raises what a local one would.

Two nodes in one event loop over loopback TCP; node ``a`` imports the children below by
reference, and the spawner is a process of node ``b``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ember
from ember import Down, Exit

from .distkit import Idle, settled, two_nodes

pytestmark = pytest.mark.ember_realtime

BOUND = 10.0  # generous: every outcome below is expected within milliseconds
HERE = "tests.dist.test_dist_spawn_link"
GATES: dict[str, tuple[asyncio.Event, asyncio.Event, asyncio.Event]] = {}
"""Per test: the child entered started, it may leave, it left. Both nodes share this process,
so a child on node a and the test meet here."""


class CrashAtOnce(ember.Actor):
    """Crashes in its first message, which it sent itself in started."""

    async def started(self) -> None:
        ember.send(self.pid, "go")

    async def receive(self, msg: Any) -> Any:
        raise RuntimeError("boom")


class StopsInStarted(ember.Actor):
    """Exits with ``bye`` the moment started returns: its exit signal leaves right after."""

    async def started(self) -> None:
        self.stop("bye")


class FailsToStart(ember.Actor):
    async def started(self) -> None:
        raise ValueError("no database")


class BadInit(ember.Actor):
    def __init__(self, n: int) -> None:
        raise KeyError(n)


class Gated(ember.Actor):
    """Stays in started until the test opens its gate."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def started(self) -> None:
        entered, leave, left = GATES[self.key]
        entered.set()
        await leave.wait()
        left.set()  # and return at once: the answer to the spawn leaves in this same step


class Spawner(ember.Actor):
    """Spawns on node a when asked and reports the outcome; keeps every other message."""

    def __init__(self, inbox: asyncio.Queue[Any], trap: bool) -> None:
        self.inbox = inbox
        self.set_trap_exits(trap)

    async def receive(self, msg: Any) -> Any:
        match msg:
            case (("spawn_link" | "spawn_monitor") as how, target, args, kwargs):
                spawn = ember.spawn_link if how == "spawn_link" else ember.spawn_monitor
                try:
                    return await spawn(f"{HERE}:{target}", *args, on="a", **kwargs)
                except ember.EmberError as exc:
                    return exc
            case _:
                self.inbox.put_nowait(msg)
        return None


async def spawner(b: ember.Node, trap: bool) -> tuple[ember.Pid, asyncio.Queue[Any]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    return await b.spawn(Spawner, inbox, trap), inbox


@pytest.mark.parametrize("trap", [True, False])
@pytest.mark.parametrize(
    ("child", "reason"),
    [("CrashAtOnce", ("exception", "builtins.RuntimeError", "boom")), ("StopsInStarted", "bye")],
)
async def test_spawn_link_on_another_node_links_before_the_child_runs(
    child: str, reason: Any, trap: bool
) -> None:
    async with two_nodes() as (a, b):
        parent, inbox = await spawner(b, trap)
        gone = b.wait_exit(parent)
        async with asyncio.timeout(BOUND):
            if trap:
                pid = await b.call(parent, ("spawn_link", child, (), {}))
                assert isinstance(pid, ember.Pid) and pid.node == "a"
                assert await inbox.get() == Exit(pid, reason)
            else:  # the child's exit takes its spawner with it, maybe before spawn returns
                b.send(parent, ("spawn_link", child, (), {}))
                assert await gone == reason


@pytest.mark.parametrize(
    ("child", "reason"),
    [("CrashAtOnce", ("exception", "builtins.RuntimeError", "boom")), ("StopsInStarted", "bye")],
)
async def test_spawn_monitor_on_another_node_monitors_before_the_child_runs(
    child: str, reason: Any
) -> None:
    async with two_nodes() as (a, b):
        parent, inbox = await spawner(b, trap=False)
        async with asyncio.timeout(BOUND):
            pid, ref = await b.call(parent, ("spawn_monitor", child, (), {}))
            assert await inbox.get() == Down(ref, pid, reason)
            assert b.is_alive(parent)  # a monitor, not a link


@pytest.mark.parametrize("how", ["spawn_link", "spawn_monitor"])
async def test_a_remote_child_that_fails_to_start_raises_start_error_only(how: str) -> None:
    """As for a local spawn: StartError with the reason, and neither an exit signal nor a
    Down (the child is unlinked and demonitored before it goes)."""
    async with two_nodes() as (a, b):
        parent, inbox = await spawner(b, trap=False)
        async with asyncio.timeout(BOUND):
            err = await b.call(parent, (how, "FailsToStart", (), {}))
            assert isinstance(err, ember.StartError)
            assert err.reason == ("exception", "builtins.ValueError", "no database")
            await settled(a, b)
            await b.call(parent, "flush")  # handled after anything already in its mailbox
            assert inbox.get_nowait() == "flush"
            assert inbox.empty()
            info = b.process_info(parent)
            assert info is not None and info.links == () and info.monitoring == ()


@pytest.mark.parametrize("how", ["spawn_link", "spawn_monitor"])
async def test_a_refused_remote_spawn_link_raises_what_a_spawn_raises(how: str) -> None:
    async with two_nodes(spawn_allow=(HERE,)) as (a, b):
        holder = await a.spawn(Idle, name="db")
        parent, _ = await spawner(b, trap=False)
        async with asyncio.timeout(BOUND):
            refused = await b.call(parent, (how, "Nowhere", (), {}))  # not importable
            assert isinstance(refused, ember.UsageError)
            taken = await b.call(parent, (how, "Idle", (), {"name": "db"}))
            assert isinstance(taken, ember.NameTaken) and taken.owner == holder
            bad = await b.call(parent, (how, "BadInit", (7,), {}))
            assert isinstance(bad, ember.RemoteError) and bad.type_name == "builtins.KeyError"
            info = b.process_info(parent)
            assert info is not None and info.links == () and info.monitoring == ()
    async with two_nodes(spawn_allow=("examples",)) as (a, b):
        parent, _ = await spawner(b, trap=False)
        async with asyncio.timeout(BOUND):
            err = await b.call(parent, (how, "Idle", (), {}))
            assert isinstance(err, ember.UsageError) and "not allowed on a" in str(err)


async def test_spawn_link_outside_a_process_or_from_a_local_node_is_refused() -> None:
    async with ember.Node("solo") as node:
        with pytest.raises(ember.UsageError, match="from a process"):
            await node.spawn_link(Idle, on="a")
        parent, _ = await spawner(node, trap=False)
        err = await node.call(parent, ("spawn_link", "Idle", (), {}))
        assert isinstance(err, ember.UsageError) and "not distributed" in str(err)


@pytest.mark.parametrize("how", ["spawn_link", "spawn_monitor"])
async def test_a_spawner_gone_before_the_answer_leaves_no_dangling_link_or_monitor(
    how: str,
) -> None:
    """The spawner is killed while the child is still in started: once the child has
    started, a linked child gets exit ``noproc`` (the link's other end does not exist), a
    monitored one loses the monitor."""
    key = f"gone-{how}"
    entered, leave, left = GATES[key] = (asyncio.Event(), asyncio.Event(), asyncio.Event())
    try:
        async with two_nodes() as (a, b):
            parent, _ = await spawner(b, trap=False)
            async with asyncio.timeout(BOUND):
                b.send(parent, (how, "Gated", (key,), {"name": "gated"}))
                await entered.wait()
                child = a.whereis("gated")
                assert child is not None
                killed = b.wait_exit(parent)
                b.exit(parent, "kill")
                assert await killed == "killed"
                leave.set()
                if how == "spawn_link":
                    assert await a.wait_exit(child) == "noproc"
                else:
                    await left.wait()  # the answer is on its way to b
                    await settled(a, b)  # b has it, and has sent a its DEMONITOR
                    await settled(a, b)  # a has applied the DEMONITOR
                    info = a.process_info(child)
                    assert info is not None and info.monitored_by == 0
    finally:
        GATES.pop(key, None)
