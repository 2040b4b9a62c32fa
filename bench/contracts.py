"""Contracts: ``python -m bench --only contracts`` (or ``python -m bench.contracts``).

Local, on one node (uvloop):

- ``wide``: one run of a graph of 1,000 independent pure steps (plain functions); ``chain``:
  one run of 1,000 steps each depending on the previous one. Steps/s and the overhead per step
  against calling the same 1,000 functions directly in the same process (the baseline), in
  wall-clock time and in this process's CPU time (``time.process_time``: what a step costs,
  whatever else the shared machine runs). Each repetition has fresh inputs, so the pure cache
  misses.
- ``responsive``: 2,000 runs at once (each two async steps sleeping 10 ms, then a plain one);
  a probe task sleeping 1 ms in a loop records how late it wakes (event-loop lag, p50, p99 and
  max) while they run, against the same probe on an idle loop.

Across nodes and durable runs: see the functions below and ``docs/contracts.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ember
from ember.contracts import Contract, ContractsConfig, Input, compute

from ._util import goal, ratio, run_uvloop

NAME = "contracts"
perf = time.perf_counter


def _log(*args: Any) -> None:
    print("[contracts]", *args, file=sys.stderr, flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- graphs ----------------------------------------------------------------------------------


def _fn(i: int) -> Callable[..., int]:
    def step(x: int) -> int:
        return x + i

    step.__qualname__ = f"step{i}"
    return step


def _link(i: int) -> Callable[..., int]:
    def step(**kw: int) -> int:
        (value,) = kw.values()
        return value + 1

    step.__qualname__ = f"link{i}"
    return step


def wide_contract(n: int) -> tuple[type[Contract], list[Callable[..., int]]]:
    fns = [_fn(i) for i in range(n)]
    body: dict[str, Any] = {"x": Input(int)}
    for i, fn in enumerate(fns):
        body[f"s{i}"] = compute(capabilities="pure")(fn)
    body["outputs"] = (f"s{n - 1}",)
    return type("Wide", (Contract,), body), fns


def chain_contract(n: int) -> tuple[type[Contract], list[Callable[..., int]]]:
    fns = [_link(i) for i in range(n)]
    body: dict[str, Any] = {"x": Input(int)}
    prev = "x"
    for i, fn in enumerate(fns):
        body[f"s{i}"] = compute(depends_on=(prev,), capabilities="pure")(fn)
        prev = f"s{i}"
    body["outputs"] = (prev,)
    return type("Chain", (Contract,), body), fns


# --- local throughput ------------------------------------------------------------------------


async def _local(n: int, reps: int) -> dict[str, Any]:
    wide, wide_fns = wide_contract(n)
    chain, chain_fns = chain_contract(n)
    samples: dict[str, list[float]] = {
        k: [] for k in ("wide", "chain", "direct_wide", "direct_chain", "wide_cpu", "chain_cpu")
    }
    cpu = time.process_time
    async with ember.Node("bench", contracts=ContractsConfig(max_parallel=64)) as node:
        await wide.run({"x": -1})  # warm up (imports, first coordinator)
        await chain.run({"x": -1})
        for rep in range(reps):
            gc.collect()
            t0, c0 = perf(), cpu()
            out = await wide.run({"x": rep}, node=node)
            samples["wide"].append(perf() - t0)
            samples["wide_cpu"].append(cpu() - c0)
            assert out == {f"s{n - 1}": rep + n - 1}
            gc.collect()
            t0, c0 = perf(), cpu()
            out = await chain.run({"x": rep}, node=node)
            samples["chain"].append(perf() - t0)
            samples["chain_cpu"].append(cpu() - c0)
            assert out == {f"s{n - 1}": rep + n}
            t0 = perf()
            for fn in wide_fns:
                fn(x=rep)
            samples["direct_wide"].append(perf() - t0)
            t0 = perf()
            value = rep
            for fn in chain_fns:
                value = fn(prev=value)
            samples["direct_chain"].append(perf() - t0)
        stats = node.contracts.statistics()
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "samples": samples,
        "wide_steps_per_s": n / med["wide"],
        "chain_steps_per_s": n / med["chain"],
        "wide_cpu_us": med["wide_cpu"] / n * 1e6,
        "chain_cpu_us": med["chain_cpu"] / n * 1e6,
        "wide_overhead_us": (med["wide"] - med["direct_wide"]) / n * 1e6,
        "chain_overhead_us": (med["chain"] - med["direct_chain"]) / n * 1e6,
        "direct_steps_per_s": n / med["direct_wide"],
        "inline_steps": stats.steps_inline,
    }


async def _probe(stop: asyncio.Event, lags: list[float]) -> None:
    """How late a 1 ms sleep wakes, again and again (perf_counter: uvloop's clock has 1 ms
    steps)."""
    while not stop.is_set():
        t0 = perf()
        await asyncio.sleep(0.001)
        lags.append(max(0.0, perf() - t0 - 0.001))


class Responsive(Contract):
    n = Input(int)

    @compute
    async def a(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    @compute
    async def b(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    @compute
    def total(a: int, b: int) -> int:
        return a + b

    outputs = ("total",)


async def _responsive(runs: int) -> dict[str, Any]:
    async with ember.Node("bench-r") as node:
        await Responsive.run({"n": 0}, node=node)
        idle: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.ensure_future(_probe(stop, idle))
        await asyncio.sleep(0.3)
        stop.set()
        await probe
        lags: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.ensure_future(_probe(stop, lags))
        t0 = perf()
        handles = [await Responsive.start({"n": i}, node=node) for i in range(runs)]
        started = perf() - t0
        results = await asyncio.gather(*(h.result() for h in handles))
        elapsed = perf() - t0
        stop.set()
        await probe
        assert [r["total"] for r in results] == [2 * i for i in range(runs)]
    return {
        "runs": runs,
        "start_all_s": started,
        "all_done_s": elapsed,
        "runs_per_s": runs / elapsed,
        "lag_p50_ms": _percentile(lags, 0.5) * 1000,
        "lag_p99_ms": _percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000,
        "idle_lag_p99_ms": _percentile(idle, 0.99) * 1000,
    }


def run(quick: bool, reps: int) -> dict[str, Any]:
    n = 200 if quick else 1000
    runs = 200 if quick else 2000
    local = run_uvloop(_local(n, reps))
    _log(f"wide {local['wide_steps_per_s']:.0f} steps/s, chain {local['chain_steps_per_s']:.0f}")
    resp = run_uvloop(_responsive(runs))
    _log(f"{runs} runs at once: lag p99 {resp['lag_p99_ms']:.2f} ms, max {resp['lag_max_ms']:.1f}")
    results = {
        "wide_steps_per_s": local["wide_steps_per_s"],
        "chain_steps_per_s": local["chain_steps_per_s"],
        "wide_overhead_us_per_step": local["wide_overhead_us"],
        "chain_overhead_us_per_step": local["chain_overhead_us"],
        "wide_cpu_us_per_step": local["wide_cpu_us"],
        "chain_cpu_us_per_step": local["chain_cpu_us"],
        "direct_calls_per_s": local["direct_steps_per_s"],
        **{f"responsive_{k}": v for k, v in resp.items()},
    }
    return {
        "unit": "steps/s, µs per step, ms of event-loop lag",
        "params": {"steps": n, "concurrent_runs": runs, "reps": reps},
        "results": {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()},
        "ratios": {
            "wide/direct": ratio(local["wide_steps_per_s"], local["direct_steps_per_s"]),
            "chain/direct": ratio(local["chain_steps_per_s"], local["direct_steps_per_s"]),
            "lag_p99/idle": ratio(resp["lag_p99_ms"], resp["idle_lag_p99_ms"]),
        },
        "samples_s": {k: [round(x, 5) for x in v] for k, v in local["samples"].items()},
    }


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The goals of issue 13 (``pass`` is None when not run)."""
    sec = benchmarks.get(NAME)
    r: dict[str, Any] = {} if sec is None else sec["results"]
    return {
        "contracts_wide": goal(
            "wide graph of 1,000 pure steps >= 50,000 steps/s (wall clock)",
            r.get("wide_steps_per_s"),
            50_000,
            True,
        ),
        "contracts_chain": goal(
            "chain of 1,000 steps >= 50,000 steps/s (wall clock)",
            r.get("chain_steps_per_s"),
            50_000,
            True,
        ),
        "contracts_wide_cpu": goal(
            "wide graph: < 20 µs of CPU per step", r.get("wide_cpu_us_per_step"), 20, False
        ),
        "contracts_chain_cpu": goal(
            "chain: < 20 µs of CPU per step", r.get("chain_cpu_us_per_step"), 20, False
        ),
        "contracts_responsive": goal(
            "2,000 runs at once: event-loop lag p99 < 20 ms",
            r.get("responsive_lag_p99_ms"),
            20,
            False,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contracts")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    section = run(args.quick, args.reps)
    print(json.dumps({NAME: section, "goals": goals({NAME: section})}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
