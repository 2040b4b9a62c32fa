"""Contracts: ``python -m bench --only contracts`` (or ``python -m bench.contracts``).

Local, on one node (uvloop):

- ``wide``: one run of a graph of 1,000 independent pure steps (plain functions); ``chain``:
  one run of 1,000 steps each depending on the previous one. Steps/s and the overhead per step
  against calling the same 1,000 functions directly in the same process (the baseline), in
  wall-clock time and in this process's CPU time (``time.process_time``: what a step costs,
  whatever else the shared machine runs). Each repetition has fresh inputs, so the pure cache
  misses.
- ``responsive``: 5,000 runs at once (each two async steps sleeping 3 s, then a plain one: all
  are in flight together); a probe task sleeping 1 ms in a loop records how late it wakes
  (event-loop lag, p50, p99 and max) while they start and run, against the same probe on an
  idle loop. The collector thresholds are those ``ember.run`` sets.

Across nodes and durable runs: see the functions below and ``docs/contracts.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import ember
from ember.actors._api import GC_THRESHOLD
from ember.contracts import Contract, ContractsConfig, Input, StepContext, compute

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
        await asyncio.sleep(3.0)
        return n

    @compute
    async def b(n: int) -> int:
        await asyncio.sleep(3.0)
        return n

    @compute
    def total(a: int, b: int) -> int:
        return a + b

    outputs = ("total",)


def as_node(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on uvloop with the collector thresholds ``ember.run`` sets (what a node
    process, ``ember node start``, runs with)."""
    saved = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        return run_uvloop(coro)
    finally:
        gc.set_threshold(*saved)


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
        peak = node.contracts.statistics().coordinators
        results = await asyncio.gather(*(h.result() for h in handles))
        elapsed = perf() - t0
        stop.set()
        await probe
        assert [r["total"] for r in results] == [2 * i for i in range(runs)]
    return {
        "runs": runs,
        "in_flight_max": peak,
        "start_all_s": started,
        "all_done_s": elapsed,
        "runs_per_s": runs / elapsed,
        "lag_p50_ms": _percentile(lags, 0.5) * 1000,
        "lag_p99_ms": _percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000,
        "idle_lag_p99_ms": _percentile(idle, 0.99) * 1000,
    }


# --- across nodes ----------------------------------------------------------------------------

COOKIE = "bench-contracts"


FAR_STEPS = 1000
"""The steps of ``Far`` as node processes build it (see ``__getattr__``)."""


def far_contract(n: int) -> type[Contract]:
    """A chain of ``n`` steps that only other nodes may run (the bench node offers no
    capability); it is importable as ``bench.contracts:Far`` once made (a process that
    imports this module builds it with :data:`FAR_STEPS` steps when asked for it)."""
    body: dict[str, Any] = {"x": Input(int), "__module__": __name__, "__qualname__": "Far"}
    prev = "x"
    for i in range(n):
        body[f"s{i}"] = compute(depends_on=(prev,), capabilities="far")(_link(i))
        prev = f"s{i}"
    body["outputs"] = (prev,)
    cls = type("Far", (Contract,), body)
    globals()["Far"] = cls
    return cls


