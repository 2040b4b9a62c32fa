"""Snapshots, membership changes, leadership transfer and reads in the simulator (MIT 6.5840
lab 3D and the thesis' chapters 3, 4 and 6)."""

from __future__ import annotations

import random

import pytest
from raftkit import ids

from ember.consensus._errors import ProposalDropped, RaftUsageError
from ember.consensus._messages import ConfChange, ConfChangeOp, MsgType, Role
from ember.consensus._sim import Simulation
from ember.testing import seeded, seeds


def _applied(sim: Simulation, node: str) -> list[bytes]:
    return [d for _, d in sim.members[node].applied]


def test_slow_follower_catches_up_by_chunked_snapshot() -> None:
    # §7: "the leader must occasionally send snapshots to followers that lag behind", here in
    # chunks of 64 bytes reassembled by the follower.
    sim = Simulation(ids(3), 41, snapshot_every=10, snapshot_chunk_size=64)
    leader = sim.wait_leader()
    slow = next(i for i in ids(3) if i != leader)
    sim.isolate(slow)
    for k in range(40):
        sim.one(b"s%d" % k, 2)
    assert sim.members[leader].storage.first_index() > sim.members[slow].last_applied + 1
    sim.heal()
    sim.one(b"after", 3)
    assert sim.sent[MsgType.SNAP] >= 3  # the snapshot is bigger than one chunk
    assert _applied(sim, slow) == _applied(sim, leader)
    assert sim.members[slow].storage.snapshot().meta.index > 0


def test_a_follower_within_the_kept_entries_catches_up_without_a_snapshot() -> None:
    # etcd's SnapshotCatchUpEntries: the leader compacts keeping ``compaction_keep`` entries
    # behind its snapshot, so a follower that fell a little behind it is sent those entries;
    # one further behind than that still gets the snapshot (§7).
    sim = Simulation(ids(3), 44, snapshot_every=10, compaction_keep=30, snapshot_chunk_size=64)
    leader = sim.wait_leader()
    slow = next(i for i in ids(3) if i != leader)
    for k in range(5):
        sim.one(b"a%d" % k, 3)
    sim.isolate(slow)
    behind = sim.members[slow].storage.last_index()
    for k in range(20):
        sim.one(b"b%d" % k, 2)
    held = sim.members[leader].storage
    assert held.snapshot_meta().index > behind  # without kept entries: a snapshot to send
    assert held.first_index() <= behind + 1
    sim.heal()
    sim.one(b"after", 3)
    assert sim.leader() == leader
    assert sim.sent.get(MsgType.SNAP, 0) == 0
    assert _applied(sim, slow) == _applied(sim, leader)

    sim.isolate(slow)
    behind = sim.members[slow].storage.last_index()
    for k in range(60):
        sim.one(b"c%d" % k, 2)
    assert held.first_index() > behind + 1
    sim.heal()
    sim.one(b"end", 3)
    assert sim.sent.get(MsgType.SNAP, 0) > 0
    assert sim.members[slow].storage.snapshot_meta().index > behind
    assert _applied(sim, slow) == _applied(sim, leader)


def test_snapshot_streaming_survives_loss_and_restarts() -> None:
    sim = Simulation(ids(3), 42, snapshot_every=5, snapshot_chunk_size=16)
    leader = sim.wait_leader()
    slow = next(i for i in ids(3) if i != leader)
    sim.crash(slow)
    for k in range(30):
        sim.one(b"t%d" % k, 2)
    sim.restart(slow)
    sim.drop = 0.3
    sim.tick(30)
    sim.crash(slow)  # mid-stream, perhaps
    sim.restart(slow)
    sim.drop = 0.0
    sim.one(b"after", 3, max_ticks=600)
    assert _applied(sim, slow) == _applied(sim, leader)


def test_restart_from_snapshot_and_log() -> None:
    sim = Simulation(ids(3), 43, snapshot_every=7)
    sim.wait_leader()
    for k in range(20):
        sim.one(b"r%d" % k, 3)
    for i in ids(3):
        sim.crash(i)
        sim.restart(i)
    sim.one(b"end", 3)
    for i in ids(3):
        assert _applied(sim, i) == [b"r%d" % k for k in range(20)] + [b"end"]


