"""The registry between node processes: ``python -m bench --only names`` (or
``python -m bench.names``).

- **eventual propagation**: 10 node processes on loopback (``ember node start``, seeds, LAN
  mesh profile) and this process as an 11th node. A :class:`bench._registry_agents.Watcher` on
  each of the 10 waits for a name; this node registers it (eventual tier) and the time to the
  last of the 10 seeing it is one sample (wall clock of the host, ``time.time()`` in every
  process). p50/p99 over the samples. Anchors: Horde propagates in 150-350 ms, Phoenix.Tracker
  broadcasts every 1.5 s.
- **eventual bulk**: this node registers 100,000 names (one process each) as fast as it can;
  the time from the first registration until every one of the 10 holds all of them.
- **bytes per name**: a replica (``NameMap``) that merges 100,000 claims made elsewhere, with
  ``tracemalloc``: what its map holds per name (the owner additionally watches its processes).
- **consistent**: 3 node processes found the ``ember.names`` group (``--registry-expect 3``,
  durable: SQLite WAL, fsync per batch); this node (a client, no member) runs 64 concurrent
  registrants, each registering new names for its own process back to back: registrations/s and
  p50/p99 latency; interleaved with the baseline, the Raft benchmark's 64 writers on a KV group
  of the same three nodes (the ratio says what a registration costs over a plain Raft
  write). Beside the rates, the CPU each costs: user + system CPU microseconds per operation
  of the 3 node processes and this one (``/proc``), steadier than a rate on a shared host.
  Registrations go by group commit (a node's requests made while its previous write is in
  flight share the next entry): with all 64 registrants on this node every entry carries about
  64 (``mean_batch``), the best case for batching; so each round also runs the **spread**
  variant, 16 registrants on each of the 3 nodes and this one (a
  :class:`bench._registry_agents.Registrant` on each, started together), where each node
  batches only its own 16 and three of them register on a member (waiting for its own apply).
  ``python -m bench.names_consistent`` runs this section alone. The staleness of the member
  caches: after each of a series of registrations returns,
  how long until each of the 3 nodes' cached ``whereis`` sees it (max over nodes), against the
  stated bound of one heartbeat (50 ms) plus a delivery.
- **cached whereis**: lookups of a consistent name from this node's cache, per second (one loop,
  1,000,000 lookups); against a plain ``dict.get`` loop measured beside it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import time
import tracemalloc
from typing import Any

from bench._registry_agents import Sleeper, percentile, processes
from bench._util import cli, goal, ratio, run_uvloop

WATCHER = "bench._registry_agents:Watcher"
REGISTRANT = "bench._registry_agents:Registrant"
perf = time.perf_counter


def _log(*args: Any) -> None:
    print("[names]", *args, file=sys.stderr, flush=True)


async def _watchers(client: Any, nodes: list[str]) -> list[Any]:
    return [await client.spawn(WATCHER, on=n) for n in nodes]


async def eventual_propagation(client: Any, watchers: list[Any], trials: int) -> dict[str, Any]:
    sleeper = Sleeper
    samples = []
    for i in range(trials):
        name = ("prop", i, secrets.token_hex(4))
        await asyncio.gather(*(client.call(w, ("arm", name, "eventual")) for w in watchers))
        pid = await client.spawn(sleeper)
        t0 = time.time()
        await client.names.register(name, pid, tier="eventual")
        seen = await asyncio.gather(*(client.call(w, ("seen", name), timeout=30) for w in watchers))
        samples.append(max(seen) - t0)
    return {
        "p50_ms": round(percentile(samples, 0.5) * 1e3, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1e3, 2),
        "max_ms": round(max(samples) * 1e3, 2),
        "trials": trials,
    }


async def eventual_bulk(client: Any, watchers: list[Any], count: int) -> dict[str, Any]:
    sleeper = Sleeper
    pids = []
    for i in range(count):  # in slices: a long loop turn would silence this node's heartbeats
        pids.append(client.spawn_nowait(sleeper))
        if i % 1000 == 999:
            await asyncio.sleep(0)
    before = len(client.names.tiers["eventual"].core)
    want = before + count
    await asyncio.gather(*(client.call(w, "node") for w in watchers))  # they answer
    t0 = time.time()
    for i, pid in enumerate(pids):
        await client.names.register(("bulk", i), pid, tier="eventual")
    registered = time.time() - t0
    seen = await asyncio.gather(*(_seen_count(client, w, want) for w in watchers))
    for i, pid in enumerate(pids):
        client.exit(pid, "kill")
        if i % 1000 == 999:
            await asyncio.sleep(0)
    return {
        "converged_s": round(max(seen) - t0, 3),
        "registered_s": round(registered, 3),
        "names": count,
    }


async def _seen_count(client: Any, watcher: Any, want: int) -> float:
    """When ``watcher``'s node first held ``want`` claims; asks again if a call is lost (a
    node too loaded to heartbeat in time is declared down, and comes back)."""
    import ember

    async with asyncio.timeout(120):
        while True:
            try:
                seen: float = await client.call(watcher, ("count", want), timeout=60)
                return seen
            except (ember.NodeDown, ember.CallTimeout):
                await asyncio.sleep(0.2)


def bytes_per_name(count: int) -> dict[str, Any]:
    """A replica's map after merging ``count`` claims made by another node."""
    from ember.registry._crdt import NameMap

    owner = NameMap(("owner", 1))
    ops = []
    for i in range(count):
        ops.extend(owner.add(f"service-{i:06}", 1000 + i))
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    replica = NameMap(("replica", 1))
    replica.merge(ops)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(replica) == count
    return {"bytes_per_name": round(used / count, 1), "names": count, "name": "service-NNNNNN"}


