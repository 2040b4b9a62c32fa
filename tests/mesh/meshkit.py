"""Helpers for the mesh tests: hand-wired SWIM cores and a fake DNS resolver.

Randomized tests take their seeds from ``ember.testing.seeds`` and run under
``ember.testing.seeded``; ``EMBER_SEED=<n>`` replays one seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from ember.mesh import Ack, Alive, Message, Outgoing, Ping, Ready, Swim, SwimConfig


def addr(name: str) -> str:
    return f"{name}:7946"


def core(name: str = "a", *, now: float = 0.0, seed: int = 0, **overrides: Any) -> Swim:
    """A SWIM core on the LAN profile (with ``overrides``), its rng seeded with ``seed``."""
    return Swim(name, addr(name), SwimConfig.lan(**overrides), random.Random(seed), now)


def introduce(swim: Swim, *names: str, now: float = 0.0, incarnation: int = 0) -> None:
    """Tell ``swim`` that ``names`` are alive, as gossip would, and drop what that produced."""
    for n in names:
        swim.receive(now, addr(n), Alive(n, addr(n), incarnation))
    swim.ready()


def step(swim: Swim, *, ack: bool = False) -> tuple[float, Ready]:
    """Tick ``swim`` at its next deadline; that time and what it produced. With ``ack``, every
    ping it sent is answered at once, as by a healthy member."""
    t = swim.next_deadline()
    swim.tick(t)
    ready = swim.ready()
    if not ack:
        return t, ready
    for out in ready.messages:
        ping = out.messages[0]
        if isinstance(ping, Ping):
            swim.receive(t, out.address, Ack(ping.seq, ping.target), transport=out.transport)
    more = swim.ready()
    return t, Ready(ready.messages + more.messages, ready.events + more.events)


def run_until_sent(
    swim: Swim, kind: type[Message], *, limit: int = 100
) -> tuple[float, Outgoing, Ready]:
    """Step ``swim`` until it sends a UDP packet whose first message is a ``kind``."""
    for _ in range(limit):
        t, ready = step(swim)
        for out in ready.messages:
            if isinstance(out.messages[0], kind) and out.transport == "udp":
                return t, out, ready
    raise AssertionError(f"{swim.name} sent no {kind.__name__} in {limit} steps")


def sent(ready: Ready, kind: type[Message]) -> list[tuple[Outgoing, Message]]:
    """Every ``kind`` message in ``ready``, with the packet carrying it."""
    return [(o, m) for o in ready.messages for m in o.messages if isinstance(m, kind)]


class FakeResolver:
    """Answers from a table; an exception in the table is raised. Records every query."""

    def __init__(self, table: dict[tuple[str, str], list[str] | Exception]) -> None:
        self.table = table
        self.queries: list[tuple[str, str]] = []

    async def resolve(self, qname: str, rdtype: str) -> Iterable[Any]:
        self.queries.append((qname, rdtype))
        entry = self.table.get((qname, rdtype), dns.resolver.NXDOMAIN())
        if isinstance(entry, Exception):
            raise entry
        kind = dns.rdatatype.from_text(rdtype)
        return [dns.rdata.from_text(dns.rdataclass.IN, kind, text) for text in entry]
