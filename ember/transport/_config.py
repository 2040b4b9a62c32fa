"""Configuration of a transport: queue limits, timing, backoff and rate limits.

:class:`TransportConfig` is a frozen, keyword-only dataclass. Every field is documented where it is
declared, defaults are filled in one place (the field defaults, which are the LAN profile), and
``__post_init__`` refuses values that cannot work. Three named profiles tune it for where the
nodes run: :meth:`TransportConfig.local`, :meth:`TransportConfig.lan` and
:meth:`TransportConfig.wan`; each takes field overrides as keywords.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from .._checks import check_int, check_positive
from .._errors import UsageError
from ._frame import DEFAULT_MAX_FRAME_SIZE, HEADER_SIZE, MAX_FRAME_SIZE, Channel

__all__ = ["ChannelPolicy", "Overflow", "TransportConfig"]

Overflow = Literal["reject", "drop_oldest", "drop_newest"]
"""What a full channel queue does with one more frame.

- ``"reject"``: refuse it: :meth:`~ember.transport.Transport.send` raises
  :class:`~ember.transport.QueueFull` and ``send_wait`` waits for room;
- ``"drop_oldest"``: make room by dropping the oldest queued frames (for replaceable traffic);
- ``"drop_newest"``: drop the new frame.

Every refusal and drop is counted in :class:`~ember.transport.TransportStats`.
"""

_OVERFLOWS = ("reject", "drop_oldest", "drop_newest")


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelPolicy:
    """The bound on one channel's outgoing queue to one peer, and what happens past it."""

    max_frames: int
    """Most frames queued on this channel for one peer, waiting to be written (at least 1)."""
    max_bytes: int
    """Most bytes (headers included) queued on this channel for one peer. It must hold one frame
    of the configured ``max_frame_size``, or a frame that size could never be sent."""
    overflow: Overflow
    """What a full queue does with one more frame; see :data:`Overflow`."""

    def __post_init__(self) -> None:
        if self.max_frames.__class__ is not int or self.max_frames < 1:
            raise UsageError(f"max_frames must be an int >= 1, not {self.max_frames!r}")
        if self.max_bytes.__class__ is not int or self.max_bytes < 1:
            raise UsageError(f"max_bytes must be an int >= 1, not {self.max_bytes!r}")
        if self.overflow not in _OVERFLOWS:
            raise UsageError(f"overflow must be one of {_OVERFLOWS}, not {self.overflow!r}")


