"""Idle CPU of node processes: a 10-process cluster on this machine, doing nothing but keeping
its connections and membership alive.

For each variant, :class:`LocalCluster` starts ``NODES`` ``ember node start``
processes on loopback and waits until they are ready (and, with membership, until every node
sees every node alive). After ``WARMUP_S`` seconds (start-up work: imports, joins, the first
push-pulls) each process's CPU time (user + system, from psutil) is read, and again ``SAMPLE_S``
seconds later; the figure is CPU seconds per wall second, in percent of one CPU, per process and
summed. Then the cluster is stopped: SIGTERM (then SIGKILL) to the pids it started, nothing else.

The variants, configurable below: ``transport`` (no membership: node *k* connects to the nodes
before it, a full mesh of TCP connections), ``seeds-lan`` (SWIM over UDP, joined through the
first node, LAN profile, the default of ``ember node start``) and ``mdns-local`` (mDNS discovery
and the local profile: what ``ember cluster up`` runs). A variant that the installed
``LocalCluster`` cannot run (it predates membership) or that does not converge is reported with
its error instead of figures.

``python -m bench.mesh_idle [--quick]`` prints the section alone.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from ember.testing._localcluster import LocalCluster

from ._util import ratio, run_uvloop

NAME = "mesh_idle"

# -- configuration --------------------------------------------------------------------------------
NODES = 10
EXTRA_ARGS: tuple[str, ...] = ("--log-level", "warning")
"""Flags passed to every ``ember node start`` (LocalCluster adds name, listen, cookie, cluster,
data dir and the discovery flags of the variant)."""
VARIANTS: dict[str, dict[str, Any]] = {
    "transport": {"discovery": "none"},
    "seeds-lan": {"discovery": "seeds", "mesh_profile": "lan"},
    "mdns-local": {"discovery": "mdns", "mesh_profile": "local"},
}
"""Variant name -> ``LocalCluster`` keyword arguments. ``discovery="none"`` is also what a
``LocalCluster`` without membership options does, so that variant runs on either."""
READY_TIMEOUT_S = 60.0  # start-up of 10 processes on 2 CPUs, and membership convergence
WARMUP_S = 5.0
SAMPLE_S = 20.0
QUICK_WARMUP_S = 2.0
QUICK_SAMPLE_S = 4.0


def _cluster_kwargs(options: dict[str, Any]) -> dict[str, Any] | None:
    """``options`` as LocalCluster keywords, or None if this LocalCluster cannot take them."""
    accepted = inspect.signature(LocalCluster).parameters
    if all(k in accepted for k in options):
        return options
    if options.get("discovery") == "none" and set(options) == {"discovery"}:
        return {}  # a LocalCluster without membership: the transport-only full mesh
    return None


def _log_tail(workdir: Path, lines: int = 2) -> dict[str, list[str]]:
    """The last lines of each node's log that has any (the work directory is removed after)."""
    out: dict[str, list[str]] = {}
    for log in sorted(workdir.glob("*.log")):
        text = log.read_text(errors="replace").strip().splitlines()
        if text:
            out[log.stem] = [line[-300:] for line in text[-lines:]]
    return out


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _run_ns(pid: int) -> int | None:
    """Nanoseconds the process's threads have run (Linux schedstat, summed over its current
    threads), or None where it is missing.

    psutil's CPU times count clock ticks (10 ms): over 20 s that is a 0.05 % step, as large
    as the figure itself for an idle node. The scheduler's own count is exact.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


async def measure(options: dict[str, Any], warmup: float, sample: float) -> dict[str, Any]:
    """Start the cluster, wait, sample each process's CPU over ``sample`` seconds, stop it."""
    kwargs = _cluster_kwargs(options)
    if kwargs is None:
        return {"error": f"LocalCluster does not take {sorted(options)}"}
    workdir = Path(tempfile.mkdtemp(prefix="ember-bench-idle-"))
    cluster = LocalCluster(
        NODES,
        workdir=workdir,
        extra_args=EXTRA_ARGS,
        ready_timeout=READY_TIMEOUT_S,
        **kwargs,
    )
    t0 = time.perf_counter()
    try:
        nodes = await cluster.start()
        up_s = time.perf_counter() - t0
        wait_converged = getattr(cluster, "wait_converged", None)
        if kwargs.get("discovery", "none") != "none" and wait_converged is not None:
            await wait_converged(timeout=READY_TIMEOUT_S)
        converged_s = time.perf_counter() - t0
        procs = {n.name: psutil.Process(n.process.pid) for n in nodes}
        await asyncio.sleep(warmup)  # a measurement window, not synchronisation
        machine0 = psutil.cpu_times()
        cpu0 = {name: _cpu_s(p) for name, p in procs.items()}
        ns0 = {name: _run_ns(p.pid) for name, p in procs.items()}
        w0 = time.perf_counter()
        await asyncio.sleep(sample)
        wall = time.perf_counter() - w0
        cpu1 = {name: _cpu_s(p) for name, p in procs.items()}
        ns1 = {name: _run_ns(p.pid) for name, p in procs.items()}
        machine1 = psutil.cpu_times()
        rss = {name: p.memory_info().rss for name, p in procs.items()}
        alive = all(n.process.returncode is None for n in nodes)
    except Exception as exc:
        raise RuntimeError(f"{exc}; last log lines: {_log_tail(workdir)}") from exc
    finally:
        await cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    ticks = {name: 100.0 * (cpu1[name] - cpu0[name]) / wall for name in procs}
    exact = {
        name: 100.0 * (b - a) / 1e9 / wall
        for name, a, b in ((name, ns0[name], ns1[name]) for name in procs)
        if a is not None and b is not None
    }
    pct = exact if len(exact) == len(ticks) else ticks
    busy = (sum(machine1) - machine1.idle - getattr(machine1, "iowait", 0.0)) - (
        sum(machine0) - machine0.idle - getattr(machine0, "iowait", 0.0)
    )
    others = max(0.0, 100.0 * busy / wall - sum(pct.values()))
    return {
        "cpu_source": "schedstat (threads, ns)" if pct is exact else "psutil cpu_times",
        "per_process_pct": {k: round(v, 3) for k, v in pct.items()},
        "per_process_pct_psutil": {k: round(v, 3) for k, v in ticks.items()},
        "mean_pct": statistics.fmean(pct.values()),
        "max_pct": max(pct.values()),
        "total_pct": sum(pct.values()),
        "rss_mib_mean": statistics.fmean(rss.values()) / 2**20,
        "other_processes_pct": others,
        "ready_s": up_s,
        "converged_s": converged_s,
        "sampled_s": wall,
        "all_alive_at_end": alive,
    }


