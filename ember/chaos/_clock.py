"""Skewed clocks for simulated nodes: a virtual-time loop on which each domain (node) may run
its timers at its own rate.

Ember reads time only through its event loop (monotonic, per process), so what a skewed clock
does to a node is change the rate of its time: with rate 2 every delay it waits (``sleep``,
``call_later``: ticks, heartbeats, election and probe timers) passes twice as fast, with 0.5
half as fast. Readings of ``loop.time()`` and absolute deadlines (``call_at``, which the
simulated network uses to deliver frames between nodes of different clocks) stay true, so
traffic between nodes is never confused by whose clock scheduled it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple

from ..testing import VirtualTimeLoop
from ..testing._vtime import _DOMAIN

__all__ = ["SkewedLoop", "run_skewed"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class SkewedLoop(VirtualTimeLoop):
    """The chaos sim driver's loop: a :class:`~ember.testing.VirtualTimeLoop` on which a
    domain's delays pass at its own rate, and executor jobs (the Raft store's saves in
    ``asyncio.to_thread``) run at once on the loop's thread, so their completions never race
    the loop's other callbacks: a durable simulated run replays too."""

    def __init__(self) -> None:
        super().__init__()
        self._rates: dict[str, float] = {}

    def set_rate(self, domain: str, rate: float) -> None:
        """Run ``domain``'s timers at ``rate`` times the true rate (1: true)."""
        if not rate > 0:
            raise ValueError(f"a clock rate must be positive, not {rate!r}")
        if rate == 1:
            self._rates.pop(domain, None)
        else:
            self._rates[domain] = rate

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*_Ts], _T], *args: *_Ts
    ) -> asyncio.Future[_T]:
        future: asyncio.Future[_T] = self.create_future()
        try:
            future.set_result(func(*args))
        except BaseException as exc:  # the job's error is the future's, as in a thread
            future.set_exception(exc)
        return future

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., object], *args: Any, **kwargs: Any
    ) -> asyncio.TimerHandle:
        if self._rates:
            domain = _DOMAIN.get()
            rate = self._rates.get(domain) if domain is not None else None
            if rate is not None:
                delay /= rate
        return super().call_later(delay, callback, *args, **kwargs)


def run_skewed(main: Callable[[], Any]) -> Any:
    """Run ``main()`` (a coroutine function) on a fresh :class:`SkewedLoop`."""
    with asyncio.Runner(loop_factory=SkewedLoop) as runner:
        return runner.run(main())
