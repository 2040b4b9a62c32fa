"""The transport's metrics and admin views, read from its counters at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from .._errors import UsageError
from ..observability import AdminRequest, AdminRoute, Collector, Metric, counter, gauge
from ._frame import Channel
from ._interface import NodeTransport

__all__ = ["TransportProbe"]

_DROP_KINDS = ("rejected", "dropped_oldest", "dropped_newest")
_DISCARDS = ("disconnected", "unreachable", "by_network", "on_close")


class TransportProbe:
    """What the node's metrics and admin API see of its transport (TCP or in memory)."""

    def __init__(self, transport: NodeTransport) -> None:
        self.transport = transport

    def collectors(self) -> Iterable[Collector]:
        return (self._collect,)

    def _collect(self) -> Iterator[Metric]:
        s = self.transport.statistics()
        yield counter(
            "ember_transport_frames",
            "Frames sent to and received from other nodes, heartbeats included.",
            labels=["direction"],
            samples=((("sent",), s.frames_sent), (("received",), s.frames_received)),
        )
        yield counter(
            "ember_transport_bytes",
            "Bytes sent to and received from other nodes, frame headers included.",
            labels=["direction"],
            samples=((("sent",), s.bytes_sent), (("received",), s.bytes_received)),
        )
        yield counter(
            "ember_transport_writes", "Socket writes (frames coalesce into them).", s.writes
        )
        yield counter(
            "ember_transport_frames_dropped",
            "Frames refused or dropped at a full queue, by channel and policy (rejected: the "
            "sender got QueueFull).",
            labels=["channel", "policy"],
            samples=(
                ((ch.name, kind), getattr(s, kind)[ch.name])
                for ch in Channel
                for kind in _DROP_KINDS
            ),
        )
        yield counter(
            "ember_transport_frames_discarded",
            "Queued frames discarded without a send, by cause.",
            labels=["cause"],
            samples=(((c,), getattr(s, f"dropped_{c}")) for c in _DISCARDS),
        )
        queued: Counter[str] = Counter()
        connected = 0
        for is_up, per_channel in self.transport.peer_queues().values():
            connected += is_up
            queued.update(per_channel)
        yield gauge(
            "ember_transport_queued_frames",
            "Frames waiting in the outboxes to all peers, by channel.",
            labels=["channel"],
            samples=(((ch.name,), queued[ch.name]) for ch in Channel),
        )
        yield gauge("ember_transport_peers_connected", "Peers with an open connection.", connected)
        yield counter(
            "ember_transport_connections",
            "Connections that completed the handshake, by who dialled.",
            labels=["direction"],
            samples=(
                (("inbound",), s.connections_accepted),
                (("outbound",), s.connections_initiated),
            ),
        )
        yield counter(
            "ember_transport_connections_lost",
            "Established connections that ended other than by a local close (each one is "
            "followed by a reconnect while the peer is wanted).",
            s.connections_lost,
        )
        yield counter(
            "ember_transport_handshake_failures",
            "Handshakes that failed (protocol error, timeout, lost connection).",
            s.handshake_failures,
        )
        yield counter(
            "ember_transport_protocol_errors",
            "Connections closed because the peer broke the protocol, by kind.",
            labels=["kind"],
            samples=(((k,), v) for k, v in sorted(s.protocol_errors.items())),
        )
        yield counter(
            "ember_transport_connects_failed",
            "Outbound connection attempts that failed before a handshake.",
            s.connect_failures,
        )
        yield counter(
            "ember_transport_connections_refused",
            "Inbound connections refused on arrival, by cause.",
            labels=["cause"],
            samples=(
                (("rate_limited",), s.rate_limited),
                (("busy",), s.refused_busy),
                (("duplicate",), s.refused_duplicate),
            ),
        )
        yield counter(
            "ember_transport_heartbeat_timeouts",
            "Connections aborted because the peer went silent.",
            s.heartbeat_timeouts,
        )

    def admin_summary(self) -> dict[str, Any]:
        s = self.transport.statistics()
        peers = self.transport.peer_queues()
        dropped = sum(sum(getattr(s, k).values()) for k in _DROP_KINDS)
        return {
            "connected": sorted(n for n, (up, _) in peers.items() if up),
            "peers": len(peers),
            "queued": sum(sum(q.values()) for _, q in peers.values()),
            "frames_sent": s.frames_sent,
            "frames_received": s.frames_received,
            "bytes_sent": s.bytes_sent,
            "bytes_received": s.bytes_received,
            "dropped": dropped,
        }

    def admin_routes(self) -> Iterable[AdminRoute]:
        routes = [
            AdminRoute("GET", "", self._summary, "connected peers and totals"),
            AdminRoute("GET", "/peers", self._peers, "every peer: connected, queued per channel"),
            AdminRoute("GET", "/statistics", self._statistics, "every transport counter"),
        ]
        if getattr(self.transport, "faults", None) is not None:  # TCP; the sim has its own
            routes += [
                AdminRoute("GET", "/faults", self._fault_state, "the injected faults and counts"),
                AdminRoute(
                    "POST",
                    "/faults",
                    self._faults,
                    'inject or lift faults: {"op": "set", "drop", "delay", "partition"}, '
                    '{"op": "heal", "peers"}, {"op": "clear"} (the node needs --chaos)',
                    mutating=True,
                ),
            ]
        return routes

    async def _summary(self, req: AdminRequest) -> Any:
        return {"running": True, **self.admin_summary()}

    async def _peers(self, req: AdminRequest) -> Any:
        return {
            "peers": [
                {"name": name, "connected": up, "queued": queued}
                for name, (up, queued) in sorted(self.transport.peer_queues().items())
            ]
        }

    async def _statistics(self, req: AdminRequest) -> Any:
        return asdict(self.transport.statistics())

    async def _fault_state(self, req: AdminRequest) -> Any:
        return self.transport.faults.state().as_dict()  # type: ignore[attr-defined]

    async def _faults(self, req: AdminRequest) -> Any:
        if not isinstance(req.body, dict):
            raise UsageError('send a fault request as a JSON object: {"op": ...}')
        state = self.transport.faults.apply(req.body)  # type: ignore[attr-defined]
        return state.as_dict()
