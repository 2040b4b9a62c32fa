"""Local names, send_after/cancel_timer and receive timeouts (on virtual time: exact instants)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actorkit import Idle, inside, puppet

import ember
from ember import NameTaken, NoProc, UnknownName, UsageError

# -- names ----------------------------------------------------------------------------------------


async def test_register_whereis_unregister() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        assert node.whereis("svc") is None
        node.register("svc", pid)
        assert node.whereis("svc") == pid
        assert ember.whereis("svc") == pid
        assert "svc" in node.registered()
        assert node.process_info(pid).name == "svc"  # type: ignore[union-attr]
        node.unregister("svc")
        assert node.whereis("svc") is None
        assert node.process_info(pid).name is None  # type: ignore[union-attr]
        with pytest.raises(UnknownName):
            node.unregister("svc")


async def test_register_from_inside_a_process() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        await inside(node, pid, lambda me: ember.register(("svc", 1), me.pid))
        assert node.whereis(("svc", 1)) == pid
        await inside(node, pid, lambda _: ember.unregister(("svc", 1)))
        assert node.whereis(("svc", 1)) is None


async def test_a_taken_name_raises_name_taken_with_its_owner() -> None:
    async with ember.Node("a") as node:
        owner, _ = await puppet(node)
        other, _ = await puppet(node)
        node.register("svc", owner)
        with pytest.raises(NameTaken) as info:
            node.register("svc", other)
        assert info.value.owner == owner and info.value.name == "svc"
        assert node.whereis("svc") == owner


async def test_a_process_has_at_most_one_name() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        node.register("one", pid)
        with pytest.raises(UsageError):
            node.register("two", pid)
        assert node.whereis("two") is None


async def test_bad_names_and_dead_processes_cannot_be_registered() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        with pytest.raises(UsageError):
            node.register(None, pid)
        with pytest.raises(UsageError):
            node.register(pid, pid)
        dead = await node.spawn(Idle)
        node.exit(dead, "kill")
        with pytest.raises(NoProc):
            node.register("dead", dead)


async def test_a_name_is_freed_when_its_process_exits() -> None:
    async with ember.Node("a") as node:
        first, _ = await puppet(node, name="svc")
        exited = node.wait_exit(first)
        node.exit(first, "custom")
        await exited
        assert node.whereis("svc") is None
        assert "svc" not in node.registered()
        second, _ = await puppet(node, name="svc")
        assert node.whereis("svc") == second


async def test_send_and_call_by_name() -> None:
    async with ember.Node("a") as node:
        pid, inbox = await puppet(node, name="svc")
        ember.send("svc", "hello")
        node.send("svc", "again")
        assert await inbox.get() == "hello"
        assert await inbox.get() == "again"
        assert await inside(node, "svc", lambda me: me.pid) == pid  # type: ignore[arg-type]


# -- send_after and cancel_timer ------------------------------------------------------------------


class Clocked(ember.Actor):
    """Records ``(loop time, message)`` for every message."""

    def __init__(self, got: asyncio.Queue[tuple[float, Any]]) -> None:
        self.got = got

    async def receive(self, msg: Any) -> Any:
        if callable(msg):
            return msg(self)
        self.got.put_nowait((asyncio.get_running_loop().time(), msg))
        return None


async def clocked(node: ember.Node, **kwargs: Any) -> tuple[ember.Pid, asyncio.Queue[Any]]:
    got: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
    return await node.spawn(Clocked, got, **kwargs), got


async def test_send_after_delivers_after_the_delay() -> None:
    async with ember.Node("a") as node:
        pid, got = await clocked(node, name="clock")
        start = asyncio.get_running_loop().time()
        ember.send_after(2.0, pid, "by pid")
        node.send_after(1.0, "clock", "by name")
        assert await got.get() == (start + 1.0, "by name")
        assert await got.get() == (start + 2.0, "by pid")


async def test_actor_send_after_sends_to_itself() -> None:
    async with ember.Node("a") as node:
        pid, got = await clocked(node)
        start = asyncio.get_running_loop().time()
        await node.call(pid, lambda me: me.send_after(5.0, "tick"))
        assert await got.get() == (start + 5.0, "tick")


async def test_send_after_to_a_process_gone_by_then_is_dropped() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle)
        node.send_after(1.0, pid, "late")
        node.send_after(1.0, "nobody", "late")  # no error, now or when it fires
        node.exit(pid, "kill")
        before = node.statistics().counters["dropped_dead"]
        await asyncio.sleep(2.0)
        assert node.statistics().counters["dropped_dead"] == before + 2


async def test_cancel_timer_returns_the_time_left_and_stops_the_message() -> None:
    async with ember.Node("a") as node:
        pid, got = await clocked(node)
        timer = node.send_after(10.0, pid, "never")
        await asyncio.sleep(3.0)
        left = ember.cancel_timer(timer)
        assert left == pytest.approx(7.0)
        assert ember.cancel_timer(timer) is None  # already cancelled
        await asyncio.sleep(20.0)
        await node.call(pid, lambda me: None)
        assert got.empty()


async def test_cancel_timer_after_it_fired_returns_none() -> None:
    async with ember.Node("a") as node:
        pid, got = await clocked(node)
        timer = node.send_after(1.0, pid, "fired")
        assert (await got.get())[1] == "fired"
        assert node.cancel_timer(timer) is None


async def test_cancel_timer_that_is_due_but_has_not_fired_stops_it() -> None:
    """The deadline has passed but the loop has not run the timer yet: cancelling still stops
    the message, so cancel_timer must not answer None ("it fired") -- the caller would then wait
    for a message that never comes."""
    async with ember.Node("a") as node:
        pid, got = await clocked(node)
        timer = node.send_after(1.0, pid, "due")
        loop = asyncio.get_running_loop()
        loop.advance(5.0)  # type: ignore[attr-defined]  # the clock moves, no callback runs
        left = node.cancel_timer(timer)
        assert left == 0.0
        await asyncio.sleep(10.0)
        await node.call(pid, lambda me: None)
        assert got.empty()


# -- receive timeouts -----------------------------------------------------------------------------


class Sleepy(Clocked):
    receive_timeout = 1.0


class SleepyStarted(Sleepy):
    async def started(self) -> None:
        pass


@pytest.mark.parametrize("cls", [Sleepy, SleepyStarted])
async def test_receive_timeout_fires_after_idleness(cls: type[Clocked]) -> None:
    """Counting starts when the process becomes idle, with or without a started hook."""
    async with ember.Node("a") as node:
        start = asyncio.get_running_loop().time()
        got: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        await node.spawn(cls, got)
        assert await got.get() == (start + 1.0, ember.RECEIVE_TIMEOUT)
        # It fires again after each further idle second (the timeout message is a message).
        assert await got.get() == (start + 2.0, ember.RECEIVE_TIMEOUT)


async def test_receive_timeout_is_rearmed_by_messages() -> None:
    async with ember.Node("a") as node:
        loop = asyncio.get_running_loop()
        start = loop.time()
        got: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        pid = await node.spawn(SleepyStarted, got)
        for i in range(10):  # a message every 0.5 s keeps the timeout from firing
            await asyncio.sleep(0.5)
            node.send(pid, i)
        msgs = [(await got.get())[1] for _ in range(10)]
        assert msgs == list(range(10))
        assert await got.get() == (start + 5.0 + 1.0, ember.RECEIVE_TIMEOUT)


async def test_receive_timeout_is_rearmed_by_calls() -> None:
    async with ember.Node("a") as node:
        start = asyncio.get_running_loop().time()
        got: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        pid = await node.spawn(SleepyStarted, got)
        await asyncio.sleep(0.75)
        await node.call(pid, lambda me: None)
        assert await got.get() == (start + 1.75, ember.RECEIVE_TIMEOUT)


async def test_set_receive_timeout_changes_and_cancels_it() -> None:
    async with ember.Node("a") as node:
        loop = asyncio.get_running_loop()
        pid, got = await clocked(node)
        start = loop.time()
        await node.call(pid, lambda me: me.set_receive_timeout(3.0))
        assert await got.get() == (start + 3.0, ember.RECEIVE_TIMEOUT)
        await node.call(pid, lambda me: me.set_receive_timeout(None))
        await asyncio.sleep(100.0)
        assert got.empty()
        assert node.process_info(pid).status == "idle"  # type: ignore[union-attr]


async def test_receive_timeout_set_in_receive_for_the_next_wait_only() -> None:
    class OneShot(Clocked):
        receive_timeout = 1.0

        async def receive(self, msg: Any) -> Any:
            if msg is ember.RECEIVE_TIMEOUT:
                self.set_receive_timeout(None)  # gen_server style: no timeout next time
            return await super().receive(msg)

    async with ember.Node("a") as node:
        start = asyncio.get_running_loop().time()
        got: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        pid = await node.spawn(OneShot, got)
        assert await got.get() == (start + 1.0, ember.RECEIVE_TIMEOUT)
        await asyncio.sleep(60.0)
        await node.call(pid, lambda me: None)
        assert got.empty()
