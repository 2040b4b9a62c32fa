"""The TCP transport of one node: a listener, one connection per peer node, and their outboxes.

Connections are opened on demand: the first frame sent to a peer with no connection queues in
that peer's :class:`~ember.transport._queue.Outbox` and starts a *dialer*, a task that connects
(with backoff and jitter) to the address given by :meth:`Transport.add_peer_address`. The
outbox belongs to the peer, not to a connection, so what was queued before a connection opened
goes out on whichever connection opens, in order.

**One connection per node pair.** When both nodes dial each other at once, each sees an inbound
connection while its own dial is in progress. The acceptor decides, when the inbound handshake
completes: the connection *initiated by the node whose name sorts first* wins. If that is its own
dial it answers the inbound one ``"nok"``; otherwise it answers ``"ok"`` and abandons its own
dial. Both nodes apply the same rule to the same two names, so they agree. An inbound connection
from a node that is already connected is refused (``"alive"``); if the old connection is in fact
dead, heartbeats end it within ``heartbeat_timeout`` and the next attempt succeeds. The initiator
sends nothing until the acceptor's ``"ok"``, so a refused connection carries no frame.

**Losing a connection.** ``on_node_down`` fires; frames still queued for the peer are discarded
and counted (``dropped_disconnected``): they were sent before the node went down, and delivering
them to a later connection would break what ``noconnection`` promises (whatever was in flight may
be lost; nothing arrives after it from before it). Later sends start a new dialer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl as _ssl
from collections.abc import Callable
from typing import Any, Literal, Self

from .._errors import BindError, UsageError
from .._ratelog import RateLimitedLog
from ._admission import Admission, Admit, Refuse
from ._backoff import Backoff
from ._config import TransportConfig
from ._connection import Connection, ConnectionState, HandshakeTimeout, PeerRefused, Status
from ._cookie import normalize_cookie
from ._errors import ProtocolError
from ._faults import Faults, FaultyConnection
from ._handshake import Established, Handshake
from ._interface import OnFrames, OnNodeDown, OnNodeUp, guarded_call
from ._peers import PeerTable
from ._queue import NoRoute, Outbox
from ._stats import ChannelTraffic, TransportStats

__all__ = ["Transport", "parse_address"]

log = logging.getLogger("ember.transport")


def parse_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` (or ``"[v6]:port"``) into host and port."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"expected 'host:port', not {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Peer:
    """What a transport knows about one peer node."""

    __slots__ = (
        "conn",
        "creation",
        "dialer",
        "dialing",
        "name",
        "once",
        "outbox",
        "waiters",
        "wakeup",
    )

    def __init__(self, name: str, outbox: Outbox) -> None:
        self.name = name
        self.outbox = outbox
        self.conn: Connection | None = None
        """The open connection, if any."""
        self.creation: int | None = None
        """The peer's creation, as of its last open connection."""
        self.dialing: Connection | None = None
        """Our outbound connection in progress (TCP connect, handshake or awaiting status)."""
        self.dialer: asyncio.Task[None] | None = None
        """The task dialling this peer, if one runs."""
        self.waiters: list[asyncio.Future[None]] = []
        """``connect()`` callers waiting for a connection to open."""
        self.once: set[asyncio.Future[None]] = set()
        """Those of ``waiters`` that asked for one attempt (``connect(retry=False)``)."""
        self.wakeup: asyncio.Future[None] | None = None
        """The dialer's wait between attempts, cut short when a connection opens."""


def _wanted(p: _Peer) -> bool:
    """Whether a ``connect()`` caller is waiting for a connection to ``p``."""
    return any(not waiter.done() for waiter in p.waiters)