def __getattr__(name: str) -> Any:
    if name == "Far":  # a node process resolving the reference bench.contracts:Far
        return far_contract(FAR_STEPS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Link(ember.Actor):
    """The baseline of a remote step: what a step of ``Far`` runs (the same function), called
    with the same argument (the previous step's name and value)."""

    def __init__(self) -> None:
        self.fn = _link(0)

    def receive(self, msg: dict[str, int]) -> int:
        return self.fn(**msg)


async def _steps_against_calls(
    far: type[Contract], here: ember.Node, link: ember.Pid, steps: int, reps: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """``reps`` runs of ``far`` (a chain of ``steps``) coordinated by ``here``, interleaved with
    as many sequential calls to ``link`` (a :class:`Link`) with the arguments the steps get:
    wall and CPU seconds per step (a whole run, its start and end included, over its steps),
    then per call."""
    keys = ["x", *(f"s{i}" for i in range(steps - 1))]  # what each step's argument is named
    await far.run({"x": 0}, node=here)  # warm up both paths (connections, step hosts, imports)
    for key in keys:
        await here.call(link, {key: 0})
    perf, cpu = time.perf_counter, time.process_time
    ours: list[float] = []
    base: list[float] = []
    ours_cpu: list[float] = []
    base_cpu: list[float] = []
    for rep in range(reps):
        gc.collect()
        t0, c0 = perf(), cpu()
        out = await far.run({"x": rep}, node=here)
        ours.append((perf() - t0) / steps)
        ours_cpu.append((cpu() - c0) / steps)
        assert out == {f"s{steps - 1}": rep + steps}
        gc.collect()
        t0, c0 = perf(), cpu()
        value = rep
        for key in keys:
            value = await here.call(link, {key: value})
        base.append((perf() - t0) / steps)
        assert value == rep + steps
        base_cpu.append((cpu() - c0) / steps)
    return ours, ours_cpu, base, base_cpu


async def _remote(steps: int, reps: int) -> dict[str, Any]:
    """A run of ``steps`` chained steps placed on the two other nodes (in-process nodes on
    loopback TCP), against as many sequential calls to an actor on another node doing the
    same."""
    far = far_contract(steps)
    here = ember.Node(
        "a", listen="127.0.0.1:0", cookie=COOKIE, contracts=ContractsConfig(capabilities=())
    )
    await here.start()
    others = []
    try:
        for name in ("b", "c"):
            node = ember.Node(name, listen="127.0.0.1:0", cookie=COOKIE)
            await node.start()
            others.append(node)
            assert node.address is not None
            await here.connect_node(f"{name}@{node.address}")
        link = await others[0].spawn(Link)
        ours, ours_cpu, base, base_cpu = await _steps_against_calls(far, here, link, steps, reps)
        nodes = {
            n.name: n.contracts.statistics().steps_remote if n.contracts else 0
            for n in [here, *others]
        }
    finally:
        for node in others:
            await node.stop()
        await here.stop()
    return {
        **_steps_figures("remote", ours, ours_cpu, base, base_cpu),
        "remote_step_cpu_per_call": statistics.median(
            o / b for o, b in zip(ours_cpu, base_cpu, strict=True)
        ),
        "placed": nodes,
    }


def _steps_figures(
    name: str,
    ours: list[float],
    ours_cpu: list[float],
    base: list[float],
    base_cpu: list[float],
) -> dict[str, Any]:
    """Medians of seconds per step and per call (wall and CPU, in µs), and the median of each
    repetition's step over its call (the two ran back to back, under the same load)."""
    return {
        f"{name}_step_us": statistics.median(ours) * 1e6,
        f"{name}_call_us": statistics.median(base) * 1e6,
        f"{name}_step_per_call": statistics.median(o / b for o, b in zip(ours, base, strict=True)),
        f"{name}_step_cpu_us": statistics.median(ours_cpu) * 1e6,
        f"{name}_call_cpu_us": statistics.median(base_cpu) * 1e6,
        "samples": {f"{name}_step": ours, f"{name}_call": base},
    }


async def _remote_procs(reps: int) -> dict[str, Any]:
    """The same chain across node processes, as a deployment runs it: this process's node
    (offering no capability) coordinates ``Far`` (:data:`FAR_STEPS` steps), which only two
    ``ember node start`` processes (``--meta capabilities=far``) may run, against as many
    sequential calls to a :class:`Link` spawned on one of them. Wall-clock per step and per
    call, and this process's CPU for each (the coordinator's side of a step, the caller's of
    a call)."""
    import tempfile

    from ember.testing._localcluster import LocalCluster

    steps = FAR_STEPS
    far = far_contract(steps)
    args = ("--contracts-load", "bench.contracts", "--meta", "capabilities=far")
    with tempfile.TemporaryDirectory(prefix="ember-bench-far-") as work:
        procs = LocalCluster(2, workdir=Path(work), discovery="seeds", extra_args=args)
        await procs.start()
        here = await procs.client(
            "bench-far", 60, contracts=ContractsConfig(capabilities=()), meta={"capabilities": []}
        )
        try:
            first = next(iter(procs.nodes))
            link = await here.spawn(Link, on=first)
            ours, ours_cpu, base, base_cpu = await _steps_against_calls(
                far, here, link, steps, reps
            )
        finally:
            await here.stop()
            await procs.stop()
    figures = _steps_figures("procs", ours, ours_cpu, base, base_cpu)
    figures["procs_coordinator_cpu_us"] = (
        figures["procs_step_cpu_us"] - figures["procs_call_cpu_us"]
    )
    return figures


# --- durable runs: three voters with fsync ------------------------------------------------


class Durable3(Contract):
    """A 3-step durable run (plain steps: what is measured is the durability)."""

    x = Input(int)

    @compute
    def one(x: int) -> int:
        return x + 1

    @compute
    def two(one: int) -> int:
        return one + 1

    @compute
    def three(two: int) -> int:
        return two + 1

    outputs = ("three",)


class Durable3Idempotent(Contract):
    """The same 3 steps, declared idempotent: they need not wait for their own intent to be
    written, so the run costs two writes (its start, then its three results and its end)."""

    x = Input(int)

    @compute(idempotent=True)
    def one(x: int) -> int:
        return x + 1

    @compute(idempotent=True)
    def two(one: int) -> int:
        return one + 1

    @compute(idempotent=True)
    def three(two: int) -> int:
        return two + 1

    outputs = ("three",)


def durable_chain(n: int) -> type[Contract]:
    body: dict[str, Any] = {"x": Input(int)}
    prev = "x"
    for i in range(n):
        body[f"s{i}"] = compute(depends_on=(prev,))(_link(i))
        prev = f"s{i}"
    body["outputs"] = (prev,)
    return type("DurableChain", (Contract,), body)


async def _durable(runs: int, concurrency: int, chain: int, latency_runs: int) -> dict[str, Any]:
    """Durable runs on a store of three voters in this process (three members of the store
    group on one node, each with its own SQLite log, fsync on every save): end-to-end latency
    of a 3-step run, interleaved with plain Raft writes to a group of three voters on the same
    node (the baseline: what one write costs now), the store writes each run took and the rest
    of its time once its writes are paid (``store_write_seconds``: the contracts' own), steps/s
    with ``concurrency`` runs of a ``chain``-step contract at once, with the share of that time
    the loop spent in the members' saves (write and fsync)."""
    import tempfile

    from ember.consensus import Cluster

    long = durable_chain(chain)
    with tempfile.TemporaryDirectory(prefix="ember-bench-contracts-") as data:
        store = ContractsConfig(store=("d#1", "d#2", "d#3"))
        async with ember.Node("d", data_dir=data, contracts=store) as node:
            contracts = node.contracts
            assert contracts is not None and contracts.cluster is not None
            await contracts.cluster.wait_for_leader(timeout=30)
            await (await Durable3.start({"x": 0}, node=node)).result(timeout=30)  # warm up
            kv = await Cluster.start(nodes=3, name="kv", node=node, durable=True)
            await kv.wait_for_leader(timeout=30)
            await kv.write({"key": "k", "value": -1})
            latencies: dict[type[Contract], list[float]] = {Durable3: [], Durable3Idempotent: []}
            writes: dict[type[Contract], list[int]] = {Durable3: [], Durable3Idempotent: []}
            own: dict[type[Contract], list[float]] = {Durable3: [], Durable3Idempotent: []}
            raw: list[float] = []
            for i in range(latency_runs):
                for contract, samples in latencies.items():
                    before = contracts.stats.store_writes
                    waited = contracts.stats.store_write_seconds
                    t0 = perf()
                    handle = await contract.start({"x": i}, node=node)
                    out = await handle.result(timeout=30)
                    samples.append(perf() - t0)
                    writes[contract].append(contracts.stats.store_writes - before)
                    own[contract].append(
                        samples[-1] - (contracts.stats.store_write_seconds - waited)
                    )
                    assert out == {"three": i + 3}
                t0 = perf()
                await kv.write({"key": "k", "value": i})
                raw.append(perf() - t0)
            await kv.stop()
            members = [m for (g, _), m in node.raft.members.items() if g == "ember.contracts"]
            gc.collect()
            done = 0
            saves0, writes0 = sum(m.save_seconds.sum for m in members), contracts.stats.store_writes
            t0 = perf()

            async def worker(k: int) -> None:
                nonlocal done
                for j in range(runs // concurrency):
                    handle = await long.start({"x": k * 1000 + j}, node=node)
                    await handle.result(timeout=60)
                    done += 1

            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            elapsed = perf() - t0
            saving = sum(m.save_seconds.sum for m in members) - saves0
            stats = contracts.statistics()
    p50 = _percentile(latencies[Durable3], 0.5)
    p50_idem = _percentile(latencies[Durable3Idempotent], 0.5)
    raft = _percentile(raw, 0.5)
    n_plain = statistics.median(writes[Durable3])
    n_idem = statistics.median(writes[Durable3Idempotent])
    return {
        "durable_3step_p50_ms": p50 * 1000,
        "durable_3step_p99_ms": _percentile(latencies[Durable3], 0.99) * 1000,
        "durable_3step_writes": n_plain,
        "durable_3step_own_ms": statistics.median(own[Durable3]) * 1000,
        "durable_3step_idempotent_p50_ms": p50_idem * 1000,
        "durable_3step_idempotent_writes": n_idem,
        "durable_3step_idempotent_own_ms": statistics.median(own[Durable3Idempotent]) * 1000,
        "raft_write_p50_ms": raft * 1000,
        "raft_write_p99_ms": _percentile(raw, 0.99) * 1000,
        "durable_steps_per_s": done * chain / elapsed,
        "durable_runs_per_s": done / elapsed,
        "durable_store_writes": stats.store_writes - writes0,
        "durable_commands_per_write": (done * (chain + 1)) / max(1, stats.store_writes - writes0),
        "durable_save_share": saving / elapsed,
        "durable_store_retries": stats.store_retries,
    }


# --- resuming after the owner's process is killed ------------------------------------------


class Resumable(Contract):
    """One long idempotent step where it started (the owner), then nothing."""

    job = Input(str)

    @compute(capabilities="work", idempotent=True)
    async def slow(job: str, ctx: StepContext) -> list[Any]:
        await asyncio.sleep(30.0)
        return [job, ctx.node]

    outputs = ("slow",)


async def _resume(trials: int) -> dict[str, Any]:
    """Three node processes (``ember node start``, mesh profile ``local``, durable store on
    all three); each trial starts a run owned by a node whose step runs there, SIGKILLs that
    node's process, and measures until the step runs again on another node, against how long
    the test client's mesh took to declare the node failed (the failure-detection time, in the
    same trial). The killed node restarts between trials."""
    import tempfile

    from ember.contracts import StoreUnavailable
    from ember.testing._localcluster import LocalCluster

    stores = ("n1", "n2", "n3")
    args = (
        "--contracts-store",
        ",".join(stores),
        "--contracts-load",
        "bench.contracts",
        "--meta",
        "capabilities=work",
    )
    resumed: list[float] = []
    detected: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ember-bench-resume-") as work:
        procs = LocalCluster(3, workdir=Path(work), discovery="seeds", extra_args=args)
        await procs.start()
        client = await procs.client(
            "bench-client", 60, contracts=ContractsConfig(store=stores), meta={"capabilities": []}
        )
        assert client.contracts is not None
        try:
            for trial in range(trials):
                owner = stores[trial % 3]
                run_id = f"resume-{trial}"
                await client.contracts.start_on(owner, Resumable, {"job": run_id}, run_id=run_id)

                async def step_node(run: str = run_id) -> tuple[str | None, int]:
                    try:
                        status = await client.contracts.status(run)
                    except StoreUnavailable:
                        return None, 0
                    step = status.steps.get("slow")
                    if step is None or step.status != "running":
                        return None, 0
                    return step.node, step.attempts

                async with asyncio.timeout(60):
                    while (await step_node())[0] != owner:  # noqa: ASYNC110 - another process
                        await asyncio.sleep(0.02)
                failed: asyncio.Future[float] = asyncio.get_running_loop().create_future()

                def on_event(event: Any, name: str = owner, failed: Any = failed) -> None:
                    if event.member.name == name and event.kind == "failed" and not failed.done():
                        failed.set_result(perf())

                remove = client.on_member_event(on_event)
                t0 = perf()
                procs.kill(owner)
                async with asyncio.timeout(60):
                    while True:
                        node, attempts = await step_node()
                        if node is not None and node != owner and attempts >= 2:
                            break
                        await asyncio.sleep(0.02)
                    resumed.append(perf() - t0)
                    detected.append(await failed - t0)
                remove()
                await client.contracts.cancel(run_id, "trial over")
                await procs.wait(owner)
                others = [p for n, p in procs.nodes.items() if n != owner]
                await procs.start_node(owner, connect=others, listen=procs.nodes[owner].address)
                await procs.wait_converged(timeout=60)
        finally:
            await client.stop()
            await procs.stop()
    from ember.mesh import SwimConfig

    return {
        "resume_median_s": statistics.median(resumed),
        "resume_max_s": max(resumed),
        "detection_median_s": statistics.median(detected),
        "resume_over_detection_s": statistics.median(
            r - d for r, d in zip(resumed, detected, strict=True)
        ),
        "expected_detection_s": SwimConfig.local().expected_detection_time(4),
        "samples": {"resume": resumed, "detection": detected},
    }


def run(quick: bool, reps: int) -> dict[str, Any]:
    n = 200 if quick else 1000
    runs = 300 if quick else 5000
    load: dict[str, float] = {}
    load["local"] = os.getloadavg()[0]
    local = run_uvloop(_local(n, reps))
    _log(f"wide {local['wide_steps_per_s']:.0f} steps/s, chain {local['chain_steps_per_s']:.0f}")
    load["remote"] = os.getloadavg()[0]
    far = as_node(_remote(100 if quick else 1000, max(reps, 5)))  # cheap: more pairs
    _log(
        f"remote step {far['remote_step_us']:.0f} µs vs call {far['remote_call_us']:.0f} µs "
        f"({far['remote_step_per_call']:.2f}x)"
    )
    load["remote_procs"] = os.getloadavg()[0]
    procs = as_node(_remote_procs(max(reps, 5)))
    _log(
        f"across node processes: step {procs['procs_step_us']:.0f} µs vs call "
        f"{procs['procs_call_us']:.0f} µs ({procs['procs_step_per_call']:.2f}x); coordinator "
        f"CPU {procs['procs_step_cpu_us']:.0f} µs per step vs caller "
        f"{procs['procs_call_cpu_us']:.0f} µs per call"
    )
    load["durable"] = os.getloadavg()[0]
    durable = as_node(
        _durable(128 if quick else 1280, 64, 5 if quick else 10, 20 if quick else 200)
    )
    _log(
        f"durable: 3-step p50 {durable['durable_3step_p50_ms']:.1f} ms "
        f"({durable['durable_3step_writes']:g} writes; one Raft write "
        f"{durable['raft_write_p50_ms']:.1f} ms; the rest "
        f"{durable['durable_3step_own_ms']:.1f} ms), "
        f"{durable['durable_steps_per_s']:.0f} steps/s with 64 runs "
        f"({durable['durable_save_share']:.0%} of it in saves)"
    )
    load["resume"] = os.getloadavg()[0]
    resume = run_uvloop(_resume(2 if quick else 5))
    _log(
        f"resume after kill -9: median {resume['resume_median_s']:.2f} s "
        f"(detection {resume['detection_median_s']:.2f} s)"
    )
    load["responsive"] = os.getloadavg()[0]
    resp = as_node(_responsive(runs))
    _log(f"{runs} runs at once: lag p99 {resp['lag_p99_ms']:.2f} ms, max {resp['lag_max_ms']:.1f}")
    results = {
        "wide_steps_per_s": local["wide_steps_per_s"],
        "chain_steps_per_s": local["chain_steps_per_s"],
        "wide_overhead_us_per_step": local["wide_overhead_us"],
        "chain_overhead_us_per_step": local["chain_overhead_us"],
        "wide_cpu_us_per_step": local["wide_cpu_us"],
        "chain_cpu_us_per_step": local["chain_cpu_us"],
        "direct_calls_per_s": local["direct_steps_per_s"],
        "remote_step_us": far["remote_step_us"],
        "remote_call_us": far["remote_call_us"],
        "remote_step_per_call": far["remote_step_per_call"],
        "remote_step_cpu_us": far["remote_step_cpu_us"],
        "remote_call_cpu_us": far["remote_call_cpu_us"],
        "remote_step_cpu_per_call": far["remote_step_cpu_per_call"],
        **{k: v for k, v in procs.items() if k != "samples"},
        **durable,
        **{k: v for k, v in resume.items() if k != "samples"},
        **{f"responsive_{k}": v for k, v in resp.items()},
    }
    return {
        "unit": "steps/s, µs per step, ms of event-loop lag",
        "params": {"steps": n, "concurrent_runs": runs, "reps": reps, "load_avg_1min": load},
        "results": {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()},
        "ratios": {
            "wide/direct": ratio(local["wide_steps_per_s"], local["direct_steps_per_s"]),
            "chain/direct": ratio(local["chain_steps_per_s"], local["direct_steps_per_s"]),
            "lag_p99/idle": ratio(resp["lag_p99_ms"], resp["idle_lag_p99_ms"]),
            "remote_step/remote_call": round(far["remote_step_per_call"], 3),
            "procs_step/procs_call": round(procs["procs_step_per_call"], 3),
            "durable_3step/raft_write": ratio(
                durable["durable_3step_p50_ms"], durable["raft_write_p50_ms"]
            ),
        },
        "samples_s": {
            k: [round(x, 7) for x in v]
            for k, v in {
                **local["samples"],
                **far["samples"],
                **procs["samples"],
                **resume["samples"],
            }.items()
        },
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
        "contracts_remote_step": goal(
            "a step on another node costs <= 1.2x a remote call",
            r.get("remote_step_per_call"),
            1.2,
            False,
        ),
        "contracts_remote_step_procs": goal(
            "across node processes, a step costs <= 1.2x a remote call (wall clock)",
            r.get("procs_step_per_call"),
            1.2,
            False,
        ),
        "contracts_durable_steps": goal(
            "durable steps on 3 voters with fsync, 64 runs at once >= 2,000 steps/s",
            r.get("durable_steps_per_s"),
            2000,
            True,
        ),
        "contracts_durable_3step_p50": goal(
            "a 3-step durable run end to end: p50 < 10 ms",
            r.get("durable_3step_p50_ms"),
            10,
            False,
        ),
        "contracts_resume": goal(
            "resume after the owner is killed: median < failure detection + 1 s",
            r.get("resume_over_detection_s"),
            1.0,
            False,
        ),
        "contracts_responsive": goal(
            "5,000 runs at once: event-loop lag p99 < 20 ms",
            r.get("responsive_lag_p99_ms"),
            20,
            False,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contracts")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--smoke", action="store_true", help="the in-process parts with tiny counts (a test)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        smoke = {
            **run_uvloop(_local(50, 1)),
            **as_node(_remote(20, 1)),
            **as_node(_durable(16, 4, 3, 3)),
        }
        smoke.pop("samples")
        print(json.dumps(smoke))
        return 0
    section = run(args.quick, args.reps)
    print(json.dumps({NAME: section, "goals": goals({NAME: section})}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
