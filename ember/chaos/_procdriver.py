"""The processes driver: real node processes on loopback (``python -m ember node start
--chaos``, one per node, durable data directories), the client node in the runner's process
joining their mesh; kill -9 and restart from the data directory, SIGSTOP and SIGCONT, and
partitions, delay and loss through each node's transport fault hook (``ember.transport``'s
fault channel: the client asks each node to cut, delay or lose its own traffic), and through
the same hook a slow or failing disk under a node's Raft store and a skewed node clock.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from .._errors import EmberError
from .._node import Node
from ..contracts import ContractsConfig
from ..testing._localcluster import LocalCluster
from ._driver import Driver
from ._nemesis import Link
from ._procfs import rss_of
from ._scenario import FAULTS, Scenario

__all__ = ["ProcessDriver"]

BOUND = 60.0  # seconds any start, restart or convergence may take on a loaded machine
CONTRACTS_MODULE = "ember.chaos._orders"
"""What node processes load for the contracts workload (``--contracts-load``)."""
FAULT_BOUND = 5.0  # seconds a node may take to answer a fault request


class ProcessDriver(Driver):
    """Nodes ``n1``... as OS processes and the client node ``client`` in this process."""

    kind: ClassVar[str] = "processes"
    faults: ClassVar[frozenset[str]] = frozenset(FAULTS)  # every one

    def __init__(self, scenario: Scenario, seed: int, workdir: Path) -> None:
        super().__init__(scenario, seed, workdir)
        extra: tuple[str, ...] = ("--chaos",)
        if self.contracts_store is not None:
            extra += ("--contracts-store", ",".join(self.contracts_store))
            extra += ("--contracts-load", CONTRACTS_MODULE)
        self.procs: LocalCluster = LocalCluster(
            scenario.cluster.nodes,
            workdir=workdir,
            discovery=scenario.cluster.discovery,
            cluster=f"chaos-{secrets.token_hex(4)}",
            mesh_profile=scenario.cluster.profile,
            ready_timeout=BOUND,
            extra_args=extra,
        )
        self._client: Node | None = None
        self._cuts: set[Link] = set()
        self._net: dict[str, dict[str, Any]] = {}  # node -> its drop and delay now
        self._node: dict[str, dict[str, Any]] = {}  # node -> its disk and clock faults now
        if not scenario.cluster.durable:
            self.notes.append("node processes always keep durable data directories")

    @property
    def client(self) -> Node:
        assert self._client is not None, "start() first"
        return self._client

    async def start(self) -> None:
        await self.procs.start()
        options: dict[str, Any] = {}
        if self.contracts_store is not None:
            options["contracts"] = ContractsConfig(store=self.contracts_store)
        self._client = await self.procs.client("client", BOUND, **options)

    async def stop(self) -> None:
        # The node processes are stopped whatever happens to the client node's stop (bounded:
        # past it the run is unknown, never a hang with the cluster left running).
        try:
            if self._client is not None:
                await self.bounded("stopping the client node", self._client.stop(), BOUND)
        finally:
            for node in self.procs.running():  # (a start that failed started only some)
                self.procs.kill(node.name, signal.SIGCONT)  # a paused node must hear SIGTERM
            await self.procs.stop()

    def live(self) -> list[str]:
        return [n.name for n in self.procs.running()]

    async def kill(self, name: str) -> None:
        self.procs.kill(name)
        await self.procs.wait(name)

    async def restart(self, name: str) -> None:
        # On its old address, as a service restarts on its configured port: the others (and
        # the client) find it where they last saw it, even when every node restarted at once.
        old = self.procs.nodes[name].address or None
        others = [p for p in self.procs.running() if p.name != name]
        await self.procs.start_node(name, connect=others, listen=old)
        await self._tell(name)  # a new process starts without faults: give it those on now

    async def _start_node(self, name: str) -> None:
        await self.procs.start_node(name, connect=self.procs.running())
        client = self.client
        changed = asyncio.Event()
        remove = client.on_member_event(lambda _: changed.set())
        try:
            async with asyncio.timeout(BOUND):  # the client must know where it is, to use it
                while name not in {m.name for m in client.members() if m.status.value == "alive"}:
                    changed.clear()
                    await changed.wait()
        finally:
            remove()
        await self._tell(name)

    async def _stop_node(self, name: str) -> None:
        self.procs.kill(name, signal.SIGTERM)
        if not await self.bounded(f"stopping {name} gracefully", self.procs.wait(name), BOUND):
            self.procs.kill(name)
            await self.procs.wait(name)

    async def pause(self, name: str) -> None:
        self.procs.kill(name, signal.SIGSTOP)

    async def resume(self, name: str) -> None:
        self.procs.kill(name, signal.SIGCONT)

    async def cut(self, links: set[Link]) -> None:
        self._cuts = set(links)
        for name in self.live():
            await self._tell(name)

    async def network_faults(
        self, targets: Iterable[str], delay: tuple[float, float] | None, loss: float | None
    ) -> None:
        for name in targets:
            self._net[name] = {"drop": loss or 0.0, "delay": list(delay or (0.0, 0.0))}
            await self._tell(name)

    async def disk_faults(
        self, targets: Iterable[str], latency: float | None, failures: float = 0.0
    ) -> None:
        for name in targets:
            faults = self._node.setdefault(name, {})
            faults.update(disk_latency=latency or 0.0, disk_failures=failures)
            await self._tell(name)

    async def clock_faults(self, targets: Iterable[str], rate: float | None) -> None:
        for name in targets:
            self._node.setdefault(name, {})["clock_rate"] = rate or 1.0
            await self._tell(name)

    async def _tell(self, name: str) -> None:
        """Set node ``name``'s faults to what they should be now. Each node cuts its side of
        a link both ways, so a node that cannot be told (paused) is covered by its peers."""
        peers = sorted(p for p in self.names if frozenset((name, p)) in self._cuts)
        request = {
            "op": "set",
            "partition": peers,
            **self._net.get(name, {}),
            **self._node.get(name, {}),
        }
        try:
            await self.client.transport.faults.channel.ask(name, request, timeout=FAULT_BOUND)  # type: ignore[union-attr]
        except (EmberError, TimeoutError) as exc:
            self.notes.append(f"could not set the faults of {name}: {exc}")

    def rss(self) -> dict[str, int]:
        return {p.name: rss_of(p.process.pid) for p in self.procs.running()}

    def logs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in self.procs.nodes:  # every node that ran, also one added and retired
            path = self.workdir / f"{name}.log"
            if path.exists():
                out[name] = path.read_text(errors="replace").splitlines()
        return out
