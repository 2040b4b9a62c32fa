"""The node faults the processes driver injects through the fault hook of node processes
started with ``--chaos``: a slow disk delays the Raft saves of its node, a failing one stops
its member, a skewed clock runs its timers at the rate. Generous bounds; time is only ever
bounded from the side a loaded machine cannot fake (a slow disk makes a write take at least
its latency; a clock at 10x ends a 20 s sleep long before 20 s, however loaded)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from ember import EmberError
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
            names = list(driver.names)

            # A slow disk under every node (whoever leads): a commit waits for the saves.
            await driver.disk_faults(names, 0.5)
            t0 = time.monotonic()
            await kv.write({"key": "a", "value": 1}, timeout=BOUND)
            assert time.monotonic() - t0 >= 0.5
            states = [await _state(driver, n) for n in names]
            assert all(s.disk_latency == 0.5 for s in states)
            assert sum(s.disk_delayed >= 1 for s in states) >= 2  # a majority saved it
            await driver.disk_faults(names, None)
            assert (await _state(driver, names[0])).disk_latency == 0.0

            # A failing disk under one node: its next save fails and its member stops (the
            # group goes on with the other two; a write may fail while it elects again).
            failing, skewed = names[1], names[2]
            await driver.disk_faults([failing], None, 1.0)
            log = tmp_path / f"{failing}.log"
            async with asyncio.timeout(BOUND):
                while (await _state(driver, failing)).disk_failed == 0:
                    with contextlib.suppress(EmberError, TimeoutError):
                        await kv.write({"key": "b", "value": 2}, timeout=5.0)
                # Its log follows, through another process's pipe: a file to poll, no event.
                while "injected disk failure" not in log.read_text():  # noqa: ASYNC110
                    await asyncio.sleep(0.1)

            # A clock at 10x: a 20 s sleep on that node's timers ends within 20 s of real time.
            probe = await driver.client.spawn(Holder, on=skewed)
            await driver.clock_faults([skewed], 10.0)
            assert (await _state(driver, skewed)).clock_rate == 10.0
            t0 = time.monotonic()
            slept = await driver.client.call(probe, ("sleep", 20.0), timeout=BOUND)
            assert slept == "slept" and time.monotonic() - t0 < 20.0
            await driver.clock_faults([skewed], None)
            assert (await _state(driver, skewed)).clock_rate == 1.0
        finally:
            await driver.stop()
        assert not driver.unfinished

    run(main)
