"""Log replication in the simulator (MIT 6.5840 labs 3B and 3C, adapted): agreement, failures,
concurrent proposals, a rejoining leader, fast backup, message counts, persistence, Figure 8,
churn. The simulator checks Election Safety, Log Matching, Leader Completeness and State Machine
Safety at every settled step, so each scenario is also a safety test."""

from __future__ import annotations

import random

import pytest
from raftkit import ids, requests

from ember.consensus._messages import MsgType
from ember.consensus._sim import Simulation
from ember.testing import seeded, seeds


def test_basic_agreement() -> None:
    sim = Simulation(ids(3), 21)
    sim.wait_leader()
    first = sim.one(b"a", 3)
    for k in range(1, 4):
        assert sim.one(b"x%d" % k, 3) == first + k
    # Committed entries are applied in log order on every member.
    logs = {tuple(sim.members[i].applied) for i in ids(3)}
    assert len(logs) == 1


def test_agreement_despite_a_failed_follower() -> None:
    sim = Simulation(ids(3), 22)
    leader = sim.wait_leader()
    sim.one(b"a", 3)
    follower = next(i for i in ids(3) if i != leader)
    sim.isolate(follower)
    # "As long as any majority of the servers are operational and can communicate..." (§5).
    sim.one(b"b", 2)
    sim.one(b"c", 2)
    sim.heal()
    sim.one(b"d", 3)
    assert [d for _, d in sim.members[follower].applied] == [b"a", b"b", b"c", b"d"]


def test_no_agreement_without_a_majority() -> None:
    sim = Simulation(ids(5), 23)
    leader = sim.wait_leader()
    sim.one(b"a", 5)
    others = [i for i in ids(5) if i != leader]
    sim.partition([leader, others[0]], *[[o] for o in others[1:]])
    got = sim.propose(b"b")
    assert got is not None
    _, index = got
    sim.tick(40)
    # "A log entry is committed once the leader ... has replicated it on a majority" (§5.3).
    assert sim.n_applied(index) == (0, None)
    sim.heal()
    sim.one(b"c", 5)


def test_concurrent_proposals_are_all_committed_in_one_order() -> None:
    sim = Simulation(ids(3), 24)
    leader = sim.wait_leader()
    indices = [sim.node(leader).propose(b"p%d" % k) for k in range(20)]
    assert indices == list(range(indices[0], indices[0] + 20))
    assert sim.run_until(lambda: sim.n_applied(indices[-1])[0] == 3, 20)
    for i in ids(3):
        assert [d for _, d in sim.members[i].applied][-20:] == [b"p%d" % k for k in range(20)]


def test_rejoin_of_a_partitioned_leader() -> None:
    sim = Simulation(ids(3), 25)
    sim.one(b"101", 3)
    leader1 = sim.wait_leader()
    sim.isolate(leader1)
    for data in (b"102", b"103", b"104"):  # the old leader accepts them, cannot commit them
        sim.node(leader1).propose(data)
    sim.tick(2)
    sim.one(b"103'", 2)
    leader2 = sim.wait_leader()
    sim.heal()
    sim.isolate(leader2)
    sim.one(b"104'", 2)
    sim.heal()
    sim.one(b"105", 3)
    applied = [d for _, d in sim.members[leader1].applied]
    assert applied == [b"101", b"103'", b"104'", b"105"]


def _backup(sim: Simulation) -> int:
    """MIT's TestBackup: a leader and one follower accept 50 entries they cannot commit; the
    other three elect a leader and commit 50; one of those is cut off with another 50
    uncommitted; then the first two and the cut-off one form a majority and must agree. Returns
    the number of rejected appends it took."""
    leader1 = sim.wait_leader()
    sim.one(b"start", 5)
    others = [i for i in ids(5) if i != leader1]
    sim.partition([leader1, others[0]], others[1:])
    for k in range(50):
        sim.node(leader1).propose(b"lost-%d" % k)
    sim.tick(2)
    assert sim.run_until(lambda: sim.leader() in others[1:], 100)
    for k in range(50):
        sim.one(b"kept-%d" % k, 3)
    leader2 = sim.leader()
    assert leader2 is not None
    other = next(o for o in others[1:] if o != leader2)
    sim.partition(
        [leader2], [other, leader1, others[0]], [i for i in others[1:] if i not in (leader2, other)]
    )
    for k in range(50):
        sim.node(leader2).propose(b"lost2-%d" % k)
    sim.tick(2)
    rejected_before = _rejections(sim)
    sim.one(b"together", 3)
    sim.heal()
    sim.one(b"all", 5)
    return _rejections(sim) - rejected_before


