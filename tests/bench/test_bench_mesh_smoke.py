"""Smoke test of the membership benchmark: ``python -m bench.mesh --tiny`` (a second or two of
simulation) prints one JSON section with every figure, sane values, the ratios to the anchors
and the goals."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZES = (5, 12)
DETECTION = ("first_suspect", "first_failed", "all_failed")


def test_tiny_mesh_benchmark_has_every_figure_and_sane_values():
    proc = subprocess.run(
        [sys.executable, "-m", "bench.mesh", "--tiny"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    section = json.loads(proc.stdout)
    trials = section["params"]["detection_trials"]
    assert section["params"]["sizes"] == list(SIZES)
    assert set(section) >= {"unit", "params", "expected", "results", "ratios", "samples_s", "goals"}
    r = section["results"]
    for n in SIZES:
        k = f"n{n}"
        bound = section["expected"][k]["detection_bound_s"]
        assert section["undetected_within_bound"][k] == 0
        for key in DETECTION:
            samples = section["samples_s"][f"{key}_{k}"]
            assert len(samples) == trials[k]
            assert r[f"{key}_median_s_{k}"] == round(statistics.median(samples), 4)
            assert r[f"{key}_p99_s_{k}"] == max(samples)  # nearest rank of a few trials
            assert 0 < r[f"{key}_median_s_{k}"] <= r[f"{key}_p99_s_{k}"] <= bound
        # suspicion first, then the first failure, then everyone's
        assert r[f"first_suspect_median_s_{k}"] < r[f"first_failed_median_s_{k}"]
        assert r[f"first_failed_median_s_{k}"] <= r[f"all_failed_median_s_{k}"]
        assert 0 < r[f"all_failed_max_s_{k}"] <= bound
        assert r[f"fp_false_failures_0pct_{k}"] == 0
        assert r[f"fp_suspicions_0pct_{k}"] == 0
        assert r[f"fp_converged_at_end_5pct_{k}"] == 1
        assert r[f"join_failures_{k}"] == 0
        for key in ("join_seen_by_all", "cold_start_converged", "broadcast_seen_by_all"):
            assert 0 < r[f"{key}_median_s_{k}"] < 30
        assert r[f"udp_packets_per_member_s_{k}"] > 0
        assert r[f"udp_bytes_per_member_s_{k}"] > 0
        assert r[f"tcp_bytes_per_member_s_{k}"] > 0  # push-pull
        assert r[f"udp_wire_estimate_per_member_s_{k}"] > r[f"udp_bytes_per_member_s_{k}"]
        ratios = section["ratios"]
        assert 0 < ratios[f"all_failed_max/bound_{k}"] <= 1
        assert ratios[f"first_suspect_mean/swim_1.58T_{k}"] > 0
        assert ratios[f"all_failed_median/expected_{k}"] > 0
        goals = section["goals"]
        assert goals[f"detection_within_bound_{k}"]["pass"] is True
        assert goals[f"no_false_failure_0pct_{k}"]["pass"] is True
        assert goals[f"no_false_failure_5pct_{k}"]["pass"] in (True, False)
    assert (
        r["lifeguard_suspect_events_of_healthy_without_lhm"]
        > r["lifeguard_suspect_events_of_healthy_with_lhm"]
    )
