"""The leader writes its log in parallel with replicating it (thesis §10.2.1: "the leader may
write to its disk in parallel with sending AppendEntries to followers ... as long as it counts
itself toward a majority only for entries it has durably written").

Why it is safe:

1. Committed still means "durable on a majority". A follower answers an append only after its
   save (its answers are never early), and the leader's own ``match`` moves only in
   ``advance``, for entries the shell has saved. So the commit index counts durable copies
   only, and Leader Completeness keeps its proof: any voting majority meets that majority.
2. Entries the leader sent but lost in a crash are uncommitted entries held by some followers,
   as after any leader crash: the next leader keeps or overwrites them by the usual rules.
3. Log Matching needs "one entry per (index, term)". Only term T's leader creates entries of
   term T, and a leader that crashed and restarted at T cannot lead T again (it must move to
   T+1 to campaign), so it never creates a different entry at an index it already sent. That
   holds only if T (and the vote) was durable when the entries left: a member restarted at
   T-1 could win T again. Hence messages leave early only from a Ready that changes neither
   term nor vote, and only appends and heartbeats (they carry the leader's term, its log and
   its commit index); votes, answers, snapshots and transfers wait for the save.

The simulator's ``hold_saves`` keeps a member's save pending while it keeps stepping (the
shell's save in a worker thread, or a slow disk); a crash then loses the unsaved entries it
already sent. The hypothesis schedules in ``test_raft_safety.py`` hold and crash at random; the
tests below walk the window on purpose, and show that the rule it relies on is needed.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from raftkit import ids

from ember.consensus import ClusterConfig, KVStateMachine
from ember.consensus._config import RaftConfig
from ember.consensus._memory import MemoryStorage
from ember.consensus._messages import Message, MsgType, Ready
from ember.consensus._raft import Raft
from ember.consensus._rawnode import RawNode
from ember.consensus._replica import Replica, encode_command
from ember.consensus._shell import RaftMember
from ember.consensus._sim import SafetyViolation, Simulation
from ember.consensus._types import ConfState, Entry


def _group(seed: int) -> tuple[Simulation, str, str, str]:
    sim = Simulation(ids(3), seed)
    leader = sim.wait_leader()
    sim.one(b"warm", 3)
    b, c = (i for i in ids(3) if i != leader)
    return sim, leader, b, c


def _send_then_crash_before_save(sim: Simulation, leader: str, b: str, c: str) -> int:
    """The leader sends ``x`` to ``b`` only (``c`` does not hear from it), ``b`` saves and
    answers, and the leader crashes before its own save; then ``c`` and the restarted leader
    elect a leader without ``b``. Returns the index ``x`` got."""
    sim.hold_saves(leader)
    sim.blocked.add((leader, c))
    index = sim.node(leader).propose(b"x")
    sim.settle()
    assert sim.node(b).raft.log.term(index) == sim.node(leader).raft.term  # b has it, durably
    assert sim.members[b].storage.last_index() == index
    sim.crash(leader)  # the held Ready with x is lost
    sim.restart(leader)
    assert sim.node(leader).raft.log.last_index() == index - 1
    sim.heal()
    sim.isolate(b)
    assert sim.run_until(lambda: sim.leader() in (leader, c), 200)
    return index


def test_a_leader_counts_itself_only_once_its_save_is_done() -> None:
    sim, leader, _, c = _group(11)
    sim.hold_saves(leader)
    sim.blocked.add((leader, c))
    index = sim.node(leader).propose(b"x")
    sim.settle()
    # b saved and answered; the leader's own copy is not durable: no majority yet.
    assert sim.node(leader).raft.log.committed == index - 1
    sim.release_saves()
    sim.settle()
    assert sim.node(leader).raft.log.committed == index
    assert sim.n_applied(index) == (2, b"x")  # the leader and b


def test_followers_alone_commit_while_the_leader_saves_and_it_survives_a_crash() -> None:
    sim, leader, _, _ = _group(12)
    sim.hold_saves(leader)
    index = sim.node(leader).propose(b"x")
    sim.settle()
    assert sim.node(leader).raft.log.committed == index  # b and c: a durable majority
    sim.crash(leader)
    assert sim.members[leader].storage.last_index() == index - 1
    sim.restart(leader)
    new = sim.wait_leader()
    sim.one(b"after", 3)
    assert sim.node(new).raft.log.slice(index, index + 1)[0].data == b"x"
    assert sim.applied_at[index][1] == b"x"


def test_a_leader_crash_before_its_save_loses_only_an_uncommitted_entry() -> None:
    sim, leader, b, c = _group(13)
    index = _send_then_crash_before_save(sim, leader, b, c)
    new = sim.leader()
    assert new is not None
    mine = sim.node(new).raft.log.slice(index, index + 1)[0]
    assert mine.data != b"x"  # the new leader's own entry took the index
    sim.one(b"y", 2)
    sim.heal()
    sim.one(b"z", 3)
    # b's copy of x was uncommitted and is overwritten; nobody applied it.
    assert sim.node(b).raft.log.slice(index, index + 1)[0].data != b"x"
    assert all(data != b"x" for _, data in sim.applied_at.values())


def test_counting_the_leader_before_its_save_breaks_leader_completeness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old rule (the leader's copy counts as soon as it is appended) with early sending: x
    is counted committed with one durable copy (b's); the leader loses its copy in the crash
    and a leader without x is elected. (The shell acted on a commit only after the save of
    the Ready that carried the entries, so the old rule was safe only by that scheduling.)"""

    def append_and_count(self: Raft, entries: list[Entry]) -> None:
        me = self.prs.get(self.id)
        last = self.log.append(entries)
        if me is not None:
            me.maybe_update(last)
        self.maybe_commit()

    monkeypatch.setattr(Raft, "_append", append_and_count)
    sim, leader, b, c = _group(13)
    with pytest.raises(SafetyViolation, match="Leader Completeness"):
        _send_then_crash_before_save(sim, leader, b, c)


