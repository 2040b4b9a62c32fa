"""Spawn rate and RSS per idle actor.

Every variant runs in a fresh subprocess (``python -m bench.spawn --child VARIANT --count N``),
so earlier benchmarks do not pollute its RSS. The child measures RSS (psutil) after setup and a
``gc.collect()``, creates ``N`` idle things while timing the loop (the garbage collector left on,
as in a real program), then ``gc.collect()`` again and measures RSS; bytes per thing is the RSS
growth over ``N``. The child exits with ``os._exit`` once it has printed its figures: tearing
down a million processes is not what is measured.

Variants:

- ``ember_spawn_nowait``: ``node.spawn_nowait(Idle)`` in a loop; ``Idle`` is a small actor class
  with one attribute set in ``__init__`` (no ``__slots__``, as users write it);
- ``ember_spawn_await``: ``await node.spawn(Idle)`` in a loop (RSS measured too);
- ``ember_spawn_nowait_slots``: the same class with ``__slots__ = ("value",)``;
- ``ember_spawn_nowait_gc_off``: ``ember_spawn_nowait`` with the garbage collector disabled while
  spawning, to show what share of the spawn time is the collector walking a growing heap;
- ``slots_object``: a plain ``__slots__`` object with one attribute per "actor", kept in a dict by
  serial (the floor for any design that keeps one object and one table entry per process);
- ``asyncio_task``: an ``asyncio.Task`` parked on its own ``Future`` per actor, kept in a list
  (what an actor costs in a design where every idle actor holds a task); fewer of them, scaled.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

import ember

from ._util import assert_uvloop, perf_counter, ratio, run_uvloop

NAME = "spawn"


class Idle(ember.Actor):
    def __init__(self) -> None:
        self.value = 0

    async def receive(self, msg: Any) -> None:
        return None


class IdleSlots(ember.Actor):
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    async def receive(self, msg: Any) -> None:
        return None


class SlotsObject:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _report(n: int, elapsed: float, before: int, after: int) -> None:
    out = {
        "count": n,
        "elapsed_s": elapsed,
        "per_s": n / elapsed,
        "rss_before": before,
        "rss_after": after,
        "bytes_each": (after - before) / n,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip tearing down what we built


async def _ember_child(variant: str, n: int) -> None:
    assert_uvloop()
    cls = IdleSlots if variant == "ember_spawn_nowait_slots" else Idle
    async with ember.Node("bench") as node:
        # Warm the allocator and the code paths with a few, then measure from a clean state.
        for _ in range(1000):
            node.spawn_nowait(cls)
        before = _rss()
        if variant == "ember_spawn_await":
            spawn = node.spawn
            t0 = perf_counter()
            for _ in range(n):
                await spawn(cls)
            elapsed = perf_counter() - t0
        else:
            spawn_nowait = node.spawn_nowait
            gc_off = variant == "ember_spawn_nowait_gc_off"
            if gc_off:
                gc.disable()
            t0 = perf_counter()
            for _ in range(n):
                spawn_nowait(cls)
            elapsed = perf_counter() - t0
            if gc_off:
                gc.enable()
        after = _rss()
        assert len(node.processes()) >= n
        _report(n, elapsed, before, after)


async def _slots_child(n: int) -> None:
    assert_uvloop()
    table: dict[int, SlotsObject] = {}
    before = _rss()
    t0 = perf_counter()
    for i in range(n):
        table[i] = SlotsObject()
    elapsed = perf_counter() - t0
    after = _rss()
    _report(n, elapsed, before, after)


async def _parked(fut: asyncio.Future[None]) -> None:
    await fut


async def _task_child(n: int) -> None:
    assert_uvloop()
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    before = _rss()
    t0 = perf_counter()
    for _ in range(n):
        tasks.append(loop.create_task(_parked(loop.create_future())))
    await asyncio.sleep(0)  # every task runs its first step and parks on its future
    elapsed = perf_counter() - t0
    after = _rss()
    _report(n, elapsed, before, after)


def child_main(variant: str, n: int) -> None:
    if variant.startswith("ember_"):
        run_uvloop(_ember_child(variant, n))
    elif variant == "slots_object":
        run_uvloop(_slots_child(n))
    elif variant == "asyncio_task":
        run_uvloop(_task_child(n))
    else:
        raise SystemExit(f"unknown variant {variant}")


def _spawn_child(variant: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.spawn", "--child", variant, "--count", str(n)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"spawn child {variant} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(quick: bool, reps: int) -> dict[str, Any]:
    n = 20_000 if quick else 1_000_000
    n_tasks = 5_000 if quick else 100_000
    counts = {
        "ember_spawn_nowait": n,
        "ember_spawn_await": n,
        "ember_spawn_nowait_slots": n,
        "ember_spawn_nowait_gc_off": n,
        "slots_object": n,
        "asyncio_task": n_tasks,
    }
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in counts}
    for _ in range(reps):  # round-robin, like the in-process benchmarks
        for name, count in counts.items():
            raw[name].append(_spawn_child(name, count))
    rate = {k: round(statistics.median(x["per_s"] for x in v), 1) for k, v in raw.items()}
    mem = {k: round(statistics.median(x["bytes_each"] for x in v), 1) for k, v in raw.items()}
    head = "ember_spawn_nowait"
    return {
        "unit": "spawns/s and RSS bytes per idle actor",
        "params": {
            "actors": n,
            "asyncio_tasks": n_tasks,
            "repetitions": reps,
            "note": "one fresh subprocess per variant and repetition; gc enabled while spawning",
        },
        "results": {"spawn_per_s": rate, "rss_bytes_per_actor": mem},
        "ratios": {
            f"spawn {head}/slots_object": ratio(rate[head], rate["slots_object"]),
            f"spawn {head}/asyncio_task": ratio(rate[head], rate["asyncio_task"]),
            f"rss {head}/slots_object": ratio(mem[head], mem["slots_object"]),
            f"rss {head}/asyncio_task": ratio(mem[head], mem["asyncio_task"]),
        },
        "samples": {
            k: [{"per_s": round(x["per_s"], 1), "bytes_each": round(x["bytes_each"], 1)} for x in v]
            for k, v in raw.items()
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one spawn/RSS measurement (internal)")
    parser.add_argument("--child", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    child_main(args.child, args.count)
