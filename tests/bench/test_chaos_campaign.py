"""The chaos campaign script: which scenarios a driver runs, how one run's result becomes the
goal's figures, and one short campaign on the sim driver end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.chaos_campaign import _violations, runnable

ROOT = Path(__file__).resolve().parents[2]


def test_the_processes_driver_runs_the_bundled_scenarios_it_has_the_faults_for():
    names = runnable("processes")
    assert {"leader-kill", "pause-the-leader", "partition-heal-names"} <= set(names)
    assert {"slow-disk", "clock-skew", "failing-disk"} <= set(names)  # the node fault hook
    assert set(names) == set(runnable("sim"))  # every bundled scenario


def _check(name, validity, **figures):
    return {"name": name, "validity": validity, "summary": "", "figures": figures}


def test_a_result_gives_the_goals_figures():
    result = {
        "checks": [
            _check("linearizable", "invalid"),
            _check("no_lost_writes", "invalid", lost=3),
            _check("unique_consistent_names", "invalid", double_owners=1, diverged_names=0),
            _check("unique_eventual_names", "invalid", double_owners=0, diverged_names=2),
        ]
    }
    assert _violations(result) == {
        "linearizability_violations": 1,
        "lost_acknowledged_writes": 3,
        "double_owners": 3,
    }
    valid = {"checks": [_check("linearizable", "valid"), _check("no_lost_writes", "valid", lost=0)]}
    assert _violations(valid) == dict.fromkeys(_violations(result), 0)


def _campaign(*args: str) -> dict:
    """``python -m bench.chaos_campaign --driver sim ARGS``: its JSON report."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chaos_campaign", "--driver", "sim", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["chaos_campaign"]


def test_a_short_campaign_on_the_sim_driver(tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(
        'description = "tiny"\nsettle = 1.0\n[cluster]\nnodes = 3\ndurable = false\n'
        '[[workload]]\nkind = "kv"\nclients = 2\nrate = 20\nduration = 4\nkeys = 2\n'
        '[[faults.timeline]]\nat = 1.0\nfault = "kill"\ntarget = "leader"\nduration = 1.5\n'
    )
    out = tmp_path / "runs"
    results = tmp_path / "r.json"
    report = _campaign("--runs", "2", "--scenarios", str(scenario), "--out", str(out),
                       "--results", str(results))  # fmt: skip
    row = report["scenarios"][str(scenario)]
    assert row["runs"] == 2 and row["verdicts"] == {"valid": 2}, row
    assert report["totals"] == {
        "linearizability_violations": 0,
        "lost_acknowledged_writes": 0,
        "double_owners": 0,
    }
    assert report["seeds"] == [1, 2] and report["valid_runs"] == report["all_runs"] == 2
    assert not (out / "tiny" / "s1").exists()  # a valid run's directory is not kept
    assert json.loads(results.read_text()) == {"chaos_campaign": report}
    assert report["stopped_by_budget"] is False


def test_a_campaign_starts_no_run_past_its_budget(tmp_path):
    report = _campaign("--runs", "5", "--scenarios", "leader-kill", "--budget", "0",
                       "--out", str(tmp_path))  # fmt: skip
    assert report["stopped_by_budget"] is True and report["all_runs"] == 0
    assert report["scenarios"]["leader-kill"]["runs"] == 0


def test_a_run_past_its_timeout_is_stopped_with_its_stacks_in_its_log(tmp_path):
    report = _campaign("--runs", "1", "--scenarios", "leader-kill", "--run-timeout", "1",
                       "--out", str(tmp_path))  # fmt: skip
    assert report["scenarios"]["leader-kill"]["verdicts"] == {"timeout": 1}
    log = (tmp_path / "leader-kill" / "s1.out").read_text()
    assert "Fatal Python error: Aborted" in log and 'File "' in log  # where it was
