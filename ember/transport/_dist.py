"""Distribution: the kernel's :class:`~ember.actors._remote.Remote` hooks over a transport.

Every process-to-process operation between two nodes — messages, calls and replies, links,
unlinks, exit signals, monitors and Downs — travels on the USER channel, so they stay in the
order one process issued them, as Erlang's signal ordering requires. Each frame is one msgpack
array whose first element is the operation code.

A message travels as ``[SEND, serial, creation, message]``: the target is a process of the
receiving node, so its pid needs no node name and no ext value (no decoding hook per message).

Frames of the other channels (RAFT, MEMBERSHIP, REGISTRY, PG) go to the handler registered for
their channel with :meth:`Distribution.add_channel_handler`; without one they are counted
(``unhandled_frames``) and dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any

import msgpack  # type: ignore[import-untyped]

from .._errors import CallTimeout, EmberError, MailboxFull, NodeDown, UsageError
from ..actors import NOCONNECTION, NOPROC, Node, Pid, Ref
from ..actors._node import CallScope, call_process, resolve_actor
from ..observability._tracing import Tracing
from ._codec import EXT_TUPLE, Codec
from ._errors import ProtocolError, UndecodableError, UnsendableError
from ._flow import FIRST as FLOW_FIRST
from ._flow import SENDW, FlowControl
from ._frame import Channel, Frame, FrameRun
from ._interface import NodeTransport, guarded_call
from ._kernel_records import register_kernel_records, spawn_allowed
from ._queue import FrameTooLarge, NoRoute, QueueFull
from ._wire_errors import ErrorCodec, wire_reason

log = logging.getLogger("ember.transport")

SEND, CALL, REPLY, LINK, UNLINK, EXIT, MONITOR, DEMONITOR, DOWN, SPAWN, NSEND = range(11)
TRACED_CALL = 11
"""``CALL`` with a fifth element, the W3C trace context: sent only for a call made inside a
trace (see ``ember.observability``), so untraced calls stay as they are."""
LINKED = 12
"""``[LINKED, linker, name, pid | None]``: the answer to a ``LINK`` to ``(name, node)``, with the
process the name named (now linked), or None."""
_SEND_HEAD = bytes([0x94, SEND])  # msgpack: an array of 4, then the fixint SEND
_SENDW_HEAD = bytes([0x94, SENDW])
PREFIX_CACHE = 10_000
_UNDECODABLE = object()
_TUPLE_MARK = msgpack.ExtType(EXT_TUPLE, b"")
_USER = Channel.USER

_REQUESTS = (CALL, SPAWN)
"""Operations that expect a REPLY: one that cannot be applied is answered with the error."""


class _RemoteCall:
    """A call in flight to another node: the caller's future and its deadline entry.
    ``answered`` sees a successful answer as it arrives, even if the caller gave up."""

    __slots__ = ("answered", "bucket", "dist", "fut", "id", "pid")

    def __init__(
        self,
        dist: Distribution,
        call_id: int,
        pid: Any,
        fut: asyncio.Future[Any],
        answered: Callable[[Any], None] | None = None,
    ):
        self.dist = dist
        self.id = call_id
        self.pid = pid
        self.fut = fut
        self.answered = answered
        self.bucket: dict[Any, float] | None = None

    def settle(self) -> asyncio.Future[Any] | None:
        self.dist._pending.pop(self.id, None)
        if self.bucket is not None:
            self.bucket.pop(self, None)
            self.bucket = None
        return None if self.fut.done() else self.fut

    def expire(self, timeout: float) -> None:
        self.bucket = None
        self.fail(CallTimeout(f"call to {self.pid} got no reply within {timeout} s"))

    def fail(self, exc: BaseException) -> None:
        fut = self.settle()
        if fut is not None:
            fut.set_exception(exc)


class Distribution:
    """Connects a kernel :class:`~ember.actors.Node` to a :class:`NodeTransport`.

    Install with :meth:`attach`; feed the transport's callbacks to :meth:`on_frames`,
    :meth:`on_node_up` and :meth:`on_node_down`. ``spawn_allow`` lists the module prefixes that
    other nodes may spawn from, as whole module names (``"app"`` allows ``app`` and ``app.x``,
    not ``apple``; ``None`` allows any importable actor); it applies to remote spawns and to
    child specs sent to this node's supervisors. A call, link, monitor
    or spawn towards a node that is not connected first dials it for up to
    ``connect_timeout`` seconds; if that fails the node counts as unreachable
    (``noconnection``).
    """

    def __init__(
        self,
        node: Node,
        transport: NodeTransport,
        codec: Codec | None = None,
        spawn_allow: tuple[str, ...] | None = None,
        connect_timeout: float = 2.0,
    ) -> None:
        self.node = node
        self.transport = transport
        self.connect_timeout = connect_timeout
        self.codec = codec if codec is not None else Codec()
        self.spawn_allow = spawn_allow
        register_kernel_records(self.codec, node.name, lambda: self.spawn_allow)
        self._pending: dict[int, _RemoteCall] = {}
        self._prefixes: dict[int, tuple[Pid, bytes]] = {}
        # Bound once: this is the per-message path.
        self._transport_send = transport.send
        self._encode = self.codec.encode
        self.codec.resolve_pid = node.local_pid
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: dict[Channel, Callable[[str, bytes], None]] = {}
        self._node_listeners: list[Callable[[str, bool], None]] = []
        self.errors = ErrorCodec()
        self.dropped = 0
        self.protocol_errors = 0
        """Operations that decoded but made no sense (logged and dropped)."""
        self.undecodable = 0
        """Messages from other nodes this node could not decode (an unregistered record type,
        say); a call or spawn among them is answered with ``UndecodableError``."""
        self.replies_failed = 0
        """Replies that could not be sent as they were (too large for a frame, or not
        encodable): the caller got the error instead."""
        self.signal_overflows = 0
        self.unhandled_frames = 0
        """Frames of a channel with no handler (dropped)."""
        config = getattr(transport, "config", None)
        self.flow = FlowControl(
            node,
            transport,
            encode=self.codec.encode,
            send_op=self._signal,
            uncache=self._prefixes.clear,
            window=config.send_wait_window if config is not None else 256,
        )
        """Back-pressure to and from other nodes' mailboxes (see ``_flow.py``)."""
        self.callback_errors = 0
        """Exceptions raised by channel handlers (logged and swallowed)."""
        self.tracing: Tracing | None = None
        """The node's tracer, when tracing is on (``ember.observability``)."""

    def statistics(self) -> dict[str, int]:
        """The distribution's counters: ``dropped`` (messages to a node with no route),
        ``protocol_errors``, ``undecodable``, ``replies_failed``, ``signal_overflows``,
        ``unhandled_frames``, ``callback_errors`` (``ember.Node.statistics()`` shows them as
        ``dist_<name>``)."""
        return {
            "dropped": self.dropped,
            "protocol_errors": self.protocol_errors,
            "undecodable": self.undecodable,
            "replies_failed": self.replies_failed,
            "signal_overflows": self.signal_overflows,
            "unhandled_frames": self.unhandled_frames,
            "callback_errors": self.callback_errors,
        }

    def attach(self) -> None:
        """Route the node's remote operations through this distribution."""
        self.node.attach_remote(self)

    def add_channel_handler(self, channel: Channel, handler: Callable[[str, bytes], None]) -> None:
        """Hand every frame that arrives on ``channel`` to ``handler(peer_name, payload)``.

        For the layers with a channel of their own (RAFT, MEMBERSHIP, REGISTRY, PG); USER and
        CONTROL belong to distribution and the transport. The handler is called from the loop,
        synchronously, in arrival order per peer, and must not block; what it raises is logged,
        counted (``callback_errors``) and swallowed. To send on the channel, use the
        transport's ``send(peer, channel, payload)``, which applies the channel's queue policy.
        """
        if channel in (Channel.USER, Channel.CONTROL):
            raise UsageError(f"channel {channel.name} is not open to handlers")
        if channel in self._handlers:
            raise UsageError(f"channel {channel.name} already has a handler")
        self._handlers[Channel(channel)] = handler

    def remove_channel_handler(self, channel: Channel) -> None:
        """Stop handing ``channel``'s frames to its handler (they are counted and dropped)."""
        self._handlers.pop(channel, None)

    def add_node_listener(self, listener: Callable[[str, bool], None]) -> Callable[[], None]:
        """Call ``listener(peer, up)`` when a connection to ``peer`` opens (``True``) or ends
        (``False``), for layers in this process (processes use ``subscribe_nodes``). Called
        from the loop like channel handlers; what it raises is logged, counted and swallowed.
        Returns a function that removes the listener."""
        self._node_listeners.append(listener)

        def remove() -> None:
            if listener in self._node_listeners:
                self._node_listeners.remove(listener)

        return remove

    async def close(self) -> None:
        """Stop pending dials; fail the calls and spawns still waiting for a reply."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in list(self._pending.values()):
            call.fail(NodeDown(call.pid))

    # -- outbound (the kernel's Remote hooks) ---------------------------------------------------

    def is_connected(self, node: str) -> bool:
        return self.transport.is_connected(node)

    def _send(self, peer: str, op: tuple[Any, ...]) -> bool:
        return self._send_payload(peer, self.codec.encode(op))  # unsendable: fails at the sender

    def _signal(self, peer: str, op: tuple[Any, ...]) -> None:
        """Send a signal (link, exit, monitor, Down, reply...). Signals are never dropped
        quietly: if the peer's queue is full, the connection is declared failed, so both sides
        see ``noconnection`` rather than a link or monitor silently broken. An exit reason that
        cannot travel (not encodable, or too large) travels as its ``repr``, cut short."""
        try:
            payload = self.codec.encode(op)
            self._signal_payload(peer, payload)
        except (UnsendableError, FrameTooLarge):
            if op[0] not in (EXIT, DOWN):
                raise
            at = (
                3 if op[0] == EXIT else 4
            )  # (EXIT, sender, target, reason, link), (DOWN, ..., reason)
            stand_in = (*op[:at], repr(op[at])[:1000], *op[at + 1 :])
            self._signal_payload(peer, self.codec.encode(stand_in))

    def _signal_payload(self, peer: str, payload: bytes) -> None:
        try:
            self._send_payload(peer, payload)
        except QueueFull:
            self.signal_overflows += 1
            log.warning("queue to %s full: dropping the connection to keep signals honest", peer)
            self.transport.disconnect(peer)

    def _send_payload(self, peer: str, payload: bytes) -> bool:
        try:
            self.transport.send(peer, Channel.USER, payload)
        except NoRoute:
            self.dropped += 1
            return False
        return True

    def send(self, sender: Pid | None, pid: Pid, msg: Any) -> None:
        # The hot path: the encoded head of the operation (a 4-element array, SEND, serial and
        # creation) is cached per destination, so only the message itself is encoded each time.
        # Keyed by the pid object (the codec hands out one object per pid it decodes), checked
        # by identity: no Pid.__hash__ per message.
        cached = self._prefixes.get(id(pid))
        if cached is None or cached[0] is not pid:
            if self.flow.full:
                self.flow.check(pid)  # its node said the mailbox is full: MailboxFull here
            cached = self._prefix(pid)
        try:
            self._transport_send(pid.node, _USER, cached[1] + self._encode(msg))
        except NoRoute:
            self.dropped += 1

    def _prefix(self, pid: Pid) -> tuple[Pid, bytes]:
        if len(self._prefixes) >= PREFIX_CACHE:
            self._prefixes.clear()
        encode = self.codec.encode
        head = _SEND_HEAD + encode(pid.serial) + encode(pid.creation)
        cached = self._prefixes[id(pid)] = (pid, head)
        return cached

    async def send_wait(self, pid: Pid, msg: Any) -> None:
        """Like ``send``, but paced by the receiver: wait for credit (room in its mailbox) and
        for room in the peer's queue instead of raising ``MailboxFull`` or ``QueueFull``."""
        encode = self.codec.encode
        head = _SENDW_HEAD + encode(pid.serial) + encode(pid.creation)
        try:
            await self.flow.send_wait(pid, msg, head)
        except NoRoute:
            self.dropped += 1

    def send_named(self, name: Any, node: str, msg: Any) -> None:
        try:
            self.transport.send(node, _USER, self.codec.encode((NSEND, name, msg)))
        except NoRoute:
            self.dropped += 1

    def call(
        self, pid: Pid | tuple[Any, str], msg: Any, timeout: float | None
    ) -> asyncio.Future[Any]:
        call_id = next(self._ids)
        node = _node_of(pid)
        traced = self.tracing.client_span(pid, node) if self.tracing is not None else None
        try:
            if traced is None:
                payload = self.codec.encode((CALL, call_id, pid, msg))
            else:
                payload = self.codec.encode((TRACED_CALL, call_id, pid, msg, traced.carrier))
        except UnsendableError as exc:  # fails right here, on the future as every call error
            if traced is not None:
                traced.fail(exc)
            loop = self.node._loop
            assert loop is not None
            failed: asyncio.Future[Any] = loop.create_future()
            failed.set_exception(exc)
            return failed
        fut = self._request(node, call_id, pid, payload, timeout)
        if traced is not None:
            fut.add_done_callback(traced.end_with)
        return fut

    def _request(
        self,
        peer: str,
        call_id: int,
        target: Any,
        payload: bytes,
        timeout: float | None,
        *,
        answered: Callable[[Any], None] | None = None,
    ) -> asyncio.Future[Any]:
        """Send a request (a call or a spawn) once ``peer`` is connected; its future settles
        with the reply, or fails with why it could not be sent. ``answered(value)`` runs when
        a successful reply arrives, before the frames after it are applied."""
        loop = self.node._loop
        assert loop is not None
        fut: asyncio.Future[Any] = loop.create_future()
        call = _RemoteCall(self, call_id, target, fut, answered)
        self._pending[call_id] = call

        def go() -> None:
            try:
                sent = self._send_payload(peer, payload)
            except (QueueFull, FrameTooLarge) as exc:
                call.fail(exc)
                return
            if not sent:
                lost()

        def lost() -> None:
            call.fail(NodeDown(target))

        self._when_connected(peer, go, lost)
        if timeout is not None and not fut.done():
            deadlines = self.node._deadlines
            assert deadlines is not None
            call.bucket = deadlines.add(call, timeout)  # type: ignore[arg-type]
        return fut

    def link(self, local: Pid, remote: Pid | tuple[Any, str]) -> None:
        node = _node_of(remote)

        def unreachable() -> None:
            if isinstance(remote, Pid):
                self.node.remote_exit(local, remote, NOCONNECTION, True)
            else:
                self.node.remote_linked(local, remote, None, NOCONNECTION)

        self._when_connected(node, lambda: self._signal(node, (LINK, local, remote)), unreachable)

    def unlink(self, local: Pid, remote: Pid | tuple[Any, str]) -> None:
        self._signal(_node_of(remote), (UNLINK, local, remote))

    def exit(self, sender: Pid | None, target: Pid, reason: Any, link: bool) -> None:
        self._signal(target.node, (EXIT, sender, target, wire_reason(reason), link))

    def monitor(self, watcher: Pid, target: Pid | tuple[Any, str], ref: Ref) -> None:
        node = _node_of(target)
        self._when_connected(
            node,
            lambda: self._signal(node, (MONITOR, watcher, target, ref)),
            lambda: self.node.remote_down(watcher, ref, target, NOCONNECTION),
        )

    def demonitor(self, ref: Ref, target: Pid | tuple[Any, str]) -> None:
        self._signal(_node_of(target), (DEMONITOR, ref, target))

    def down(self, watcher: Pid, ref: Ref, pid: Pid, reason: Any) -> None:
        self._signal(watcher.node, (DOWN, watcher, ref, pid, wire_reason(reason)))

    async def spawn(
        self,
        node: str,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: Any,
        *,
        spawner: Pid | None = None,
        link: bool = False,
        ref: Ref | None = None,
    ) -> Pid:
        call_id = next(self._ids)
        op: tuple[Any, ...] = (SPAWN, call_id, target, list(args), kwargs, name)
        answered = None
        if spawner is not None:  # spawn_link / spawn_monitor: [spawner, link, ref] travels too
            op = (*op, [spawner, link, ref])
            answered = partial(self._spawned, node, spawner, link, ref)
        payload = self.codec.encode(op)
        pid: Pid = await self._request(
            node, call_id, f"spawn@{node}", payload, None, answered=answered
        )
        return pid

    def _spawned(self, peer: str, spawner: Pid, link: bool, ref: Ref | None, child: Pid) -> None:
        """A spawn_link/spawn_monitor answered: record the spawner's side of the link or
        monitor now, before any signal of the child (they follow the answer). If the spawner
        is gone, the child gets exit ``noproc`` from the link (or loses the monitor)."""
        if self.node.remote_spawned(spawner, child, link, ref):
            return
        if link:
            self._signal(peer, (EXIT, spawner, child, NOPROC, True))
        if ref is not None:
            self._signal(peer, (DEMONITOR, ref, child))

    def _when_connected(self, peer: str, ready: Any, unreachable: Any) -> None:
        """Run ``ready()`` once ``peer`` is connected (at once, if it is), or
        ``unreachable()`` if it cannot be reached within ``connect_timeout`` (from a task)."""
        if self.transport.is_connected(peer):
            ready()
            return

        async def dial() -> None:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await self.transport.connect(peer)
            except (TimeoutError, EmberError, OSError):
                unreachable()
            else:
                ready()

        self._start(dial())

    # -- inbound --------------------------------------------------------------------------------

    def on_frames(self, peer: str, frames: Sequence[Frame | FrameRun]) -> None:
        """Transport callback: apply a batch of frames from ``peer`` in order."""
        user: list[bytes] = []  # consecutive USER frames, decoded together
        for item in frames:
            if isinstance(item, FrameRun):
                if user:
                    self._apply_ops(peer, self._decode_batch(peer, user))
                    user = []
                try:
                    ops = self.codec.decode_run(item.data, item.lengths)
                except ProtocolError:
                    ops = self._decode_batch(peer, [f.payload for f in item.frames()])
                self._apply_ops(peer, ops)
                continue
            channel, payload = item
            if channel == Channel.USER:
                user.append(payload)
                continue
            if user:
                self._apply_ops(peer, self._decode_batch(peer, user))
                user = []
            handler = self._handlers.get(channel)
            if handler is None:
                self.unhandled_frames += 1
            else:
                guarded_call(self, "channel handler", handler, peer, payload)
        if user:
            self._apply_ops(peer, self._decode_batch(peer, user))

    def _decode_batch(self, peer: str, payloads: list[bytes]) -> list[Any]:
        try:
            return self.codec.decode_batch(payloads)
        except ProtocolError:  # find the bad ones
            ops = [self._decode_one(peer, p) for p in payloads]
            return [op for op in ops if op is not _UNDECODABLE]

    def _apply_ops(self, peer: str, ops: list[Any]) -> None:
        node = self.node
        procs = node._procs
        creation = node.creation
        for op in ops:
            try:
                # The hot path, inline: a message to a live local process.
                if op[0] == SEND and op[2] == creation:
                    proc = procs.get(op[1])
                    if proc is not None:
                        proc._deliver(op[3])
                        continue
                self._apply(peer, node, op)
            except MailboxFull as exc:  # counted by the mailbox; the sender's node is told
                self.flow.refused(peer, exc.pid)
            except (TypeError, ValueError, LookupError, AttributeError) as exc:
                self.protocol_errors += 1
                log.warning("malformed operation from %s: %r", peer, exc)

    def _decode_one(self, peer: str, payload: bytes) -> Any:
        try:
            return self.codec.decode(payload)
        except ProtocolError as exc:
            self._undecodable(peer, payload, exc)
            return _UNDECODABLE

    def _undecodable(self, peer: str, payload: bytes, exc: ProtocolError) -> None:
        """A message from ``peer`` that this node cannot decode: count it, and if it was a
        request or a reply, fail its call (the head of the operation, its code and call id, is
        plain msgpack, read here without the rest)."""
        self.undecodable += 1
        n = self.undecodable
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th...: a flood costs a few lines
            log.warning("cannot decode a message from %s (%d so far): %s", peer, n, exc.detail)
        head = _head(payload)
        if head is None:
            return
        code, call_id = head
        if code in _REQUESTS:
            error: EmberError = UndecodableError(
                self.node.name, f"a request from {peer}: {exc.detail}"
            )
            if isinstance(exc.__cause__, UsageError):  # a child spec this node refuses
                error = exc.__cause__
            self._signal(peer, (REPLY, call_id, False, self.errors.to_wire(error)))
        elif code == REPLY and (call := self._pending.get(call_id)) is not None:
            call.fail(UndecodableError(self.node.name, f"the reply from {peer}: {exc.detail}"))

    def _apply(self, peer: str, node: Node, op: Any) -> None:
        code = op[0]
        if code == SEND:  # not to a live local process (see _apply_ops): counted as dropped
            node.remote_deliver(Pid(node.name, op[1], op[2]), op[3])
        elif code == CALL:
            self._serve_call(peer, op[1], op[2], op[3])
        elif code == TRACED_CALL:
            scope = self.tracing.server_scope(op[4], op[2], peer) if self.tracing else None
            self._serve_call(peer, op[1], op[2], op[3], scope)
        elif code == REPLY:
            self._settle_reply(peer, op[1], op[2], op[3])
        elif code == LINK:
            self._serve_link(peer, node, op[1], op[2])
        elif code == LINKED:
            if not node.remote_linked(op[1], (op[2], peer), op[3]):
                self._signal(peer, (EXIT, op[1], op[3], NOPROC, True))
        elif code == UNLINK:
            target = op[2]
            if target.__class__ is Pid:
                node.remote_unlink(target, op[1])
            elif (pid := _registered(node, target)) is not None:
                node.remote_unlink(pid, op[1])
                self._signal(peer, (UNLINK, pid, op[1]))  # and the linker's side
        elif code == EXIT:
            node.remote_exit(op[2], op[1], op[3], op[4])
        elif code == MONITOR:
            target = op[2]
            pid = target if target.__class__ is Pid else _registered(node, target)
            if pid is None or not node.remote_monitor(pid, op[1], op[3]):
                self._signal(peer, (DOWN, op[1], op[3], target, NOPROC))
        elif code == DEMONITOR:
            target = op[2]
            pid = target if target.__class__ is Pid else _registered(node, target)
            if pid is not None:
                node.remote_demonitor(pid, op[1])
        elif code == DOWN:
            node.remote_down(op[1], op[2], op[3], op[4])
        elif code == SPAWN:
            self._serve_spawn(peer, op)
        elif code == NSEND:
            node.remote_deliver_named(op[1], op[2])
        elif code >= FLOW_FIRST:
            self.flow.apply(peer, op)
        else:
            raise ValueError(f"unknown operation {code!r}")

    def _serve_link(self, peer: str, node: Node, linker: Pid, target: Any) -> None:
        if target.__class__ is Pid:
            if not node.remote_link(target, linker):
                self._signal(peer, (EXIT, target, linker, NOPROC, True))
            return
        # (name, this node): link to the process the name names now, and say which it is
        pid = _registered(node, target)
        if pid is not None and not node.remote_link(pid, linker):
            pid = None
        self._signal(peer, (LINKED, linker, target[0], pid))

    def _serve_call(
        self, peer: str, call_id: int, pid: Any, msg: Any, scope: CallScope | None = None
    ) -> None:
        fut = call_process(self.node, pid, msg, None, scope)
        if fut.done():  # answered eagerly: reply now, not one loop iteration later
            self._reply(peer, call_id, fut, pid)
        else:
            fut.add_done_callback(lambda f: self._reply(peer, call_id, f, pid))

    def _reply(self, peer: str, call_id: int, fut: asyncio.Future[Any], target: Any) -> None:
        """Answer request ``call_id`` of ``peer`` with the outcome of ``fut``."""
        if fut.cancelled():
            exc: BaseException | None = asyncio.CancelledError(
                f"the request to {target} was cancelled"
            )
        else:
            exc = fut.exception()
        self._answer(peer, call_id, target, exc, None if exc is not None else fut.result())

    def _answer(
        self, peer: str, call_id: int, target: Any, exc: BaseException | None, value: Any
    ) -> None:
        """Answer request ``call_id`` of ``peer`` with ``value``, or with the error ``exc``. A
        reply that cannot be sent as it is (not encodable, too large for a frame) fails the
        caller's call with that error instead, and is logged here once."""
        try:
            if exc is None:
                payload = self.codec.encode((REPLY, call_id, True, value))
            else:
                payload = self._error_reply(call_id, exc)
            self._signal_payload(peer, payload)
            return
        except (UnsendableError, FrameTooLarge) as error:
            failure: EmberError = error
        if isinstance(failure, FrameTooLarge):
            node = failure.node or self.node.name
            failure = FrameTooLarge(failure.size, failure.limit, node, f"the reply of {target}")
        self.replies_failed += 1
        log.warning(
            "cannot send the reply to %s for %s (the call fails): %s", peer, target, failure
        )
        self._signal_payload(peer, self._error_reply(call_id, failure))

    def _error_reply(self, call_id: int, exc: BaseException) -> bytes:
        try:
            return self.codec.encode((REPLY, call_id, False, self.errors.to_wire(exc)))
        except UnsendableError:  # its arguments cannot travel: it arrives as a RemoteError
            return self.codec.encode((REPLY, call_id, False, self.errors.to_wire(exc, False)))

    def _settle_reply(self, peer: str, call_id: int, ok: bool, value: Any) -> None:
        call = self._pending.get(call_id)
        if call is None:
            return  # timed out meanwhile
        fut = call.settle()
        if ok and call.answered is not None:
            call.answered(value)  # even if the caller gave up: the spawned child is real
        if fut is None:
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(self.errors.from_wire(value, peer))

    def _serve_spawn(self, peer: str, op: Any) -> None:
        call_id, target = op[1], op[2]
        spawner: Any = None
        link, ref = False, None
        if len(op) > 6:  # spawn_link / spawn_monitor
            spawner, link, ref = op[6]
        what = f"spawn of {target}"

        def done(pid: Pid | None, error: BaseException | None) -> None:
            self._answer(peer, call_id, what, error, pid)

        try:
            if not spawn_allowed(target, self.spawn_allow):
                raise UsageError(f"spawning {target!r} is not allowed on {self.node.name}")
            self.node.serve_spawn(
                resolve_actor(target),
                tuple(op[3]),
                op[4],
                op[5],
                done,
                link=spawner if link else None,
                monitor=None if ref is None else (spawner, ref),
            )
        except Exception as exc:  # refused, or failed before the process existed
            done(None, exc)

    def _start(
        self,
        coro: Coroutine[Any, Any, Any],
        on_done: Callable[[asyncio.Task[Any]], None] | None = None,
    ) -> None:
        """Run a task this distribution owns (``close`` cancels it). ``on_done`` sees its
        outcome; without one, an unexpected error is logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(on_done or _log_failure)

    def on_node_up(self, peer: str, creation: int) -> None:
        """Transport callback: a connection to ``peer`` opened."""
        log.info("node %s up (creation %d)", peer, creation)
        self.node.node_up(peer)
        for listener in list(self._node_listeners):
            guarded_call(self, "node listener", listener, peer, True)

    def on_node_down(self, peer: str, reason: str) -> None:
        """Transport callback: ``peer`` is unreachable. Its calls fail with ``NodeDown`` and the
        kernel fires ``noconnection`` for links and monitors."""
        log.info("node %s down: %s", peer, reason)
        self.flow.node_down(peer)
        for call in [c for c in self._pending.values() if _node_of(c.pid) == peer]:
            call.fail(NodeDown(call.pid))
        self.node.node_down(peer)
        for listener in list(self._node_listeners):
            guarded_call(self, "node listener", listener, peer, False)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("distribution task failed", exc_info=exc)


def _node_of(dest: Any) -> str:
    """The node a request goes to: a pid's, ``(name, node)``'s, or ``"spawn@node"``'s."""
    if isinstance(dest, Pid):
        return dest.node
    if isinstance(dest, tuple):
        return str(dest[1])
    return str(dest).rpartition("@")[2]


def _registered(node: Node, dest: Any) -> Pid | None:
    """The pid registered here under ``dest``'s name (``dest`` is ``(name, node)``), or what
    the node's resolver answers for it here; else None."""
    try:
        return node.whereis_dest(dest)
    except TypeError:  # a name that cannot be one (unhashable): it names nobody
        return None


def _head(payload: bytes) -> tuple[int, int] | None:
    """The operation code and call id at the head of an undecodable USER payload, if they are
    readable (they are plain msgpack ints); None otherwise."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(payload))
    unpacker.feed(payload)
    try:
        if unpacker.read_array_header() < 3:
            return None
        code = unpacker.unpack()
        if code == _TUPLE_MARK:  # an operation sent as a tuple: the codec's marker first
            code = unpacker.unpack()
        call_id = unpacker.unpack()
    except Exception:
        return None
    if code.__class__ is int and call_id.__class__ is int:
        return code, call_id
    return None
