"""Tests for the virtual-time event loop in ember.testing._vtime."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, TypeVar

import pytest

from ember.testing._vtime import (
    VirtualTimeDeadlock,
    VirtualTimeLoop,
    run,
    virtual_time_loop,
)

T = TypeVar("T")

# Far below what the real clock would need for any of the virtual sleeps below.
REAL_TIME_BUDGET = 1.0


class CountingLoop(VirtualTimeLoop):
    """Counts loop iterations and fails (instead of spinning forever) past a limit."""

    def __init__(self, limit: int = 100_000) -> None:
        super().__init__()
        self.iterations = 0
        self.limit = limit

    def _run_once(self) -> None:
        self.iterations += 1
        if self.iterations > self.limit:
            raise AssertionError(f"loop spun more than {self.limit} iterations")
        super()._run_once()  # type: ignore[misc]


def run_on(loop: VirtualTimeLoop, main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    try:
        return loop.run_until_complete(wrapper())
    finally:
        loop.close()


@contextlib.contextmanager
def watchdog(loop: asyncio.AbstractEventLoop, seconds: float = 5.0) -> Iterator[None]:
    """Stop `loop` after `seconds` of real time, so a broken loop fails a test, not hangs it."""
    timer = threading.Timer(seconds, loop.call_soon_threadsafe, (loop.stop,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture
def socketpair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


# --- sleeping and the clock -------------------------------------------------------------------


def test_clock_starts_at_zero() -> None:
    loop = VirtualTimeLoop()
    try:
        assert loop.time() == 0.0
    finally:
        loop.close()


def test_hour_long_sleep_is_instant_and_exact() -> None:
    async def main() -> float:
        await asyncio.sleep(3600)
        return asyncio.get_running_loop().time()

    start = time.perf_counter()
    assert run(main) == 3600.0
    assert time.perf_counter() - start < REAL_TIME_BUDGET


def test_sleep_lands_exactly_on_deadline_from_nonzero_start() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.1)
        start = loop.time()
        await asyncio.sleep(3600)
        return start, loop.time()

    start, end = run(main)
    assert start == 0.1
    assert end == 0.1 + 3600  # the deadline asyncio computed, not a drifted neighbour


@pytest.mark.parametrize("delay", [1.0, 3600.0, 10 * 86400.0, 1e6])
def test_sleep_takes_no_extra_loop_iterations(delay: float) -> None:
    # sleep(0) is the baseline: start the task, yield once, finish. A timed sleep must cost
    # exactly one more iteration (the jump), even beyond asyncio's 1-day select timeout cap.
    baseline = CountingLoop()
    run_on(baseline, lambda: asyncio.sleep(0))

    loop = CountingLoop()
    run_on(loop, lambda: asyncio.sleep(delay))
    assert loop.iterations == baseline.iterations + 1


def test_thousand_short_sleeps_do_not_drift() -> None:
    async def main() -> float:
        for _ in range(1000):
            await asyncio.sleep(0.1)
        return asyncio.get_running_loop().time()

    start = time.perf_counter()
    assert run(main) == pytest.approx(100.0, abs=1e-9)
    assert time.perf_counter() - start < REAL_TIME_BUDGET


def test_timer_becomes_due_when_clock_is_far_from_zero() -> None:
    # Around 2**40 s the float spacing (2**-12) dwarfs the clock resolution (1e-9), so
    # `when + resolution == when`; the loop must still fire the timer instead of spinning.
    loop = CountingLoop(limit=1000)

    async def main() -> float:
        loop.advance(2.0**40)
        await asyncio.sleep(1.0)
        return loop.time()

    end = run_on(loop, main)
    deadline = 2.0**40 + 1.0
    assert deadline <= end <= math.nextafter(deadline, math.inf)


def test_advance_moves_clock_and_makes_timers_due() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        fired: list[tuple[str, float]] = []
        loop.call_later(5, lambda: fired.append(("t5", loop.time())))
        loop.advance(10)
        assert loop.time() == 10
        await asyncio.sleep(0)
        return fired

    assert run(main) == [("t5", 10.0)]


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_advance_rejects_bad_values(bad: float) -> None:
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(ValueError):
            loop.advance(bad)
        assert loop.time() == 0.0
    finally:
        loop.close()


# --- timer ordering ---------------------------------------------------------------------------


def test_call_later_and_call_at_fire_in_deadline_order_at_exact_times() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        fired: list[tuple[str, float]] = []

        def record(name: str) -> None:
            fired.append((name, loop.time()))
            if name == "last":
                done.set_result(None)

        loop.call_later(30, record, "c")
        loop.call_later(10, record, "a")
        loop.call_at(20, record, "b")
        loop.call_later(1e-6, record, "tiny")
        loop.call_later(20.5, lambda: loop.call_later(5, record, "nested"))  # due at 25.5
        loop.call_later(40, record, "last")
        cancelled = loop.call_later(15, record, "cancelled")
        cancelled.cancel()
        await done
        return fired

    assert run(main) == [
        ("tiny", 1e-6),
        ("a", 10.0),
        ("b", 20.0),
        ("nested", 25.5),
        ("c", 30.0),
        ("last", 40.0),
    ]


def test_many_concurrent_sleepers_wake_in_deadline_order() -> None:
    rng = random.Random(1234)
    delays = rng.sample(range(1, 100_000), 500)  # distinct, created in shuffled order
    scaled = [d / 1000 for d in delays]

    async def main() -> list[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        woke: list[tuple[float, float]] = []

        async def sleeper(delay: float) -> None:
            await asyncio.sleep(delay)
            woke.append((delay, loop.time()))

        await asyncio.gather(*(sleeper(d) for d in scaled))
        return woke

    start = time.perf_counter()
    woke = run(main)
    assert time.perf_counter() - start < REAL_TIME_BUDGET
    assert [d for d, _ in woke] == sorted(scaled)
    assert all(t == d for d, t in woke)


# --- timeouts ---------------------------------------------------------------------------------


def test_asyncio_timeout_fires_at_virtual_deadline() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(2)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(100)
        return loop.time()

    assert run(main) == 7.0


def test_wait_for_times_out_at_virtual_deadline() -> None:
    async def main() -> float:
        never = asyncio.Event()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(never.wait(), 2.5)
        return asyncio.get_running_loop().time()

    assert run(main) == 2.5


def test_wait_for_returns_before_its_deadline() -> None:
    async def main() -> tuple[str, float]:
        async def slow() -> str:
            await asyncio.sleep(1.5)
            return "done"

        result = await asyncio.wait_for(slow(), 60)
        return result, asyncio.get_running_loop().time()

    assert run(main) == ("done", 1.5)


# --- real I/O ---------------------------------------------------------------------------------


def test_socketpair_io_is_served_without_jumping_the_clock(
    socketpair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = socketpair

    async def main() -> tuple[list[bytes], list[float], float]:
        loop = asyncio.get_running_loop()
        # A far-away timer: a loop that jumped before polling I/O would land on it.
        background = asyncio.create_task(asyncio.sleep(1000))
        received: list[bytes] = []
        seen_at: list[float] = []
        for i in range(5):
            reader = asyncio.create_task(loop.sock_recv(a, 100))
            await asyncio.sleep(0)  # the reader is now registered and waiting on the fd
            assert not reader.done()
            await loop.sock_sendall(b, b"ping %d" % i)
            received.append(await reader)
            seen_at.append(loop.time())
        await background
        return received, seen_at, loop.time()

    received, seen_at, end = run(main)
    assert received == [b"ping %d" % i for i in range(5)]
    assert seen_at == [0.0] * 5
    assert end == 1000.0


def test_streams_echo_over_socketpair_while_timers_pending(
    socketpair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = socketpair

    async def main() -> tuple[list[bytes], float]:
        loop = asyncio.get_running_loop()
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                await asyncio.sleep(60)
                ticks.append(loop.time())

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()

        tick_task = asyncio.create_task(ticker())
        server_reader, server_writer = await asyncio.open_connection(sock=b)
        echo_task = asyncio.create_task(echo(server_reader, server_writer))
        reader, writer = await asyncio.open_connection(sock=a)
        replies = []
        for word in (b"alpha\n", b"beta\n", b"gamma\n"):
            writer.write(word)
            await writer.drain()
            replies.append(await reader.readline())
        assert ticks == []  # no timer fired while the exchange had data to move
        writer.close()
        await writer.wait_closed()
        await echo_task
        await server_writer.wait_closed()
        tick_task.cancel()
        return replies, loop.time()

    replies, end = run(main)
    assert replies == [b"ALPHA\n", b"BETA\n", b"GAMMA\n"]
    assert end == 0.0


def test_blocks_on_real_io_from_another_thread_instead_of_deadlocking(
    socketpair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = socketpair
    may_send = threading.Event()

    def sender() -> None:
        may_send.wait(timeout=10)
        b.sendall(b"from thread")

    thread = threading.Thread(target=sender)
    thread.start()
    try:

        async def main() -> tuple[bytes, float]:
            loop = asyncio.get_running_loop()
            reader = asyncio.create_task(loop.sock_recv(a, 100))
            await asyncio.sleep(0)  # reader registered; no timers anywhere
            may_send.set()
            return await reader, loop.time()

        assert run(main) == (b"from thread", 0.0)
    finally:
        may_send.set()
        thread.join()


# --- executor threads -------------------------------------------------------------------------


class ReleaseWhenIdleLoop(VirtualTimeLoop):
    """Sets `idle` the first time the loop goes idle, to release a waiting worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = threading.Event()

    def _vt_idle(self, real: Any, timeout: float | None) -> Any:
        self.idle.set()
        return super()._vt_idle(real, timeout)


