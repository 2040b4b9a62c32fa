"""The asyncio shell of one Raft member: it drives a :class:`RawNode` with a tick timer,
persists each ``Ready`` with one ``storage.save`` before sending its messages, applies committed
entries in order, resolves waiting writes and reads, and snapshots every so many entries.

Group commit falls out of the loop: proposals made while a save is under way (in a worker
thread, for durable storage) all go into the next ``Ready``, hence the next single save.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import UsageError
from ..observability import Histogram
from ._cluster_config import ClusterConfig
from ._cluster_errors import ChangePending, NoLeader, NotLeader, OutcomeUnknown
from ._errors import ProposalDropped
from ._messages import ConfChange, Message, MsgType, Ready, Role, decode_conf_change
from ._rawnode import RawNode
from ._replica import Outcome, Replica
from ._types import ConfState, EntryType, HardState, LogStorage, Snapshot

__all__ = ["RaftMember"]

log = logging.getLogger("ember.consensus")

INLINE_SAVE_ENTRIES = 8
"""A save of at most this many entries runs on the loop even for durable storage: the two
hand-offs to a worker thread cost more (~0.1 ms per write at one writer) than the loop gains by
stepping messages during such a small fsync. Larger batches are saved in a worker thread, and so
is every save of a member whose node runs another member of its group (a test or a one-node
cluster): inline, their fsyncs would take turns on the loop, each write paying for them in a row,
where in threads they overlap as the members' fsyncs on separate nodes do."""


class _LeaderChanged(Exception):
    """A read index request was lost to a leader change; the read retries."""


def save_histogram() -> Histogram:
    """An empty histogram of save (write and fsync) durations."""
    return Histogram(
        "ember_raft_save_duration_seconds", "Time a durable save of the log (write and fsync) took."
    )