async def consistent_load(
    client: Any, writers: int, duration: float, prefix: str
) -> dict[str, Any]:
    """``writers`` registrants registering back to back for ``duration`` seconds (the Raft
    benchmark's load loop; each writer registers its own process under its own names)."""
    from bench.raft import load

    pids = [await client.spawn(Sleeper) for _ in range(writers)]
    made = [0] * writers

    async def register(key: str, _value: bytes) -> None:
        # A new name every time (the load loop's keys repeat, and registering a name its
        # process holds already is an idempotent write that changes nothing).
        writer = int(key[1 : key.index("-")])
        made[writer] += 1
        name = (prefix, writer, made[writer])
        await client.names.register(name, pids[writer], tier="consistent", timeout=30)

    stats = client.names.statistics()["consistent"]
    r = await load(register, writers, duration)
    after = client.names.statistics()["consistent"]
    # (.get: the bench also measures a build from before group commit, for comparison.)
    entries = after.get("batch_writes", 0) - stats.get("batch_writes", 0)
    return {
        "registrations_per_s": round(r["writes_per_s"], 1),
        "p50_ms": round(r["p50_ms"], 3),
        "p99_ms": round(r["p99_ms"], 3),
        "registrations": int(r["writes"]),
        # Group commit: Raft entries the registrations went in, and items per entry.
        "entries": entries,
        "mean_batch": round(
            (after.get("batched", 0) - stats.get("batched", 0)) / max(entries, 1), 1
        ),
    }


async def spread_load(
    client: Any, agents: list[Any], writers: int, duration: float, prefix: str
) -> dict[str, Any]:
    """``writers`` registrants spread evenly over the nodes of ``agents`` (a
    :class:`bench._registry_agents.Registrant` on each), all starting at once: each node's
    group commit batches only its own registrations."""
    per_node = writers // len(agents)
    start_at = time.time() + 0.5
    answers = await asyncio.gather(
        *(
            client.call(a, ("load", per_node, duration, start_at, prefix), timeout=duration + 60)
            for a in agents
        )
    )
    latencies = [x for lat, _, _ in answers for x in lat]
    elapsed = max(end for _, _, end in answers) - min(start for _, start, _ in answers)
    return {
        "registrations_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
        "registrations": len(latencies),
        "per_node": per_node,
    }


async def staleness(client: Any, watchers: list[Any], trials: int) -> dict[str, Any]:
    sleeper = Sleeper
    pid = await client.spawn(sleeper)
    samples = []
    for i in range(trials):
        name = ("stale", i, secrets.token_hex(4))
        await asyncio.gather(*(client.call(w, ("arm", name, "consistent")) for w in watchers))
        await client.names.register(name, pid, tier="consistent")
        acked = time.time()
        seen = await asyncio.gather(*(client.call(w, ("seen", name), timeout=30) for w in watchers))
        samples.append(max(max(seen) - acked, 0.0))
    return {
        "p50_ms": round(percentile(samples, 0.5) * 1e3, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1e3, 2),
        "max_ms": round(max(samples) * 1e3, 2),
        "stated_bound_ms": 50 + 10,
        "trials": trials,
    }


