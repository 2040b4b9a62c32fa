"""What the Raft core exchanges with peers and hands to its shell: messages (and their msgpack
wire form), membership changes, read states, and the :class:`Ready` batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Literal

import msgpack  # type: ignore[import-untyped]

from ._errors import MessageDecodeError, RaftUsageError
from ._types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta

__all__ = [
    "ConfChange",
    "ConfChangeOp",
    "Message",
    "MsgType",
    "ProgressStatus",
    "ReadState",
    "Ready",
    "Role",
    "SoftState",
    "Status",
    "append_problem",
    "decode_conf_change",
    "decode_message",
    "encode_conf_change",
    "encode_message",
]


class MsgType(IntEnum):
    """The kind of a :class:`Message`; the values are the wire form."""

    APP = 1
    """AppendEntries (Raft Figure 2): entries after ``index``/``log_term``, and ``commit``."""
    APP_RESP = 2
    """Its answer: ``index`` is the last matching index, or on ``reject`` a ``reject_hint``
    (with the hint's ``log_term``) where the leader should probe next (§5.3 fast backup)."""
    VOTE = 3
    """RequestVote: ``index``/``log_term`` are the candidate's last entry."""
    VOTE_RESP = 4
    PRE_VOTE = 5
    """A pre-vote request (thesis §9.6), for ``term`` = the sender's term + 1."""
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7
    """The leader's heartbeat: ``commit`` (capped at the peer's match), a read ``context``."""
    HEARTBEAT_RESP = 8
    SNAP = 9
    """One chunk of InstallSnapshot: ``snapshot`` metadata, ``snap_offset``, ``snap_data``,
    ``snap_done`` on the last chunk."""
    SNAP_RESP = 10
    """A chunk's acknowledgement: ``snap_offset`` is the byte count the follower holds."""
    TIMEOUT_NOW = 11
    """Leadership transfer: campaign now, skipping pre-vote (thesis §3.10)."""
    READ_INDEX = 12
    """A follower forwards a read request; ``context`` identifies it."""
    READ_INDEX_RESP = 13
    """The leader's answer: ``index`` is the read index for ``context``."""
    TRANSFER_LEADER = 14
    """A follower forwards a transfer request; ``context`` is the wanted leader's id (UTF-8)."""


class Role(StrEnum):
    """A member's role."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


ConfChangeOp = Literal["add_learner", "add_voter", "promote", "demote", "remove"]
_CONF_OPS: frozenset[str] = frozenset(("add_learner", "add_voter", "promote", "demote", "remove"))


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-server membership change (thesis §4.1): add a learner, add a voter, promote a
    learner to voter, demote a voter to learner (it stays a member and keeps receiving the log),
    or remove a member."""

    op: ConfChangeOp
    node: str

    def __post_init__(self) -> None:
        if self.op not in _CONF_OPS:
            raise RaftUsageError(f"unknown conf change op {self.op!r}")
        if not isinstance(self.node, str) or not self.node:
            raise RaftUsageError(f"conf change node must be a non-empty string: {self.node!r}")


def encode_conf_change(change: ConfChange) -> bytes:
    """The ``data`` of a ``CONF_CHANGE`` entry."""
    return msgpack.packb((change.op, change.node))  # type: ignore[no-any-return]


def decode_conf_change(data: bytes) -> ConfChange:
    """The change a ``CONF_CHANGE`` entry's ``data`` holds; raises :class:`MessageDecodeError`."""
    try:
        op, node = msgpack.unpackb(data)
        return ConfChange(op, node)
    except (ValueError, TypeError, RaftUsageError, msgpack.UnpackException) as exc:
        raise MessageDecodeError(f"bad conf change entry: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Message:
    """One Raft message between members (etcd's ``raftpb.Message``). Fields a type does not use
    keep their defaults."""

    type: MsgType
    to: str
    frm: str
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: SnapshotMeta | None = None
    snap_offset: int = 0
    snap_data: bytes = b""
    snap_done: bool = False


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex result: once the state machine has applied ``index``, a read identified by
    ``context`` may be served linearizably (thesis §6.4)."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class SoftState:
    """What is volatile and worth telling the shell: role and known leader."""

    role: Role
    leader: str | None


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the shell, in this order: send ``early_messages``; persist
    ``hard_state``, ``entries`` and ``snapshot`` with one ``storage.save`` (syncing if
    ``must_sync``); restore the state machine from ``snapshot``; send ``messages``; apply
    ``committed_entries`` in order (calling ``apply_conf_change`` for each ``CONF_CHANGE``
    entry); serve ``read_states`` once applied; then call ``advance(ready)``.

    ``early_messages`` are a leader's appends and heartbeats in a Ready that changes neither
    term nor vote: they may leave before (or while) ``entries`` are saved, because the leader
    counts its own copy toward commit only at ``advance`` (thesis §10.2.1). Everything else
    (answers, votes, anything after a term change) must wait for the save."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    early_messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    """The leader's view of one peer: ``match`` (highest index known replicated), ``next`` (next
    index to send), ``state`` (``probe``, ``replicate`` or ``snapshot``), and ``lag`` (entries
    behind the leader's last index; the shell promotes a learner once it is small), and the
    append messages and bytes of entry data in flight to it (bounded by the window)."""

    match: int
    next: int
    state: str
    is_learner: bool
    recent_active: bool
    lag: int
    inflight_msgs: int = 0
    inflight_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Status:
    """A member's state for the shell and the admin API. ``progress`` is empty unless leader."""

    id: str
    role: Role
    term: int
    vote: str | None
    leader: str | None
    commit: int
    applied: int
    last_index: int
    conf: ConfState
    progress: dict[str, ProgressStatus] = field(default_factory=dict)
    lead_transferee: str | None = None
    ignored_messages: int = 0


def append_problem(msg: Message) -> str:
    """What makes an APP message's entries impossible ("" if nothing): they must follow
    ``index`` contiguously, with terms from ``log_term`` up to the message's ``term``, never
    decreasing."""
    prev_term, expect = msg.log_term, msg.index + 1
    for e in msg.entries:
        if e.index != expect:
            return f"entry {e.index} where {expect} was due"
        if e.term < prev_term or e.term > msg.term:
            return f"entry {e.index} has term {e.term} out of order"
        prev_term, expect = e.term, expect + 1
    return ""


# Wire form: a msgpack array
#   [type, to, frm, term, log_term, index, entries, commit, reject, reject_hint, context,
#    snap_offset, snap]
# with entries a flat array [index, term, type, data, index, term, type, data, ...] and snap either
# nil or [index, term, voters, learners, data, done].
_FIELDS = 13


def encode_message(msg: Message) -> bytes:
    """The msgpack wire form of ``msg``."""
    flat: list[Any] = []
    for e in msg.entries:
        flat += (e.index, e.term, int(e.type), e.data)
    snap: list[Any] | None = None
    if msg.snapshot is not None:
        meta = msg.snapshot
        snap = [
            meta.index,
            meta.term,
            list(meta.conf.voters),
            list(meta.conf.learners),
            msg.snap_data,
            msg.snap_done,
        ]
    return msgpack.packb(  # type: ignore[no-any-return]
        [
            int(msg.type),
            msg.to,
            msg.frm,
            msg.term,
            msg.log_term,
            msg.index,
            flat,
            msg.commit,
            msg.reject,
            msg.reject_hint,
            msg.context,
            msg.snap_offset,
            snap,
        ]
    )


def _bad(detail: str) -> MessageDecodeError:
    return MessageDecodeError(f"bad raft message: {detail}")


def _uint(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise _bad(f"{name} must be an unsigned int, not {value!r}")
    return value


def _str(value: Any, name: str) -> str:
    if type(value) is not str:
        raise _bad(f"{name} must be a string, not {value!r}")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if type(value) is not bytes:
        raise _bad(f"{name} must be bytes, not {type(value).__name__}")
    return value


def _bool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise _bad(f"{name} must be a bool, not {value!r}")
    return value


def _names(value: Any, name: str) -> tuple[str, ...]:
    if type(value) is not list:
        raise _bad(f"{name} must be an array")
    return tuple(_str(v, name) for v in value)


_ENTRY_TYPES = {int(t): t for t in EntryType}
_MSG_TYPES = {int(t): t for t in MsgType}


def _entries(flat: Any) -> tuple[Entry, ...]:
    if type(flat) is not list or len(flat) % 4:
        raise _bad("entries must be an array of 4-tuples")
    out = []
    for k in range(0, len(flat), 4):
        index, term, kind, data = flat[k : k + 4]
        etype = _ENTRY_TYPES.get(kind) if type(kind) is int else None
        if etype is None:
            raise _bad(f"unknown entry type {kind!r}")
        if not (type(index) is int and type(term) is int and index >= 0 and term >= 0):
            _uint(index, "index"), _uint(term, "term")
        out.append(Entry(index, term, etype, _bytes(data, "data")))
    return tuple(out)


def decode_message(data: bytes) -> Message:
    """The message ``data`` holds; raises :class:`MessageDecodeError` on anything else."""
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise _bad(f"not msgpack ({exc})") from None
    if type(raw) is not list or len(raw) != _FIELDS:
        raise _bad(f"expected an array of {_FIELDS} fields")
    kind, to, frm, term, log_term, index, flat, commit, reject, hint, context, offset, snap = raw
    mtype = _MSG_TYPES.get(kind) if type(kind) is int else None
    if mtype is None:
        raise _bad(f"unknown message type {kind!r}")
    ints = (term, log_term, index, commit, hint, offset)
    if not all(type(v) is int and v >= 0 for v in ints):
        for name, v in zip(
            ("term", "log_term", "index", "commit", "reject_hint", "snap_offset"), ints, strict=True
        ):
            _uint(v, name)
    meta: SnapshotMeta | None = None
    chunk, done = b"", False
    if snap is not None:
        if type(snap) is not list or len(snap) != 6:
            raise _bad("snapshot must be an array of 6 fields")
        s_index, s_term, voters, learners, chunk, done = snap
        meta = SnapshotMeta(
            _uint(s_index, "snapshot index"),
            _uint(s_term, "snapshot term"),
            ConfState(_names(voters, "voters"), _names(learners, "learners")),
        )
        chunk, done = _bytes(chunk, "snap_data"), _bool(done, "snap_done")
    msg = Message(
        mtype,
        _str(to, "to"),
        _str(frm, "frm"),
        term,
        log_term,
        index,
        _entries(flat),
        commit,
        _bool(reject, "reject"),
        hint,
        _bytes(context, "context"),
        meta,
        offset,
        chunk,
        done,
    )
    if mtype == MsgType.APP and msg.entries:
        problem = append_problem(msg)
        if problem:
            raise _bad(problem)
    return msg
