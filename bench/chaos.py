"""Chaos: the linearizability checker's speed, the sim driver's speed, and seed sweeps.

``python -m bench.chaos [--quick] [--reps N]`` prints one JSON object;
``python -m bench.chaos --sweep 1000 --jobs 2`` runs leader-kill on the sim driver for seeds
1..1000 (``--first`` moves the start), the seeds shared by two processes, and counts verdicts
and violations (the issue's sweep: long, not part of ``python -m bench``).

The sim driver's speed: a 5-node cluster with a KV workload of 2 clients at 5 operations per
second in all (idle between operations), no faults, for 60 simulated seconds: simulated
seconds of the workload phase per wall second (FoundationDB's simulator reaches about 10).

The checker decides a generated, linearizable 100,000-operation KV history over 100 keys with
10% unknown outcomes (``ember.testing._histories.random_kv_history``: 20 clients working 4 keys
at a time, so every key sees concurrent operations; half the unknown ones took effect, some
late). The baseline, run in the same process on a tenth of the history, is the same search
with a model that gives no hints and no preparation (Porcupine's plain WGL with unknown
outcomes deferred): the ratio is what the register model's hints buy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ember.testing import KVModel, Model, Verdict, check_linearizability
from ember.testing._histories import random_kv_history

from ._util import goal, perf_counter


class PlainKV(KVModel):
    """The KV model without hints or preparation."""

    def prepare(self, ops: Any) -> Any:
        return Model.prepare(self, ops)

    def blind(self, input: Any) -> bool:
        return False

    def readonly(self, input: Any, output: Any) -> bool:
        return False


def _timed(history: list[Any], model: KVModel) -> float:
    start = perf_counter()
    result = check_linearizability(history, model)
    elapsed = perf_counter() - start
    if result.verdict is not Verdict.OK:
        raise RuntimeError(f"generated history judged {result.verdict}")
    return elapsed


def run(quick: bool, reps: int) -> dict[str, Any]:
    """For ``python -m bench``: seconds to check the history, and the baseline's ops/s."""
    ops = 10_000 if quick else 100_000
    params: dict[str, Any] = {
        "operations": ops,
        "keys": 100,
        "clients": 20,
        "hot_keys": 4,
        "unknown": 0.1,
    }
    history = random_kv_history(random.Random(1), **params)
    small = random_kv_history(random.Random(1), **{**params, "operations": ops // 10})
    ours = [_timed(history, KVModel()) for _ in range(reps)]
    plain = [_timed(small, PlainKV()) for _ in range(reps)]
    ours_rate = ops / statistics.median(ours)
    plain_rate = len(small) / statistics.median(plain)
    speed = sim_speed(20.0 if quick else 60.0)
    seeds = sweep(range(1, 2 if quick else 4))
    return {
        "unit": "s",
        "params": params,
        "results": {
            "checker_s": round(statistics.median(ours), 3),
            "checker_ops_per_s": round(ours_rate),
            "plain_wgl_ops_per_s": round(plain_rate),
            "sim_per_wall": speed["sim_per_wall"],
            "sim_speed": speed,
            "sweep_s_per_seed": seeds["s_per_seed"],
            "sweep_1000_estimate_min": round(seeds["s_per_seed"] * 1000 / 60, 1),
            "sweep": seeds,
        },
        "ratios": {"checker/plain_wgl": round(ours_rate / plain_rate, 2)},
        "samples_s": {
            "checker": [round(x, 3) for x in ours],
            "plain": [round(x, 3) for x in plain],
        },
    }


SPEED_SCENARIO = """
name = "sim-speed"
settle = 1
[cluster]
nodes = 5
durable = false
[[workload]]
kind = "kv"
clients = 2
rate = 5
duration = {duration}
keys = 4
[checks]
logs = false
"""


def sim_speed(duration: float) -> dict[str, float]:
    """Simulated seconds per wall second of an idle-ish 5-node KV run's workload phase."""
    from ember.chaos._runner import Runner
    from ember.chaos._scenario import parse_scenario
    from ember.chaos._simdriver import SimDriver
    from ember.testing import run as run_virtual

    scenario = parse_scenario(SPEED_SCENARIO.format(duration=duration))
    marks: dict[str, float] = {}

    class Timed(Runner):
        def clock(self) -> float:
            t = super().clock()
            if "wall_start" not in marks and t >= 0:
                marks["wall_start"] = perf_counter()
            if t >= duration and "wall_end" not in marks:
                marks["wall_end"] = perf_counter()
            return t

    with tempfile.TemporaryDirectory() as tmp:

        async def main() -> Any:
            return await Timed(scenario, SimDriver(scenario, 1, Path(tmp)), 1).run()

        result = run_virtual(main)
    wall = marks["wall_end"] - marks["wall_start"]
    return {
        "simulated_s": round(result.phases["workload_end"], 2),
        "wall_s": round(wall, 3),
        "sim_per_wall": round(result.phases["workload_end"] / wall, 2),
        "ok_ops": result.history.counts()["ok"],
    }


def _sweep_one(name: str, seed: int) -> tuple[str, dict[str, int]]:
    """One seed of ``name`` on the sim driver: its verdict and the goal's figures."""
    from ember.chaos._api import find_scenario, run_chaos
    from ember.chaos._scenario import load_scenario

    from .chaos_campaign import _violations

    with tempfile.TemporaryDirectory() as tmp:
        result, summary, _ = run_chaos(load_scenario(find_scenario(name)), seed=seed, out=Path(tmp))
    return result.validity.value, _violations(summary)


def sweep(seeds: range, name: str = "leader-kill", jobs: int = 1) -> dict[str, Any]:
    """Run bundled scenario ``name`` on the sim driver once per seed, in ``jobs`` processes;
    count the verdicts and the goal's figures (linearizability violations, lost acknowledged
    writes, double owners)."""
    verdicts: dict[str, int] = {}
    totals: dict[str, int] = {}
    bad: list[int] = []
    start = perf_counter()

    def record(seed: int, v: str, figures: dict[str, int]) -> None:
        verdicts[v] = verdicts.get(v, 0) + 1
        for key, n in figures.items():
            totals[key] = totals.get(key, 0) + n
        if v != "valid":
            bad.append(seed)
        print(f"sweep: seed {seed} {v} ({perf_counter() - start:.0f} s)", file=sys.stderr)

    if jobs == 1:
        for seed in seeds:
            record(seed, *_sweep_one(name, seed))
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_sweep_one, name, seed): seed for seed in seeds}
            for future in as_completed(futures):
                record(futures[future], *future.result())
    elapsed = perf_counter() - start
    return {
        "scenario": name,
        "seeds": len(seeds),
        "first_seed": seeds[0] if seeds else None,
        "jobs": jobs,
        "verdicts": verdicts,
        "totals": totals,
        "not_valid_seeds": sorted(bad),
        "wall_s": round(elapsed, 1),
        "s_per_seed": round(elapsed / max(len(seeds), 1), 2),
    }


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The goals of the chaos issue, for ``python -m bench`` (``pass`` is None if not run)."""
    sec = benchmarks.get("chaos")
    r: dict[str, Any] = {} if sec is None else sec["results"]
    full = sec is not None and sec["params"]["operations"] == 100_000
    return {
        "chaos_checker_100k": goal(
            "checker decides 100,000 KV ops over 100 keys, 10% unknown, in < 10 s",
            r.get("checker_s") if full else None,
            10,
            False,
        ),
        "chaos_sim_speed": goal(
            "sim driver: 5 nodes, KV workload idle between operations, >= 20 simulated s/s",
            r.get("sim_per_wall") if full else None,
            20,
            True,
        ),
        "chaos_sweep_1000": goal(
            "1,000-seed sweep of leader-kill on the sim driver within 30 min (estimated)",
            r.get("sweep_1000_estimate_min") if full else None,
            30,
            False,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--quick", action="store_true", help="10,000 operations")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sweep", type=int, metavar="N", help="only sweep N seeds of leader-kill")
    parser.add_argument("--first", type=int, default=1, help="the sweep's first seed (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="processes the sweep's seeds share")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.sweep:
        seeds = range(args.first, args.first + args.sweep)
        json.dump({"chaos_sweep": sweep(seeds, jobs=args.jobs)}, sys.stdout, indent=2)
        print()
        return 0
    json.dump({"chaos": run(args.quick, args.reps)}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
