"""The asyncio shell around the SWIM core: UDP datagrams, the transport's membership channel,
discovery, and member events for the layers above.

Probes, acks and gossip travel as authenticated UDP datagrams (``_packet.py``), so failure
detection never waits behind bulk traffic on a TCP stream; push-pull state sync and fallback
probes travel as frames on the node transport's membership channel, which is authenticated and
ordered and has no size limit that matters here. UDP and TCP share one port number: a member's
address ``host:port`` names both.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from .._errors import BindError, EmberError, NameTaken, UsageError
from .._tasks import OwnedTasks
from ..transport._errors import ProtocolError
from ..transport._faults import Faults
from ..transport._frame import Channel
from ..transport._transport import parse_address
from ._config import SwimConfig
from ._discovery import Discovery, Seed, format_address
from ._events import (
    MemberAlive,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    Outgoing,
    SwimStatistics,
)
from ._messages import Member, MemberStatus, Meta, PushPull, decode_packet, encode_packet
from ._packet import (
    PACKET_OVERHEAD,
    Kind,
    decode_holder,
    decode_iam,
    decode_whohas,
    encode_holder,
    encode_iam,
    encode_whohas,
    mesh_key,
    open_packet,
    seal,
)
from ._swim import Swim

__all__ = ["Membership", "MeshStatistics", "fetch_members"]

log = logging.getLogger("ember.mesh")

MemberListener = Callable[[MemberEvent], None]

_LIVE = (MemberStatus.ALIVE, MemberStatus.SUSPECT)
_AWAITING_LIMIT = 8
"""TCP packets kept per seed address while we learn which node listens there."""
ASK_TRIES = 3
"""Times a question to a seed (``WHOHAS``, ``WHOIS``) is sent, ``probe_timeout`` apart, before
it counts as unanswered: a lost datagram is not an unreachable seed."""


class _Transport(Protocol):
    def add_peer_address(self, name: str, host: str, port: int) -> None: ...
    def send(self, peer: str, channel: Channel, payload: bytes) -> None: ...
    def disconnect(self, peer: str) -> None: ...


class DatagramSocket(Protocol):
    """What the shell needs of its UDP socket (an ``asyncio.DatagramTransport`` is one; the
    simulated network's ``MemoryDatagrams`` is another)."""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None: ...

    def close(self) -> None: ...


OpenDatagrams = Callable[
    [Callable[[bytes, tuple[str, int]], None], tuple[str, int]], Awaitable[DatagramSocket]
]
"""``open(on_datagram, bind)`` returns a bound datagram socket that calls ``on_datagram(data,
source)`` from the loop for each datagram it receives."""


class _Router(Protocol):
    def add_channel_handler(
        self, channel: Channel, handler: Callable[[str, bytes], None]
    ) -> None: ...
    def remove_channel_handler(self, channel: Channel) -> None: ...


@dataclass(slots=True)
class MeshStatistics:
    """Counters of the shell (the core's own are in ``swim``)."""

    udp_sent: int = 0
    udp_bytes_sent: int = 0
    udp_received: int = 0
    udp_bytes_received: int = 0
    udp_errors: int = 0
    """Datagrams the socket refused or reported an error for (ICMP unreachable...)."""
    tcp_sent: int = 0
    tcp_bytes_sent: int = 0
    tcp_received: int = 0
    tcp_send_errors: int = 0
    """Membership frames the transport could not queue (no route, full queue)."""
    auth_failures: int = 0
    """Datagrams with a bad tag: another cluster or cookie, or tampering."""
    malformed: int = 0
    """Datagrams or frames that were not valid membership packets."""
    whois_sent: int = 0
    names_learnt: int = 0
    awaiting_dropped: int = 0
    """Packets for a seed whose name never became known in time."""
    listener_errors: int = 0
    discovered: int = 0
    """Peers introduced by discovery."""
    rejoins: int = 0
    """Times the shell found itself alone and asked its seeds and discovery again."""
    seed_failures: int = 0
    """Times a seed did not answer (refused, or silent for ``ASK_TRIES`` probe timeouts)."""
    swim: SwimStatistics = field(default_factory=SwimStatistics)

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (``swim`` nested)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "swim"}
        out["swim"] = {f.name: getattr(self.swim, f.name) for f in fields(self.swim)}
        return out


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: Membership) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.owner.stats.udp_errors += 1