def _change(sim: Simulation, change: ConfChange, max_ticks: int = 300) -> None:
    """Propose ``change`` at whoever leads until some leader applies it."""
    deadline = sim.now + max_ticks
    while sim.now < deadline:
        leader = sim.leader()
        if leader is not None:
            try:
                sim.node(leader).propose_conf_change(change)
            except ProposalDropped:
                pass
        sim.tick(5)
        leader = sim.leader()
        if leader is not None and _reflects(sim.node(leader).status().conf, change):
            return
    raise AssertionError(f"{change} was not applied (seed {sim.seed})")


def _reflects(conf: object, change: ConfChange) -> bool:
    voters, learners = conf.voters, conf.learners  # type: ignore[attr-defined]
    if change.op == "add_learner":
        return change.node in learners
    if change.op in ("add_voter", "promote"):
        return change.node in voters
    if change.op == "demote":
        return change.node in learners and change.node not in voters
    return change.node not in voters and change.node not in learners


def test_learner_catches_up_then_is_promoted() -> None:
    sim = Simulation(ids(3), 44)
    leader = sim.wait_leader()
    for k in range(5):
        sim.one(b"m%d" % k, 3)
    sim.add_member("4")
    _change(sim, ConfChange("add_learner", "4"))
    st = sim.node(sim.wait_leader()).status()
    assert st.progress["4"].is_learner
    assert sim.run_until(lambda: sim.node(sim.wait_leader()).status().progress["4"].lag == 0, 50)
    assert sim.node("4").raft.role == Role.FOLLOWER and "4" not in st.conf.voters
    _change(sim, ConfChange("promote", "4"))
    sim.isolate(leader)  # the new 4-voter group (quorum 3) keeps working without the old leader
    sim.one(b"four", 3)
    assert b"four" in _applied(sim, "4")


def test_one_conf_change_at_a_time() -> None:
    sim = Simulation(ids(3), 45)
    leader = sim.wait_leader()
    sim.one(b"x", 3)
    node = sim.node(leader)
    sim.add_member("4")
    sim.add_member("5")
    node.propose_conf_change(ConfChange("add_learner", "4"))
    with pytest.raises(ProposalDropped) as info:
        node.propose_conf_change(ConfChange("add_learner", "5"))
    assert info.value.reason == "conf_change_pending"
    sim.tick(3)
    node.propose_conf_change(ConfChange("add_learner", "5"))
    for bad, why in [
        (ConfChange("add_learner", "1"), "already a member"),
        (ConfChange("promote", "2"), "not a learner"),
        (ConfChange("remove", "9"), "not a member"),
        (ConfChange("demote", "9"), "not a voter"),
        (ConfChange("demote", "4"), "not a voter"),  # a learner already
    ]:
        sim.tick(3)
        with pytest.raises(ProposalDropped, match=why):
            node.propose_conf_change(bad)


@pytest.mark.parametrize("seed", seeds(46, 47, 48))
def test_membership_changes_under_failures(seed: int) -> None:
    # Thesis §4.1: single-server changes, one at a time, each committed before the next, keep
    # every two majorities overlapping, however the failures fall.
    with seeded(seed):
        rng = random.Random(seed)
        sim = Simulation(ids(3), seed, drop=0.05, max_delay=2, snapshot_every=25)
        sim.wait_leader()
        plan = [
            ("4", ConfChange("add_learner", "4")),
            ("4", ConfChange("promote", "4")),
            ("5", ConfChange("add_learner", "5")),
            ("5", ConfChange("promote", "5")),
            ("1", ConfChange("remove", "1")),
            ("2", ConfChange("remove", "2")),
        ]
        for k, (node, change) in enumerate(plan):
            if node not in sim.members:
                sim.add_member(node)
            for j in range(5):
                sim.propose(b"w%d-%d" % (k, j))
            victim = rng.choice(list(sim.members))
            sim.crash(victim)
            sim.tick(rng.randint(1, 10))
            sim.restart(victim)
            _change(sim, change, max_ticks=600)
        sim.drop = 0.0
        final = ["3", "4", "5"]
        index = sim.one(b"done", 3, max_ticks=600)
        for i in final:
            assert sim.node(i).status().conf.voters == tuple(final)
            assert sim.members[i].last_applied >= index
        # Removed members stop campaigning: they are not voters of any configuration they know.
        sim.tick(100)
        assert sim.leader() in final


