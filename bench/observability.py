"""What metrics cost on the hot path: local tell and call with the node's sampled receive
timer installed (the default: ``metrics_on``) and removed (``metrics_off``), in one run.

Everything else the metrics read is collected at scrape time, so the receive timer (one
scheduling slice in 16 timed) and the per-process message count are all the hot path pays.
Goal (issue 14): on within 3% of off for every variant.
"""

from __future__ import annotations

from typing import Any

import ember

from ._util import goal, interleaved, rates, ratio, run_uvloop, section
from .call import _DEFAULT, AwaitingEcho, Echo, ember_call
from .tell import Consumer, PlainConsumer, ember_tell

NAME = "observability"


def _off(node: ember.Node) -> None:
    node.time_receives(None)


def run(quick: bool, reps: int) -> dict[str, Any]:
    tells = 50_000 if quick else 1_000_000
    calls = 10_000 if quick else 200_000
    burst = 1000
    shapes: dict[str, tuple[int, Any]] = {
        "tell_async": (tells, lambda s: ember_tell(tells, burst, Consumer, s)),
        "tell_plain": (tells, lambda s: ember_tell(tells, burst, PlainConsumer, s)),
        "call_eager": (calls, lambda s: ember_call(calls, Echo, _DEFAULT, s)),
        "call_scheduled": (calls, lambda s: ember_call(calls, AwaitingEcho, _DEFAULT, s)),
    }
    variants = {}
    for shape, (_, make) in shapes.items():
        variants[f"{shape}_metrics_on"] = lambda make=make: run_uvloop(make(None))
        variants[f"{shape}_metrics_off"] = lambda make=make: run_uvloop(make(_off))
    samples = interleaved(variants, reps)
    results: dict[str, float] = {}
    for shape, (count, _) in shapes.items():
        for state in ("on", "off"):
            key = f"{shape}_metrics_{state}"
            results.update(rates({key: samples[key]}, count))
    ratios = {
        f"{shape}_on/off": ratio(results[f"{shape}_metrics_on"], results[f"{shape}_metrics_off"])
        for shape in shapes
    }
    out = section(
        unit="msg/s (tell), round trips/s (call)",
        params={"messages": tells, "calls": calls, "burst": burst, "repetitions": reps},
        samples=samples,
        results=results,
        ratios=ratios,
    )
    out["goals"] = {
        key: goal(f"{key}: metrics on >= 0.97x off", value, 0.97, True)
        for key, value in ratios.items()
    }
    return out
