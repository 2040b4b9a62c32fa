"""A whole cluster of :class:`ember.Node` s in one process, on a simulated network.

Every node runs all its layers (transport, mesh, Raft and the services above) unchanged; only
the sockets are replaced by a :class:`~ember.transport.MemoryNetwork`, which carries the
transport's frames and the mesh's datagrams and injects partitions, loss and delay. On the
virtual-time loop (every ``async def`` test under Ember's pytest plugin, or
``ember.testing.run``) timeouts cost nothing and a seed replays a run.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from .._errors import UsageError
from .._node import Node
from ..mesh._config import SwimConfig
from ..mesh._messages import MemberStatus
from ..transport._memory import MemoryNetwork
from ._vtime import VirtualTimeLoop

__all__ = ["SimCluster", "SimNetwork"]

SimNetwork = MemoryNetwork
"""The simulated network: ``ember.testing.SimNetwork`` is :class:`ember.transport.MemoryNetwork`."""


class SimCluster:
    """Nodes ``names`` (or ``n0``, ``n1``... when given a count) on one simulated network.

    Each node is ``ember.Node(name, network=..., discovery="sim", mesh=mesh, **options)``,
    where ``options`` are ``node_options`` updated with ``per_node.get(name, {})``; its seed
    derives from ``seed``, its name and how many times it was started, so a run replays.
    ``data_root`` gives each node the data directory ``data_root/<name>`` (durable Raft logs that
    survive :meth:`kill` and :meth:`restart`); without it Raft keeps its log in memory and a
    restarted node comes back empty.

    Use it as ``async with SimCluster(...) as sim:``; entering starts every node and waits for
    the membership to converge, leaving stops every live node.
    """

    def __init__(
        self,
        names: Iterable[str] | int = 3,
        *,
        seed: int = 0,
        network: MemoryNetwork | None = None,
        mesh: SwimConfig | str = "local",
        cluster: str = "ember",
        data_root: str | Path | None = None,
        node_options: Mapping[str, Any] | None = None,
        per_node: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.names = [f"n{i}" for i in range(names)] if isinstance(names, int) else list(names)
        if len(set(self.names)) != len(self.names):
            raise UsageError(f"node names must be unique: {self.names}")
        self.seed = seed
        self.network = network if network is not None else MemoryNetwork(seed=seed)
        self._mesh = mesh
        self._cluster = cluster
        self._data_root = Path(data_root) if data_root is not None else None
        self._options = dict(node_options or {})
        self._per_node = {name: dict(o) for name, o in (per_node or {}).items()}
        self._starts: dict[str, int] = {}
        self.nodes: dict[str, Node] = {}
        """The live nodes by name (a killed or stopped node is removed)."""

    def __repr__(self) -> str:
        return f"SimCluster(live={sorted(self.nodes)}, seed={self.seed})"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_all()

    def node(self, name: str) -> Node:
        """The live node ``name``."""
        node = self.nodes.get(name)
        if node is None:
            raise UsageError(f"node {name!r} is not running (live: {sorted(self.nodes)})")
        return node

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - simulated time
        """Start every node, then wait until each sees all the others alive."""
        for name in self.names:
            await self._start(name)
        await self.wait_converged(timeout)

    async def add(self, name: str, **options: Any) -> Node:
        """Start a new node ``name`` (it joins through discovery) and return it."""
        if name not in self.names:
            self.names.append(name)
        self._per_node.setdefault(name, {}).update(options)
        return await self._start(name)

    async def restart(self, name: str, **options: Any) -> Node:
        """Start ``name`` again after a :meth:`kill` or :meth:`stop` (same data directory)."""
        if name in self.nodes:
            raise UsageError(f"node {name!r} is still running: kill or stop it first")
        self._per_node.setdefault(name, {}).update(options)
        return await self._start(name)

    async def kill(self, name: str) -> None:
        """Crash ``name``: its network goes first (peers see the connection drop, as after
        ``kill -9``), so nothing it does while its processes are torn down reaches anyone; no
        leave is gossiped. A paused node can be killed too."""
        node = self.nodes.pop(name, None)
        if node is None:
            raise UsageError(f"node {name!r} is not running")
        if node.transport is not None:
            await node.transport.close()
        self.network.resume(name)
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeLoop):
            loop.thaw(name)
        if node.mesh is not None:
            await node.mesh.stop()
        await node.stop()

    def pause(self, name: str) -> None:
        """Freeze ``name`` as ``SIGSTOP`` would: none of its timers, tasks or deliveries run
        until :meth:`resume`; its peers hear nothing from it and their connections to it go
        down after the heartbeat timeout. Needs the virtual-time loop."""
        self.node(name)
        self._loop().freeze(name)
        self.network.pause(name)

    def resume(self, name: str) -> None:
        """Continue a paused node, as ``SIGCONT``: what fell due meanwhile runs at once, late."""
        self.node(name)
        self.network.resume(name)
        self._loop().thaw(name)

    def paused(self) -> frozenset[str]:
        """The nodes paused now."""
        loop = asyncio.get_running_loop()
        return loop.frozen() if isinstance(loop, VirtualTimeLoop) else frozenset()

    @staticmethod
    def _loop() -> VirtualTimeLoop:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise UsageError("pausing a simulated node needs the virtual-time loop")
        return loop

    async def stop(self, name: str) -> None:
        """Stop ``name`` gracefully (it leaves the mesh); a paused node is resumed first."""
        node = self.nodes.pop(name, None)
        if node is None:
            raise UsageError(f"node {name!r} is not running")
        self.network.resume(name)
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeLoop):
            loop.thaw(name)
        await node.stop()

    async def stop_all(self) -> None:
        """Stop every live node, the last started first."""
        for name in reversed(list(self.nodes)):
            await self.stop(name)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut the network into ``groups`` (nodes not named form one more group)."""
        self.network.partition(*groups)

    def heal(self) -> None:
        """Remove every partition."""
        self.network.heal()

    def alive_view(self, name: str) -> set[str]:
        """The members ``name`` sees alive (itself included)."""
        return {m.name for m in self.node(name).members() if m.status is MemberStatus.ALIVE}

    async def wait_converged(
        self,
        timeout: float = 30.0,  # noqa: ASYNC109 - simulated time
        among: Iterable[str] | None = None,
    ) -> None:
        """Wait until every live node of ``among`` (default: all live nodes) sees exactly
        those nodes alive."""
        want = set(among) if among is not None else None

        def converged() -> bool:
            group = want if want is not None else set(self.nodes)
            return all(self.alive_view(n) >= group for n in group if n in self.nodes)

        await self.wait_for(converged, timeout, what="membership convergence")

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 30.0,  # noqa: ASYNC109 - simulated time
        *,
        what: str = "condition",
        interval: float = 0.01,
    ) -> None:
        """Poll ``predicate`` every ``interval`` (simulated) seconds until it holds; raise
        ``TimeoutError`` naming ``what`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() >= deadline:
                raise TimeoutError(f"{what} not reached within {timeout} s ({self!r})")
            await asyncio.sleep(interval)

    async def _start(self, name: str) -> Node:
        if name in self.nodes:
            raise UsageError(f"node {name!r} is already running")
        count = self._starts[name] = self._starts.get(name, 0) + 1
        options: dict[str, Any] = {
            "network": self.network,
            "discovery": "sim",
            "mesh": self._mesh,
            "cluster": self._cluster,
            "seed": zlib.crc32(f"{self.seed}/{name}/{count}".encode()),
        }
        if self._data_root is not None:
            options["data_dir"] = self._data_root / name
        options.update(self._options)
        options.update(self._per_node.get(name, {}))
        node = Node(name, **options)
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeLoop):
            # The node's work belongs to its own domain of the loop, which pause() freezes.
            await loop.create_task(node.start(), context=loop.domain_context(name))
        else:
            await node.start()
        self.nodes[name] = node
        return node
