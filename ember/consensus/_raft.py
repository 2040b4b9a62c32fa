"""The Raft state machine: roles, elections, replication, reads, snapshots, membership and
leadership transfer, as a pure object driven by ``tick`` and ``step``.

It follows the Raft paper (Ongaro & Ousterhout 2014, "§" below) and Ongaro's thesis ("thesis §"),
in the shape of etcd's raft: outgoing messages collect in ``msgs``; what must be persisted is read
off the log by :class:`~ember.consensus._rawnode.RawNode`, which is the API the shell uses.
"""

from __future__ import annotations

import random
from collections import deque

from ._config import RaftConfig
from ._errors import ProposalDropped, RaftUsageError
from ._log import RaftLog
from ._messages import (
    ConfChange,
    Message,
    MsgType,
    ReadState,
    Role,
    append_problem,
    decode_conf_change,
    encode_conf_change,
)
from ._progress import PROBE, REPLICATE, SNAPSHOT, Progress
from ._types import Compacted, ConfState, Entry, EntryType, LogStorage, Snapshot

__all__ = ["Raft"]

_SENDS_PER_ANSWER = 2
_TRANSFER = b"transfer"  # context of a vote request sent because of TIMEOUT_NOW
_RESPONSE = {
    MsgType.VOTE: MsgType.VOTE_RESP,
    MsgType.PRE_VOTE: MsgType.PRE_VOTE_RESP,
}


class _PendingRead:
    __slots__ = ("acks", "frm", "index")

    def __init__(self, index: int, frm: str) -> None:
        self.index = index
        self.frm = frm
        self.acks: set[str] = set()


