"""The API the shell drives: :class:`RawNode` wraps the Raft state machine and hands out its work
as :class:`~ember.consensus._messages.Ready` batches (etcd's ``RawNode``)."""

from __future__ import annotations

import random

from ._config import RaftConfig
from ._errors import RaftUsageError
from ._messages import (
    ConfChange,
    Message,
    MsgType,
    ProgressStatus,
    Ready,
    Role,
    SoftState,
    Status,
    encode_conf_change,
)
from ._raft import Raft
from ._types import ConfState, Entry, EntryType, HardState, LogStorage, SnapshotMeta

__all__ = ["RawNode"]

# What a leader may send before its save (thesis §10.2.1): appends and heartbeats carry only its
# term, its log and its commit index, none of which a crash before the save can make unsafe.
_EARLY = frozenset({MsgType.APP, MsgType.HEARTBEAT})


def _split_early(
    msgs: list[Message], term_durable: bool
) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
    """(early, late): early only while the term and vote the messages carry are on disk
    already, since a member restarted at an older term could lead this term again and send a
    different entry at the same index and term."""
    if not term_durable:
        return (), tuple(msgs)
    early = tuple(m for m in msgs if m.type in _EARLY)
    if not early:
        return (), tuple(msgs)
    return early, tuple(m for m in msgs if m.type not in _EARLY)


