"""What the SWIM core hands back: packets to send, member events, statistics."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from ._messages import Member, Message

__all__ = [
    "MemberAlive",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberSuspect",
    "MemberUpdated",
    "Outgoing",
    "Ready",
    "SwimStatistics",
    "TransportHint",
]

TransportHint = Literal["udp", "tcp"]
"""How the shell must carry a packet: ``"udp"`` (a datagram within the packet budget) or
``"tcp"`` (push-pull and fallback probes, over the node transport's membership channel)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One packet to send: ``messages`` to ``address`` (the member ``node``, when known).

    ``size`` is the exact encoded size (``encode_packet(messages)``); for ``"udp"`` it never
    exceeds the config's ``packet_budget``. A ``"tcp"`` packet holds one message.
    """

    address: str
    messages: tuple[Message, ...]
    transport: TransportHint
    size: int
    node: str | None = None


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A change in the view: ``member`` as it is after the change, at time ``at``."""

    member: Member
    at: float

    @property
    def kind(self) -> str:
        """``"joined"``, ``"suspect"``, ``"alive"``, ``"updated"``, ``"failed"``, ``"left"``
        or ``"reaped"``."""
        return type(self).__name__.removeprefix("Member").lower()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form: ``{"event": "member", "kind": ..., "at": ..., **member}``."""
        return {"event": "member", "kind": self.kind, "at": self.at, **self.member.as_dict()}


@dataclass(frozen=True, slots=True)
class MemberJoined(MemberEvent):
    """A member is new to us, or back after it failed or left."""


@dataclass(frozen=True, slots=True)
class MemberSuspect(MemberEvent):
    """A member is suspected to have failed; it has a suspicion timeout to refute it."""


@dataclass(frozen=True, slots=True)
class MemberAlive(MemberEvent):
    """A suspected member refuted the suspicion."""


@dataclass(frozen=True, slots=True)
class MemberUpdated(MemberEvent):
    """A live member changed its metadata or address."""


@dataclass(frozen=True, slots=True)
class MemberFailed(MemberEvent):
    """A member was declared failed."""


@dataclass(frozen=True, slots=True)
class MemberLeft(MemberEvent):
    """A member left gracefully."""


@dataclass(frozen=True, slots=True)
class MemberReaped(MemberEvent):
    """A failed or left member was forgotten after its reap time."""


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything produced since the last :meth:`~ember.mesh.Swim.ready`: packets to send, in
    order, and member events, in the order they happened."""

    messages: tuple[Outgoing, ...]
    events: tuple[MemberEvent, ...]
    custom: tuple[tuple[str, bytes], ...] = ()
    """Broadcasts of layers above the mesh (``Swim.gossip``) received for the first time, as
    ``(key, data)``."""

    def __bool__(self) -> bool:
        return bool(self.messages or self.events or self.custom)


@dataclass(slots=True)
class SwimStatistics:
    """Counters of one member's protocol activity (a snapshot from ``Swim.statistics()``)."""

    probes: int = 0
    """Probe rounds started."""
    probes_failed: int = 0
    """Probes that ended with no ack at all (the target became suspect)."""
    indirect_probes: int = 0
    """Indirect ping requests sent."""
    tcp_fallbacks: int = 0
    """Fallback pings sent over TCP."""
    tcp_fallback_acks: int = 0
    """Probes rescued by the TCP fallback alone (UDP may be blocked towards that member)."""
    relayed: int = 0
    """Indirect pings we performed for others."""
    nacks_sent: int = 0
    """Nacks we sent as a relay."""
    refutations: int = 0
    """Times we refuted a suspicion or failure of ourselves."""
    suspicions: int = 0
    """Members we started suspecting."""
    failures: int = 0
    """Members we declared failed (or learnt were)."""
    push_pulls: int = 0
    """Full-state exchanges started (periodic, join, rejoin, reconnect)."""
    push_pulls_answered: int = 0
    """Full-state exchanges we answered."""
    reconnects: int = 0
    """Push-pulls sent to failed members."""
    connect_syncs: int = 0
    """Push-pulls started because a transport connection opened to a member held suspect or
    failed (:meth:`Swim.connected`)."""
    rejoins: int = 0
    """Times a lonely member re-sent its join to the seeds."""
    gossip_packets: int = 0
    """Gossip-only packets sent."""
    packets_sent: int = 0
    """Packets sent, UDP and TCP."""
    bytes_sent: int = 0
    """Bytes of those packets (the shell's overhead not included)."""
    broadcasts_oversized: int = 0
    """Gossip messages too large for any packet: not gossiped (push-pull still carries them)."""
    packets_oversized: int = 0
    """Packets not sent because their own messages exceeded the budget (names or addresses
    above the limits from a misbehaving peer)."""
    conflicts: int = 0
    """Alive messages ignored because another address holds the member's name (and may keep
    it: ours, the same incarnation or an older one, or ``reclaim_time`` not yet over)."""
    misdirected: int = 0
    """Pings for another member (a reused address) left unanswered, and pings for an earlier
    incarnation of this one at another address, answered with our alive message, not an ack."""
    custom_received: int = 0
    """Broadcasts of the layers above (``gossip``) received for the first time."""
    custom_refused: int = 0
    """Broadcasts of the layers above refused: too large for a packet, or the queue full."""

    def snapshot(self) -> SwimStatistics:
        """A copy of the counters."""
        return SwimStatistics(**{f.name: getattr(self, f.name) for f in fields(self)})
