"""The SWIM state machine driven by hand: every input and output is explicit. Pure, no loop.

Comments quote the rule of SWIM (Das et al. 2002) or Lifeguard (Dadgar et al. 2018) checked.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from meshkit import addr, core, introduce, run_until_sent, sent, step

from ember import UsageError
from ember.mesh import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Member,
    MemberAlive,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberStatus,
    MemberSuspect,
    MemberUpdated,
    Nack,
    Ping,
    PushPull,
    Suspect,
    Swim,
    SwimConfig,
    encode_packet,
)

ALIVE, SUSPECT, FAILED, LEFT = (
    MemberStatus.ALIVE,
    MemberStatus.SUSPECT,
    MemberStatus.FAILED,
    MemberStatus.LEFT,
)


def test_constructor_validates_its_inputs() -> None:
    cfg, rng = SwimConfig.lan(), random.Random(0)
    with pytest.raises(UsageError):
        Swim("", "a:1", cfg, rng, 0.0)
    with pytest.raises(UsageError):
        Swim("x" * 129, "a:1", cfg, rng, 0.0)
    with pytest.raises(UsageError):
        Swim("a", "a:1", cfg, rng, 0.0, meta={"blob": "x" * 600})
    with pytest.raises(UsageError):
        Swim("a", "a:1", cfg, rng, 0.0, meta={"f": object()})
    with pytest.raises(UsageError):
        Swim("a", "a:1", cfg, rng, 0.0, incarnation=-1)
    s = Swim("a", "a:1", cfg, rng, 0.0, meta={"role": "raft"}, incarnation=7)
    assert s.members() == (Member("a", "a:1", ALIVE, 7, {"role": "raft"}),)


def test_a_ping_is_acked_to_its_source_over_the_same_transport() -> None:
    b = core("b")
    introduce(b, "a")
    b.ready()
    b.receive(1.0, addr("a"), Ping(5, "b", "a", addr("a")))
    b.receive(1.0, addr("a"), Ping(6, "b", "a", addr("a")), transport="tcp")
    [udp, tcp] = b.ready().messages
    assert (udp.address, udp.messages[0], udp.transport) == (addr("a"), Ack(5, "b"), "udp")
    assert (tcp.messages, tcp.transport) == ((Ack(6, "b"),), "tcp")


def test_a_ping_from_a_member_we_never_heard_of_starts_a_state_sync_with_it() -> None:
    # Its alive announcement missed us; waiting for the periodic push-pull took up to 21 s in
    # the benchmark's join trials.
    b = core("b")
    b.receive(1.0, addr("a"), Ping(5, "b", "a", addr("a")))
    out = b.ready().messages
    [ack] = [o for o in out if o.transport == "udp"]
    [sync] = [o for o in out if o.transport == "tcp"]
    assert ack.messages[0] == Ack(5, "b")
    assert (sync.address, sync.node) == (addr("a"), "a")
    assert isinstance(sync.messages[0], PushPull) and not sync.messages[0].reply
    introduce(b, "a")
    b.receive(2.0, addr("a"), Ping(6, "b", "a", addr("a")))
    assert [o.messages[0] for o in b.ready().messages] == [Ack(6, "b")]


def test_a_ping_for_another_member_is_not_answered() -> None:
    # a new process at a reused address must not answer for its predecessor
    b = core("b")
    b.receive(1.0, addr("a"), Ping(5, "old-b", "a", addr("a")))
    assert not b.ready().messages
    assert b.statistics().misdirected == 1


def test_probes_visit_every_member_once_per_round_in_random_order() -> None:
    # SWIM 4.3: round-robin over a randomly permuted list bounds the time to first detection
    a = core("a")
    others = [f"n{i}" for i in range(8)]
    introduce(a, *others)
    rounds = []
    for _ in range(3):
        targets = []
        for _ in range(8):
            _, out, _ = run_until_sent(a, Ping)
            targets.append(out.node)
            a.receive(a.next_deadline(), out.address, Ack(out.messages[0].seq, out.node or ""))  # type: ignore[union-attr]
            a.ready()
        assert sorted(targets) == others
        rounds.append(targets)
    assert rounds[0] != rounds[1] or rounds[1] != rounds[2]


def test_probe_interval_is_paced_and_acked_probes_are_quiet() -> None:
    a = core("a")
    introduce(a, "b")
    t1, out, _ = run_until_sent(a, Ping)
    ping = out.messages[0]
    assert isinstance(ping, Ping) and ping.target == "b" and ping.source_address == addr("a")
    a.receive(t1 + 0.01, addr("b"), Ack(ping.seq, "b"))
    t2, _, _ = run_until_sent(a, Ping)
    assert t2 == pytest.approx(t1 + 1.0)
    assert a.health == 0 and a.statistics().probes_failed == 0


def _probe_without_answer(a: Swim) -> tuple[float, Ping, list[IndirectPing], Ping]:
    """Run a's probe until its timeout; the ping, the indirect requests, the TCP ping."""
    t0, out, _ = run_until_sent(a, Ping)
    ping = out.messages[0]
    assert isinstance(ping, Ping)
    timeout_at = t0 + a.config.probe_timeout * (a.health + 1)
    t1, ready = step(a)
    while t1 < timeout_at - 1e-9:  # gossip rounds in between
        assert not sent(ready, IndirectPing)
        t1, ready = step(a)
    assert t1 == pytest.approx(timeout_at)
    requests = [m for _, m in sent(ready, IndirectPing)]
    [tcp] = [o for o in ready.messages if o.transport == "tcp"]
    assert isinstance(tcp.messages[0], Ping) and tcp.address == addr(ping.target)
    return t0, ping, requests, tcp.messages[0]  # type: ignore[return-value]


