"""Discovery on a simulated network: what mDNS is on a LAN, for nodes on a ``MemoryNetwork``.

Every node of the same cluster whose mesh is bound on the network is found, at once when it
binds, with no probing delay and no cache: a restarted node is found again at its address.
"""

from __future__ import annotations

from collections.abc import Callable

from ..transport._memory import MemoryNetwork
from ..transport._memory_datagrams import sim_address
from ._discovery import DiscoveryStatistics, Seed, format_address

__all__ = ["NetworkDiscovery"]


class NetworkDiscovery:
    """Finds the other nodes of ``cluster`` on ``network`` (see the module docstring)."""

    def __init__(self, network: MemoryNetwork, *, node: str, cluster: str) -> None:
        self._network = network
        self._node = node
        self._cluster = cluster
        self._unsubscribe: Callable[[], None] | None = None
        self._stats = DiscoveryStatistics()

    def __repr__(self) -> str:
        return f"NetworkDiscovery(node={self._node!r}, cluster={self._cluster!r})"

    async def start(self, on_found: Callable[[Seed], None]) -> None:
        """Report every node bound now, then each one as it binds."""

        def bound(name: str, cluster: str) -> None:
            if name == self._node:
                self._stats.ignored_self += 1
            elif cluster != self._cluster:
                self._stats.ignored_other_cluster += 1
            else:
                self._stats.found += 1
                on_found(_seed(name))

        self._unsubscribe = self._network.on_bind(bound)

    async def stop(self) -> None:
        """Stop listening for new nodes. Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def seeds(self) -> list[Seed]:
        """The nodes of this cluster bound on the network now."""
        self._stats.lookups += 1
        return [
            _seed(name)
            for name, cluster in self._network.bound_nodes()
            if name != self._node and cluster == self._cluster
        ]

    def statistics(self) -> DiscoveryStatistics:
        """The counters so far."""
        return self._stats.snapshot()


def _seed(name: str) -> Seed:
    return Seed(format_address(*sim_address(name)), name)