def cached_whereis(client: Any, name: Any, count: int) -> dict[str, float]:
    whereis = client.names.whereis
    cache = client.names._consistent.cache
    assert whereis(name, "consistent") is not None
    rates: dict[str, list[float]] = {"whereis_consistent": [], "whereis_any": [], "dict_get": []}
    for _ in range(3):
        t = perf()
        for _ in range(count):
            whereis(name, "consistent")
        rates["whereis_consistent"].append(count / (perf() - t))
        t = perf()
        for _ in range(count):
            whereis(name)
        rates["whereis_any"].append(count / (perf() - t))
        get = cache.get
        t = perf()
        for _ in range(count):
            get(name)
        rates["dict_get"].append(count / (perf() - t))
    return {k: round(statistics.median(v)) for k, v in rates.items()}


async def _main(quick: bool) -> dict[str, Any]:
    results = await _eventual(quick)
    results.update(await consistent_section(quick))
    return results


async def _eventual(quick: bool) -> dict[str, Any]:
    from ember.registry import RegistryConfig

    results: dict[str, Any] = {}
    procs, client = await processes(
        10,
        "bench-eventual",
        registry_args=("--registry-client",),
        registry=RegistryConfig(member=False),
    )
    try:
        nodes = [n.name for n in procs.running()]
        watchers = await _watchers(client, nodes)
        _log("eventual propagation ...")
        results["eventual_propagation"] = await eventual_propagation(
            client, watchers, 20 if quick else 100
        )
        _log(results["eventual_propagation"])
        _log("eventual bulk ...")
        results["eventual_bulk"] = await eventual_bulk(
            client, watchers, 10_000 if quick else 100_000
        )
        _log(results["eventual_bulk"])
    finally:
        await client.stop()
        await procs.stop()
    results["bytes"] = bytes_per_name(20_000 if quick else 100_000)
    _log(results["bytes"])
    return results


def _cpu_seconds(pids: list[int]) -> list[float] | None:
    """User + system CPU seconds so far of each process (Linux ``/proc``; None elsewhere)."""
    try:
        out = []
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        return out
    except (OSError, ValueError, IndexError):
        return None


async def _cpu_per_op(
    pids: list[int], run: Any, count_key: str
) -> tuple[dict[str, Any], list[float] | None]:
    """``await run()`` and the CPU microseconds it cost per operation in each of ``pids``."""
    before = _cpu_seconds(pids)
    r: dict[str, Any] = await run()
    after = _cpu_seconds(pids)
    if before is None or after is None or not r[count_key]:
        return r, None
    return r, [round((b - a) / r[count_key] * 1e6, 1) for a, b in zip(before, after, strict=True)]


