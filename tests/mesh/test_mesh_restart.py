"""A member restarted at another address replaces its old self, and nobody answers for it.

The shell sends the TCP fallback probe on the node transport, which dials by *name*: a probe
meant for a crashed member's old address reaches its new incarnation if that one is connected.
An ack from it would keep the stale record alive forever; instead an ack only counts from the
address probed (the ping says which), and the new incarnation, with its higher incarnation,
replaces the old record (memberlist refutes by incarnation and checks the address). Pure: the
cores are wired by hand, as the shell wires them.
"""

from __future__ import annotations

import random
from collections import deque

from meshkit import addr, core, introduce

from ember.mesh import (
    Ack,
    Alive,
    Member,
    MemberStatus,
    MemberUpdated,
    Ping,
    Swim,
    SwimConfig,
)

ALIVE = MemberStatus.ALIVE
NEW = "b:2222"  # where b runs after its restart


def test_a_ping_meant_for_an_earlier_address_is_answered_with_who_we_are_now() -> None:
    b = Swim("b", NEW, SwimConfig.lan(), random.Random(0), 0.0, incarnation=1000)
    introduce(b, "a")
    b.receive(1.0, addr("a"), Ping(5, "b", "a", addr("a"), addr("b")), transport="tcp")
    [reply] = b.ready().messages
    assert (reply.address, reply.transport) == (addr("a"), "tcp")
    assert reply.messages == (Alive("b", NEW, 1000),)  # not Ack(5, "b")
    assert b.statistics().misdirected == 1
    b.receive(2.0, addr("a"), Ping(6, "b", "a", addr("a"), NEW))  # meant for us: acked
    assert b.ready().messages[0].messages[0] == Ack(6, "b")


def test_an_alive_with_a_higher_incarnation_at_another_address_replaces_a_live_record() -> None:
    a = core("a")
    introduce(a, "b", incarnation=3)
    a.receive(1.0, addr("b"), Alive("b", NEW, 3))  # the same incarnation: a conflict
    assert a.member("b") == Member("b", addr("b"), ALIVE, 3)
    assert a.statistics().conflicts == 1
    a.receive(2.0, NEW, Alive("b", NEW, 1000))  # a restart elsewhere: it outranks its old self
    assert a.member("b") == Member("b", NEW, ALIVE, 1000)
    [event] = a.ready().events
    assert isinstance(event, MemberUpdated) and event.member.address == NEW
    a.receive(3.0, addr("b"), Alive("b", addr("b"), 999))  # the old self's stale news
    assert a.member("b") == Member("b", NEW, ALIVE, 1000)


def test_with_a_reclaim_time_a_live_name_never_moves() -> None:
    a = core("a", reclaim_time=60.0)
    introduce(a, "b")
    a.receive(1.0, NEW, Alive("b", NEW, 1000))
    assert a.member("b") == Member("b", addr("b"), ALIVE, 0)
    assert a.statistics().conflicts == 1


def test_our_own_name_at_another_address_is_a_conflict_not_a_refutation() -> None:
    b = core("b")
    b.receive(1.0, NEW, Alive("b", NEW, 1000))
    assert b.member("b") == Member("b", addr("b"), ALIVE, 0)
    assert b.incarnation == 0
    assert b.statistics().conflicts == 1


class _Wires:
    """Delivers what cores send at once, as the shell does: UDP by address (nobody at a dead
    address), TCP by node name (the node transport dials by name), or by address when the
    core names no node (a seed)."""

    def __init__(self, *cores: Swim) -> None:
        self.cores = list(cores)
        self.now = 0.0

    def at(self, address: str) -> Swim | None:
        return next((c for c in self.cores if c.address == address), None)

    def named(self, name: str) -> Swim | None:
        return next((c for c in self.cores if c.name == name), None)

    def run(self, until: float) -> None:
        while True:
            t = min(c.next_deadline() for c in self.cores)
            if t > until:
                self.now = until
                return
            self.now = t
            for c in list(self.cores):
                if c.next_deadline() <= t:
                    c.tick(t)
                    self.flush(c)

    def flush(self, first: Swim) -> None:
        pending = deque([first])
        while pending:
            src = pending.popleft()
            for out in src.ready().messages:
                if out.transport == "udp" or out.node is None:
                    dst = self.at(out.address)
                else:
                    dst = self.named(out.node)
                if dst is None or dst is src:
                    continue
                for message in out.messages:
                    dst.receive(self.now, src.address, message, transport=out.transport)
                pending.append(dst)


def test_a_member_restarted_at_another_port_replaces_its_old_self_everywhere() -> None:
    """b crashes and comes back at another port before anyone noticed. Its announcement is
    lost (it joins through nobody); the peers' TCP fallback probes of its old address reach
    it by name. Every view must move to the new address within the detection bound."""
    config = SwimConfig.lan()
    a = Swim("a", addr("a"), config, random.Random(1), 0.0, incarnation=1)
    c = Swim("c", addr("c"), config, random.Random(2), 0.0, incarnation=1)
    old = Swim("b", addr("b"), config, random.Random(3), 0.0, incarnation=1)
    wires = _Wires(a, c, old)
    for member in (a, c):
        member.join([addr("b")], now=0.0)
        wires.flush(member)
    wires.run(10.0)
    assert all(m.member("b") == Member("b", addr("b"), ALIVE, 1) for m in (a, c))

    wires.cores.remove(old)  # crashed
    new = Swim("b", NEW, config, random.Random(4), wires.now, incarnation=1 + 10_000)
    wires.cores.append(new)
    restarted = wires.now
    bound = config.detection_bound(3)
    while wires.now < restarted + bound and not all(
        m.member("b") == Member("b", NEW, ALIVE, 10_001) for m in (a, c)
    ):
        wires.run(wires.now + 0.1)
    assert a.member("b") == Member("b", NEW, ALIVE, 10_001)
    assert c.member("b") == Member("b", NEW, ALIVE, 10_001)
    wires.run(wires.now + 3 * bound)  # and it stays so
    assert all(m.member("b") == Member("b", NEW, ALIVE, 10_001) for m in (a, c))
    assert {x.name for x in new.members() if x.status is ALIVE} == {"a", "b", "c"}
