"""Helpers shared by the benchmarks: uvloop runner, interleaved repetitions, medians, ratios."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

perf_counter = time.perf_counter


def run_uvloop(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on a fresh uvloop event loop (the loop Ember itself uses in ``ember.run``)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def assert_uvloop() -> None:
    """Fail loudly if a measurement is not running on uvloop."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, uvloop.Loop):
        raise RuntimeError(f"benchmark must run on uvloop, got {type(loop).__name__}")


def interleaved(variants: dict[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run every variant ``reps`` times, round-robin, so slow drifts of a shared machine hit all
    variants alike. Each variant returns the elapsed seconds of its timed section."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            gc.collect()
            samples[name].append(fn())
    return samples


def rates(samples: dict[str, list[float]], count: int) -> dict[str, float]:
    """Operations per second from the median elapsed time of each variant."""
    return {name: count / statistics.median(times) for name, times in samples.items()}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def goal(text: str, value: float | None, target: float, at_least: bool) -> dict[str, Any]:
    """One goal: its text, the measured value, the target and pass (None: not measured)."""
    ok: bool | None = None
    if value is not None:
        ok = value >= target if at_least else value <= target
    return {"goal": text, "value": value, "target": target, "pass": ok}


def rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in values.items()}


def section(
    *,
    unit: str,
    params: dict[str, Any],
    samples: dict[str, list[float]],
    results: dict[str, float],
    ratios: dict[str, float | None],
    notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON shape every benchmark returns."""
    out: dict[str, Any] = {
        "unit": unit,
        "params": params,
        "results": rounded(results),
        "ratios": ratios,
        "samples_s": {k: [round(x, 5) for x in v] for k, v in samples.items()},
    }
    if notes:
        out["notes"] = notes
    return out


def cli(run: Callable[[bool, int], dict[str, Any]], doc: str | None) -> None:
    """``python -m bench.<name> [--quick] [--reps N]``: run one benchmark, print its JSON."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.reps), indent=2))
