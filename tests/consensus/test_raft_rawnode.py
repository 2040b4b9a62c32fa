"""The RawNode API: the Ready/advance contract, bootstrap and restart, status, reporting hooks,
and the in-memory storage it is tested with."""

from __future__ import annotations

import random

import pytest
from raftkit import ids

from ember.consensus._config import RaftConfig
from ember.consensus._errors import ProposalDropped, RaftUsageError
from ember.consensus._memory import MemoryStorage
from ember.consensus._messages import Message, MsgType, Role
from ember.consensus._rawnode import RawNode
from ember.consensus._sim import Simulation
from ember.consensus._types import (
    Compacted,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
    StorageError,
    Unavailable,
)


def _single(storage: MemoryStorage | None = None, **cfg: object) -> tuple[RawNode, MemoryStorage]:
    storage = storage or MemoryStorage()
    if storage.last_index() == 0:
        RawNode.bootstrap(storage, ConfState(("a",)))
    return RawNode(RaftConfig(id="a", **cfg), storage, random.Random(0)), storage  # type: ignore[arg-type]


def _drain(node: RawNode, storage: MemoryStorage) -> list[Entry]:
    applied: list[Entry] = []
    while node.has_ready():
        rd = node.ready()
        storage.save(rd.hard_state, rd.entries, rd.snapshot)
        applied += rd.committed_entries
        node.advance(rd)
    return applied


def test_a_single_member_elects_itself_and_commits_alone() -> None:
    node, storage = _single()
    node.campaign()
    _drain(node, storage)
    assert node.status().role == Role.LEADER
    index = node.propose(b"x")
    applied = _drain(node, storage)
    assert applied[-1].index == index and applied[-1].data == b"x"
    assert node.status().commit == index == node.status().applied


def test_ready_must_be_advanced_before_the_next() -> None:
    node, storage = _single()
    node.campaign()
    rd = node.ready()
    assert rd.must_sync and rd.hard_state is not None and rd.soft_state is not None
    assert not node.has_ready()
    with pytest.raises(RaftUsageError):
        node.ready()
    with pytest.raises(RaftUsageError):
        node.advance(rd.__class__())  # not the outstanding Ready
    storage.save(rd.hard_state, rd.entries, rd.snapshot)
    node.advance(rd)


def test_work_done_between_ready_and_advance_is_not_lost() -> None:
    node, storage = _single()
    node.campaign()
    _drain(node, storage)
    node.propose(b"1")
    rd = node.ready()
    assert not rd.committed_entries  # a leader counts itself only once saved (advance)
    node.propose(b"2")  # while the shell persists the first batch
    storage.save(rd.hard_state, rd.entries, rd.snapshot)
    node.advance(rd)
    assert [e.data for e in _drain(node, storage)] == [b"1", b"2"]
    assert [e.data for e in storage.entries(1, storage.last_index() + 1)][-2:] == [b"1", b"2"]


def test_restart_keeps_term_vote_log_and_membership() -> None:
    node, storage = _single()
    node.campaign()
    _drain(node, storage)
    node.propose(b"x")
    _drain(node, storage)
    before = node.status()
    again, _ = _single(storage)
    st = again.status()
    assert (st.term, st.vote, st.commit, st.conf) == (
        before.term,
        before.vote,
        before.commit,
        before.conf,
    )
    assert st.role == Role.FOLLOWER and st.applied == 0
    # The committed entries come again to be applied; conf changes among them are recognised.
    replay = _drain(again, storage)
    assert [e.index for e in replay] == list(range(1, before.commit + 1))


def test_applied_in_config_skips_replay() -> None:
    node, storage = _single()
    node.campaign()
    _drain(node, storage)
    node.propose(b"x")
    _drain(node, storage)
    commit = node.status().commit
    again, _ = _single(storage, applied=commit)
    assert _drain(again, storage) == []
    with pytest.raises(RaftUsageError):
        _single(storage, applied=commit + 1)