def test_a_missed_ack_asks_k_members_and_tries_tcp() -> None:
    # SWIM 3.1: after the timeout, ping the target indirectly through k random members
    a = core("a", indirect_checks=3)
    introduce(a, "b", "c", "d", "e", "f")
    _, ping, requests, tcp_ping = _probe_without_answer(a)
    assert len(requests) == 3
    assert all(r.target == ping.target and r.seq == ping.seq and r.nack for r in requests)
    assert ping.target not in {r.source for r in requests}
    assert tcp_ping == ping
    assert a.statistics().tcp_fallbacks == 1


def test_a_relay_forwards_the_ack_and_the_probe_succeeds() -> None:
    a = core("a")
    introduce(a, "b", "c")
    relay = core("c")
    t0, ping, requests, _ = _probe_without_answer(a)
    [req] = [r for r in requests]
    relay.receive(t0 + 0.5, addr("a"), req)
    [out] = relay.ready().messages
    relayed = out.messages[0]
    assert isinstance(relayed, Ping) and out.address == addr(ping.target)
    assert relayed.source == "c" and relayed.target == ping.target
    relay.receive(t0 + 0.6, addr(ping.target), Ack(relayed.seq, ping.target))
    [back] = relay.ready().messages
    assert back.address == addr("a") and back.messages[0] == Ack(ping.seq, "c")
    a.receive(t0 + 0.61, addr("c"), back.messages[0])
    a.tick(t0 + 1.0)
    assert a.member(ping.target).status is ALIVE  # type: ignore[union-attr]
    assert not [e for e in a.ready().events if isinstance(e, MemberSuspect)]


def test_a_relay_nacks_when_the_target_is_silent() -> None:
    # Lifeguard: nacks tell the prober that the relay path, and so the prober, works
    relay = core("c", now=10.0)
    relay.receive(10.0, addr("a"), IndirectPing(9, "b", addr("b"), "a", addr("a"), True, 0.4))
    relay.ready()
    assert relay.next_deadline() <= 10.4
    relay.tick(10.39)
    assert not sent(relay.ready(), Nack)
    relay.tick(10.4)
    [out] = relay.ready().messages
    assert out.address == addr("a") and out.messages[0] == Nack(9, "c")


