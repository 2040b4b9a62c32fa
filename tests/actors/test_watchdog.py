"""The stall watchdog names who blocked the event loop. These tests block a real loop on
purpose (``time.sleep`` is the fault under test, not a way to wait), briefly."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest

import ember
from ember.actors._watchdog import StallWatchdog

THRESHOLD = 0.2


def block(seconds: float) -> None:
    """What a user's code does by mistake: a blocking call on the event loop."""
    time.sleep(seconds)


class Sleepy(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("nap", seconds):
                block(seconds)
        return msg


class SleepyStart(ember.Actor):
    def started(self) -> None:
        block(0.5)

    def receive(self, msg: Any) -> Any:
        return msg


def read(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ember.actors.watchdog"]


async def logged(caplog, text: str, count: int) -> None:
    """Wait (real loop, generous bound) until the watchdog logged ``text`` ``count`` times."""
    deadline = time.monotonic() + 30.0
    # the log is written by the watchdog's thread: there is no event of this loop to await
    while sum(text in line for line in read(caplog)) < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def test_a_blocking_receive_is_logged_with_pid_class_and_message_type(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ember.actors.watchdog")

    async def main() -> ember.Pid:
        async with ember.Node("a") as node:
            pid = await node.spawn(Sleepy)
            assert await node.call(pid, ("nap", 0.6)) == ("nap", 0.6)
            node.send(pid, ("nap", 0.6))
            assert await node.call(pid, "after") == "after"
            await logged(caplog, "ran again after being blocked", 2)
            return pid

    pid = ember.run(main, stall_threshold=THRESHOLD)
    lines = read(caplog)
    blocked = [line for line in lines if "blocked for more than" in line]
    ended = [line for line in lines if "ran again after being blocked" in line]
    assert len(blocked) == 2 and len(ended) == 2, lines
    who = f"on node a by process {pid} ({Sleepy.__module__}.Sleepy)"
    assert all(who in line for line in blocked + ended)
    assert "a call of a tuple 'nap' message" in blocked[0]  # the call
    assert "handling a tuple 'nap' message" in blocked[1]  # the send
    for line in ended:
        seconds = float(re.search(r"blocked for ([0-9.]+) s", line).group(1))  # type: ignore[union-attr]
        assert 0.5 <= seconds < 5.0


def test_a_blocking_started_hook_and_a_blocking_callback_are_named(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ember.actors.watchdog")

    async def main() -> None:
        async with ember.Node("a") as node:
            await node.spawn(SleepyStart)
            block(0.5)  # outside any process
            await logged(caplog, "blocked for more than", 2)

    ember.run(main, stall_threshold=THRESHOLD)
    blocked = [line for line in read(caplog) if "blocked for more than" in line]
    assert len(blocked) == 2, blocked
    assert "SleepyStart) in its started hook" in blocked[0]
    assert "outside any process, in block (" in blocked[1] and "test_watchdog.py" in blocked[1]


def test_a_busy_loop_that_never_blocks_is_not_reported(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ember.actors.watchdog")

    async def main() -> int:
        async with ember.Node("a") as node:
            pid = await node.spawn(Sleepy)
            deadline = time.monotonic() + 4 * THRESHOLD
            calls = 0
            while time.monotonic() < deadline:  # busy for a while, yielding all the time
                await node.call(pid, calls)
                calls += 1
            return calls

    assert ember.run(main, stall_threshold=THRESHOLD) > 100
    assert read(caplog) == []


def test_the_watchdog_is_off_with_none_and_validates_its_threshold(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ember.actors.watchdog")

    async def main() -> None:
        block(0.3)

    ember.run(main, stall_threshold=None)
    assert read(caplog) == []
    with pytest.raises(ValueError):
        StallWatchdog(asyncio.new_event_loop(), 0)
