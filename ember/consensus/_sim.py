"""A deterministic simulator for the Raft core: N :class:`RawNode` members over a simulated
network in virtual ticks.

The network drops, delays (so reorders) and duplicates messages by a seeded rng, and can be
partitioned; a fixed ``latency`` delays every message alike (in order, as TCP does). A paused
member (SIGSTOP) neither ticks nor reads: messages to it wait in its inbox until it resumes. A
crash loses everything not persisted: the member's core and state machine are dropped and only
its :class:`MemoryStorage` survives; a restart builds a new core from it. A member handles a
``Ready`` as the shell does: early messages, save, the other messages, apply, advance;
:meth:`Simulation.hold_saves` models a slow disk (the save and all after it wait while the
member keeps stepping, and a crash then loses unsaved entries a leader already sent). Each
member applies committed entries to a list (its "state machine"), optionally compacting its log
behind snapshots of that list. The simulator checks Raft's safety properties (§5.2 Figure 3) as
it goes and raises :class:`SafetyViolation` when one breaks.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ._config import RaftConfig
from ._errors import ProposalDropped
from ._memory import MemoryStorage
from ._messages import (
    Message,
    MsgType,
    ReadState,
    Ready,
    Role,
    decode_conf_change,
    decode_message,
    encode_message,
)
from ._rawnode import RawNode
from ._types import ConfState, Entry, EntryType, LogStorage, Snapshot

__all__ = ["SafetyViolation", "SimMember", "Simulation"]


class SafetyViolation(AssertionError):
    """One of Raft's safety properties does not hold."""


@dataclass
class SimMember:
    """One member: durable storage, and (while up) its core and state machine."""

    id: str
    storage: LogStorage
    node: RawNode | None = None
    applied: list[tuple[int, bytes]] = field(default_factory=list)
    """The state machine: (index, data) of every non-empty normal entry applied, in order."""
    last_applied: int = 0
    read_states: list[ReadState] = field(default_factory=list)
    saving: Ready | None = None
    """A Ready whose early messages are sent and whose save has not happened yet."""

    @property
    def up(self) -> bool:
        return self.node is not None


def _encode_state(applied: list[tuple[int, bytes]]) -> bytes:
    return msgpack.packb(applied)  # type: ignore[no-any-return]


def _decode_state(data: bytes) -> list[tuple[int, bytes]]:
    return [(i, d) for i, d in msgpack.unpackb(data)] if data else []


