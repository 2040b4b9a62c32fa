"""A deterministic virtual-time asyncio event loop for tests.

:class:`VirtualTimeLoop` behaves like trio's ``MockClock`` with autojump: whenever the loop
would block waiting for a timer, its clock jumps straight to that timer's deadline instead, so
``await asyncio.sleep(3600)`` returns at once with ``loop.time()`` advanced by exactly 3600.

Real I/O keeps working: the loop's selector is wrapped so that every ``select(timeout)`` first
polls real I/O without blocking. Ready events are returned as usual; only when nothing is ready
does the clock jump (or, with no timers at all, the loop blocks on real I/O). If the loop would
block forever -- no timers, no ready callbacks, no file descriptors besides its own self-pipe
and no executor work in flight -- :class:`VirtualTimeDeadlock` is raised instead of hanging.

Domains: a callback scheduled from a context tagged with a domain (see
:meth:`VirtualTimeLoop.domain_context`) belongs to that domain, and so does everything it
schedules in turn. :meth:`VirtualTimeLoop.freeze` holds every callback of a domain that falls due
-- task steps, timers, future callbacks -- until :meth:`VirtualTimeLoop.thaw` releases them, late,
as ``SIGSTOP`` and ``SIGCONT`` would do to a process. ``SimCluster`` runs each node in a domain.

Work done in executor threads (``run_in_executor``, ``asyncio.to_thread``) takes zero virtual
time: while such a job is in flight the clock does not jump and the loop waits for it for real.
Wake-ups from foreign threads via ``call_soon_threadsafe`` are not tracked: a loop idle with no
timers and no I/O reports a deadlock even if another thread would eventually wake it.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import selectors
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["VirtualTimeDeadlock", "VirtualTimeLoop", "run", "virtual_time_loop"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

_Events = list[tuple[selectors.SelectorKey, int]]

_DOMAIN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ember_vt_domain", default=None
)
"""The domain (e.g. a simulated node's name) the running callback belongs to."""

_Held = tuple[Callable[..., object], tuple[Any, ...], contextvars.Context]

# How many pending tasks the deadlock message lists before eliding the rest.
_MAX_TASKS_IN_MESSAGE = 10


class VirtualTimeDeadlock(RuntimeError):
    """The loop has nothing left that could ever wake it: every task would block forever."""


class _VirtualSelector(selectors.BaseSelector):
    """Delegates to a real selector, but turns blocking waits into virtual-clock jumps."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._real = real
        self._loop = loop

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> _Events:
        events = self._real.select(0)
        if events or (timeout is not None and timeout <= 0):
            return events
        return self._loop._vt_idle(self._real, timeout)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock starts at 0.0 and jumps to the next timer when idle.

    Usable directly, as ``asyncio.Runner(loop_factory=VirtualTimeLoop)``, or through
    :func:`run`. ``run_until_complete`` raises :class:`VirtualTimeDeadlock` when the loop
    could never make progress again.
    """

    def __init__(self) -> None:
        self._vt_now = 0.0
        self._vt_threads = 0
        self._vt_domains = False
        self._vt_frozen: dict[str, list[_Held]] = {}
        selector = _VirtualSelector(selectors.DefaultSelector(), self)
        super().__init__(selector)
        # Whatever the base class registered while initialising (the self-pipe) is internal:
        # it only wakes the loop for call_soon_threadsafe and signals, never for real I/O.
        self._vt_internal_fds = frozenset(key.fd for key in selector.get_map().values())

    def time(self) -> float:
        """Return the virtual clock, in seconds since the loop was created."""
        return self._vt_now

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward; timers now due run on the next loop iteration."""
        if not 0 <= seconds < math.inf:
            raise ValueError(f"cannot advance the clock by {seconds!r} seconds")
        self._vt_now += seconds

    def domain_context(self, domain: str) -> contextvars.Context:
        """A copy of the current context tagged with ``domain``: run a task in it
        (``loop.create_task(coro, context=...)``) and what it schedules belongs to ``domain``."""
        self._vt_domains = True
        context = contextvars.copy_context()
        context.run(_DOMAIN.set, domain)
        return context

    def freeze(self, domain: str) -> None:
        """Hold every callback of ``domain`` that falls due from now on (idempotent)."""
        self._vt_frozen.setdefault(domain, [])

    def thaw(self, domain: str) -> None:
        """Release what :meth:`freeze` held, in the order it fell due (idempotent)."""
        for callback, args, context in self._vt_frozen.pop(domain, ()):
            super().call_soon(self._vt_gate, callback, args, context, context=context)

    def frozen(self) -> frozenset[str]:
        """The domains frozen now."""
        return frozenset(self._vt_frozen)

    def call_soon(
        self,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        """Like the base method; a callback of a domain goes through the freeze gate."""
        if self._vt_domains:
            if context is None:
                context = contextvars.copy_context()
            if context.get(_DOMAIN) is not None:
                return super().call_soon(self._vt_gate, callback, args, context, context=context)
        return super().call_soon(callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Like the base method; a timer of a domain goes through the freeze gate."""
        if self._vt_domains:
            if context is None:
                context = contextvars.copy_context()
            if context.get(_DOMAIN) is not None:
                return super().call_at(
                    when, self._vt_gate, callback, args, context, context=context
                )
        return super().call_at(when, callback, *args, context=context)

    def _vt_gate(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: contextvars.Context,
    ) -> None:
        # ``context`` is the very object this handle runs in (a task's steps must all run in
        # the task's own context, so a held step is released into it, not into a copy).
        domain = _DOMAIN.get()
        held = self._vt_frozen.get(domain) if domain is not None else None
        if held is not None:
            held.append((callback, args, context))
            return
        callback(*args)

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*_Ts], _T], *args: *_Ts
    ) -> asyncio.Future[_T]:
        """Like the base method; the clock stands still until the job's future is done."""
        future = super().run_in_executor(executor, func, *args)
        self._vt_threads += 1
        future.add_done_callback(self._vt_thread_done)
        return future

    if sys.version_info >= (3, 12):

        async def shutdown_default_executor(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
            """Like the base method, counted as thread work so it is not seen as a deadlock."""
            self._vt_threads += 1
            try:
                await super().shutdown_default_executor(timeout)
            finally:
                self._vt_threads -= 1

    else:

        async def shutdown_default_executor(self) -> None:
            """Like the base method, counted as thread work so it is not seen as a deadlock."""
            self._vt_threads += 1
            try:
                await super().shutdown_default_executor()
            finally:
                self._vt_threads -= 1

    def _vt_thread_done(self, _future: asyncio.Future[Any]) -> None:
        self._vt_threads -= 1

    def _vt_idle(self, real: selectors.BaseSelector, timeout: float | None) -> _Events:
        """Called by the selector when no I/O is ready and the loop would wait ``timeout``."""
        if self._vt_threads:
            # Executor jobs take zero virtual time: wait for them (or for real I/O) for real.
            # Their completion arrives through call_soon_threadsafe, i.e. the self-pipe.
            return real.select(None)
        if timeout is None:
            if any(key.fd not in self._vt_internal_fds for key in real.get_map().values()):
                return real.select(None)
            raise VirtualTimeDeadlock(self._vt_deadlock_message())
        self._vt_jump(timeout)
        return []

    def _vt_jump(self, timeout: float) -> None:
        now = self._vt_now
        target = now + timeout
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        if scheduled:
            # BaseEventLoop._run_once derived `timeout` from the earliest live timer (and capped
            # it at MAXIMUM_SELECT_TIMEOUT). Land exactly on that deadline: it avoids float
            # drift from `now + (when - now)` and the extra iterations the cap would cost.
            target = max(target, scheduled[0].when())
        # _run_once treats a timer as due when `when < time() + _clock_resolution`. Far from
        # zero the resolution can be smaller than the float spacing, so `when + resolution`
        # rounds back to `when` and the timer would never become due: step one ulp past it.
        if target + self._clock_resolution <= target:  # type: ignore[attr-defined]
            target = math.nextafter(target, math.inf)
        self._vt_now = target

    def _vt_deadlock_message(self) -> str:
        tasks = [task for task in asyncio.all_tasks(self) if not task.done()]
        lines = [
            f"virtual-time loop deadlocked at t={self._vt_now!r}: no timers scheduled, no "
            "callbacks ready, no I/O registered and no executor work in flight, so "
            f"{len(tasks)} pending task(s) would wait forever"
        ]
        lines.extend(f"  {task!r}" for task in tasks[:_MAX_TASKS_IN_MESSAGE])
        if len(tasks) > _MAX_TASKS_IN_MESSAGE:
            lines.append(f"  ... and {len(tasks) - _MAX_TASKS_IN_MESSAGE} more")
        return "\n".join(lines)


def virtual_time_loop() -> VirtualTimeLoop:
    """Create a new :class:`VirtualTimeLoop` (a ``loop_factory`` for ``asyncio.Runner``)."""
    return VirtualTimeLoop()


async def _await(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


def run(
    main: Callable[[], Awaitable[_T]] | Coroutine[Any, Any, _T], *, debug: bool | None = None
) -> _T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop` and return its result.

    ``main`` is a coroutine or a zero-argument callable returning an awaitable. Like
    :func:`asyncio.run`, leftover tasks are cancelled, async generators and the default
    executor are shut down, and the loop is closed afterwards.
    """
    if isinstance(main, Coroutine):
        coro: Coroutine[Any, Any, _T] = main
    elif callable(main):
        awaitable = main()
        coro = awaitable if isinstance(awaitable, Coroutine) else _await(awaitable)
    else:
        raise TypeError(f"expected a coroutine or a callable, got {main!r}")
    with asyncio.Runner(debug=debug, loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