class Transport(PeerTable[_Peer]):
    """The TCP transport of one node.

    ``on_frames``, ``on_node_up`` and ``on_node_down`` are called as described in
    :mod:`ember.transport._interface`: from the loop, synchronously, never concurrently, must not
    block. ``cookie`` is the cluster's shared secret (surrounding whitespace is not part of it,
    ``str`` is UTF-8 encoded: see ``_cookie.py``); ``creation`` this node's incarnation number
    (0..2**32-1, different after each restart). ``ssl_server`` / ``ssl_client`` turn on TLS
    for accepted / dialled connections: they are passed as they are to
    ``loop.create_server`` / ``loop.create_connection``, so mutual authentication is whatever the
    contexts say (``verify_mode = CERT_REQUIRED`` on the server context for client
    certificates); the client verifies the server's certificate against the host it dials.
    ``rng`` seeds the backoff jitter; ``nonce_source`` makes handshake challenges (tests only).
    """

    def __init__(
        self,
        node_name: str,
        cluster: str,
        cookie: str | bytes,
        creation: int,
        config: TransportConfig | None = None,
        *,
        on_frames: OnFrames,
        on_node_up: OnNodeUp | None = None,
        on_node_down: OnNodeDown | None = None,
        ssl_server: _ssl.SSLContext | None = None,
        ssl_client: _ssl.SSLContext | None = None,
        rng: random.Random | None = None,
        nonce_source: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._cookie = normalize_cookie(cookie)
        # Validate names, cookie and creation now rather than at the first connection.
        Handshake(
            "acceptor",
            node_name=node_name,
            cluster=cluster,
            cookie=self._cookie,
            creation=creation,
            nonce_source=nonce_source,
        )
        self._node_name = node_name
        self.cluster = cluster
        self.creation = creation
        self.config = config if config is not None else TransportConfig()
        self._on_frames = on_frames
        self._on_node_up = on_node_up
        self._on_node_down = on_node_down
        self._ssl_server = ssl_server
        self._ssl_client = ssl_client
        self._rng = rng if rng is not None else random.Random()
        self._nonce_source = nonce_source
        self._stats = TransportStats()
        self._traffic = ChannelTraffic()
        config = self.config
        self.faults = Faults(
            node_name,
            self.send,
            enabled=config.fault_injection,
            rng=random.Random(self._rng.getrandbits(64)) if config.fault_injection else None,
        )
        """Fault injection at this node (see ``_faults.py``); refuses changes unless the config
        enables it. ``faults.channel`` asks other nodes to change theirs."""
        self.faults.add_listener(self._faults_changed)
        self._admission: Admission[Connection] = Admission(
            max_pending=config.max_pending_handshakes,
            silent_timeout=min(config.silent_handshake_timeout, config.handshake_timeout),
            failure_limit=config.handshake_failure_limit,
            failure_window=config.handshake_failure_window,
            suspect_pending=config.suspect_pending_handshakes,
        )
        self._warnings: RateLimitedLog | None = None  # made with the loop, in start()
        self._peers: dict[str, _Peer] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._connections: set[Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._all_closed: asyncio.Future[None] | None = None
        self._state = "new"  # -> "running" -> "closing" -> "closed"

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def node_name(self) -> str:
        """This node's name."""
        return self._node_name

    @property
    def address(self) -> tuple[str, int] | None:
        """The ``(host, port)`` this transport listens on, once started with a listener."""
        return self._address

    async def start(self, listen: str | None = "127.0.0.1:0") -> tuple[str, int] | None:
        """Start the transport; listen on ``listen`` (``"host:port"``, port 0 picks a free one)
        unless it is ``None``. Returns the bound ``(host, port)``. Raises
        :class:`~ember.BindError` if it cannot listen there (say, the port is in use)."""
        if self._state != "new":
            raise UsageError(f"transport {self._node_name!r} was already started")
        loop = self._loop = asyncio.get_running_loop()
        self._warnings = RateLimitedLog(log, self.config.warning_interval, loop.time, loop)
        self._state = "running"
        self._stop = asyncio.Event()
        group_ready: asyncio.Future[None] = loop.create_future()
        self._runner = loop.create_task(self._run(group_ready), name=f"transport {self._node_name}")
        self._runner.add_done_callback(self._runner_done)
        await group_ready
        if listen is not None:
            host, port = parse_address(listen)
            try:
                self._server = await loop.create_server(
                    self._accept,
                    host,
                    port,
                    ssl=self._ssl_server,
                    ssl_handshake_timeout=(
                        self.config.handshake_timeout if self._ssl_server else None
                    ),
                    reuse_address=True,
                )
            except BaseException as exc:
                await self.close()
                if isinstance(exc, OSError):
                    reason = exc.strerror or str(exc)
                    raise BindError(exc.errno, f"cannot listen on {listen}: {reason}") from exc
                raise
            sockname = self._server.sockets[0].getsockname()
            self._address = (str(sockname[0]), int(sockname[1]))
            log.info("node %r listening on %s:%d", self._node_name, *self._address)
        return self._address

    async def close(self) -> None:
        """Close gracefully: flush what is queued to open connections, close them all (each peer
        is reported down with reason ``"closed"``), stop dialling and listening. Waits at most
        about ``handshake_timeout`` for peers to take the last bytes. Idempotent."""
        if self._state in ("new", "closed"):
            self._state = "closed"
            return
        if self._state == "closing":
            assert self._runner is not None
            await asyncio.shield(self._runner)
            return
        self._state = "closing"
        loop = self._loop
        assert loop is not None and self._stop is not None and self._runner is not None
        if self._server is not None:
            self._server.close()
        for peer in self._peers.values():
            if peer.dialer is not None:
                peer.dialer.cancel()
            if peer.conn is not None:
                peer.outbox.flush()  # one last coalesced write of what is queued
        for conn in list(self._connections):
            conn.close("closed")
        if self._connections:
            self._all_closed = loop.create_future()
            # Each close() aborts after a handshake timeout; past that, a connection that never
            # reported closed is a bug: say so, and do not hang the node's stop on it.
            try:
                async with asyncio.timeout(self.config.handshake_timeout + 1.0):
                    await self._all_closed
            except TimeoutError:
                log.error(
                    "%s: closing: %d connections never reported closed: %s",
                    self._node_name,
                    len(self._connections),
                    sorted(map(repr, self._connections)),
                )
                self._connections.clear()
        error = UsageError(f"transport {self._node_name!r} is closed")
        for peer in self._peers.values():
            self._stats.dropped_on_close += peer.outbox.close(error)
            for waiter in peer.waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        self._stop.set()
        assert self._warnings is not None
        self._warnings.flush()
        try:
            await self._runner
        finally:
            self._state = "closed"
            if self._server is not None:
                await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- public API ---------------------------------------------------------------------------

    def add_peer_address(self, name: str, host: str, port: int) -> None:
        """Record where to dial ``name``; used by later sends and reconnects."""
        if name == self._node_name:
            raise UsageError("a node does not connect to itself")
        self._addresses[name] = (host, port)

    async def connect(
        self,
        peer_name: str,
        host: str | None = None,
        port: int | None = None,
        *,
        retry: bool = True,
    ) -> None:
        """Return once a connection to ``peer_name`` is open, dialling until then.

        ``host``/``port``, if given, are recorded as the peer's address first. Failed TCP
        attempts are retried with backoff for as long as the caller waits (bound it with
        ``asyncio.timeout``); with ``retry=False`` the first failed attempt raises what it
        failed with instead (``ConnectionRefusedError``, a ``TimeoutError``, a
        :class:`PeerRefused`...), for a client that should say at once that nobody answers.
        A failed handshake (wrong cookie or cluster, protocol error) raises
        its :class:`~ember.transport.ProtocolError` or
        :class:`~ember.transport.AuthenticationError`, since retrying will not fix it. If both
        nodes dial each other, this returns when the winning connection opens, whichever it is.
        """
        self._check_running()
        if host is not None and port is not None:
            self.add_peer_address(peer_name, host, port)
        elif peer_name not in self._addresses and not self.is_connected(peer_name):
            raise NoRoute(peer_name)
        peer = self._peer(peer_name)
        if peer.conn is not None:
            return
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        peer.waiters.append(waiter)
        if not retry:
            peer.once.add(waiter)
        self._dial(peer)
        try:
            await waiter
        finally:
            peer.once.discard(waiter)
            if waiter in peer.waiters:
                peer.waiters.remove(waiter)

    def disconnect(self, peer: str) -> None:
        """Close the connection to ``peer`` gracefully, if one is open; it is reported down."""
        p = self._peers.get(peer)
        if p is not None and p.conn is not None:
            p.outbox.flush()
            p.conn.close("disconnected")

    # -- ConnectionOwner ----------------------------------------------------------------------

    def connection_accepting(self, conn: Connection) -> Admit[Connection] | Refuse | None:
        if self._state != "running":
            return None
        assert self._loop is not None and self._warnings is not None
        verdict = self._admission.arrive(conn, conn.remote_host, self._loop.time())
        if isinstance(verdict, Refuse):
            if verdict.kind == "busy":
                self._stats.refused_busy += 1
            else:
                self._stats.rate_limited += 1
            self._warnings.emit(
                ("refused", verdict.kind),
                "%s: refusing %s: %s: %s",
                self._node_name,
                conn.remote,
                verdict.kind,
                verdict.detail,
            )
            return verdict
        if verdict.evict:
            self._stats.evicted_silent += len(verdict.evict)
            for victim in verdict.evict:
                victim.refuse("busy", "closed to make room: it sent nothing while others waited")
            self._warnings.emit(
                ("evicted",),
                "%s: closed %d silent handshakes to make room (the last from %s)",
                self._node_name,
                len(verdict.evict),
                verdict.evict[-1].remote,
            )
        if verdict.suspect:
            self._stats.suspect_handshakes += 1
        self._connections.add(conn)
        return verdict

    def connection_spoke(self, conn: Connection) -> None:
        claimed = conn.claimed_peer
        if self.faults.active and claimed is not None and self.faults.blocks(claimed):
            self.faults.count("blocked_connections")
            conn.abort("partitioned")  # as if its bytes never arrived
            return
        self._admission.spoke(conn)

    def connection_verdict(self, conn: Connection, peer: Established) -> Status:
        if self._state != "running":
            return "closing"
        name = peer.peer_name
        p = self._peer(name)
        if p.conn is not None:
            self._stats.refused_duplicate += 1
            log.warning(
                "%s: refusing a second connection from node %r (%s): already connected",
                self._node_name,
                name,
                conn.remote,
            )
            return "alive"
        if p.dialing is not None:
            self._stats.simultaneous_connects += 1
            if self._node_name < name:
                log.debug("%s: simultaneous connect with %r: ours wins", self._node_name, name)
                return "nok"
            log.debug("%s: simultaneous connect with %r: theirs wins", self._node_name, name)
            self._abandon_dial(p)
        return "ok"

    def connection_open(self, conn: Connection) -> None:
        assert self._loop is not None
        self._admission.leave(conn, self._loop.time(), failed=False)
        self._connections.add(conn)
        p = self._peer(conn.peer_name)
        if p.dialing is conn:
            p.dialing = None
        if p.conn is not None:  # cannot happen if both nodes follow the protocol
            log.error(
                "%s: %r opened a second connection; closing it", self._node_name, conn.peer_name
            )
            conn.close("duplicate")
            return
        p.conn = conn
        p.creation = conn.peer_creation
        conn.outbox = p.outbox
        p.outbox.attach(conn, conn.peer_max_frame_size)
        waiters, p.waiters = p.waiters, []
        if p.wakeup is not None:
            waiters.append(p.wakeup)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        log.info("%s: node %r up (%s, %s)", self._node_name, p.name, conn.role, conn.remote)
        if self._on_node_up is not None:
            self._call(self._on_node_up, p.name, conn.peer_creation)

    def connection_closed(
        self, conn: Connection, reason: str, error: BaseException | None, was_open: bool
    ) -> None:
        self._connections.discard(conn)
        if conn in self._admission and self._loop is not None:
            failed = isinstance(error, ProtocolError | HandshakeTimeout)
            self._admission.leave(conn, self._loop.time(), failed=failed)
        p = self._peers.get(conn.peer_name) if conn.peer_name else None
        if p is not None and p.dialing is conn:
            p.dialing = None
        if was_open and p is not None and p.conn is conn:
            p.conn = None
            conn.outbox = None
            p.outbox.detach()
            self._stats.dropped_disconnected += p.outbox.discard()
            if reason not in ("closed", "disconnected"):
                self._stats.connections_lost += 1
            log.info("%s: node %r down: %s", self._node_name, p.name, reason)
            if self._on_node_down is not None:
                self._call(self._on_node_down, p.name, reason)
        if self._all_closed is not None and not self._connections and not self._all_closed.done():
            self._all_closed.set_result(None)

    # -- internals ----------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != "running":
            raise UsageError(f"transport {self._node_name!r} is not running ({self._state})")

    def _peer(self, name: str) -> _Peer:
        p = self._peers.get(name)
        if p is None:
            assert self._loop is not None
            outbox = Outbox(name, self.config, self._stats, self._traffic, self._loop)
            p = self._peers[name] = _Peer(name, outbox)
        return p

    def _route(self, name: str) -> _Peer:
        """The peer to queue a frame for when no connection is open, or raise."""
        self._check_running()
        p = self._peers.get(name)
        if p is None or (p.dialer is None and p.dialing is None):
            if name == self._node_name:
                raise UsageError("a node does not send to itself through its transport")
            if name not in self._addresses:
                raise NoRoute(name)
            p = self._peer(name)
        return p

    def _handshake(
        self, role: Literal["initiator", "acceptor"], expected_peer: str | None = None
    ) -> Handshake:
        return Handshake(
            role,
            node_name=self._node_name,
            cluster=self.cluster,
            cookie=self._cookie,
            creation=self.creation,
            nonce_source=self._nonce_source,
            expected_peer=expected_peer,
            max_frame_size=self.config.max_frame_size,
        )

    def _accept(self) -> Connection:
        assert self._loop is not None
        handshake = self._handshake("acceptor")
        return self._connection(handshake)

    def _connection(self, handshake: Handshake) -> Connection:
        assert self._loop is not None and self._warnings is not None
        options: dict[str, Any] = {
            "config": self.config,
            "stats": self._stats,
            "traffic": self._traffic,
            "on_frames": self._on_frames,
            "loop": self._loop,
            "warnings": self._warnings,
        }
        if self.faults.enabled:  # else the plain class: no fault check on any read or write
            return FaultyConnection(self, handshake, faults=self.faults, **options)
        return Connection(self, handshake, **options)

    def _faults_changed(self) -> None:
        """After a heal, dial at once the peers we are waiting to redial, and let open
        connections deliver what the partition held (next turn: not inside a request)."""
        for p in self._peers.values():
            if p.wakeup is not None and not p.wakeup.done() and not self.faults.blocks(p.name):
                p.wakeup.set_result(None)
            conn = p.conn
            if isinstance(conn, FaultyConnection) and conn.holding and self._loop is not None:
                self._loop.call_soon(conn.release)

    def _dial(self, p: _Peer) -> None:
        if p.conn is None and p.dialer is None and self._state == "running":
            assert self._group is not None
            p.dialer = self._group.create_task(self._dial_loop(p), name=f"dial {p.name}")

    def _abandon_dial(self, p: _Peer) -> None:
        """Drop our dial to ``p``: an inbound connection from it wins."""
        if p.dialing is not None:
            p.dialing.abort("abandoned")
            p.dialing = None
        if p.dialer is not None:
            p.dialer.cancel()
            p.dialer = None

    async def _dial_loop(self, p: _Peer) -> None:
        """Dial ``p`` until a connection opens, nobody needs one, or we give up on its frames."""
        config = self.config
        backoff = Backoff(
            config.connect_backoff_initial,
            config.connect_backoff_max,
            config.connect_backoff_jitter,
            self._rng,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.current_task()
        try:
            while p.conn is None and (p.outbox.pending or _wanted(p)):
                address = self._addresses.get(p.name)
                if address is None:
                    self._fail_waiters(p, NoRoute(p.name))
                    self._stats.dropped_unreachable += p.outbox.discard()
                    return
                try:
                    await self._dial_once(p, *address)
                    return
                except ProtocolError as exc:  # AuthenticationError included: connect() raises it
                    self._fail_waiters(p, exc)
                except PeerRefused as exc:
                    if exc.status in ("nok", "alive", "closing"):  # races settled by the rule
                        log.debug("%s: dial to %r refused: %s", self._node_name, p.name, exc.status)
                    else:
                        assert self._warnings is not None
                        self._warnings.emit(
                            ("refused_by", p.name),
                            "%s: node %r refused our connection for now (%s); retrying",
                            self._node_name,
                            p.name,
                            exc.status,
                        )
                    self._fail_once(p, exc)
                except (OSError, HandshakeTimeout, TimeoutError) as exc:
                    self._stats.connect_failures += 1
                    log.debug(
                        "%s: dial to %r at %s:%d failed: %r", self._node_name, p.name, *address, exc
                    )
                    self._fail_once(p, exc)
                if p.conn is not None:
                    return
                if p.outbox.pending and loop.time() - started >= config.unreachable_timeout:
                    dropped = p.outbox.discard()
                    self._stats.dropped_unreachable += dropped
                    log.warning(
                        "%s: node %r unreachable for %.1fs: dropped %d queued frames",
                        self._node_name,
                        p.name,
                        loop.time() - started,
                        dropped,
                    )
                    if not _wanted(p):
                        return
                # Wait before the next attempt, unless a connection (say, inbound) opens first.
                p.wakeup = loop.create_future()
                try:
                    async with asyncio.timeout(backoff.next()):
                        await p.wakeup
                except TimeoutError:
                    pass
                finally:
                    p.wakeup = None
        finally:
            if p.dialer is task:
                p.dialer = None

    async def _dial_once(self, p: _Peer, host: str, port: int) -> None:
        assert self._loop is not None
        if self.faults.active and self.faults.blocks(p.name):
            self.faults.count("blocked_connections")
            raise TimeoutError(f"node {p.name!r} is partitioned from us (fault injection)")
        conn = self._connection(self._handshake("initiator", expected_peer=p.name))
        assert conn.ready is not None
        p.dialing = conn
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                await self._loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=self._ssl_client,
                    # Verify the certificate against the node we mean to reach, not its address.
                    server_hostname=p.name if self._ssl_client is not None else None,
                    ssl_handshake_timeout=(
                        self.config.handshake_timeout if self._ssl_client else None
                    ),
                )
            # uvloop may have delivered connection_lost already (a peer that resets the
            # connection at once): a closed connection tracked here would be waited for
            # by close() forever.
            if conn.state is not ConnectionState.CLOSED:
                self._connections.add(conn)
            await conn.ready
        except BaseException:
            conn.abort("dial_failed")
            if not conn.ready.done():
                conn.ready.cancel()
            raise
        finally:
            if p.dialing is conn:
                p.dialing = None

    def _fail_once(self, p: _Peer, error: BaseException) -> None:
        """Fail the ``connect(retry=False)`` callers with the attempt's error."""
        for waiter in [w for w in p.waiters if w in p.once]:
            if not waiter.done():
                waiter.set_exception(error)

    def _fail_waiters(self, p: _Peer, error: BaseException) -> None:
        waiters, p.waiters = p.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _call(self, callback: Callable[..., object], *args: object) -> None:
        guarded_call(self._stats, self._node_name, callback, *args)

    async def _run(self, group_ready: asyncio.Future[None]) -> None:
        """Own the dialer tasks in a task group for the transport's life."""
        assert self._stop is not None
        async with asyncio.TaskGroup() as group:
            self._group = group
            group_ready.set_result(None)
            await self._stop.wait()
            for p in self._peers.values():
                if p.dialer is not None:
                    p.dialer.cancel()

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("transport %r crashed", self._node_name, exc_info=task.exception())