class Raft:
    """One member's Raft state. Use through :class:`RawNode`."""

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        self.cfg = config
        self.id = config.id
        self.rng = rng
        hard, conf = storage.initial_state()
        snap_index = storage.snapshot_meta().index  # cheap: not the snapshot's data
        # A snapshot is of committed state even if the commit index saved with it lags (the
        # shell need not sync a commit-only change before compacting).
        commit = max(hard.commit, snap_index)
        if config.applied > commit:
            raise RaftUsageError(f"applied ({config.applied}) is beyond the commit ({commit})")
        self.log = RaftLog(storage, commit, max(config.applied, snap_index))
        self.term = hard.term
        self.vote = hard.vote
        self.voters: set[str] = set(conf.voters)
        self.learners: set[str] = set(conf.learners)
        # Membership is what the committed log says: replay the committed conf changes now, so a
        # restarted member never acts on an older configuration; the shell's re-application of
        # these entries (apply_conf_change) is then recognised and skipped. Entries kept behind
        # the snapshot (first_index <= snap_index) are already in its membership: start after it.
        lo = snap_index + 1
        while lo <= commit:
            batch = self.log.slice(lo, commit + 1, config.max_committed_size_per_ready)
            for e in batch:
                if e.type == EntryType.CONF_CHANGE:
                    self._change_membership(decode_conf_change(e.data))
            lo = batch[-1].index + 1
        self.conf_index = commit  # conf changes at or before this are already applied
        self.conf_queue: deque[int] = deque()  # indices of conf entries handed out to apply
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.prs: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.leader_ticks = 0  # ticks since this member became leader (heartbeat timestamps)
        self.randomized_timeout = config.election_tick
        self.lead_transferee: str | None = None
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.reads: dict[bytes, _PendingRead] = {}  # safe ReadIndex rounds, in arrival order
        self.reads_waiting: list[tuple[str, bytes]] = []  # until an entry of the term commits
        self.snap_recv: tuple[tuple[str, int, int, int], bytearray] | None = None
        self.ignored = 0
        self.bcast_pending = False  # proposals wait for one batched broadcast at ready()
        self.heartbeat_pending = False  # so do the heartbeats that confirm reads
        self.become_follower(self.term, None)

    # ------------------------------------------------------------------ helpers

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def promotable(self) -> bool:
        return self.id in self.voters

    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def send(self, msg: Message) -> None:
        self.msgs.append(msg)

    def _reply(self, m: Message, mtype: MsgType, **fields: object) -> None:
        self.send(Message(mtype, to=m.frm, frm=self.id, term=self.term, **fields))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ role changes

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.leader = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.cfg.election_tick + self.rng.randrange(
            self.cfg.election_tick
        )
        self.lead_transferee = None
        self.votes = {}
        self.prs = {}
        self.uncommitted_size = 0
        self.reads = {}
        self.reads_waiting = []
        self.bcast_pending = False
        self.heartbeat_pending = False

    def become_follower(self, term: int, leader: str | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def become_pre_candidate(self) -> None:
        # Thesis §9.6: a pre-candidate changes neither its term nor its vote.
        self.role = Role.PRE_CANDIDATE
        self.votes = {}
        self.leader = None
        self.prs = {}

    def become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        self.leader_ticks = 0
        last = self.log.last_index()
        for peer in self.voters | self.learners:
            self.prs[peer] = self._new_progress(peer, last)
        me = self.prs.get(self.id)
        if me is not None:
            # Thesis §10.2.1: our own copy counts only as far as it is durable (see persisted).
            me.become_replicate()
            me.match, me.next = self.log.persisted_index(), last + 1
        # No conf change until this term's first entry is applied: the fix for single-server
        # changes across leader changes (Ongaro, raft-dev 2015; thesis §4.1 erratum).
        self.pending_conf_index = last
        # §5.4.2 / thesis §6.4: a new leader commits a no-op entry of its own term at once.
        self._append([Entry(last + 1, self.term)])
        self.bcast_append()

    def _new_progress(self, peer: str, last: int) -> Progress:
        cfg = self.cfg
        return Progress(
            last + 1, cfg.max_inflight_msgs, cfg.max_inflight_bytes, peer in self.learners
        )

    # ------------------------------------------------------------------ ticking

    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self.election_elapsed += 1
            if self.promotable() and self.election_elapsed >= self.randomized_timeout:
                self.election_elapsed = 0
                self.hup()

    def _tick_heartbeat(self) -> None:
        self.leader_ticks += 1
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                # Thesis §6.2: a leader that cannot reach a quorum steps down.
                self.become_follower(self.term, None)
                return
            self.lead_transferee = None  # a transfer must finish within an election timeout
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._resend_snap_chunks()
            self.bcast_heartbeat()

    def _resend_snap_chunks(self) -> None:
        """A chunk unanswered for half an election timeout of heartbeats was probably lost (or
        the peer restarted): send it again."""
        patience = max(2, self.cfg.election_tick // (2 * self.cfg.heartbeat_tick))
        for peer in sorted(self.prs):
            pr = self.prs[peer]
            if pr.state == SNAPSHOT and pr.snap is not None and peer != self.id:
                pr.snap_idle += 1
                if pr.snap_idle >= patience:
                    self._send_snap_chunk(peer, pr)

    def _quorum_active(self) -> bool:
        active = 0
        for peer, pr in self.prs.items():
            if peer == self.id:
                active += peer in self.voters
                continue
            if pr.recent_active and peer in self.voters:
                active += 1
            pr.recent_active = False
        return active >= self.quorum()

    # ------------------------------------------------------------------ elections

    def hup(self, transfer: bool = False) -> None:
        if self.role == Role.LEADER or not self.promotable():
            return
        if self._unapplied_conf_change():
            return  # its outcome decides who may vote; wait until it is applied
        if self.cfg.pre_vote and not transfer:
            self._campaign(MsgType.PRE_VOTE, transfer)
        else:
            self._campaign(MsgType.VOTE, transfer)

    def _unapplied_conf_change(self) -> bool:
        """Whether a committed conf change is not reflected in the membership yet (etcd's rule;
        those at or before ``conf_index`` were replayed at restart or came with a snapshot)."""
        lo = max(self.log.applied + 1, self.log.first_index(), self.conf_index + 1)
        return any(
            e.type == EntryType.CONF_CHANGE for e in self.log.slice(lo, self.log.committed + 1)
        )

    def _campaign(self, kind: MsgType, transfer: bool) -> None:
        if kind == MsgType.PRE_VOTE:
            self.become_pre_candidate()
            vote_term = self.term + 1
        else:
            self.become_candidate()
            vote_term = self.term
        if self._poll(self.id, True) is True:
            self._won(kind)
            return
        last, last_term = self.log.last_index(), self.log.last_term()
        ctx = _TRANSFER if transfer else b""
        for peer in sorted(self.voters):
            if peer != self.id:
                self.send(Message(kind, peer, self.id, vote_term, last_term, last, context=ctx))

    def _won(self, kind: MsgType) -> None:
        if kind == MsgType.PRE_VOTE:
            self._campaign(MsgType.VOTE, False)
        else:
            self.become_leader()

    def _poll(self, peer: str, granted: bool) -> bool | None:
        """Record a vote; True when won, False when lost, None while undecided."""
        self.votes.setdefault(peer, granted)
        yes = sum(1 for p, g in self.votes.items() if g and p in self.voters)
        no = sum(1 for p, g in self.votes.items() if not g and p in self.voters)
        if yes >= self.quorum():
            return True
        if no > len(self.voters) - self.quorum():
            return False
        return None

    def _handle_vote_request(self, m: Message) -> None:
        # Figure 2, RequestVote receiver: grant if we have not voted for another candidate in
        # this term and the candidate's log is at least as up-to-date as ours (§5.4.1).
        can_vote = (
            self.vote == m.frm
            or (self.vote is None and self.leader is None)
            or (m.type == MsgType.PRE_VOTE and m.term > self.term)
        )
        resp = _RESPONSE[m.type]
        if (
            m.type == MsgType.PRE_VOTE
            and self.leader is not None
            and self.election_elapsed < self.cfg.election_tick
        ):
            # Thesis §9.6: grant a pre-vote only if no leader was heard from for an election
            # timeout (with check-quorum, ``step`` already ignored the request).
            can_vote = False
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self.send(Message(resp, m.frm, self.id, m.term))
            if m.type == MsgType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(Message(resp, m.frm, self.id, self.term, reject=True))

    # ------------------------------------------------------------------ stepping

    def step(self, m: Message) -> None:
        if m.to != self.id:
            self.ignored += 1
            return
        if m.term > self.term:
            if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
                in_lease = (
                    self.cfg.check_quorum
                    and self.leader is not None
                    and self.election_elapsed < self.cfg.election_tick
                )
                if in_lease and m.context != _TRANSFER:
                    # Thesis §4.2.3: ignore a disruptive candidate while a leader is known to be
                    # alive (also what makes lease reads safe).
                    self.ignored += 1
                    return
            if m.type == MsgType.PRE_VOTE or (m.type == MsgType.PRE_VOTE_RESP and not m.reject):
                pass  # a pre-vote never changes terms
            elif m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, None)
        elif m.term < self.term:
            if m.type in (MsgType.APP, MsgType.HEARTBEAT) and (
                self.cfg.check_quorum or self.cfg.pre_vote
            ):
                # A stale leader learns the newer term from this and steps down (it could not
                # otherwise: with pre-vote or check-quorum our term alone never reaches it).
                self._reply(m, MsgType.APP_RESP)
            elif m.type == MsgType.PRE_VOTE:
                self._reply(m, MsgType.PRE_VOTE_RESP, reject=True)
            else:
                self.ignored += 1
            return

        if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            self.become_follower(m.term, m.frm)
            self._step_follower(m)
        elif (t == MsgType.PRE_VOTE_RESP and self.role == Role.PRE_CANDIDATE) or (
            t == MsgType.VOTE_RESP and self.role == Role.CANDIDATE
        ):
            result = self._poll(m.frm, not m.reject)
            if result is True:
                self._won(MsgType.PRE_VOTE if t == MsgType.PRE_VOTE_RESP else MsgType.VOTE)
            elif result is False:
                self.become_follower(self.term, None)
        else:
            self.ignored += 1

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            self.election_elapsed = 0
            self.leader = m.frm
            if t == MsgType.APP:
                self._handle_append(m)
            elif t == MsgType.HEARTBEAT:
                self.log.commit_to(min(m.commit, self.log.last_index()))
                self._reply(m, MsgType.HEARTBEAT_RESP, index=m.index, context=m.context)
            else:
                self._handle_snap_chunk(m)
        elif t == MsgType.TIMEOUT_NOW:
            # Thesis §3.10: the leader asks us to campaign at once, skipping pre-vote.
            self.hup(transfer=True)
        elif t == MsgType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))
        else:
            self.ignored += 1

    def _handle_append(self, m: Message) -> None:
        if m.entries and append_problem(m):
            self.ignored += 1  # a broken peer; ``decode_message`` rejects these off the wire
            return
        log = self.log
        if m.index < log.committed:
            self._reply(m, MsgType.APP_RESP, index=log.committed)
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._reply(m, MsgType.APP_RESP, index=last_new)
            return
        # §5.3: reject, and say where the leader should probe next: the last index whose term is
        # at most the leader's term at m.index, so a whole run of conflicting terms is skipped.
        hint, hint_term = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
        self._reply(
            m, MsgType.APP_RESP, index=m.index, reject=True, reject_hint=hint, log_term=hint_term
        )

    def _handle_snap_chunk(self, m: Message) -> None:
        meta = m.snapshot
        if meta is None:
            self.ignored += 1
            return
        if meta.index <= self.log.committed:
            self.snap_recv = None
            self._reply(m, MsgType.APP_RESP, index=self.log.committed)
            return
        key = (m.frm, m.term, meta.index, meta.term)
        if self.snap_recv is None or self.snap_recv[0] != key:
            self.snap_recv = (key, bytearray())
        buf = self.snap_recv[1]
        if m.snap_offset != len(buf):
            self._reply(m, MsgType.SNAP_RESP, index=meta.index, snap_offset=len(buf))
            return
        buf += m.snap_data
        if not m.snap_done:
            self._reply(m, MsgType.SNAP_RESP, index=meta.index, snap_offset=len(buf))
            return
        self.snap_recv = None
        if self.restore(Snapshot(meta, bytes(buf))):
            self._reply(m, MsgType.APP_RESP, index=self.log.last_index())
        else:
            self._reply(m, MsgType.APP_RESP, index=self.log.committed)

    def restore(self, snap: Snapshot) -> bool:
        """Install a received snapshot (§7): True if the log was replaced, False if we already
        had its last entry (then only the commit index moves)."""
        meta = snap.meta
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)
            return False
        self.log.restore(snap)
        self.voters = set(meta.conf.voters)
        self.learners = set(meta.conf.learners)
        self.conf_index = max(self.conf_index, meta.index)
        return True

    # ------------------------------------------------------------------ the leader

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MsgType.READ_INDEX:
            self.read_index(m.frm, m.context)
            return
        if t == MsgType.TRANSFER_LEADER:
            self.transfer(m.context.decode(errors="replace"))
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            self.ignored += 1
            return
        if t == MsgType.APP_RESP:
            pr.recent_active = True
            self._handle_append_resp(m, pr)
        elif t == MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.lease_tick = max(pr.lease_tick, min(m.index, self.leader_ticks))
            # Never a re-send of what is in flight (reads make heartbeat rounds frequent, and
            # each re-send would read up to max_size_per_msg again): only a heartbeat sent
            # after the last append lets one more probe out, and a full window's is empty.
            pr.heartbeat_answered(m.index)
            if pr.match < self.log.last_index() or pr.state == PROBE:
                self.send_append(m.frm)
            if m.context:
                self._ack_read(m.frm, m.context)
        elif t == MsgType.SNAP_RESP:
            pr.recent_active = True
            if (
                pr.state == SNAPSHOT
                and pr.snap is not None
                and pr.snap.meta.index == m.index
                and pr.snap_offset != m.snap_offset  # a repeated answer sends nothing more
            ):
                pr.snap_offset = m.snap_offset
                if pr.snap_offset < len(pr.snap.data):
                    self._send_snap_chunk(m.frm, pr)
        else:
            self.ignored += 1

    def _handle_append_resp(self, m: Message, pr: Progress) -> None:
        if m.reject:
            probe = m.reject_hint
            if m.log_term > 0:
                probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decrease(m.index, probe):
                if pr.state == REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        was_paused = pr.paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == PROBE:
            pr.become_replicate()
        elif pr.state == SNAPSHOT:
            assert pr.snap is not None
            # Caught up once the log holds what follows its match (entries kept behind our
            # snapshot count: a follower within them needs no further snapshot).
            caught_up = pr.match + 1 >= self.log.first_index()
            if caught_up or pr.match >= pr.snap.meta.index:
                pr.become_probe()  # if it still lags behind our log, another snapshot follows
                if caught_up:
                    pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self.maybe_commit():
            self.bcast_append()
        elif was_paused:
            self.send_append(m.frm)
        # Fill the window, at most _SENDS_PER_ANSWER messages per answer: each answer frees
        # about one message, so a far-behind member is fed at its own pace and the window
        # opens within a few round trips, but one answer never makes the leader read a whole
        # window from storage at once (a catch-up never monopolises its loop).
        for _ in range(_SENDS_PER_ANSWER):
            if not self.send_append(m.frm, send_empty=False):
                break
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self.send(Message(MsgType.TIMEOUT_NOW, m.frm, self.id, self.term))

    def maybe_commit(self) -> bool:
        """Figure 2, rules for leaders: commit the highest index a majority holds, if it is of
        the current term (§5.4.2; Figure 8 shows why older terms are not counted)."""
        matches = sorted(
            (self.prs[v].match if v in self.prs else 0 for v in self.voters), reverse=True
        )
        if not matches:
            return False
        if not self.log.maybe_commit(matches[self.quorum() - 1], self.term):
            return False
        if self.reads_waiting and self._committed_in_term():
            waiting, self.reads_waiting = self.reads_waiting, []
            for frm, ctx in waiting:
                self.read_index(frm, ctx)
        return True

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def bcast_append(self) -> None:
        for peer in sorted(self.prs):
            if peer != self.id:
                self.send_append(peer)

    def send_append(self, to: str, send_empty: bool = True) -> bool:
        """Send the next entries to ``to`` if its progress allows; a snapshot if they are gone
        (its ``next - 1`` is before the compaction point, whose term the log still answers)."""
        pr = self.prs[to]
        if pr.paused():
            return False
        log = self.log
        pr.next = min(pr.next, log.last_index() + 1)
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        ents: list[Entry] = []
        if not (pr.state == REPLICATE and pr.inflights.full()):
            try:
                ents = log.entries_from(pr.next, self.cfg.max_size_per_msg)
            except Compacted:
                return self._send_snapshot(to, pr)
        # else: a probe of a full window, empty: it re-sends nothing, and a rejection of it
        # says the window was lost (see heartbeat_answered).
        if not ents and not send_empty:
            return False
        self.send(
            Message(
                MsgType.APP,
                to,
                self.id,
                self.term,
                prev_term,
                prev,
                tuple(ents),
                log.committed,
            )
        )
        pr.sent_entries(
            ents[-1].index if ents else prev,
            len(ents),
            sum(len(e.data) for e in ents),
            self.leader_ticks,
        )
        return True

    def _send_snapshot(self, to: str, pr: Progress) -> bool:
        snap = self.log.storage.snapshot()
        if snap.meta.index == 0:
            return False
        pr.become_snapshot(snap)
        self._send_snap_chunk(to, pr)
        return True

    def _send_snap_chunk(self, to: str, pr: Progress) -> None:
        """§7 InstallSnapshot, in chunks of ``snapshot_chunk_size``; one chunk in flight (see
        ``_resend_snap_chunks``)."""
        assert pr.snap is not None
        off, size, data = pr.snap_offset, self.cfg.snapshot_chunk_size, pr.snap.data
        chunk = data[off : off + size]
        self.send(
            Message(
                MsgType.SNAP,
                to,
                self.id,
                self.term,
                snapshot=pr.snap.meta,
                snap_offset=off,
                snap_data=chunk,
                snap_done=off + len(chunk) >= len(data),
            )
        )
        pr.snap_idle = 0

    def bcast_heartbeat(self) -> None:
        ctx = next(reversed(self.reads), b"") if self.reads else b""
        for peer in sorted(self.prs):
            if peer == self.id:
                continue
            pr = self.prs[peer]
            # The commit index, but not beyond what the peer is known to hold (it may not have
            # the entries yet, or have different ones there).
            commit = min(pr.match, self.log.committed)
            # ``index`` carries the send time; the answer echoes it (for lease reads).
            self.send(
                Message(
                    MsgType.HEARTBEAT,
                    peer,
                    self.id,
                    self.term,
                    index=self.leader_ticks,
                    commit=commit,
                    context=ctx,
                )
            )

    def _append(self, entries: list[Entry]) -> None:
        # Not counted toward commit yet: the shell may send these before it saves them.
        self.log.append(entries)

    def persisted(self) -> None:
        """The shell saved what the log's stable part now holds. Thesis §10.2.1: the leader
        writes its log in parallel with sending it, and counts itself toward a commit quorum
        only for entries it has durably persisted (as a follower answers only after saving)."""
        me = self.prs.get(self.id) if self.role == Role.LEADER else None
        if me is not None and me.maybe_update(self.log.persisted_index()) and self.maybe_commit():
            self.bcast_append()

    # ------------------------------------------------------------------ local requests

    def propose(self, data: bytes, etype: EntryType = EntryType.NORMAL) -> int:
        if self.role != Role.LEADER:
            raise ProposalDropped("not_leader", self.leader)
        if self.id not in self.prs:
            raise ProposalDropped("removed", None)
        if self.lead_transferee is not None:
            raise ProposalDropped("transferring", self.lead_transferee)
        size = len(data)
        if (
            self.uncommitted_size > 0
            and self.uncommitted_size + size > self.cfg.max_uncommitted_bytes
        ):
            raise ProposalDropped("uncommitted_limit", self.id)
        self.uncommitted_size += size
        index = self.log.last_index() + 1
        self._append([Entry(index, self.term, etype, data)])
        self.bcast_pending = True
        return index

    def flush(self) -> None:
        """Send what proposals and reads since the last flush deferred: one append (and one
        heartbeat) per follower for the whole batch."""
        if self.bcast_pending:
            self.bcast_pending = False
            if self.role == Role.LEADER:
                self.bcast_append()
        if self.heartbeat_pending:
            self.heartbeat_pending = False
            if self.role == Role.LEADER:
                self.bcast_heartbeat()

    def propose_conf_change(self, change: ConfChange) -> int:
        if self.role != Role.LEADER:
            raise ProposalDropped("not_leader", self.leader)
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped("conf_change_pending", self.id)
        problem = self._conf_change_problem(change)
        if problem:
            raise ProposalDropped("invalid_conf_change", self.id, problem)
        index = self.propose(encode_conf_change(change), EntryType.CONF_CHANGE)
        self.pending_conf_index = index
        return index

    def _conf_change_problem(self, change: ConfChange) -> str:
        node, members = change.node, self.voters | self.learners
        if change.op == "add_learner" and node in members:
            return f"{node} is already a member"
        if change.op == "add_voter" and node in members:
            return f"{node} is already a member (promote a learner instead)"
        if change.op == "promote" and node not in self.learners:
            return f"{node} is not a learner"
        if change.op == "demote":
            if node not in self.voters:
                return f"{node} is not a voter"
            if self.voters == {node}:
                return "cannot demote the last voter"
        if change.op == "remove":
            if node not in members:
                return f"{node} is not a member"
            if self.voters == {node}:
                return "cannot remove the last voter"
        return ""

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        index = self.conf_queue.popleft() if self.conf_queue else None
        if index is not None and index <= self.conf_index:
            return self.conf_state()  # already reflected (replayed at restart, or snapshot)
        if index is not None:
            self.conf_index = index
        self._change_membership(change)
        if self.role == Role.LEADER:
            self._leader_conf_changed()
        return self.conf_state()

    def _change_membership(self, change: ConfChange) -> None:
        node = change.node
        if change.op == "add_learner":
            if node not in self.voters:
                self.learners.add(node)
        elif change.op in ("add_voter", "promote"):
            self.learners.discard(node)
            self.voters.add(node)
        elif change.op == "demote":
            # For quorums a demotion is a removal: the voter set loses exactly one member, so
            # any majority of the old set and any majority of the new one overlap (thesis
            # §4.1), and one change at a time keeps that true across changes. The node stays
            # a learner: it keeps receiving the log but neither campaigns nor counts in votes
            # or commits.
            if node in self.voters:
                self.voters.discard(node)
                self.learners.add(node)
        else:
            self.voters.discard(node)
            self.learners.discard(node)

    def _leader_conf_changed(self) -> None:
        if self.id not in self.voters:
            # Thesis §4.2.2: a leader that is no longer a voter (removed or demoted) steps down
            # once the change is committed (it is, since it is being applied).
            self.become_follower(self.term, None)
            return
        last = self.log.last_index()
        members = self.voters | self.learners
        for peer in list(self.prs):
            if peer not in members:
                del self.prs[peer]
        added = []
        for peer in sorted(members):
            pr = self.prs.get(peer)
            if pr is None:
                self.prs[peer] = self._new_progress(peer, last)
                added.append(peer)
            else:
                pr.is_learner = peer in self.learners
        if self.lead_transferee is not None and self.lead_transferee not in self.voters:
            self.lead_transferee = None
        if self.maybe_commit():
            self.bcast_append()
        else:
            for peer in sorted(self.prs):
                if peer != self.id:
                    # A new member is probed at once; the others only get new entries.
                    self.send_append(peer, send_empty=peer in added)

    def read_index(self, frm: str, ctx: bytes) -> None:
        """Thesis §6.4: the read index is the commit index once leadership is confirmed."""
        if self.role != Role.LEADER:
            if frm != self.id:
                self.ignored += 1
            elif self.leader is None:
                raise ProposalDropped("not_leader", None)
            else:
                self.send(Message(MsgType.READ_INDEX, self.leader, self.id, self.term, context=ctx))
            return
        if self.voters == {self.id}:
            self._read_done(frm, ctx, self.log.committed)
        elif not self._committed_in_term():
            # The commit index is only known to be current once an entry of this term commits.
            self.reads_waiting.append((frm, ctx))
        elif self.cfg.read_only == "lease" and self._lease_valid():
            self._read_done(frm, ctx, self.log.committed)
        elif ctx not in self.reads:
            self.reads[ctx] = _PendingRead(self.log.committed, frm)
            self.heartbeat_pending = True  # one round at flush confirms every read queued

    def _lease_valid(self) -> bool:
        """Thesis §6.4.1: a quorum answered heartbeats sent less than an election timeout ago
        (less one tick of margin for clock drift), so no other leader can have been elected
        yet: each of them ignores vote requests for an election timeout after hearing from us
        (see ``step``). Not during a transfer, which deliberately breaks that promise."""
        if self.lead_transferee is not None:
            return False
        sent = sorted(
            (
                self.leader_ticks if v == self.id else self.prs[v].lease_tick
                for v in self.voters
                if v in self.prs
            ),
            reverse=True,
        )
        if len(sent) < self.quorum():
            return False
        oldest = sent[self.quorum() - 1]
        return oldest >= 0 and self.leader_ticks - oldest < self.cfg.election_tick - 1

    def _ack_read(self, peer: str, ctx: bytes) -> None:
        pending = self.reads.get(ctx)
        if pending is None:
            return
        pending.acks.add(peer)
        acked = sum(1 for v in self.voters if v in pending.acks or v == self.id)
        if acked < self.quorum():
            return
        # Every read queued before this one is confirmed by the same heartbeats.
        while self.reads:
            key, read = next(iter(self.reads.items()))
            del self.reads[key]
            self._read_done(read.frm, key, read.index)
            if key == ctx:
                break

    def _read_done(self, frm: str, ctx: bytes, index: int) -> None:
        if frm == self.id:
            self.read_states.append(ReadState(index, ctx))
        else:
            self.send(
                Message(MsgType.READ_INDEX_RESP, frm, self.id, self.term, index=index, context=ctx)
            )

    def transfer(self, to: str) -> None:
        """Thesis §3.10: bring ``to`` up to date, then tell it to campaign at once."""
        if self.role != Role.LEADER:
            if self.leader is None:
                raise ProposalDropped("not_leader", None)
            self.send(
                Message(
                    MsgType.TRANSFER_LEADER, self.leader, self.id, self.term, context=to.encode()
                )
            )
            return
        if to == self.id or to not in self.voters or to not in self.prs:
            self.ignored += 1
            return
        if self.lead_transferee == to:
            return
        self.election_elapsed = 0
        self.lead_transferee = to
        if self.prs[to].match == self.log.last_index():
            self.send(Message(MsgType.TIMEOUT_NOW, to, self.id, self.term))
        else:
            self.send_append(to)

    def report_unreachable(self, peer: str) -> None:
        pr = self.prs.get(peer) if self.role == Role.LEADER else None
        if pr is None or pr.state == SNAPSHOT:
            return
        if pr.state == REPLICATE:
            pr.become_probe()
        # Probe again only once the peer answers a later heartbeat: not at every flush, each
        # reading entries again for a peer that cannot take them.
        pr.probe_sent = True
        pr.sent_tick = self.leader_ticks

    def report_snapshot(self, peer: str, ok: bool) -> None:
        pr = self.prs.get(peer) if self.role == Role.LEADER else None
        if pr is None or pr.state != SNAPSHOT:
            return
        if not ok:
            pr.snap = None
        pr.become_probe()
        pr.probe_sent = True  # wait for the peer's answer or the next heartbeat

    def reduce_uncommitted(self, entries: tuple[Entry, ...]) -> None:
        if self.uncommitted_size:
            self.uncommitted_size = max(
                0, self.uncommitted_size - sum(len(e.data) for e in entries)
            )
