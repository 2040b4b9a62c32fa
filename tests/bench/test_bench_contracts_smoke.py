"""Smoke test of the contracts benchmark's in-process parts (``python -m bench.contracts
--smoke``: the local graphs, remote steps on in-process nodes, durable runs on three in-process
voters): they run and print positive figures."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_contracts_benchmark_parts_run():
    proc = subprocess.run(
        [sys.executable, "-m", "bench.contracts", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in (
        "wide_steps_per_s",
        "chain_steps_per_s",
        "wide_cpu_us",
        "remote_step_us",
        "remote_call_us",
        "durable_steps_per_s",
        "durable_3step_p50_ms",
        "raft_write_p50_ms",
    ):
        assert out[key] > 0, key
    assert out["inline_steps"] >= 100