def test_executor_work_is_not_a_deadlock_and_takes_no_virtual_time() -> None:
    loop = ReleaseWhenIdleLoop()

    def work() -> str:
        # Only finishes once the loop has gone idle with this job in flight.
        assert loop.idle.wait(timeout=10)
        return "worked"

    async def main() -> tuple[str, float, float]:
        timer = asyncio.create_task(asyncio.sleep(10))
        result = await asyncio.to_thread(work)
        at = loop.time()
        await timer
        return result, at, loop.time()

    assert run_on(loop, main) == ("worked", 0.0, 10.0)


def test_executor_work_without_timers_is_not_a_deadlock() -> None:
    loop = ReleaseWhenIdleLoop()

    def work() -> int:
        assert loop.idle.wait(timeout=10)
        return 42

    async def main() -> int:
        return await loop.run_in_executor(None, work)

    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        assert runner.run(main()) == 42  # and Runner.close() shuts the executor down


# --- deadlock detection -----------------------------------------------------------------------


def test_waiting_forever_raises_deadlock() -> None:
    async def main() -> None:
        with watchdog(asyncio.get_running_loop()):
            await asyncio.Event().wait()

    start = time.perf_counter()
    with pytest.raises(VirtualTimeDeadlock, match="deadlock") as info:
        run(main)
    assert time.perf_counter() - start < REAL_TIME_BUDGET
    assert "main" in str(info.value)  # the stuck task is named in the message
    assert isinstance(info.value, RuntimeError)


