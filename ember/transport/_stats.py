"""Counters of a transport: what it sent, received, dropped, refused, and why connections ended."""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

from ._frame import Channel

__all__ = ["ChannelTraffic", "TransportStats"]


class ChannelTraffic:
    """Frames and bytes on the wire by channel number, both ways: the live counts the write
    path (the outboxes, heartbeats) and the read path (the frame decoders, the simulated links)
    add to, once per channel per write and once per frame or run read. Lists indexed by
    channel number, because a list increment costs a fifth of a ``Counter`` keyed by name;
    :meth:`TransportStats.snapshot` reports them by channel name."""

    __slots__ = ("bytes_received", "bytes_sent", "frames_received", "frames_sent")

    def __init__(self) -> None:
        n = len(Channel)
        self.frames_sent = [0] * n
        self.bytes_sent = [0] * n
        self.frames_received = [0] * n
        self.bytes_received = [0] * n


@dataclass(slots=True)
class TransportStats:
    """Counters of one transport (a :class:`~ember.transport.Transport` or a memory endpoint).

    :meth:`~ember.transport.Transport.statistics` returns a copy, so a snapshot does not move.
    Counters keyed by channel use the channel's name (``"USER"``); keyed by kind, the
    :class:`~ember.transport.ProtocolError` kind (``"oversized"``, ``"auth"``, ...).

    The traffic counters (``frames_*``, ``bytes_*``, by channel and in total) are kept live in
    a :class:`ChannelTraffic` and filled in by :meth:`snapshot`; each total is the sum of its
    counter by channel.
    """

    frames_sent: int = 0
    """Frames handed to the OS (or, in memory, to the simulated network), heartbeats included.
    With fault injection on, frames it then drops or holds back are counted here too (and in
    ``dropped_by_fault``), as the simulated network's losses are."""
    bytes_sent: int = 0
    """Bytes of those frames, headers included."""
    writes: int = 0
    """``transport.write`` calls: ``frames_sent / writes`` is how well writes coalesce."""
    frames_received: int = 0
    """Frames decoded after the handshake, heartbeats included."""
    bytes_received: int = 0
    """Bytes of those frames, headers included (a frame still incomplete is not counted)."""
    heartbeats_sent: int = 0
    """Heartbeat frames written because a connection had been idle (CONTROL frames, in
    ``frames_sent`` too)."""
    frames_sent_by_channel: Counter[str] = field(default_factory=Counter)
    """``frames_sent`` by channel."""
    bytes_sent_by_channel: Counter[str] = field(default_factory=Counter)
    """``bytes_sent`` by channel."""
    frames_received_by_channel: Counter[str] = field(default_factory=Counter)
    """``frames_received`` by channel."""
    bytes_received_by_channel: Counter[str] = field(default_factory=Counter)
    """``bytes_received`` by channel."""

    rejected: Counter[str] = field(default_factory=Counter)
    """Sends refused with :class:`~ember.transport.QueueFull`, by channel."""
    dropped_oldest: Counter[str] = field(default_factory=Counter)
    """Queued frames dropped to make room for newer ones (``drop_oldest``), by channel."""
    dropped_newest: Counter[str] = field(default_factory=Counter)
    """New frames dropped because their queue was full (``drop_newest``), by channel."""
    dropped_disconnected: int = 0
    """Queued frames discarded because their connection was lost (the peer was reported down)."""
    dropped_unreachable: int = 0
    """Queued frames discarded because their peer stayed unreachable for ``unreachable_timeout``."""
    dropped_by_network: int = 0
    """Frames the simulated network dropped (memory transport only: fault injection)."""
    dropped_by_fault: int = 0
    """Frames the TCP transport's fault injection dropped or held from a partitioned peer."""
    dropped_on_close: int = 0
    """Queued frames discarded because the transport was closed."""
    dropped_oversized: int = 0
    """Frames queued before a connection opened that were over the peer's ``max_frame_size``
    (learnt in the handshake), discarded rather than sent to be refused."""

    protocol_errors: Counter[str] = field(default_factory=Counter)
    """Connections closed because the peer broke the protocol, by error kind (authentication
    failures included, as ``"auth"`` and ``"cluster"``)."""
    handshake_failures: int = 0
    """Handshakes that failed for any reason (protocol error, timeout, connection lost)."""
    handshake_timeouts: int = 0
    """Connections closed because the handshake did not finish within ``handshake_timeout``."""
    rate_limited: int = 0
    """Inbound connections refused on arrival (told ``"rate_limited"``): their address is over
    its failed-handshake budget and already has ``suspect_pending_handshakes`` in progress."""
    refused_busy: int = 0
    """Inbound connections refused on arrival (told ``"busy"``): ``max_pending_handshakes`` were
    in progress and every one of them had spoken."""
    evicted_silent: int = 0
    """Inbound handshakes closed before they had sent anything, to make room for a newcomer
    (the table was full, or half full and they had been silent ``silent_handshake_timeout``)."""
    suspect_handshakes: int = 0
    """Inbound handshakes admitted from an address over its failure budget (answered after
    ``suspect_delay``)."""
    refused_by_peer: int = 0
    """Outbound attempts a peer refused for now (``busy`` or ``rate_limited``); retried."""
    refused_duplicate: int = 0
    """Inbound connections refused because their node was already connected."""
    simultaneous_connects: int = 0
    """Connection pairs resolved by the simultaneous-connect rule (counted where the loser is
    refused or abandoned)."""
    heartbeat_timeouts: int = 0
    """Connections aborted because the peer was silent for ``heartbeat_timeout``."""
    connect_failures: int = 0
    """Outbound attempts that failed before a handshake (refused, unreachable, timed out)."""
    connections_accepted: int = 0
    """Inbound connections that completed the handshake and carried traffic."""
    connections_initiated: int = 0
    """Outbound connections that completed the handshake and carried traffic."""
    connections_lost: int = 0
    """Established connections that ended for any reason other than a local close."""
    callback_errors: int = 0
    """Exceptions raised by ``on_frames``/``on_node_up``/``on_node_down`` (logged, swallowed)."""

    def snapshot(self, traffic: ChannelTraffic) -> TransportStats:
        """A deep copy that later counting does not change, with the traffic counters read
        from ``traffic``: by channel name (every channel, zeros included), and their totals."""
        snap = copy.deepcopy(self)
        for by_channel, live in (
            (snap.frames_sent_by_channel, traffic.frames_sent),
            (snap.bytes_sent_by_channel, traffic.bytes_sent),
            (snap.frames_received_by_channel, traffic.frames_received),
            (snap.bytes_received_by_channel, traffic.bytes_received),
        ):
            for ch in Channel:
                by_channel[ch.name] = live[ch]
        snap.frames_sent = sum(traffic.frames_sent)
        snap.bytes_sent = sum(traffic.bytes_sent)
        snap.frames_received = sum(traffic.frames_received)
        snap.bytes_received = sum(traffic.bytes_received)
        return snap
