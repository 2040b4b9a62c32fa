"""The scheduler: blocked actors, asyncio inside receive, throughput, fairness to the event loop
and node shutdown. The ``ember_realtime`` tests run on uvloop (the production loop) with the
real clock: they wait on futures and calls, never on sleeps, under a generous wall-clock bound
(``REAL_WAIT``) so that a bug fails them instead of hanging them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actorkit import REAL_WAIT, Blocker, Idle, puppet

import ember

# -- blocking ---------------------------------------------------------------------------------


class Echo(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


@pytest.mark.ember_realtime
async def test_an_actor_suspended_in_receive_does_not_block_others() -> None:
    async with asyncio.timeout(REAL_WAIT), ember.Node("a") as node:
        loop = asyncio.get_running_loop()
        blocked = []
        for _ in range(20):  # more blocked actors than the pool keeps parked workers
            entered: asyncio.Future[None] = loop.create_future()
            pid = await node.spawn(Blocker, entered)
            node.send(pid, "block")
            await entered
            blocked.append(pid)
        echoes = [await node.spawn(Echo) for _ in range(10)]
        replies = await asyncio.gather(*(node.call(e, i, timeout=10) for i, e in enumerate(echoes)))
        assert replies == list(range(10))
        assert all(node.process_info(p).status == "running" for p in blocked)  # type: ignore[union-attr]


@pytest.mark.ember_realtime
async def test_a_queued_process_is_not_stuck_behind_one_that_blocks() -> None:
    """Two processes queued together: the worker that takes the first one blocks inside it,
    and the second must still be run (by another worker)."""

    class BlockOnFirst(ember.Actor):
        def __init__(self, entered: asyncio.Future[None]) -> None:
            self.entered = entered

        async def receive(self, msg: Any) -> Any:
            self.entered.set_result(None)
            await asyncio.get_running_loop().create_future()

    async with asyncio.timeout(REAL_WAIT), ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        first = await node.spawn(BlockOnFirst, entered)
        second, inbox = await puppet(node)
        node.send(first, "block")
        node.send(second, "hello")
        await entered
        assert await inbox.get() == "hello"


# -- asyncio inside receive -------------------------------------------------------------------


class UsesAsyncio(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        if msg == "cancelling":
            return task.cancelling()
        if msg == "timeout":
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.get_running_loop().create_future()
            except TimeoutError:
                return "timed out"
        if msg == "taskgroup":

            async def fail() -> None:
                raise ValueError("child failed")

            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(fail())
                    await asyncio.sleep(10)
            except ExceptionGroup as group:
                if all(isinstance(e, ValueError) for e in group.exceptions):
                    return "child failure caught"
                raise
        return None


@pytest.mark.ember_realtime
async def test_asyncio_timeout_works_inside_an_async_receive() -> None:
    async with asyncio.timeout(REAL_WAIT), ember.Node("a") as node:
        pid = await node.spawn(UsesAsyncio)
        assert await node.call(pid, "timeout") == "timed out"
        assert await node.call(pid, "taskgroup") == "child failure caught"


class Swallower(ember.Actor):
    """Blocks in receive and swallows the cancellation an exit signal causes (bad manners, but
    the runtime must survive it)."""

    def __init__(self, entered: asyncio.Future[None]) -> None:
        self.entered = entered

    async def receive(self, msg: Any) -> Any:
        self.entered.set_result(None)
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            return "swallowed"


@pytest.mark.parametrize("how", ["two signals", "swallowed"])
async def test_exit_signals_leave_no_cancellation_behind_in_the_worker(how: str) -> None:
    """An exit signal cancels the worker suspended in the receiving process. Once that
    process is gone, the worker runs other processes: they must start with no cancellation
    request pending, or asyncio.timeout and TaskGroup misbehave inside their receive."""
    async with ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        victim = await node.spawn(Swallower if how == "swallowed" else Blocker, entered)
        node.send(victim, "block")
        await entered
        user = await node.spawn(UsesAsyncio)
        exited = node.wait_exit(victim)
        node.exit(victim, "shutdown")
        if how == "two signals":
            node.exit(victim, "kill")  # before the worker had a chance to run
        # Queued now, so the same worker takes it right after the victim's exit.
        answer = asyncio.ensure_future(node.call(user, "cancelling"))
        assert await exited == ("killed" if how == "two signals" else "shutdown")
        assert await answer == 0
        for _ in range(3):
            assert await node.call(user, "taskgroup") == "child failure caught"
            assert await node.call(user, "timeout") == "timed out"


# -- throughput and fairness ------------------------------------------------------------------


class Tally:
    """Counts down the actors still expecting messages; ``done`` resolves at zero."""

    def __init__(self, actors: int) -> None:
        self.left = actors
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Counter(ember.Actor):
    def __init__(self, expected: int, tally: Tally) -> None:
        self.expected = expected
        self.tally = tally
        self.seen: list[int] = []

    async def receive(self, msg: Any) -> Any:
        self.seen.append(msg)
        if len(self.seen) == self.expected:
            self.tally.left -= 1
            if self.tally.left == 0:
                self.tally.done.set_result(None)
        elif len(self.seen) > self.expected:
            raise AssertionError("more messages than sent")


@pytest.mark.ember_realtime
async def test_100k_messages_to_1000_actors_are_all_processed() -> None:
    async with asyncio.timeout(REAL_WAIT), ember.Node("a") as node:
        tally = Tally(1_000)
        pids = [await node.spawn(Counter, 100, tally) for _ in range(1_000)]
        before = node.statistics().counters["messages_processed"]
        for i in range(100_000):
            ember.send(pids[i % 1_000], i)
        await tally.done
        assert node.statistics().counters["messages_processed"] - before == 100_000
        assert node.statistics().counters["crashed"] == 0


class Sink(ember.Actor):
    def __init__(self, total: int, done: asyncio.Future[int], progress: list[int]) -> None:
        self.total = total
        self.done = done
        self.progress = progress
        self.n = 0

    async def receive(self, msg: Any) -> Any:
        self.n += 1
        self.progress[0] = self.n
        if self.n == self.total:
            self.done.set_result(self.n)


@pytest.mark.ember_realtime
async def test_the_event_loop_is_not_starved_by_a_flood() -> None:
    """While one actor works through a million queued messages, callbacks and other tasks
    still get to run: the worker yields to the loop as it goes."""
    total = 1_000_000
    async with asyncio.timeout(REAL_WAIT), ember.Node("a") as node:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        progress = [0]
        sink = await node.spawn(Sink, total, done, progress)
        for i in range(total):
            ember.send(sink, i)
        seen_by_callback: list[int] = []
        loop.call_soon(lambda: seen_by_callback.append(progress[0]))
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not done.done():
                ticks += 1
                await asyncio.sleep(0)

        tick_task = asyncio.ensure_future(ticker())
        assert await done == total
        await tick_task
        assert seen_by_callback and seen_by_callback[0] < total
        assert ticks > 10  # the other task ran many times during the flood


async def test_a_loop_of_calls_to_a_plain_def_actor_lets_the_loop_run() -> None:
    """Calls to an idle plain-def actor run eagerly in the caller; they must still yield to
    the event loop now and then."""

    class SyncEcho(ember.Actor):
        def receive(self, msg: Any) -> Any:
            return msg

    async with ember.Node("a") as node:
        pid = await node.spawn(SyncEcho)
        ran: list[int] = []
        loop = asyncio.get_running_loop()
        loop.call_soon(ran.append, 1)
        for i in range(1_000):
            assert await node.call(pid, i) == i
            if ran:
                break
        assert ran == [1]


# -- shutdown ---------------------------------------------------------------------------------


class Recorded(ember.Actor):
    def __init__(self, log: list[Any], tag: Any) -> None:
        self.log = log
        self.tag = tag

    async def receive(self, msg: Any) -> Any:
        return None

    async def terminate(self, reason: Any) -> None:
        await asyncio.sleep(0)
        self.log.append((self.tag, reason))


class StubbornTrapper(ember.Actor):
    """Traps exits, and its terminate hook never returns."""

    trap_exits = True

    async def receive(self, msg: Any) -> Any:
        return None

    async def terminate(self, reason: Any) -> None:
        await asyncio.get_running_loop().create_future()


class Trapper(ember.Actor):
    """Traps exits and ignores Exit messages."""

    trap_exits = True

    def __init__(self, reasons: list[Any]) -> None:
        self.reasons = reasons

    async def receive(self, msg: Any) -> Any:
        return None

    def terminate(self, reason: Any) -> None:
        self.reasons.append(reason)


@pytest.mark.ember_realtime
async def test_orderly_node_shutdown() -> None:
    log: list[Any] = []
    async with asyncio.timeout(REAL_WAIT), ember.Node("a") as node:
        pids = [await node.spawn(Recorded, log, i) for i in range(100)]
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        terms: list[Any] = []
        blocked = await node.spawn(Blocker, entered, terms)
        node.send(blocked, "block")
        await entered
        idle = await node.spawn(Idle)
        await node.start_child(ember.child(Recorded, log, "supervised"))
    assert node.processes() == []
    assert sorted(log, key=str) == sorted(
        [(i, "shutdown") for i in range(100)] + [("supervised", "shutdown")], key=str
    )
    assert terms == ["shutdown"]
    for pid in [*pids, blocked, idle]:
        assert node.process_info(pid) is None
    with pytest.raises(ember.UsageError):
        await node.spawn(Idle)


async def test_node_shutdown_is_not_trapped() -> None:
    """The node orders unsupervised processes to stop: a trapping one is not asked, it is
    stopped (its terminate hook runs with shutdown) without waiting for the grace time."""
    reasons: list[Any] = []
    async with ember.Node("a") as node:
        trapper = await node.spawn(Trapper, reasons)
        loop = asyncio.get_running_loop()
        start = loop.time()
        exited = node.wait_exit(trapper)
        await node.stop(timeout=3.0)
        assert await exited == "shutdown"
        assert reasons == ["shutdown"]
        assert loop.time() - start < 1.0


async def test_shutdown_kills_what_does_not_stop_in_time() -> None:
    async with ember.Node("a") as node:
        stubborn = await node.spawn(StubbornTrapper)
        loop = asyncio.get_running_loop()
        start = loop.time()
        exited = node.wait_exit(stubborn)
        await node.stop(timeout=3.0)
        assert await exited == "killed"
        assert loop.time() - start == pytest.approx(3.0, abs=0.1)
        assert node.processes() == []
