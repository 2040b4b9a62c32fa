"""The sim driver: every node, with all its layers, in this process on the virtual-time loop
over the simulated network (``ember.testing.SimCluster``); a seed replays the run exactly.

Partitions of any shape are cut links of :class:`ChaosNetwork`; delay and loss apply to every
link of the network (the simulated network has no per-link rates), which the report notes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from .._node import Node
from ..actors._node import current_node
from ..consensus._faultydisk import faulty_disk
from ..contracts import ContractsConfig
from ..testing import SimCluster
from ..testing._vtime import _DOMAIN
from ..transport._memory import MemoryNetwork
from ._clock import SkewedLoop
from ._driver import Driver, DriverError
from ._nemesis import Link
from ._procfs import rss_of
from ._scenario import FAULTS, Scenario

__all__ = ["ChaosNetwork", "SimDriver"]

CLIENT = "client"
BASE_DELAY = (0.001, 0.001)
"""Every frame's delay on the simulated network without faults, in seconds: one LAN hop, the
same for every frame so that frames sent together arrive together (one timer, not one each)."""


class ChaosNetwork(MemoryNetwork):
    """The simulated network with any set of links cut, not only disjoint groups (rings and
    bridges are not transitive)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._cuts: frozenset[Link] = frozenset()

    def cut(self, links: Iterable[Link]) -> None:
        """Make ``links`` the cut ones; frames wait and datagrams are lost across them."""
        self._cuts = frozenset(links)
        self._regroup()
        self._network_changed()

    def reachable(self, a: str, b: str) -> bool:
        return super().reachable(a, b) and (not self._cuts or frozenset((a, b)) not in self._cuts)


class _NodeLogs(logging.Handler):
    """Collects log records per node (the node whose context emitted them), as text with any
    traceback included."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: dict[str, list[str]] = {}
        self.muted: set[str] = set()
        """Nodes being torn down after a simulated kill -9: a killed process logs nothing."""
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        name = _DOMAIN.get()
        node = current_node.get(None)
        if name is None:
            name = node.name if node is not None else "runner"
        if name in self.muted or (node is not None and node.name in self.muted):
            return
        self.lines.setdefault(name, []).append(self.format(record))


class SimDriver(Driver):
    """Nodes ``n1``... and the client node ``client`` on one :class:`ChaosNetwork`."""

    kind: ClassVar[str] = "sim"
    faults: ClassVar[frozenset[str]] = frozenset(FAULTS)  # every one

    def __init__(self, scenario: Scenario, seed: int, workdir: Path) -> None:
        super().__init__(scenario, seed, workdir)
        self.network = ChaosNetwork(seed)
        self._data: Path | None = None
        if scenario.cluster.durable:
            # A simulated kill loses nothing a real fsync would keep, so the logs may live in
            # memory: fsync on a disk costs most of a durable run's wall time.
            shm = Path("/dev/shm")
            self._data = Path(
                tempfile.mkdtemp(prefix="ember-sim-", dir=shm if shm.is_dir() else workdir)
            )
        options: dict[str, Any] = {}
        if self.contracts_store is not None:
            options["contracts"] = ContractsConfig(store=self.contracts_store)
        self.sim = SimCluster(
            [*self.names, CLIENT],
            seed=seed,
            network=self.network,
            mesh=scenario.cluster.profile,
            data_root=self._data,
            node_options=options,
        )
        self._disk_rng = random.Random(seed ^ 0xD15C)
        self._logs = _NodeLogs()
        self._root_level = logging.getLogger().level
        self.network.set_faults(delay=BASE_DELAY)
        if {"delay", "loss"} & set(scenario.faults()):
            self.notes.append("delay and loss apply to every link of the simulated network")

    @property
    def client(self) -> Node:
        return self.sim.node(CLIENT)

    async def start(self) -> None:
        root = logging.getLogger()
        root.addHandler(self._logs)
        root.setLevel(min(self._root_level or logging.WARNING, logging.INFO))
        await self.sim.start(timeout=120.0)

    async def stop(self) -> None:
        try:
            await self.sim.stop_all()
        finally:
            root = logging.getLogger()
            root.removeHandler(self._logs)
            root.setLevel(self._root_level)
            if self._data is not None:
                shutil.rmtree(self._data, ignore_errors=True)

    def live(self) -> list[str]:
        return [n for n in self.names if n in self.sim.nodes]

    async def kill(self, name: str) -> None:
        # The teardown runs in the runner's context: what it logs is the simulation's, not the
        # node's (a process killed with SIGKILL logs nothing).
        self._logs.muted.update((name, "runner"))
        try:
            await self.sim.kill(name)
        finally:
            self._logs.muted.clear()

    async def restart(self, name: str) -> None:
        await self.sim.restart(name)

    async def _start_node(self, name: str) -> None:
        await self.sim.add(name)

    async def _stop_node(self, name: str) -> None:
        await self.sim.stop(name)

    async def pause(self, name: str) -> None:
        self.sim.pause(name)

    async def resume(self, name: str) -> None:
        self.sim.resume(name)

    async def cut(self, links: set[Link]) -> None:
        self.network.cut(links)

    async def network_faults(
        self, targets: Iterable[str], delay: tuple[float, float] | None, loss: float | None
    ) -> None:
        self.network.set_faults(drop=loss or 0.0, delay=delay or BASE_DELAY)

    async def disk_faults(
        self, targets: Iterable[str], latency: float | None, failures: float = 0.0
    ) -> None:
        # Each Raft member's save (its fsync) waits first, and fails with probability
        # `failures` (the member stops, as on a real I/O error): the member's own pipeline
        # stalls as behind a slow or failing disk. A member restarted later has a healthy disk.
        for name in targets:
            node = self.sim.nodes.get(name)
            host = node.service("raft") if node is not None else None
            for member in host.members.values() if host is not None else ():
                healthy = latency is None and not failures
                member.save_gate = None if healthy else faulty_disk(self._disk(latency, failures))

    def _disk(self, latency: float | None, failures: float) -> Callable[[], tuple[float, bool]]:
        rng = self._disk_rng
        return lambda: (latency or 0.0, bool(failures) and rng.random() < failures)

    async def clock_faults(self, targets: Iterable[str], rate: float | None) -> None:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, SkewedLoop):
            raise DriverError("clock skew needs the sim driver's own loop (run it with run_chaos)")
        for name in targets:
            loop.set_rate(name, 1.0 if rate is None else rate)

    def rss(self) -> dict[str, int]:
        return {"sim": rss_of("self")}

    def logs(self) -> dict[str, list[str]]:
        return {name: list(lines) for name, lines in self._logs.lines.items()}