class Simulation:
    """Members ``ids`` (all voters unless ``voters``/``learners`` say otherwise) bootstrapped as a
    new group. ``drop``, ``dup`` are per-message probabilities; each message is delivered after
    ``latency`` + 0..``max_delay`` ticks. ``snapshot_every``: a member compacts its log behind a
    snapshot once it has applied that many entries past its last one, keeping
    ``compaction_keep`` entries behind the snapshot (for followers a little behind).
    ``storage`` makes each member's store (default :class:`MemoryStorage`). ``config``
    overrides RaftConfig fields."""

    def __init__(
        self,
        ids: list[str],
        seed: int,
        *,
        voters: list[str] | None = None,
        learners: list[str] | None = None,
        drop: float = 0.0,
        dup: float = 0.0,
        max_delay: int = 0,
        latency: int = 0,
        snapshot_every: int | None = None,
        compaction_keep: int = 0,
        check: bool = True,
        storage: Callable[[str], LogStorage] | None = None,
        **config: Any,
    ) -> None:
        self.new_storage: Callable[[str], LogStorage] = storage or (lambda _: MemoryStorage())
        self.seed = seed
        self.rng = random.Random(seed)
        self.drop, self.dup, self.max_delay = drop, dup, max_delay
        self.latency = latency
        self.snapshot_every = snapshot_every
        self.compaction_keep = compaction_keep
        self.check_safety = check
        self.config = config
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, Message]] = []  # (deliver at, seq, message)
        self.blocked: set[tuple[str, str]] = set()
        self.held: set[str] = set()  # members whose saves wait (see hold_saves)
        self.paused: dict[str, list[Message]] = {}  # paused members and their inboxes
        self.sent: dict[MsgType, int] = {}
        self.rejected = 0  # rejected appends sent (the cost of finding where logs match)
        self.members: dict[str, SimMember] = {}
        conf = ConfState(tuple(voters if voters is not None else ids), tuple(learners or ()))
        founders = set(conf.voters) | set(conf.learners)
        # History for the safety checks.
        self.leaders: dict[int, str] = {}
        # index -> (term, a term by which it was committed), of every entry known committed
        self.committed: dict[int, tuple[int, int]] = {}
        self._committed_hi = 0
        self._complete_to: dict[int, int] = {}  # term -> committed index its leader was checked to
        self.applied_at: dict[int, tuple[int, bytes]] = {}  # index -> (term, data) applied
        for i in ids:
            store = self.new_storage(i)
            if i in founders:
                RawNode.bootstrap(store, conf)
            self.members[i] = SimMember(i, store)
            self.start(i)

    # --- membership of the simulation ---

    def add_member(self, node_id: str) -> None:
        """A new, empty member (to be added with a conf change)."""
        self.members[node_id] = SimMember(node_id, self.new_storage(node_id))
        self.start(node_id)

    def start(self, node_id: str) -> None:
        m = self.members[node_id]
        cfg = RaftConfig(id=node_id, **self.config)
        m.node = RawNode(cfg, m.storage, random.Random(self.rng.getrandbits(64)))
        snap = m.storage.snapshot()
        m.applied = _decode_state(snap.data)
        m.last_applied = snap.meta.index
        m.read_states = []

    def crash(self, node_id: str) -> None:
        """Lose the member's core and state machine, and a Ready it has not saved yet; its
        storage stays."""
        m = self.members[node_id]
        m.node = m.saving = None
        self.held.discard(node_id)
        self.paused.pop(node_id, None)

    def hold_saves(self, node_id: str) -> None:
        """Let the member's next save wait (a slow disk) until :meth:`release_saves`: it sends
        the early messages of a Ready that must sync, and keeps stepping, but saves nothing and
        gets no new Ready (a Ready with nothing to sync goes through)."""
        self.held.add(node_id)

    def release_saves(self) -> None:
        self.held = set()

    def pause(self, node_id: str) -> None:
        """Freeze the member (SIGSTOP): it neither ticks, handles ``Ready`` nor reads messages;
        those sent to it wait, in order, until :meth:`resume`."""
        self.paused.setdefault(node_id, [])

    def resume(self, node_id: str) -> None:
        """Unfreeze the member: its inbox is delivered first, in the order it was sent."""
        for msg in self.paused.pop(node_id, []):
            self._seq += 1
            heapq.heappush(self._queue, (self.now, self._seq, msg))

    def restart(self, node_id: str) -> None:
        if self.members[node_id].node is None:
            self.start(node_id)

    # --- the network ---

    def partition(self, *groups: list[str]) -> None:
        """Only members of the same group can talk; members not named are isolated."""
        side = {n: k for k, g in enumerate(groups) for n in g}
        self.blocked = {
            (a, b)
            for a in self.members
            for b in self.members
            if a != b and (a not in side or b not in side or side[a] != side[b])
        }

    def isolate(self, node_id: str) -> None:
        for other in self.members:
            if other != node_id:
                self.blocked |= {(node_id, other), (other, node_id)}

    def heal(self) -> None:
        self.blocked = set()

    def _send(self, msg: Message) -> None:
        self.sent[msg.type] = self.sent.get(msg.type, 0) + 1
        if msg.type == MsgType.APP_RESP and msg.reject:
            self.rejected += 1
        rng = self.rng
        if self.drop and rng.random() < self.drop:
            return
        msg = decode_message(encode_message(msg))  # every message crosses the wire form
        copies = 2 if self.dup and rng.random() < self.dup else 1
        for _ in range(copies):
            delay = self.latency + (rng.randint(0, self.max_delay) if self.max_delay else 0)
            self._seq += 1
            heapq.heappush(self._queue, (self.now + delay, self._seq, msg))

    def messages_sent(self) -> int:
        return sum(self.sent.values())

    # --- running ---

    def step_once(self) -> bool:
        """Process every member's ready work and deliver the messages due now, once. Returns
        whether anything happened."""
        busy = False
        for m in self.members.values():
            if m.node is None or m.id in self.paused:
                continue
            if m.saving is None and m.node.has_ready():
                self._start_ready(m)
                busy = True
            if m.saving is not None and (m.id not in self.held or not m.saving.must_sync):
                self._finish_ready(m)
                busy = True
        while self._queue and self._queue[0][0] <= self.now:
            _, _, msg = heapq.heappop(self._queue)
            busy = True
            dest = self.members.get(msg.to)
            if dest is None or dest.node is None or (msg.frm, msg.to) in self.blocked:
                continue
            inbox = self.paused.get(msg.to)
            if inbox is not None:
                inbox.append(msg)
                continue
            dest.node.step(msg)
        return busy

    def settle(self, limit: int = 10_000) -> None:
        """Run :meth:`step_once` until nothing is left to do at this tick."""
        for _ in range(limit):
            if not self.step_once():
                if self.check_safety:
                    self.check()
                return
        raise RuntimeError("simulation did not settle (livelock?)")

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.settle()
            self.now += 1
            for m in self.members.values():
                if m.node is not None and m.id not in self.paused:
                    m.node.tick()
            self.settle()

    def run_until(self, predicate: Any, max_ticks: int) -> bool:
        """Tick until ``predicate()`` holds; False if it did not within ``max_ticks``."""
        self.settle()
        for _ in range(max_ticks):
            if predicate():
                return True
            self.tick()
        return bool(predicate())

    def _start_ready(self, m: SimMember) -> None:
        assert m.node is not None
        m.saving = m.node.ready()
        for msg in m.saving.early_messages:
            self._send(msg)

    def _finish_ready(self, m: SimMember) -> None:
        node, rd = m.node, m.saving
        assert node is not None and rd is not None
        m.saving = None
        m.storage.save(rd.hard_state, rd.entries, rd.snapshot)
        if rd.snapshot is not None:
            m.applied = _decode_state(rd.snapshot.data)
            m.last_applied = rd.snapshot.meta.index
        for msg in rd.messages:
            self._send(msg)
        for e in rd.committed_entries:
            self._apply(m, node, e)
        m.read_states.extend(rd.read_states)
        node.advance(rd)
        if self.snapshot_every and m.last_applied - m.storage.snapshot_meta().index >= (
            self.snapshot_every
        ):
            meta = node.snapshot_meta(m.last_applied)
            m.storage.compact(Snapshot(meta, _encode_state(m.applied)), self.compaction_keep)

    def _apply(self, m: SimMember, node: RawNode, e: Entry) -> None:
        if e.index != m.last_applied + 1:
            raise SafetyViolation(f"{m.id} applied {e.index} after {m.last_applied}")
        m.last_applied = e.index
        seen = self.applied_at.setdefault(e.index, (e.term, e.data))
        if seen != (e.term, e.data):
            raise SafetyViolation(
                f"State Machine Safety: {m.id} applied {e} at {e.index}, another applied {seen}"
            )
        if e.type == EntryType.CONF_CHANGE:
            node.apply_conf_change(decode_conf_change(e.data))
        elif e.data:
            m.applied.append((e.index, e.data))

    # --- safety (Raft Figure 3) ---

    def check(self) -> None:
        """Election Safety, Log Matching, Leader Completeness, State Machine Safety (the last is
        checked as entries are applied)."""
        up = [(m.id, m.node.raft) for m in self.members.values() if m.node is not None]
        for nid, r in up:
            if r.role == Role.LEADER:
                other = self.leaders.setdefault(r.term, nid)
                if other != nid:
                    raise SafetyViolation(f"Election Safety: {other} and {nid} lead term {r.term}")
            log = r.log
            for i in range(max(log.first_index(), self._committed_hi + 1), log.committed + 1):
                t = log.term(i)
                assert t is not None
                self.committed[i] = (t, r.term)
                self._committed_hi = i
        for nid, r in up:
            if r.role != Role.LEADER:
                continue
            # §5.4 Leader Completeness: "if a log entry is committed in a given term, then that
            # entry will be present in the logs of the leaders for all higher-numbered terms".
            # The term of the member that first saw the entry committed bounds the term it was
            # committed in from above. A leader never removes entries during its term, so each
            # index needs checking only once per leader.
            log = r.log
            first, last = log.first_index(), log.last_index()
            done = self._complete_to.get(r.term, 0)
            for i in range(max(done + 1, 1), self._committed_hi + 1):
                t, seen = self.committed.get(i, (0, r.term))
                if seen < r.term and (i > last or (first <= i and log.term(i) != t)):
                    raise SafetyViolation(
                        f"Leader Completeness: leader {nid} (term {r.term}) lacks committed "
                        f"entry {i}/{t}"
                    )
            self._complete_to[r.term] = self._committed_hi
        logs = {nid: self._terms(r) for nid, r in up}
        names = sorted(logs)
        for k, a in enumerate(names):
            for b in names[k + 1 :]:
                self._check_matching(a, logs[a], b, logs[b])

    @staticmethod
    def _terms(r: Any) -> tuple[int, list[int]]:
        log = r.log
        first = log.first_index()
        return first, [e.term for e in log.slice(first, log.last_index() + 1)]

    @staticmethod
    def _check_matching(
        a: str, la: tuple[int, list[int]], b: str, lb: tuple[int, list[int]]
    ) -> None:
        # §5.3 Log Matching: if two logs hold an entry with the same index and term, they are
        # identical up to it. With terms only: the same term at i implies the same terms before.
        lo = max(la[0], lb[0])
        hi = min(la[0] + len(la[1]), lb[0] + len(lb[1]))
        agree_from = None
        for i in range(hi - 1, lo - 1, -1):
            ta, tb = la[1][i - la[0]], lb[1][i - lb[0]]
            if agree_from is None:
                if ta == tb:
                    agree_from = i
            elif ta != tb:
                raise SafetyViolation(
                    f"Log Matching: {a} and {b} agree at {agree_from} but differ at {i}"
                )

    # --- helpers for tests ---

    def node(self, node_id: str) -> RawNode:
        n = self.members[node_id].node
        assert n is not None, f"{node_id} is down"
        return n

    def leaders_now(self) -> list[str]:
        return [
            m.id
            for m in self.members.values()
            if m.node is not None and m.node.raft.role == Role.LEADER
        ]

    def leader(self) -> str | None:
        """The leader with the highest term among live members, if any."""
        best: tuple[int, str] | None = None
        for nid in self.leaders_now():
            t = self.node(nid).raft.term
            if best is None or t > best[0]:
                best = (t, nid)
        return best[1] if best else None

    def wait_leader(self, max_ticks: int = 200) -> str:
        if not self.run_until(lambda: self.leader() is not None, max_ticks):
            raise AssertionError(f"no leader within {max_ticks} ticks (seed {self.seed})")
        leader = self.leader()
        assert leader is not None
        return leader

    def n_applied(self, index: int) -> tuple[int, bytes | None]:
        """How many live members applied ``index``, and the data there (MIT's nCommitted)."""
        count, data = 0, None
        for m in self.members.values():
            if m.node is not None and m.last_applied >= index:
                count += 1
                if data is None and index in self.applied_at:
                    data = self.applied_at[index][1]
        return count, data

    def propose(self, data: bytes) -> tuple[str, int] | None:
        """Propose at the current leader; None when there is none or it refused."""
        leader = self.leader()
        if leader is None:
            return None
        try:
            return leader, self.node(leader).propose(data)
        except ProposalDropped:
            return None

    def one(self, data: bytes, expected: int, max_ticks: int = 400, retry: bool = True) -> int:
        """MIT 6.5840's ``one()``: get ``data`` committed and applied by ``expected`` members;
        returns its index."""
        deadline = self.now + max_ticks
        while self.now < deadline:
            got = self.propose(data)
            if got is not None:
                _, index = got
                until = min(deadline, self.now + 40)
                self.settle()
                while self.now < until:
                    count, applied = self.n_applied(index)
                    if count >= expected and applied == data:
                        return index
                    self.tick()
                count, applied = self.n_applied(index)
                if count >= expected and applied == data:
                    return index
                if not retry:
                    break
            else:
                self.tick()
        raise AssertionError(f"one({data!r}) failed to reach {expected} members (seed {self.seed})")
