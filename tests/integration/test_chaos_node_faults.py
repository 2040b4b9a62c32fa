"""The node faults the processes driver injects through the fault hook of node processes
started with ``--chaos``: a slow disk delays the Raft saves of its node, a failing one stops
its member, a skewed clock runs its timers at the rate. Generous bounds; time is only ever
bounded from the side a loaded machine cannot fake (a slow disk makes a write take at least
its latency; a clock at 10x ends a 20 s sleep long before 20 s, however loaded)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ember.actors import run
from ember.chaos._probe import Holder
from ember.chaos._procdriver import ProcessDriver
from ember.chaos._scenario import parse_scenario
from ember.transport._faults import FaultState

from .chaoskit import BOUND

SCENARIO = parse_scenario('[cluster]\nnodes = 3\n[[workload]]\nkind = "kv"\n')


async def _state(driver: ProcessDriver, name: str) -> FaultState:
    faults = driver.client.transport.faults  # type: ignore[union-attr]
    return await faults.channel.ask(name, {"op": "state"}, timeout=BOUND)


def test_disk_and_clock_faults_on_node_processes(tmp_path: Path) -> None:
    async def main() -> None:
        driver = ProcessDriver(SCENARIO, 1, tmp_path)
        try:
            await driver.start()
            kv = await driver.start_kv(timeout=BOUND)
            leader = await driver.leader(timeout=BOUND)
            assert leader is not None
            followers = [n for n in driver.names if n != leader]

            # A slow disk under the leader: each commit waits for its save.
            await driver.disk_faults([leader], 0.5)
            t0 = time.monotonic()
            await kv.write({"key": "a", "value": 1}, timeout=BOUND)
            assert time.monotonic() - t0 >= 0.5
            state = await _state(driver, leader)
            assert state.disk_latency == 0.5 and state.disk_delayed >= 1
            await driver.disk_faults([leader], None)
            assert (await _state(driver, leader)).disk_latency == 0.0

            # A failing disk under a follower: its next save fails and its member stops
            # (the group goes on with the other two).
            await driver.disk_faults([followers[0]], None, 1.0)
            await kv.write({"key": "b", "value": 2}, timeout=BOUND)
            async with asyncio.timeout(BOUND):
                while (await _state(driver, followers[0])).disk_failed == 0:
                    await kv.write({"key": "b", "value": 3}, timeout=BOUND)
            log = (tmp_path / f"{followers[0]}.log").read_text()
            assert "injected disk failure" in log

            # A clock at 10x: a 20 s sleep on that node's timers ends within 20 s of real time.
            probe = await driver.client.spawn(Holder, on=followers[1])
            await driver.clock_faults([followers[1]], 10.0)
            assert (await _state(driver, followers[1])).clock_rate == 10.0
            t0 = time.monotonic()
            slept = await driver.client.call(probe, ("sleep", 20.0), timeout=BOUND)
            assert slept == "slept" and time.monotonic() - t0 < 20.0
            await driver.clock_faults([followers[1]], None)
            assert (await _state(driver, followers[1])).clock_rate == 1.0
        finally:
            await driver.stop()
        assert not driver.unfinished

    run(main)
