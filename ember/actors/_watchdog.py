"""A watchdog for a blocked event loop: who held it.

A ``receive`` that blocks (``time.sleep(4)``, a CPU-bound loop, a synchronous database call)
stops everything on its node: messages, timers, heartbeats, so peers declare the node down.
The watchdog says who did it. The loop stamps the time every ``threshold / 4`` from a timer; a
thread of the watchdog's own looks at the stamp as often. When the stamp is older than
``threshold``, the loop is blocked: the thread reads the loop thread's stack
(``sys._current_frames``) for the kernel frame that runs a process (its ``proc`` and ``msg``)
and logs, once per stall, the node, the pid, the actor's class and the message's type — or,
outside any process, the innermost function. When the loop runs again it logs how long it was
blocked. Nothing on the message path changes: the cost is one timer callback per quarter
threshold on the loop and one thread wake-up as often (``python -m bench --only tell,call``
measures it, as the ``*_watchdog`` variants).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

__all__ = ["DEFAULT_STALL_THRESHOLD", "StallWatchdog", "watched"]

log = logging.getLogger("ember.actors.watchdog")

T = TypeVar("T")

DEFAULT_STALL_THRESHOLD = 1.0
"""Seconds the loop may be blocked before the watchdog says so: a third of the default
``heartbeat_timeout`` (3 s), so the culprit is named before peers declare the node down."""

_KERNEL = "_node.py"
_RUNNERS = frozenset({"_worker", "_call_eager", "_start", "_exit_hook", "_crashed"})
"""Kernel functions that run a process's code; their ``proc`` local is the process."""


class StallWatchdog:
    """Watches ``loop`` (start it from the loop's own thread); ``threshold`` in seconds."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, threshold: float = DEFAULT_STALL_THRESHOLD
    ) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, not {threshold!r}")
        self.loop = loop
        self.threshold = threshold
        self.period = threshold / 4
        self.stalls = 0
        """Stalls seen (each logged once)."""
        self._stamp = time.monotonic()
        self._culprit: str | None = None
        self._stalled_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = 0

    def start(self) -> None:
        """Start stamping and watching; call from the loop's thread."""
        self._loop_thread = threading.get_ident()
        self._stamp = time.monotonic()
        self._timer = self.loop.call_later(self.period, self._tick)
        self._thread = threading.Thread(target=self._watch, name="ember-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and the timer; idempotent."""
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- the loop's side ------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        stalled_at = self._stalled_at
        if stalled_at is not None:  # the watchdog saw us blocked: say for how long
            self._stalled_at = None
            log.warning(
                "event loop ran again after being blocked for %.2f s %s",
                now - self._stamp,
                self._culprit,
            )
        self._stamp = now
        self._timer = self.loop.call_later(self.period, self._tick)

    # -- the watchdog's thread ------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.period):
            stamp = self._stamp
            if self._stalled_at is not None or time.monotonic() - stamp <= self.threshold:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if self._stamp != stamp:
                continue  # the loop ran meanwhile
            self._culprit = describe(frame)
            self.stalls += 1
            self._stalled_at = stamp
            log.warning("event loop blocked for more than %.1f s %s", self.threshold, self._culprit)


def describe(frame: FrameType | None) -> str:
    """Who is running in ``frame``'s stack: the process a kernel frame runs, with its message,
    or else the innermost function."""
    innermost = frame
    while frame is not None:
        code = frame.f_code
        if code.co_name in _RUNNERS and code.co_filename.endswith(_KERNEL):
            local = frame.f_locals
            proc = local.get("proc")
            pid = getattr(proc, "_pid", None)
            if pid is not None:
                cls = type(proc)
                node = getattr(getattr(proc, "_node", None), "name", "?")
                what = _message(local.get("msg"), code.co_name)
                return (
                    f"on node {node} by process {pid} ({cls.__module__}.{cls.__qualname__}) {what}"
                )
        frame = frame.f_back
    if innermost is None:
        return "(its stack could not be read)"
    code = innermost.f_code
    return f"outside any process, in {code.co_name} ({code.co_filename}:{innermost.f_lineno})"


def _message(msg: Any, runner: str) -> str:
    if runner == "_start":
        return "in its started hook"
    if runner == "_exit_hook":
        return "in its terminate hook"
    if msg is None:
        return "in its receive"
    inner = getattr(msg, "msg", msg) if type(msg).__name__ in ("LocalCall", "EagerCall") else msg
    kind = type(inner).__qualname__
    if isinstance(inner, tuple) and inner and isinstance(inner[0], str):
        kind = f"tuple {inner[0]!r}"
    elif isinstance(inner, str):
        kind = f"str {inner[:40]!r}"
    call = "a call of " if inner is not msg or runner == "_call_eager" else ""
    return f"handling {call}a {kind} message"


async def watched(coro: Coroutine[Any, Any, T], threshold: float | None) -> T:
    """Run ``coro`` with a :class:`StallWatchdog` on the running loop (None: without)."""
    if threshold is None:
        return await coro
    dog = StallWatchdog(asyncio.get_running_loop(), threshold)
    dog.start()
    try:
        return await coro
    finally:
        dog.stop()
