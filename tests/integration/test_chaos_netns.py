"""The netns chaos driver (root): node processes in network namespaces, partitions as drop
rules on the receiving side, everything removed afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ember.actors import run
from ember.chaos._api import find_scenario, run_chaos
from ember.chaos._netns import firewall_tool, unavailable_reason
from ember.chaos._netnsdriver import NetnsDriver
from ember.chaos._scenario import load_scenario, parse_scenario

from .chaoskit import assert_cut_is_seen_and_heals

REASON = unavailable_reason() or (
    None if firewall_tool() else "partitions need nftables or iptables"
)
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.split()}


def test_a_cut_link_is_seen_by_the_members_and_heals(tmp_path: Path) -> None:
    scenario = parse_scenario('[cluster]\nnodes = 3\n[[workload]]\nkind = "kv"\n')
    ours: list[str] = []

    async def main() -> None:
        driver = NetnsDriver(scenario, 1, tmp_path)
        try:
            await driver.start()
            ours.extend(driver.describe()["namespaces"])
            assert len(ours) == 3 and set(ours) <= namespaces()
            await assert_cut_is_seen_and_heals(driver)
        finally:
            await driver.stop()

    run(main)
    assert not set(ours) & namespaces()  # its namespaces (and their rules) are gone


def test_partition_heal_names_on_namespaces(tmp_path: Path) -> None:
    scenario = load_scenario(find_scenario("partition-heal-names"))
    result, summary, _ = run_chaos(scenario, driver="netns", out=tmp_path)
    checks = {c.name: (c.validity.value, c.summary) for c in result.checks}
    assert summary["validity"] == "valid", checks
    assert [f["fault"] for f in summary["faults"]] == ["partition", "partition"]
    assert len(summary["driver"]["namespaces"]) == 5
    assert not set(summary["driver"]["namespaces"]) & namespaces()
