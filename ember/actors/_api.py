"""Module-level functions (``ember.send``, ``ember.call``...) that act for the calling process.

They find the node through the calling process, or else through the node most recently entered
with ``async with Node(...)`` in this task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .._errors import UsageError
from ._actor import Actor
from ._node import (
    DEFAULT_CALL_TIMEOUT,
    Node,
    TimerRef,
    _node_here,
    call_process,
    current_process,
)
from ._pid import Pid, Ref
from ._watchdog import DEFAULT_STALL_THRESHOLD, watched

T = TypeVar("T")


def current() -> Node:
    """The node of the calling process (or of the enclosing ``async with Node``)."""
    return _node_here()


def self() -> Pid:
    """The pid of the calling process."""
    me = current_process.get()
    if me is None:
        raise UsageError("ember.self() must be called from inside a process")
    return me._pid


def send(dest: Any, msg: Any) -> None:
    """Send ``msg`` to a pid or registered name; never blocks (see :meth:`Node.send`)."""
    if dest.__class__ is Pid:
        proc = dest._proc
        if proc is not None:
            proc._deliver(msg)
            return
    _node_here().send(dest, msg)


async def send_wait(dest: Any, msg: Any) -> None:
    """Send ``msg``, waiting for room in a full mailbox (or transport queue) instead of
    refusing it (see :meth:`Node.send_wait`)."""
    await current().send_wait(dest, msg)


def cast(dest: Any, msg: Any) -> None:
    """Fire-and-forget send that never raises (see :meth:`Node.cast`)."""
    current().cast(dest, msg)


def call(dest: Any, msg: Any, timeout: float | None = DEFAULT_CALL_TIMEOUT) -> asyncio.Future[Any]:
    """Request/reply: returns what the target's ``receive`` returns (see :meth:`Node.call`)."""
    return call_process(None, dest, msg, timeout)


async def spawn(
    cls: type[Actor] | str, *args: Any, name: Any = None, on: str | None = None, **kwargs: Any
) -> Pid:
    """Start a process on the current node, or on node ``on`` (see :meth:`Node.spawn`)."""
    return await current().spawn(cls, *args, name=name, on=on, **kwargs)


async def spawn_link(cls: type[Actor], *args: Any, name: Any = None, **kwargs: Any) -> Pid:
    """Start a process linked to the calling process."""
    return await current().spawn_link(cls, *args, name=name, **kwargs)


async def spawn_monitor(
    cls: type[Actor], *args: Any, name: Any = None, **kwargs: Any
) -> tuple[Pid, Ref]:
    """Start a process monitored by the calling process."""
    return await current().spawn_monitor(cls, *args, name=name, **kwargs)


def link(pid: Pid) -> None:
    """Link the calling process to ``pid``."""
    current().link(pid)


def unlink(pid: Pid) -> None:
    """Remove a link of the calling process."""
    current().unlink(pid)


def monitor(pid: Pid) -> Ref:
    """Monitor ``pid`` from the calling process; returns the monitor's reference."""
    return current().monitor(pid)


def demonitor(ref: Ref, flush: bool = False) -> bool:
    """Remove a monitor of the calling process."""
    return current().demonitor(ref, flush)


def exit(pid: Pid, reason: Any) -> None:
    """Send an exit signal to ``pid`` (see :meth:`Node.exit`)."""
    current().exit(pid, reason)


def monitor_node(name: str) -> None:
    """The calling process gets ``NodeEvent(name, up=False)`` when node ``name`` goes down."""
    current().monitor_node(name)


def subscribe_nodes(flag: bool = True) -> None:
    """The calling process gets a ``NodeEvent`` for every node that connects or goes down."""
    current().subscribe_nodes(flag)


def trap_exits(flag: bool) -> None:
    """Set whether the calling process traps exit signals."""
    me = current_process.get()
    if me is None:
        raise UsageError("trap_exits must be called from inside a process")
    me._trap = flag


def register(name: Any, pid: Pid) -> None:
    """Register ``pid`` under a local name."""
    current().register(name, pid)


def unregister(name: Any) -> None:
    """Remove a local name."""
    current().unregister(name)


def whereis(name: Any) -> Pid | None:
    """The pid registered under a local name, or None."""
    return current().whereis(name)


def send_after(delay: float, dest: Any, msg: Any) -> TimerRef:
    """Send ``msg`` to ``dest`` after ``delay`` seconds."""
    return current().send_after(delay, dest, msg)


def cancel_timer(timer: TimerRef) -> float | None:
    """Cancel a ``send_after`` timer; returns the time it had left, or None if it fired."""
    return current().cancel_timer(timer)


GC_THRESHOLD = (50_000, 20, 100)
"""The collector thresholds ``ember.run`` sets: a message-heavy node allocates many short-lived
tuples, and at Python's default first threshold (700) the cyclic collector took a third of a
busy node's time. Young objects are still collected, just in larger batches."""


def run(
    main: Callable[[], Awaitable[T]] | Coroutine[Any, Any, T],
    *,
    debug: bool = False,
    gc_threshold: tuple[int, int, int] | None = GC_THRESHOLD,
    stall_threshold: float | None = DEFAULT_STALL_THRESHOLD,
) -> T:
    """Run ``main`` on a new uvloop event loop (asyncio's own where uvloop is unavailable).

    ``gc_threshold`` is set for the run and restored after (``None`` leaves the collector be).
    A loop blocked for longer than ``stall_threshold`` seconds is logged (on
    ``ember.actors.watchdog``) with the node, pid, class and message type of the process that
    blocked it, and again with the length of the stall when it ends; ``None`` turns the
    watchdog off.
    """
    import asyncio
    import gc

    coro: Coroutine[Any, Any, T]
    if callable(main):
        awaitable = main()
        if not isinstance(awaitable, Coroutine):
            raise UsageError("ember.run needs a coroutine or a coroutine function")
        coro = awaitable
    else:
        coro = main
    coro = watched(coro, stall_threshold)
    saved = gc.get_threshold()
    if gc_threshold is not None:
        gc.set_threshold(*gc_threshold)
    try:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency; odd platforms go on
            return asyncio.run(coro, debug=debug)
        with asyncio.Runner(debug=debug, loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    finally:
        gc.set_threshold(*saved)
