"""The SWIM state machine of one member, with HashiCorp's Lifeguard extensions.

:class:`Swim` is sans-I/O: it never reads a clock, touches a socket or uses global randomness.
The shell feeds it the time and what arrives (:meth:`Swim.tick`, :meth:`Swim.receive`,
:meth:`Swim.join`, :meth:`Swim.leave`, :meth:`Swim.update_meta`, :meth:`Swim.connected`), then
drains :meth:`Swim.ready` for the packets to send and the member events to publish, and calls
:meth:`Swim.tick` again at :meth:`Swim.next_deadline`. All randomness comes from the
``random.Random`` it is given, so one seed replays one run exactly.

The protocol (see ``docs/mesh.md``): every probe interval, ping the next member of a shuffled
round-robin order; without an ack within the probe timeout, ask k members to ping it for us and
try TCP; without any ack by the end of the interval, suspect it. A suspicion spreads by gossip and
times out into a failure unless the member refutes it with a higher incarnation. Updates ride
piggybacked on every UDP packet and in gossip rounds; a periodic full-state push-pull repairs
what gossip missed, and reconnect attempts to failed members re-form a cluster after a partition.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgpack  # type: ignore[import-untyped]

from .._errors import UsageError
from ._awareness import Awareness
from ._broadcast import BroadcastQueue
from ._config import MAX_ADDRESS_SIZE, MAX_NAME_SIZE, SwimConfig
from ._events import (
    MemberAlive,
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberSuspect,
    MemberUpdated,
    Outgoing,
    Ready,
    SwimStatistics,
    TransportHint,
)
from ._messages import (
    Ack,
    Alive,
    Custom,
    Dead,
    IndirectPing,
    Member,
    MemberStatus,
    Message,
    Meta,
    Nack,
    Ping,
    PushPull,
    Suspect,
    encode_packet,
    freeze_meta,
    message_size,
    packet_header_size,
)
from ._suspicion import Suspicion

__all__ = ["CUSTOM_QUEUE_LIMIT", "Swim"]

ALIVE = MemberStatus.ALIVE
SUSPECT = MemberStatus.SUSPECT
FAILED = MemberStatus.FAILED
LEFT = MemberStatus.LEFT

CUSTOM_QUEUE_LIMIT = 256
"""A broadcast of the layers above (:meth:`Swim.gossip`) is refused while the gossip queue holds
this many messages: membership news first, and no unbounded queue."""
_CUSTOM_SEEN = 4096
"""Keys of recent broadcasts remembered, so each is delivered and passed on once."""

NACK_FRACTION = 0.8
"""A relay nacks after this fraction of the requester's indirect window (the probe interval
less the probe timeout), so the nack is back before the requester concludes the probe."""


@dataclass(slots=True)
class _Record:
    name: str
    address: str
    incarnation: int
    status: MemberStatus
    meta: Meta
    changed_at: float

    def view(self) -> Member:
        return Member(self.name, self.address, self.status, self.incarnation, self.meta)


@dataclass(slots=True)
class _Probe:
    target: str
    address: str
    incarnation: int
    seq: int
    timeout_at: float
    end_at: float
    indirect: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    origin_seq: int
    origin: str
    origin_address: str
    deadline: float
    nack: bool


@dataclass(slots=True)
class _Pending:
    address: str
    node: str | None
    transport: TransportHint
    messages: list[Message] = field(default_factory=list)
    gossip_only: bool = False


class Swim:
    """The membership protocol of the member ``name`` at ``address``, started at ``now``.

    ``rng`` is its only source of randomness. ``meta`` is this member's metadata (at most
    ``config.max_meta_size`` bytes encoded). ``incarnation`` is where this member's incarnation
    starts: a shell that persists it, or derives it from the wall clock, makes a restarted member
    outrank its past self even in views that already forgot it.
    """

    def __init__(
        self,
        name: str,
        address: str,
        config: SwimConfig,
        rng: random.Random,
        now: float,
        *,
        meta: Meta | None = None,
        incarnation: int = 0,
    ) -> None:
        _check_text("name", name, MAX_NAME_SIZE)
        _check_text("address", address, MAX_ADDRESS_SIZE)
        if incarnation.__class__ is not int or not 0 <= incarnation < 2**63:
            raise UsageError(f"incarnation must be an int in 0..2**63-1, not {incarnation!r}")
        self.name = name
        self.address = address
        self.config = config
        self._rng = rng
        self._now = now
        self._self = _Record(name, address, incarnation, ALIVE, self._checked_meta(meta), now)
        self._members: dict[str, _Record] = {name: self._self}
        self._order: list[str] = []
        self._index = 0
        self._queue = BroadcastQueue(
            retransmit_mult=config.retransmit_mult, max_size=config.packet_budget - 1
        )
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._suspicions: dict[str, Suspicion] = {}
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._seq = 0
        self._pending: list[_Pending] = []
        self._events: list[MemberEvent] = []
        self._stats = SwimStatistics()
        self._seeds: tuple[str, ...] = ()
        self._left = False
        self._custom_seen: dict[str, None] = {}
        self._custom_in: list[tuple[str, bytes]] = []
        # Random phases, so members started together do not probe and sync in lockstep.
        self._next_probe = now + rng.random() * config.probe_interval
        self._next_gossip = now + rng.random() * config.gossip_interval
        self._next_push_pull = now + rng.random() * config.push_pull_interval
        self._next_reconnect = now + (0.5 + rng.random()) * config.reconnect_interval
        self._next_rejoin = now + config.rejoin_interval
        self._broadcast(name, self._alive_self())

    # -- inspection -----------------------------------------------------------------------

    @property
    def incarnation(self) -> int:
        """This member's current incarnation."""
        return self._self.incarnation

    @property
    def meta(self) -> Meta:
        """This member's current metadata."""
        return self._self.meta

    @property
    def health(self) -> int:
        """Lifeguard's local health score: 0 is healthy; timeouts are scaled by score + 1."""
        return self._awareness.score

    @property
    def left(self) -> bool:
        """True once :meth:`leave` was called."""
        return self._left

    @property
    def leave_done(self) -> bool:
        """True once the leave has been gossiped its full retransmit count, or nobody is left
        to tell: the shell may stop then (or at its own leave timeout)."""
        if not self._left:
            return False
        return self.name not in self._queue or not any(
            r.status in (ALIVE, SUSPECT) for r in self._others()
        )

    def members(self) -> tuple[Member, ...]:
        """The current view, this member included, sorted by name."""
        return tuple(self._members[n].view() for n in sorted(self._members))

    def member(self, name: str) -> Member | None:
        """The view of one member, or None if unknown (or reaped)."""
        rec = self._members.get(name)
        return None if rec is None else rec.view()

    def statistics(self) -> SwimStatistics:
        """A snapshot of the protocol counters."""
        stats = self._stats.snapshot()
        stats.broadcasts_oversized = self._queue.oversized
        return stats

    def next_deadline(self) -> float:
        """When :meth:`tick` next has work to do (it may be called earlier or more often).

        Read it again after every input: a new broadcast or probe moves it earlier.
        """
        t = self._next_probe if not self._left else math.inf
        if self._queue:
            t = min(t, self._next_gossip)
        if not self._left:
            t = min(t, self._next_push_pull, self._next_reconnect)
            if self._seeds:
                t = min(t, self._next_rejoin)
        p = self._probe
        if p is not None:
            t = min(t, p.end_at if p.indirect else p.timeout_at)
        for r in self._relays.values():
            t = min(t, r.deadline)
        for s in self._suspicions.values():
            t = min(t, s.deadline)
        return t

    # -- inputs ---------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Advance to ``now``: run due probe steps, suspicion timeouts, gossip, push-pull,
        reconnects, rejoins and reaping."""
        self._now = now
        for seq, relay in list(self._relays.items()):
            if relay.deadline <= now:
                del self._relays[seq]
                if relay.nack:
                    self._stats.nacks_sent += 1
                    self._send(
                        relay.origin_address,
                        [Nack(relay.origin_seq, self.name)],
                        "udp",
                        relay.origin,
                    )
        self._advance_probe(now)
        for name, timer in list(self._suspicions.items()):
            if timer.deadline <= now:
                del self._suspicions[name]
                rec = self._members.get(name)
                if rec is not None and rec.status is SUSPECT:
                    self._on_dead(now, Dead(name, rec.incarnation, self.name))
        if now >= self._next_gossip and self._queue:
            self._gossip_round(now)
            self._next_gossip = now + self.config.gossip_interval
        if self._left:
            return
        n = len(self._members)
        if now >= self._next_push_pull:
            self._next_push_pull = now + self.config.push_pull_period(n)
            peers = self._random_members(1, lambda r: r.status is ALIVE)
            if peers:
                self._push_pull(peers[0].address, peers[0].name, join=False)
        if now >= self._next_reconnect:
            self._next_reconnect = now + self.config.reconnect_interval
            self._reconnect()
        if self._seeds and now >= self._next_rejoin:
            self._next_rejoin = now + self.config.rejoin_interval
            if not any(r.status in (ALIVE, SUSPECT) for r in self._others()):
                self._stats.rejoins += 1
                for seed in self._seeds:
                    self._push_pull(seed, None, join=True)

    def receive(
        self, now: float, from_addr: str, message: Message, *, transport: TransportHint = "udp"
    ) -> None:
        """Handle one decoded ``message`` that arrived from ``from_addr`` over ``transport``
        (answers go back the same way: a ping over TCP is acked over TCP)."""
        self._now = now
        match message:
            case Ping():
                if message.target != self.name:
                    self._stats.misdirected += 1
                    return
                reply_to = message.source_address or from_addr
                if message.target_address and message.target_address != self.address:
                    # Meant for an earlier incarnation of ours at another address (a TCP
                    # probe reaches us by name): an ack would keep that stale record alive.
                    # Say who holds the name now, which replaces it at the prober.
                    self._stats.misdirected += 1
                    self._send(reply_to, [self._alive_self()], transport, message.source)
                    return
                reply: list[Message] = [Ack(message.seq, self.name)]
                prober = self._members.get(message.source)
                if prober is None and message.source_address and not self._left:
                    # A member we never heard of probes us: its alive announcement missed us.
                    # Sync with it now rather than at the next periodic push-pull (which can
                    # be tens of seconds away).
                    self._push_pull(message.source_address, message.source, join=False)
                if prober is not None and prober.status in (SUSPECT, FAILED):
                    # The buddy system the other way round: a member we suspect (or think
                    # failed) shows up alive; tell it, so it refutes now rather than when a
                    # probe or gossip happens to reach it (after a partition, often too late).
                    reply.append(Suspect(prober.name, prober.incarnation, self.name))
                self._send(reply_to, reply, transport, message.source)
            case IndirectPing():
                seq = self._next_seq()
                origin = message.source_address or from_addr
                self._relays[seq] = _Relay(
                    message.seq, message.source, origin, now + message.timeout, message.nack
                )
                self._stats.relayed += 1
                ping = Ping(seq, message.target, self.name, self.address, message.target_address)
                self._send(message.target_address, [ping], "udp", message.target)
            case Ack():
                self._on_ack(message, transport)
            case Nack():
                p = self._probe
                if p is not None and p.seq == message.seq:
                    p.nacks += 1
            case Suspect():
                self._on_suspect(now, message)
            case Alive():
                self._on_alive(now, message)
            case Dead():
                self._on_dead(now, message)
            case Custom():
                if self._remember_custom(message.key):
                    self._stats.custom_received += 1
                    self._custom_in.append((message.key, message.data))
                    self._queue.push("@" + message.key, message, message_size(message))
            case PushPull():
                self._merge(now, message.members, message.sender)
                if not message.reply:
                    self._stats.push_pulls_answered += 1
                    reply_to = message.sender_address or from_addr
                    answer = PushPull(
                        self.name, self.address, self._state(), join=message.join, reply=True
                    )
                    self._send(reply_to, [answer], "tcp", message.sender)

    def join(self, seeds: Iterable[str], *, now: float | None = None) -> None:
        """Join through ``seeds`` (addresses): a full-state exchange with each, over TCP. The
        seeds are kept: while this member knows no other live member it asks them again every
        ``rejoin_interval``."""
        if now is not None:
            self._now = now
        self._seeds = tuple(dict.fromkeys(s for s in seeds if s != self.address))
        for seed in self._seeds:
            self._push_pull(seed, None, join=True)
        self._next_rejoin = self._now + self.config.rejoin_interval

    def sync(self, address: str, node: str | None = None, *, now: float | None = None) -> None:
        """Exchange full state with the member at ``address`` now (a join request over TCP),
        without changing the seeds: how discovery introduces a peer it found."""
        if now is not None:
            self._now = now
        if self._left or address == self.address:
            return
        self._push_pull(address, node, join=True)

    def connected(self, node: str, *, now: float | None = None) -> None:
        """The node's transport opened a connection to member ``node``: if this member holds
        it suspect or failed, exchange full state with it now. After a partition heals the
        connections come back long before a reconnect attempt would find the member (one
        every ``reconnect_interval``, rarely from the majority's side); the exchange makes
        the member refute what we think of it, and each side learn the other's view."""
        if now is not None:
            self._now = now
        rec = self._members.get(node)
        if self._left or rec is None or rec is self._self or rec.status not in (SUSPECT, FAILED):
            return
        self._stats.connect_syncs += 1
        self._push_pull(rec.address, rec.name, join=False)

    def leave(self, *, now: float | None = None) -> None:
        """Leave gracefully: gossip our own departure, stop probing. Keep ticking and answering
        until :attr:`leave_done` (or a timeout), then stop."""
        if now is not None:
            self._now = now
        if self._left:
            return
        self._left = True
        self._probe = None
        self._on_dead(self._now, Dead(self.name, self._self.incarnation, self.name))

    def update_meta(self, meta: Meta, *, now: float | None = None) -> None:
        """Replace this member's metadata; the new version (a new incarnation) is gossiped."""
        if now is not None:
            self._now = now
        if self._left:
            raise UsageError("cannot update the metadata of a member that left")
        self._self.meta = self._checked_meta(meta)
        self._self.incarnation += 1
        self._broadcast(self.name, self._alive_self())

    # -- outputs --------------------------------------------------------------------------

    def gossip(self, key: str, data: bytes) -> bool:
        """Broadcast ``data`` to every member by piggybacking it on gossip: each member that
        gets it delivers it once (in :attr:`Ready.custom`) and passes it on, as for member
        news. ``key`` must be unique per broadcast. False when it cannot fit a packet or the
        queue holds :data:`CUSTOM_QUEUE_LIMIT` messages already (nothing is sent)."""
        message = Custom(key, data)
        if len(self._queue) >= CUSTOM_QUEUE_LIMIT or not self._queue.push(
            "@" + key, message, message_size(message)
        ):
            self._stats.custom_refused += 1
            return False
        self._remember_custom(key)
        return True

    def _remember_custom(self, key: str) -> bool:
        """Record ``key``; False if it was seen already."""
        seen = self._custom_seen
        if key in seen:
            return False
        seen[key] = None
        if len(seen) > _CUSTOM_SEEN:
            del seen[next(iter(seen))]
        return True

    def ready(self) -> Ready:
        """Drain the packets to send and the events since the last call.

        UDP packets are filled with piggybacked gossip here, to the packet budget, so they carry
        the freshest state (a refutation made while handling a ping rides on its ack).
        """
        budget = self.config.packet_budget
        n = len(self._members)
        out: list[Outgoing] = []
        for p in self._pending:
            if p.transport == "tcp":
                out.append(
                    Outgoing(
                        p.address, tuple(p.messages), "tcp", len(encode_packet(p.messages)), p.node
                    )
                )
                continue
            sizes = [message_size(m) for m in p.messages]
            used = packet_header_size(len(sizes)) + sum(sizes)
            if used > budget:
                self._stats.packets_oversized += 1
                continue
            extra = self._queue.take(used, len(sizes), budget, n)
            if p.gossip_only and not extra:
                continue
            messages = (*p.messages, *(m for m, _ in extra))
            size = packet_header_size(len(messages)) + sum(sizes) + sum(s for _, s in extra)
            if p.gossip_only:
                self._stats.gossip_packets += 1
            out.append(Outgoing(p.address, messages, "udp", size, p.node))
        self._pending.clear()
        for o in out:
            self._stats.packets_sent += 1
            self._stats.bytes_sent += o.size
        ready = Ready(tuple(out), tuple(self._events), tuple(self._custom_in))
        self._events.clear()
        self._custom_in.clear()
        return ready

    # -- probing --------------------------------------------------------------------------

    def _advance_probe(self, now: float) -> None:
        p = self._probe
        if p is not None:
            if not p.indirect and now >= p.timeout_at:
                self._start_indirect(p)
            if now >= p.end_at:
                self._probe = None
                self._probe_failed(now, p)
        if self._left or now < self._next_probe:
            return
        self._reap(now)
        self._next_probe = now + self._awareness.scale(self.config.probe_interval)
        target = self._next_target()
        if target is None:
            return
        self._stats.probes += 1
        seq = self._next_seq()
        self._probe = _Probe(
            target.name,
            target.address,
            target.incarnation,
            seq,
            now + self._awareness.scale(self.config.probe_timeout),
            self._next_probe,
        )
        messages: list[Message] = [Ping(seq, target.name, self.name, self.address, target.address)]
        if target.status is SUSPECT:
            # Lifeguard's buddy system: tell the suspect directly, so it can refute at once.
            messages.append(Suspect(target.name, target.incarnation, self.name))
        self._send(target.address, messages, "udp", target.name)

    def _start_indirect(self, p: _Probe) -> None:
        p.indirect = True
        c = self.config
        peers = self._random_members(
            c.indirect_checks, lambda r: r.status is ALIVE and r.name != p.target
        )
        timeout = (p.end_at - p.timeout_at) * NACK_FRACTION
        for peer in peers:
            request = IndirectPing(
                p.seq, p.target, p.address, self.name, self.address, True, timeout
            )
            self._send(peer.address, [request], "udp", peer.name)
        p.expected_nacks = len(peers)
        self._stats.indirect_probes += len(peers)
        if c.tcp_fallback_probe:
            self._stats.tcp_fallbacks += 1
            ping = Ping(p.seq, p.target, self.name, self.address, p.address)
            self._send(p.address, [ping], "tcp", p.target)

    def _probe_failed(self, now: float, p: _Probe) -> None:
        # Missing nacks mean the relays could not hear us or we could not hear them: blame
        # ourselves for each. Without relays we cannot tell, so take one point.
        if p.expected_nacks:
            self._awareness.apply(max(p.expected_nacks - p.nacks, 0))
        else:
            self._awareness.apply(1)
        self._stats.probes_failed += 1
        if p.target in self._members:
            self._on_suspect(now, Suspect(p.target, p.incarnation, self.name))

    def _on_ack(self, ack: Ack, transport: TransportHint) -> None:
        relay = self._relays.pop(ack.seq, None)
        if relay is not None:
            reply = [Ack(relay.origin_seq, self.name)]
            self._send(relay.origin_address, reply, "udp", relay.origin)
            return
        p = self._probe
        if p is not None and p.seq == ack.seq:
            self._probe = None
            self._awareness.apply(-1)
            if transport == "tcp":
                self._stats.tcp_fallback_acks += 1

    def _next_target(self) -> _Record | None:
        for _ in range(2 * len(self._order) + 2):
            if self._index >= len(self._order):
                self._order = [n for n in self._order if n in self._members]
                self._rng.shuffle(self._order)
                self._index = 0
                if not self._order:
                    return None
            rec = self._members.get(self._order[self._index])
            self._index += 1
            if rec is not None and rec.status in (ALIVE, SUSPECT):
                return rec
        return None

    # -- membership state -----------------------------------------------------------------

    def _on_suspect(self, now: float, s: Suspect) -> None:
        rec = self._members.get(s.node)
        if rec is None or s.incarnation < rec.incarnation:
            return
        timer = self._suspicions.get(s.node)
        if timer is not None:
            # Lifeguard: each independent accuser shortens the timeout; re-gossip news only.
            if timer.confirm(s.sender):
                self._broadcast(s.node, s)
            return
        if rec.status is not ALIVE:
            return
        if rec is self._self:
            self._refute(s.incarnation)
            return
        self._broadcast(s.node, s)
        rec.incarnation = s.incarnation
        rec.status = SUSPECT
        rec.changed_at = now
        n = len(self._members)
        low, high = self.config.suspicion_timeouts(n)
        k = self.config.suspicion_confirmations(n)
        self._suspicions[s.node] = Suspicion(accuser=s.sender, k=k, low=low, high=high, start=now)
        self._stats.suspicions += 1
        self._events.append(MemberSuspect(rec.view(), now))

    def _on_alive(self, now: float, a: Alive) -> None:
        if self._left and a.node == self.name:
            return
        rec = self._members.get(a.node)
        if rec is None:
            rec = _Record(a.node, a.address, a.incarnation, ALIVE, a.meta, now)
            self._members[a.node] = rec
            self._insert_in_probe_order(a.node)
            self._broadcast(a.node, a)
            self._events.append(MemberJoined(rec.view(), now))
            return
        reclaim = False
        if rec.address != a.address:
            reclaim = rec is not self._self and self._may_move(now, rec, a.incarnation)
            if not reclaim:
                self._stats.conflicts += 1
                return
        if rec is self._self:
            # Someone holds an older or different picture of us (a previous run of this
            # member, or metadata we have since changed): outrank it.
            if a.incarnation > rec.incarnation or (
                a.incarnation == rec.incarnation and a.meta != rec.meta
            ):
                self._refute(a.incarnation)
            return
        if a.incarnation <= rec.incarnation and not reclaim:
            return
        self._suspicions.pop(a.node, None)
        self._broadcast(a.node, a)
        p = self._probe
        if reclaim and p is not None and p.target == a.node:
            self._probe = None  # it probed an address the member has left: moot, not failed
        old_status, old_meta, old_address = rec.status, rec.meta, rec.address
        rec.incarnation = a.incarnation
        rec.meta = a.meta
        rec.address = a.address
        if old_status is not ALIVE:
            rec.status = ALIVE
            rec.changed_at = now
        changed = old_meta != a.meta or old_address != a.address
        if old_status in (FAILED, LEFT):
            self._events.append(MemberJoined(rec.view(), now))
            return
        if old_status is SUSPECT:
            self._events.append(MemberAlive(rec.view(), now))
        if changed:
            self._events.append(MemberUpdated(rec.view(), now))

    def _may_move(self, now: float, rec: _Record, incarnation: int) -> bool:
        """Whether another member's name may move to another address with an alive message
        at ``incarnation`` (see ``SwimConfig.reclaim_time``): it left; it failed, at least
        ``reclaim_time`` ago; or, with no reclaim time, the message outranks the record, as a
        member restarted elsewhere does."""
        if rec.status is LEFT:
            return True
        reclaim_time = self.config.reclaim_time
        if rec.status is FAILED and now - rec.changed_at >= reclaim_time:
            return True
        return reclaim_time == 0 and incarnation > rec.incarnation

    def _on_dead(self, now: float, d: Dead) -> None:
        rec = self._members.get(d.node)
        if rec is None or d.incarnation < rec.incarnation:
            return
        self._suspicions.pop(d.node, None)
        if rec.status in (FAILED, LEFT):
            return
        if rec is self._self and not self._left:
            self._refute(d.incarnation)
            return
        self._broadcast(d.node, d)
        rec.incarnation = d.incarnation
        rec.status = LEFT if d.is_leave else FAILED
        rec.changed_at = now
        if rec is not self._self:
            self._stats.failures += rec.status is FAILED
            event = MemberLeft if d.is_leave else MemberFailed
            self._events.append(event(rec.view(), now))

    def _refute(self, accused: int) -> None:
        # Being accused is a hint that we are slow to answer: count it against our health.
        self._self.incarnation = max(self._self.incarnation + 1, accused + 1)
        self._awareness.apply(1)
        self._stats.refutations += 1
        self._broadcast(self.name, self._alive_self())

    def _merge(self, now: float, members: Iterable[Member], sender: str) -> None:
        for m in members:
            if m.status is ALIVE:
                self._on_alive(now, Alive(m.name, m.address, m.incarnation, m.meta))
            elif m.status is LEFT:
                self._on_dead(now, Dead(m.name, m.incarnation, m.name))
            else:
                # A failure reported by one peer only makes us suspect: the member gets its
                # chance to refute (this is also what re-forms a cluster after a partition).
                self._on_suspect(now, Suspect(m.name, m.incarnation, sender))

    def _reap(self, now: float) -> None:
        c = self.config
        for rec in list(self._members.values()):
            if rec.status is FAILED:
                due = now - rec.changed_at >= c.failed_reap_time
            elif rec.status is LEFT and rec is not self._self:
                due = now - rec.changed_at >= c.left_reap_time
            else:
                continue
            if not due:
                continue
            del self._members[rec.name]
            self._suspicions.pop(rec.name, None)
            if rec.name in self._order:
                i = self._order.index(rec.name)
                del self._order[i]
                if i < self._index:
                    self._index -= 1
            self._events.append(MemberReaped(rec.view(), now))

    def _reconnect(self) -> None:
        failed = [r for r in self._others() if r.status is FAILED]
        if not failed:
            return
        alive = sum(1 for r in self._members.values() if r.status in (ALIVE, SUSPECT))
        # Serf's rule: the more of the cluster is failed, the likelier we try; a cluster split
        # in halves tries every interval from every member.
        if self._rng.random() < len(failed) / max(alive, 1):
            target = self._rng.choice(failed)
            self._stats.reconnects += 1
            self._push_pull(target.address, target.name, join=False)

    # -- gossip ---------------------------------------------------------------------------

    def _gossip_round(self, now: float) -> None:
        dead_time = self.config.gossip_to_the_dead_time
        targets = self._random_members(
            self.config.gossip_fanout,
            lambda r: (
                r.status in (ALIVE, SUSPECT)
                or (r.status is FAILED and now - r.changed_at < dead_time)
            ),
        )
        for t in targets:
            self._pending.append(_Pending(t.address, t.name, "udp", gossip_only=True))

    def _broadcast(self, key: str, message: Message) -> None:
        self._queue.push(key, message, message_size(message))

    def _push_pull(self, address: str, node: str | None, *, join: bool) -> None:
        self._stats.push_pulls += 1
        request = PushPull(self.name, self.address, self._state(), join=join)
        self._send(address, [request], "tcp", node)

    # -- helpers --------------------------------------------------------------------------

    def _send(
        self, address: str, messages: Sequence[Message], transport: TransportHint, node: str | None
    ) -> None:
        self._pending.append(_Pending(address, node, transport, list(messages)))

    def _state(self) -> tuple[Member, ...]:
        return tuple(r.view() for r in self._members.values())

    def _alive_self(self) -> Alive:
        s = self._self
        return Alive(s.name, s.address, s.incarnation, s.meta)

    def _others(self) -> Iterable[_Record]:
        return (r for r in self._members.values() if r is not self._self)

    def _random_members(self, k: int, keep: Callable[[_Record], bool]) -> list[_Record]:
        candidates = [r for r in self._others() if keep(r)]
        if len(candidates) <= k:
            self._rng.shuffle(candidates)
            return candidates
        return self._rng.sample(candidates, k)

    def _insert_in_probe_order(self, name: str) -> None:
        # A random position, not the end: appending would make a new member wait for a whole
        # round before anyone probes it, and stretch the detection bound.
        n = len(self._order)
        self._order.append(name)
        i = self._rng.randrange(n + 1)
        self._order[i], self._order[n] = self._order[n], self._order[i]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _checked_meta(self, meta: Meta | None) -> Meta:
        frozen = freeze_meta(meta)
        try:
            size = len(msgpack.packb(dict(frozen), use_bin_type=True))
        except (TypeError, ValueError, OverflowError) as exc:
            raise UsageError(f"metadata must be msgpack-encodable: {exc}") from exc
        if size > self.config.max_meta_size:
            raise UsageError(
                f"metadata takes {size} bytes, above max_meta_size ({self.config.max_meta_size})"
            )
        if not all(isinstance(k, str) for k in frozen):
            raise UsageError("metadata keys must be strings")
        return frozen


def _check_text(what: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value.encode()) > limit:
        raise UsageError(f"{what} must be a non-empty str of at most {limit} bytes, not {value!r}")
