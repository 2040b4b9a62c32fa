"""Back-pressure across the node boundary: remote senders learn of full mailboxes and are paced.

Two mechanisms, one per way of sending (both on the USER channel, so they keep their place
among a pair's messages):

**send: the receiver says "full", the sender refuses.** A ``SEND`` that a full ``reject``
mailbox refuses on the receiving node is counted there, as a local one is, and the sending node
is told once: ``[FULL, serial, creation]``. From then on ``send`` to that pid raises
:class:`~ember.MailboxFull` *at the sender*, as a local send does, without a frame on the wire,
until the receiver, once the mailbox has drained to half its bound, says ``[ROOM, serial,
creation, rejected]`` (``rejected``: how many of that node's messages it refused meanwhile, so
both sides count them). What was in flight when the mailbox filled is refused at the receiver:
the sender learns of the first refusal one round trip late, as with TCP's zero window. The
sender checks its marks only when its per-pid frame-head cache misses, and marking a pid empties
that cache: the common send pays nothing.

**send_wait: credit per sender/receiver pair.** ``send_wait`` to a remote pid travels as
``[SENDW, serial, creation, message]`` and may have at most ``window`` messages to that pid
not yet taken into its mailbox (per sending node). The receiver puts a ``SENDW`` in the mailbox
even past its bound (so order holds: one mailbox, arrival order) and grants a credit back,
``[CREDIT, serial, creation, n]``, for each one as soon as the mailbox has room for it: at
once while it is below its bound, else as it drains. So a producer using ``send_wait`` loses
nothing and runs at its consumer's pace; a mailbox holds at most its bound plus ``window`` per
sending node. This is the demand-driven scheme of Akka's reliable delivery
(``ConsumerController`` requests, the producer never sends past the demand) and of TCP's receive
window, applied per pid; Erlang has no mailbox back-pressure at all (it suspends a sender only
when the distribution buffer passes ``dist_buf_busy_limit``, which Ember's ``send_wait`` also
does, for the transport queue).

When a connection goes down, everything about that peer is forgotten: marks, credits (waiting
senders go on, their messages then meet ``noconnection`` semantics: at most once).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import MailboxFull
from ..actors import Pid
from ..actors._actor import EXITING
from ..actors._mailbox import watch
from ._frame import Channel
from ._queue import wait_in_line

if TYPE_CHECKING:
    from ..actors import Node
    from ._interface import NodeTransport

__all__ = ["CREDIT", "FIRST", "FULL", "ROOM", "SENDW", "FlowControl", "FlowStats"]

# Operation codes of the flow-control block of the USER channel (see _dist.py for the others).
SENDW, CREDIT, FULL, ROOM = 32, 33, 34, 35
FIRST = SENDW
"""Operation codes from here on are flow control's."""


@dataclass(slots=True)
class FlowStats:
    """Counters of back-pressure between this node and others (``Node.statistics()`` shows
    them as ``remote_<name>``)."""

    rejected_for_peers: int = 0
    """Messages from other nodes that a full mailbox here refused."""
    full_sent: int = 0
    """FULL notices sent to other nodes (one per pid per episode)."""
    room_sent: int = 0
    """ROOM notices sent: the mailbox drained, senders may go on."""
    refused_here: int = 0
    """``send`` calls here refused with ``MailboxFull`` because the receiver said full."""
    rejected_there: int = 0
    """Messages from here that a full mailbox on another node refused (as its ROOM reports)."""
    full_received: int = 0
    """FULL notices received."""
    paced_sends: int = 0
    """``send_wait`` messages sent under credit."""
    paced_waits: int = 0
    """Times a ``send_wait`` waited for credit: the receiver was slower than the producer."""
    over_bound: int = 0
    """``send_wait`` messages put in a mailbox here past its bound (their credit waits)."""