def test_probe_without_any_ack_suspects_and_health_counts_missing_nacks() -> None:
    # Lifeguard LHA-Probe: a failed probe raises the score by the nacks that did not come
    a = core("a")
    introduce(a, "b", "c", "d")
    t0, ping, requests, _ = _probe_without_answer(a)
    assert len(requests) == 2
    a.receive(t0 + 0.9, requests[0].source_address, Nack(ping.seq, "x"))
    a.tick(t0 + 1.0)
    ready = a.ready()
    [event] = ready.events
    assert isinstance(event, MemberSuspect) and event.member.name == ping.target
    assert a.health == 1  # two expected, one came
    assert a.statistics().probes_failed == 1


def test_health_stretches_the_probe_interval_and_timeout() -> None:
    # Lifeguard LHA-Probe: probe interval and timeout are scaled by the local health score
    a = core("a")
    introduce(a, "b", "c", "d")
    for inc in range(4):  # each accusation we must refute costs one point
        a.receive(0.0, addr("b"), Suspect("a", inc, "b"))
    assert a.health == 4
    a.ready()
    t0, _, _, _ = _probe_without_answer(a)  # checks the timeout: 0.5 s * 5
    t2, out, _ = run_until_sent(a, Ping)
    assert t2 - t0 == pytest.approx(1.0 * 5)  # the interval, scaled when the probe started
    assert a.health == 6  # that probe failed, and both relays were silent
    a.receive(t2, out.address, Ack(out.messages[0].seq, "x"))  # type: ignore[union-attr]
    assert a.health == 5  # success lowers it


def test_a_tcp_ack_alone_rescues_the_probe() -> None:
    a = core("a")
    introduce(a, "b")
    t0, _, _, tcp_ping = _probe_without_answer(a)
    a.receive(t0 + 0.7, addr("b"), Ack(tcp_ping.seq, "b"), transport="tcp")
    a.tick(t0 + 1.0)
    assert not a.ready().events
    assert a.statistics().tcp_fallback_acks == 1


def test_a_suspect_is_told_directly_in_the_next_probe() -> None:
    # Lifeguard buddy system: piggyback the suspicion on the ping to the suspect
    a = core("a")
    introduce(a, "b")
    a.receive(1.0, addr("c"), Suspect("b", 0, "c"))
    assert isinstance(a.ready().events[0], MemberSuspect)
    _, out, _ = run_until_sent(a, Ping)
    assert out.messages[:2] == (out.messages[0], Suspect("b", 0, "a"))


def test_refutation_bumps_the_incarnation_and_rides_on_the_ack() -> None:
    # SWIM 4.2: a member that hears it is suspected gossips alive with a higher incarnation
    b = core("b")
    b.receive(5.0, addr("a"), Ping(3, "b", "a", addr("a")))
    b.receive(5.0, addr("a"), Suspect("b", 0, "a"))
    [out] = [o for o in b.ready().messages if o.transport == "udp"]  # (and a sync with a)
    assert out.messages == (Ack(3, "b"), Alive("b", addr("b"), 1))
    assert b.incarnation == 1
    assert b.health == 1  # Lifeguard: being accused counts against our own health
    assert b.statistics().refutations == 1


@pytest.mark.parametrize(
    "accusation",
    [Suspect("b", 4, "a"), Dead("b", 4, "a"), Alive("b", addr("b"), 4)],
    ids=["suspect", "dead", "alive-from-a-past-run"],
)
def test_every_accusation_is_refuted_above_its_incarnation(
    accusation: Suspect | Dead | Alive,
) -> None:
    b = core("b")
    b.receive(1.0, addr("a"), accusation)
    assert b.incarnation == 5
    assert b.member("b").status is ALIVE  # type: ignore[union-attr]
    b.ready()


def test_stale_accusations_and_our_own_echo_are_ignored() -> None:
    b = core("b")
    b.receive(1.0, addr("a"), Suspect("b", 0, "a"))
    assert b.incarnation == 1
    b.receive(1.0, addr("a"), Suspect("b", 0, "c"))  # older than our refutation
    b.receive(1.0, addr("a"), Alive("b", addr("b"), 1))  # our own alive, gossiped back
    assert b.incarnation == 1


