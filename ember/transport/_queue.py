"""The outbox: one peer's bounded per-channel queues of frames waiting to be written.

An :class:`Outbox` belongs to a peer node, not to a connection, so frames queued before a
connection is established (or while a simultaneous connect is being resolved) wait there and go
out on whichever connection wins. While a connection (its *writer*) is attached, the first frame
queued in a loop iteration schedules one flush with ``loop.call_soon``; the flush drains every
channel, CONTROL first, into one list and hands it to the writer, which joins it into one write.

Also here: the errors a send can raise at the sender, before anything is queued.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import Protocol

from .._errors import EmberError
from ._config import ChannelPolicy, TransportConfig
from ._frame import Channel
from ._stats import ChannelTraffic, TransportStats

__all__ = ["FrameTooLarge", "NoRoute", "Outbox", "QueueFull", "Writer"]


EARLY_WRITE = 16
"""Frames queued on one channel that are written at once rather than at the end of the loop
iteration. Each early write in one iteration doubles the count for the next, up to
:data:`EARLY_WRITE_MAX`, so a long burst still goes out in a few large writes."""
EARLY_WRITE_MAX = 4096


class QueueFull(EmberError):
    """A channel queue with the ``reject`` policy is full: the frame was not sent.

    The peer is not reading as fast as frames are sent to it (or no connection is up yet). Retry
    later, or use ``send_wait``, which waits for room.
    """

    def __init__(self, peer: str, channel: Channel) -> None:
        super().__init__(f"the {channel.name} queue to node {peer!r} is full")
        self.peer = peer
        self.channel = channel

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.peer, self.channel))


class FrameTooLarge(EmberError, ValueError):
    """A payload does not fit in one frame: it is ``size`` bytes and ``limit`` is the
    ``max_frame_size`` of ``node`` (None: this node's own), the smaller of the two ends' limits
    (they tell each other in the handshake). Nothing was sent. ``what`` names what was too
    large (``"a frame"``, ``"the reply of <pid>"``)."""

    def __init__(
        self, size: int, limit: int, node: str | None = None, what: str = "a frame"
    ) -> None:
        whose = f" of node {node}" if node else ""
        super().__init__(
            f"{what} is too large: {size} bytes, over the max_frame_size {limit}{whose}"
        )
        self.size = size
        self.limit = limit
        self.node = node
        self.what = what

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.size, self.limit, self.node, self.what))


class NoRoute(EmberError):
    """There is no connection to the node, none being made, and no known address to dial."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"no route to node {peer!r}: not connected and no known address")
        self.peer = peer

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.peer,))


async def wait_in_line(
    waiters: deque[asyncio.Future[None]], loop: asyncio.AbstractEventLoop
) -> None:
    """Wait until whoever keeps ``waiters`` resolves the future this appends (or fails it);
    the future leaves the line however the wait ends."""
    waiter = loop.create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        if not waiter.done():
            waiter.cancel()
        try:
            waiters.remove(waiter)
        except ValueError:
            pass


class Writer(Protocol):
    """What an outbox drains into: a connection (or a simulated link)."""

    @property
    def paused(self) -> bool:
        """True while the writer's buffer is over its high-water mark: do not write."""
        ...

    def write_frames(self, parts: list[bytes], frames: int, nbytes: int) -> bool:
        """Write ``frames`` frames: ``parts`` alternates headers and payloads, ``nbytes`` long.
        Return False if they were not taken because the writer is going down (it counts them
        as ``dropped_disconnected``): the outbox then does not count them as sent."""
        ...


_HEADER = struct.Struct(">IB")
# Headers of small frames, prebuilt: _HEADERS[channel][length]. Saves a struct.pack per send.
_CACHED_LENGTHS = 512
_HEADERS: tuple[tuple[bytes, ...], ...] = tuple(
    tuple(_HEADER.pack(length, channel) for length in range(_CACHED_LENGTHS)) for channel in Channel
)