def _rejections(sim: Simulation) -> int:
    return sim.rejected


@pytest.mark.parametrize("seed", seeds(26, 27))
def test_fast_backup_over_many_conflicting_entries(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(5), seed)
        rejections = _backup(sim)
        # §5.3's optimisation: one rejection per conflicting term, not one per entry. Without it
        # bringing the 50 conflicting entries into line takes 50 rejections.
        assert rejections <= 10


def test_agreement_costs_few_messages() -> None:
    # MIT's TestCount: 10 agreements cost at most (10 + 1 + 3) * 3 = 42 RPCs; we count request
    # messages (an RPC's answer is not counted). Each agreement here is one append per follower
    # and one more append carrying the new commit index: 4 requests.
    sim = Simulation(ids(3), 28)
    sim.wait_leader()
    sim.one(b"warm-up", 3)
    before = requests(sim)
    for k in range(10):
        sim.one(b"c%d" % k, 3)
    assert requests(sim) - before <= 42


def test_batches_respect_max_size_per_msg() -> None:
    sim = Simulation(ids(3), 29, max_size_per_msg=100)
    leader = sim.wait_leader()
    follower = next(i for i in ids(3) if i != leader)
    sim.isolate(follower)
    for k in range(20):
        sim.node(leader).propose(b"%040d" % k)
    sim.tick(2)
    sim.heal()
    seen: list[int] = []
    original = sim._send

    def spy(msg):  # type: ignore[no-untyped-def]
        if msg.type == MsgType.APP and msg.to == follower and msg.entries:
            seen.append(sum(len(e.data) for e in msg.entries))
        original(msg)

    sim._send = spy  # type: ignore[method-assign]
    assert sim.run_until(
        lambda: sim.members[follower].last_applied >= sim.node(leader).raft.log.last_index(), 50
    )
    assert seen and max(seen) <= 100 and len(seen) >= 8


def test_persistence_across_crashes() -> None:
    sim = Simulation(ids(3), 30)
    sim.one(b"11", 3)
    # Everything crashes and restarts from storage: "updated on stable storage before
    # responding to RPCs" (Figure 2) is what makes this safe.
    for i in ids(3):
        sim.crash(i)
    for i in ids(3):
        sim.restart(i)
    sim.one(b"12", 3)
    leader = sim.wait_leader()
    sim.crash(leader)
    sim.restart(leader)
    sim.one(b"13", 3)
    leader = sim.wait_leader()
    follower = next(i for i in ids(3) if i != leader)
    sim.crash(follower)
    sim.one(b"14", 2)
    sim.restart(follower)
    sim.one(b"15", 3)
    for i in ids(3):
        assert [d for _, d in sim.members[i].applied] == [b"11", b"12", b"13", b"14", b"15"]


def _figure8(sim: Simulation, rng: random.Random, rounds: int) -> None:
    """MIT's TestFigure8: propose at whoever leads, crash leaders at random moments, restart
    members at random, always keeping a majority able to run."""
    n = len(sim.members)
    up = n
    for r in range(rounds):
        leader = sim.leader()
        if leader is not None:
            try:
                sim.node(leader).propose(b"f8-%d" % r)
            except Exception:
                pass
        sim.tick(rng.randint(1, 13) if rng.random() < 0.9 else rng.randint(1, 50))
        leader = sim.leader()
        if leader is not None and sim.members[leader].up and rng.random() < 0.5:
            sim.crash(leader)
            up -= 1
        if up < 3:
            s = rng.choice([i for i in sim.members if not sim.members[i].up])
            sim.restart(s)
            up += 1
    for i in sim.members:
        sim.restart(i)
    sim.one(b"final", n, max_ticks=1000)


@pytest.mark.parametrize("seed", seeds(31, 32))
def test_figure8(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(5), seed)
        sim.wait_leader()
        sim.one(b"first", 1)
        _figure8(sim, random.Random(seed), 60)


@pytest.mark.parametrize("seed", seeds(33, 34))
def test_figure8_unreliable(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(5), seed, drop=0.1, dup=0.05, max_delay=3)
        sim.wait_leader()
        sim.one(b"first", 1)
        _figure8(sim, random.Random(seed), 60)
        sim.drop = sim.dup = 0.0


