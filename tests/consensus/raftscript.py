"""Scripted interaction tests for the Raft core, in the style of etcd's datadriven tests.

A script is a sequence of blocks::

    # a comment
    campaign 1
    ----
    <the expected output>

separated by blank lines. :func:`run_file` runs every command against one :class:`Env` and
compares the output with the expected text; with ``EMBER_REWRITE_GOLDEN=1`` it writes the actual
output back into the file instead (review the diff before committing it).

Commands (ids are "1", "2", ...):

- ``add-nodes N [voters=1,2,3] [learners=4] [pre-vote=false] [check-quorum=false]
  [read-only=lease] [max-size=B] [max-inflight=N] [chunk=B] [max-uncommitted=B] [seed=S]``
- ``campaign ID``, ``propose ID DATA``, ``propose-conf-change ID OP NODE``,
  ``read-index ID CTX``, ``transfer-leader ID TO``, ``report-unreachable ID PEER``
- ``tick ID [N]``, ``tick-heartbeat ID``, ``tick-election ID`` (its randomized timeout)
- ``process-ready [ID...]``, ``deliver-msgs [ID...] [drop=ID,...]``, ``stabilize [ID...]``
- ``isolate ID``, ``heal``, ``crash ID``, ``restart ID``, ``compact ID INDEX``
- ``raft-log ID``, ``raft-state``, ``status ID``, ``applied ID``

After each command, every member whose role, term or leader changed prints one line.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from ember.consensus._config import RaftConfig
from ember.consensus._errors import ProposalDropped
from ember.consensus._memory import MemoryStorage
from ember.consensus._messages import (
    ConfChange,
    Message,
    MsgType,
    Ready,
    decode_conf_change,
)
from ember.consensus._rawnode import RawNode
from ember.consensus._types import ConfState, Entry, EntryType, Snapshot

_CONFIG_KEYS = {
    "pre-vote": ("pre_vote", lambda v: v == "true"),
    "check-quorum": ("check_quorum", lambda v: v == "true"),
    "read-only": ("read_only", str),
    "max-size": ("max_size_per_msg", int),
    "max-inflight": ("max_inflight_msgs", int),
    "chunk": ("snapshot_chunk_size", int),
    "max-uncommitted": ("max_uncommitted_bytes", int),
    "election-tick": ("election_tick", int),
}


def fmt_entry(e: Entry) -> str:
    if e.type == EntryType.CONF_CHANGE:
        cc = decode_conf_change(e.data)
        return f"{e.term}/{e.index} conf:{cc.op} {cc.node}"
    return f"{e.term}/{e.index} {e.data.decode(errors='replace')!r}"


def fmt_msg(m: Message) -> str:
    head = f"{m.frm}->{m.to} {m.type.name} term={m.term}"
    t = m.type
    if t == MsgType.APP:
        out = f"{head} log={m.log_term}/{m.index} commit={m.commit}"
        if m.entries:
            out += " entries=[" + ", ".join(fmt_entry(e) for e in m.entries) + "]"
        return out
    if t == MsgType.APP_RESP:
        if m.reject:
            return f"{head} reject index={m.index} hint={m.log_term}/{m.reject_hint}"
        return f"{head} index={m.index}"
    if t in (MsgType.VOTE, MsgType.PRE_VOTE):
        return f"{head} last={m.log_term}/{m.index}" + (" transfer" if m.context else "")
    if t in (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
        return f"{head} " + ("reject" if m.reject else "granted")
    if t == MsgType.HEARTBEAT:
        return f"{head} commit={m.commit}" + (f" ctx={m.context.decode()}" if m.context else "")
    if t == MsgType.HEARTBEAT_RESP:
        return head + (f" ctx={m.context.decode()}" if m.context else "")
    if t == MsgType.SNAP:
        assert m.snapshot is not None
        meta = m.snapshot
        return (
            f"{head} snap={meta.term}/{meta.index} offset={m.snap_offset} "
            f"len={len(m.snap_data)}" + (" done" if m.snap_done else "")
        )
    if t == MsgType.SNAP_RESP:
        return f"{head} snap={m.index} offset={m.snap_offset}"
    if t == MsgType.READ_INDEX:
        return f"{head} ctx={m.context.decode()}"
    if t == MsgType.READ_INDEX_RESP:
        return f"{head} index={m.index} ctx={m.context.decode()}"
    if t == MsgType.TRANSFER_LEADER:
        return f"{head} to={m.context.decode()}"
    return head


def _fmt_conf(conf: ConfState) -> str:
    out = "voters=(" + ",".join(conf.voters) + ")"
    if conf.learners:
        out += " learners=(" + ",".join(conf.learners) + ")"
    return out


@dataclass
class _Member:
    storage: MemoryStorage
    config: RaftConfig
    node: RawNode | None = None
    applied: list[bytes] = field(default_factory=list)


class Env:
    """The members of one script and the messages between them (in send order)."""

    def __init__(self) -> None:
        self.members: dict[str, _Member] = {}
        self.mail: list[Message] = []
        self.isolated: set[str] = set()
        self.seed = 0

    # --- plumbing ---

    def node(self, nid: str) -> RawNode:
        n = self.members[nid].node
        if n is None:
            raise ValueError(f"{nid} is down")
        return n

    def _shape(self) -> dict[str, tuple[str, int, str | None]]:
        out = {}
        for nid, m in self.members.items():
            if m.node is not None:
                r = m.node.raft
                out[nid] = (r.role.value, r.term, r.leader)
        return out

    def run(self, line: str) -> str:
        words = line.split()
        cmd, args = words[0], words[1:]
        before = self._shape()
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}")
        out: list[str] = handler(*args)
        after = self._shape()
        for nid, shape in after.items():
            if nid in before and before[nid] != shape:
                role, term, leader = shape
                out.append(f"{nid} is {role} at term {term}, leader {leader or 'none'}")
        return "\n".join(out) if out else "ok"

    def _start(self, nid: str) -> None:
        m = self.members[nid]
        m.node = RawNode(m.config, m.storage, random.Random(f"{self.seed}/{nid}"))
        snap = m.storage.snapshot()
        m.applied = [bytes(d) for d in msgpack.unpackb(snap.data)] if snap.data else []

    def _handle_ready(self, nid: str, rd: Ready) -> list[str]:
        m = self.members[nid]
        node = self.node(nid)
        out = [f"> {nid} handling Ready"]
        if rd.soft_state is not None:
            lead = rd.soft_state.leader or "none"
            out.append(f"  soft: {rd.soft_state.role.value} leader={lead}")
        if rd.hard_state is not None:
            hs = rd.hard_state
            out.append(f"  hard: term={hs.term} vote={hs.vote or 'none'} commit={hs.commit}")
        if rd.entries:
            out.append("  entries:")
            out += [f"    {fmt_entry(e)}" for e in rd.entries]
        if rd.snapshot is not None:
            meta = rd.snapshot.meta
            out.append(f"  snapshot: {meta.term}/{meta.index} {_fmt_conf(meta.conf)}")
        if rd.committed_entries:
            out.append("  committed:")
            out += [f"    {fmt_entry(e)}" for e in rd.committed_entries]
        if rd.early_messages:
            out.append("  early messages:")
            out += [f"    {fmt_msg(msg)}" for msg in rd.early_messages]
        if rd.messages:
            out.append("  messages:")
            out += [f"    {fmt_msg(msg)}" for msg in rd.messages]
        for rs in rd.read_states:
            out.append(f"  read-state: index={rs.index} ctx={rs.context.decode()}")
        if rd.must_sync:
            out.append("  sync")
        m.storage.save(rd.hard_state, rd.entries, rd.snapshot)
        if rd.snapshot is not None:
            data = rd.snapshot.data
            m.applied = [bytes(d) for d in msgpack.unpackb(data)] if data else []
        self.mail.extend(rd.early_messages + rd.messages)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                conf = node.apply_conf_change(decode_conf_change(e.data))
                out.append(f"  applied conf change: {_fmt_conf(conf)}")
            elif e.data:
                m.applied.append(e.data)
        node.advance(rd)
        return out

    # --- commands ---

    def cmd_add_nodes(self, count: str, *opts: str) -> list[str]:
        first = len(self.members) + 1
        new = [str(k) for k in range(first, first + int(count))]
        kv = dict(o.split("=", 1) for o in opts)
        self.seed = int(kv.pop("seed", self.seed))
        voters = kv.pop("voters", ",".join(new)).split(",")
        learners = [x for x in kv.pop("learners", "").split(",") if x]
        overrides: dict[str, Any] = {}
        for key, value in kv.items():
            name, conv = _CONFIG_KEYS[key]
            overrides[name] = conv(value)
        conf = ConfState(tuple(voters), tuple(learners))
        out = []
        for nid in new:
            storage = MemoryStorage()
            if nid in voters or nid in learners:
                RawNode.bootstrap(storage, conf)
            self.members[nid] = _Member(storage, RaftConfig(id=nid, **overrides))
            self._start(nid)
            st = self.node(nid).status()
            out.append(f"{nid}: term={st.term} commit={st.commit} {_fmt_conf(st.conf)}")
        return out

    def cmd_campaign(self, nid: str) -> list[str]:
        self.node(nid).campaign()
        return []

    def cmd_propose(self, nid: str, data: str) -> list[str]:
        try:
            return [f"index {self.node(nid).propose(data.encode())}"]
        except ProposalDropped as exc:
            return [f"dropped: {exc.reason}"]

    def cmd_propose_conf_change(self, nid: str, op: str, target: str) -> list[str]:
        try:
            index = self.node(nid).propose_conf_change(ConfChange(op, target))  # type: ignore[arg-type]
            return [f"index {index}"]
        except ProposalDropped as exc:
            return [f"dropped: {exc.reason}" + (f" ({exc.detail})" if exc.detail else "")]

    def cmd_read_index(self, nid: str, ctx: str) -> list[str]:
        try:
            self.node(nid).read_index(ctx.encode())
        except ProposalDropped as exc:
            return [f"dropped: {exc.reason}"]
        return []

    def cmd_transfer_leader(self, nid: str, to: str) -> list[str]:
        self.node(nid).transfer_leader(to)
        return []

    def cmd_report_unreachable(self, nid: str, peer: str) -> list[str]:
        self.node(nid).report_unreachable(peer)
        return []

    def cmd_tick(self, nid: str, n: str = "1") -> list[str]:
        for _ in range(int(n)):
            self.node(nid).tick()
        return []

    def cmd_tick_heartbeat(self, nid: str) -> list[str]:
        return self.cmd_tick(nid, str(self.members[nid].config.heartbeat_tick))

    def cmd_tick_election(self, nid: str) -> list[str]:
        return self.cmd_tick(nid, str(self.node(nid).raft.randomized_timeout))

    def cmd_process_ready(self, *ids: str) -> list[str]:
        out: list[str] = []
        for nid in ids or tuple(self.members):
            m = self.members[nid]
            if m.node is not None and m.node.has_ready():
                out += self._handle_ready(nid, m.node.ready())
        return out

    def cmd_deliver_msgs(self, *args: str) -> list[str]:
        drop = {x for a in args if a.startswith("drop=") for x in a[5:].split(",")}
        ids = {a for a in args if not a.startswith("drop=")}
        out, keep = [], []
        for msg in self.mail:
            if ids and msg.to not in ids:
                keep.append(msg)
                continue
            dest = self.members[msg.to].node
            if msg.to in drop or dest is None or {msg.to, msg.frm} & self.isolated:
                out.append(f"dropped: {fmt_msg(msg)}")
                continue
            out.append(fmt_msg(msg))
            dest.step(msg)
        self.mail = keep
        return out

    def cmd_stabilize(self, *ids: str) -> list[str]:
        out: list[str] = []
        while True:
            step = self.cmd_process_ready(*ids)
            step += self.cmd_deliver_msgs(*ids)
            if not step:
                return out
            out += step

    def cmd_isolate(self, nid: str) -> list[str]:
        self.isolated.add(nid)
        return []

    def cmd_heal(self) -> list[str]:
        self.isolated.clear()
        return []

    def cmd_crash(self, nid: str) -> list[str]:
        self.members[nid].node = None
        self.mail = [m for m in self.mail if m.to != nid and m.frm != nid]
        return []

    def cmd_restart(self, nid: str) -> list[str]:
        self._start(nid)
        st = self.node(nid).status()
        return [f"{nid}: term={st.term} commit={st.commit} {_fmt_conf(st.conf)}"]

    def cmd_compact(self, nid: str, index: str) -> list[str]:
        m = self.members[nid]
        node = self.node(nid)
        meta = node.snapshot_meta(int(index))
        data = msgpack.packb(m.applied)  # the applied list is the state machine
        m.storage.compact(Snapshot(meta, data))
        return [f"compacted to {meta.term}/{meta.index}"]

    def cmd_raft_log(self, nid: str) -> list[str]:
        log = self.node(nid).raft.log
        first, last = log.first_index(), log.last_index()
        if first > last:
            return [f"log is empty: first index={first}, last index={last}"]
        return [
            fmt_entry(e) + (" (committed)" if e.index <= log.committed else "")
            for e in log.slice(first, last + 1)
        ]

    def cmd_raft_state(self) -> list[str]:
        out = []
        for nid, m in self.members.items():
            if m.node is None:
                out.append(f"{nid}: down")
                continue
            st = m.node.status()
            out.append(
                f"{nid}: {st.role.value} term={st.term} vote={st.vote or 'none'} "
                f"leader={st.leader or 'none'} commit={st.commit} applied={st.applied} "
                f"last={st.last_index}"
            )
        return out

    def cmd_status(self, nid: str) -> list[str]:
        st = self.node(nid).status()
        out = [f"{st.id}: {st.role.value} term={st.term} {_fmt_conf(st.conf)}"]
        for peer, pr in st.progress.items():
            kind = " learner" if pr.is_learner else ""
            out.append(f"  {peer}: {pr.state} match={pr.match} next={pr.next} lag={pr.lag}{kind}")
        return out

    def cmd_applied(self, nid: str) -> list[str]:
        return [repr(self.members[nid].applied)]


def _parse(text: str) -> tuple[list[tuple[list[str], str, list[str]]], list[str]]:
    """Blocks as (the comment and blank lines before it, command, expected output lines), and
    the lines after the last block. A block's output ends at a blank line."""
    lines = text.rstrip("\n").split("\n")
    blocks: list[tuple[list[str], str, list[str]]] = []
    lead: list[str] = []
    k = 0
    while k < len(lines):
        line = lines[k]
        if not line.strip() or line.startswith("#"):
            lead.append(line)
            k += 1
            continue
        if k + 1 >= len(lines) or lines[k + 1] != "----":
            raise ValueError(f"line {k + 1}: expected '----' after {line!r}")
        k += 2
        expected = []
        while k < len(lines) and lines[k].strip():
            expected.append(lines[k])
            k += 1
        blocks.append((lead, line, expected))
        lead = []
    return blocks, lead


def run_file(path: Path) -> None:
    """Run a golden script; on a difference raise AssertionError (or rewrite the file when
    ``EMBER_REWRITE_GOLDEN=1``)."""
    env = Env()
    rewrite = os.environ.get("EMBER_REWRITE_GOLDEN") == "1"
    blocks, tail = _parse(path.read_text())
    out: list[str] = []
    for lead, cmd, expected in blocks:
        actual = env.run(cmd).split("\n")
        if actual != expected and not rewrite:
            raise AssertionError(
                f"{path.name}: {cmd!r} gave\n"
                + "\n".join(actual)
                + "\n--- but the golden file expects\n"
                + "\n".join(expected)
                + "\n(EMBER_REWRITE_GOLDEN=1 rewrites it after an intended change)"
            )
        out += [*lead, cmd, "----", *actual]
    if rewrite:
        path.write_text("\n".join(out + tail) + "\n")