class _Asking(_Datagrams):
    """A socket connected to one seed for one question: unlike the node's own unconnected
    socket, it hears the ICMP refusal of a port nobody listens on, so the warning can say
    "connection refused" rather than only "no answer"."""

    def __init__(self, owner: Membership, answer: asyncio.Future[Any]) -> None:
        super().__init__(owner)
        self.answer = answer

    def error_received(self, exc: Exception) -> None:
        super().error_received(exc)
        if not self.answer.done():
            self.answer.set_exception(exc)


class Membership:
    """One node's membership: a :class:`Swim` core driven by the event loop.

    ``host:port`` is the address other members reach this node at (UDP and TCP). ``seeds`` are
    static seeds; ``discovery`` sources introduce more peers over time. ``incarnation`` defaults
    to the wall clock in milliseconds, so a node restarted under the same name outranks its
    past self in every view. ``datagrams`` opens the UDP socket (default: a real one bound at
    ``host:port``; the simulated network passes its own). Listeners (:meth:`add_listener`) are
    called from the loop, synchronously, in event order; what they raise is logged and counted.
    """

    def __init__(
        self,
        *,
        name: str,
        cluster: str,
        cookie: str | bytes,
        transport: _Transport,
        router: _Router,
        config: SwimConfig,
        host: str,
        port: int,
        meta: Meta | None = None,
        seeds: Sequence[Seed] = (),
        discovery: Sequence[Discovery] = (),
        incarnation: int | None = None,
        rng: random.Random | None = None,
        datagrams: OpenDatagrams | None = None,
    ) -> None:
        if config.packet_overhead < PACKET_OVERHEAD:
            raise UsageError(
                f"packet_overhead must be at least {PACKET_OVERHEAD} for the UDP shell, "
                f"not {config.packet_overhead}"
            )
        self.name = name
        self.cluster = cluster
        self.config = config
        self.address = format_address(host, port)
        self._bind = (host, port)
        self._key = mesh_key(cookie, cluster)
        self._transport = transport
        faults = getattr(transport, "faults", None)
        self._faults: Faults | None = (
            faults if isinstance(faults, Faults) and faults.enabled else None
        )
        """The transport's fault injection, when enabled: it covers datagrams too."""
        self._router = router
        self._rng = rng if rng is not None else random.Random()
        self._meta = meta
        self._service_meta: dict[str, Any] = {}
        self._incarnation = incarnation if incarnation is not None else time.time_ns() // 1_000_000
        self._static = list(seeds)
        self._discovery = list(discovery)
        self._swim: Swim | None = None
        self._open_datagrams = datagrams
        self._udp: DatagramSocket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context = contextvars.copy_context()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._listeners: list[MemberListener] = []
        self._gossip_listeners: list[Callable[[str, bytes], None]] = []
        self._gossip_seq = 0
        self._names: dict[str, str] = {}
        """address -> node name, for TCP packets to seeds known only by address."""
        self._awaiting: dict[str, list[bytes]] = {}
        self._whois: dict[bytes, str] = {}
        self._asks: dict[bytes, asyncio.Future[Any]] = {}
        """Questions to seeds waiting for their answer, by nonce."""
        self._seed_failures: dict[str, int] = {}
        """Seed address -> unanswered rounds in a row (warned at 1, 2, 4, 8...)."""
        self._addresses: dict[str, tuple[str, int]] = {}
        self._tasks = OwnedTasks(log, "membership task")
        self._left = asyncio.Event()
        self._closed = False
        self._unlisten: Callable[[], None] | None = None
        self.stats = MeshStatistics()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the UDP socket, start the core, discovery and the join."""
        loop = self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        try:
            if self._open_datagrams is not None:
                self._udp = await self._open_datagrams(self._on_datagram, self._bind)
            else:
                self._udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self), local_addr=self._bind
                )
        except OSError as exc:
            raise BindError(
                exc.errno, f"cannot bind the membership UDP socket {self.address}: {exc}"
            ) from exc
        self._swim = Swim(
            self.name,
            self.address,
            self.config,
            self._rng,
            loop.time(),
            meta=self._metadata(),
            incarnation=self._incarnation,
        )
        self._router.add_channel_handler(Channel.MEMBERSHIP, self._on_frame)
        # A router that reports transport connections (the distribution does): a connection
        # to a member held failed starts a push-pull with it at once (``Swim.connected``).
        add_node_listener = getattr(self._router, "add_node_listener", None)
        if add_node_listener is not None:
            self._unlisten = add_node_listener(self._on_node)
        for seed in self._static:
            self._learn(seed)
        for source in self._discovery:
            await source.start(self._on_found)
        seeds = await self._gather_seeds()
        try:
            await self._check_seeds(seeds)
        except BaseException:
            await self.stop()
            raise
        self._swim.join([s.address for s in seeds], now=loop.time())
        self._flush()
        self._tasks.spawn(self._rejoin_loop())

    async def leave(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109 - a grace period
        """Leave gracefully: gossip our departure until every live member has heard it (or
        ``timeout``), then :meth:`stop`."""
        swim = self._swim
        if swim is not None and not self._closed and not swim.left:
            swim.leave(now=self._now())
            self._flush()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._left.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stop at once (no leave message: the others will detect a failure); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        await self._tasks.cancel_all()
        for source in self._discovery:
            try:
                await source.stop()
            except Exception:
                log.exception("discovery %r failed to stop", source)
        self._router.remove_channel_handler(Channel.MEMBERSHIP)
        if self._unlisten is not None:
            self._unlisten()
        if self._udp is not None:
            self._udp.close()

    # -- API --------------------------------------------------------------------------------

    def members(self) -> tuple[Member, ...]:
        """The current view, this node included, sorted by name."""
        return self._core().members()

    def member(self, name: str) -> Member | None:
        """One member as this node sees it, or None."""
        return self._core().member(name)

    def add_listener(self, listener: MemberListener) -> Callable[[], None]:
        """Call ``listener(event)`` for every member event; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def gossip(self, topic: str, data: bytes) -> bool:
        """Broadcast ``data`` under ``topic`` to every member on the gossip's UDP packets,
        where it fits (epidemic: each member passes it on). It reaches the gossip listeners of
        the other members at most once each, in no particular order, and may be lost (UDP):
        for layers that repair what gossip misses. False when it was not queued (too large
        for a packet, or the gossip queue is full)."""
        self._gossip_seq += 1
        queued = self._core().gossip(f"{topic}#{self.name}#{self._gossip_seq}", data)
        if queued:
            self._schedule()
        return queued

    def add_gossip_listener(self, listener: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Call ``listener(topic, data)`` for every broadcast other members :meth:`gossip`
        (from the loop; what it raises is logged and counted); returns its remover."""
        self._gossip_listeners.append(listener)
        listeners = self._gossip_listeners
        return lambda: listeners.remove(listener) if listener in listeners else None

    def update_meta(self, meta: Meta) -> None:
        """Replace this node's own metadata (what ``Node(meta=...)`` gave); gossiped with a new
        incarnation. The entries services set with :meth:`set_meta_entry` stay."""
        self._meta = dict(meta)
        self._publish_meta()

    def set_meta_entry(self, key: str, value: Any) -> None:
        """Set (``None``: remove) one entry a layer of this node publishes in its metadata,
        such as the registry's or the contracts' keys; the user's :meth:`update_meta` never
        erases it. Gossiped only when it changes."""
        if self._service_meta.get(key) == value:
            return
        if value is None:
            self._service_meta.pop(key, None)
        else:
            self._service_meta[key] = value
        if self._swim is not None:
            self._publish_meta()

    def _metadata(self) -> Meta:
        return {**(self._meta or {}), **self._service_meta}

    def _publish_meta(self) -> None:
        self._core().update_meta(self._metadata(), now=self._now())
        self._flush()

    @property
    def incarnation(self) -> int:
        """This node's current incarnation."""
        return self._core().incarnation

    def statistics(self) -> MeshStatistics:
        """A snapshot of the shell's and the core's counters."""
        snap = MeshStatistics(**{f.name: getattr(self.stats, f.name) for f in fields(self.stats)})
        snap.swim = self._core().statistics()
        return snap

    # -- driving the core -------------------------------------------------------------------

    def _core(self) -> Swim:
        if self._swim is None:
            raise UsageError("membership is not started")
        return self._swim

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if self._closed or self._swim is None:
            return
        self._swim.tick(self._now())
        self._flush()

    def _schedule(self) -> None:
        assert self._swim is not None and self._loop is not None
        at = self._swim.next_deadline()
        if at == float("inf"):
            return
        # Never spin: a deadline already due runs on the next loop iteration at the earliest.
        at = max(at, self._now() + 0.001)
        if self._timer is not None:
            if at >= self._timer_at - 0.0005:
                return
            self._timer.cancel()
        self._timer_at = at
        # The timer runs as this node, whoever's call made the core produce work.
        self._timer = self._loop.call_at(at, self._on_timer, context=self._context.copy())

    def _flush(self) -> None:
        """Send what the core produced, publish its events, re-arm the timer."""
        swim = self._swim
        if swim is None or self._closed:
            return
        ready = swim.ready()
        for out in ready.messages:
            self._send(out)
        for event in ready.events:
            self._apply_event(event)
        for key, data in ready.custom:
            topic = key.partition("#")[0]
            for gossip_listener in list(self._gossip_listeners):
                try:
                    gossip_listener(topic, data)
                except Exception:
                    self.stats.listener_errors += 1
                    log.exception("gossip listener %r raised", gossip_listener)
        if swim.left and swim.leave_done:
            self._left.set()
        self._schedule()

    def _send(self, out: Outgoing) -> None:
        body = encode_packet(out.messages)
        if out.transport == "udp":
            self._send_datagram(out.address, Kind.SWIM, body)
            return
        name = out.node or self._names.get(out.address)
        if name is None:
            waiting = self._awaiting.setdefault(out.address, [])
            if len(waiting) >= _AWAITING_LIMIT:
                waiting.pop(0)
                self.stats.awaiting_dropped += 1
            waiting.append(body)
            self._ask_name(out.address)
            return
        self._send_frame(name, out.address, Kind.SWIM, body)

    def _send_frame(self, name: str, address: str, kind: Kind, body: bytes) -> None:
        if name == self.name:
            return
        try:
            host, port = self._parse(address)
            self._transport.add_peer_address(name, host, port)
            self._transport.send(name, Channel.MEMBERSHIP, bytes((kind,)) + body)
        except (EmberError, ValueError) as exc:
            self.stats.tcp_send_errors += 1
            log.debug("membership frame to %s (%s) not sent: %s", name, address, exc)
            return
        self.stats.tcp_sent += 1
        self.stats.tcp_bytes_sent += len(body) + 1

    def _send_datagram(self, address: str, kind: Kind, body: bytes) -> None:
        if self._udp is None:
            return
        try:
            target = self._parse(address)
        except (EmberError, ValueError):
            self.stats.udp_errors += 1
            return
        data = seal(self._key, kind, body)
        faults = self._faults
        lag = 0.0
        if faults is not None and faults.active:
            if self._blocked(faults, address, "blocked_frames") or faults.lose():
                return
            lag = faults.lag()
        if lag:
            assert self._loop is not None
            self._loop.call_later(lag, self._udp.sendto, data, target)
        else:
            self._udp.sendto(data, target)
        self.stats.udp_sent += 1
        self.stats.udp_bytes_sent += len(data)

    def _blocked(self, faults: Faults, address: str, what: str) -> bool:
        """Whether fault injection partitions us from the node at ``address`` (counted)."""
        name = self._names.get(address)
        if name is not None and faults.blocks(name):
            faults.count(what)
            return True
        return False

    def _parse(self, address: str) -> tuple[str, int]:
        parsed = self._addresses.get(address)
        if parsed is None:
            parsed = parse_address(address)
            if len(self._addresses) > 4096:
                self._addresses.clear()
            self._addresses[address] = parsed
        return parsed

    # -- names of seeds ---------------------------------------------------------------------

    def _learn(self, seed: Seed) -> None:
        if seed.name is not None and seed.name != self.name:
            self._learn_name(seed.address, seed.name)

    def _learn_name(self, address: str, name: str) -> None:
        if self._names.get(address) != name:
            self._names[address] = name
            self.stats.names_learnt += 1
        for body in self._awaiting.pop(address, ()):
            self._send_frame(name, address, Kind.SWIM, body)

    def _ask_name(self, address: str) -> None:
        nonce = self._rng.randbytes(8)
        if len(self._whois) > 1024:
            self._whois.clear()
        self._whois[nonce] = address
        self.stats.whois_sent += 1
        self._send_datagram(address, Kind.WHOIS, nonce)

    # -- inputs -----------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[Any, int]) -> None:
        if self._closed or self._swim is None:
            return
        faults = self._faults
        if faults is not None and faults.active:
            sender = format_address(addr[0], addr[1])
            if self._blocked(faults, sender, "blocked_reads"):
                return
        self.stats.udp_received += 1
        self.stats.udp_bytes_received += len(data)
        try:
            kind, body = open_packet(self._key, data)
            sender = format_address(addr[0], addr[1])
            if kind is Kind.SWIM:
                now = self._now()
                for message in decode_packet(body):
                    self._swim.receive(now, sender, message, transport="udp")
            elif kind is Kind.WHOIS:
                self._send_datagram(sender, Kind.IAM, encode_iam(body, self.name))
            elif kind is Kind.IAM:
                nonce, name = decode_iam(body)
                address = self._whois.pop(nonce, None)
                if address is not None:
                    self._learn_name(address, name)
                self._answered(nonce, name)
            elif kind is Kind.WHOHAS:
                nonce, name = decode_whohas(body)
                member = self._swim.member(name)
                holder = member.address if member is not None and member.status in _LIVE else None
                self._send_datagram(sender, Kind.HOLDER, encode_holder(nonce, self.name, holder))
            elif kind is Kind.HOLDER:
                nonce, responder, holder = decode_holder(body)
                self._answered(nonce, (responder, holder))
            else:
                raise ProtocolError("malformed", f"{kind.name} is not sent over UDP")
        except ProtocolError as exc:
            if exc.kind in ("auth", "cluster"):
                self.stats.auth_failures += 1
            else:
                self.stats.malformed += 1
            log.debug("bad membership datagram from %s: %s", addr, exc)
        self._flush()

    def _on_frame(self, peer: str, payload: bytes) -> None:
        if self._closed or self._swim is None or not payload:
            return
        self.stats.tcp_received += 1
        try:
            kind = Kind(payload[0])
            body = payload[1:]
            if kind is Kind.SWIM:
                now = self._now()
                known = self._swim.member(peer)
                sender = known.address if known is not None else ""
                for message in decode_packet(body):
                    if isinstance(message, PushPull) and message.sender == peer:
                        self._learn_name(message.sender_address, peer)
                    self._swim.receive(now, sender, message, transport="tcp")
            elif kind is Kind.MEMBERS:
                reply = PushPull(self.name, self.address, self._swim.members(), reply=True)
                self._transport.send(
                    peer, Channel.MEMBERSHIP, bytes((Kind.MEMBERS_REPLY,)) + encode_packet([reply])
                )
            else:
                raise ProtocolError("malformed", f"{kind.name} is not sent over TCP")
        except (ProtocolError, ValueError) as exc:
            self.stats.malformed += 1
            log.warning("bad membership frame from %s: %s", peer, exc)
        except EmberError as exc:
            self.stats.tcp_send_errors += 1
            log.debug("membership reply to %s not sent: %s", peer, exc)
        self._flush()

    def _on_node(self, peer: str, up: bool) -> None:
        """The transport opened (or lost) its connection to ``peer``."""
        if up and not self._closed and self._swim is not None:
            self._swim.connected(peer, now=self._now())
            self._flush()

    def _on_found(self, seed: Seed) -> None:
        """A discovery source found a peer: introduce it unless it is already a live member."""
        if self._closed or self._swim is None or seed.address == self.address:
            return
        if seed.name == self.name:
            return
        self._learn(seed)
        known = self._swim.member(seed.name) if seed.name is not None else None
        if known is not None and known.status in _LIVE:
            return
        self.stats.discovered += 1
        self._swim.sync(seed.address, seed.name, now=self._now())
        self._flush()

    # -- events -----------------------------------------------------------------------------

    def _apply_event(self, event: MemberEvent) -> None:
        member = event.member
        if member.name != self.name:
            if isinstance(event, MemberJoined | MemberUpdated | MemberAlive):
                self._learn_name(member.address, member.name)
                try:
                    host, port = self._parse(member.address)
                    self._transport.add_peer_address(member.name, host, port)
                except (EmberError, ValueError):
                    log.warning("member %s has a bad address %r", member.name, member.address)
            elif isinstance(event, MemberFailed | MemberLeft):
                # The distribution layer follows: links and monitors get noconnection.
                self._transport.disconnect(member.name)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                self.stats.listener_errors += 1
                log.exception("member listener %r raised", listener)

    # -- rejoin -----------------------------------------------------------------------------

    async def _gather_seeds(self) -> list[Seed]:
        seeds = list(self._static)
        for source in self._discovery:
            try:
                async with asyncio.timeout(5.0):
                    found = await source.seeds()
            except Exception as exc:
                log.warning("discovery %r failed: %s", source, exc)
                continue
            for seed in found:
                self._learn(seed)
                seeds.append(seed)
        return [s for s in seeds if s.address != self.address and s.name != self.name]

    # -- asking seeds -------------------------------------------------------------------------

    async def _check_seeds(self, seeds: Sequence[Seed], *, strict: bool = True) -> None:
        """Ask every seed who holds our name before joining through it; warn about the seeds
        that do not answer (at the 1st, 2nd, 4th... unanswered round), and raise
        :class:`NameTaken` if a live node holds our name at another address (``strict``; else
        log it). A holder that does not answer at its address is an earlier incarnation of
        ours that the cluster has not yet declared failed: the join then takes the name over."""
        answers = await asyncio.gather(
            *(self._ask(s.address, Kind.WHOHAS, encode_whohas, self.name) for s in seeds),
            return_exceptions=True,
        )
        holders: set[str] = set()
        unanswered: list[tuple[str, Exception]] = []
        for seed, answer in zip(seeds, answers, strict=True):
            if isinstance(answer, Exception):
                unanswered.append((seed.address, answer))
                continue
            if isinstance(answer, BaseException):  # cancelled: we are stopping
                raise answer
            self._seed_failures.pop(seed.address, None)
            responder, holder = answer
            self._learn_name(seed.address, responder)
            if holder is not None and holder != self.address:
                holders.add(holder)
        alone = len(unanswered) == len(answers) and self._alone()
        for address, error in unanswered:
            self._seed_unanswered(address, error, alone)
        for holder in sorted(holders):
            try:
                name = await self._ask(holder, Kind.WHOIS, lambda nonce, _: nonce, None)
            except (OSError, TimeoutError):
                continue
            if name == self.name:
                taken = NameTaken(self.name, f"{self.name}@{holder}")
                if strict:
                    raise taken
                log.error("%s: %s: another node runs under this node's name", self.name, taken)

    async def _ask(
        self, address: str, kind: Kind, body: Callable[[bytes, Any], bytes], arg: Any
    ) -> Any:
        """Send ``kind`` (body ``body(nonce, arg)``) to ``address`` until it is answered, up to
        :data:`ASK_TRIES` times ``probe_timeout`` apart; return the answer. Raises the
        ``OSError`` the network reports (a refused port) or ``TimeoutError``."""
        loop = asyncio.get_running_loop()
        nonce = self._rng.randbytes(8)
        answer: asyncio.Future[Any] = loop.create_future()
        self._asks[nonce] = answer
        asking: asyncio.DatagramTransport | None = None
        try:
            target = self._parse(address)
            if self._open_datagrams is None:  # real sockets: a connected one hears refusals
                asking, _ = await loop.create_datagram_endpoint(
                    lambda: _Asking(self, answer), remote_addr=target
                )
            data = seal(self._key, kind, body(nonce, arg))
            for _ in range(ASK_TRIES):
                if asking is not None:
                    asking.sendto(data)
                elif self._udp is not None:
                    self._udp.sendto(data, target)
                self.stats.udp_sent += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.probe_timeout):
                        return await asyncio.shield(answer)
            raise TimeoutError(f"no answer within {ASK_TRIES * self.config.probe_timeout:.1f} s")
        finally:
            self._asks.pop(nonce, None)
            if not answer.done():
                answer.cancel()
            if asking is not None:
                asking.close()

    def _answered(self, nonce: bytes, value: Any) -> None:
        answer = self._asks.get(nonce)
        if answer is not None and not answer.done():
            answer.set_result(value)

    def _seed_unanswered(self, address: str, error: Exception, alone: bool) -> None:
        self.stats.seed_failures += 1
        n = self._seed_failures[address] = self._seed_failures.get(address, 0) + 1
        if n & (n - 1):
            return  # warned at 1, 2, 4, 8... unanswered rounds: backoff for the logs
        if isinstance(error, ConnectionRefusedError):
            cause = "connection refused (nothing listens on that UDP port)"
        elif isinstance(error, TimeoutError):
            cause = (
                f"{error}: not an Ember node, or of another cluster or cookie, or a firewall "
                "drops UDP"
            )
        else:
            cause = str(error) or type(error).__name__
        log.warning(
            "%s: seed %s unreachable: %s (%d time%s%s; asked again every %.0f s while alone)",
            self.name,
            address,
            cause,
            n,
            "" if n == 1 else "s in a row",
            " and this node knows no other member" if alone else "",
            self.config.rejoin_interval,
        )

    def _alone(self) -> bool:
        return not any(m.name != self.name and m.status in _LIVE for m in self._core().members())

    async def _rejoin_loop(self) -> None:
        """While this node knows no other live member, ask the seeds and discovery again."""
        while True:
            await asyncio.sleep(self.config.rejoin_interval)
            if self._swim is None or self._swim.left or not self._alone():
                continue
            # Forget which node answered at each address: a seed replaced at the same address
            # by a node of another name must be asked again (a known memberlist/Serf pain).
            self._names.clear()
            seeds = await self._gather_seeds()
            await self._check_seeds(seeds, strict=False)
            if seeds and not self._closed:
                self.stats.rejoins += 1
                self._swim.join([s.address for s in seeds], now=self._now())
                self._flush()


async def fetch_members(
    transport: _Transport,
    router: _Router,
    peer: str,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> tuple[Member, ...]:
    """Ask node ``peer`` for its member list over a transport that runs no membership of its
    own (the ``ember members`` command). Raises ``TimeoutError`` if no answer comes in time."""
    fut: asyncio.Future[tuple[Member, ...]] = asyncio.get_running_loop().create_future()

    def on_frame(sender: str, payload: bytes) -> None:
        if sender != peer or fut.done() or payload[:1] != bytes((Kind.MEMBERS_REPLY,)):
            return
        try:
            (reply,) = decode_packet(payload[1:])
        except (ProtocolError, ValueError) as exc:
            fut.set_exception(ProtocolError("malformed", f"bad member list: {exc}"))
            return
        if isinstance(reply, PushPull):
            fut.set_result(reply.members)
        else:
            fut.set_exception(ProtocolError("malformed", "a member list is not a push-pull"))

    router.add_channel_handler(Channel.MEMBERSHIP, on_frame)
    try:
        transport.send(peer, Channel.MEMBERSHIP, bytes((Kind.MEMBERS,)))
        async with asyncio.timeout(timeout):
            return await fut
    finally:
        router.remove_channel_handler(Channel.MEMBERSHIP)
