"""One-way tell throughput: N messages from one actor to another.

The producer sends in bursts of ``burst`` messages and yields to the loop between bursts; the
consumer counts and resolves a future at the last message. Baselines, same shape, same loop:

- ``asyncio_queue``: a producer task ``put_nowait``-ing into an ``asyncio.Queue`` and a consumer
  task ``await q.get()``-ing from it (the bare asyncio hand-off);
- ``lean_deque_task``: the "lean limit" of a mailbox runtime: a ``collections.deque`` mailbox
  drained by a consumer task that calls a plain handler per message and, when the deque is
  empty, parks on a future the producer resolves when the deque goes non-empty.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from typing import Any

import ember
from ember.actors._watchdog import DEFAULT_STALL_THRESHOLD, watched

from ._util import assert_uvloop, interleaved, perf_counter, rates, ratio, run_uvloop, section

NAME = "tell"


class Consumer(ember.Actor):
    def __init__(self, n: int, done: asyncio.Future[None]) -> None:
        self.left = n
        self.done = done

    async def receive(self, msg: Any) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set_result(None)


class PlainConsumer(ember.Actor):
    def __init__(self, n: int, done: asyncio.Future[None]) -> None:
        self.left = n
        self.done = done

    def receive(self, msg: Any) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set_result(None)


class Producer(ember.Actor):
    async def receive(self, msg: Any) -> None:
        dest, n, burst = msg
        send = ember.send
        sent = 0
        while sent < n:
            k = min(burst, n - sent)
            for i in range(k):
                send(dest, i)
            sent += k
            await asyncio.sleep(0)


async def ember_tell(
    n: int, burst: int, consumer: type[ember.Actor], setup: Any = None, clock: Any = perf_counter
) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    async with ember.Node("bench") as node:
        if setup is not None:
            setup(node)
        done: asyncio.Future[None] = loop.create_future()
        cons = await node.spawn(consumer, n, done)
        prod = await node.spawn(Producer)
        gc.collect()
        t0 = clock()
        ember.send(prod, (cons, n, burst))
        await done
        return float(clock() - t0)


async def queue_tell(n: int, burst: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[int] = asyncio.Queue()
    done: asyncio.Future[None] = loop.create_future()

    async def consumer() -> None:
        left = n
        get = q.get
        while True:
            await get()
            left -= 1
            if left == 0:
                done.set_result(None)
                return

    async def producer() -> None:
        put = q.put_nowait
        sent = 0
        while sent < n:
            k = min(burst, n - sent)
            for i in range(k):
                put(i)
            sent += k
            await asyncio.sleep(0)

    cons = loop.create_task(consumer())
    await asyncio.sleep(0)  # the consumer is parked in get() before the clock starts
    gc.collect()
    t0 = perf_counter()
    prod = loop.create_task(producer())
    await done
    elapsed = perf_counter() - t0
    await asyncio.gather(cons, prod)
    return elapsed


class _LeanMailbox:
    """A deque mailbox drained by one task; the task parks on a future when it runs dry."""

    __slots__ = ("handler", "mbox", "waiter")

    def __init__(self, handler: Any) -> None:
        self.mbox: deque[Any] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.handler = handler

    def send(self, msg: Any) -> None:
        self.mbox.append(msg)
        w = self.waiter
        if w is not None:
            self.waiter = None
            w.set_result(None)

    async def drain(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Future[None]) -> None:
        mbox = self.mbox
        pop = mbox.popleft
        handler = self.handler
        while not stop.done():
            while mbox:
                handler(pop())
            if stop.done():
                return
            w = self.waiter = loop.create_future()
            await w


async def lean_tell(n: int, burst: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    class Counter:
        __slots__ = ("left",)

        def __init__(self) -> None:
            self.left = n

        def __call__(self, msg: Any) -> None:
            self.left -= 1
            if self.left == 0:
                done.set_result(None)

    box = _LeanMailbox(Counter())

    async def producer() -> None:
        send = box.send
        sent = 0
        while sent < n:
            k = min(burst, n - sent)
            for i in range(k):
                send(i)
            sent += k
            await asyncio.sleep(0)

    cons = loop.create_task(box.drain(loop, done))
    await asyncio.sleep(0)
    gc.collect()
    t0 = perf_counter()
    prod = loop.create_task(producer())
    await done
    elapsed = perf_counter() - t0
    await asyncio.gather(cons, prod)
    return elapsed


def watchdog_cpu(seconds: float) -> float:
    """Milliseconds of CPU per second the stall watchdog costs on an idle loop: the process
    time of ``seconds`` of ``asyncio.sleep`` with it, minus without it."""

    def cpu(threshold: float | None) -> float:
        t0 = time.process_time()
        run_uvloop(watched(asyncio.sleep(seconds), threshold))
        return time.process_time() - t0

    return max(0.0, cpu(DEFAULT_STALL_THRESHOLD) - cpu(None)) * 1000 / seconds


def run(quick: bool, reps: int) -> dict[str, Any]:
    n = 50_000 if quick else 1_000_000
    burst = 1000
    samples = interleaved(
        {
            "ember_async": lambda: run_uvloop(ember_tell(n, burst, Consumer)),
            # as ember.run runs it, with the stall watchdog: its cost is this ratio to the above
            "ember_async_watchdog": lambda: run_uvloop(
                watched(ember_tell(n, burst, Consumer), DEFAULT_STALL_THRESHOLD)
            ),
            "ember_plain": lambda: run_uvloop(ember_tell(n, burst, PlainConsumer)),
            "asyncio_queue": lambda: run_uvloop(queue_tell(n, burst)),
            "lean_deque_task": lambda: run_uvloop(lean_tell(n, burst)),
        },
        reps,
    )
    r = rates(samples, n)
    idle_cpu = watchdog_cpu(0.5 if quick else 4.0)
    return section(
        unit="msg/s",
        params={"messages": n, "burst": burst, "repetitions": reps},
        samples=samples,
        results=r,
        ratios={
            "ember_async_watchdog/ember_async": ratio(r["ember_async_watchdog"], r["ember_async"]),
            "ember_async/asyncio_queue": ratio(r["ember_async"], r["asyncio_queue"]),
            "ember_plain/asyncio_queue": ratio(r["ember_plain"], r["asyncio_queue"]),
            "ember_async/lean_deque_task": ratio(r["ember_async"], r["lean_deque_task"]),
            "ember_plain/lean_deque_task": ratio(r["ember_plain"], r["lean_deque_task"]),
        },
        notes={
            "watchdog": f"the stall watchdog costs {idle_cpu:.2f} ms of CPU per second on an "
            "idle loop; ember_async_watchdog/ember_async is its cost under load"
        },
    )
