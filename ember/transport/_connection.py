"""One connection to one peer node: the asyncio shell around the handshake and frame cores.

A :class:`Connection` is an :class:`asyncio.Protocol` (``transport.write`` and ``data_received``,
no stream objects: the cheapest path on uvloop). Its life:

1. ``HANDSHAKE``: bytes go to the :class:`~ember.transport._handshake.Handshake` core, whose
   ``SendBytes`` events are written; ``handshake_timeout`` bounds this phase and the next.
2. Verdict. The acceptor, once the initiator has proved itself, asks its owner whether to keep
   the connection (one connection per node pair; see the simultaneous-connect rule in
   ``_transport.py``) and sends a STATUS message, ``{"type": "status", "status": s}`` on
   CONTROL, where ``s`` is ``"ok"``, ``"nok"`` (another connection between the two nodes wins),
   ``"alive"`` (the node is already connected) or ``"closing"``. The initiator waits for it in
   ``AWAIT_STATUS`` and sends nothing meanwhile; a REJECT from the handshake core (its proof was
   refused) may come instead. Only ``"ok"`` opens the connection, so no frame is ever written to
   a connection that is then thrown away.
3. ``OPEN``: bytes go to a :class:`~ember.transport._frame.FrameDecoder`, and every batch of
   frames one ``data_received`` completes goes to ``on_frames`` in one call. The owner attaches
   the peer's :class:`~ember.transport._queue.Outbox`, which drains into :meth:`write_frames`.
   Heartbeats run; an empty CONTROL frame is a heartbeat and is never delivered.
4. ``CLOSED``: after ``connection_lost``; the owner is told once, with the reason.

Heartbeats: one timer per open connection ticks every ``min(interval, timeout) / 2``. A tick
writes a heartbeat if nothing was written for ``heartbeat_interval``, and aborts the connection
if nothing at all was received for ``heartbeat_timeout`` (any byte counts). A tick that fires
more than a period late (this loop was blocked, so the peer's bytes may be sitting unread in the
socket) does not judge the peer; the next tick does.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Literal, Protocol, cast

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError
from .._ratelog import RateLimitedLog
from ._admission import Admit, Refuse
from ._config import TransportConfig
from ._errors import AuthenticationError, ProtocolError
from ._frame import Channel, Frame, FrameDecoder, FrameRun, encode_frame
from ._handshake import (
    TRANSIENT_KINDS,
    Established,
    Handshake,
    HandshakeState,
    SendBytes,
    reject_frame,
    rejection_error,
)
from ._interface import OnFrames, guarded_call
from ._queue import Outbox
from ._stats import ChannelTraffic, TransportStats
from ._tls import peer_node_name

__all__ = [
    "HEARTBEAT",
    "Connection",
    "ConnectionOwner",
    "ConnectionState",
    "HandshakeTimeout",
    "PeerRefused",
    "Status",
]

log = logging.getLogger("ember.transport")

Status = Literal["ok", "nok", "alive", "closing"]
"""The acceptor's verdict on a connection whose handshake succeeded."""
_STATUSES = frozenset({"ok", "nok", "alive", "closing"})

HEARTBEAT = encode_frame(Channel.CONTROL, b"")
"""A heartbeat on the wire: an empty CONTROL frame (never valid msgpack, so never a message)."""
_HEARTBEAT_FRAME = Frame(Channel.CONTROL, b"")


class HandshakeTimeout(EmberError, TimeoutError):
    """A connection did not finish its handshake within ``handshake_timeout``."""


class PeerRefused(EmberError):
    """The acceptor completed the handshake but refused the connection; ``status`` says why."""

    def __init__(self, peer: str, status: str) -> None:
        super().__init__(f"node {peer!r} refused the connection: {status}")
        self.peer = peer
        self.status = status

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.peer, self.status))


class ConnectionState(enum.Enum):
    """Where a :class:`Connection` is."""

    HANDSHAKE = "handshake"
    AWAIT_STATUS = "await_status"
    OPEN = "open"
    CLOSED = "closed"


