"""What a driver is: a cluster the runner can start, inject faults into and observe.

Every driver runs the cluster's nodes somewhere (one process in simulation, OS processes on
loopback, network namespaces) and one *client node* in the runner's process, from which the
workloads reach the cluster through the ordinary API (``Cluster.connect``...), as a user's
client would. A driver says which faults it can inject (:attr:`Driver.faults`); the runner
refuses a scenario that needs others, naming them.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from .._errors import UsageError
from .._node import Node
from ..consensus import Cluster, ClusterError, NoLeader
from ._kvsm import ChaosKV
from ._nemesis import Link
from ._scenario import Scenario

__all__ = ["KV_GROUP", "Driver", "DriverError", "node_names"]

KV_GROUP = "chaos-kv"
"""The Raft group the KV workload writes to."""


class DriverError(UsageError):
    """A driver cannot run a scenario (a fault it does not support, a missing privilege)."""


def node_names(count: int) -> list[str]:
    """The names of a scenario's nodes: ``n1`` ... ``n<count>``."""
    return [f"n{i}" for i in range(1, count + 1)]


class Driver(abc.ABC):
    """A cluster under test. Subclasses start the nodes and the client node and implement the
    faults they list in :attr:`faults`; the shared part starts the KV group."""

    kind: ClassVar[str]
    faults: ClassVar[frozenset[str]]
    """The fault kinds this driver injects."""

    def __init__(self, scenario: Scenario, seed: int, workdir: Path) -> None:
        self.scenario = scenario
        self.seed = seed
        self.workdir = workdir
        self.names = node_names(scenario.cluster.nodes)
        self.kv: Cluster | None = None
        self.contracts_store: tuple[str, ...] | None = (
            tuple(self.names) if any(w.kind == "contracts" for w in scenario.workloads) else None
        )
        """The members of the contracts store (every node), when a workload runs contracts."""
        self.notes: list[str] = []
        """Things the report should say about how faults were injected here."""
        self.unfinished: list[str] = []
        """What the run could not finish within its bound (its verdict is then unknown)."""

    async def bounded(self, what: str, step: Awaitable[Any], bound: float) -> bool:
        """``await step`` for at most ``bound`` seconds (cancelled past it); False, with
        ``what`` noted in :attr:`unfinished`, if it did not end in time."""
        timeout = asyncio.timeout(bound)
        try:
            async with timeout:
                await step
        except TimeoutError:
            if not timeout.expired():  # the step's own timeout: its error, not ours
                raise
            self.unfinished.append(f"{what} did not end within {bound:.0f} s")
            return False
        return True

    def check_supported(self) -> None:
        """Raise :class:`DriverError` if the scenario needs a fault this driver lacks."""
        missing = [f for f in self.scenario.faults() if f not in self.faults]
        if missing:
            raise DriverError(
                f"the {self.kind} driver cannot inject {', '.join(missing)} "
                f"(it injects {', '.join(sorted(self.faults))})"
            )

    # --- the lifecycle ---

    @property
    @abc.abstractmethod
    def client(self) -> Node:
        """The started client node in this process."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the nodes and the client node; return once they see each other."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop everything this driver started (also after a failed start)."""

    def live(self) -> list[str]:
        """The cluster's nodes that run now (not killed), in name order."""
        return list(self.names)

    async def start_kv(self, timeout: float = 60.0) -> Cluster:  # noqa: ASYNC109
        """Start the KV group with a member on every node and wait for its leader."""
        self.kv = await Cluster.start(
            self.names, ChaosKV, name=KV_GROUP, node=self.client, timeout=timeout
        )
        await self.kv.wait_for_leader(timeout=timeout)
        return self.kv

    async def wait_contracts_store(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """With a contracts workload, wait until the contracts store has a leader."""
        store = self._contracts_cluster()
        if store is not None:
            await store.wait_for_leader(timeout=timeout)

    def _contracts_cluster(self) -> Cluster | None:
        if self.contracts_store is None or self.client.contracts is None:
            return None
        return self.client.contracts.cluster

    async def leader(self, timeout: float = 3.0, group: str = "kv") -> str | None:  # noqa: ASYNC109
        """The node of the leader of the KV group (or with ``group="contracts"`` of the
        contracts store), if one answers within ``timeout``."""
        cluster = self.kv if group == "kv" else self._contracts_cluster()
        if cluster is None:
            return None
        try:
            member = await cluster.wait_for_leader(timeout=timeout)
        except (NoLeader, ClusterError, TimeoutError):
            return None
        return member.partition("#")[0]

    def now(self) -> float:
        """The run's clock (the loop's: virtual time in simulation)."""
        return asyncio.get_running_loop().time()

    # --- faults: each driver implements those in its `faults` ---

    async def kill(self, name: str) -> None:
        raise DriverError(f"{self.kind} cannot kill")

    async def restart(self, name: str) -> None:
        raise DriverError(f"{self.kind} cannot restart")

    async def pause(self, name: str) -> None:
        raise DriverError(f"{self.kind} cannot pause")

    async def resume(self, name: str) -> None:
        raise DriverError(f"{self.kind} cannot resume")

    async def cut(self, links: set[Link]) -> None:
        """Make the cut links the only ones down (an empty set heals every partition)."""
        raise DriverError(f"{self.kind} cannot partition")

    async def network_faults(
        self, targets: Iterable[str], delay: tuple[float, float] | None, loss: float | None
    ) -> None:
        """Delay and/or lose traffic of ``targets`` (None clears that fault)."""
        raise DriverError(f"{self.kind} cannot delay or lose traffic")

    async def disk_faults(
        self, targets: Iterable[str], latency: float | None, failures: float = 0.0
    ) -> None:
        """Make every Raft save on ``targets`` take ``latency`` seconds more and fail with
        probability ``failures`` (None and 0: a healthy disk again)."""
        raise DriverError(f"{self.kind} cannot slow a disk")

    async def clock_faults(self, targets: Iterable[str], rate: float | None) -> None:
        """Run the targets' clocks at ``rate`` times the true rate (None: the true rate)."""
        raise DriverError(f"{self.kind} cannot skew a clock")

    async def add_node(self, timeout: float = 60.0) -> str:  # noqa: ASYNC109
        """Start a new node, ``n<k>``, and add a member of the KV group on it; its name."""
        k = len(self.names) + 1
        while f"n{k}" in self.names:
            k += 1
        name = f"n{k}"
        await self._start_node(name)
        self.names.append(name)
        assert self.kv is not None
        await self.kv.add_member(node=name, timeout=timeout)
        return name

    async def retire_node(self, name: str, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Remove node ``name``'s member from the KV group, then stop the node gracefully."""
        assert self.kv is not None
        await self.kv.remove_member(name, timeout=timeout)
        self.names.remove(name)
        await self._stop_node(name)

    async def remove_member(self, name: str, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Remove node ``name``'s member from the KV group (the node keeps running)."""
        assert self.kv is not None
        await self.kv.remove_member(name, timeout=timeout)

    async def readd_member(self, name: str, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Add a member of the KV group on node ``name`` again (it starts empty)."""
        assert self.kv is not None
        await self.kv.add_member(node=name, timeout=timeout)

    async def _start_node(self, name: str) -> None:
        raise DriverError(f"{self.kind} cannot add nodes")

    async def _stop_node(self, name: str) -> None:
        raise DriverError(f"{self.kind} cannot remove nodes")

    # --- observations ---

    def rss(self) -> dict[str, int]:
        """Resident memory in bytes per observed process (node name, or the whole process)."""
        return {}

    def logs(self) -> dict[str, list[str]]:
        """Each node's log lines."""
        return {}

    def describe(self) -> dict[str, Any]:
        """For ``result.json``: the driver and where its files are."""
        out: dict[str, Any] = {"driver": self.kind, "nodes": self.names, "notes": self.notes}
        if self.unfinished:
            out["unfinished"] = self.unfinished
        return out
