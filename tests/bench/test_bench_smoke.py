"""Smoke test of the benchmark harness: ``python -m bench --quick --only tell`` runs and prints
one JSON object with positive figures, ratios and the goal entries."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_tell_prints_json_with_positive_figures():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "tell"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"meta", "benchmarks", "cross", "goals", "elapsed_s"}
    assert out["meta"]["quick"] is True
    assert out["meta"]["event_loop"].startswith("uvloop")
    assert list(out["benchmarks"]) == ["tell"]
    tell = out["benchmarks"]["tell"]
    assert tell["unit"] == "msg/s"
    assert tell["params"]["messages"] > 0
    results = tell["results"]
    assert set(results) == {
        "ember_async",
        "ember_async_watchdog",
        "ember_plain",
        "asyncio_queue",
        "lean_deque_task",
    }
    assert all(v > 0 for v in results.values())
    assert set(tell["ratios"]) == {
        "ember_async_watchdog/ember_async",
        "ember_async/asyncio_queue",
        "ember_plain/asyncio_queue",
        "ember_async/lean_deque_task",
        "ember_plain/lean_deque_task",
    }
    assert all(v > 0 for v in tell["ratios"].values())
    assert all(len(s) == 3 for s in tell["samples_s"].values())
    goals = out["goals"]
    for name in ("tell_vs_queue", "tell_plain_vs_queue"):
        assert goals[name]["value"] > 0
        assert goals[name]["pass"] in (True, False)
    # Goals whose benchmarks did not run are reported as not measured, not as failures.
    assert goals["call_vs_future_pingpong"]["pass"] is None
    saved = json.loads((ROOT / "bench" / "results" / "quick" / "tell.json").read_text())
    assert saved["tell"]["results"] == results