_HANDSHAKE = ConnectionState.HANDSHAKE
_AWAIT_STATUS = ConnectionState.AWAIT_STATUS
_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED


class ConnectionOwner(Protocol):
    """What a connection reports to (the transport). Called from the loop; must not block."""

    def connection_accepting(self, conn: Connection) -> Admit[Connection] | Refuse | None:
        """An inbound TCP connection arrived: may its handshake start? ``Admit`` (paced if
        ``suspect``), ``Refuse`` (the peer is told why), or None (just close: shutting down)."""
        ...

    def connection_spoke(self, conn: Connection) -> None:
        """Acceptor: the peer's first handshake message was complete and valid."""
        ...

    def connection_verdict(self, conn: Connection, peer: Established) -> Status:
        """Acceptor: the initiator proved itself; keep the connection (``"ok"``) or refuse it."""
        ...

    def connection_open(self, conn: Connection) -> None:
        """The connection may carry traffic: attach its outbox, report the node up."""
        ...

    def connection_closed(
        self, conn: Connection, reason: str, error: BaseException | None, was_open: bool
    ) -> None:
        """The connection is gone (called once); ``error`` is what ended it, if anything did."""
        ...


def _status_frame(status: Status) -> bytes:
    return encode_frame(
        Channel.CONTROL, msgpack.packb({"type": "status", "status": status}, use_bin_type=True)
    )


def _parse_status(payload: bytes) -> str:
    """The status in the acceptor's first frame; raise for a REJECT or anything else."""
    try:
        msg = msgpack.unpackb(payload, raw=False)
    except Exception as exc:
        raise ProtocolError("bad_msgpack", f"status message: {exc}") from exc
    if msg.__class__ is dict:
        kind = msg.get("type")
        if kind == "status" and msg.get("status") in _STATUSES:
            status: str = msg["status"]
            return status
        if kind == "reject":
            raise rejection_error(msg)
    raise ProtocolError("handshake", "expected a status message after the handshake")


