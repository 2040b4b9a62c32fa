"""Fault injection for real node processes: drop, delay and partition at one node's transport,
and two faults of the node's other layers that travel the same way (a slow or failing disk
under the Raft store, a skewed clock).

Off unless the node was started for testing (``TransportConfig(fault_injection=True)``, or
``ember node start --chaos``). When off, nothing on the hot path changes: the transport builds
plain :class:`~ember.transport._connection.Connection` objects, and every request to inject a
fault raises :class:`FaultInjectionDisabled`. When on, connections are
:class:`FaultyConnection` objects that ask :class:`Faults` about each write and read.

What a node's faults do (each node applies its own; a partition is made by telling each side):

- ``partition``: the named peers are cut off *in both directions at this node*. Nothing is
  written to them (frames and heartbeats), whatever they send is ignored, new connections to
  or from them fail, and membership datagrams to and from them are dropped. An open connection
  is not closed: it falls silent and the heartbeat timeout ends it, as a real partition would,
  on both sides (the other side hears nothing either). What it would have carried is held, not
  lost: healed before the timeout, the connection delivers it late and in order, as TCP does
  across a short partition (a stream with a hole and no down would be a fault no network
  makes); if the connection ends first, it is lost with it. ``heal`` lifts it.
- ``drop``: each frame this node writes (and each membership datagram it sends) is lost with
  this probability. Over TCP this is message loss, not packet loss: the transport loses what
  it was asked to send, which is what the at-most-once promise allows.
- ``delay``: everything this node writes waits a uniform draw from ``(low, high)`` seconds,
  never overtaking what was written before it (TCP's head-of-line order).
- ``disk_latency`` and ``disk_failures``: each save of a Raft member on this node (its write
  and fsync) waits ``disk_latency`` seconds first, then fails with probability
  ``disk_failures`` (the member stops, as on an I/O error). The Raft host reads them through
  :meth:`Faults.disk`; the transport does not.
- ``clock_rate``: this node's timers run at that multiple of the true rate (2: twice as fast;
  ``ember._skew``); readings of the clock stay true. The node applies it to its loop.

Drivable from another process over the same authenticated path ``ember members`` uses: the
ADMIN channel carries a request (a msgpack map, see :meth:`Faults.apply`) and its reply;
:meth:`FaultChannel.ask` is the client, ``ember fault`` the command.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, UsageError
from ._connection import HEARTBEAT, Connection
from ._frame import Channel

__all__ = [
    "FaultChannel",
    "FaultInjectionDisabled",
    "FaultState",
    "Faults",
    "FaultyConnection",
]

MAX_DELAY = 60.0
"""The longest delay that may be injected, in seconds."""
_OPS = ("state", "set", "heal", "clear")


class FaultInjectionDisabled(EmberError):
    """Fault injection was asked of a node that was not started for testing.

    Start the node with ``ember node start --chaos`` (or
    ``TransportConfig(fault_injection=True)``); production nodes refuse it.
    """

    def __init__(self, node: str) -> None:
        super().__init__(
            f"fault injection is off on node {node!r} (start it with --chaos, or "
            "TransportConfig(fault_injection=True))"
        )
        self.node = node

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.node,))


@dataclass(frozen=True, slots=True)
class FaultState:
    """What one node's faults are set to, and what they did so far."""

    node: str
    enabled: bool
    """Whether this node accepts fault injection at all."""
    drop: float = 0.0
    """Probability that a frame (or membership datagram) this node sends is lost."""
    delay: tuple[float, float] = (0.0, 0.0)
    """Range, in seconds, of the delay added to everything this node writes."""
    partitioned: frozenset[str] = frozenset()
    """Peers cut off from this node, both ways."""
    dropped: int = 0
    """Frames and datagrams lost to ``drop``."""
    delayed: int = 0
    """Writes held back by ``delay``."""
    blocked_frames: int = 0
    """Frames held back from a partitioned peer (sent on heal if the connection lasts), and
    membership datagrams not sent to it."""
    blocked_reads: int = 0
    """Reads from a partitioned peer held back (taken in on heal if the connection lasts), and
    membership datagrams from it that were ignored."""
    blocked_connections: int = 0
    """Connections to or from a partitioned peer that were refused."""
    disk_latency: float = 0.0
    """Seconds each Raft save on this node waits first."""
    disk_failures: float = 0.0
    """Probability that a Raft save on this node fails."""
    clock_rate: float = 1.0
    """The rate this node's timers run at (1: true)."""
    disk_delayed: int = 0
    """Raft saves slowed by ``disk_latency``."""
    disk_failed: int = 0
    """Raft saves failed by ``disk_failures``."""

    def as_dict(self) -> dict[str, Any]:
        """The state as plain JSON-friendly values (``partitioned`` sorted)."""
        return {
            "node": self.node,
            "enabled": self.enabled,
            "drop": self.drop,
            "delay": list(self.delay),
            "partitioned": sorted(self.partitioned),
            "dropped": self.dropped,
            "delayed": self.delayed,
            "blocked_frames": self.blocked_frames,
            "blocked_reads": self.blocked_reads,
            "blocked_connections": self.blocked_connections,
            "disk_latency": self.disk_latency,
            "disk_failures": self.disk_failures,
            "clock_rate": self.clock_rate,
            "disk_delayed": self.disk_delayed,
            "disk_failed": self.disk_failed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultState:
        """The inverse of :meth:`as_dict`."""
        fields = dict(data)
        fields["delay"] = tuple(fields.get("delay", (0.0, 0.0)))
        fields["partitioned"] = frozenset(fields.get("partitioned", ()))
        return cls(**fields)


class Faults:
    """The fault settings of one node's transport: ``node.transport.faults``.

    :meth:`set`, :meth:`heal`, :meth:`clear` change them and :meth:`state` reads them; each
    returns the new :class:`FaultState`. On a node not started for testing every change raises
    :class:`FaultInjectionDisabled` (reading still works). :meth:`apply` is the same through one
    request map, for the wire and for admin APIs; ``channel.ask(peer, request)`` sends such a
    request to another node. Used from the node's event loop.
    """

    __slots__ = (
        "_blocked",
        "_counts",
        "_delay",
        "_disk",
        "_drop",
        "_listeners",
        "_node",
        "_rng",
        "active",
        "channel",
        "clock_rate",
        "enabled",
    )

    def __init__(
        self,
        node: str,
        send: Callable[[str, Channel, bytes], None],
        *,
        enabled: bool,
        rng: random.Random | None = None,
    ) -> None:
        self._node = node
        self.channel = FaultChannel(self, send)
        """Requests to and from other nodes over the ADMIN channel (see :class:`FaultChannel`)."""
        self.enabled = enabled
        self.active = False
        """Whether any fault is set (the connections' one check per write or read)."""
        self._rng = rng if rng is not None else random.Random()
        self._drop = 0.0
        self._delay = (0.0, 0.0)
        self._blocked: frozenset[str] = frozenset()
        self._disk = (0.0, 0.0)  # latency, failure probability
        self.clock_rate = 1.0
        """The rate this node's timers should run at (the node applies it to its loop)."""
        self._counts = dict.fromkeys(
            (
                "dropped",
                "delayed",
                "blocked_frames",
                "blocked_reads",
                "blocked_connections",
                "disk_delayed",
                "disk_failed",
            ),
            0,
        )
        self._listeners: list[Callable[[], None]] = []

    # -- the API ----------------------------------------------------------------------------

    def state(self) -> FaultState:
        """The current settings and counters."""
        return FaultState(
            self._node,
            self.enabled,
            self._drop,
            self._delay,
            self._blocked,
            disk_latency=self._disk[0],
            disk_failures=self._disk[1],
            clock_rate=self.clock_rate,
            **self._counts,
        )

    def set(
        self,
        *,
        drop: float | None = None,
        delay: float | tuple[float, float] | None = None,
        partition: Iterable[str] | None = None,
        disk_latency: float | None = None,
        disk_failures: float | None = None,
        clock_rate: float | None = None,
    ) -> FaultState:
        """Set the faults given (the others keep their values): ``drop`` a probability in
        [0, 1]; ``delay`` seconds or a ``(low, high)`` range within [0, 60]; ``partition`` the
        complete set of peers to cut off (it replaces the previous one); ``disk_latency``
        seconds within [0, 60] and ``disk_failures`` a probability, for each Raft save;
        ``clock_rate`` within [0.1, 10]. Raises :class:`FaultInjectionDisabled`, or
        :class:`~ember.UsageError` for a bad value (then nothing changes)."""
        self._check_enabled()
        new_drop = self._drop if drop is None else _probability(drop)
        new_delay = self._delay if delay is None else _delay_range(delay)
        new_blocked = self._blocked if partition is None else self._peers(partition)
        latency, failures = self._disk
        if disk_latency is not None:
            latency = _seconds(disk_latency, "disk_latency")
        if disk_failures is not None:
            failures = _probability(disk_failures, "disk_failures")
        rate = self.clock_rate if clock_rate is None else _rate(clock_rate)
        self._drop, self._delay, self._blocked = new_drop, new_delay, new_blocked
        self._disk, self.clock_rate = (latency, failures), rate
        return self._changed()

    def heal(self, *peers: str) -> FaultState:
        """Lift the partition from ``peers`` (from every peer if none is named)."""
        self._check_enabled()
        self._blocked = self._blocked - self._peers(peers) if peers else frozenset()
        return self._changed()

    def clear(self) -> FaultState:
        """Turn every fault off (the counters stay)."""
        self._check_enabled()
        self._drop, self._delay, self._blocked = 0.0, (0.0, 0.0), frozenset()
        self._disk, self.clock_rate = (0.0, 0.0), 1.0
        return self._changed()

    def apply(self, request: Mapping[str, Any]) -> FaultState:
        """Carry out one request map, as the ADMIN channel and admin APIs receive it:
        ``{"op": "state"}``, ``{"op": "set", "drop": 0.1, "delay": [0.01, 0.05],
        "partition": ["n2", "n3"], "disk_latency": 0.2, "disk_failures": 0.5,
        "clock_rate": 2.0}`` (any of them), ``{"op": "heal", "peers": [...]}``
        (all if absent or empty) or ``{"op": "clear"}``. Raises
        :class:`~ember.UsageError` for a malformed request."""
        op = request.get("op", "state")
        if op not in _OPS:
            raise UsageError(f"fault op must be one of {', '.join(_OPS)}, not {op!r}")
        unknown = set(request) - {"op", *_ARGS[op]}
        if unknown:
            raise UsageError(f"fault op {op!r} takes no {', '.join(sorted(unknown))}")
        if op == "state":
            return self.state()
        if op == "clear":
            return self.clear()
        if op == "heal":
            peers = request.get("peers") or ()
            if isinstance(peers, str) or not isinstance(peers, list | tuple):
                raise UsageError("heal takes a list of peer names")
            return self.heal(*peers)
        delay = request.get("delay")
        if isinstance(delay, list):
            delay = tuple(delay)
        return self.set(
            drop=request.get("drop"),
            delay=delay,
            partition=request.get("partition"),
            disk_latency=request.get("disk_latency"),
            disk_failures=request.get("disk_failures"),
            clock_rate=request.get("clock_rate"),
        )

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every change (the transport uses it to redial on heal)."""
        self._listeners.append(listener)

    # -- what the connections and the mesh ask --------------------------------------------------

    def blocks(self, peer: str) -> bool:
        """Whether ``peer`` is cut off from this node."""
        return peer in self._blocked

    def lose(self) -> bool:
        """Draw whether the next frame or datagram is lost to ``drop`` (and count it)."""
        if self._drop and self._rng.random() < self._drop:
            self._counts["dropped"] += 1
            return True
        return False

    def lag(self) -> float:
        """Draw the delay of the next write (0.0 when no delay is set)."""
        low, high = self._delay
        if not high:
            return 0.0
        self._counts["delayed"] += 1
        return self._rng.uniform(low, high)

    def disk(self) -> tuple[float, bool]:
        """Draw the next Raft save's fault: the seconds it waits first, and whether it then
        fails (both counted)."""
        latency, failures = self._disk
        if latency:
            self._counts["disk_delayed"] += 1
        failed = bool(failures) and self._rng.random() < failures
        if failed:
            self._counts["disk_failed"] += 1
        return latency, failed

    def count(self, what: str, n: int = 1) -> None:
        """Count ``n`` blocked frames, reads or connections (``"blocked_frames"``, ...)."""
        self._counts[what] += n

    # -- internals ----------------------------------------------------------------------------

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise FaultInjectionDisabled(self._node)

    def _peers(self, peers: Iterable[str]) -> frozenset[str]:
        if isinstance(peers, str):
            raise UsageError("partition takes a collection of peer names, not one string")
        names = frozenset(peers)
        for name in names:
            if not isinstance(name, str) or not name:
                raise UsageError(f"a peer name must be a non-empty str, not {name!r}")
        if self._node in names:
            raise UsageError(f"node {self._node!r} cannot be partitioned from itself")
        return names

    def _changed(self) -> FaultState:
        self.active = bool(self._drop or self._delay[1] or self._blocked)
        for listener in list(self._listeners):
            listener()
        return self.state()


_ARGS: dict[str, tuple[str, ...]] = {
    "state": (),
    "set": ("drop", "delay", "partition", "disk_latency", "disk_failures", "clock_rate"),
    "heal": ("peers",),
    "clear": (),
}


def _probability(value: object, what: str = "drop") -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise UsageError(f"{what} must be a probability in [0, 1], not {value!r}")
    return float(value)


MIN_RATE, MAX_RATE = 0.1, 10.0
"""The clock rates that may be injected."""


def _rate(value: object) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if not MIN_RATE <= number <= MAX_RATE:
        raise UsageError(f"clock_rate must be within [{MIN_RATE:g}, {MAX_RATE:g}], not {value!r}")
    return float(number)


def _seconds(value: object, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= MAX_DELAY:
        raise UsageError(f"{what} must be within [0, {MAX_DELAY:g}] seconds, not {value!r}")
    return float(value)


def _delay_range(value: object) -> tuple[float, float]:
    pair = (value, value) if value.__class__ in (int, float) else value
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise UsageError(f"delay must be seconds or a (low, high) pair, not {value!r}")
    low, high = pair
    for bound in (low, high):
        if bound.__class__ not in (int, float) or not 0 <= bound <= MAX_DELAY or math.isnan(bound):
            raise UsageError(f"a delay must be within [0, {MAX_DELAY:g}] seconds, not {bound!r}")
    if low > high:
        raise UsageError(f"a delay range must have low <= high, not {value!r}")
    return (float(low), float(high))


class FaultyConnection(Connection):
    """A :class:`Connection` that asks its transport's :class:`Faults` before each write and
    read. Only built when fault injection is enabled, so plain nodes never pay for it."""

    def __init__(self, *args: Any, faults: Faults, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = faults
        self._late: deque[tuple[float, bytes, int, int]] = deque()
        self._late_timer: asyncio.TimerHandle | None = None
        self._late_until = 0.0
        self._cut_writes: list[tuple[bytes, int, int]] = []
        """Writes a partition holds back (data, frames, bytes), sent on heal."""
        self._cut_reads: list[bytes] = []
        """Reads a partition holds back, taken in on heal."""

    def _cut(self) -> bool:
        return self.faults.active and bool(self.peer_name) and self.faults.blocks(self.peer_name)

    @property
    def holding(self) -> bool:
        """Whether a partition holds back writes or reads of this connection."""
        return bool(self._cut_writes or self._cut_reads)

    def release(self) -> None:
        """Once the partition is healed: what it held goes on, in order (late, as TCP
        delivers across a short partition); nothing when the peer is still cut off."""
        if self._cut():
            return
        held, self._cut_writes = self._cut_writes, []
        for data, frames, nbytes in held:
            self._write_late(data, frames, nbytes)
        reads, self._cut_reads = self._cut_reads, []
        if reads and not self._closing:
            super().data_received(b"".join(reads))

    def data_received(self, data: bytes) -> None:
        if self._cut():
            self.faults.count("blocked_reads")
            self._cut_reads.append(data)  # not heard meanwhile, so the heartbeat times out
            return
        if self._cut_reads:
            self.release()
        super().data_received(data)

    def write_frames(self, parts: list[bytes], frames: int, nbytes: int) -> bool:
        """Frames handed here count as sent; those the faults then drop, or that are lost
        with the connection (late or held by a partition), are counted as dropped too."""
        faults = self.faults
        if self._cut_writes and not self._cut():
            self.release()  # what the partition held goes first
        if not faults.active:
            if self._late:
                self._write_late(b"".join(parts), frames, nbytes)
                return True
            return super().write_frames(parts, frames, nbytes)
        if faults.blocks(self.peer_name):
            faults.count("blocked_frames", frames)
            self._cut_writes.append((b"".join(parts), frames, nbytes))
            return True
        if faults._drop:
            kept: list[bytes] = []
            for i in range(0, len(parts), 2):
                if faults.lose():
                    frames -= 1
                    nbytes -= len(parts[i]) + len(parts[i + 1])
                    self._stats.dropped_by_fault += 1
                else:
                    kept += parts[i : i + 2]
            parts = kept
            if not frames:
                return True
        self._write_late(b"".join(parts), frames, nbytes)
        return True

    def _send_heartbeat(self) -> None:
        faults = self.faults
        if faults.active and faults.blocks(self.peer_name):
            faults.count("blocked_frames")
            return
        if faults.active or self._late:
            self._write_late(HEARTBEAT, 0, 0)
        else:
            super()._send_heartbeat()

    def _write_late(self, data: bytes, frames: int, nbytes: int) -> None:
        """Write ``data`` after the injected delay, never before what was queued ahead of it."""
        now = self._loop.time()
        due = max(now + self.faults.lag(), self._late_until)
        if due <= now and not self._late:
            self._write_now(data, frames, nbytes)
            return
        self._late_until = due
        self._late.append((due, data, frames, nbytes))
        if self._late_timer is None:
            self._late_timer = self._loop.call_at(self._late[0][0], self._write_due)

    def _write_due(self) -> None:
        self._late_timer = None
        now = self._loop.time()
        late = self._late
        while late and late[0][0] <= now:
            _, data, frames, nbytes = late.popleft()
            self._write_now(data, frames, nbytes)
        if late:
            self._late_timer = self._loop.call_at(late[0][0], self._write_due)

    def _write_now(self, data: bytes, frames: int, nbytes: int) -> None:
        if frames:
            super().write_frames([data], frames, nbytes)
        elif self._transport is not None and not self._closing:
            self._transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._late_timer is not None:
            self._late_timer.cancel()
            self._late_timer = None
        lost = sum(frames for _, _, frames, _ in self._late)
        lost += sum(frames for _, frames, _ in self._cut_writes)
        self._late.clear()
        self._cut_writes.clear()
        self._cut_reads.clear()
        self._stats.dropped_disconnected += lost
        super().connection_lost(exc)


# -- the wire ------------------------------------------------------------------------------------

_REQUEST, _REPLY = 1, 2


class FaultChannel:
    """Fault requests between nodes on the ADMIN channel: answers the requests of peers to this
    node's :class:`Faults`, and sends this node's own requests (:meth:`ask`) to peers.

    Every node with a transport has one (``node.transport.faults.channel``); the node routes
    ADMIN frames to :meth:`on_frame`. A request is ``{"type": 1, "id": n, "request": {...}}``
    (the map :meth:`Faults.apply` takes), a reply ``{"type": 2, "id": n, "state": {...}}`` or
    ``{"type": 2, "id": n, "error": [kind, message]}`` with kind ``"disabled"`` or ``"usage"``.
    """

    def __init__(self, faults: Faults, send: Callable[[str, Channel, bytes], None]) -> None:
        self._faults = faults
        self._send = send
        self._ids = itertools.count(1)
        self._waiting: dict[tuple[str, int], asyncio.Future[FaultState]] = {}

    async def ask(
        self,
        peer: str,
        request: Mapping[str, Any],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> FaultState:
        """Send ``request`` (see :meth:`Faults.apply`) to node ``peer`` and return its new
        state. Raises :class:`FaultInjectionDisabled` if ``peer`` was not started for testing,
        :class:`~ember.UsageError` for a request it refused, ``TimeoutError`` if no answer
        comes within ``timeout`` (and whatever the transport raises for an unknown peer)."""
        call_id = next(self._ids)
        key = (peer, call_id)
        fut: asyncio.Future[FaultState] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        try:
            payload = {"type": _REQUEST, "id": call_id, "request": dict(request)}
            self._send(peer, Channel.ADMIN, msgpack.packb(payload, use_bin_type=True))
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._waiting.pop(key, None)

    def on_frame(self, peer: str, payload: bytes) -> None:
        """An ADMIN frame from ``peer``: a request to answer or a reply to one of ours."""
        try:
            msg = msgpack.unpackb(payload, raw=False)
        except Exception:
            return  # not ours to judge: the peer is authenticated, the frame is just noise
        if msg.__class__ is not dict:
            return
        if msg.get("type") == _REQUEST:
            self._answer(peer, msg.get("id"), msg.get("request"))
            return
        fut = self._waiting.get((peer, msg.get("id")))  # type: ignore[arg-type]
        if msg.get("type") != _REPLY or fut is None or fut.done():
            return
        error = msg.get("error")
        try:
            if error is not None:
                kind, text = error
                fut.set_exception(
                    FaultInjectionDisabled(peer) if kind == "disabled" else UsageError(str(text))
                )
            else:
                fut.set_result(FaultState.from_dict(msg["state"]))
        except (TypeError, ValueError, KeyError) as exc:
            fut.set_exception(UsageError(f"malformed fault reply from {peer}: {exc!r}"))

    def _answer(self, peer: str, call_id: object, request: object) -> None:
        reply: dict[str, Any] = {"type": _REPLY, "id": call_id}
        try:
            if not isinstance(request, dict):
                raise UsageError("a fault request must be a map")
            reply["state"] = self._faults.apply(request).as_dict()
        except FaultInjectionDisabled as exc:
            reply["error"] = ("disabled", str(exc))
        except UsageError as exc:
            reply["error"] = ("usage", str(exc))
        try:
            self._send(peer, Channel.ADMIN, msgpack.packb(reply, use_bin_type=True))
        except EmberError:
            pass  # the asker is gone or not reading: nobody to tell