def _churn(sim: Simulation, rng: random.Random, rounds: int) -> None:
    members = list(sim.members)
    for r in range(rounds):
        for i in members:
            if sim.members[i].up and rng.random() < 0.05:
                sim.propose(b"churn-%d-%s" % (r, i.encode()))
        roll = rng.random()
        if roll < 0.1:
            sim.crash(rng.choice(members))
        elif roll < 0.3:
            sim.restart(rng.choice(members))
        elif roll < 0.35:
            sim.partition(*_random_split(members, rng))
        elif roll < 0.45:
            sim.heal()
        sim.tick(rng.randint(1, 5))
    sim.heal()
    sim.drop = sim.dup = 0.0
    for i in members:
        sim.restart(i)
    sim.one(b"after-churn", len(members), max_ticks=1000)


def _random_split(members: list[str], rng: random.Random) -> list[list[str]]:
    shuffled = members[:]
    rng.shuffle(shuffled)
    cut = rng.randint(1, len(members) - 1)
    return [shuffled[:cut], shuffled[cut:]]


@pytest.mark.parametrize("unreliable", [False, True])
@pytest.mark.parametrize("seed", seeds(35, 36))
def test_churn(seed: int, unreliable: bool) -> None:
    with seeded(seed):
        lossy = {"drop": 0.1, "dup": 0.05, "max_delay": 3} if unreliable else {}
        sim = Simulation(ids(5), seed, **lossy)
        _churn(sim, random.Random(seed), 150)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds(*range(100, 120)))
def test_churn_long(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(5), seed, drop=0.1, dup=0.05, max_delay=4, snapshot_every=20)
        _churn(sim, random.Random(seed), 1500)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds(*range(200, 210)))
def test_figure8_unreliable_long(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(ids(5), seed, drop=0.1, dup=0.05, max_delay=3)
        _figure8(sim, random.Random(seed), 600)


def _apps_to(sim: Simulation, to: str) -> list[int]:
    """Spy: the number of entries in every append sent to ``to`` from now on."""
    seen: list[int] = []
    send = sim._send

    def spy(msg):  # type: ignore[no-untyped-def]
        if msg.type == MsgType.APP and msg.to == to:
            seen.append(len(msg.entries))
        send(msg)

    sim._send = spy  # type: ignore[method-assign]
    return seen


def test_replication_is_pipelined_up_to_max_inflight() -> None:
    sim = Simulation(ids(3), 37, max_inflight_msgs=3)
    leader = sim.wait_leader()
    sim.one(b"warm", 3)
    follower = next(i for i in ids(3) if i != leader)
    assert sim.node(leader).status().progress[follower].state == "replicate"
    seen = _apps_to(sim, follower)
    sim.blocked = {(follower, leader)}  # its acknowledgements are lost
    for k in range(6):
        sim.node(leader).propose(b"p%d" % k)
        sim.settle()  # one append per batch, sent without waiting for the previous one's ack
    assert [n for n in seen if n] == [1, 1, 1]  # then the window is full
    sim.blocked = set()
    index = sim.one(b"end", 3)
    assert sim.members[follower].last_applied >= index


def test_a_probing_leader_sends_one_append_at_a_time() -> None:
    sim = Simulation(ids(3), 38, latency=1)
    leader = sim.wait_leader()
    sim.one(b"warm", 3)
    follower = next(i for i in ids(3) if i != leader)
    sim.node(leader).report_unreachable(follower)
    seen = _apps_to(sim, follower)
    for k in range(2):
        sim.node(leader).propose(b"p%d" % k)
        sim.settle()
    assert seen == []  # unreachable: no append until it answers a heartbeat sent since
    assert sim.run_until(lambda: len(seen) == 1, 5)  # the probe
    sim.blocked = {(follower, leader)}  # its answer is lost
    for k in range(4):
        sim.node(leader).propose(b"q%d" % k)
        sim.settle()
    assert len(seen) == 1  # paused until an answer or a later heartbeat's answer
    sim.tick(3)  # heartbeats, whose answers are lost too, so still one
    assert len(seen) == 1
    sim.blocked = set()
    index = sim.one(b"end", 3)
    assert sim.members[follower].last_applied >= index