def run(quick: bool, reps: int) -> dict[str, Any]:
    """For ``python -m bench``: each variant once (``reps`` is not used: the sample is long)."""
    del reps
    warmup, sample = (QUICK_WARMUP_S, QUICK_SAMPLE_S) if quick else (WARMUP_S, SAMPLE_S)
    outs: dict[str, dict[str, Any]] = {}
    for name, options in VARIANTS.items():
        print(f"bench.mesh_idle: {name} ...", file=sys.stderr, flush=True)
        try:
            outs[name] = run_uvloop(measure(options, warmup, sample))
        except Exception as exc:  # a variant that cannot start or converge is reported, not fatal
            outs[name] = {"error": f"{type(exc).__name__}: {exc}"}
    results: dict[str, float] = {}
    for name, out in outs.items():
        if "error" in out:
            continue
        for key in ("mean_pct", "max_pct", "total_pct", "rss_mib_mean", "converged_s"):
            results[f"{name}_{key}"] = round(float(out[key]), 3)
    base = results.get("transport_mean_pct")
    return {
        "unit": "% of one CPU (CPU seconds per wall second x 100); MiB; seconds",
        "params": {
            "nodes": NODES,
            "extra_args": list(EXTRA_ARGS),
            "variants": VARIANTS,
            "warmup_s": warmup,
            "sample_s": sample,
            "cpus": psutil.cpu_count(),
            "cpu_time": "run time of each node process's threads from /proc/PID/task/*/schedstat "
            "(ns); psutil cpu_times (user + system, 10 ms ticks) alongside",
        },
        "results": results,
        "ratios": {
            f"{name}_mean/transport_mean": ratio(results.get(f"{name}_mean_pct"), base)
            for name in VARIANTS
            if name != "transport"
        },
        "variants": outs,
        "goals": {},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mesh_idle", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="short warm-up and sample")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, 1), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
