"""A ring of A actors passing one token H hops: each actor sends the decremented count to its
next; the actor that receives 0 resolves a future. Reported as hops/s.

Only one process is ever runnable, so this measures the per-hop cost of waking an idle process
(mailbox allocation, run-queue entry, state changes) rather than mailbox draining.

Baselines on the same loop, same ring size:

- ``asyncio_queue``: A tasks, each parked in ``await queue.get()`` on its own ``asyncio.Queue``;
- ``lean_deque_task``: A deque mailboxes each drained by its own task parked on a future
  (the lean design of the tell benchmark; idle actors each hold a task here).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import ember

from ._util import assert_uvloop, interleaved, perf_counter, rates, ratio, run_uvloop, section
from .tell import _LeanMailbox

NAME = "ring"


class Link(ember.Actor):
    def __init__(self, done: asyncio.Future[None]) -> None:
        self.next: Any = None
        self.done = done

    async def receive(self, msg: Any) -> Any:
        if msg.__class__ is int:
            if msg == 0:
                self.done.set_result(None)
            else:
                ember.send(self.next, msg - 1)
            return None
        self.next = msg[1]  # ("next", pid), sent by call during setup
        return None


class PlainLink(ember.Actor):
    def __init__(self, done: asyncio.Future[None]) -> None:
        self.next: Any = None
        self.done = done

    def receive(self, msg: Any) -> Any:
        if msg.__class__ is int:
            if msg == 0:
                self.done.set_result(None)
            else:
                ember.send(self.next, msg - 1)
            return None
        self.next = msg[1]
        return None


async def ember_ring(size: int, hops: int, cls: type[ember.Actor]) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    async with ember.Node("bench") as node:
        done: asyncio.Future[None] = loop.create_future()
        pids = [node.spawn_nowait(cls, done) for _ in range(size)]
        for i, pid in enumerate(pids):
            await ember.call(pid, ("next", pids[(i + 1) % size]), timeout=None)
        gc.collect()
        t0 = perf_counter()
        ember.send(pids[0], hops)
        await done
        return perf_counter() - t0


async def queue_ring(size: int, hops: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(size)]

    async def member(i: int) -> None:
        get = queues[i].get
        put = queues[(i + 1) % size].put_nowait
        while True:
            n = await get()
            if n < 0:
                return
            if n == 0:
                done.set_result(None)
            else:
                put(n - 1)

    tasks = [loop.create_task(member(i)) for i in range(size)]
    await asyncio.sleep(0)
    gc.collect()
    t0 = perf_counter()
    queues[0].put_nowait(hops)
    await done
    elapsed = perf_counter() - t0
    for q in queues:
        q.put_nowait(-1)
    await asyncio.gather(*tasks)
    return elapsed


async def lean_ring(size: int, hops: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    boxes: list[_LeanMailbox] = []

    def handler_for(i: int) -> Any:
        def handle(n: int) -> None:
            if n == 0:
                done.set_result(None)
            else:
                boxes[(i + 1) % size].send(n - 1)

        return handle

    boxes.extend(_LeanMailbox(handler_for(i)) for i in range(size))
    tasks = [loop.create_task(b.drain(loop, done)) for b in boxes]
    await asyncio.sleep(0)
    gc.collect()
    t0 = perf_counter()
    boxes[0].send(hops)
    await done
    elapsed = perf_counter() - t0
    for b in boxes:
        b.send(-1)  # wake every drainer; each sees ``done`` and returns
    await asyncio.gather(*tasks)
    return elapsed


def run(quick: bool, reps: int) -> dict[str, Any]:
    size = 1_000 if quick else 10_000
    hops = 50_000 if quick else 1_000_000
    samples = interleaved(
        {
            "ember_async": lambda: run_uvloop(ember_ring(size, hops, Link)),
            "ember_plain": lambda: run_uvloop(ember_ring(size, hops, PlainLink)),
            "asyncio_queue": lambda: run_uvloop(queue_ring(size, hops)),
            "lean_deque_task": lambda: run_uvloop(lean_ring(size, hops)),
        },
        reps,
    )
    r = rates(samples, hops)
    return section(
        unit="hops/s",
        params={"actors": size, "hops": hops, "repetitions": reps},
        samples=samples,
        results=r,
        ratios={
            "ember_async/asyncio_queue": ratio(r["ember_async"], r["asyncio_queue"]),
            "ember_plain/asyncio_queue": ratio(r["ember_plain"], r["asyncio_queue"]),
            "ember_async/lean_deque_task": ratio(r["ember_async"], r["lean_deque_task"]),
            "ember_plain/lean_deque_task": ratio(r["ember_plain"], r["lean_deque_task"]),
        },
    )