class RawNode:
    """One Raft member, driven by its shell. Not thread-safe; every method is synchronous and
    does no I/O. Between :meth:`ready` and :meth:`advance` the shell may keep calling
    :meth:`step`, :meth:`tick` and :meth:`propose`, but gets no new ``Ready`` until it
    advances."""

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        """Restart from ``storage.initial_state()`` (a brand-new group must be
        :meth:`bootstrap`-ped first)."""
        self._raft = Raft(config, storage, rng)
        r = self._raft
        self._prev_soft = SoftState(r.role, r.leader)
        self._prev_hard = HardState(r.term, r.vote, r.log.committed)
        self._outstanding: Ready | None = None

    @staticmethod
    def bootstrap(storage: LogStorage, conf: ConfState) -> None:
        """Write the initial membership of a brand-new group into empty ``storage``: one
        ``CONF_CHANGE`` entry per member at term 1, committed. Every founding member bootstraps
        with the same ``conf``, so their logs are identical; later members start empty and get
        the log (and so the membership) from the leader."""
        if storage.last_index() != 0 or storage.initial_state()[0] != HardState():
            raise RaftUsageError("bootstrap needs empty storage")
        if not conf.voters:
            raise RaftUsageError("a group needs at least one voter")
        if set(conf.voters) & set(conf.learners):
            raise RaftUsageError("a member cannot be both voter and learner")
        changes = [ConfChange("add_voter", v) for v in conf.voters]
        changes += [ConfChange("add_learner", v) for v in conf.learners]
        entries = [
            Entry(k + 1, 1, EntryType.CONF_CHANGE, encode_conf_change(c))
            for k, c in enumerate(changes)
        ]
        storage.save(HardState(term=1, vote=None, commit=len(entries)), entries)

    # --- input ---

    def tick(self) -> None:
        """One unit of logical time has passed."""
        self._raft.tick()

    def step(self, msg: Message) -> None:
        """A message from a peer. Stale and misaddressed ones are ignored and counted."""
        self._raft.step(msg)

    def propose(self, data: bytes) -> int:
        """Append ``data`` to the log (leader only); returns the index it gets if it commits.
        Raises :class:`ProposalDropped` otherwise; followers do not forward. ``data`` must not
        be empty (an empty entry is the leader's no-op)."""
        if not data:
            raise RaftUsageError("cannot propose empty data (empty entries are no-ops)")
        return self._raft.propose(bytes(data))

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose one membership change; at most one may be pending (proposed, not applied)."""
        return self._raft.propose_conf_change(change)

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Apply a committed ``CONF_CHANGE`` entry's change; call it for each such entry of
        ``Ready.committed_entries``, in order. Returns the new membership."""
        return self._raft.apply_conf_change(change)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read index; the answer is a ``ReadState(index, ctx)`` in a
        later ``Ready``. Raises :class:`ProposalDropped` when no leader is known."""
        self._raft.read_index(self._raft.id, bytes(ctx))

    def transfer_leader(self, to: str) -> None:
        """Hand leadership to the voter ``to`` (forwarded to the leader from a follower).
        Raises :class:`RaftUsageError` if ``to`` is not a voter, :class:`ProposalDropped` when
        no leader is known."""
        if to not in self._raft.voters:
            raise RaftUsageError(f"cannot transfer leadership to {to!r}: not a voter")
        self._raft.transfer(to)

    def campaign(self) -> None:
        """Start an election now (with pre-vote if configured)."""
        self._raft.hup()

    def report_unreachable(self, peer: str) -> None:
        """The shell could not deliver to ``peer``: stop pipelining to it and probe."""
        self._raft.report_unreachable(peer)

    def report_snapshot(self, peer: str, ok: bool) -> None:
        """Abort (``ok=False``) or acknowledge a snapshot being streamed to ``peer``."""
        self._raft.report_snapshot(peer, ok)

    # --- output ---

    def has_ready(self) -> bool:
        """Whether :meth:`ready` has work (False while a ``Ready`` is outstanding)."""
        if self._outstanding is not None:
            return False
        r = self._raft
        log = r.log
        return bool(
            r.bcast_pending
            or r.heartbeat_pending
            or r.msgs
            or r.read_states
            or log.unstable
            or log.usnap is not None
            or log.has_next_committed()
            or self._prev_soft != SoftState(r.role, r.leader)
            or self._prev_hard != HardState(r.term, r.vote, log.committed)
        )

    def ready(self) -> Ready:
        """Take the pending work; see :class:`Ready` for what the shell must do with it."""
        if self._outstanding is not None:
            raise RaftUsageError("ready() called again before advance()")
        r = self._raft
        r.flush()
        log = r.log
        soft = SoftState(r.role, r.leader)
        hard = HardState(r.term, r.vote, log.committed)
        committed: tuple[Entry, ...] = ()
        if log.has_next_committed():
            committed = tuple(log.next_committed(r.cfg.max_committed_size_per_ready))
            log.applying = committed[-1].index
            r.conf_queue.extend(e.index for e in committed if e.type == EntryType.CONF_CHANGE)
        entries = tuple(log.unstable)
        prev = self._prev_hard
        early, late = _split_early(r.msgs, hard.term == prev.term and hard.vote == prev.vote)
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != prev else None,
            entries=entries,
            snapshot=log.usnap,
            committed_entries=committed,
            messages=late,
            early_messages=early,
            read_states=tuple(r.read_states),
            must_sync=bool(entries)
            or log.usnap is not None
            or hard.term != prev.term
            or hard.vote != prev.vote,
        )
        r.msgs = []
        r.read_states = []
        self._prev_soft = soft
        self._prev_hard = hard
        self._outstanding = rd
        return rd

    def advance(self, ready: Ready) -> None:
        """Acknowledge that ``ready`` was persisted, sent and applied. A leader counts its own
        copy of ``ready.entries`` toward commit only now (thesis §10.2.1)."""
        if ready is not self._outstanding:
            raise RaftUsageError("advance() must be given the outstanding Ready")
        self._outstanding = None
        log = self._raft.log
        if ready.entries:
            last = ready.entries[-1]
            log.stable_to(last.index, last.term)
        if ready.snapshot is not None:
            index = ready.snapshot.meta.index
            log.stable_snap_to(index)
            log.applied = max(log.applied, index)
            log.applying = max(log.applying, index)
        if ready.committed_entries:
            log.applied = max(log.applied, ready.committed_entries[-1].index)
            self._raft.reduce_uncommitted(ready.committed_entries)
        if ready.entries:
            self._raft.persisted()

    # --- inspection ---

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """Metadata for a snapshot the shell takes of its state machine at ``index`` (which must
        be applied), with the current membership: pass it to ``storage.compact``."""
        log = self._raft.log
        if index > log.applied:
            raise RaftUsageError(f"index {index} is not applied yet (applied {log.applied})")
        term = log.term(index)
        if term is None:
            raise RaftUsageError(f"index {index} is no longer in the log")
        return SnapshotMeta(index, term, self._raft.conf_state())

    def status(self) -> Status:
        """A snapshot of this member's state (with peers' progress when leader)."""
        r = self._raft
        last = r.log.last_index()
        progress = {}
        if r.role == Role.LEADER:
            progress = {
                peer: ProgressStatus(
                    pr.match,
                    pr.next,
                    pr.state,
                    pr.is_learner,
                    pr.recent_active or peer == r.id,
                    last - pr.match,
                    pr.inflights.count(),
                    pr.inflights.bytes,
                )
                for peer, pr in sorted(r.prs.items())
            }
        return Status(
            id=r.id,
            role=r.role,
            term=r.term,
            vote=r.vote,
            leader=r.leader,
            commit=r.log.committed,
            applied=r.log.applied,
            last_index=last,
            conf=r.conf_state(),
            progress=progress,
            lead_transferee=r.lead_transferee,
            ignored_messages=r.ignored,
        )

    @property
    def term(self) -> int:
        """The current term (cheap; a proposal's entry is this term's if it commits at all)."""
        return self._raft.term

    @property
    def role(self) -> Role:
        return self._raft.role

    @property
    def leader(self) -> str | None:
        """The known leader, if any."""
        return self._raft.leader

    @property
    def raft(self) -> Raft:
        """The state machine inside (for tests and the simulator's invariant checks)."""
        return self._raft
