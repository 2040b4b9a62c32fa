"""The chaos campaign: many runs of each bundled scenario on real node processes, with counts.

``python -m bench.chaos_campaign --runs N [--scenarios a,b] [--driver processes] [--out DIR]``
runs each scenario ``N`` times (seeds ``seed-base + 1 .. seed-base + N``: the workload's and the
nemesis's choices differ from run to run), each as its own ``python -m ember chaos run``
process in its own session, bounded by ``--run-timeout`` (past it the session's processes, the
runner and its node processes, are killed by their process group and the run counts as
``timeout``; the run's log, ``s<seed>.out``, then ends with every thread's stack). It prints
one JSON object: per scenario the verdict counts, per check the invalid and unknown counts,
and the three figures of the issue's goal over every run — 0
linearizability violations, 0 lost acknowledged writes, 0 double owners —, with every run that
was not valid listed by seed and run directory (kept; a valid run's directory is removed unless
``--keep``). ``python -m bench --only chaos_campaign`` runs it with ``--reps`` runs of each
scenario (``--quick``: one run of leader-kill).

The scenarios by default are the bundled ones the driver can run (their faults and workloads
are the driver's); bounded in count and time by construction.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DOUBLE_OWNER_CHECKS = ("unique_consistent_names", "unique_eventual_names")
RUN_TIMEOUT = 900.0  # seconds one run may take on a loaded machine before it is stopped


def runnable(driver: str) -> list[str]:
    """The bundled scenarios ``driver`` can run, by name."""
    from ember.chaos._api import bundled_scenarios
    from ember.chaos._runner import WORKLOADS_BY_KIND

    faults = _driver_faults(driver)
    return [
        s.name
        for s in bundled_scenarios()
        if set(s.faults()) <= faults and all(w.kind in WORKLOADS_BY_KIND for w in s.workloads)
    ]


def _driver_faults(driver: str) -> frozenset[str]:
    if driver == "sim":
        from ember.chaos._simdriver import SimDriver

        return SimDriver.faults
    if driver == "netns":
        from ember.chaos._netnsdriver import NetnsDriver

        return NetnsDriver.faults
    from ember.chaos._procdriver import ProcessDriver

    return ProcessDriver.faults


def _one_run(
    scenario: str, driver: str, seed: int, out: Path, timeout: float
) -> tuple[str, dict[str, Any] | None, float]:
    """Run one scenario in its own session; ``(verdict, result.json or None, wall seconds)``."""
    command = [
        sys.executable, "-X", "faulthandler", "-m", "ember", "chaos", "run", scenario,
        "--driver", driver, "--seed", str(seed), "--out", str(out), "--quiet",
    ]  # fmt: skip
    start = time.monotonic()
    log = (out.parent / f"{out.name}.out").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGABRT first: faulthandler writes every thread's stack to the run's log (where it
        # hung), then the session this run started, and only it, is killed.
        proc.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # none left of the session
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timeout", None, time.monotonic() - start
    finally:
        log.close()
    wall = time.monotonic() - start
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        return f"error (exit {proc.returncode})", None, wall
    return str(result["validity"]), result, wall


def _violations(result: dict[str, Any]) -> dict[str, int]:
    """The goal's three figures in one run's ``result.json``."""
    checks = {c["name"]: c for c in result.get("checks", [])}
    lin = checks.get("linearizable")
    lost = checks.get("no_lost_writes")
    doubles = 0
    for name in DOUBLE_OWNER_CHECKS:
        c = checks.get(name)
        if c is not None:
            figures = c.get("figures", {})
            doubles += int(figures.get("double_owners", 0)) + int(figures.get("diverged_names", 0))
    return {
        "linearizability_violations": int(lin is not None and lin["validity"] == "invalid"),
        "lost_acknowledged_writes": 0 if lost is None else int(lost["figures"].get("lost", 0)),
        "double_owners": doubles,
    }


def campaign(
    scenarios: list[str],
    runs: int,
    *,
    driver: str = "processes",
    seed_base: int = 0,
    out: Path | None = None,
    keep: bool = False,
    timeout: float = RUN_TIMEOUT,
    budget: float | None = None,
    results: Path | None = None,
) -> dict[str, Any]:
    """``runs`` runs of each of ``scenarios`` (round-robin, so a short campaign covers all).

    No run starts once ``budget`` seconds have passed (the counts say how many each scenario
    got); ``results``, when given, is rewritten with the counts so far after every run."""
    root = out or Path(tempfile.mkdtemp(prefix="ember-campaign-"))
    root.mkdir(parents=True, exist_ok=True)
    per: dict[str, dict[str, Any]] = {
        s: {"runs": 0, "verdicts": {}, "checks": {}, "wall_s": [], "not_valid": []}
        for s in scenarios
    }
    totals = {"linearizability_violations": 0, "lost_acknowledged_writes": 0, "double_owners": 0}
    start = time.monotonic()
    stopped = False

    def summary() -> dict[str, Any]:
        rows = {}
        for name, row in per.items():
            walls = row["wall_s"]
            rows[name] = {k: v for k, v in row.items() if k != "wall_s"}
            rows[name]["median_wall_s"] = sorted(walls)[len(walls) // 2] if walls else None
        return {
            "driver": driver,
            "runs_per_scenario": runs,
            "seeds": [seed_base + 1, seed_base + runs],
            "budget_s": budget,
            "stopped_by_budget": stopped,
            "scenarios": rows,
            "totals": totals,
            "valid_runs": sum(r["verdicts"].get("valid", 0) for r in per.values()),
            "all_runs": sum(r["runs"] for r in per.values()),
            "out": str(root),
            "wall_s": round(time.monotonic() - start, 1),
        }

    for i in range(1, runs + 1):
        seed = seed_base + i
        for name in scenarios:
            if budget is not None and time.monotonic() - start >= budget:
                stopped = True
                break
            run_dir = root / Path(name).stem / f"s{seed}"
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            verdict, result, wall = _one_run(name, driver, seed, run_dir, timeout)
            row = per[name]
            row["runs"] += 1
            row["verdicts"][verdict] = row["verdicts"].get(verdict, 0) + 1
            row["wall_s"].append(round(wall, 1))
            if result is not None:
                for key, n in _violations(result).items():
                    totals[key] += n
                for c in result["checks"]:
                    if c["validity"] != "valid":
                        seen = row["checks"].setdefault(c["name"], {})
                        seen[c["validity"]] = seen.get(c["validity"], 0) + 1
            if verdict != "valid":
                failing = [
                    f"{c['name']}: {c['validity']}: {c['summary']}"
                    for c in (result or {}).get("checks", [])
                    if c["validity"] != "valid"
                ]
                row["not_valid"].append(
                    {"seed": seed, "verdict": verdict, "dir": str(run_dir), "checks": failing}
                )
            elif not keep:
                shutil.rmtree(run_dir, ignore_errors=True)
                (run_dir.parent / f"{run_dir.name}.out").unlink(missing_ok=True)
            print(
                f"campaign: {name} seed {seed} {verdict} in {wall:.0f} s "
                f"({time.monotonic() - start:.0f} s in all)",
                file=sys.stderr,
                flush=True,
            )
            _write(results, summary())
        if stopped:
            break
    final = summary()
    _write(results, final)
    return final


def _write(results: Path | None, summary: dict[str, Any]) -> None:
    if results is not None:
        partial = results.with_name(results.name + ".tmp")
        partial.write_text(json.dumps({"chaos_campaign": summary}, indent=2) + "\n")
        partial.replace(results)


def run(quick: bool, reps: int) -> dict[str, Any]:
    """For ``python -m bench --only chaos_campaign``: ``reps`` runs of every scenario the
    processes driver runs (``quick``: one of leader-kill)."""
    scenarios = ["leader-kill"] if quick else runnable("processes")
    results = campaign(scenarios, 1 if quick else reps)
    t = results["totals"]
    return {
        "params": {"runs": results["runs_per_scenario"], "scenarios": scenarios},
        "results": results,
        "ratios": {},
        "goals": {
            "no_violations": t["linearizability_violations"] == 0
            and t["lost_acknowledged_writes"] == 0
            and t["double_owners"] == 0
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos_campaign", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs of each scenario (default 3)")
    parser.add_argument(
        "--scenarios",
        help="comma-separated bundled scenarios or scenario files (default: every bundled one "
        "the driver runs)",
    )
    parser.add_argument("--driver", default="processes", choices=["processes", "netns", "sim"])
    parser.add_argument("--seed-base", type=int, default=0, help="seeds are base+1 .. base+runs")
    parser.add_argument("--out", type=Path, help="where run directories go (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep valid runs' directories too")
    parser.add_argument("--run-timeout", type=float, default=RUN_TIMEOUT)
    parser.add_argument(
        "--budget", type=float, metavar="S", help="start no run after S seconds in all"
    )
    parser.add_argument(
        "--results", type=Path, metavar="FILE", help="rewrite FILE with the counts after each run"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    available = runnable(args.driver)
    scenarios = args.scenarios.split(",") if args.scenarios else available
    unknown = [s for s in scenarios if s not in available and not Path(s).is_file()]
    if unknown:
        parser.error(
            f"the {args.driver} driver cannot run {', '.join(unknown)} "
            f"(it runs {', '.join(available)})"
        )
    results = campaign(
        scenarios,
        args.runs,
        driver=args.driver,
        seed_base=args.seed_base,
        out=args.out,
        keep=args.keep,
        timeout=args.run_timeout,
        budget=args.budget,
        results=args.results,
    )
    json.dump({"chaos_campaign": results}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