_MiB = 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class TransportConfig:
    """How a transport bounds its queues, times its peers and paces its retries.

    The defaults are the LAN profile (:meth:`lan`). Times are in seconds of the loop's clock.
    """

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest frame (channel byte plus payload) sent or accepted: 8 MiB. A peer that declares a
    larger one is cut off with ``ProtocolError("oversized")``; sending a larger payload raises
    :class:`~ember.transport.FrameTooLarge`. Bounds what one connection buffers for one frame."""

    control_queue: ChannelPolicy = field(
        default_factory=lambda: ChannelPolicy(
            max_frames=8192, max_bytes=16 * _MiB, overflow="drop_oldest"
        )
    )
    """CONTROL: link, monitor and exit signals. Drop-oldest, as DESIGN.md says, so a flood of
    signals never blocks a sender; 8192 frames is far beyond any sane burst, so a drop here means
    a peer is not reading, and it is counted."""
    user_queue: ChannelPolicy = field(
        default_factory=lambda: ChannelPolicy(
            max_frames=65536, max_bytes=64 * _MiB, overflow="reject"
        )
    )
    """USER: messages between processes. Rejects when full (``send`` raises
    :class:`~ember.transport.QueueFull`, ``send_wait`` waits), so a sender learns about a slow
    peer instead of losing messages. 65536 frames holds several loop iterations of a fast
    producer, so coalescing never starves for lack of queue."""
    raft_queue: ChannelPolicy = field(
        default_factory=lambda: ChannelPolicy(
            max_frames=8192, max_bytes=64 * _MiB, overflow="reject"
        )
    )
    """RAFT: consensus traffic. Rejects: Raft retries on its own schedule and must know."""
    membership_queue: ChannelPolicy = field(
        default_factory=lambda: ChannelPolicy(
            max_frames=1024, max_bytes=16 * _MiB, overflow="drop_oldest"
        )
    )
    """MEMBERSHIP: state syncs and fallback probes; a newer one supersedes an older one."""
    registry_queue: ChannelPolicy = field(
        default_factory=lambda: ChannelPolicy(
            max_frames=8192, max_bytes=32 * _MiB, overflow="reject"
        )
    )
    """REGISTRY: global name traffic. Rejects, so the registry can retry or report."""
    pg_queue: ChannelPolicy = field(
        default_factory=lambda: ChannelPolicy(
            max_frames=8192, max_bytes=32 * _MiB, overflow="reject"
        )
    )
    """PG: process group traffic. Rejects, so pg can fall back to a full resync."""
    admin_queue: ChannelPolicy = field(
        default_factory=lambda: ChannelPolicy(
            max_frames=256, max_bytes=16 * _MiB, overflow="reject"
        )
    )
    """ADMIN: operators' requests (fault injection) and replies: few and small."""

    write_buffer_high: int = 1 * _MiB
    """Bytes the OS-facing write buffer of one connection may hold before the connection stops
    draining its queues (asyncio's ``pause_writing``); it resumes below a quarter of this. Beyond
    it the channel queues fill and their policies apply, so a slow peer costs at most about
    twice its queue limits plus this (a flush hands all that is queued to the buffer at once).
    1 MiB keeps a LAN link busy without holding much."""

    heartbeat_interval: float = 1.0
    """A connection that has written nothing for this long writes a heartbeat (an empty CONTROL
    frame), so the peer always hears from a live node at least this often."""
    heartbeat_timeout: float = 3.0
    """A peer silent this long (no byte received: any byte counts) is declared down and its
    connection aborted. At least twice ``heartbeat_interval``, so one late heartbeat is not a
    failure; a peer stalled for this long is as good as dead to its callers."""

    handshake_timeout: float = 5.0
    """Longest a new connection may take from TCP (or TLS) establishment to carrying traffic:
    the handshake and the acceptor's verdict. Bounds what a silent stranger costs."""
    connect_timeout: float = 5.0
    """Longest one TCP connect attempt may take before it counts as failed and is retried."""
    max_pending_handshakes: int = 64
    """Most inbound connections in their handshake at once. When that many are pending, a new
    one evicts the oldest that has not sent a complete first message yet (``evicted_silent``);
    only if all of them have spoken is it refused (``refused_busy``, and the peer is told
    ``"busy"``). So sockets that connect and say nothing cannot lock a correct peer out."""
    silent_handshake_timeout: float = 1.0
    """While half of ``max_pending_handshakes`` or more are in use, an inbound connection that
    has not sent its first handshake message within this long is closed at the next arrival,
    instead of holding its slot for the whole ``handshake_timeout`` (a value above that acts as
    ``handshake_timeout``). A correct peer speaks within one round trip of connecting."""

    connect_backoff_initial: float = 0.05
    """Wait before the second attempt to reach a peer; it doubles after each failed attempt."""
    connect_backoff_max: float = 2.0
    """The most the wait between attempts grows to."""
    connect_backoff_jitter: float = 0.2
    """Each wait is scaled by a random factor in ``[1 - jitter, 1 + jitter]`` (0 <= jitter < 1), so
    nodes that lost a peer together do not redial it in lockstep."""
    unreachable_timeout: float = 10.0
    """Frames queued for a peer that could not be reached for this long are discarded (counted
    as ``dropped_unreachable``) and dialling stops until the next send or ``connect``: a send to a
    dead node must not hold queue space for ever."""

    handshake_failure_limit: int = 5
    """How many failed handshakes (wrong cookie or cluster, protocol errors, timeouts, silence)
    from one remote address (IP) are tolerated within ``handshake_failure_window``. Past it the
    address is *suspect*: it is never refused for its address alone (a peer that proves the
    cookie gets in: every client on one host, or behind one NAT, shares an address), but it may
    run only ``suspect_pending_handshakes`` handshakes at once (more are refused as
    ``rate_limited``) and its handshakes are answered after ``suspect_delay``."""
    handshake_failure_window: float = 60.0
    """The sliding window, in seconds, over which failed handshakes are counted."""
    suspect_pending_handshakes: int = 4
    """Most handshakes a suspect address may have in progress at once."""
    suspect_delay: float = 0.05
    """How long the acceptor waits before answering a suspect address's first handshake message:
    a peer retrying a failing handshake in a loop is held to about
    ``suspect_pending_handshakes / suspect_delay`` attempts a second (80), and a correct peer on
    that address pays it once."""

    send_wait_window: int = 256
    """Messages one node may have sent with ``send_wait`` to one remote process and not yet
    seen taken into its mailbox; past it ``send_wait`` waits for the receiver's credit. The
    receiver's mailbox holds at most its bound plus this per sending node. 256 keeps a fast
    consumer busy across a LAN round trip without letting a slow one pile up much."""

    fault_injection: bool = False
    """Accept fault injection (drop, delay, partition; see ``_faults.py``): for testing only
    (``ember node start --chaos``). Off, the hook costs nothing and every request to use it
    raises :class:`~ember.transport.FaultInjectionDisabled`."""

    warning_interval: float = 10.0
    """Warnings that can repeat without bound (refused connections, failed handshakes, a peer
    refusing us) are written at most once per kind per this many seconds, then once more with
    the count of those held back (see ``ember._ratelog``)."""

    def __post_init__(self) -> None:
        check_int("max_frame_size", self.max_frame_size, 1, MAX_FRAME_SIZE)
        for channel in Channel:
            policy = self.policy(channel)
            if not isinstance(policy, ChannelPolicy):
                raise UsageError(f"{_QUEUE_FIELDS[channel]} must be a ChannelPolicy")
            if policy.max_bytes < self.max_frame_size + HEADER_SIZE - 1:
                raise UsageError(
                    f"{_QUEUE_FIELDS[channel]}.max_bytes ({policy.max_bytes}) cannot hold one "
                    f"frame of max_frame_size ({self.max_frame_size})"
                )
        check_int("write_buffer_high", self.write_buffer_high, 4, 1 << 40)
        if self.fault_injection.__class__ is not bool:
            raise UsageError(f"fault_injection must be a bool, not {self.fault_injection!r}")
        check_int("max_pending_handshakes", self.max_pending_handshakes, 1, 1 << 20)
        check_int("handshake_failure_limit", self.handshake_failure_limit, 1, 1 << 20)
        check_int("suspect_pending_handshakes", self.suspect_pending_handshakes, 1, 1 << 20)
        check_int("send_wait_window", self.send_wait_window, 1, 1 << 24)
        for name in (
            "heartbeat_interval",
            "heartbeat_timeout",
            "handshake_timeout",
            "connect_timeout",
            "connect_backoff_initial",
            "connect_backoff_max",
            "unreachable_timeout",
            "handshake_failure_window",
            "silent_handshake_timeout",
            "warning_interval",
        ):
            check_positive(name, getattr(self, name))
        if self.heartbeat_timeout < 2 * self.heartbeat_interval:
            raise UsageError(
                f"heartbeat_timeout ({self.heartbeat_timeout}) must be at least twice "
                f"heartbeat_interval ({self.heartbeat_interval})"
            )
        delay = self.suspect_delay
        if delay.__class__ not in (int, float) or not 0 <= delay < self.handshake_timeout:
            raise UsageError(f"suspect_delay must be in [0, handshake_timeout), not {delay!r}")
        if self.connect_backoff_max < self.connect_backoff_initial:
            raise UsageError("connect_backoff_max must be >= connect_backoff_initial")
        jitter = self.connect_backoff_jitter
        if jitter.__class__ not in (int, float) or not 0 <= jitter < 1:
            raise UsageError(f"connect_backoff_jitter must be in [0, 1), not {jitter!r}")

    def policy(self, channel: Channel) -> ChannelPolicy:
        """The queue policy of ``channel``."""
        policy: ChannelPolicy = getattr(self, _QUEUE_FIELDS[channel])
        return policy

    @classmethod
    def local(cls, **overrides: Any) -> Self:
        """Nodes on one machine (tests, ``ember cluster up``): fast failure detection and retries.

        Heartbeat 0.25 s / timeout 1 s (loopback has no jitter worth the name), handshake 2 s,
        silence under pressure 0.5 s, backoff 10 ms to 0.5 s, and a lenient failure limit (100
        a minute) since every test client shares 127.0.0.1.
        """
        base: dict[str, Any] = {
            "heartbeat_interval": 0.25,
            "heartbeat_timeout": 1.0,
            "handshake_timeout": 2.0,
            "silent_handshake_timeout": 0.5,
            "connect_timeout": 2.0,
            "connect_backoff_initial": 0.01,
            "connect_backoff_max": 0.5,
            "unreachable_timeout": 5.0,
            "handshake_failure_limit": 100,
        }
        return cls(**(base | overrides))

    @classmethod
    def lan(cls, **overrides: Any) -> Self:
        """Nodes in one data centre: the field defaults (heartbeat 1 s / timeout 3 s)."""
        return cls(**overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> Self:
        """Nodes across regions: longer timeouts for tens to hundreds of ms RTT and lossy paths.

        Heartbeat 2 s / timeout 10 s (a few lost segments and their retransmits must not look
        like a dead node), handshake and connect 15 s (silence under pressure 3 s, a few
        round trips), backoff 0.2 s to 10 s with 30 % jitter,
        a 4 MiB write buffer to cover a larger bandwidth-delay product, 60 s before queued
        frames for an unreachable peer are dropped.
        """
        base: dict[str, Any] = {
            "write_buffer_high": 4 * _MiB,
            "heartbeat_interval": 2.0,
            "heartbeat_timeout": 10.0,
            "handshake_timeout": 15.0,
            "silent_handshake_timeout": 3.0,
            "connect_timeout": 15.0,
            "connect_backoff_initial": 0.2,
            "connect_backoff_max": 10.0,
            "connect_backoff_jitter": 0.3,
            "unreachable_timeout": 60.0,
        }
        return cls(**(base | overrides))

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


_QUEUE_FIELDS: dict[Channel, str] = {
    Channel.CONTROL: "control_queue",
    Channel.USER: "user_queue",
    Channel.RAFT: "raft_queue",
    Channel.MEMBERSHIP: "membership_queue",
    Channel.REGISTRY: "registry_queue",
    Channel.PG: "pg_queue",
    Channel.ADMIN: "admin_queue",
}
