"""A skewed clock for a node process started for chaos: its timers run at a rate.

Ember reads time only through its event loop, so a node's clock running ``rate`` times fast
means every timer it sets fires after ``1 / rate`` of its delay: ``call_later`` (sleeps,
heartbeats, probe timers) and ``call_at`` (Raft ticks, ``asyncio.timeout`` deadlines), whose
deadline is moved to ``now + (when - now) / rate``. Readings of ``loop.time()`` stay true.
Set through the transport's fault hook (``clock_rate``); nothing changes at rate 1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["rate_follower", "skew_timers"]


def skew_timers(loop: asyncio.AbstractEventLoop, rate: float) -> None:
    """Run the timers ``loop`` sets from now on at ``rate`` times the true rate (1: true)."""
    for name in ("call_later", "call_at"):  # back to the loop's own methods
        with contextlib.suppress(AttributeError):
            delattr(loop, name)
    if rate == 1:
        return
    time = loop.time
    inside = [False]  # one loop method delegates to the other (asyncio's call_later to
    # call_at, uvloop's call_at to call_later): only the outer call scales the time

    def scaled(
        method: Callable[..., asyncio.TimerHandle], scale: Callable[[float], float]
    ) -> Callable[..., asyncio.TimerHandle]:
        def skewed(
            t: float, callback: Callable[..., object], *args: Any, context: Any = None
        ) -> asyncio.TimerHandle:
            if inside[0]:
                return method(t, callback, *args, context=context)
            inside[0] = True
            try:
                return method(scale(t), callback, *args, context=context)
            finally:
                inside[0] = False

        return skewed

    def when(at: float) -> float:
        now = time()
        return now + (at - now) / rate

    # Instance attributes shadow the class's methods, on asyncio's loops and uvloop's alike.
    setattr(loop, "call_at", scaled(loop.call_at, when))  # noqa: B010 - this loop only
    setattr(loop, "call_later", scaled(loop.call_later, lambda delay: delay / rate))  # noqa: B010


def rate_follower(loop: asyncio.AbstractEventLoop, rate: Callable[[], float]) -> Callable[[], None]:
    """A listener that applies ``rate()`` to ``loop``'s timers whenever it changed (the node
    adds one to its fault hook when started for chaos)."""
    current = [1.0]

    def changed() -> None:
        if rate() != current[0]:
            current[0] = rate()
            skew_timers(loop, current[0])

    return changed
