"""Datagrams on a :class:`~ember.transport.MemoryNetwork`: the mesh's UDP, simulated.

A node binds a :class:`MemoryDatagrams` socket at its simulated address (``"<name>.sim:7946"``).
A datagram is lost when its target is not bound, when the network's partition separates the two
nodes (at send time or when it falls due), or with the network's ``drop`` probability; otherwise
it arrives after a draw from the network's ``delay`` range. The draws come from the network's
seeded generator in send order, so a run replays exactly. Unlike frames, datagrams may overtake
each other, as UDP's do.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import UsageError

if TYPE_CHECKING:
    from ._memory import MemoryNetwork

__all__ = ["SIM_PORT", "DatagramStatistics", "MemoryDatagrams", "OnDatagram", "sim_address"]

log = logging.getLogger("ember.transport.memory")

SIM_PORT = 7946
"""The port of every simulated address (the host part names the node)."""

OnDatagram = Callable[[bytes, tuple[str, int]], None]


def sim_address(node_name: str) -> tuple[str, int]:
    """The simulated address of ``node_name``: ``("<name>.sim", SIM_PORT)``."""
    return f"{node_name}.sim", SIM_PORT


@dataclass(slots=True)
class DatagramStatistics:
    """Datagram counters of a whole network."""

    sent: int = 0
    delivered: int = 0
    dropped_by_network: int = 0
    """Lost to the ``drop`` probability."""
    dropped_partitioned: int = 0
    """Lost because a partition separated sender and target."""
    dropped_unbound: int = 0
    """Sent to an address nobody is bound to (a stopped node, a wrong address)."""


class MemoryDatagrams:
    """One node's datagram socket on a memory network (the interface the mesh shell uses)."""

    __slots__ = ("_closed", "_context", "_network", "_on_datagram", "address", "node_name")

    def __init__(
        self,
        network: MemoryNetwork,
        node_name: str,
        address: tuple[str, int],
        on_datagram: OnDatagram,
    ) -> None:
        self._network = network
        self.node_name = node_name
        self.address = address
        self._on_datagram = on_datagram
        self._closed = False
        self._context = contextvars.copy_context()

    def context(self) -> contextvars.Context:
        """A copy of the context the socket was bound in (its arrivals run in it)."""
        return self._context.copy()

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one datagram to ``addr`` (fire and forget, as UDP)."""
        if not self._closed:
            self._network._send_datagram(self, bytes(data), (addr[0], int(addr[1])))

    def close(self) -> None:
        """Unbind; datagrams still in flight to this socket are lost."""
        if not self._closed:
            self._closed = True
            self._network._unbind_datagrams(self)

    def _deliver(self, data: bytes, source: tuple[str, int]) -> None:
        if self._closed:
            return
        try:
            self._on_datagram(data, source)
        except Exception:
            log.exception("%s: datagram handler failed", self.node_name)


def check_bind(
    bound: dict[tuple[str, int], MemoryDatagrams], node_name: str, address: tuple[str, int]
) -> None:
    """Refuse a second live socket at one address, as the OS would."""
    if address in bound:
        raise UsageError(f"node {node_name!r}: address {address[0]}:{address[1]} is in use")
