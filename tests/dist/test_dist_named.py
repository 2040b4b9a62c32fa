"""link, unlink, monitor and demonitor take ``(name, node)`` as send and call do (Erlang's
``{Name, Node}``): the name is looked up on its node, and the link or monitor is with the
process it names there. A name that names nobody gives a Down ``noproc`` (OTP's
``monitor(process, {Name, Node})``) or an exit signal ``noproc`` naming it.

Two nodes in one event loop over loopback TCP; the watcher is a process of node ``b``.
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


class Watcher(ember.Actor):
    """Links and monitors on request; keeps every other message. A plain ``def`` receive, so
    a call to it runs at once, in the caller's step (before any frame can arrive)."""

    def __init__(self, inbox: asyncio.Queue[Any], trap: bool) -> None:
        self.inbox = inbox
        self.set_trap_exits(trap)

    def receive(self, msg: Any) -> Any:
        match msg:
            case ("monitor", dest):
                return ember.monitor(dest)
            case ("demonitor", ref):
                return ember.demonitor(ref)
            case ("link", dest):
                ember.link(dest)
            case ("unlink", dest):
                ember.unlink(dest)
            case _:
                self.inbox.put_nowait(msg)
        return None


async def watcher(b: ember.Node, trap: bool = True) -> tuple[ember.Pid, asyncio.Queue[Any]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    return await b.spawn(Watcher, inbox, trap), inbox


async def nothing_more(a: ember.Node, b: ember.Node, pid: ember.Pid, inbox: Any) -> None:
    """Nothing else reached ``pid`` (on b) of what either node sent so far."""
    await settled(a, b)
    await b.call(pid, "flush")
    assert inbox.get_nowait() == "flush"
    assert inbox.empty()


async def test_monitor_a_name_on_another_node() -> None:
    async with two_nodes() as (a, b):
        target = await a.spawn(Idle, name="worker")
        w, inbox = await watcher(b)
        async with asyncio.timeout(BOUND):
            ref = await b.call(w, ("monitor", ("worker", "a")))
            await settled(a, b)
            info = a.process_info(target)
            assert info is not None and info.monitored_by == 1
            a.exit(target, "bye")
            assert await inbox.get() == Down(ref, target, "bye")  # the process it named
            # a name nobody holds there: Down noproc at once, naming the name (OTP)
            ref = await b.call(w, ("monitor", ("worker", "a")))
            assert await inbox.get() == Down(ref, ("worker", "a"), "noproc")
            assert b.process_info(w).monitoring == ()  # type: ignore[union-attr]


async def test_demonitor_a_name_on_another_node() -> None:
    async with two_nodes() as (a, b):
        target = await a.spawn(Idle, name="worker")
        w, inbox = await watcher(b)
        async with asyncio.timeout(BOUND):
            ref = await b.call(w, ("monitor", ("worker", "a")))
            assert await b.call(w, ("demonitor", ref)) is True
            await settled(a, b)
            assert a.process_info(target).monitored_by == 0  # type: ignore[union-attr]
            a.exit(target, "bye")
            await nothing_more(a, b, w, inbox)


async def test_no_down_arrives_after_demonitor_returns() -> None:
    """The target's Down is already on its way when the watcher demonitors: it is dropped
    on arrival (Erlang: once demonitor returns, no Down of that monitor is delivered)."""
    async with two_nodes() as (a, b):
        target = await a.spawn(Idle, name="worker")
        w, inbox = await watcher(b)
        async with asyncio.timeout(BOUND):
            by_pid = await b.call(w, ("monitor", target))
            by_name = await b.call(w, ("monitor", ("worker", "a")))
            await settled(a, b)
            a.exit(target, "kill")  # both Downs are queued to b now
            assert b.call(w, ("demonitor", by_pid)).result() is True  # eager: same step
            assert b.call(w, ("demonitor", by_name)).result() is True
            await nothing_more(a, b, w, inbox)


@pytest.mark.parametrize("trap", [True, False])
async def test_link_a_name_on_another_node(trap: bool) -> None:
    async with two_nodes() as (a, b):
        target = await a.spawn(Idle, name="worker")
        w, inbox = await watcher(b, trap)
        gone = b.wait_exit(w)
        async with asyncio.timeout(BOUND):
            await b.call(w, ("link", ("worker", "a")))
            await settled(a, b)
            assert a.process_info(target).links == (w,)  # type: ignore[union-attr]
            assert b.process_info(w).links == (target,)  # type: ignore[union-attr]
            a.exit(target, "bye")
            if trap:
                assert await inbox.get() == Exit(target, "bye")
            else:
                assert await gone == "bye"


@pytest.mark.parametrize("trap", [True, False])
async def test_link_a_name_nobody_holds_on_another_node_is_an_exit_noproc(trap: bool) -> None:
    """As a local link to a missing name, except that the answer comes from the other node:
    an exit signal noproc from the destination (a trapping caller gets it as a message)."""
    async with two_nodes() as (a, b):
        w, inbox = await watcher(b, trap)
        gone = b.wait_exit(w)
        async with asyncio.timeout(BOUND):
            await b.call(w, ("link", ("ghost", "a")))
            if trap:
                assert await inbox.get() == Exit(("ghost", "a"), "noproc")
                assert b.process_info(w).links == ()  # type: ignore[union-attr]
            else:
                assert await gone == "noproc"


async def test_unlink_a_name_on_another_node_removes_both_sides() -> None:
    async with two_nodes() as (a, b):
        target = await a.spawn(Idle, name="worker")
        w, inbox = await watcher(b, trap=False)
        async with asyncio.timeout(BOUND):
            await b.call(w, ("link", ("worker", "a")))
            await b.call(w, ("unlink", ("worker", "a")))
            await settled(a, b)
            await settled(a, b)  # a's answer to the unlink has reached b too
            assert a.process_info(target).links == ()  # type: ignore[union-attr]
            assert b.process_info(w).links == ()  # type: ignore[union-attr]
            a.exit(target, "bye")
            await nothing_more(a, b, w, inbox)  # and it is alive: no exit reached it


async def test_a_lost_node_fires_noconnection_for_names_too() -> None:
    async with two_nodes() as (a, b):
        await a.spawn(Idle, name="worker")
        w, inbox = await watcher(b)
        async with asyncio.timeout(BOUND):
            ref = await b.call(w, ("monitor", ("worker", "a")))
            await b.call(w, ("link", ("worker", "a")))
            await settled(a, b)
            target = a.whereis("worker")
            await a.stop()
            got = {type(m).__name__: m for m in [await inbox.get(), await inbox.get()]}
            assert got["Down"].ref == ref and got["Down"].reason in ("shutdown", "noconnection")
            assert got["Exit"].pid == target


async def test_a_link_to_a_name_lost_with_its_node_before_the_answer_is_noconnection() -> None:
    async with two_nodes() as (a, b):
        await a.spawn(Idle, name="worker")
        w, inbox = await watcher(b)
        async with asyncio.timeout(BOUND):
            b.call(w, ("link", ("worker", "a"))).result()  # eager: the LINK is queued to a
            b.transport.disconnect("a")  # b reads nothing more from a: no answer comes
            assert await inbox.get() == Exit(("worker", "a"), "noconnection")


async def test_names_on_an_unreachable_node_get_noconnection() -> None:
    async with ember.Node("b", listen="127.0.0.1:0", cookie="c") as b:
        w, inbox = await watcher(b)
        async with asyncio.timeout(BOUND):
            ref = await b.call(w, ("monitor", ("worker", "nowhere")))
            assert await inbox.get() == Down(ref, ("worker", "nowhere"), "noconnection")
            await b.call(w, ("link", ("worker", "nowhere")))
            assert await inbox.get() == Exit(("worker", "nowhere"), "noconnection")


async def test_a_name_on_this_node_given_as_a_pair_is_the_local_name() -> None:
    async with two_nodes() as (a, b):
        here = await b.spawn(Idle, name="local")
        w, inbox = await watcher(b)
        ref = await b.call(w, ("monitor", ("local", "b")))
        await b.call(w, ("link", ("local", "b")))
        assert b.process_info(here).links == (w,)  # type: ignore[union-attr]
        b.exit(here, "bye")
        got = {type(m).__name__: m for m in [await inbox.get(), await inbox.get()]}
        assert got["Down"] == Down(ref, here, "bye")
        assert got["Exit"] == Exit(here, "bye")