def test_suspicion_timeout_shrinks_with_independent_confirmations() -> None:
    # Lifeguard LHA-Suspicion: max timeout alone, min after k confirmations
    a = core("a")
    introduce(a, *(f"n{i}" for i in range(9)))  # n = 10: min 4 s, max 24 s, k = 2
    a.receive(100.0, addr("n1"), Suspect("n0", 0, "n1"))
    a.ready()
    assert a.next_deadline() <= 124.0
    a.receive(101.0, addr("n2"), Suspect("n0", 0, "n2"))
    a.receive(101.0, addr("n2"), Suspect("n0", 0, "n2"))  # a repeat counts once
    a.receive(102.0, addr("n3"), Suspect("n0", 0, "n3"))
    a.ready()
    # with k confirmations the deadline is start + min
    a.tick(103.99)
    assert a.member("n0").status is SUSPECT  # type: ignore[union-attr]
    a.tick(104.0)
    ready = a.ready()
    assert [type(e) for e in ready.events] == [MemberFailed]
    assert a.member("n0").status is FAILED  # type: ignore[union-attr]


def test_an_unconfirmed_suspicion_waits_the_maximum() -> None:
    a = core("a")
    introduce(a, *(f"n{i}" for i in range(9)))
    a.receive(100.0, addr("n1"), Suspect("n0", 0, "n1"))
    a.ready()
    t = 100.0
    while a.member("n0").status is SUSPECT:  # type: ignore[union-attr]
        t, _ = step(a, ack=True)  # our probes succeed (n0 too), so only the timer matters
    assert t == pytest.approx(124.0)


def test_alive_with_a_higher_incarnation_clears_a_suspicion() -> None:
    a = core("a")
    introduce(a, "b")
    a.receive(1.0, addr("c"), Suspect("b", 0, "c"))
    a.receive(2.0, addr("b"), Alive("b", addr("b"), 1))
    events = a.ready().events
    assert [type(e) for e in events] == [MemberSuspect, MemberAlive]
    assert a.member("b") == Member("b", addr("b"), ALIVE, 1)
    a.tick(1000.0)  # the old suspicion timer is gone
    assert not [e for e in a.ready().events if isinstance(e, MemberFailed)]


def test_a_failure_is_final_for_that_incarnation() -> None:
    a = core("a")
    introduce(a, "b")
    a.receive(1.0, addr("c"), Dead("b", 0, "c"))
    a.receive(1.0, addr("c"), Alive("b", addr("b"), 0))  # stale
    a.receive(1.0, addr("c"), Suspect("b", 0, "c"))
    assert a.member("b").status is FAILED  # type: ignore[union-attr]
    a.receive(2.0, addr("b"), Alive("b", addr("b"), 1))
    assert [type(e) for e in a.ready().events] == [MemberFailed, MemberJoined]


def test_metadata_is_versioned_by_incarnation() -> None:
    b = core("b")
    b.update_meta({"roles": ["raft"]})
    assert b.incarnation == 1
    a = core("a")
    introduce(a, "b")
    a.receive(1.0, addr("b"), Alive("b", addr("b"), 1, b.meta))
    a.receive(1.0, addr("b"), Alive("b", addr("b"), 1, {"roles": []}))  # same version: ignored
    [event] = a.ready().events
    assert isinstance(event, MemberUpdated) and event.member.meta == {"roles": ["raft"]}
    with pytest.raises(UsageError):
        b.update_meta({"x": "y" * 1000})


def test_a_restart_with_other_metadata_at_the_same_incarnation_is_refuted() -> None:
    # memberlist: same incarnation, different metadata: a previous run of us; outrank it
    b = core("b")
    b.receive(1.0, addr("a"), Alive("b", addr("b"), 0, {"old": True}))
    assert b.incarnation == 1


