"""Elections in the simulator (MIT 6.5840 lab 3A, adapted): initial election, re-election, many
elections, pre-vote and check-quorum, and the number of messages an election costs.

Times are in ticks: election_tick = 10 (a follower campaigns 10..19 ticks after last hearing
from a leader), heartbeat_tick = 1.
"""

from __future__ import annotations

import random

import pytest
from raftkit import ids, requests

from ember.consensus._messages import Role
from ember.consensus._sim import Simulation
from ember.testing import seeded, seeds


@pytest.mark.parametrize("seed", seeds(1, 2, 3))
def test_initial_election(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(3), seed)
        leader = sim.wait_leader(max_ticks=40)
        term = sim.node(leader).raft.term
        # "...leader sends periodic heartbeats to all followers in order to maintain its
        # authority" (§5.2): with no failures there is no further election.
        sim.tick(100)
        assert sim.leader() == leader
        assert {sim.node(i).raft.term for i in ids(3)} == {term}


@pytest.mark.parametrize("seed", seeds(4, 5, 6))
def test_reelection(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(3), seed)
        first = sim.wait_leader()
        # "If a follower receives no communication over a period of time called the election
        # timeout, then it assumes there is no viable leader and begins an election" (§5.2).
        sim.isolate(first)
        assert sim.run_until(lambda: sim.leader() not in (None, first), 60)
        second = sim.leader()
        assert second is not None
        # The old leader rejoins: it must not disturb the new one.
        sim.heal()
        sim.tick(30)
        assert sim.leader() == second
        # No quorum, no leader.
        third = next(i for i in ids(3) if i != second)
        sim.partition([second], [third], [i for i in ids(3) if i not in (second, third)])
        sim.tick(40)  # check-quorum: the leader steps down within an election timeout
        assert sim.leaders_now() == []
        sim.heal()
        sim.wait_leader()


@pytest.mark.parametrize("seed", seeds(7, 8))
def test_many_elections_seven_nodes(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(7), seed)
        sim.wait_leader()
        rng = random.Random(seed)
        for _ in range(10):
            down = rng.sample(ids(7), 3)
            sim.partition([i for i in ids(7) if i not in down], *[[d] for d in down])
            # A majority is connected: it has (or gets) a leader. Election Safety is checked
            # by the simulator after every settled step.
            sim.wait_leader(max_ticks=200)
            sim.heal()
        sim.wait_leader()


def test_election_costs_few_messages() -> None:
    # MIT's TestCount: an election of 3 servers takes at most 30 RPCs; here an RPC is a request
    # message (pre-vote, vote, append...) and its answer is not counted.
    sim = Simulation(ids(3), 11)
    sim.wait_leader()
    assert 1 <= requests(sim) <= 30
    # Idle, a leader only heartbeats: one request per follower per heartbeat tick.
    before = requests(sim)
    sim.tick(20)
    assert requests(sim) - before <= 2 * 20


@pytest.mark.parametrize("check_quorum", [True, False])
@pytest.mark.parametrize("seed", seeds(12, 13))
def test_pre_vote_keeps_a_partitioned_node_from_disrupting(seed: int, check_quorum: bool) -> None:
    # Thesis §9.6: "a candidate first asks whether its log is up-to-date enough to get votes
    # ... only if it hears back from a majority does it increment its term and start an election".
    with seeded(seed):
        sim = Simulation(ids(3), seed, check_quorum=check_quorum)
        leader = sim.wait_leader()
        term = sim.node(leader).raft.term
        loner = next(i for i in ids(3) if i != leader)
        sim.isolate(loner)
        sim.tick(200)
        assert sim.node(loner).raft.term == term  # pre-votes never bump the term
        sim.heal()
        sim.tick(30)
        assert sim.leader() == leader and sim.node(leader).raft.term == term


def test_without_pre_vote_a_rejoining_node_disrupts_the_leader() -> None:
    # The control experiment for the test above: without pre-vote the loner's term grows while
    # it is partitioned, and its return forces the leader out.
    sim = Simulation(ids(3), 14, pre_vote=False, check_quorum=False)
    leader = sim.wait_leader()
    term = sim.node(leader).raft.term
    loner = next(i for i in ids(3) if i != leader)
    sim.isolate(loner)
    sim.tick(200)
    assert sim.node(loner).raft.term > term + 5
    sim.heal()
    sim.tick(60)
    assert sim.node(sim.wait_leader()).raft.term > term + 5


@pytest.mark.parametrize("seed", seeds(15, 16))
def test_check_quorum_makes_an_isolated_leader_step_down(seed: int) -> None:
    # Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
    # round of heartbeats to a majority of its cluster".
    with seeded(seed):
        sim = Simulation(ids(5), seed)
        leader = sim.wait_leader()
        sim.isolate(leader)
        sim.tick(2 * 10)
        assert sim.node(leader).raft.role == Role.FOLLOWER
        assert sim.leader() != leader


def test_without_check_quorum_an_isolated_leader_stays_leader() -> None:
    sim = Simulation(ids(3), 17, check_quorum=False)
    leader = sim.wait_leader()
    sim.isolate(leader)
    sim.tick(100)
    assert sim.node(leader).raft.role == Role.LEADER


@pytest.mark.parametrize("check_quorum", [True, False])
def test_a_member_cut_off_from_the_leader_only_does_not_take_over(check_quorum: bool) -> None:
    # Thesis §9.6: "...if it hasn't received heartbeats from a valid leader for at least a
    # baseline election timeout". The loner still reaches the other follower, which hears from
    # the leader and so refuses its pre-votes: the loner never bumps its term.
    sim = Simulation(ids(3), 18, check_quorum=check_quorum)
    leader = sim.wait_leader()
    term = sim.node(leader).raft.term
    loner = next(i for i in ids(3) if i != leader)
    sim.blocked = {(loner, leader), (leader, loner)}
    sim.tick(200)
    assert sim.leader() == leader
    assert {sim.node(i).raft.term for i in ids(3)} == {term}
