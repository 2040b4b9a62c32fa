"""Bundled chaos scenarios on real node processes (the processes driver): leader-kill,
pause-the-leader and partition-heal-names (partitions through the transport's fault hook)
must come out valid. Each takes about half a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.actors import run
from ember.chaos._api import find_scenario, run_chaos
from ember.chaos._procdriver import ProcessDriver
from ember.chaos._scenario import load_scenario, parse_scenario

from .chaoskit import assert_cut_is_seen_and_heals


@pytest.mark.parametrize("name", ["leader-kill", "pause-the-leader", "partition-heal-names"])
def test_bundled_scenario_on_node_processes(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(find_scenario(name))
    result, summary, out = run_chaos(scenario, driver="processes", out=tmp_path / name)
    checks = {c.name: (c.validity.value, c.summary) for c in result.checks}
    assert summary["validity"] == "valid", checks
    assert [f["fault"] for f in summary["faults"]] == [f.fault for f in scenario.timeline]
    assert result.history.counts()["ok"] > 100
    nodes = [f"n{i}.log" for i in range(1, scenario.cluster.nodes + 1)]
    assert sorted(p.name for p in (out / "logs").iterdir()) == nodes
    assert not any("could not set the faults" in note for note in result.driver["notes"])


def test_a_cut_link_is_seen_by_the_members_and_heals(tmp_path: Path) -> None:
    scenario = parse_scenario('[cluster]\nnodes = 3\n[[workload]]\nkind = "kv"\n')

    async def main() -> None:
        driver = ProcessDriver(scenario, 1, tmp_path)
        try:
            await driver.start()
            await assert_cut_is_seen_and_heals(driver)
        finally:
            await driver.stop()

    run(main)