def test_the_last_voter_cannot_be_demoted() -> None:
    sim = Simulation(ids(2), 54, voters=["1"], learners=["2"])
    assert sim.wait_leader() == "1"
    sim.one(b"x", 2)
    with pytest.raises(ProposalDropped, match="cannot demote the last voter") as info:
        sim.node("1").propose_conf_change(ConfChange("demote", "1"))
    assert info.value.reason == "invalid_conf_change"


def test_demoted_voter_is_a_learner_that_keeps_receiving_entries() -> None:
    # Thesis §4.1: the demotion takes one server out of the voter set, so the quorum shrinks
    # as with a removal; the server stays a member, replicated to like any learner.
    sim = Simulation(ids(3), 55)
    leader = sim.wait_leader()
    sim.one(b"before", 3)
    demoted = next(i for i in ids(3) if i != leader)
    _change(sim, ConfChange("demote", demoted))
    st = sim.node(sim.wait_leader()).status()
    assert demoted not in st.conf.voters and st.conf.learners == (demoted,)
    assert st.progress[demoted].is_learner
    assert sim.node(demoted).status().conf == st.conf  # it applied its own demotion
    sim.one(b"all", 3)  # still replicated to the learner
    sim.isolate(demoted)
    term = sim.node(demoted).raft.term
    sim.one(b"without", 2)  # a quorum of the two voters left
    sim.tick(100)  # cut off for many election timeouts, a learner never campaigns
    assert sim.node(demoted).raft.term == term
    assert sim.node(demoted).raft.role == Role.FOLLOWER
    sim.heal()
    sim.one(b"back", 3)
    assert _applied(sim, demoted) == _applied(sim, sim.wait_leader())
    with pytest.raises(RaftUsageError, match="not a voter"):
        sim.node(sim.wait_leader()).transfer_leader(demoted)


@pytest.mark.parametrize("op", ["remove", "demote"])
def test_a_removed_or_demoted_leader_steps_down(op: ConfChangeOp) -> None:
    # Thesis §4.2.2: it steps down once the change is committed.
    sim = Simulation(ids(3), 56)
    leader = sim.wait_leader()
    sim.one(b"x", 3)
    _change(sim, ConfChange(op, leader))
    assert sim.node(leader).raft.role == Role.FOLLOWER
    new = sim.wait_leader()
    assert new != leader
    if op == "demote":
        assert sim.node(new).status().conf.learners == (leader,)
        sim.one(b"y", 3)  # the old leader, a learner now, receives it too
        assert b"y" in _applied(sim, leader)
    else:
        sim.one(b"y", 2)
    sim.tick(100)
    assert sim.leader() == new


def test_demoting_the_transfer_target_abandons_the_transfer() -> None:
    sim = Simulation(ids(3), 57)
    leader = sim.wait_leader()
    target = next(i for i in ids(3) if i != leader)
    sim.isolate(target)  # so the transfer cannot complete at once
    sim.one(b"x", 2)
    node = sim.node(leader)
    node.propose_conf_change(ConfChange("demote", target))
    node.transfer_leader(target)
    assert node.status().lead_transferee == target
    # Applied well within the election timeout that would abandon the transfer anyway.
    assert sim.run_until(lambda: target in node.status().conf.learners, 5)
    assert node.status().lead_transferee is None
    sim.heal()
    sim.one(b"y", 3)
    sim.tick(30)
    assert sim.leader() == leader


@pytest.mark.parametrize("seed", seeds(50, 51))
def test_leadership_transfer(seed: int) -> None:
    # Thesis §3.10: the leader brings the target up to date, then sends TimeoutNow; the target
    # campaigns at once (without pre-vote, and voters grant despite their lease).
    with seeded(seed):
        sim = Simulation(ids(3), seed)
        leader = sim.wait_leader()
        target = next(i for i in ids(3) if i != leader)
        sim.isolate(target)
        for k in range(10):
            sim.one(b"t%d" % k, 2)
        sim.heal()
        sim.node(leader).transfer_leader(target)
        with pytest.raises(ProposalDropped) as info:
            sim.node(leader).propose(b"during")
        assert info.value.reason == "transferring"
        assert sim.run_until(lambda: sim.leader() == target, 10)
        assert sim.node(target).raft.term == sim.node(leader).raft.term
        sim.one(b"after", 3)


