"""Process groups, and the registry after a heal: ``python -m bench --only pg`` (or
``python -m bench.pg``).

- **local join+leave**: one node in this process with 100,000 groups of one member each; a join
  and a leave of another group, back to back, timed over many rounds (µs per join+leave);
  against a bare ``dict`` insert+delete measured beside it. Anchor: Wippy's Go pg, 94 µs.
- **remote visible**: one node process on loopback (``ember node start``) and this process as a
  second node; a :class:`bench._registry_agents.Watcher` there monitors a group, this node
  joins it: the time until the join event arrives there (wall clock of the host). p50/p99.
- **thundering herd** (OTP's pg_SUITE case): two nodes in this process over loopback TCP; the
  first has 10,000 groups; the second queues 2,000 syncs to it, then a join on the first is
  timed from the moment the syncs were queued, and so is the handling of every sync. OTP's
  own bound is 5 s for the join.
- **heal** (simulated, virtual seconds): 5 nodes, cut 2 | 3; on both sides 50 eventual names
  are registered by different processes and 50 groups joined; after the heal, the time until
  every eventual name has one owner, the same on every node, and every pg view is the same.
  LAN mesh profile (its failure detection decides when the sides see each other again).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

from bench._registry_agents import Sleeper, percentile, processes
from bench._util import cli, goal, ratio, run_uvloop

WATCHER = "bench._registry_agents:Watcher"
perf = time.perf_counter


def _log(*args: Any) -> None:
    print("[pg]", *args, file=sys.stderr, flush=True)


async def local_join_leave(groups: int, rounds: int) -> dict[str, Any]:
    import ember

    async with ember.Node("bench-pg") as node:
        pid = await node.spawn(Sleeper)
        pg = node.pg
        for i in range(groups):
            pg.join(("g", i), pid)
        samples = []
        bare: list[float] = []
        table: dict[Any, Any] = {("g", i): [pid] for i in range(groups)}
        for _ in range(5):
            t = perf()
            for i in range(rounds):
                pg.join(("extra", i), pid)
                pg.leave(("extra", i), pid)
            samples.append((perf() - t) / rounds)
            t = perf()
            for i in range(rounds):
                table[("extra", i)] = [pid]
                del table[("extra", i)]
            bare.append((perf() - t) / rounds)
        assert len(pg.which_groups()) == groups
    us = statistics.median(samples) * 1e6
    return {
        "join_leave_us": round(us, 2),
        "dict_insert_delete_us": round(statistics.median(bare) * 1e6, 3),
        "groups": groups,
        "rounds": rounds,
    }


async def remote_visible(trials: int) -> dict[str, Any]:
    from ember.registry import RegistryConfig

    procs, client = await processes(
        1, "bench-pg", registry_args=("--registry-client",), registry=RegistryConfig(member=False)
    )
    try:
        watcher = await client.spawn(WATCHER, on="n1")
        pid = await client.spawn(Sleeper)
        samples = []
        for i in range(trials):
            group = ("remote", i)
            await client.call(watcher, ("pg_arm", group))
            t0 = time.time()
            client.pg.join(group, pid)
            seen = await client.call(watcher, ("pg_seen", group), timeout=30)
            samples.append(seen - t0)
        return {
            "p50_ms": round(percentile(samples, 0.5) * 1e3, 3),
            "p99_ms": round(percentile(samples, 0.99) * 1e3, 3),
            "trials": trials,
        }
    finally:
        await client.stop()
        await procs.stop()


async def thundering_herd(groups: int, syncs: int) -> dict[str, Any]:
    import ember
    from ember.transport import Channel

    a = ember.Node("herd-a", listen="127.0.0.1:0", cookie="bench")
    await a.start()
    b = ember.Node("herd-b", listen="127.0.0.1:0", cookie="bench", connect=[f"herd-a@{a.address}"])
    await b.start()
    try:
        me = await a.spawn(Sleeper)
        for i in range(groups):
            a.pg.join(("group", i), me)
        async with asyncio.timeout(30):
            while not any(p[0] == "herd-b" for p in a.pg._scopes["default"].core.remote):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        peer_pid = await b.spawn(Sleeper)
        scope = b.pg._scopes["default"]
        frame = b.pg._codec.encode(
            ("default", scope.instance, 0, ("sync", [(("group", 1), [peer_pid, peer_pid])]))
        )
        assert b.transport is not None
        received_before = a.pg.stats.frames_received
        t0 = perf()
        for _ in range(syncs):
            b.transport.send("herd-a", Channel.PG, frame)
        await asyncio.sleep(0)
        a.pg.join("thundering_herd", me)
        joined = perf() - t0
        async with asyncio.timeout(60):
            while a.pg.stats.frames_received - received_before < syncs:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        handled = perf() - t0
        assert a.pg.get_members(("group", 1)) == [peer_pid, peer_pid, me]
        return {
            "join_s": round(joined, 4),
            "all_syncs_handled_s": round(handled, 4),
            "groups": groups,
            "syncs": syncs,
        }
    finally:
        await b.stop()
        await a.stop()


def heal(seed: int) -> dict[str, Any]:
    import ember
    from ember.registry import RegistryConfig
    from ember.testing import SimCluster, run

    async def main() -> float:
        options = {"registry": RegistryConfig.lan(member=False)}
        async with SimCluster(
            [f"h{i}" for i in range(5)], seed=seed, mesh="lan", node_options=options
        ) as sim:
            left, right = {"h0", "h1"}, {"h2", "h3", "h4"}
            sim.partition(left, right)
            await sim.wait_for(
                lambda: not (sim.alive_view("h0") & right) and not (sim.alive_view("h2") & left),
                timeout=120,
                what="both sides see the split",
            )
            sleeper = Sleeper
            for side in (sorted(left), sorted(right)):
                node = sim.node(side[0])
                for i in range(50):
                    pid = await node.spawn(sleeper)
                    await node.names.register(("heal", i), pid, tier="eventual")
                    node.pg.join(("hg", i), pid)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            sim.heal()

            def converged() -> bool:
                nodes = list(sim.nodes.values())
                for i in range(50):
                    owners = {n.names.whereis(("heal", i), "eventual") for n in nodes}
                    claims = [
                        len(n.names.tiers["eventual"].core.claims(("heal", i)))  # type: ignore[attr-defined]
                        for n in nodes
                    ]
                    if len(owners) != 1 or None in owners or claims != [1] * len(nodes):
                        return False
                views = [
                    {g: sorted(n.pg.get_members(g)) for g in n.pg.which_groups()} for n in nodes
                ]
                return all(v == views[0] for v in views) and len(views[0]) == 50

            await sim.wait_for(converged, timeout=120, what="healed", interval=0.005)
            return loop.time() - t0

    _ = ember  # the sim runs whole nodes
    return {"converged_s": round(run(main()), 3), "seed": seed, "time": "virtual seconds"}


async def _main(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["local"] = await local_join_leave(100_000, 5_000 if quick else 20_000)
    _log(results["local"])
    results["remote_visible"] = await remote_visible(20 if quick else 200)
    _log(results["remote_visible"])
    results["thundering_herd"] = await thundering_herd(10_000, 2_000)
    _log(results["thundering_herd"])
    return results


def run(quick: bool, reps: int) -> dict[str, Any]:
    results: dict[str, Any] = run_uvloop(_main(quick))
    heals = [heal(seed) for seed in ((91,) if quick else (91, 92, 93))]
    results["heal"] = {
        "converged_s": max(h["converged_s"] for h in heals),
        "samples_s": [h["converged_s"] for h in heals],
        "time": "virtual seconds (simulated cluster, LAN profile)",
    }
    _log(results["heal"])
    local = results["local"]
    return {
        "unit": "µs, ms, s (wall clock of this host, but heal: simulated seconds)",
        "params": {"load": os.getloadavg()},
        "results": results,
        "ratios": {
            "join_leave/dict_insert_delete": ratio(
                local["join_leave_us"], local["dict_insert_delete_us"]
            ),
            "join_leave/wippy_94us": ratio(local["join_leave_us"], 94.0),
            "herd_join/otp_5s": ratio(results["thundering_herd"]["join_s"], 5.0),
        },
        "goals": goals({"pg": {"results": results}}),
    }


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The pg (and after-heal) goals of issue 11 (``pass`` is None if not run)."""
    sec = benchmarks.get("pg")
    r: dict[str, Any] = {} if sec is None else sec["results"]
    return {
        "pg_local_join_leave": goal(
            "pg: local join+leave < 20 µs with 100,000 groups",
            r.get("local", {}).get("join_leave_us"),
            20,
            False,
        ),
        "pg_remote_visible_p50": goal(
            "pg: a remote member visible p50 < 10 ms on loopback",
            r.get("remote_visible", {}).get("p50_ms"),
            10,
            False,
        ),
        "pg_thundering_herd": goal(
            "pg: 10,000 groups, 2,000 syncs: a join within 1 s",
            r.get("thundering_herd", {}).get("join_s"),
            1,
            False,
        ),
        "heal_converged": goal(
            "after a heal: one owner per eventual name and equal pg views within 2 s",
            r.get("heal", {}).get("converged_s"),
            2,
            False,
        ),
    }


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    cli(run, __doc__)
