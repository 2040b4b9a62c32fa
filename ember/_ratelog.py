"""One logger for warnings that can repeat without bound: refused connections, failed
handshakes, long mailboxes.

A flood of the same event must neither fill the disk nor hide how big it was. The first event
of a kind (its *key*) is logged at once; those that follow within ``interval`` seconds are only
counted, and when the interval ends the last of them is logged once more with the count
("... [and 41 more like it in the last 10 s]"). So a steady flood costs one line per key per
interval, and the counts add up to exactly what happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["RateLimitedLog"]

_MAX_KEYS = 1024
"""Keys remembered at once; callers use few (a reason, a peer name), this only bounds a bug."""


class _Key:
    __slots__ = ("args", "level", "msg", "suppressed", "timer", "until")

    def __init__(self, until: float) -> None:
        self.until = until
        self.suppressed = 0
        self.level = logging.WARNING
        self.msg = ""
        self.args: tuple[object, ...] = ()
        self.timer: asyncio.TimerHandle | None = None


class RateLimitedLog:
    """Rate-limits lines of ``logger`` per key: at most one line per key per ``interval``
    seconds of ``clock``, plus one summary line with the count of those held back.

    ``loop``, if given, schedules that summary at the end of the interval; without one it is
    written with the next event of the key after the interval, or by :meth:`flush`.
    Used from one event loop; not thread-safe.
    """

    __slots__ = ("_clock", "_keys", "_loop", "interval", "logger")

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._loop = loop
        self._keys: OrderedDict[Hashable, _Key] = OrderedDict()

    def emit(self, key: Hashable, msg: str, *args: object, level: int = logging.WARNING) -> bool:
        """Log ``msg % args`` at ``level``, unless ``key`` was logged within the interval (then
        it is counted). Returns whether it was written now."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now < entry.until:
            entry.suppressed += 1
            entry.level, entry.msg, entry.args = level, msg, args
            if self._loop is not None and entry.timer is None:
                entry.timer = self._loop.call_at(entry.until, self._report, key)
            return False
        held = 0
        if entry is not None:
            held = entry.suppressed
            if entry.timer is not None:
                entry.timer.cancel()
            del self._keys[key]
        self._keys[key] = _Key(now + self.interval)
        if len(self._keys) > _MAX_KEYS:
            _, oldest = self._keys.popitem(last=False)
            if oldest.timer is not None:
                oldest.timer.cancel()
        if held:
            note = f"[after {held} more like it in the {self.interval:g} s before]"
            self._write(level, msg, args, note)
        else:
            self.logger.log(level, msg, *args)
        return True

    def suppressed(self, key: Hashable) -> int:
        """How many events of ``key`` are counted but not yet reported."""
        entry = self._keys.get(key)
        return entry.suppressed if entry is not None else 0

    def flush(self) -> None:
        """Report every count held back now (before a shutdown); forget every key."""
        keys, self._keys = self._keys, OrderedDict()
        for entry in keys.values():
            if entry.timer is not None:
                entry.timer.cancel()
            if entry.suppressed:
                self._write_held(entry)

    def _report(self, key: Hashable) -> None:
        entry = self._keys.get(key)
        if entry is None:
            return
        entry.timer = None
        if not entry.suppressed:
            return
        # The last event held back stands for the lot; a new interval starts, so a steady
        # flood writes one line per interval.
        self._write_held(entry)
        entry.suppressed = 0
        entry.until = self._clock() + self.interval

    def _write_held(self, entry: _Key) -> None:
        more = entry.suppressed - 1
        note = f"[and {more} more like it in the last {self.interval:g} s]" if more else ""
        self._write(entry.level, entry.msg, entry.args, note)

    def _write(self, level: int, msg: str, args: tuple[object, ...], note: str) -> None:
        if note:
            msg = f"{msg} {note}"
        self.logger.log(level, msg, *args)