def test_transfer_requested_at_a_follower_is_forwarded() -> None:
    sim = Simulation(ids(3), 52)
    leader = sim.wait_leader()
    a, b = (i for i in ids(3) if i != leader)
    sim.node(a).transfer_leader(b)
    assert sim.run_until(lambda: sim.leader() == b, 10)


def test_transfer_to_an_unreachable_member_is_abandoned() -> None:
    sim = Simulation(ids(3), 53)
    leader = sim.wait_leader()
    target = next(i for i in ids(3) if i != leader)
    sim.isolate(target)
    sim.one(b"x", 2)
    sim.node(leader).transfer_leader(target)
    sim.tick(12)  # "...the leader aborts the transfer after an election timeout" (§3.10)
    assert sim.leader() == leader
    assert sim.node(leader).status().lead_transferee is None
    sim.one(b"y", 2)


@pytest.mark.parametrize("mode", ["safe", "lease"])
def test_read_index_is_linearizable(mode: str) -> None:
    # Thesis §6.4: a read index is the leader's commit index once it has confirmed (by a
    # heartbeat round, or by its lease) that it is still the leader; a read served once the state
    # machine has applied it sees every write that completed before the read began.
    sim = Simulation(ids(3), 54, read_only=mode)
    leader = sim.wait_leader()
    written = sim.one(b"w1", 3)
    follower = next(i for i in ids(3) if i != leader)
    sim.node(follower).read_index(b"r1")
    sim.node(leader).read_index(b"r2")
    sim.settle()
    for node, ctx in ((follower, b"r1"), (leader, b"r2")):
        states = sim.members[node].read_states
        assert [s.context for s in states] == [ctx]
        assert states[0].index >= written


def test_read_waits_for_the_new_leaders_first_commit() -> None:
    # Thesis §6.4 step 1: a new leader's commit index is only known current once an entry of its
    # term is committed.
    sim = Simulation(ids(3), 56)
    leader = sim.wait_leader()
    sim.one(b"x", 3)
    sim.isolate(leader)
    assert sim.run_until(lambda: sim.leader() not in (None, leader), 60)
    new = sim.leader()
    assert new is not None
    sim.heal()
    sim.node(new).read_index(b"r")
    sim.settle()
    states = sim.members[new].read_states
    assert len(states) == 1
    assert sim.node(new).raft.log.term(states[0].index) == sim.node(new).raft.term


def test_uncommitted_size_limit() -> None:
    sim = Simulation(ids(3), 57, max_uncommitted_bytes=100)
    leader = sim.wait_leader()
    others = [i for i in ids(3) if i != leader]
    sim.partition([leader], others[:1], others[1:])
    node = sim.node(leader)
    node.propose(b"x" * 300)  # accepted: nothing was uncommitted
    with pytest.raises(ProposalDropped) as info:
        node.propose(b"y")
    assert info.value.reason == "uncommitted_limit"
    sim.heal()
    assert sim.run_until(
        lambda: sim.node(leader).status().applied >= node.raft.log.last_index(), 20
    )
    node.propose(b"y")  # committed and applied: the budget is back


def test_followers_do_not_accept_proposals() -> None:
    sim = Simulation(ids(3), 58)
    leader = sim.wait_leader()
    follower = next(i for i in ids(3) if i != leader)
    with pytest.raises(ProposalDropped) as info:
        sim.node(follower).propose(b"x")
    assert info.value.reason == "not_leader" and info.value.leader == leader


def test_a_lease_ends_an_election_timeout_after_the_last_acknowledged_heartbeat() -> None:
    # Thesis §6.4.1: "the leader would use the time at which it sent the heartbeats as the start
    # of the lease"; followers ignore candidates for an election timeout after hearing from it.
    sim = Simulation(ids(3), 59, read_only="lease")
    leader = sim.wait_leader()
    sim.one(b"x", 3)
    sim.tick(3)
    node = sim.node(leader)
    node.read_index(b"fresh")
    sim.settle()
    assert [s.context for s in sim.members[leader].read_states] == [b"fresh"]
    assert sim.sent.get(MsgType.HEARTBEAT, 0) > 0
    sim.isolate(leader)
    sim.tick(9)
    assert node.raft.role == Role.LEADER  # check-quorum has not caught up yet...
    heartbeats = sim.sent[MsgType.HEARTBEAT]
    node.read_index(b"stale")
    sim.settle()
    # ...but the lease is over: the read falls back to a heartbeat round, which cannot succeed.
    assert [s.context for s in sim.members[leader].read_states] == [b"fresh"]
    assert sim.sent[MsgType.HEARTBEAT] > heartbeats
    sim.tick(20)
    assert [s.context for s in sim.members[leader].read_states] == [b"fresh"]


