"""Bundled chaos scenarios on real node processes (the processes driver): leader-kill and
pause-the-leader must come out valid. Each takes about half a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.chaos._api import find_scenario, run_chaos
from ember.chaos._scenario import load_scenario


@pytest.mark.parametrize("name", ["leader-kill", "pause-the-leader"])
def test_bundled_scenario_on_node_processes(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(find_scenario(name))
    result, summary, out = run_chaos(scenario, driver="processes", out=tmp_path / name)
    checks = {c.name: (c.validity.value, c.summary) for c in result.checks}
    assert summary["validity"] == "valid", checks
    assert [f["fault"] for f in summary["faults"]] == [f.fault for f in scenario.timeline]
    assert result.history.counts()["ok"] > 100
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["n1.log", "n2.log", "n3.log"]
