"""Run Ember's local benchmarks: ``python -m bench [--quick] [--only NAME ...] [--reps N]``.

Prints one JSON object on stdout (progress goes to stderr) and saves each benchmark's section
to ``bench/results/<name>.json`` (``bench/results/quick/`` with ``--quick``, so a smoke run does
not overwrite real figures) and the whole object to ``last_run.json`` there.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._util import goal as _goal

# name -> module; run in this order (pykka last: its threads never share the loop's time).
BENCHMARKS = {
    "tell": "bench.tell",
    "call": "bench.call",
    "spawn": "bench.spawn",
    "ring": "bench.ring",
    "remote": "bench.remote",
    "mesh": "bench.mesh",
    "mesh_idle": "bench.mesh_idle",
    "discovery": "bench.discovery",
    "raft_core": "bench.raft_core",
    "raft": "bench.raft",
    "chaos": "bench.chaos",
    "observability": "bench.observability",
    "raft_pause": "bench.raft_pause",
    "names": "bench.names",
    "pg": "bench.pg",
    "admission": "bench.admission",
    "contracts": "bench.contracts",
    "chaos_campaign": "bench.chaos_campaign",
    "pykka": "bench.pykka_ref",
    "thespian": "bench.thespian_ref",
}

OPT_IN = frozenset({"chaos_campaign"})
"""Run only when named with --only (minutes of node processes, not a figure)."""

RESULTS = Path(__file__).resolve().parent / "results"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "event_loop": f"uvloop {_version('uvloop')}",
        "ember": _version("ember"),
        "pykka": _version("pykka"),
        "thespian": _version("thespian"),
        "git_commit": _git_commit(),
        "quick": args.quick,
        "repetitions": args.reps,
        "statistic": "median of the repetitions, run round-robin across variants",
    }


def _get(benchmarks: dict[str, Any], name: str, key: str) -> float | None:
    section = benchmarks.get(name)
    if section is None:
        return None
    value = section["results"]
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def cross(benchmarks: dict[str, Any]) -> dict[str, float | None]:
    """Ratios between benchmarks: Ember against Pykka and Thespian measured in the same run."""
    out: dict[str, float | None] = {}
    for lib in ("pykka", "thespian"):
        tell = _get(benchmarks, lib, f"{lib}_tell")
        ask = _get(benchmarks, lib, f"{lib}_ask")
        for kind, base, ours in (("tell", tell, "tell"), ("call", ask, "call")):
            variants = ("ember_async", "ember_plain") + (("ember_scheduled",) * (kind == "call"))
            for variant in variants:
                key = f"{kind} {variant}/{lib}_{'tell' if kind == 'tell' else 'ask'}"
                out[key] = _ratio(_get(benchmarks, ours, variant), base)
    return out


def goals(benchmarks: dict[str, Any], xr: dict[str, float | None]) -> dict[str, Any]:
    """The goals of issues 2 to 5, each with its measured value and pass/fail (None: not
    run)."""
    from .chaos import goals as chaos_goals
    from .contracts import goals as contracts_goals
    from .mesh import goals as mesh_goals
    from .names import goals as names_goals
    from .pg import goals as pg_goals
    from .raft import goals as raft_goals
    from .remote import goals as remote_goals

    def ratio_of(name: str, key: str) -> float | None:
        section = benchmarks.get(name)
        return None if section is None else section["ratios"].get(key)

    return {
        "tell_vs_queue": _goal(
            "tell (async receive) >= 1.3x asyncio.Queue hand-off",
            ratio_of("tell", "ember_async/asyncio_queue"),
            1.3,
            True,
        ),
        "tell_plain_vs_queue": _goal(
            "tell (plain receive) >= 1.3x asyncio.Queue hand-off",
            ratio_of("tell", "ember_plain/asyncio_queue"),
            1.3,
            True,
        ),
        "call_vs_future_pingpong": _goal(
            "call (async receive, default timeout) >= 0.6x bare future ping-pong",
            ratio_of("call", "ember_async/future_pingpong"),
            0.6,
            True,
        ),
        "call_scheduled_vs_future_pingpong": _goal(
            "call through the scheduler (receive with an await) >= 0.6x bare future ping-pong",
            ratio_of("call", "ember_scheduled/future_pingpong"),
            0.6,
            True,
        ),
        "tell_vs_pykka": _goal(
            "tell (async receive) >= 10x Pykka tell",
            xr.get("tell ember_async/pykka_tell"),
            10,
            True,
        ),
        "tell_vs_thespian": _goal(
            "tell (async receive) >= 2x Thespian tell",
            xr.get("tell ember_async/thespian_tell"),
            2,
            True,
        ),
        "call_vs_thespian": _goal(
            "call (async receive) >= 2x Thespian ask",
            xr.get("call ember_async/thespian_ask"),
            2,
            True,
        ),
        "call_scheduled_vs_thespian": _goal(
            "call through the scheduler >= 2x Thespian ask",
            xr.get("call ember_scheduled/thespian_ask"),
            2,
            True,
        ),
        "call_vs_pykka": _goal(
            "call (async receive) >= 10x Pykka ask", xr.get("call ember_async/pykka_ask"), 10, True
        ),
        "spawn_nowait_rate": _goal(
            "spawn_nowait >= 300,000 actors/s",
            _get(benchmarks, "spawn", "spawn_per_s.ember_spawn_nowait"),
            300_000,
            True,
        ),
        "spawn_await_rate": _goal(
            "await spawn >= 300,000 actors/s",
            _get(benchmarks, "spawn", "spawn_per_s.ember_spawn_await"),
            300_000,
            True,
        ),
        "idle_actor_rss": _goal(
            "idle actor <= 1,000 B RSS (class with one attribute, no __slots__)",
            _get(benchmarks, "spawn", "rss_bytes_per_actor.ember_spawn_nowait"),
            1000,
            False,
        ),
        **remote_goals(benchmarks),
        **mesh_goals(benchmarks),
        **raft_goals(benchmarks),
        **chaos_goals(benchmarks),
        **names_goals(benchmarks),
        **pg_goals(benchmarks),
        **contracts_goals(benchmarks),
    }


def _names(only: list[str] | None) -> list[str]:
    if not only:
        return [n for n in BENCHMARKS if n not in OPT_IN]
    wanted = {n.strip() for item in only for n in item.split(",") if n.strip()}
    unknown = wanted - BENCHMARKS.keys()
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    return [n for n in BENCHMARKS if n in wanted]


def _save(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (median)")
    args = parser.parse_args(argv)
    names = _names(args.only)
    out_dir = RESULTS / "quick" if args.quick else RESULTS
    info = meta(args)
    benchmarks: dict[str, Any] = {}
    t_start = time.perf_counter()
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        section = module.run(args.quick, args.reps)
        section["elapsed_s"] = round(time.perf_counter() - t0, 2)
        benchmarks[name] = section
        print(f"bench: {name} done in {section['elapsed_s']} s", file=sys.stderr, flush=True)
        _save(out_dir / f"{name}.json", {"meta": info, name: section})
    xr = cross(benchmarks)
    result = {
        "meta": info,
        "benchmarks": benchmarks,
        "cross": xr,
        "goals": goals(benchmarks, xr),
        "elapsed_s": round(time.perf_counter() - t_start, 2),
    }
    _save(out_dir / "last_run.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
