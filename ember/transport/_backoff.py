"""Pure timing helpers of the transport: reconnect backoff and the failed-handshake limiter.

No clock and no global randomness: callers pass ``now`` (the loop's time) and a ``random.Random``.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque

__all__ = ["Backoff", "FailureLimiter"]


class Backoff:
    """Exponential backoff with proportional jitter.

    The n-th :meth:`next` (from 0) returns ``min(initial * 2**n, maximum)`` scaled by a uniform
    factor in ``[1 - jitter, 1 + jitter]``; :meth:`reset` starts over after a success.
    """

    __slots__ = ("_attempt", "_rng", "initial", "jitter", "maximum")

    def __init__(self, initial: float, maximum: float, jitter: float, rng: random.Random) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng
        self._attempt = 0

    def next(self) -> float:
        """The wait before the next attempt."""
        base = min(self.initial * 2.0 ** min(self._attempt, 64), self.maximum)
        self._attempt += 1
        if not self.jitter:
            return base
        return base * self._rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def reset(self) -> None:
        """Start over from ``initial``."""
        self._attempt = 0


class FailureLimiter:
    """Counts failures per key (a remote address) in a sliding window; refuses keys over a limit.

    Remembers at most ``max_keys`` keys; past that the least recently failing key is forgotten, so
    a scan from many addresses cannot grow it without bound.
    """

    __slots__ = ("_failures", "limit", "max_keys", "window")

    def __init__(self, limit: int, window: float, max_keys: int = 4096) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def allowed(self, key: str, now: float) -> bool:
        """Whether a new attempt from ``key`` may proceed at time ``now``."""
        times = self._failures.get(key)
        if times is None:
            return True
        self._expire(key, times, now)
        return len(times) < self.limit

    def failed(self, key: str, now: float) -> None:
        """Record a failed attempt from ``key`` at time ``now``."""
        times = self._failures.get(key)
        if times is None:
            times = self._failures[key] = deque()
            if len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        times.append(now)
        self._expire(key, times, now)

    def _expire(self, key: str, times: deque[float], now: float) -> None:
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        while len(times) > self.limit:
            times.popleft()
        if not times:
            del self._failures[key]
