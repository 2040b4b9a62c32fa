"""Request/reply round trips: N sequential ``ember.call`` from a coroutine to an echo actor.

Ember variants, each with the default timeout (5 s, which files the call in a deadline bucket)
and with ``timeout=None``:

- ``ember_async``: ``async def receive`` without ``await``, and ``ember_plain``: plain ``def
  receive``. A receive that cannot suspend, on an idle process, runs eagerly in the caller
  (except every 64th call, which goes through the scheduler);
- ``ember_scheduled``: an ``async def receive`` with an ``await`` in it (not taken): every
  call crosses to a worker task and back. The scheduler's own speed.

Baselines on the same loop:

- ``future_pingpong``: two tasks handing futures back and forth, one future resolved per
  direction (the client resolves the server's request future with ``(msg, reply_future)``, the
  server resolves ``reply_future``);
- ``queue_pingpong``: the same over two ``asyncio.Queue`` objects (context only);
- ``lean_deque_task``: the "lean limit" of a task-drained mailbox runtime: the caller appends
  ``(msg, reply_future)`` to a deque drained by a task parked on a wake-up future, whose plain
  handler resolves the reply future (context: what this design can reach with no bookkeeping);
- ``lean_call_soon``: the same deque drained by a ``loop.call_soon`` callback instead of a task
  (context: the ceiling of a design that runs plain handlers without a task).
"""

from __future__ import annotations

import asyncio
import gc
from collections import deque
from typing import Any

import ember
from ember.actors._watchdog import DEFAULT_STALL_THRESHOLD, watched

from ._util import assert_uvloop, interleaved, perf_counter, rates, ratio, run_uvloop, section
from .tell import _LeanMailbox

NAME = "call"


class Echo(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


class AwaitingEcho(ember.Actor):
    """Its receive has an ``await`` (never taken here), so calls cannot run eagerly: every
    round trip goes through the run queue and a worker task. This is the scheduler's path."""

    async def receive(self, msg: Any) -> Any:
        if msg is None:
            await asyncio.sleep(0)
        return msg


class PlainEcho(ember.Actor):
    def receive(self, msg: Any) -> Any:
        return msg


_DEFAULT = object()


async def ember_call(
    n: int, cls: type[ember.Actor], call_timeout: Any, setup: Any = None, clock: Any = perf_counter
) -> float:
    assert_uvloop()
    async with ember.Node("bench") as node:
        if setup is not None:
            setup(node)
        pid = await node.spawn(cls)
        call = ember.call
        gc.collect()
        if call_timeout is _DEFAULT:
            t0 = clock()
            for i in range(n):
                await call(pid, i)
        else:
            t0 = clock()
            for i in range(n):
                await call(pid, i, timeout=call_timeout)
        return float(clock() - t0)


async def future_pingpong(n: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    box: list[asyncio.Future[Any]] = [loop.create_future()]

    async def server() -> None:
        while True:
            msg, reply = await box[0]
            box[0] = loop.create_future()
            if reply is None:
                return
            reply.set_result(msg)

    srv = loop.create_task(server())
    await asyncio.sleep(0)
    create = loop.create_future
    gc.collect()
    t0 = perf_counter()
    for i in range(n):
        reply = create()
        box[0].set_result((i, reply))
        await reply
    elapsed = perf_counter() - t0
    box[0].set_result((None, None))
    await srv
    return elapsed


async def queue_pingpong(n: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    requests: asyncio.Queue[Any] = asyncio.Queue()
    replies: asyncio.Queue[Any] = asyncio.Queue()

    async def server() -> None:
        while True:
            msg = await requests.get()
            if msg is None:
                return
            replies.put_nowait(msg)

    srv = loop.create_task(server())
    await asyncio.sleep(0)
    gc.collect()
    t0 = perf_counter()
    for i in range(n):
        requests.put_nowait(i)
        await replies.get()
    elapsed = perf_counter() - t0
    requests.put_nowait(None)
    await srv
    return elapsed


def _answer(req: tuple[Any, asyncio.Future[Any]]) -> None:
    req[1].set_result(req[0])


async def lean_task_ask(n: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    box = _LeanMailbox(_answer)
    drainer = loop.create_task(box.drain(loop, stop))
    await asyncio.sleep(0)
    send = box.send
    create = loop.create_future
    gc.collect()
    t0 = perf_counter()
    for i in range(n):
        reply = create()
        send((i, reply))
        await reply
    elapsed = perf_counter() - t0
    stop.set_result(None)
    box.send(None)
    await drainer
    return elapsed


async def lean_call_soon_ask(n: int) -> float:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    mbox: deque[tuple[Any, asyncio.Future[Any]]] = deque()
    scheduled = False

    def drain() -> None:
        nonlocal scheduled
        scheduled = False
        pop = mbox.popleft
        while mbox:
            _answer(pop())

    def send(req: tuple[Any, asyncio.Future[Any]]) -> None:
        nonlocal scheduled
        mbox.append(req)
        if not scheduled:
            scheduled = True
            loop.call_soon(drain)

    create = loop.create_future
    gc.collect()
    t0 = perf_counter()
    for i in range(n):
        reply = create()
        send((i, reply))
        await reply
    return perf_counter() - t0


def run(quick: bool, reps: int) -> dict[str, Any]:
    n = 10_000 if quick else 200_000
    samples = interleaved(
        {
            "ember_async": lambda: run_uvloop(ember_call(n, Echo, _DEFAULT)),
            "ember_async_no_timeout": lambda: run_uvloop(ember_call(n, Echo, None)),
            "ember_scheduled": lambda: run_uvloop(ember_call(n, AwaitingEcho, _DEFAULT)),
            # as ember.run runs it, with the stall watchdog: its cost is this ratio to the above
            "ember_scheduled_watchdog": lambda: run_uvloop(
                watched(ember_call(n, AwaitingEcho, _DEFAULT), DEFAULT_STALL_THRESHOLD)
            ),
            "ember_scheduled_no_timeout": lambda: run_uvloop(ember_call(n, AwaitingEcho, None)),
            "ember_plain": lambda: run_uvloop(ember_call(n, PlainEcho, _DEFAULT)),
            "ember_plain_no_timeout": lambda: run_uvloop(ember_call(n, PlainEcho, None)),
            "future_pingpong": lambda: run_uvloop(future_pingpong(n)),
            "queue_pingpong": lambda: run_uvloop(queue_pingpong(n)),
            "lean_deque_task": lambda: run_uvloop(lean_task_ask(n)),
            "lean_call_soon": lambda: run_uvloop(lean_call_soon_ask(n)),
        },
        reps,
    )
    r = rates(samples, n)
    base = r["future_pingpong"]
    watchdog = ratio(r["ember_scheduled_watchdog"], r["ember_scheduled"])
    return section(
        unit="round trips/s",
        params={"calls": n, "repetitions": reps, "default_timeout_s": 5.0},
        samples=samples,
        results=r,
        ratios={
            "ember_scheduled_watchdog/ember_scheduled": watchdog,
        }
        | {
            f"{name}/future_pingpong": ratio(r[name], base)
            for name in (
                "ember_async",
                "ember_async_no_timeout",
                "ember_scheduled",
                "ember_scheduled_no_timeout",
                "ember_plain",
                "ember_plain_no_timeout",
                "queue_pingpong",
                "lean_deque_task",
                "lean_call_soon",
            )
        },
    )
