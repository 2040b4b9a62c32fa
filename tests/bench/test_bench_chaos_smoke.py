"""Smoke test of ``python -m bench --quick --only chaos``: the checker figures and the goal."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_chaos_bench_prints_checker_figures():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "chaos", "--reps", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    chaos = out["benchmarks"]["chaos"]
    assert chaos["params"]["operations"] == 10_000
    assert chaos["results"]["checker_s"] > 0
    assert chaos["ratios"]["checker/plain_wgl"] > 0
    goal = out["goals"]["chaos_checker_100k"]
    assert goal["target"] == 10 and goal["pass"] is None  # quick runs do not judge the goal


def test_a_sweep_shared_by_two_processes_counts_every_seed():
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--sweep", "2", "--first", "5", "--jobs", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sweep = json.loads(proc.stdout)["chaos_sweep"]
    assert sweep["seeds"] == 2 and sweep["first_seed"] == 5 and sweep["jobs"] == 2
    assert sweep["verdicts"] == {"valid": 2}, sweep
    assert sweep["totals"] == {
        "linearizability_violations": 0,
        "lost_acknowledged_writes": 0,
        "double_owners": 0,
    }
    assert sorted(int(line.split()[2]) for line in proc.stderr.splitlines()) == [5, 6]
