"""What metrics and traces cost on the hot path, each measured in one run.

Metrics: local tell and call with the node's sampled receive timer installed (the default:
``metrics_on``) and removed (``metrics_off``). Everything else the metrics read is collected
at scrape time, so the receive timer (one scheduling slice in 16 timed) and the per-process
message count are all the hot path pays. Goal (issue 14): on within 3% of off.

Traces: sequential remote calls between two nodes of this process over loopback TCP, with no
tracing configured (``trace_none``), tracing configured but the call outside any trace
(``trace_off``: sampling off, the default), and every call inside a trace (``trace_sampled``:
a CLIENT and a SERVER span per call, exported to a processor that drops them). Goal: off
within 3% of none.

Every figure is per second of this process's CPU time (``time.process_time`` around the timed
section), not of wall time: everything runs in this one thread, and on a shared machine whose
load varies by the second, CPU time is disturbed far less by other processes than wall time
(which swung 5x between repetitions at load 8), while a few percent of extra work still shows.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import ember
from ember.observability import TracingConfig

from ._util import goal, interleaved, perf_counter, rates, ratio, run_uvloop, section
from .call import _DEFAULT, AwaitingEcho, Echo, ember_call
from .tell import Consumer, PlainConsumer, ember_tell

NAME = "observability"


def _off(node: ember.Node) -> None:
    node.time_receives(None)


async def remote_calls(n: int, mode: str, clock: Any = perf_counter) -> float:
    """``n`` sequential calls from node a to an echo on node b; ``mode`` as in the module doc."""
    from opentelemetry.sdk.trace import TracerProvider

    tracing = None if mode == "none" else TracingConfig(provider=TracerProvider())
    async with (
        ember.Node("a", listen="127.0.0.1:0", cookie="bench", tracing=tracing) as a,
        ember.Node(
            "b",
            listen="127.0.0.1:0",
            cookie="bench",
            tracing=tracing,
            connect=[f"a@{a.address}"],
        ) as b,
    ):
        pid = await b.spawn(Echo)
        for _ in range(100):  # warm up: the connection, the codec
            await a.call(pid, 0)
        scope: Any = contextlib.nullcontext()
        if mode == "sampled":
            assert tracing is not None and tracing.provider is not None
            scope = tracing.provider.get_tracer("bench").start_as_current_span("bench")
        with scope:
            t0 = clock()
            for i in range(n):
                await a.call(pid, i)
            return float(clock() - t0)


def run(quick: bool, reps: int) -> dict[str, Any]:
    tells = 50_000 if quick else 1_000_000
    calls = 10_000 if quick else 200_000
    burst = 1000
    cpu = time.process_time
    shapes: dict[str, tuple[int, Any]] = {
        "tell_async": (tells, lambda s: ember_tell(tells, burst, Consumer, s, cpu)),
        "tell_plain": (tells, lambda s: ember_tell(tells, burst, PlainConsumer, s, cpu)),
        "call_eager": (calls, lambda s: ember_call(calls, Echo, _DEFAULT, s, cpu)),
        "call_scheduled": (calls, lambda s: ember_call(calls, AwaitingEcho, _DEFAULT, s, cpu)),
    }
    variants = {}
    for shape, (_, make) in shapes.items():
        variants[f"{shape}_metrics_on"] = lambda make=make: run_uvloop(make(None))
        variants[f"{shape}_metrics_off"] = lambda make=make: run_uvloop(make(_off))
    remote = 2_000 if quick else 20_000
    for mode in ("none", "off", "sampled"):
        variants[f"trace_{mode}"] = lambda mode=mode: run_uvloop(remote_calls(remote, mode, cpu))
    samples = interleaved(variants, reps)
    results: dict[str, float] = {}
    for shape, (count, _) in shapes.items():
        for state in ("on", "off"):
            key = f"{shape}_metrics_{state}"
            results.update(rates({key: samples[key]}, count))
    results.update(rates({k: v for k, v in samples.items() if k.startswith("trace_")}, remote))
    ratios = {
        f"{shape}_on/off": ratio(results[f"{shape}_metrics_on"], results[f"{shape}_metrics_off"])
        for shape in shapes
    }
    ratios["trace_off/none"] = ratio(results["trace_off"], results["trace_none"])
    ratios["trace_sampled/none"] = ratio(results["trace_sampled"], results["trace_none"])
    out = section(
        unit="msg per CPU second (tell), round trips per CPU second (call, trace_*)",
        params={
            "messages": tells,
            "calls": calls,
            "remote_calls": remote,
            "burst": burst,
            "repetitions": reps,
        },
        samples=samples,
        results=results,
        ratios=ratios,
    )
    out["goals"] = {
        key: goal(f"{key}: metrics on >= 0.97x off", ratios[key], 0.97, True)
        for key in ratios
        if key.endswith("_on/off")
    }
    out["goals"]["trace_off/none"] = goal(
        "remote calls with tracing configured, outside a trace >= 0.97x no tracing",
        ratios["trace_off/none"],
        0.97,
        True,
    )
    return out