def test_another_address_for_a_live_name_is_a_conflict_but_a_failed_name_is_reclaimed() -> None:
    # (a higher incarnation moves a live name: test_mesh_restart.py)
    a = core("a")
    introduce(a, "b")
    a.receive(1.0, addr("x"), Alive("b", "10.0.0.9:7946", 0))
    assert a.member("b").address == addr("b")  # type: ignore[union-attr]
    assert a.statistics().conflicts == 1
    a.receive(2.0, addr("c"), Dead("b", 0, "c"))
    a.receive(3.0, addr("x"), Alive("b", "10.0.0.9:7946", 0))
    assert a.member("b") == Member("b", "10.0.0.9:7946", ALIVE, 0)
    a2 = core("a", reclaim_time=60.0)
    introduce(a2, "b")
    a2.receive(2.0, addr("c"), Dead("b", 0, "c"))
    a2.receive(3.0, addr("x"), Alive("b", "10.0.0.9:7946", 1))
    assert a2.member("b").status is FAILED  # type: ignore[union-attr]


def test_graceful_leave_is_a_dead_from_the_member_itself() -> None:
    b = core("b")
    introduce(b, "a", "c")
    b.leave(now=5.0)
    assert b.left and not b.leave_done
    assert b.member("b").status is LEFT  # type: ignore[union-attr]
    leaves = []
    for _ in range(20):
        _, ready = step(b)
        leaves += [m for _, m in sent(ready, Dead)]
        if b.leave_done:
            break
    assert b.leave_done
    assert set(leaves) == {Dead("b", 0, "b")}
    assert len(leaves) == b.config.retransmit_limit(3)
    assert not [p for p, _ in sent(ready, Ping)]  # no probing after leaving
    a = core("a")
    introduce(a, "b")
    a.receive(6.0, addr("b"), leaves[0])
    assert [type(e) for e in a.ready().events] == [MemberLeft]
    b.receive(7.0, addr("a"), Suspect("b", 0, "a"))  # no refuting after leaving
    assert b.incarnation == 0
    with pytest.raises(UsageError):
        b.update_meta({})


def test_failed_and_left_members_are_reaped_after_their_times() -> None:
    a = core("a", failed_reap_time=100.0, left_reap_time=50.0)
    introduce(a, "b", "c", "d")
    a.receive(1.0, addr("x"), Dead("b", 0, "x"))
    a.receive(1.0, addr("c"), Dead("c", 0, "c"))
    a.ready()
    reaped: dict[str, float] = {}
    t = 1.0
    while t < 110:
        t, ready = step(a)
        for out in ready.messages:
            if isinstance(out.messages[0], Ping):
                a.receive(t, out.address, Ack(out.messages[0].seq, "d"))
        for e in a.ready().events + ready.events:
            if isinstance(e, MemberReaped):
                reaped[e.member.name] = e.at
    assert set(reaped) == {"b", "c"}
    assert 51.0 <= reaped["c"] <= 52.0 and 101.0 <= reaped["b"] <= 102.0
    assert a.member("b") is None and [m.name for m in a.members()] == ["a", "d"]


def test_join_is_a_push_pull_and_the_seed_answers_with_its_state() -> None:
    a, seed = core("a"), core("s")
    introduce(seed, "x", "y")
    a.join([addr("s"), addr("a")])  # our own address is skipped
    [out] = a.ready().messages
    request = out.messages[0]
    assert out.transport == "tcp" and out.address == addr("s") and out.node is None
    assert isinstance(request, PushPull) and request.join and not request.reply
    seed.receive(0.1, addr("a"), request, transport="tcp")
    ready = seed.ready()
    assert [e.member.name for e in ready.events] == ["a"]
    [answer] = ready.messages
    assert answer.transport == "tcp" and answer.address == addr("a")
    assert isinstance(answer.messages[0], PushPull) and answer.messages[0].reply
    a.receive(0.2, addr("s"), answer.messages[0], transport="tcp")
    joined = {e.member.name for e in a.ready().events if isinstance(e, MemberJoined)}
    assert joined == {"s", "x", "y"}
    assert not a.ready().messages  # a reply is not answered