class Connection(asyncio.Protocol):
    """One connection to one peer; see the module docstring for its life.

    Built by its owner for ``loop.create_server`` / ``loop.create_connection``. The initiator's
    :attr:`ready` future resolves when the connection opens, or fails with the reason it did not
    (:class:`~ember.transport.ProtocolError`, :class:`PeerRefused`, :class:`HandshakeTimeout` or
    :class:`ConnectionError`).
    """

    def __init__(
        self,
        owner: ConnectionOwner,
        handshake: Handshake,
        *,
        config: TransportConfig,
        stats: TransportStats,
        traffic: ChannelTraffic,
        on_frames: OnFrames,
        loop: asyncio.AbstractEventLoop,
        warnings: RateLimitedLog,
    ) -> None:
        self.role = handshake.role
        self.local_name = handshake.node_name
        """This node's name, for logs."""
        self.state = _HANDSHAKE
        self.peer_name: str = handshake.expected_peer or ""
        """Who is on the other side: the dialled name for an initiator (``""`` for an acceptor
        until the handshake names the peer), then the proven name."""
        self.peer_creation: int | None = None
        self.peer_max_frame_size: int | None = None
        """The largest frame the peer accepts, once its handshake said."""
        self.remote = "?"
        """The remote address as ``host:port``, for logs."""
        self.remote_host = "?"
        """The remote IP, the key of the failed-handshake limiter."""
        self.outbox: Outbox | None = None
        """The outbox draining into this connection, set by the owner while open."""
        self.paused = False
        """True while the OS write buffer is over its high-water mark."""
        self.ready: asyncio.Future[None] | None = (
            loop.create_future() if handshake.role == "initiator" else None
        )
        self._owner = owner
        self._handshake = handshake
        self._config = config
        self._stats = stats
        self._traffic = traffic
        self._on_frames = on_frames
        self._loop = loop
        self._warnings = warnings
        self._spoke = False
        self._hold_until = 0.0  # a suspect peer's answers wait until then
        self._held: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        # Counts what it decodes into its own lists until the connection opens (the status
        # message is the handshake's), then into the transport's.
        self._decoder = FrameDecoder(config.max_frame_size)
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._reason: str | None = None
        self._error: BaseException | None = None
        self._closing = False  # close() or abort() was called; connection_lost is on its way
        # Heartbeat bookkeeping: flags set on the hot paths, read by the timer.
        self._heard = False
        self._wrote = False
        self._period = min(config.heartbeat_interval, config.heartbeat_timeout) / 2
        self._due = 0.0
        self._last_rx = 0.0
        self._last_tx = 0.0
        self._skipped = False

    @property
    def claimed_peer(self) -> str | None:
        """Who the peer says it is, once its greeting arrived (proven only once open)."""
        return self.peer_name or self._handshake.claimed_peer

    def __repr__(self) -> str:
        return (
            f"<Connection {self.local_name}->{self.peer_name or '?'} {self.role} {self.remote} "
            f"{self.state.value}>"
        )

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            self.remote_host = str(peername[0])
            self.remote = f"{peername[0]}:{peername[1]}"
        high = self._config.write_buffer_high
        transport.set_write_buffer_limits(high=high, low=high // 4)
        if self.role == "acceptor":
            verdict = self._owner.connection_accepting(self)
            if verdict.__class__ is not Admit:
                self._reason = "refused"
                self._closing = True
                if isinstance(verdict, Refuse):
                    transport.write(reject_frame(verdict.kind, verdict.detail))
                    transport.close()
                else:
                    transport.abort()
                return
            assert isinstance(verdict, Admit)
            if verdict.suspect:
                self._hold_until = self._loop.time() + self._config.suspect_delay
        self._timer = self._loop.call_later(self._config.handshake_timeout, self._handshake_expired)
        if self.role == "initiator":
            transport.write(self._handshake.initiate())

    def data_received(self, data: bytes) -> None:
        self._heard = True
        if self.state is not _OPEN:
            self._data_before_open(data)
            return
        try:
            frames = self._decoder.feed_runs(data)  # counts them, by channel
        except ProtocolError as exc:
            self._fail(exc)
            return
        if frames:
            self._deliver(frames)

    def eof_received(self) -> bool | None:
        self._reason = self._reason or "peer_closed"
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        was_open = self.state is _OPEN
        self.state = _CLOSED
        self.paused = False
        for timer in (self._timer, self._linger):
            if timer is not None:
                timer.cancel()
        self._timer = self._linger = None
        reason = self._reason or "connection_lost"
        error = self._error
        if error is None and exc is not None:
            error = exc
        if not was_open and self._reason is None:
            self._stats.handshake_failures += 1
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(
                error if error is not None else ConnectionResetError(f"connection {reason}")
            )
        self._owner.connection_closed(self, reason, error, was_open)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.outbox is not None:
            self.outbox.schedule()

    # -- the outbox's writer ------------------------------------------------------------------

    def write_frames(self, parts: list[bytes], frames: int, nbytes: int) -> bool:
        """Write a batch of frames (alternating headers and payloads) in one ``write``; False
        if the connection is going down (they are counted as dropped, the outbox keeps no
        count of them as sent)."""
        transport = self._transport
        if transport is None or self.state is not _OPEN or self._closing:
            self._stats.dropped_disconnected += frames  # the connection is going down
            return False
        transport.write(b"".join(parts))
        self._wrote = True
        self._stats.writes += 1
        return True

    # -- closing ------------------------------------------------------------------------------

    def close(self, reason: str = "closed") -> None:
        """Close gracefully: what is buffered is written first (for at most a handshake timeout)."""
        if self.state is _CLOSED or self._transport is None:
            return
        self._reason = self._reason or reason
        self._closing = True
        self._transport.close()
        if self._linger is None:
            self._linger = self._loop.call_later(self._config.handshake_timeout, self.abort)

    def refuse(self, kind: str, detail: str, reason: str = "refused") -> None:
        """Refuse a connection still in its handshake: tell the peer why, then close."""
        if self.state is _CLOSED or self._transport is None:
            return
        if self.state is _HANDSHAKE:
            self._transport.write(reject_frame(kind, detail))
        self._reason = self._reason or reason
        self.close()

    def abort(self, reason: str = "aborted") -> None:
        """Close at once, discarding what is buffered."""
        if self.state is _CLOSED or self._transport is None:
            return
        self._reason = self._reason or reason
        self._closing = True
        self._transport.abort()

    # -- internals ----------------------------------------------------------------------------

    def _deliver(self, frames: list[Frame | FrameRun]) -> None:
        if _HEARTBEAT_FRAME in frames:
            frames = [frame for frame in frames if frame != _HEARTBEAT_FRAME]
            if not frames:
                return
        guarded_call(self._stats, self, self._on_frames, self.peer_name, frames)

    def _data_before_open(self, data: bytes) -> None:
        if self.state is _HANDSHAKE:
            try:
                events = self._handshake.receive_data(data)
            except ProtocolError as exc:
                self._fail(exc)
                return
            if not self._spoke and self._handshake.state is not HandshakeState.AWAIT_HELLO:
                self._spoke = True
                if self.role == "acceptor":
                    self._owner.connection_spoke(self)
                    if self._closing:  # the owner refused who it claims to be
                        return
            transport = self._transport
            assert transport is not None
            for event in events:
                if isinstance(event, SendBytes):
                    if self._hold_until:
                        self._hold(event.data)
                    else:
                        transport.write(event.data)
                else:
                    self._established(event)
        elif self.state is _AWAIT_STATUS:
            self._await_status(data)

    def _hold(self, data: bytes) -> None:
        """Pace a suspect peer: write ``data`` at ``_hold_until``, not now."""
        if not self._held:
            self._loop.call_at(self._hold_until, self._release)
        self._held.append(data)

    def _release(self) -> None:
        self._hold_until = 0.0
        held, self._held = self._held, []
        if self.state is _HANDSHAKE and not self._closing and self._transport is not None:
            self._transport.write(b"".join(held))

    def _established(self, peer: Established) -> None:
        ssl_object = (
            self._transport.get_extra_info("ssl_object") if self._transport is not None else None
        )
        if ssl_object is not None:
            # Under TLS the certificate must name the node the handshake speaks for: else one
            # node's certificate could be used to pose as another node of the cluster.
            certified = peer_node_name(ssl_object)
            if certified != peer.peer_name:
                self._fail(
                    AuthenticationError(
                        "auth",
                        f"TLS certificate is for {certified!r}, handshake says {peer.peer_name!r}",
                    )
                )
                return
        self.peer_name = peer.peer_name
        self.peer_creation = peer.peer_creation
        self.peer_max_frame_size = peer.peer_max_frame_size
        trailing = self._handshake.trailing_data
        if self.role == "initiator":
            self.state = _AWAIT_STATUS
            if trailing:
                self._await_status(trailing)
            return
        status = self._owner.connection_verdict(self, peer)
        assert self._transport is not None
        self._transport.write(_status_frame(status))
        if status != "ok":
            self._reason = f"refused_{status}"
            self.close()
            return
        self._open()
        if trailing and self.state is _OPEN:
            self.data_received(trailing)

    def _await_status(self, data: bytes) -> None:
        decoder = self._decoder
        try:
            decoder.add_data(data)
            first = decoder.next_frame()  # the status alone: what follows is counted once open
            if first is None:
                return
            if first[0] is not Channel.CONTROL:
                raise ProtocolError("handshake", "expected a status message after the handshake")
            status = _parse_status(first[1])
        except ProtocolError as exc:
            self._fail(exc)
            return
        if status != "ok":
            self._error = PeerRefused(self.peer_name, status)
            self._reason = f"refused_{status}"
            self.close()
            return
        self._open()
        if decoder.buffered and self.state is _OPEN:
            self.data_received(b"")  # the frames that came with the status

    def _open(self) -> None:
        self.state = _OPEN
        traffic = self._traffic
        self._decoder.count_into(traffic.frames_received, traffic.bytes_received)
        if self._timer is not None:
            self._timer.cancel()
        now = self._loop.time()
        self._last_rx = self._last_tx = now
        self._due = now + self._period
        self._timer = self._loop.call_at(self._due, self._tick)
        if self.role == "initiator":
            self._stats.connections_initiated += 1
        else:
            self._stats.connections_accepted += 1
        self._owner.connection_open(self)
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    def _tick(self) -> None:
        if self.state is not _OPEN or self._closing:
            return
        loop = self._loop
        now = loop.time()
        late = now - self._due > self._period
        self._due = now + self._period
        self._timer = loop.call_at(self._due, self._tick)
        config = self._config
        if self._heard:
            self._heard = False
            self._last_rx = now
            self._skipped = False
        elif now - self._last_rx >= config.heartbeat_timeout:
            if late and not self._skipped:
                # This loop was blocked: the peer's bytes may be unread in the socket. Look again
                # after the loop has polled for I/O.
                self._skipped = True
            else:
                self._stats.heartbeat_timeouts += 1
                log.warning(
                    "%s: node %r silent for %.3fs: declaring it down",
                    self.local_name,
                    self.peer_name,
                    now - self._last_rx,
                )
                self.abort("heartbeat_timeout")
                return
        if self._wrote:
            self._wrote = False
            self._last_tx = now
        elif now - self._last_tx >= config.heartbeat_interval and not self.paused:
            self._send_heartbeat()
            self._last_tx = now
            stats, traffic = self._stats, self._traffic
            stats.heartbeats_sent += 1
            stats.writes += 1
            traffic.frames_sent[Channel.CONTROL] += 1
            traffic.bytes_sent[Channel.CONTROL] += len(HEARTBEAT)

    def _send_heartbeat(self) -> None:
        assert self._transport is not None
        self._transport.write(HEARTBEAT)

    def _handshake_expired(self) -> None:
        self._timer = None
        if self.state in (_HANDSHAKE, _AWAIT_STATUS):
            self._stats.handshake_timeouts += 1
            self._stats.handshake_failures += 1
            self._error = HandshakeTimeout(
                f"handshake with {self.peer_name or self.remote} took over "
                f"{self._config.handshake_timeout}s"
            )
            self._warnings.emit(("handshake_timeout", self.role), "%r: %s", self, self._error)
            self._reason = "handshake_timeout"
            self.abort()

    def _fail(self, error: ProtocolError) -> None:
        """The peer broke the protocol: count, log, tell it why if still handshaking, close.
        A transient refusal (``busy``, ``rate_limited``) is no fault: it becomes
        :class:`PeerRefused`, which the dialler retries."""
        if error.kind in TRANSIENT_KINDS and self.role == "initiator":
            self._stats.refused_by_peer += 1
            why = error.detail.removeprefix("rejected by peer: ")
            self._error = PeerRefused(self.peer_name, f"{error.kind}: {why}")
            self._reason = f"refused_{error.kind}"
            self.abort()
            return
        self._stats.protocol_errors[error.kind] += 1
        if self.state is not _OPEN:
            self._stats.handshake_failures += 1
        self._error = error
        self._reason = f"protocol_error:{error.kind}"
        self._warnings.emit(("protocol_error", error.kind, self.role), "%r closed: %s", self, error)
        rejection = self._handshake.rejection
        if self.state is _HANDSHAKE and rejection is not None and self._transport is not None:
            self._transport.write(rejection)
            self.close()
        else:
            self.abort()
