"""Calls to an idle process whose receive cannot suspend run at once, in the caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ember
from ember.actors._actor import can_suspend


async def plain(self: Any, msg: Any) -> Any:
    return msg


async def awaits(self: Any, msg: Any) -> Any:
    await asyncio.sleep(0)


async def async_with(self: Any, msg: Any) -> Any:
    async with msg:
        return None


async def async_for(self: Any, msg: Any) -> Any:
    async for _ in msg:
        pass


async def async_comprehension(self: Any, msg: Any) -> Any:
    return [x async for x in msg]


async def inner_function_awaits(self: Any, msg: Any) -> Any:
    async def helper() -> None:
        await asyncio.sleep(0)

    return helper  # the nested coroutine is not awaited here


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (plain, False),
        (awaits, True),
        (async_with, True),
        (async_for, True),
        (async_comprehension, True),
        (inner_function_awaits, False),
    ],
)
def test_can_suspend_reads_the_functions_own_code(fn: Any, expected: bool) -> None:
    assert can_suspend(fn) is expected


class WhereAmI(ember.Actor):
    """Answers with the task its receive runs in, and whether it is itself then."""

    async def receive(self, msg: Any) -> Any:
        if msg == "boom":
            raise RuntimeError("boom")
        return asyncio.current_task(), ember.self() == self.pid


class WhereAmIAwaiting(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        if msg is None:
            await asyncio.sleep(0)
        return asyncio.current_task(), ember.self() == self.pid


async def test_a_receive_without_await_runs_in_the_caller(node) -> None:
    pid = await node.spawn(WhereAmI)
    task, is_self = await ember.call(pid, "where")
    assert task is asyncio.current_task()
    assert is_self  # it runs as the process, not as the caller
    with pytest.raises(ember.UsageError):
        ember.self()  # and the caller is itself again afterwards (not a process)


async def test_a_receive_with_await_runs_in_a_worker(node) -> None:
    pid = await node.spawn(WhereAmIAwaiting)
    task, is_self = await ember.call(pid, "where")
    assert task is not asyncio.current_task()
    assert is_self


async def test_an_eager_crash_ends_the_process_and_fails_the_call(node) -> None:
    pid = await node.spawn(WhereAmI)
    exited = node.wait_exit(pid)
    with pytest.raises(ember.NoProc) as info:
        await ember.call(pid, "boom")
    assert isinstance(info.value.reason, RuntimeError)
    assert isinstance(await exited, RuntimeError)
    assert node.process_info(pid) is None


async def test_a_loop_of_eager_calls_lets_the_event_loop_run(node) -> None:
    pid = await node.spawn(WhereAmI)
    ran = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(ran.set_result, True)
    for _ in range(200):  # more than the eager budget: some calls go through the scheduler
        await ember.call(pid, "where")
    assert ran.done()
