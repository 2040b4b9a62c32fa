"""The group commit queue alone, over a fake Raft write (virtual time): what waits while a
batch is in flight goes in the next one, within the item and byte bounds; a timeout says
whether the item was proposed; a failed write fails every item it carried."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from ember._tasks import OwnedTasks
from ember.consensus import OutcomeUnknown
from ember.registry import TierUnavailable
from ember.registry._group_commit import GroupCommit


@dataclass
class Stats:
    batch_writes: int = 0
    batched: int = 0
    largest_batch: int = 0
    queue_full: int = 0


class FakeWrite:
    """Answers each item with ``("done", item)`` after ``delay`` seconds, or raises ``error``."""

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        self.batches: list[list[Any]] = []
        self.error: Exception | None = None

    async def __call__(self, command: dict[str, Any], within: float) -> list[Any]:
        assert command["op"] == "batch"
        self.batches.append(command["items"])
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return [("done", item) for item in command["items"]]


def commit(write: FakeWrite, **kw: Any) -> tuple[GroupCommit, Stats, OwnedTasks]:
    stats = Stats()
    tasks = OwnedTasks(logging.getLogger("test"), "group commit")
    options = {"batch_limit": 100, "batch_bytes": 1000, "queue_limit": 1000, "in_flight": 1}
    return GroupCommit(write, tasks, stats, **{**options, **kw}), stats, tasks


async def test_what_waits_during_a_flight_goes_in_the_next_batch_within_its_bounds() -> None:
    write = FakeWrite()
    gc, stats, tasks = commit(write, batch_limit=4, batch_bytes=30)
    first = asyncio.ensure_future(gc.submit(["a"], 10, 10))
    await asyncio.sleep(0.1)  # a is in flight: the rest wait
    rest = [asyncio.ensure_future(gc.submit([i], 10 if i != 5 else 500, 10)) for i in range(7)]
    results = await asyncio.gather(first, *rest)
    assert results == [("done", ["a"]), *[("done", [i]) for i in range(7)]]
    # 3 of 10 bytes fit 30; item 5 is larger than the budget: it goes alone.
    assert write.batches == [[["a"]], [[0], [1], [2]], [[3], [4]], [[5]], [[6]]]
    assert (stats.batch_writes, stats.batched, stats.largest_batch) == (5, 8, 3)
    await tasks.cancel_all()


async def test_a_timeout_says_whether_the_item_was_proposed() -> None:
    write = FakeWrite(delay=10.0)
    gc, _, tasks = commit(write)
    flying = asyncio.ensure_future(gc.submit(["a"], 1, 1.0))
    await asyncio.sleep(0.1)
    with pytest.raises(TierUnavailable, match="not proposed"):
        await gc.submit(["b"], 1, 1.0)  # queued behind a, never sent
    with pytest.raises(OutcomeUnknown):
        await flying  # sent: it may still apply
    assert write.batches == [[["a"]]]
    await tasks.cancel_all()


async def test_a_failed_write_fails_every_item_it_carried_and_the_queue_is_bounded() -> None:
    write = FakeWrite()
    write.error = TierUnavailable("consistent", "no leader")
    gc, stats, tasks = commit(write, queue_limit=3)
    asks = [asyncio.ensure_future(gc.submit([i], 1, 10)) for i in range(5)]
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert [type(r) for r in results] == [TierUnavailable] * 5
    assert ["queued on this node" in str(r) for r in results] == [False] * 3 + [True] * 2
    assert stats.queue_full == 2 and write.batches == [[[0], [1], [2]]]
    await tasks.cancel_all()


async def test_stopping_fails_what_is_queued() -> None:
    write = FakeWrite(delay=10.0)
    gc, _, tasks = commit(write)
    flying = asyncio.ensure_future(gc.submit(["a"], 1, 60))
    await asyncio.sleep(0.1)
    queued = asyncio.ensure_future(gc.submit(["b"], 1, 60))
    await asyncio.sleep(0.1)
    await tasks.cancel_all()
    gc.fail_all(TierUnavailable("consistent", "stopping"))
    for fut in (flying, queued):
        with pytest.raises(TierUnavailable, match="stopping"):
            await fut


async def test_requests_that_expired_in_the_queue_do_not_hold_its_places() -> None:
    write = FakeWrite(delay=10.0)
    gc, stats, tasks = commit(write, queue_limit=2)
    flying = asyncio.ensure_future(gc.submit(["a"], 1, 60))
    await asyncio.sleep(0.1)
    for item in ("b", "c"):  # queued behind a until they expire
        with pytest.raises(TierUnavailable, match="not proposed"):
            await gc.submit([item], 1, 0.5)
    late = asyncio.ensure_future(gc.submit(["d"], 1, 60))
    assert await flying == ("done", ["a"]) and await late == ("done", ["d"])
    assert stats.queue_full == 0 and write.batches == [[["a"]], [["d"]]]
    await tasks.cancel_all()


async def test_an_answer_that_does_not_match_the_batch_fails_its_items_as_unknown() -> None:
    class Short(FakeWrite):
        async def __call__(self, command: dict[str, Any], within: float) -> list[Any]:
            return (await super().__call__(command, within))[:-1]

    gc, _, tasks = commit(Short())
    results = await asyncio.gather(
        *(gc.submit([i], 1, 10) for i in range(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [OutcomeUnknown] * 3
    await tasks.cancel_all()
