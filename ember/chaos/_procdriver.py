"""The processes driver: real node processes on loopback (``python -m ember node start``, one
per node, durable data directories), the client node in the runner's process joining their
mesh; kill -9 and restart from the data directory, SIGSTOP and SIGCONT.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .._node import Node
from ._driver import Driver
from ._procfs import rss_of
from ._scenario import Scenario

if TYPE_CHECKING:
    from ..cli._cluster import LocalCluster

__all__ = ["ProcessDriver"]

BOUND = 60.0  # seconds any start, restart or convergence may take on a loaded machine


class ProcessDriver(Driver):
    """Nodes ``n1``... as OS processes and the client node ``client`` in this process."""

    kind: ClassVar[str] = "processes"
    faults: ClassVar[frozenset[str]] = frozenset({"kill", "restart", "pause"})

    def __init__(self, scenario: Scenario, seed: int, workdir: Path) -> None:
        super().__init__(scenario, seed, workdir)
        # LocalCluster runs `ember node start` processes; it lives with the CLI that uses it
        # most (a subprocess boundary, not a layer the chaos package builds on).
        from ..cli._cluster import LocalCluster

        self.procs: LocalCluster = LocalCluster(
            scenario.cluster.nodes,
            workdir=workdir,
            discovery=scenario.cluster.discovery,
            cluster=f"chaos-{secrets.token_hex(4)}",
            mesh_profile=scenario.cluster.profile,
            ready_timeout=BOUND,
        )
        self._client: Node | None = None
        if not scenario.cluster.durable:
            self.notes.append("node processes always keep durable data directories")

    @property
    def client(self) -> Node:
        assert self._client is not None, "start() first"
        return self._client

    async def start(self) -> None:
        await self.procs.start()
        self._client = await self.procs.client("client", BOUND)

    async def stop(self) -> None:
        try:
            if self._client is not None:
                await self._client.stop()
        finally:
            for name in self.names:
                self.procs.kill(name, signal.SIGCONT)  # a paused node must hear the SIGTERM
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

    async def pause(self, name: str) -> None:
        self.procs.kill(name, signal.SIGSTOP)

    async def resume(self, name: str) -> None:
        self.procs.kill(name, signal.SIGCONT)

    def rss(self) -> dict[str, int]:
        return {p.name: rss_of(p.process.pid) for p in self.procs.running()}

    def logs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in self.names:
            path = self.workdir / f"{name}.log"
            if path.exists():
                out[name] = path.read_text(errors="replace").splitlines()
        return out