async def consistent_section(quick: bool) -> dict[str, Any]:
    """The consistent tier's figures (3 voter processes and this node as a client)."""
    from ember.registry import RegistryConfig

    results: dict[str, Any] = {}
    procs, client = await processes(
        3,
        "bench-consistent",
        registry_args=("--registry-expect", "3"),
        registry=RegistryConfig(member=False, expect=3),
    )
    try:
        nodes = [n.name for n in procs.running()]
        async with asyncio.timeout(60):
            while len(client.names.statistics()["consistent"]["group_nodes"]) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        watchers = await _watchers(client, nodes)
        await consistent_load(client, 16, 0.5, "warm")
        # The baseline, interleaved with the registrations: plain writes of the Raft
        # benchmark (64 writers, 100-byte values) to a KV group on the same three nodes.
        from bench.raft import load
        from ember.consensus import Cluster

        kv = await Cluster.start(nodes=nodes, name="bench-kv", node=client)
        await kv.wait_for_leader(timeout=60)

        async def kv_write(key: str, value: bytes) -> None:
            await kv.write({"key": key, "value": value}, timeout=30)

        # CPU per operation, summed over the 3 nodes and this client: what an operation
        # costs, much steadier than a rate on a shared host.
        pids = [n.process.pid for n in procs.running()] + [os.getpid()]
        duration = 1.0 if quick else 3.0
        agents = [await client.spawn(REGISTRANT, on=n) for n in nodes]
        agents.append(await client.spawn(REGISTRANT))
        runs, raft_runs, spread_runs, cpu, raft_cpu = [], [], [], [], []
        for r in range(1 if quick else 3):
            reg, reg_cpu = await _cpu_per_op(
                pids,
                lambda r=r: consistent_load(client, 64, duration, f"load{r}"),
                "registrations",
            )
            kvr, kv_cpu = await _cpu_per_op(pids, lambda: load(kv_write, 64, duration), "writes")
            spread_runs.append(await spread_load(client, agents, 64, duration, f"spread{r}"))
            runs.append(reg)
            raft_runs.append(kvr)
            if reg_cpu is not None and kv_cpu is not None:
                cpu.append(reg_cpu)
                raft_cpu.append(kv_cpu)
        best = sorted(runs, key=lambda r: r["registrations_per_s"])[len(runs) // 2]
        raft = sorted(raft_runs, key=lambda r: r["writes_per_s"])[len(raft_runs) // 2]
        results["consistent_64"] = {
            **best,
            "samples_per_s": [r["registrations_per_s"] for r in runs],
        }
        results["raft_writes_64"] = {
            "writes_per_s": round(raft["writes_per_s"], 1),
            "p50_ms": round(raft["p50_ms"], 3),
            "p99_ms": round(raft["p99_ms"], 3),
            "samples_per_s": [round(r["writes_per_s"], 1) for r in raft_runs],
        }
        spread = sorted(spread_runs, key=lambda r: r["registrations_per_s"])[len(spread_runs) // 2]
        results["consistent_64_spread"] = {
            **spread,
            "samples_per_s": [r["registrations_per_s"] for r in spread_runs],
        }
        if cpu:
            results["cpu_us_per_op"] = {
                "processes": [*nodes, "client"],
                "registration": [round(sum(c), 1) for c in cpu],
                "raft_write": [round(sum(c), 1) for c in raft_cpu],
                "registration_by_process": cpu,
                "raft_write_by_process": raft_cpu,
            }
        _log(results["consistent_64"], results["raft_writes_64"], results.get("cpu_us_per_op"))
        _log(results["consistent_64_spread"])
        results["staleness"] = await staleness(client, watchers, 20 if quick else 100)
        _log(results["staleness"])
        sample = ("load0", 0, 1)
        results["cached_whereis"] = cached_whereis(client, sample, 200_000 if quick else 1_000_000)
        _log(results["cached_whereis"])
    finally:
        await client.stop()
        await procs.stop()
    return results


def consistent_ratios(results: dict[str, Any]) -> dict[str, Any]:
    cw = results["cached_whereis"]
    out: dict[str, Any] = {
        "whereis_consistent/dict_get": ratio(cw["whereis_consistent"], cw["dict_get"]),
        "registrations/raft_writes": ratio(
            results["consistent_64"]["registrations_per_s"],
            results["raft_writes_64"]["writes_per_s"],
        ),
        "spread_registrations/raft_writes": ratio(
            results["consistent_64_spread"]["registrations_per_s"],
            results["raft_writes_64"]["writes_per_s"],
        ),
    }
    cpu = results.get("cpu_us_per_op")
    if cpu is not None:
        out["cpu_per_registration/cpu_per_raft_write"] = ratio(
            statistics.median(cpu["registration"]), statistics.median(cpu["raft_write"])
        )
    return out


def run(quick: bool, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = run_uvloop(_main(quick))
    return {
        "unit": "ms, s, bytes, operations/s (wall clock; this host)",
        "params": {
            "eventual_nodes": 10,
            "consistent_voters": 3,
            "mesh_profile": "lan",
            "registrants": 64,
            "durable": True,
            "load": os.getloadavg(),
        },
        "results": results,
        "ratios": {
            **consistent_ratios(results),
            "eventual_p50/horde_150ms": ratio(results["eventual_propagation"]["p50_ms"], 150.0),
        },
        "goals": goals({"names": {"results": results}}),
    }


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The registry goals of issue 11 (``pass`` is None if not run)."""
    sec = benchmarks.get("names")
    r: dict[str, Any] = {} if sec is None else sec["results"]
    prop = r.get("eventual_propagation", {})
    bulk = r.get("eventual_bulk", {})
    load = r.get("consistent_64", {})
    return {
        "names_eventual_p50": goal(
            "eventual: visible on all 10 nodes p50 < 50 ms", prop.get("p50_ms"), 50, False
        ),
        "names_eventual_p99": goal(
            "eventual: visible on all 10 nodes p99 < 250 ms", prop.get("p99_ms"), 250, False
        ),
        "names_eventual_bulk": goal(
            "eventual: 100,000 names converged on 10 nodes within 10 s",
            bulk.get("converged_s") if bulk.get("names") == 100_000 else None,
            10,
            False,
        ),
        "names_bytes": goal(
            "eventual: at most 300 bytes per name per replica",
            r.get("bytes", {}).get("bytes_per_name"),
            300,
            False,
        ),
        "names_consistent_rate": goal(
            "consistent: >= 5,000 registrations/s, 64 registrants, 3 voters",
            load.get("registrations_per_s"),
            5000,
            True,
        ),
        "names_consistent_p99": goal("consistent: p99 < 50 ms", load.get("p99_ms"), 50, False),
        "names_cached_whereis": goal(
            "consistent: cached whereis >= 1,000,000 lookups/s",
            r.get("cached_whereis", {}).get("whereis_consistent"),
            1_000_000,
            True,
        ),
    }


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    cli(run, __doc__)
