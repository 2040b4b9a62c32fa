"""An in-memory network of transports, for tests and simulation, with seeded fault injection.

:class:`MemoryNetwork` connects :class:`MemoryTransport` endpoints that live in one event loop
(a virtual-time loop makes delays free). An endpoint has the interface of
:class:`~ember.transport.Transport` (:class:`~ember.transport._interface.NodeTransport`) and
reuses its outboxes, so queue policies, ``QueueFull``, ``send_wait`` and the counters behave the
same; what differs is below the outbox:

- **Connections.** Endpoints find each other by name (addresses are ignored). A send to a peer
  with no connection queues and connects at once if the peer is running and reachable, or when it
  becomes so; the cluster name and cookie must match (else ``AuthenticationError``, counted on
  both sides). One connection per pair by construction. Node up/down callbacks run from the loop
  (``call_soon``), never inside the API call that caused them.
- **Faults**, drawn from one ``random.Random(seed)`` in send order, so a run is reproducible:
  each frame is dropped with probability ``drop`` (counted as ``dropped_by_network``), else
  delayed by a uniform draw from ``delay``. Frames never duplicate, and frames of one channel
  between one pair are delivered in order (a frame is never due before the one ahead of it).
  Across channels order is kept too, unless ``reorder_channels`` lets each channel of a pair
  be delayed independently.
- **Partitions.** ``partition({"a", "b"}, {"c"})`` cuts the network into groups (nodes not
  named form one more group). Frames across the cut are held, as TCP would keep retransmitting;
  a connection across it that is not healed within the smaller ``heartbeat_timeout`` of its two
  nodes goes down on both sides (``"heartbeat_timeout"``) and what it held is lost. ``heal()``
  releases held frames of connections still up, and reconnects peers with frames queued.
- **Backpressure.** Frames in flight on a link count against the sender's
  ``write_buffer_high``, as the OS buffer does for TCP: past it the outbox stops draining, its
  queues fill and their policies apply.
- **Closing** an endpoint acts like a crash for its frames in flight: they are lost, and its
  peers see it go down (``"peer_closed"``) on the next loop iteration.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Self

from .._errors import UsageError
from ._config import TransportConfig
from ._cookie import normalize_cookie
from ._errors import AuthenticationError
from ._frame import Channel, Frame
from ._interface import OnFrames, OnNodeDown, OnNodeUp, guarded_call
from ._memory_datagrams import (
    DatagramStatistics,
    MemoryDatagrams,
    OnDatagram,
    check_bind,
    sim_address,
)
from ._peers import PeerTable
from ._queue import NoRoute, Outbox
from ._stats import ChannelTraffic, TransportStats

__all__ = ["MemoryNetwork", "MemoryTransport"]

log = logging.getLogger("ember.transport.memory")

_CHANNELS = tuple(Channel)


class _Fifo:
    """Frames in flight on one link (one channel of it, with ``reorder_channels``), in order."""

    __slots__ = ("entries", "last_due", "timer")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, Frame, int]] = deque()
        self.last_due = 0.0
        self.timer: asyncio.TimerHandle | None = None


class _Link:
    """One direction of a connection: the sender's outbox drains into it (it is a ``Writer``)."""

    __slots__ = ("_fifos", "dst", "inflight", "network", "paused", "session", "src")

    def __init__(
        self,
        network: MemoryNetwork,
        session: _Session,
        src: MemoryTransport,
        dst: MemoryTransport,
    ) -> None:
        self.network = network
        self.session = session
        self.src = src
        self.dst = dst
        self.inflight = 0
        self.paused = False
        self._fifos: dict[Channel | None, _Fifo] = {}

    def write_frames(self, parts: list[bytes], frames: int, nbytes: int) -> bool:
        network = self.network
        loop = network.loop
        stats = self.src._stats
        stats.writes += 1
        now = loop.time()
        rng = network.rng
        drop = network.drop
        low, high = network.delay
        reorder = network.reorder_channels
        for i in range(0, len(parts), 2):
            header, payload = parts[i], parts[i + 1]
            if drop and rng.random() < drop:
                stats.dropped_by_network += 1
                continue
            channel = _CHANNELS[header[4]]
            due = now + (rng.uniform(low, high) if high else 0.0)
            fifo = self._fifos.get(channel if reorder else None)
            if fifo is None:
                fifo = self._fifos[channel if reorder else None] = _Fifo()
            due = max(due, fifo.last_due)  # never overtake the frame ahead
            fifo.last_due = due
            size = len(payload) + 5
            fifo.entries.append((due, Frame(channel, payload), size))
            self.inflight += size
            if fifo.timer is None:
                fifo.timer = loop.call_at(due, self._deliver, fifo, context=self.dst.context())
        if self.inflight > self.src.config.write_buffer_high:
            self.paused = True
        return True

    def kick(self) -> None:
        """Deliver what a healed partition held back."""
        for fifo in self._fifos.values():
            if fifo.entries and fifo.timer is None:
                fifo.timer = self.network.loop.call_at(
                    fifo.entries[0][0], self._deliver, fifo, context=self.dst.context()
                )

    def discard(self) -> int:
        dropped = 0
        for fifo in self._fifos.values():
            dropped += len(fifo.entries)
            fifo.entries.clear()
            if fifo.timer is not None:
                fifo.timer.cancel()
                fifo.timer = None
        self.inflight = 0
        return dropped

    def _deliver(self, fifo: _Fifo) -> None:
        fifo.timer = None
        if not self.session.alive or not self.network.reachable(
            self.src.node_name, self.dst.node_name
        ):
            return  # held until heal() kicks us (or the session ends)
        now = self.network.loop.time()
        entries = fifo.entries
        batch: list[Frame] = []
        size = 0
        traffic = self.dst._traffic
        received, received_bytes = traffic.frames_received, traffic.bytes_received
        while entries and entries[0][0] <= now:
            _, frame, n = entries.popleft()
            batch.append(frame)
            size += n
            received[frame[0]] += 1
            received_bytes[frame[0]] += n
        self.inflight -= size
        if entries:
            fifo.timer = self.network.loop.call_at(
                entries[0][0], self._deliver, fifo, context=self.dst.context()
            )
        if self.paused and self.inflight <= self.src.config.write_buffer_high // 4:
            self.paused = False
            peer = self.src._peers.get(self.dst.node_name)
            if peer is not None:
                peer.outbox.schedule()
        if batch:
            self.dst._receive(self.src.node_name, batch)


