"""The rate-limited logger: one line per key per interval, and counts that add up."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ember._ratelog import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "t"]


def test_a_flood_is_one_line_then_one_line_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("t"), 10.0, clock)
    assert log.emit("k", "refused %s", "x1")
    for i in range(2, 101):
        assert not log.emit("k", "refused %s", f"x{i}")
    assert log.suppressed("k") == 99
    assert messages(caplog) == ["refused x1"]
    clock.now = 10.0  # the next one after the interval reports what was held back
    assert log.emit("k", "refused %s", "x101")
    assert messages(caplog)[1] == "refused x101 [after 99 more like it in the 10 s before]"


def test_keys_are_limited_separately(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("t"), 10.0, Clock())
    log.emit("a", "one")
    log.emit("b", "two")
    log.emit("a", "one again")
    assert messages(caplog) == ["one", "two"]


def test_flush_reports_every_held_count(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("t"), 10.0, Clock())
    log.emit("a", "first %d", 1)
    log.emit("a", "last %d", 2)
    log.emit("a", "last %d", 3)
    log.emit("b", "only")
    log.flush()
    assert messages(caplog) == ["first 1", "only", "last 3 [and 1 more like it in the last 10 s]"]
    assert log.suppressed("a") == 0


def test_a_percent_in_the_message_survives_the_count(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("t"), 1.0, Clock())
    log.emit("k", "100%% full: %s", "x")
    log.emit("k", "100%% full: %s", "y")
    log.emit("k", "100%% full: %s", "z")
    log.flush()
    assert messages(caplog) == ["100% full: x", "100% full: z [and 1 more like it in the last 1 s]"]


async def test_with_a_loop_the_count_is_reported_when_the_interval_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()  # virtual time: the interval passes at once
    log = RateLimitedLog(logging.getLogger("t"), 5.0, loop.time, loop)
    log.emit("k", "event %d", 1)
    for i in range(2, 5):
        log.emit("k", "event %d", i)
    await asyncio.sleep(5.0)
    assert messages(caplog) == ["event 1", "event 4 [and 2 more like it in the last 5 s]"]
    await asyncio.sleep(1.0)
    log.emit("k", "event %d", 5)  # a new interval started with the report: held back
    assert len(messages(caplog)) == 2
    await asyncio.sleep(20.0)
    assert messages(caplog)[2:] == ["event 5"]  # reported alone when that interval ended
    await asyncio.sleep(20.0)  # nothing more happened: nothing more is written
    assert len(messages(caplog)) == 3
