"""Helpers for the registry and pg tests: a process the test drives, and waiting on conditions.

:class:`Probe` records every message it receives (its :class:`Mailbox` is awaited by the test)
and runs ``Run(fn)`` inside itself, so ``ember.monitor``, ``node.pg.monitor_scope``... act for
it. Nothing here sleeps to synchronise: tests await a message or a condition with a bound.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import ember

WAIT = 10.0
"""Seconds to wait for something that must happen (virtual on the default loop)."""


class Mailbox:
    """What a :class:`Probe` received, in order."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, msg: Any) -> None:
        self.received.append(msg)
        self._queue.put_nowait(msg)

    async def get(self, within: float = WAIT) -> Any:
        async with asyncio.timeout(within):
            return await self._queue.get()

    def pending(self) -> list[Any]:
        out = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out


@dataclass(frozen=True)
class Run:
    """Ask a :class:`Probe` to run ``fn()`` inside itself and answer with the result."""

    fn: Callable[[], Any]


class Probe(ember.Actor):
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, Run):
            result = msg.fn()
            if inspect.isawaitable(result):
                result = await result
            return result
        self.box.put(msg)
        return None


class Sleeper(ember.Actor):
    """Ignores its messages: a process that lives until it is stopped."""

    def receive(self, msg: Any) -> None:
        return None


async def probe(node: ember.Node, name: Any = None) -> tuple[ember.Pid, Mailbox]:
    box = Mailbox()
    return await node.spawn(Probe, box, name=name), box


async def inside(node: ember.Node, pid: ember.Pid, fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` inside process ``pid`` (of ``node``) and return what it returns."""
    return await node.call(pid, Run(fn), timeout=WAIT)


async def kill(node: ember.Node, pid: ember.Pid) -> None:
    """Kill ``pid`` and return once it is gone."""
    waiter = node.wait_exit(pid)
    node.exit(pid, ember.KILL)
    await waiter


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    what: str = "condition",
    within: float = WAIT,
    step: float = 0.01,
) -> None:
    """Poll ``check`` until it holds (on virtual time polling costs nothing)."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(step)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None
