"""What the TCP transport and the in-memory one share: a queue per peer node, and the methods
that only route into those queues or read them."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from ._frame import Channel
from ._queue import Outbox
from ._stats import ChannelTraffic, TransportStats

__all__ = ["PeerTable"]


class _Slot(Protocol):
    outbox: Outbox

    @property
    def conn(self) -> object | None: ...


P = TypeVar("P", bound=_Slot)


class PeerTable(Generic[P]):
    """Base of both transports: ``_peers`` maps a node name to its slot (``outbox``, and
    ``conn`` while a connection is open). A subclass says how to find a slot for a name with
    no open connection (``_route``, which raises ``NoRoute`` or ``UsageError``) and how to get a
    connection going for queued frames (``_dial``)."""

    _peers: dict[str, P]
    _stats: TransportStats
    _traffic: ChannelTraffic

    def _route(self, name: str) -> P:
        raise NotImplementedError

    def _dial(self, p: P) -> None:
        raise NotImplementedError

    def send(self, peer: str, channel: Channel, payload: bytes) -> None:
        """Queue one frame for ``peer``; it is written within this loop iteration's flush.

        Never blocks. Raises :class:`~ember.transport.QueueFull` if ``channel``'s queue to the
        peer is full and its policy is ``reject`` (other policies drop, counted),
        :class:`~ember.transport.FrameTooLarge` for a payload over ``max_frame_size``, and
        :class:`~ember.transport.NoRoute` when the peer is neither connected nor being
        connected and has no known address. With no open connection the frame waits in the
        peer's outbox while a connection is made (for at most ``unreachable_timeout``).
        ``payload`` must not be mutated afterwards.
        """
        p = self._peers.get(peer)
        if p is not None and p.conn is not None:
            p.outbox.put(channel, payload)
            return
        p = self._route(peer)
        p.outbox.put(channel, payload)
        self._dial(p)

    async def send_wait(self, peer: str, channel: Channel, payload: bytes) -> None:
        """Like :meth:`send`, but wait for room in a full ``reject`` queue instead of raising."""
        p = self._peers.get(peer)
        if p is None or p.conn is None:
            p = self._route(peer)
            self._dial(p)
        await p.outbox.put_wait(channel, payload)
        if p.conn is None:
            self._dial(p)

    def connected_nodes(self) -> list[str]:
        """Names of the peers with an open connection, sorted."""
        return sorted(name for name, p in self._peers.items() if p.conn is not None)

    def is_connected(self, peer: str) -> bool:
        """Whether a connection to ``peer`` is open."""
        p = self._peers.get(peer)
        return p is not None and p.conn is not None

    def pending(self, peer: str, channel: Channel | None = None) -> int:
        """Frames queued for ``peer`` (on ``channel``, or on all) and not yet written."""
        p = self._peers.get(peer)
        if p is None:
            return 0
        return p.outbox.pending if channel is None else p.outbox.queued(channel)

    def statistics(self) -> TransportStats:
        """A snapshot of the transport's counters."""
        return self._stats.snapshot(self._traffic)

    def peer_queues(self) -> dict[str, tuple[bool, dict[str, int]]]:
        """For every peer with a slot: whether it is connected, and the frames queued for it
        per channel name (for the metrics and the admin API)."""
        return {
            name: (p.conn is not None, {ch.name: p.outbox.queued(ch) for ch in Channel})
            for name, p in self._peers.items()
        }
