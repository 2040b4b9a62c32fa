"""A deterministic simulator of SWIM members on a simulated network.

:class:`Simulation` runs any number of :class:`~ember.mesh.Swim` cores in virtual time: an event
heap of ticks (each member is woken exactly at its :meth:`~ember.mesh.Swim.next_deadline`) and
packet deliveries. The network drops each packet with a probability, delays it uniformly within
a range, and refuses packets between members in different partition groups; members can crash
(stop ticking and receiving), restart (a new core under the same name and address) and leave.
Every random choice comes from generators seeded from ``seed``, so one seed is one run: a failing
test prints its seed and replays exactly.

TCP is modelled as a packet with its own loss probability (``tcp_loss``, by default the UDP one):
a lost TCP packet stands for a connection that did not complete before the protocol's deadline.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from .._errors import UsageError
from ._config import SwimConfig
from ._events import MemberEvent, Outgoing
from ._messages import Member, MemberStatus, Message, Meta, decode_packet, encode_packet
from ._swim import Swim

__all__ = ["SimEvent", "SimMember", "SimStatistics", "Simulation"]


@dataclass(frozen=True, slots=True)
class SimEvent:
    """``observer`` saw ``event`` at virtual time ``at``."""

    at: float
    observer: str
    event: MemberEvent


@dataclass(slots=True)
class SimMember:
    """A simulated member: its current core and whether it runs."""

    name: str
    address: str
    swim: Swim
    seeds: tuple[str, ...]
    running: bool = True
    generation: int = 0
    wake: float = float("inf")
    restarts: int = 0


@dataclass(slots=True)
class SimStatistics:
    """Network counters of a simulation."""

    packets: int = 0
    bytes: int = 0
    udp_packets: int = 0
    tcp_packets: int = 0
    udp_bytes: int = 0
    tcp_bytes: int = 0
    delivered: int = 0
    lost: int = 0
    partitioned: int = 0
    unreachable: int = 0
    bytes_by_member: dict[str, int] = field(default_factory=dict)


_TICK = 0
_DELIVER = 1


class Simulation:
    """N SWIM members in virtual time over a lossy, delaying, partitionable network.

    ``loss`` is the probability that a UDP packet is lost, ``tcp_loss`` that a TCP one is
    (default: ``loss``); ``delay`` the (min, max) one-way delay in seconds. With ``wire=True``
    every packet is encoded and decoded, as the real shell would.
    """

    def __init__(
        self,
        config: SwimConfig,
        *,
        seed: int,
        loss: float = 0.0,
        tcp_loss: float | None = None,
        delay: tuple[float, float] = (0.0005, 0.002),
        wire: bool = False,
        start: float = 0.0,
    ) -> None:
        if not 0 <= loss < 1 or not 0 <= delay[0] <= delay[1]:
            raise UsageError(f"bad network: loss={loss!r}, delay={delay!r}")
        self.config = config
        self.seed = seed
        self.loss = loss
        self.tcp_loss = loss if tcp_loss is None else tcp_loss
        self.delay = delay
        self.wire = wire
        self.now = start
        self.members: dict[str, SimMember] = {}
        self.events: list[SimEvent] = []
        self.stats = SimStatistics()
        self.on_event: Callable[[SimEvent], None] | None = None
        """Called with every event as it happens (for checkers that watch a run)."""
        self._net = random.Random(f"{seed}:net")
        self._by_address: dict[str, SimMember] = {}
        self._groups: dict[str, int] = {}
        self._slow: dict[str, float] = {}
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = 0

    # -- the cluster ------------------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        seeds: Iterable[str] = (),
        meta: Meta | None = None,
        address: str | None = None,
        config: SwimConfig | None = None,
    ) -> Swim:
        """Start a member now and join it through ``seeds`` (names of simulated members)."""
        if name in self.members:
            raise UsageError(f"member {name!r} exists; use restart()")
        address = address or f"{name}:7946"
        seed_addrs = tuple(self.members[s].address for s in seeds)
        swim = self._new_swim(name, address, 0, meta, config)
        m = SimMember(name, address, swim, seed_addrs)
        self.members[name] = m
        self._by_address[address] = m
        if seed_addrs:
            swim.join(seed_addrs)
        self._flush(m)
        return swim

    def add_cluster(self, n: int, *, prefix: str = "m", stagger: float = 0.0) -> list[str]:
        """Start ``n`` members named ``prefix0..``, all joining through the first one, the
        starts spread evenly over ``stagger`` seconds."""
        names = [f"{prefix}{i}" for i in range(n)]
        for i, name in enumerate(names):
            if i and stagger:
                self.run(stagger / n)
            self.add(name, seeds=names[:1] if i else ())
        return names

    def crash(self, name: str) -> None:
        """Stop the member: it neither ticks nor receives until :meth:`restart`."""
        m = self.members[name]
        m.running = False
        m.generation += 1

    def restart(
        self, name: str, *, seeds: Iterable[str] | None = None, meta: Meta | None = None
    ) -> Swim:
        """Replace the member's core by a fresh one (same name and address) and join it through
        ``seeds`` (default: its original seeds, or every other running member if it had none)."""
        m = self.members[name]
        m.restarts += 1
        m.generation += 1
        m.running = True
        m.wake = float("inf")
        if seeds is not None:
            m.seeds = tuple(self.members[s].address for s in seeds)
        elif not m.seeds:
            m.seeds = tuple(o.address for o in self.members.values() if o.running and o is not m)
        m.swim = self._new_swim(name, m.address, m.restarts, meta, m.swim.config)
        m.swim.join(m.seeds)
        self._flush(m)
        return m.swim

    def leave(self, name: str) -> None:
        """Make the member leave gracefully; it stops once its leave is gossiped."""
        m = self.members[name]
        m.swim.leave(now=self.now)
        self._flush(m)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: members in different groups cannot reach each other; members in
        no group form one more group together."""
        self._groups = {}
        for i, group in enumerate(groups, start=1):
            for name in group:
                self._groups[self.members[name].address] = i

    def heal(self) -> None:
        """Remove every partition."""
        self._groups = {}

    def connect(self, a: str, b: str) -> None:
        """A transport connection between ``a`` and ``b`` opened (as one does after a heal,
        when either sends the other a frame): both cores are told."""
        for one, other in ((a, b), (b, a)):
            m = self.members[one]
            m.swim.connected(other, now=self.now)
            self._flush(m)

    def slow(self, name: str, delay: float) -> None:
        """Delay everything ``name`` receives by ``delay`` more seconds, as if it were starved
        of CPU and read its socket late (0 makes it healthy again)."""
        self._slow[self.members[name].address] = delay

    # -- running ----------------------------------------------------------------------------

    def run(self, duration: float) -> None:
        """Advance virtual time by ``duration`` seconds."""
        self.run_until(self.now + duration)

    def run_until(self, t: float) -> None:
        """Process everything due up to virtual time ``t``."""
        heap = self._heap
        spins = 0
        while heap and heap[0][0] <= t:
            at, _, kind, data = heapq.heappop(heap)
            self.now = at
            if kind == _TICK:
                name, generation = cast(tuple[str, int], data)
                m = self.members[name]
                if not m.running or m.generation != generation or m.wake != at:
                    continue
                m.wake = float("inf")
                m.swim.tick(at)
                self._flush(m)
                if m.wake == at:
                    spins += 1
                    if spins > 1000:  # a core whose deadline never moves past now: a bug
                        raise RuntimeError(f"{name} keeps asking to be ticked at {at}")
                else:
                    spins = 0
            else:
                self._deliver(cast(tuple[str, str, list[Message], str], data))
        self.now = max(self.now, t)

    def run_until_true(
        self, condition: Callable[[], bool], *, timeout: float, step: float = 0.1
    ) -> float | None:
        """Run until ``condition()`` holds (checked every ``step`` seconds); the virtual time it
        took, or None after ``timeout`` seconds."""
        start = self.now
        while True:
            if condition():
                return self.now - start
            if self.now - start >= timeout:
                return None
            self.run(step)

    # -- observation ------------------------------------------------------------------------

    def running(self) -> list[str]:
        """Names of the members that run (neither crashed nor stopped after leaving)."""
        return [n for n, m in self.members.items() if m.running]

    def view(self, observer: str) -> dict[str, Member]:
        """``observer``'s current view, by name."""
        return {m.name: m for m in self.members[observer].swim.members()}

    def converged(self, names: Iterable[str] | None = None) -> bool:
        """True when every running member (of ``names``) sees exactly the running members as
        alive, and nobody else."""
        live = set(self.running())
        observers = live if names is None else live & set(names)
        for o in observers:
            alive = {m.name for m in self.members[o].swim.members() if m.status is _ALIVE}
            if alive != live:
                return False
        return True

    def first(
        self, observer: str, kind: type[MemberEvent], about: str, after: float
    ) -> float | None:
        """When ``observer`` first saw a ``kind`` event about ``about`` at or after ``after``."""
        for e in self.events:
            if (
                e.at >= after
                and e.observer == observer
                and isinstance(e.event, kind)
                and e.event.member.name == about
            ):
                return e.at
        return None

    # -- internals --------------------------------------------------------------------------

    def _new_swim(
        self, name: str, address: str, run: int, meta: Meta | None, config: SwimConfig | None
    ) -> Swim:
        rng = random.Random(f"{self.seed}:{name}:{run}")
        return Swim(name, address, config or self.config, rng, self.now, meta=meta)

    def _flush(self, m: SimMember) -> None:
        ready = m.swim.ready()
        for event in ready.events:
            e = SimEvent(self.now, m.name, event)
            self.events.append(e)
            if self.on_event is not None:
                self.on_event(e)
        for out in ready.messages:
            self._send(m, out)
        if m.swim.left and m.swim.leave_done:
            m.running = False
            m.generation += 1
            return
        wake = max(m.swim.next_deadline(), self.now)
        if wake < m.wake:
            m.wake = wake
            self._push(wake, _TICK, (m.name, m.generation))

    def _send(self, src: SimMember, out: Outgoing) -> None:
        budget = src.swim.config.packet_budget
        if out.transport == "udp" and out.size > budget:
            raise AssertionError(f"{src.name} sent a {out.size}-byte packet over {budget}")
        s = self.stats
        s.packets += 1
        s.bytes += out.size
        s.bytes_by_member[src.name] = s.bytes_by_member.get(src.name, 0) + out.size
        if out.transport == "udp":
            s.udp_packets += 1
            s.udp_bytes += out.size
        else:
            s.tcp_packets += 1
            s.tcp_bytes += out.size
        messages: tuple[Message, ...] | list[Message] = out.messages
        if self.wire:
            data = encode_packet(out.messages)
            if len(data) != out.size:
                raise AssertionError(f"size {out.size} announced, {len(data)} encoded")
            messages = decode_packet(data)
        loss = self.loss if out.transport == "udp" else self.tcp_loss
        if loss and self._net.random() < loss:
            s.lost += 1
            return
        if self._blocked(src.address, out.address):
            s.partitioned += 1
            return
        lo, hi = self.delay
        delay = lo if lo == hi else self._net.uniform(lo, hi)
        delay += self._slow.get(out.address, 0.0)
        self._push(self.now + delay, _DELIVER, (src.address, out.address, messages, out.transport))

    def _deliver(self, data: tuple[str, str, list[Message], str]) -> None:
        src, dst, messages, transport = data
        m = self._by_address.get(dst)
        if m is None or not m.running:
            self.stats.unreachable += 1
            return
        if self._blocked(src, dst):
            self.stats.partitioned += 1
            return
        self.stats.delivered += 1
        for message in messages:
            m.swim.receive(self.now, src, message, transport="tcp" if transport == "tcp" else "udp")
        self._flush(m)

    def _blocked(self, a: str, b: str) -> bool:
        groups = self._groups
        return bool(groups) and groups.get(a, 0) != groups.get(b, 0)

    def _push(self, at: float, kind: int, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, data))


_ALIVE = MemberStatus.ALIVE