def test_bootstrap_needs_empty_storage_and_a_voter() -> None:
    storage = MemoryStorage()
    RawNode.bootstrap(storage, ConfState(("a", "b"), ("c",)))
    assert storage.initial_state()[0] == HardState(term=1, commit=3)
    with pytest.raises(RaftUsageError):
        RawNode.bootstrap(storage, ConfState(("a",)))
    with pytest.raises(RaftUsageError):
        RawNode.bootstrap(MemoryStorage(), ConfState((), ("c",)))
    with pytest.raises(RaftUsageError):
        RawNode.bootstrap(MemoryStorage(), ConfState(("a",), ("a",)))
    node = RawNode(RaftConfig(id="c"), storage, random.Random(0))
    assert node.status().conf == ConfState(("a", "b"), ("c",))
    node.campaign()  # a learner never campaigns
    assert node.status().role == Role.FOLLOWER and not node.ready().messages


def test_status_and_progress_of_a_leader() -> None:
    sim = Simulation(ids(3), 61)
    leader = sim.wait_leader()
    sim.one(b"x", 3)
    st = sim.node(leader).status()
    assert st.role == Role.LEADER and st.leader == leader
    assert set(st.progress) == set(ids(3))
    assert all(p.match == st.last_index and p.lag == 0 for p in st.progress.values())
    assert all(p.state == "replicate" for p in st.progress.values())
    follower = next(i for i in ids(3) if i != leader)
    assert sim.node(follower).status().progress == {}


def test_misaddressed_and_stale_messages_are_ignored_and_counted() -> None:
    sim = Simulation(ids(3), 62)
    leader = sim.wait_leader()
    node = sim.node(leader)
    before = node.status().ignored_messages
    term = node.status().term
    node.step(Message(MsgType.APP_RESP, to="9", frm="2", term=term, index=1))
    node.step(Message(MsgType.VOTE_RESP, to=leader, frm="2", term=term - 1))
    node.step(Message(MsgType.APP_RESP, to=leader, frm="stranger", term=term, index=1))
    assert node.status().ignored_messages == before + 3
    assert node.status().role == Role.LEADER


def test_report_unreachable_drops_back_to_probing() -> None:
    sim = Simulation(ids(3), 63)
    leader = sim.wait_leader()
    sim.one(b"x", 3)
    peer = next(i for i in ids(3) if i != leader)
    sim.node(leader).report_unreachable(peer)
    assert sim.node(leader).status().progress[peer].state == "probe"
    sim.one(b"y", 3)
    assert sim.node(leader).status().progress[peer].state == "replicate"


def test_report_snapshot_failure_restarts_the_snapshot() -> None:
    sim = Simulation(ids(3), 64, snapshot_every=3, snapshot_chunk_size=8)
    leader = sim.wait_leader()
    slow = next(i for i in ids(3) if i != leader)
    sim.isolate(slow)
    for k in range(10):
        sim.one(b"v%d" % k, 2)
    sim.heal()

    def streaming() -> bool:
        return sim.node(leader).status().progress[slow].state == "snapshot"

    for _ in range(100):  # message by message until the leader starts streaming
        if streaming():
            break
        if not sim.step_once():
            sim.now += 1
            sim.node(leader).tick()
    assert streaming()
    sim.isolate(slow)
    sim.node(leader).report_snapshot(slow, ok=False)
    assert sim.node(leader).status().progress[slow].state == "probe"
    sim.heal()
    sim.one(b"end", 3)


def test_proposals_need_a_leader_that_is_a_member() -> None:
    node, _storage = _single()
    with pytest.raises(ProposalDropped) as info:
        node.propose(b"x")
    assert (info.value.reason, info.value.leader) == ("not_leader", None)
    with pytest.raises(ProposalDropped):
        node.read_index(b"r")  # no leader known to forward to
    with pytest.raises(RaftUsageError):
        node.propose(b"")