@pytest.mark.parametrize("mode", ["safe", "lease"])
@pytest.mark.parametrize("seed", seeds(70, 71, 72))
def test_reads_see_every_write_acknowledged_before_they_began(mode: str, seed: int) -> None:
    # Linearizable reads (thesis §6.4): a read that starts after a write was acknowledged (applied
    # somewhere, so committed) must return that write or a later one, through leader changes,
    # partitions, crashes and a lossy network.
    with seeded(seed):
        rng = random.Random(seed)
        sim = Simulation(ids(5), seed, read_only=mode, drop=0.05, max_delay=2)
        sim.wait_leader()
        pending: dict[bytes, int] = {}  # read ctx -> highest acknowledged index when it began
        served = 0
        for step in range(400):
            acked = max(m.last_applied for m in sim.members.values())
            roll = rng.random()
            if roll < 0.25:
                sim.propose(b"w%d" % step)
            elif roll < 0.6:
                # Half of the reads go to whoever believes it leads: deposed leaders included.
                leaders = sim.leaders_now()
                member = rng.choice(leaders if leaders and rng.random() < 0.5 else ids(5))
                node = sim.members[member].node
                if node is not None:
                    ctx = b"r%d" % step
                    try:
                        node.read_index(ctx)
                        pending[ctx] = acked
                    except ProposalDropped:
                        pass
            elif roll < 0.65:
                sim.partition(*_halves(rng))
            elif roll < 0.68:
                sim.heal()
            elif roll < 0.7:
                sim.crash(rng.choice(ids(5)))
            elif roll < 0.8:
                sim.restart(rng.choice(ids(5)))
            sim.tick()
            for m in sim.members.values():
                for rs in m.read_states:
                    assert rs.index >= pending[rs.context], (rs, pending[rs.context])
                    served += 1
                m.read_states.clear()
        assert served > 20


def _halves(rng: random.Random) -> list[list[str]]:
    members = ids(5)
    rng.shuffle(members)
    return [members[:3], members[3:]]


@pytest.mark.parametrize("mode", ["safe", "lease"])
def test_a_deposed_leader_that_still_believes_it_leads_serves_no_stale_read(mode: str) -> None:
    # The case lease reads must get right (thesis §6.4.1): the old leader, cut off with one
    # follower, has not yet noticed (check-quorum takes up to two election timeouts) while the
    # majority has elected a new leader and committed a write.
    sim = Simulation(ids(5), 73, read_only=mode)
    old = sim.wait_leader()
    sim.one(b"before", 5)
    buddy = next(i for i in ids(5) if i != old)
    sim.partition([old, buddy], [i for i in ids(5) if i not in (old, buddy)])
    assert sim.run_until(lambda: sim.leader() not in (None, old), 30)
    written = sim.one(b"after", 3)
    assert sim.node(old).raft.role == Role.LEADER  # it does not know yet
    sim.node(old).read_index(b"stale?")
    sim.tick(30)
    assert all(s.index >= written for s in sim.members[old].read_states)


def test_snapshot_chunks_are_not_multiplied_by_slow_answers() -> None:
    # One chunk in flight; a heartbeat resends the awaited chunk, and a repeated answer must not
    # start a second stream.
    sim = Simulation(ids(3), 74, snapshot_every=5, snapshot_chunk_size=16, max_delay=4)
    leader = sim.wait_leader()
    slow = next(i for i in ids(3) if i != leader)
    sim.isolate(slow)
    for k in range(40):
        sim.one(b"chunky-%02d" % k, 2)
    size = len(sim.members[leader].storage.snapshot().data)
    before = sim.sent.get(MsgType.SNAP, 0)
    sim.heal()
    sim.one(b"after", 3, max_ticks=800)
    chunks = -(-size // 16)
    assert sim.sent[MsgType.SNAP] - before <= 3 * chunks + 10