class _ChannelQueue:
    """The queue of one channel: alternating header and payload bytes, with its counts."""

    __slots__ = (
        "channel",
        "frames",
        "headers",
        "items",
        "max_bytes",
        "max_frames",
        "name",
        "nbytes",
        "overflow",
        "waiters",
    )

    def __init__(self, channel: Channel, policy: ChannelPolicy) -> None:
        self.channel = channel
        self.name = channel.name
        self.headers = _HEADERS[channel]
        self.items: deque[bytes] = deque()
        self.frames = 0
        self.nbytes = 0
        self.max_frames = policy.max_frames
        self.max_bytes = policy.max_bytes
        self.overflow = policy.overflow
        self.waiters: deque[asyncio.Future[None]] = deque()

    def has_room(self, size: int) -> bool:
        return self.frames < self.max_frames and self.nbytes + size <= self.max_bytes


class Outbox:
    """Bounded per-channel queues of frames to one peer, and the flush that drains them.

    Not thread-safe; used from its transport's event loop. ``put`` never blocks and never
    buffers beyond the channel's policy; ``put_wait`` waits for room on a ``reject`` channel.
    """

    __slots__ = (
        "_closed",
        "_early",
        "_limit_node",
        "_loop",
        "_max_frame_size",
        "_order",
        "_own_limit",
        "_queues",
        "_scheduled",
        "_stats",
        "_traffic",
        "_writer",
        "peer",
    )

    def __init__(
        self,
        peer: str,
        config: TransportConfig,
        stats: TransportStats,
        traffic: ChannelTraffic,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.peer = peer
        self._loop = loop
        self._stats = stats
        self._traffic = traffic
        self._own_limit = self._max_frame_size = config.max_frame_size
        self._limit_node: str | None = None  # whose limit _max_frame_size is (None: ours)
        # Indexed by channel number; drained in this order, so CONTROL goes out first.
        self._queues = tuple(_ChannelQueue(ch, config.policy(ch)) for ch in Channel)
        self._order = self._queues
        self._writer: Writer | None = None
        self._scheduled = False
        self._early = EARLY_WRITE
        self._closed: BaseException | None = None

    @property
    def pending(self) -> int:
        """Frames queued, on all channels."""
        return sum(q.frames for q in self._queues)

    def queued(self, channel: Channel) -> int:
        """Frames queued on ``channel``."""
        return self._queues[channel].frames

    @property
    def writer(self) -> Writer | None:
        """The connection this outbox drains into, if one is attached."""
        return self._writer

    def put(self, channel: Channel, payload: bytes) -> None:
        """Queue ``payload`` on ``channel``; raise :class:`QueueFull` if a ``reject`` queue is full.

        A ``drop_oldest`` queue drops old frames to make room, a ``drop_newest`` queue drops this
        one; both are counted. ``payload`` must not be mutated afterwards.
        """
        q = self._queues[channel]
        length = len(payload) + 1
        if length > self._max_frame_size:
            raise FrameTooLarge(length, self._max_frame_size, self._limit_node)
        size = length + 4
        if (q.frames >= q.max_frames or q.nbytes + size > q.max_bytes) and not self._overflow(
            q, size
        ):
            return
        items = q.items
        items.append(
            q.headers[length] if length < _CACHED_LENGTHS else _HEADER.pack(length, channel)
        )
        items.append(payload)
        q.frames += 1
        q.nbytes += size
        if self._writer is not None:
            if q.frames >= self._early and not self._writer.paused:
                # Enough for one good write: send it now, so the peer can start on this batch
                # while we queue the next (64 calls in flight no longer move in lockstep).
                if self._early < EARLY_WRITE_MAX:
                    self._early <<= 1
                self._flush()
            elif not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._flush_soon)

    async def put_wait(self, channel: Channel, payload: bytes) -> None:
        """Queue ``payload``, waiting for room first if ``channel`` rejects when full."""
        q = self._queues[channel]
        size = len(payload) + 5
        while self._closed is None and q.overflow == "reject" and not q.has_room(size):
            if size - 4 > self._max_frame_size:
                raise FrameTooLarge(size - 4, self._max_frame_size, self._limit_node)
            await wait_in_line(q.waiters, self._loop)
        if self._closed is not None:
            raise self._closed
        self.put(channel, payload)

    def attach(self, writer: Writer, peer_limit: int | None = None) -> None:
        """Start draining into ``writer`` (a connection that just became established).

        ``peer_limit`` is the peer's ``max_frame_size``, as its handshake said: frames above it
        are refused from now on (the peer would cut the connection off for one), and those
        already queued are dropped (counted as ``dropped_oversized``)."""
        if peer_limit is not None and peer_limit < self._own_limit:
            self._max_frame_size, self._limit_node = peer_limit, self.peer
            self._drop_oversized()
        else:
            self._max_frame_size, self._limit_node = self._own_limit, None
        self._writer = writer
        self.schedule()

    def detach(self) -> None:
        """Stop draining: the connection is gone. Queued frames stay until :meth:`discard`."""
        self._writer = None

    def _drop_oversized(self) -> None:
        limit = self._max_frame_size
        for q in self._queues:
            items = q.items
            if not any(len(payload) >= limit for payload in list(items)[1::2]):
                continue
            kept: deque[bytes] = deque()
            while items:
                header, payload = items.popleft(), items.popleft()
                if len(payload) + 1 > limit:
                    q.frames -= 1
                    q.nbytes -= len(payload) + 5
                    self._stats.dropped_oversized += 1
                else:
                    kept += (header, payload)
            q.items = kept

    def schedule(self) -> None:
        """Flush soon if there is a writer and anything to write (after ``resume_writing``)."""
        if not self._scheduled and self._writer is not None and self.pending:
            self._scheduled = True
            self._loop.call_soon(self._flush_soon)

    def flush(self) -> None:
        """Write what is queued now, without waiting for the scheduled flush (before a close)."""
        self._flush()

    def discard(self) -> int:
        """Drop every queued frame; return how many. Wakes senders waiting for room."""
        dropped = 0
        for q in self._queues:
            dropped += q.frames
            q.items.clear()
            q.frames = q.nbytes = 0
            self._wake(q)
        return dropped

    def close(self, error: BaseException) -> int:
        """Discard everything and make waiting and future ``put_wait`` calls raise ``error``."""
        self._closed = error
        self._writer = None
        for q in self._queues:
            while q.waiters:
                waiter = q.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(error)
        return self.discard()

    def _overflow(self, q: _ChannelQueue, size: int) -> bool:
        """Handle a full queue: True if the new frame may now be queued."""
        if q.overflow == "reject":
            self._stats.rejected[q.name] += 1
            raise QueueFull(self.peer, q.channel)
        if q.overflow == "drop_newest":
            self._stats.dropped_newest[q.name] += 1
            return False
        items = q.items
        dropped = 0
        while q.frames and not q.has_room(size):
            items.popleft()
            q.nbytes -= len(items.popleft()) + 5
            q.frames -= 1
            dropped += 1
        self._stats.dropped_oldest[q.name] += dropped
        return True

    def _flush_soon(self) -> None:
        """The flush at the end of a loop iteration: the next iteration starts small again."""
        self._scheduled = False
        self._early = EARLY_WRITE
        self._flush()

    def _flush(self) -> None:
        writer = self._writer
        if writer is None or writer.paused:
            return
        parts: list[bytes] = []
        drained: list[tuple[int, int, int]] = []  # (channel, frames, bytes): counted once written
        frames = nbytes = 0
        for q in self._order:
            if q.frames:
                parts += q.items
                q.items.clear()
                drained.append((q.channel, q.frames, q.nbytes))
                frames += q.frames
                nbytes += q.nbytes
                q.frames = q.nbytes = 0
                if q.waiters:
                    self._wake(q)
        if frames and writer.write_frames(parts, frames, nbytes):
            sent, sent_bytes = self._traffic.frames_sent, self._traffic.bytes_sent
            for channel, n, size in drained:
                sent[channel] += n
                sent_bytes[channel] += size

    @staticmethod
    def _wake(q: _ChannelQueue) -> None:
        for waiter in q.waiters:
            if not waiter.done():
                waiter.set_result(None)
