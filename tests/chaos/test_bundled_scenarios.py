"""Every bundled scenario runs on the sim driver and comes out valid (the CI's chaos run)."""

from pathlib import Path

import pytest

from ember.chaos._api import bundled_scenarios, run_chaos

SCENARIOS = {s.name: s for s in bundled_scenarios()}


def test_the_repository_chaos_directory_is_the_bundled_one():
    root = Path(__file__).resolve().parents[2]
    assert sorted(p.stem for p in (root / "chaos").glob("*.toml")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_bundled_scenario_on_the_sim_driver(name, tmp_path):
    scenario = SCENARIOS[name]
    result, summary, _ = run_chaos(scenario, driver="sim", out=tmp_path)
    checks = {c.name: (c.validity.value, c.summary) for c in result.checks}
    assert summary["validity"] == "valid", checks
    assert result.faults, "the scenario injected no fault"
    assert result.history.counts()["ok"] > 100