class _Shell:
    """A RawNode whose Readies are saved to memory, then advanced (messages are inspected)."""

    def __init__(self, voters: tuple[str, ...], learners: tuple[str, ...] = ()) -> None:
        self.storage = MemoryStorage()
        RawNode.bootstrap(self.storage, ConfState(voters, learners))
        self.node = RawNode(RaftConfig(id=voters[0]), self.storage, random.Random(0))
        self.node.campaign()

    def ready(self) -> Ready:
        rd = self.node.ready()
        self.storage.save(rd.hard_state, rd.entries, rd.snapshot)
        self.node.advance(rd)
        return rd


def test_no_message_leaves_early_from_a_ready_that_changes_the_term() -> None:
    """A lone voter wins at once: its term, its vote and its first append (to a learner) are
    in one Ready, the only way a leader's appends and a term change meet (with more voters the
    term is saved before the vote requests leave). Sent before the save, a crash could restart
    it at the old term to win that term again. Today that is harmless only by accident: the
    one entry that can leave is the no-op, which the second win recreates identically at the
    same index (no simulator schedule can show harm, so this rule is checked here directly).
    The rule keeps "one entry per (index, term)" from resting on that."""
    rd = _Shell(("a",), ("l",)).ready()
    assert rd.hard_state is not None and rd.must_sync
    assert not rd.early_messages
    assert {m.type for m in rd.messages} == {MsgType.APP}


def test_only_appends_and_heartbeats_leave_early() -> None:
    shell = _Shell(("a", "b", "c"))
    node = shell.node
    rd = shell.ready()  # pre-vote requests: not early, though the term does not change
    assert not rd.early_messages and {m.type for m in rd.messages} == {MsgType.PRE_VOTE}
    term = rd.messages[0].term
    for peer in ("b", "c"):
        node.step(Message(MsgType.PRE_VOTE_RESP, "a", peer, term))
    rd = shell.ready()  # vote requests wait for the new term and vote to be saved
    assert not rd.early_messages and {m.type for m in rd.messages} == {MsgType.VOTE}
    node.step(Message(MsgType.VOTE_RESP, "a", "b", term))
    rd = shell.ready()  # leader: its term is durable already, its appends go early
    assert {m.type for m in rd.early_messages} == {MsgType.APP} and not rd.messages
    assert rd.entries and not rd.committed_entries  # b has not answered, a counts at advance
    last = rd.entries[-1].index
    node.transfer_leader("b")
    node.step(Message(MsgType.APP_RESP, "a", "b", term, index=last))
    node.tick()
    rd = shell.ready()
    assert {m.type for m in rd.early_messages} == {MsgType.APP, MsgType.HEARTBEAT}
    assert {m.type for m in rd.messages} == {MsgType.TIMEOUT_NOW}
    assert [e.index for e in rd.committed_entries] == [last]  # a (saved) and b


class _RecordingStorage(MemoryStorage):
    def __init__(self, events: list[tuple[str, bytes]]) -> None:
        super().__init__()
        self.events = events

    def save(self, hard_state: Any, entries: Any = (), snapshot: Any = None) -> None:
        self.events += [("save", e.data) for e in entries]
        super().save(hard_state, entries, snapshot)


def test_the_shell_sends_a_leaders_appends_before_it_saves_them() -> None:
    """A lone voter with a learner that accepts everything: the append carrying a write
    leaves before the save of that write."""
    events: list[tuple[str, bytes]] = []
    write = encode_command(None, {"key": "k", "value": 1})
    storage = _RecordingStorage(events)
    RawNode.bootstrap(storage, ConfState(("a",), ("l",)))

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        acked = asyncio.Event()

        def send(msg: Message) -> None:
            events.extend(("send", e.data) for e in msg.entries)
            if msg.type == MsgType.APP:
                ack = Message(
                    MsgType.APP_RESP, "a", "l", msg.term, index=msg.index + len(msg.entries)
                )
                loop.call_soon(member.step, ack)
                loop.call_soon(acked.set)  # after the step: callbacks run in order

        member = RaftMember(
            "g",
            "a",
            storage,
            Replica(KVStateMachine()),
            config=ClusterConfig(),
            send=send,
            save_in_thread=True,
        )
        member.start()
        member.node.campaign()
        async with asyncio.timeout(5):
            await member.wait_for_leader()
            await acked.wait()  # the learner answered the first append
            outcome = await member.propose(write)
        await member.stop()
        return outcome

    assert asyncio.run(main())[0] is True
    assert events.index(("send", write)) < events.index(("save", write))