class RaftMember:
    """One member ``member_id`` of group ``group``, on ``storage`` (bootstrapped or empty),
    applying to ``replica``. ``send(msg)`` hands a message to the network and may raise
    (``QueueFull``, ``NoRoute``...): the peer is then reported unreachable. ``save_in_thread``
    runs large saves (over :data:`INLINE_SAVE_ENTRIES` entries, or a snapshot) and compactions
    in a worker thread (durable storage), so the loop keeps stepping messages during the fsync;
    all saves when ``crowded()`` says another member of the group shares this loop.
    ``on_conf(member, change)`` is told of every applied membership change."""

    def __init__(
        self,
        group: str,
        member_id: str,
        storage: LogStorage,
        replica: Replica,
        *,
        config: ClusterConfig,
        send: Callable[[Message], None],
        save_in_thread: bool = False,
        crowded: Callable[[], bool] | None = None,
        rng: random.Random | None = None,
        on_conf: Callable[[RaftMember, ConfChange], None] | None = None,
        is_failed: Callable[[str], bool] | None = None,
    ) -> None:
        self.group = group
        self.id = member_id
        self.storage = storage
        self.replica = replica
        self.config = config
        self._send = send
        self._save_in_thread = save_in_thread
        self._crowded = crowded
        self._on_conf = on_conf
        self._is_failed = is_failed or (lambda _member: False)
        snap = storage.snapshot()
        if snap.data:
            replica.restore(snap.data)
        self.applied = snap.meta.index
        self._snap_index = snap.meta.index
        self.node = RawNode(config.raft_config(member_id), storage, rng or random.Random())
        self.conf: ConfState = storage.initial_state()[1]
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.removed = False
        self.elections = 0
        """Times this member became leader (a steady group under load adds none)."""
        self.saves = 0
        self.save_seconds = save_histogram()
        """Wall time of every save (the fsync latency, for the metrics)."""
        self.snapshot_bytes = 0
        """Size of the state in the latest snapshot taken here."""
        self._deferred: HardState | None = None
        self.save_gate: Callable[[], Awaitable[None]] | None = None
        """Awaited before each save when set (a node started for chaos: a slow or failing
        disk, see ``RaftHost``); it may raise :class:`StorageError`."""
        self._pending: dict[int, tuple[int, asyncio.Future[Outcome]]] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._applied_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._leader_waiters: list[asyncio.Future[None]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Future[None] | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ticks = 0
        self._compaction: asyncio.Future[None] | None = None
        self._compaction_error: BaseException | None = None
        self.failure: BaseException | None = None

    # --- life cycle ---

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"raft {self.group}/{self.id}")
        self._task.add_done_callback(self._ended)
        self._next_tick = loop.time() + self.config.tick_interval
        self._tick_handle = loop.call_at(self._next_tick, self._on_tick)

    async def stop(self) -> None:
        """Stop driving the core: pending writes fail with :class:`OutcomeUnknown`; the latest
        hard state is saved; the storage is closed."""
        self._stopping = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._notify()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._compaction is not None:
            await asyncio.gather(self._compaction, return_exceptions=True)
        if self._compaction_error is not None and self.failure is None:
            # It failed after the loop ended: say so, and do not write to the failed store.
            self.failure = self._compaction_error
            log.error(
                "raft member %s/%s: compaction failed", self.group, self.id, exc_info=self.failure
            )
        self._fail_all(OutcomeUnknown(None, f"member {self.id} stopped"))
        try:
            if self._deferred is not None and self.failure is None:
                self.storage.save(self._deferred, ())
        finally:
            self.storage.close()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.error("raft member %s/%s failed", self.group, self.id, exc_info=self.failure)
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            self._fail_all(OutcomeUnknown(None, f"member {self.id} failed: {self.failure!r}"))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # --- input ---

    def step(self, msg: Message) -> None:
        if self.running:
            self.node.step(msg)
            self._notify()

    def _on_tick(self) -> None:
        loop = asyncio.get_running_loop()
        self.node.tick()
        self._ticks += 1
        if self.role == Role.LEADER and self._ticks % self.config.election_tick == 0:
            self._manage_membership()
        self._notify()
        self._next_tick += self.config.tick_interval
        now = loop.time()
        if self._next_tick < now:  # the loop stalled: do not tick in a burst to catch up
            self._next_tick = now + self.config.tick_interval
        self._tick_handle = loop.call_at(self._next_tick, self._on_tick)

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    # --- the loop ---

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        node = self.node
        while not self._stopping:
            if self._compaction_error is not None:
                raise self._compaction_error
            if not node.has_ready():
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
                continue
            await self._handle(node.ready())

    async def _handle(self, rd: Ready) -> None:
        node = self.node
        if rd.soft_state is not None:
            self._role_changed(rd.soft_state.role, rd.soft_state.leader)
        if rd.early_messages:
            # The leader's appends go out while it saves them (thesis §10.2.1). The transport
            # writes at the end of this loop iteration, so yield once before a durable save
            # that blocks the loop (one in a thread overlaps anyway; memory costs nothing).
            self._send_all(rd.early_messages)
            if rd.entries and self._save_in_thread and not self._threaded(rd):
                await asyncio.sleep(0)
        await self._persist(rd)
        if rd.snapshot is not None and rd.snapshot.meta.index > self.applied:
            self.replica.restore(rd.snapshot.data)
            self.applied = self._snap_index = rd.snapshot.meta.index
            self.conf = rd.snapshot.meta.conf
        self._send_all(rd.messages)
        for e in rd.committed_entries:
            outcome: Outcome | None = None
            if e.type == EntryType.CONF_CHANGE:
                change = decode_conf_change(e.data)
                self.conf = node.apply_conf_change(change)
                outcome = (True, None)
                if change.op == "remove" and change.node == self.id:
                    self.removed = True
                if self._on_conf is not None:
                    self._on_conf(self, change)
            elif e.data:
                outcome = self.replica.apply(e.data, e.index)
            self.applied = e.index
            waiter = self._pending.pop(e.index, None)
            if waiter is not None and not waiter[1].done():
                if waiter[0] == e.term and outcome is not None:
                    waiter[1].set_result(outcome)
                else:
                    waiter[1].set_exception(OutcomeUnknown(None, "overwritten by a new leader"))
        for rs in rd.read_states:
            fut = self._reads.pop(rs.context, None)
            if fut is not None and not fut.done():
                fut.set_result(rs.index)
        waiters = self._applied_waiters
        while waiters and waiters[0][0] <= self.applied:
            fut_a = heapq.heappop(waiters)[2]
            if not fut_a.done():
                fut_a.set_result(None)
        node.advance(rd)
        if (
            self.applied - self._snap_index >= self.config.snapshot_every
            and self._compaction is None
        ):
            self._compact()
        if self.removed:
            self._stopping = True

    def _send_all(self, msgs: tuple[Message, ...]) -> None:
        node = self.node
        for msg in msgs:
            try:
                self._send(msg)
            except Exception as exc:  # any send failure means "not delivered"
                log.debug("raft %s: cannot send %s to %s: %r", self.group, msg.type, msg.to, exc)
                node.report_unreachable(msg.to)
                if msg.type == MsgType.SNAP:
                    node.report_snapshot(msg.to, False)

    def _threaded(self, rd: Ready) -> bool:
        """Whether ``rd`` is saved in a worker thread (large batches, snapshots, and every save
        of a member whose group has another member on this loop)."""
        return self._save_in_thread and (
            len(rd.entries) > INLINE_SAVE_ENTRIES
            or rd.snapshot is not None
            or (self._crowded is not None and self._crowded())
        )

    async def _persist(self, rd: Ready) -> None:
        hard = rd.hard_state
        if not (rd.entries or rd.snapshot is not None or rd.must_sync):
            # Only the commit index moved: it need not be durable (a restarted member learns
            # it again), so it rides along with the next save instead of costing an fsync.
            if hard is not None:
                self._deferred = hard
            return
        if self.save_gate is not None:
            await self.save_gate()
        hard = hard or self._deferred
        self._deferred = None
        self.saves += 1
        t0 = time.perf_counter()  # the real time of the fsync, whatever the loop's clock
        if self._threaded(rd):
            await asyncio.to_thread(self.storage.save, hard, rd.entries, rd.snapshot)
        else:
            self.storage.save(hard, rd.entries, rd.snapshot)
        self.save_seconds.observe(time.perf_counter() - t0)

    def _compact(self) -> None:
        """Snapshot the state machine at the applied index and compact the log behind it. The
        state is packed here, on the loop, where it is consistent; with durable storage the
        snapshot file and the compaction are written in a worker thread while the member goes
        on stepping, saving and applying (one compaction at a time)."""
        meta = self.node.snapshot_meta(self.applied)
        snap = Snapshot(meta, self.replica.snapshot())
        self.snapshot_bytes = len(snap.data)
        self._snap_index = meta.index
        keep = self.config.compaction_keep
        if not self._save_in_thread:
            self.storage.compact(snap, keep)
            return
        self._compaction = asyncio.ensure_future(
            asyncio.to_thread(self.storage.compact, snap, keep)
        )
        self._compaction.add_done_callback(self._compacted)

    def _compacted(self, fut: asyncio.Future[None]) -> None:
        self._compaction = None
        if not fut.cancelled() and fut.exception() is not None:
            self._compaction_error = fut.exception()
            self._notify()

    def _role_changed(self, role: Role, leader: str | None) -> None:
        was_leader = self.role == Role.LEADER
        if role == Role.LEADER and not was_leader:
            self.elections += 1
        leader_changed = leader != self.leader
        self.role, self.leader = role, leader
        if was_leader and role != Role.LEADER:
            for _, fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(OutcomeUnknown(None, f"{self.id} lost leadership"))
            self._pending.clear()
        if leader_changed:
            for fut_r in self._reads.values():
                if not fut_r.done():
                    fut_r.set_exception(_LeaderChanged())
            self._reads.clear()
        if leader is not None:
            for fut_l in self._leader_waiters:
                if not fut_l.done():
                    fut_l.set_result(None)
            self._leader_waiters.clear()

    def _fail_all(self, exc: Exception) -> None:
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        for fut_r in self._reads.values():
            if not fut_r.done():
                fut_r.set_exception(NoLeader(f"member {self.id} stopped"))
        self._reads.clear()
        for fut_l in self._leader_waiters:
            if not fut_l.done():
                fut_l.set_exception(NoLeader(f"member {self.id} stopped"))
        self._leader_waiters.clear()
        for _, _, fut_a in self._applied_waiters:
            if not fut_a.done():
                fut_a.set_exception(NoLeader(f"member {self.id} stopped"))
        self._applied_waiters.clear()

    def _check_running(self) -> None:
        if not self.running:
            raise NoLeader(f"member {self.id} of {self.group} is not running")

    # --- requests (callers bound them with asyncio.timeout) ---

    async def wait_for_leader(self) -> str:
        """The leader's id, once one is known."""
        while self.leader is None:
            self._check_running()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._leader_waiters.append(fut)
            await fut
        return self.leader

    async def propose(self, data: bytes) -> Outcome:
        """Propose ``data`` (an encoded command) as leader; returns its outcome once applied.
        Raises :class:`NotLeader` / :class:`NoLeader` when nothing was proposed, and
        :class:`OutcomeUnknown` when leadership was lost after proposing."""
        self._check_running()
        while True:
            if self.role != Role.LEADER:
                raise NotLeader(self.leader) if self.leader else NoLeader(self.group)
            try:
                index = self.node.propose(data)
                break
            except ProposalDropped as exc:
                if exc.reason not in ("uncommitted_limit", "transferring"):
                    raise NotLeader(exc.leader) if exc.leader else NoLeader(str(exc)) from exc
                await self.wait_applied(self.applied + 1)  # back-pressure: let commits drain
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[index] = (self.node.raft.term, fut)
        self._notify()
        return await fut

    async def propose_conf_change(self, change: ConfChange) -> None:
        """Propose one membership change as leader; returns once it is applied here."""
        self._check_running()
        if self.role != Role.LEADER:
            raise NotLeader(self.leader) if self.leader else NoLeader(self.group)
        try:
            index = self.node.propose_conf_change(change)
        except ProposalDropped as exc:
            if exc.reason == "not_leader":
                raise NotLeader(exc.leader) from exc
            if exc.reason == "invalid_conf_change":
                raise UsageError(f"{change.op} {change.node}: {exc.detail}") from exc
            if exc.reason == "removed":
                raise NoLeader(f"{self.id} was removed from {self.group}") from exc
            raise ChangePending(change.op, change.node, exc.reason) from exc
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[index] = (self.node.raft.term, fut)
        self._notify()
        await fut

    async def read_index(self) -> None:
        """Return once this member's state machine may serve a linearizable read (ReadIndex,
        thesis §6.4: the leader's commit index as of now, confirmed, then applied here)."""
        while True:
            self._check_running()
            if self.leader is None:
                await self.wait_for_leader()
            ctx = f"{self.id}:{next(self._seq)}".encode()
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            try:
                self.node.read_index(ctx)
            except ProposalDropped:
                await self.wait_for_leader()
                continue
            self._reads[ctx] = fut
            self._notify()
            try:
                index = await fut
            except _LeaderChanged:
                continue
            finally:
                self._reads.pop(ctx, None)
            await self.wait_applied(index)
            return

    async def wait_applied(self, index: int) -> None:
        """Return once entries up to ``index`` are applied here."""
        if self.applied >= index:
            return
        self._check_running()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._applied_waiters, (index, next(self._seq), fut))
        await fut

    def transfer_leadership(self, to: str) -> None:
        self._check_running()
        try:
            self.node.transfer_leader(to)
        except ProposalDropped as exc:  # no leader known to forward to
            raise NoLeader(f"{self.id} knows no leader of {self.group}") from exc
        self._notify()

    # --- membership policy (leader only) ---

    def _manage_membership(self) -> None:
        """Promote a caught-up learner while voters are under the cap; replace a failed voter
        by a caught-up learner (demote the voter first: one change at a time). The demoted
        member stays a learner: back up, it catches up and is the next replacement."""
        raft = self.node.raft
        if raft.pending_conf_index > raft.log.applied:
            return
        status = self.node.status()
        voters, learners = status.conf.voters, status.conf.learners
        ready = [
            m
            for m in learners
            if m in status.progress
            and status.progress[m].lag <= self.config.catchup_lag
            and not self._is_failed(m)
        ]
        if not ready:
            return
        change: ConfChange | None = None
        if len(voters) < self.config.max_voters:
            change = ConfChange("promote", ready[0])
        else:
            failed = [v for v in voters if v != self.id and self._is_failed(v)]
            if failed:
                change = ConfChange("demote", failed[0])
        if change is not None:
            try:
                self.node.propose_conf_change(change)
                log.info("raft %s: %s %s", self.group, change.op, change.node)
            except ProposalDropped:
                pass

    # --- inspection ---

    def status(self) -> dict[str, Any]:
        """Role, term, commit and applied index, leader, membership and (leader) peers'
        progress, as plain data."""
        st = self.node.status()
        return {
            "group": self.group,
            "id": self.id,
            "role": str(st.role),
            "term": st.term,
            "leader": st.leader,
            "commit": st.commit,
            "applied": self.applied,
            "last_index": st.last_index,
            "voters": list(st.conf.voters),
            "learners": list(st.conf.learners),
            "elections": self.elections,
            "saves": self.saves,
            "duplicates": self.replica.duplicates,
            "sessions": len(self.replica.sessions),
            "progress": {
                peer: {
                    "match": p.match,
                    "next": p.next,
                    "state": p.state,
                    "learner": p.is_learner,
                    "active": p.recent_active,
                    "lag": p.lag,
                    "inflight_msgs": p.inflight_msgs,
                    "inflight_bytes": p.inflight_bytes,
                }
                for peer, p in st.progress.items()
            },
        }