class _Session:
    """A connection between two endpoints: two links and a liveness flag."""

    __slots__ = ("a", "alive", "b", "links", "partition_timer")

    def __init__(self, network: MemoryNetwork, a: MemoryTransport, b: MemoryTransport) -> None:
        self.a = a
        self.b = b
        self.alive = True
        self.links = {
            a.node_name: _Link(network, self, a, b),
            b.node_name: _Link(network, self, b, a),
        }
        self.partition_timer: asyncio.TimerHandle | None = None


class _MemPeer:
    __slots__ = ("conn", "give_up", "name", "outbox", "waiters")

    def __init__(self, name: str, outbox: Outbox) -> None:
        self.name = name
        self.outbox = outbox
        self.conn: _Link | None = None
        self.waiters: list[asyncio.Future[None]] = []
        self.give_up: asyncio.TimerHandle | None = None


class MemoryNetwork:
    """A simulated network; see the module docstring. All endpoints share one event loop.

    ``seed`` seeds every random draw (print it with a failing test to replay the run); ``drop``
    is the probability of losing each frame; ``delay`` the ``(low, high)`` range of a frame's
    delay in seconds; ``reorder_channels`` lets frames of different channels overtake each other.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        drop: float = 0.0,
        delay: tuple[float, float] = (0.0, 0.0),
        reorder_channels: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.drop = 0.0
        self.delay = (0.0, 0.0)
        self.reorder_channels = False
        self.set_faults(drop=drop, delay=delay, reorder_channels=reorder_channels)
        self._endpoints: dict[str, MemoryTransport] = {}
        self._sessions: dict[frozenset[str], _Session] = {}
        self._groups: dict[str, int] | None = None
        self._paused: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bound: dict[tuple[str, int], MemoryDatagrams] = {}
        self._bind_listeners: list[tuple[Callable[[str, str], None], contextvars.Context]] = []
        self._creations: dict[str, int] = {}
        self.datagram_stats = DatagramStatistics()
        """Counters of the datagrams (the mesh's UDP) this network carried."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def endpoint(
        self,
        node_name: str,
        cluster: str = "ember",
        cookie: str | bytes = "memory",
        creation: int = 0,
        config: TransportConfig | None = None,
        *,
        on_frames: OnFrames,
        on_node_up: OnNodeUp | None = None,
        on_node_down: OnNodeDown | None = None,
    ) -> MemoryTransport:
        """A new endpoint named ``node_name`` (replacing a closed one of that name)."""
        old = self._endpoints.get(node_name)
        if old is not None and old._state != "closed":
            raise UsageError(f"node {node_name!r} already has a live endpoint")
        endpoint = MemoryTransport(
            self,
            node_name,
            cluster,
            cookie,
            creation,
            config=config,
            on_frames=on_frames,
            on_node_up=on_node_up,
            on_node_down=on_node_down,
        )
        self._endpoints[node_name] = endpoint
        return endpoint

    def address_of(self, node_name: str) -> str:
        """The simulated ``"host:port"`` address of ``node_name`` (what its mesh advertises)."""
        host, port = sim_address(node_name)
        return f"{host}:{port}"

    def next_creation(self, node_name: str) -> int:
        """A new incarnation number for ``node_name`` (1, 2, ... per name), so pids of an
        earlier run of a node never name processes of a later one."""
        creation = self._creations[node_name] = self._creations.get(node_name, 0) + 1
        return creation

    def bind_datagrams(
        self, node_name: str, address: tuple[str, int], on_datagram: OnDatagram
    ) -> MemoryDatagrams:
        """A datagram socket for ``node_name`` at ``address``; see ``_memory_datagrams``."""
        check_bind(self._bound, node_name, address)
        sock = self._bound[address] = MemoryDatagrams(self, node_name, address, on_datagram)
        cluster = self._cluster_of(node_name)
        for listener, context in list(self._bind_listeners):
            self.loop.call_soon(listener, node_name, cluster, context=context.copy())
        return sock

    def bound_nodes(self) -> list[tuple[str, str]]:
        """``(node, cluster)`` of every node with a datagram socket bound now."""
        return [(s.node_name, self._cluster_of(s.node_name)) for s in self._bound.values()]

    def on_bind(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        """Call ``listener(node, cluster)`` (from the loop) for every node bound now and each
        one that binds later; returns a function that stops it."""
        entry = (listener, contextvars.copy_context())
        self._bind_listeners.append(entry)
        for name, cluster in self.bound_nodes():
            self.loop.call_soon(listener, name, cluster, context=entry[1].copy())

        def remove() -> None:
            if entry in self._bind_listeners:
                self._bind_listeners.remove(entry)

        return remove

    def _cluster_of(self, node_name: str) -> str:
        endpoint = self._endpoints.get(node_name)
        return endpoint.cluster if endpoint is not None else ""

    def set_faults(
        self,
        *,
        drop: float | None = None,
        delay: tuple[float, float] | None = None,
        reorder_channels: bool | None = None,
    ) -> None:
        """Change fault injection from now on (frames already in flight keep their fate)."""
        if drop is not None:
            if not 0.0 <= drop <= 1.0:
                raise UsageError(f"drop must be a probability, not {drop!r}")
            self.drop = drop
        if delay is not None:
            low, high = delay
            if not 0.0 <= low <= high:
                raise UsageError(f"delay must be (low, high) with 0 <= low <= high, not {delay!r}")
            self.delay = (float(low), float(high))
        if reorder_channels is not None:
            self.reorder_channels = reorder_channels

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut the network into ``groups`` of node names (unnamed nodes form one more group)."""
        table: dict[str, int] = {}
        for index, group in enumerate(groups, start=1):
            for name in group:
                if name in table:
                    raise UsageError(f"node {name!r} is in two groups")
                table[name] = index
        self._groups = table
        self._regroup()

    def heal(self) -> None:
        """Remove every partition: held frames flow, peers with queued frames reconnect."""
        self._groups = None
        self._regroup()
        self._network_changed()

    def pause(self, name: str) -> None:
        """Node ``name`` stops answering, as a stopped process does: frames to and from it are
        held, its connections go down after the heartbeat timeout, datagrams to it are lost."""
        self._paused.add(name)
        self._regroup()

    def resume(self, name: str) -> None:
        """Undo :meth:`pause`: held frames flow again and peers reconnect."""
        if name in self._paused:
            self._paused.discard(name)
            self._regroup()
            self._network_changed()

    def reachable(self, a: str, b: str) -> bool:
        """Whether frames can flow between nodes ``a`` and ``b`` now."""
        if self._paused and (a in self._paused or b in self._paused):
            return False
        groups = self._groups
        return groups is None or groups.get(a, 0) == groups.get(b, 0)

    # -- used by endpoints --------------------------------------------------------------------

    def _send_datagram(self, src: MemoryDatagrams, data: bytes, target: tuple[str, int]) -> None:
        stats = self.datagram_stats
        stats.sent += 1
        dst = self._bound.get(target)
        if dst is None:
            stats.dropped_unbound += 1
            return
        if not self.reachable(src.node_name, dst.node_name):
            stats.dropped_partitioned += 1
            return
        if self.drop and self.rng.random() < self.drop:
            stats.dropped_by_network += 1
            return
        low, high = self.delay
        delay = self.rng.uniform(low, high) if high > 0.0 else 0.0
        self.loop.call_later(
            delay, self._arrive, src.node_name, src.address, dst, data, context=dst.context()
        )

    def _arrive(
        self, src_name: str, source: tuple[str, int], dst: MemoryDatagrams, data: bytes
    ) -> None:
        if self._bound.get(dst.address) is not dst:
            self.datagram_stats.dropped_unbound += 1
        elif not self.reachable(src_name, dst.node_name):
            self.datagram_stats.dropped_partitioned += 1
        else:
            self.datagram_stats.delivered += 1
            dst._deliver(data, source)

    def _unbind_datagrams(self, sock: MemoryDatagrams) -> None:
        if self._bound.get(sock.address) is sock:
            del self._bound[sock.address]

    def _regroup(self) -> None:
        """Apply the current partition to every connection: arm or disarm its down timer."""
        for session in self._sessions.values():
            if self.reachable(session.a.node_name, session.b.node_name):
                if session.partition_timer is not None:
                    session.partition_timer.cancel()
                    session.partition_timer = None
                for link in session.links.values():
                    link.kick()
            elif session.partition_timer is None:
                timeout = min(
                    session.a.config.heartbeat_timeout, session.b.config.heartbeat_timeout
                )
                session.partition_timer = self.loop.call_later(
                    timeout, self._session_down, session, "heartbeat_timeout", "heartbeat_timeout"
                )

    def _knows(self, name: str) -> bool:
        return name in self._endpoints

    def _try_connect(self, src: MemoryTransport, name: str) -> None:
        """``src`` wants a connection to ``name``: make one if possible."""
        key = frozenset((src.node_name, name))
        if key in self._sessions or src._state != "running":
            return
        dst = self._endpoints.get(name)
        if dst is None or dst._state != "running" or not self.reachable(src.node_name, name):
            return  # retried on _network_changed
        if dst.cluster != src.cluster or not hmac.compare_digest(dst._cookie, src._cookie):
            kind = "cluster" if dst.cluster != src.cluster else "auth"
            for side in (src, dst):
                side._stats.protocol_errors[kind] += 1
                side._stats.handshake_failures += 1
            src._auth_failed(name, AuthenticationError(kind, f"node {name!r} refused us"))
            return
        session = self._sessions[key] = _Session(self, src, dst)
        src._stats.connections_initiated += 1
        dst._stats.connections_accepted += 1
        src._open(session.links[src.node_name], dst.creation)
        dst._open(session.links[name], src.creation)

    def _session_down(self, session: _Session, reason_a: str, reason_b: str) -> None:
        if not session.alive:
            return
        session.alive = False
        if session.partition_timer is not None:
            session.partition_timer.cancel()
            session.partition_timer = None
        del self._sessions[frozenset((session.a.node_name, session.b.node_name))]
        if reason_a == "heartbeat_timeout":
            session.a._stats.heartbeat_timeouts += 1
            session.b._stats.heartbeat_timeouts += 1
        for side, reason in ((session.a, reason_a), (session.b, reason_b)):
            link = session.links[side.node_name]
            side._stats.dropped_disconnected += link.discard()
            side._closed_link(link, reason)

    def _endpoint_closed(self, endpoint: MemoryTransport) -> None:
        for session in list(self._sessions.values()):
            if endpoint in (session.a, session.b):
                reasons = ("closed", "peer_closed")
                if session.b is endpoint:
                    reasons = ("peer_closed", "closed")
                self._session_down(session, *reasons)

    def _network_changed(self) -> None:
        for endpoint in list(self._endpoints.values()):
            if endpoint._state == "running":
                endpoint._retry()


class MemoryTransport(PeerTable[_MemPeer]):
    """One node's endpoint on a :class:`MemoryNetwork`; the interface of ``Transport``."""

    def __init__(
        self,
        network: MemoryNetwork,
        node_name: str,
        cluster: str,
        cookie: str | bytes,
        creation: int,
        *,
        config: TransportConfig | None = None,
        on_frames: OnFrames,
        on_node_up: OnNodeUp | None = None,
        on_node_down: OnNodeDown | None = None,
    ) -> None:
        self._network = network
        self._node_name = node_name
        self.cluster = cluster
        self._cookie = normalize_cookie(cookie)
        self.creation = creation
        self.config = config if config is not None else TransportConfig()
        self._on_frames = on_frames
        self._on_node_up = on_node_up
        self._on_node_down = on_node_down
        self._stats = TransportStats()
        self._traffic = ChannelTraffic()
        self._peers: dict[str, _MemPeer] = {}
        self._state = "new"
        self._context = contextvars.copy_context()

    def context(self) -> contextvars.Context:
        """A copy of the context this endpoint was made in: whatever the network does on its
        behalf (deliveries, up and down callbacks) runs in it, so a simulated node's work stays
        its own (``SimCluster.pause`` holds exactly that work)."""
        return self._context.copy()

    @property
    def node_name(self) -> str:
        """This node's name."""
        return self._node_name

    @property
    def network(self) -> MemoryNetwork:
        """The network this endpoint is on."""
        return self._network

    async def start(self, listen: str | None = "127.0.0.1:0") -> tuple[str, int] | None:
        """Join the network; ``listen`` is ignored. Returns a placeholder address."""
        if self._state != "new":
            raise UsageError(f"endpoint {self._node_name!r} was already started")
        self._state = "running"
        self._network.loop.call_soon(self._network._network_changed)
        return ("memory", id(self) & 0xFFFF)

    def add_peer_address(self, name: str, host: str, port: int) -> None:
        """Accepted for interface parity; endpoints find each other by name."""
        if name == self._node_name:
            raise UsageError("a node does not connect to itself")

    async def connect(
        self,
        peer_name: str,
        host: str | None = None,
        port: int | None = None,
        *,
        retry: bool = True,
    ) -> None:
        """Return once connected to ``peer_name``, waiting for it to be running and reachable
        (with ``retry=False``, raise ``ConnectionRefusedError`` at once if it is not).

        Raises :class:`~ember.transport.AuthenticationError` if its cluster or cookie differ.
        """
        self._check_running()
        if peer_name == self._node_name:
            raise UsageError("a node does not connect to itself")
        peer = self._peer(peer_name)
        if peer.conn is not None:
            return
        waiter: asyncio.Future[None] = self._network.loop.create_future()
        peer.waiters.append(waiter)
        self._network._try_connect(self, peer_name)
        try:
            if not retry and peer.conn is None and not waiter.done():
                raise ConnectionRefusedError(f"node {peer_name!r} is not reachable")
            await waiter
        finally:
            if waiter in peer.waiters:
                peer.waiters.remove(waiter)

    def disconnect(self, peer: str) -> None:
        """Close the connection to ``peer``, if open (it sees ``"peer_closed"``)."""
        p = self._peers.get(peer)
        if p is not None and p.conn is not None:
            session = p.conn.session
            reasons = ("disconnected", "peer_closed")
            if session.b is self:
                reasons = ("peer_closed", "disconnected")
            self._network._session_down(session, *reasons)

    async def close(self) -> None:
        """Leave the network: connections go down, queued and in-flight frames are lost."""
        if self._state == "closed":
            return
        was_running = self._state == "running"
        self._state = "closed"
        if was_running:
            self._network._endpoint_closed(self)
        error = UsageError(f"endpoint {self._node_name!r} is closed")
        for p in self._peers.values():
            if p.give_up is not None:
                p.give_up.cancel()
            self._stats.dropped_on_close += p.outbox.close(error)
            for waiter in p.waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        await asyncio.sleep(0)  # let peers' down callbacks run, as a socket close would

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- internals ----------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != "running":
            raise UsageError(f"endpoint {self._node_name!r} is not running ({self._state})")

    def _peer(self, name: str) -> _MemPeer:
        p = self._peers.get(name)
        if p is None:
            outbox = Outbox(name, self.config, self._stats, self._traffic, self._network.loop)
            p = self._peers[name] = _MemPeer(name, outbox)
        return p

    def _route(self, name: str) -> _MemPeer:
        self._check_running()
        if name == self._node_name:
            raise UsageError("a node does not send to itself through its transport")
        if not self._network._knows(name):
            raise NoRoute(name)
        return self._peer(name)

    def _dial(self, p: _MemPeer) -> None:
        """Frames are queued for ``p`` with no connection: connect, or give up on them later."""
        if p.conn is not None or self._state != "running":
            return
        if p.give_up is None:
            # One attempt per episode of queued frames; later ones come with network changes.
            loop = self._network.loop
            p.give_up = loop.call_later(
                self.config.unreachable_timeout, self._give_up, p, context=self.context()
            )
            self._network._try_connect(self, p.name)

    def _give_up(self, p: _MemPeer) -> None:
        p.give_up = None
        if p.conn is None:
            dropped = p.outbox.discard()
            self._stats.dropped_unreachable += dropped
            if dropped:
                log.warning(
                    "%s: node %r unreachable: dropped %d queued frames",
                    self._node_name,
                    p.name,
                    dropped,
                )

    def _retry(self) -> None:
        for p in self._peers.values():
            if p.conn is None and (p.outbox.pending or p.waiters):
                self._network._try_connect(self, p.name)

    def _auth_failed(self, name: str, error: AuthenticationError) -> None:
        p = self._peer(name)
        waiters, p.waiters = p.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _open(self, link: _Link, peer_creation: int) -> None:
        p = self._peer(link.dst.node_name)
        p.conn = link
        if p.give_up is not None:
            p.give_up.cancel()
            p.give_up = None
        p.outbox.attach(link, link.dst.config.max_frame_size)
        self._network.loop.call_soon(
            self._notify_up, p, link, peer_creation, context=self.context()
        )

    def _notify_up(self, p: _MemPeer, link: _Link, peer_creation: int) -> None:
        if self._on_node_up is not None:
            self._call(self._on_node_up, p.name, peer_creation)
        waiters, p.waiters = p.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _closed_link(self, link: _Link, reason: str) -> None:
        p = self._peers.get(link.dst.node_name)
        if p is None or p.conn is not link:
            return
        p.conn = None
        p.outbox.detach()
        self._stats.dropped_disconnected += p.outbox.discard()
        if reason not in ("closed", "disconnected"):
            self._stats.connections_lost += 1
        if self._on_node_down is not None:
            self._network.loop.call_soon(
                self._call, self._on_node_down, p.name, reason, context=self.context()
            )

    def _receive(self, peer: str, frames: list[Frame]) -> None:
        self._call(self._on_frames, peer, frames)

    def _call(self, callback: Callable[..., object], *args: object) -> None:
        guarded_call(self._stats, self._node_name, callback, *args)