def test_a_lonely_member_rejoins_its_seeds_and_a_connected_one_does_not() -> None:
    a = core("a", rejoin_interval=5.0)
    a.join([addr("s")])
    a.ready()
    pushes = []
    t = 0.0
    while t < 16:
        t, ready = step(a)
        pushes += [t for o in ready.messages if isinstance(o.messages[0], PushPull)]
    assert pushes == pytest.approx([5.0, 10.0, 15.0])
    introduce(a, "b", now=t)
    while t < 40:
        t, ready = step(a, ack=True)
        assert not [o for o in ready.messages if o.address == addr("s")]


def test_a_push_pull_failure_report_only_raises_suspicion() -> None:
    a = core("a")
    introduce(a, "b")
    report = (Member("b", addr("b"), FAILED, 0), Member("a", addr("a"), FAILED, 0))
    a.receive(1.0, addr("c"), PushPull("c", addr("c"), report, reply=True), transport="tcp")
    assert a.member("b").status is SUSPECT  # type: ignore[union-attr]
    assert a.incarnation == 1  # and refuted about ourselves


def test_reconnect_tries_failed_members_with_probability_failed_over_alive() -> None:
    a = core("a", reconnect_interval=1.0, push_pull_interval=1e6)
    introduce(a, "b", "c")
    a.receive(0.0, addr("x"), Dead("b", 0, "x"))
    a.ready()
    t, tries = 0.0, 0
    while t < 400:
        t, ready = step(a, ack=True)
        tries += sum(1 for o in ready.messages if o.address == addr("b") and o.transport == "tcp")
    # one failed of two alive (a, c): about half of ~400 intervals
    assert 140 < tries < 260
    assert a.statistics().reconnects == tries


def test_udp_packets_are_packed_to_the_budget_and_never_over() -> None:
    a = core("a")
    names = [f"member-with-a-long-name-{i:03}" for i in range(80)]
    for n in names:
        a.receive(0.0, addr(n), Alive(n, addr(n), 0, {"role": "worker", "zone": "eu-west-1a"}))
    a.ready()
    budget = a.config.packet_budget
    sizes = []
    for _ in range(50):
        _, ready = step(a)
        for out in ready.messages:
            if out.transport == "udp":
                assert out.size <= budget
                assert len(encode_packet(out.messages)) == out.size
                sizes.append(out.size)
    assert max(sizes) > budget - 60  # gossip packets are filled, not half empty


def test_gossip_rounds_send_nothing_when_there_is_no_news() -> None:
    a = core("a")
    introduce(a, "b", "c")
    for _ in range(40):
        t, ready = step(a)
        for out in ready.messages:
            if isinstance(out.messages[0], Ping):
                a.receive(t, out.address, Ack(out.messages[0].seq, "x"))
    a.ready()
    quiet = [o for o in step(a)[1].messages if not isinstance(o.messages[0], Ping | PushPull)]
    assert quiet == []


def test_a_gossip_message_too_large_for_any_packet_is_counted_and_still_synced() -> None:
    a = core("a")
    # from a peer configured with a larger metadata limit
    a.receive(0.0, addr("big"), Alive("big", addr("big"), 0, {"blob": "x" * 1400}))
    ready = a.ready()
    assert [e.member.name for e in ready.events] == ["big"]
    assert a.statistics().broadcasts_oversized == 1
    a.receive(0.0, addr("c"), PushPull("c", addr("c"), ()), transport="tcp")
    [answer] = a.ready().messages
    assert "big" in {m.name for m in answer.messages[0].members}  # type: ignore[union-attr]


def test_a_packet_whose_own_messages_exceed_the_budget_is_counted_not_sent() -> None:
    a = core("a")
    a.receive(0.0, addr("x"), IndirectPing(1, "t" * 2000, "t:1", "x", addr("x"), True, 0.4))
    assert not a.ready().messages
    assert a.statistics().packets_oversized == 1