class _Window:
    """A sender's credit towards one remote pid."""

    __slots__ = ("inflight", "waiters")

    def __init__(self) -> None:
        self.inflight = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class FlowControl:
    """The back-pressure state of one :class:`~ember.transport.Distribution`.

    ``send_op(peer, op)`` queues a signal-like operation for ``peer`` (never dropped quietly);
    ``encode`` is the codec's; ``window`` the credit per pid and sending node; ``uncache`` empties
    the sender's frame-head cache when a pid is marked full.
    """

    def __init__(
        self,
        node: Node,
        transport: NodeTransport,
        *,
        encode: Callable[[Any], bytes],
        send_op: Callable[[str, tuple[Any, ...]], None],
        uncache: Callable[[], None],
        window: int,
    ) -> None:
        self.node = node
        self.transport = transport
        self.window = window
        self.stats = FlowStats()
        self._encode = encode
        self._send_op = send_op
        self._uncache = uncache
        # Sender side.
        self.full: set[Pid] = set()
        """Remote pids whose node said their mailbox is full (``send`` refuses them here)."""
        self._windows: dict[Pid, _Window] = {}
        # Receiver side, by local serial.
        self._told: dict[int, dict[str, int]] = {}  # serial -> peer -> refusals since FULL
        self._owed: dict[int, deque[str]] = {}  # serial -> peers owed one credit each, in order
        self._credits: dict[tuple[str, int, int], int] = {}  # credits to send at the next flush
        self._flush_scheduled = False

    # -- sender side ----------------------------------------------------------------------------

    def check(self, pid: Pid) -> None:
        """Raise ``MailboxFull`` if ``pid``'s node said its mailbox is full (the cache-miss path
        of ``send``)."""
        if pid in self.full:
            self.stats.refused_here += 1
            raise MailboxFull(pid)

    async def send_wait(self, pid: Pid, msg: Any, head: bytes) -> None:
        """Send ``msg`` to remote ``pid`` under credit, waiting for credit and queue room.

        Credit lives as long as a connection: to a node that is not connected the message goes
        without it (queued while a connection is made, and at most once, as any send), so a
        producer is never held by a node that went away."""
        while True:
            if not self.transport.is_connected(pid.node):
                await self._send(pid, msg, head)
                return
            window = self._windows.get(pid)
            if window is None:
                window = self._windows[pid] = _Window()
            if window.inflight < self.window:
                break
            self.stats.paced_waits += 1
            assert self.node._loop is not None
            await wait_in_line(window.waiters, self.node._loop)
        window.inflight += 1
        try:
            await self._send(pid, msg, head)
        except BaseException:
            self._credit(pid, 1)  # never sent: give the credit back
            raise

    async def _send(self, pid: Pid, msg: Any, head: bytes) -> None:
        self.stats.paced_sends += 1
        await self.transport.send_wait(pid.node, Channel.USER, head + self._encode(msg))

    def _credit(self, pid: Pid, n: int) -> None:
        window = self._windows.get(pid)
        if window is None:
            return
        window.inflight = max(0, window.inflight - n)
        for fut in list(window.waiters)[:n]:
            if not fut.done():
                fut.set_result(None)
        if not window.inflight and not window.waiters:
            del self._windows[pid]

    # -- receiver side --------------------------------------------------------------------------

    def refused(self, peer: str, pid: Pid) -> None:
        """A full mailbox here refused a message from ``peer``: tell ``peer`` once."""
        self.stats.rejected_for_peers += 1
        proc = self.node._lookup(pid)
        if proc is None or proc.mailbox_size is None:
            return
        told = self._told.get(pid.serial)
        if told is None:
            told = self._told[pid.serial] = {}
            serial = pid.serial
            watch(proc, proc.mailbox_size // 2, lambda: self._room(serial, pid.creation))
        if peer not in told:
            told[peer] = 0
            self.stats.full_sent += 1
            self._send_op(peer, (FULL, pid.serial, pid.creation))
        told[peer] += 1

    def _room(self, serial: int, creation: int) -> None:
        for peer, rejected in self._told.pop(serial, {}).items():
            self.stats.room_sent += 1
            self._send_op(peer, (ROOM, serial, creation, rejected))

    def _paced(self, peer: str, serial: int, creation: int, msg: Any) -> None:
        """A ``send_wait`` message from ``peer``: into the mailbox, bound or not; its credit
        goes back when there is room."""
        node = self.node
        proc = node._procs.get(serial) if creation == node.creation else None
        if proc is None or proc._state >= EXITING:
            node._stats.dropped_dead += 1
            self._grant(peer, serial, creation, 1)  # nothing will drain: do not hold it
            return
        proc._deliver_signal(msg)  # past the bound if need be: the window bounds how far
        limit = proc.mailbox_size
        if limit is None or len(proc._mbox or ()) <= limit:
            self._grant(peer, serial, creation, 1)
            return
        self.stats.over_bound += 1
        owed = self._owed.get(serial)
        if owed is None:
            owed = self._owed[serial] = deque()
            watch(proc, limit - 1, lambda: self._repay(serial, creation))
        owed.append(peer)

    def _repay(self, serial: int, creation: int) -> None:
        """The mailbox of ``serial`` drained (or its process exited): pay the credits owed, as
        many as there is room for, oldest first."""
        owed = self._owed.get(serial)
        if not owed:
            self._owed.pop(serial, None)
            return
        proc = self.node._procs.get(serial)
        if proc is None or proc._state >= EXITING or proc.mailbox_size is None:
            room = len(owed)
        else:
            room = proc.mailbox_size - len(proc._mbox or ())
        for _ in range(min(room, len(owed))):
            self._grant(owed.popleft(), serial, creation, 1)
        if not owed:
            del self._owed[serial]
        elif proc is not None and proc.mailbox_size is not None:
            watch(proc, proc.mailbox_size - 1, lambda: self._repay(serial, creation))

    def _grant(self, peer: str, serial: int, creation: int, n: int) -> None:
        key = (peer, serial, creation)
        self._credits[key] = self._credits.get(key, 0) + n
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self.node._loop is not None
            self.node._loop.call_soon(self._flush_credits)

    def _flush_credits(self) -> None:
        """One CREDIT per pair per loop iteration, however many messages it covers."""
        self._flush_scheduled = False
        credits, self._credits = self._credits, {}
        for (peer, serial, creation), n in credits.items():
            self._send_op(peer, (CREDIT, serial, creation, n))

    # -- both -----------------------------------------------------------------------------------

    def apply(self, peer: str, op: Any) -> None:
        """An operation of the flow-control block from ``peer``."""
        code = op[0]
        if code == SENDW:
            self._paced(peer, op[1], op[2], op[3])
        elif code == CREDIT:
            self._credit(Pid(peer, op[1], op[2]), op[3])
        elif code == FULL:
            self.stats.full_received += 1
            self.full.add(Pid(peer, op[1], op[2]))
            self._uncache()
        elif code == ROOM:
            self.full.discard(Pid(peer, op[1], op[2]))
            self.stats.rejected_there += op[3]
        else:
            raise ValueError(f"unknown operation {code!r}")

    def node_down(self, peer: str) -> None:
        """The connection to ``peer`` is gone: forget every mark and credit involving it."""
        self.full = {pid for pid in self.full if pid.node != peer}
        for pid in [pid for pid in self._windows if pid.node == peer]:
            window = self._windows.pop(pid)
            for fut in window.waiters:
                if not fut.done():
                    fut.set_result(None)
        for told in self._told.values():
            told.pop(peer, None)
        for serial, owed in list(self._owed.items()):
            kept = deque(p for p in owed if p != peer)
            if kept:
                self._owed[serial] = kept
            else:
                del self._owed[serial]
        self._credits = {k: n for k, n in self._credits.items() if k[0] != peer}