def test_snapshot_meta_needs_an_applied_index() -> None:
    node, storage = _single()
    node.campaign()
    _drain(node, storage)
    applied = node.status().applied
    meta = node.snapshot_meta(applied)
    assert meta == SnapshotMeta(applied, node.status().term, ConfState(("a",)))
    with pytest.raises(RaftUsageError):
        node.snapshot_meta(applied + 1)


# --- MemoryStorage, against the LogStorage contract ---


def test_memory_storage_contract() -> None:
    s = MemoryStorage()
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    s.save(HardState(1, "a", 0), [Entry(1, 1), Entry(2, 1, data=b"xx"), Entry(3, 2)])
    assert s.initial_state() == (HardState(1, "a", 0), ConfState())
    assert [e.index for e in s.entries(1, 4)] == [1, 2, 3]
    assert [e.index for e in s.entries(2, 4, max_bytes=1)] == [2]  # at least one
    assert [e.index for e in s.entries(1, 4, max_bytes=1)] == [1]  # then up to max_bytes
    assert [e.index for e in s.entries(1, 4, max_bytes=2)] == [1, 2, 3]
    with pytest.raises(Unavailable):
        s.term(4)
    s.save(None, [Entry(2, 3), Entry(3, 3)])  # a new leader overwrote the suffix
    assert [s.term(i) for i in (1, 2, 3)] == [1, 3, 3]
    with pytest.raises(StorageError):
        s.save(None, [Entry(9, 3)])  # a gap
    s.compact(Snapshot(SnapshotMeta(2, 3, ConfState(("a",))), b"state"))
    assert (s.first_index(), s.last_index(), s.term(2)) == (3, 3, 3)
    with pytest.raises(Compacted):
        s.term(1)
    with pytest.raises(Compacted):
        s.entries(2, 3)
    s.save(None, [], Snapshot(SnapshotMeta(10, 4, ConfState(("a", "b"))), b"new"))
    assert (s.first_index(), s.last_index()) == (11, 10)  # the whole log replaced
    assert s.initial_state()[1] == ConfState(("a", "b"))
    with pytest.raises(StorageError):
        s.save(None, [], Snapshot(SnapshotMeta(5, 4), b"old"))
    s.close()


def test_cheap_accessors_and_transfer_validation() -> None:
    sim = Simulation(ids(3), 65)
    leader = sim.wait_leader()
    node = sim.node(leader)
    assert (node.role, node.leader, node.term) == (Role.LEADER, leader, node.status().term)
    with pytest.raises(RaftUsageError):
        node.transfer_leader("nobody")


def test_an_impossible_append_is_ignored_not_fatal() -> None:
    sim = Simulation(ids(3), 66)
    leader = sim.wait_leader()
    follower = next(i for i in ids(3) if i != leader)
    node = sim.node(follower)
    st = node.status()
    bad = Message(
        MsgType.APP,
        to=follower,
        frm=leader,
        term=st.term,
        log_term=st.term,
        index=st.last_index,
        entries=(Entry(st.last_index + 5, st.term),),
        commit=st.last_index + 5,
    )
    node.step(bad)
    after = node.status()
    assert after.ignored_messages == st.ignored_messages + 1
    assert (after.last_index, after.commit) == (st.last_index, st.commit)


def test_a_snapshot_beyond_the_saved_commit_counts_as_committed() -> None:
    # A shell may defer saving a commit-only hard state, then compact at its applied index.
    node, storage = _single()
    node.campaign()
    _drain(node, storage)
    for k in range(3):
        node.propose(b"%d" % k)
    _drain(node, storage)
    applied = node.status().applied
    stale = HardState(node.status().term, "a", 2)
    storage.save(stale, [])
    storage.compact(Snapshot(node.snapshot_meta(applied), b"state"))
    again, _ = _single(storage)
    st = again.status()
    assert st.commit == applied and st.applied == applied
    assert _drain(again, storage) == []  # nothing before the snapshot is replayed