def test_same_seed_same_outputs() -> None:
    def trace(seed: int) -> list[object]:
        a = core("a", seed=seed)
        introduce(a, *(f"n{i}" for i in range(10)))
        out: list[object] = []
        for _ in range(60):
            t, ready = step(a)
            out += [(t, o.address, o.messages) for o in ready.messages]
        return out

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


_names = st.sampled_from(["a", "b", "c", "d"])
_incs = st.integers(0, 4)
_messages = st.one_of(
    st.builds(Ping, st.integers(0, 5), _names, _names, _names.map(addr)),
    st.builds(Ack, st.integers(0, 40), _names),
    st.builds(Nack, st.integers(0, 40), _names),
    st.builds(Suspect, _names, _incs, _names),
    st.builds(Dead, _names, _incs, _names),
    st.builds(
        Alive,
        _names,
        st.sampled_from(["x:1", *(addr(n) for n in "abcd")]),
        _incs,
        st.sampled_from([{}, {"r": 1}]),
    ),
    st.builds(
        IndirectPing,
        st.integers(0, 5),
        _names,
        _names.map(addr),
        _names,
        _names.map(addr),
        st.booleans(),
        st.just(0.4),
    ),
)
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("recv"), _messages, st.sampled_from(["udp", "tcp"])),
        st.tuples(st.just("tick"), st.floats(0.0, 30.0), st.just("")),
        st.tuples(
            st.just("pushpull"),
            st.lists(
                st.builds(
                    Member, _names, _names.map(addr), st.sampled_from(list(MemberStatus)), _incs
                ),
                max_size=4,
            ).map(tuple),
            st.just(""),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_operations, seed=st.integers(0, 3))
def test_any_input_sequence_keeps_the_invariants(
    ops: list[tuple[str, object, str]], seed: int
) -> None:
    a = core("a", seed=seed, failed_reap_time=20.0, left_reap_time=10.0)
    now, own = 0.0, 0
    budget = a.config.packet_budget
    seen: dict[str, tuple[str, int]] = {}
    for op, arg, transport in ops:
        if op == "tick":
            now += arg  # type: ignore[operator]
            a.tick(now)
        elif op == "recv":
            a.receive(now, addr("z"), arg, transport=transport)  # type: ignore[arg-type]
        else:
            a.receive(now, addr("z"), PushPull("z", addr("z"), arg), transport="tcp")  # type: ignore[arg-type]
        ready = a.ready()
        assert a.incarnation >= own  # only we raise our incarnation, never lower it
        own = a.incarnation
        assert a.member("a").status is ALIVE  # type: ignore[union-attr]
        assert all(o.size <= budget for o in ready.messages if o.transport == "udp")
        assert all(e.member.name != "a" for e in ready.events)
        if op == "tick":
            assert a.next_deadline() > now  # everything due was done
        for m in a.members():
            before = seen.get(m.name)
            if before is not None and before[0] == m.address:
                assert m.incarnation >= before[1], f"{m.name} went back in incarnation"
            seen[m.name] = (m.address, m.incarnation)
        for name in list(seen):
            if a.member(name) is None:
                del seen[name]


def test_a_connection_to_a_member_held_failed_or_suspect_syncs_with_it_at_once() -> None:
    a = core("a")
    introduce(a, "b", "c", "d")
    a.connected("b", now=1.0)  # alive: nothing to repair
    a.connected("nobody", now=1.0)
    assert not sent(a.ready(), PushPull) and a.statistics().connect_syncs == 0
    a.receive(1.0, addr("d"), Dead("b", 0, "d"))
    a.receive(1.0, addr("d"), Suspect("c", 0, "d"))
    a.ready()
    for name in ("b", "c"):
        a.connected(name, now=2.0)
        ((out, push),) = sent(a.ready(), PushPull)
        assert out.transport == "tcp" and out.node == name and out.address == addr(name)
        assert isinstance(push, PushPull) and not push.join and not push.reply
    assert a.statistics().connect_syncs == 2
    a.leave(now=3.0)
    a.ready()
    a.connected("b", now=3.0)  # a member that left syncs with nobody
    assert not sent(a.ready(), PushPull)
