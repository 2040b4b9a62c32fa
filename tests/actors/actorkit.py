"""Actors and helpers shared by the kernel tests.

The workhorse is :class:`Puppet`: a process a test drives from outside. ``await inside(node,
pid, fn)`` runs ``fn(actor)`` *inside* the process (so ``ember.link``, ``ember.monitor``,
``ember.exit``... act for it) and returns the result; every other message the process receives
is recorded in its :class:`Inbox`, which the test awaits. Nothing here sleeps: a test learns
that something happened by awaiting it.

Async tests run on the virtual-time loop of Ember's pytest plugin (``ember.testing``): timers
and timeouts jump instantly, and a test that would wait forever fails with
``VirtualTimeDeadlock`` instead of hanging.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ember

WAIT = 10.0
"""Seconds (virtual on the default loop) to wait for a message that must arrive."""
REAL_WAIT = 30.0
"""Wall-clock bound of a test on the real clock (``@pytest.mark.ember_realtime``): far more than
it needs, there only so that a bug fails the test instead of hanging it."""


class Inbox:
    """The messages a :class:`Puppet` received, in order."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, msg: Any) -> None:
        self.received.append(msg)
        self._queue.put_nowait(msg)

    async def get(self, within: float = WAIT) -> Any:
        """The next message not yet taken; fails the test if none comes ``within`` seconds."""
        async with asyncio.timeout(within):
            return await self._queue.get()

    def pending(self) -> list[Any]:
        """Take every message that arrived and was not yet taken, without waiting."""
        out = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out


@dataclass(frozen=True)
class Do:
    """Ask a :class:`Puppet` to run ``fn(actor)`` inside itself and answer with the result."""

    fn: Callable[[Puppet], Any]


class Puppet(ember.Actor):
    """A process driven by the test (see the module docstring)."""

    def __init__(self, inbox: Inbox, *, trap: bool = False) -> None:
        self.inbox = inbox
        self.set_trap_exits(trap)

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, Do):
            result = msg.fn(self)
            if inspect.isawaitable(result):
                result = await result
            return result
        self.inbox.put(msg)
        return None


def raising(exc: BaseException) -> Do:
    """A message that makes a :class:`Puppet` raise ``exc`` (crash) when it handles it."""

    def fn(_: Puppet) -> None:
        raise exc

    return Do(fn)


async def puppet(
    node: ember.Node, *, trap: bool = False, name: Any = None
) -> tuple[ember.Pid, Inbox]:
    """Spawn a :class:`Puppet`; returns its pid and inbox."""
    inbox = Inbox()
    pid = await node.spawn(Puppet, inbox, trap=trap, name=name)
    return pid, inbox


async def inside(node: ember.Node, pid: ember.Pid, fn: Callable[[Puppet], Any]) -> Any:
    """Run ``fn(actor)`` inside the puppet ``pid`` and return its result."""
    return await node.call(pid, Do(fn), timeout=WAIT)


async def flush(node: ember.Node, pid: ember.Pid) -> None:
    """Return once ``pid`` has handled every message delivered to it before this call."""
    await inside(node, pid, lambda _: None)


class Blocker(ember.Actor):
    """Its ``receive`` awaits a future that nothing resolves: a process suspended in receive.
    ``entered`` resolves when it got there; ``terminated`` records its ``terminate`` reason."""

    def __init__(self, entered: asyncio.Future[None], terminated: list[Any] | None = None) -> None:
        self.entered = entered
        self.terminated = terminated

    async def receive(self, msg: Any) -> Any:
        if not self.entered.done():
            self.entered.set_result(None)
        await asyncio.get_running_loop().create_future()

    async def terminate(self, reason: Any) -> None:
        if self.terminated is not None:
            self.terminated.append(reason)


class Idle(ember.Actor):
    """Does nothing with its messages; used as a link or monitor target."""

    async def receive(self, msg: Any) -> Any:
        return None


class Crasher(ember.Actor):
    """Raises ``msg`` if it is an exception, else does nothing."""

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, BaseException):
            raise msg
        return None


class Boom(Exception):
    """The crash reason used throughout the tests (compared by identity, as the kernel passes
    the very exception object along links and monitors)."""