def test_deadlock_after_timers_run_out() -> None:
    loop = VirtualTimeLoop()
    future = loop.create_future()

    async def main() -> None:
        await asyncio.sleep(5)
        await future

    try:
        with watchdog(loop), pytest.raises(VirtualTimeDeadlock, match=r"t=5\.0"):
            loop.run_until_complete(main())
        assert loop.time() == 5.0
        future.set_result(None)  # the loop is still usable after reporting the deadlock
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()


def test_run_until_complete_on_unresolvable_future_raises_deadlock() -> None:
    loop = VirtualTimeLoop()
    try:
        with watchdog(loop), pytest.raises(VirtualTimeDeadlock):
            loop.run_until_complete(loop.create_future())
    finally:
        loop.close()


def test_registered_fd_with_pending_timer_still_jumps(
    socketpair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = socketpair

    async def main() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(a, 100), 30)
        return loop.time()

    assert run(main) == 30.0


# --- run() and Runner integration -------------------------------------------------------------


def test_run_accepts_coroutine_and_callables() -> None:
    async def value(x: int) -> int:
        await asyncio.sleep(1)
        return x

    class Awaitable_:
        def __await__(self) -> Generator[Any, None, str]:
            yield from asyncio.sleep(2).__await__()
            return "custom"

    assert run(value(1)) == 1
    assert run(lambda: value(2)) == 2
    assert run(Awaitable_) == "custom"


def test_run_rejects_non_awaitables() -> None:
    with pytest.raises(TypeError):
        run(42)  # type: ignore[arg-type]


def test_run_propagates_exceptions() -> None:
    class Boom(Exception):
        pass

    async def main() -> None:
        await asyncio.sleep(10)
        raise Boom("at t=10")

    with pytest.raises(Boom, match="at t=10"):
        run(main)


def test_run_uses_fresh_loop_and_cleans_up() -> None:
    events: list[str] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def agen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    async def leftover() -> None:
        try:
            await asyncio.sleep(10_000)
        except asyncio.CancelledError:
            events.append("leftover cancelled")
            raise

    async def main() -> float:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        assert isinstance(loop, VirtualTimeLoop)
        asyncio.create_task(leftover())  # noqa: RUF006
        gen = agen()
        assert await gen.__anext__() == 1
        await asyncio.sleep(3)
        return loop.time()

    assert run(main) == 3.0
    assert run(main) == 3.0  # a second run starts from a fresh clock
    assert sorted(events) == ["agen closed"] * 2 + ["leftover cancelled"] * 2
    assert loops[0] is not loops[1]
    assert all(loop.is_closed() for loop in loops)


def test_asyncio_runner_with_loop_factory() -> None:
    for factory in (VirtualTimeLoop, virtual_time_loop):
        with asyncio.Runner(loop_factory=factory) as runner:
            assert runner.run(asyncio.sleep(7, result="a")) == "a"
            loop = runner.get_loop()
            assert isinstance(loop, VirtualTimeLoop)
            assert loop.time() == 7.0
            runner.run(asyncio.sleep(3))
            assert loop.time() == 10.0  # the same loop (and clock) across runs
        assert loop.is_closed()
