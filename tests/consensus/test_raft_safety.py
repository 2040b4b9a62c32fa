"""Random schedules against Raft's safety properties (§5.2 Figure 3): Election Safety, Log
Matching, Leader Completeness and State Machine Safety are asserted after every step of
hypothesis-chosen schedules of ticks, proposals, crashes, restarts, partitions, message loss,
duplication and delay, leadership transfers, membership changes, compaction, and slow disks
(``hold``: a member's save waits while it keeps stepping, so a crash then loses entries a leader
already sent, thesis §10.2.1). Hypothesis
prints the failing schedule; the schedule (with its ``seed``) replays it exactly."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raftkit import ids

from ember.consensus._errors import ProposalDropped
from ember.consensus._memory import MemoryStorage
from ember.consensus._messages import ConfChange, Role
from ember.consensus._sim import SafetyViolation, Simulation
from ember.consensus._types import Entry

# One step of a schedule: an action, its argument, then some ticks.
steps = st.tuples(
    st.sampled_from(
        [
            "tick",
            "propose",
            "propose",
            "crash",
            "restart",
            "partition",
            "heal",
            "lossy",
            "transfer",
            "conf",
            "hold",
            "release",
        ]
    ),
    st.integers(0, 2**5 - 1),
    st.integers(0, 12),
)


def _conf_change(sim: Simulation, arg: int) -> None:
    """Propose a valid single-server change at the leader (two spare members can join): add a
    learner, promote one, demote a voter (the leader too) or remove a member."""
    leader = sim.leader()
    if leader is None:
        return
    conf = sim.node(leader).status().conf
    members = set(conf.voters) | set(conf.learners)
    outsiders = sorted(set(sim.members) - members)
    kind, pick = arg % 4, arg // 4
    if kind == 0 and outsiders:
        change = ConfChange("add_learner", outsiders[pick % len(outsiders)])
    elif kind == 1 and conf.learners:
        change = ConfChange("promote", conf.learners[pick % len(conf.learners)])
    elif kind == 2 and len(conf.voters) > 2:
        change = ConfChange("demote", conf.voters[pick % len(conf.voters)])
    elif len(conf.voters) > 2:
        change = ConfChange("remove", sorted(members)[pick % len(members)])
    else:
        return
    try:
        sim.node(leader).propose_conf_change(change)
    except ProposalDropped:
        pass  # one change at a time


def _run(
    seed: int,
    n: int,
    schedule: list[tuple[str, int, int]],
    snapshot_every: int | None,
    keep: int,
) -> None:
    names = ids(n + 2)  # the last two start outside the group and may be added
    sim = Simulation(
        names,
        seed,
        voters=ids(n),
        snapshot_every=snapshot_every,
        compaction_keep=keep,
        snapshot_chunk_size=32,
    )
    for k, (op, arg, ticks) in enumerate(schedule):
        name = names[arg % len(names)]
        if op == "propose":
            for j in range(arg % 4 + 1):
                sim.propose(b"v%d-%d" % (k, j))
        elif op == "crash":
            sim.crash(min(sim.held) if sim.held and arg % 2 else name)  # held: lose its save
        elif op == "restart":
            sim.restart(name)
        elif op == "partition":
            side = [x for b, x in enumerate(names) if arg >> b & 1] or names[:1]
            sim.partition(side, [x for x in names if x not in side])
        elif op == "heal":
            sim.heal()
        elif op == "lossy":
            level = arg % 4
            sim.drop, sim.dup, sim.max_delay = (0.0, 0.1, 0.2, 0.3)[level], 0.05 * level, level
        elif op == "transfer":
            leader = sim.leader()
            if leader is not None and leader != name and name in sim.node(leader).raft.voters:
                sim.node(leader).transfer_leader(name)
        elif op == "conf":
            _conf_change(sim, arg)
        elif op == "hold":
            sim.hold_saves(sim.leader() or name if arg % 2 else name)
        elif op == "release":
            sim.release_saves()
        sim.check()
        sim.tick(ticks)
    # Liveness once the faults stop: everyone up, a quiet network, a leader, a commit.
    sim.heal()
    sim.release_saves()
    sim.drop = sim.dup = 0.0
    sim.max_delay = 0
    for name in names:
        sim.restart(name)
    sim.tick(5)  # let delayed messages drain
    leader = sim.wait_leader(max_ticks=600)
    sim.one(b"final", len(sim.node(leader).raft.voters), max_ticks=600)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.sampled_from([3, 5]),
    schedule=st.lists(steps, min_size=10, max_size=40),
    snapshot_every=st.sampled_from([None, 4, 15]),
    keep=st.sampled_from([0, 0, 3, 20]),
)
def test_safety_under_random_schedules(
    seed: int,
    n: int,
    schedule: list[tuple[str, int, int]],
    snapshot_every: int | None,
    keep: int,
) -> None:
    _run(seed, n, schedule, snapshot_every, keep)


@pytest.mark.slow
@settings(deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n=st.sampled_from([3, 5]),
    schedule=st.lists(steps, min_size=50, max_size=300),
    snapshot_every=st.sampled_from([None, 4, 15]),
    keep=st.sampled_from([0, 0, 3, 20]),
)
def test_safety_under_long_random_schedules(
    seed: int,
    n: int,
    schedule: list[tuple[str, int, int]],
    snapshot_every: int | None,
    keep: int,
) -> None:
    _run(seed, n, schedule, snapshot_every, keep)


# The checker itself must be able to fail: each property, broken on purpose, is caught.


def test_checker_catches_two_leaders_in_one_term() -> None:
    sim = Simulation(ids(3), 1)
    leader = sim.wait_leader()
    other = next(i for i in ids(3) if i != leader)
    r = sim.node(other).raft
    r.term = sim.node(leader).raft.term
    r.role = Role.LEADER
    with pytest.raises(SafetyViolation, match="Election Safety"):
        sim.check()


def test_checker_catches_diverging_logs() -> None:
    sim = Simulation(ids(3), 2)
    leader = sim.wait_leader()
    sim.one(b"a", 3)
    sim.one(b"b", 3)
    other = next(i for i in ids(3) if i != leader)
    log = sim.node(other).raft.log
    storage = sim.members[other].storage
    assert isinstance(storage, MemoryStorage)
    last = log.last_index()
    # Rewrite history below the last entry: same last term, different earlier term.
    entries = storage._ents
    k = last - storage.first_index() - 1
    entries[k] = Entry(entries[k].index, entries[k].term + 7, entries[k].type, entries[k].data)
    with pytest.raises(SafetyViolation, match=r"Log Matching|Leader Completeness"):
        sim.check()


def test_checker_catches_a_leader_missing_a_committed_entry() -> None:
    sim = Simulation(ids(3), 3)
    leader = sim.wait_leader()
    sim.one(b"a", 3)
    sim.isolate(leader)
    assert sim.run_until(lambda: sim.leader() not in (None, leader), 60)
    new = sim.leader()
    assert new is not None
    sim.one(b"b", 2)
    # Forge: the old leader, now at a higher term and leading, never got "b".
    r = sim.node(leader).raft
    r.term = sim.node(new).raft.term + 5
    r.role = Role.LEADER
    with pytest.raises(SafetyViolation, match="Leader Completeness"):
        sim.check()


def test_checker_catches_different_entries_applied_at_one_index() -> None:
    sim = Simulation(ids(3), 4)
    sim.wait_leader()
    index = sim.one(b"a", 3)
    term, _ = sim.applied_at[index]
    sim.applied_at[index] = (term, b"forged")
    sim.crash("1")
    sim.restart("1")  # re-applies from its log and meets the forged record
    with pytest.raises(SafetyViolation, match="State Machine Safety"):
        sim.tick(3)
