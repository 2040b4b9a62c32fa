"""A run whose final phase or teardown cannot finish ends anyway: its verdict is unknown with
the reason, and the cluster is stopped (never a hang). On the sim driver, in virtual time."""

import asyncio

from scenariokit import TINY

from ember.chaos._checkers import Validity
from ember.chaos._procdriver import ProcessDriver
from ember.chaos._runner import Runner
from ember.chaos._scenario import parse_scenario
from ember.chaos._simdriver import SimDriver

# A kill of one node that is undone at the end (the restart is what hangs below).
SCENARIO = TINY.replace('target = "leader"\nduration = 2', 'target = "one"').replace(
    'fault = "pause"', 'fault = "kill"'
)


class StuckRestart(SimDriver):
    """A driver whose restart never returns (the final heal hangs), that records its stop."""

    stopped = False

    async def restart(self, name: str) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True
        await super().stop()


async def test_a_heal_that_never_ends_gives_unknown_and_stops_the_cluster(tmp_path):
    scenario = parse_scenario(SCENARIO)
    driver = StuckRestart(scenario, 3, tmp_path)
    async with asyncio.timeout(900):  # virtual time: the bounds are minutes
        result = await Runner(scenario, driver, 3).run()
    assert driver.stopped
    assert result.validity is Validity.UNKNOWN
    completed = {c.name: c for c in result.checks}["completed"]
    assert completed.validity is Validity.UNKNOWN
    # The kill is undone (the restart that hangs) by the nemesis at the workload's end, or
    # by the final heal: either way the summary names the step and its bound.
    assert "did not end within" in completed.summary
    assert "nemesis" in completed.summary or "heal" in completed.summary
    # The other checks still ran on what was recorded.
    assert {"linearizable", "no_lost_writes"} <= {c.name for c in result.checks}


class StuckClientStop(SimDriver):
    """A driver whose client node's stop never returns."""

    async def stop(self) -> None:
        await self.bounded("stopping the client node", asyncio.Event().wait(), 30.0)
        await super().stop()


async def test_a_teardown_that_never_ends_gives_unknown(tmp_path):
    scenario = parse_scenario(SCENARIO)
    driver = StuckClientStop(scenario, 4, tmp_path)
    async with asyncio.timeout(900):
        result = await Runner(scenario, driver, 4).run()
    completed = {c.name: c for c in result.checks}["completed"]
    assert completed.validity is Validity.UNKNOWN
    assert "stopping the client node" in completed.summary
    assert result.validity is Validity.UNKNOWN


class _HangingNode:
    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_the_processes_driver_stops_its_nodes_when_the_client_node_cannot_stop(tmp_path):
    scenario = parse_scenario(SCENARIO)
    driver = ProcessDriver(scenario, 1, tmp_path)
    driver._client = _HangingNode()
    stopped = []

    async def stop_processes() -> dict[str, int]:
        stopped.append(True)
        return {}

    driver.procs.stop = stop_processes
    async with asyncio.timeout(900):  # virtual time
        await driver.stop()
    assert stopped == [True]
    assert driver.unfinished == ["stopping the client node did not end within 60 s"]
