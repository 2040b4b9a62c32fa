"""The consistent tier: names held by the system Raft group ``ember.names``.

**Formation.** A node that can vote publishes it in its mesh metadata (:data:`META_KEY`:
``"0"``, or ``"1"`` once it hosts a member; ``Membership.set_meta_entry``). When ``expect`` such
nodes are alive and the view has not changed for ``formation_settle``
seconds, the smallest-named of them (the coordinator) asks the
``expect`` smallest to promise to found a group with it; a node promises to one coordinator at
a time, never to one while it knows a smaller candidate, and never once it hosts a member. With
every promise in, the founders bootstrap the same membership. Two founding attempts that share a
node cannot both get their promises, so all nodes starting at once form one group. Nodes that
come later are added as learners by the leader's node (the voter-cap policy then promotes
them); a node that runs no member (``member=False``, a client) registers through the others
and keeps its cache from a member's stream of changes.

**Registrations** are Raft writes made on the pid's node, by group commit (:mod:`._group_commit`:
what is asked while this node's previous write is in flight goes in one ``batch`` entry);
the token is ``index * 2**16 + position`` of the registration in its entry. Each
member's applied state is its cache. Every node watches its own registered processes (as the
applied state shows them) and releases the names of those that exit, retrying until the write
commits (so a process that died while its node was cut off is released on reconnect). The
leader's node releases a node's names in one entry when the mesh declares it failed or it
left, and a node that restarts releases those of its earlier incarnations.

REGISTRY frames of this tier: ``[CONSISTENT, "c", index, changes]``, a member's push of applied
changes to a subscribed client (``changes``: msgpack of ``[name, pid | None, meta, token]``
rows), and
``[CONSISTENT, "s", status, reply]``, a node's status (``"0"``, ``"1"``, or ``"-"`` for a node
that cannot vote), answered with the receiver's own when ``reply`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, NameTaken, UnknownName, UsageError
from .._services import send_to_node
from .._tasks import OwnedTasks
from ..actors import Pid
from ..consensus._cluster import Cluster
from ..consensus._cluster_errors import (
    ClusterError,
    NoLeader,
    NotLeader,
    OutcomeUnknown,
    WriteTimeout,
)
from ..consensus._messages import Role
from ..consensus._types import ConfState
from ..mesh._messages import MemberStatus
from ..transport._frame import Channel
from ..transport._queue import NoRoute, QueueFull
from ._config import SYSTEM_GROUP, RegistryConfig
from ._errors import TierUnavailable
from ._group_commit import GroupCommit
from ._names_sm import (
    REGISTER,
    UNREGISTER,
    Entry,
    NamesStateMachine,
    index_of,
    last_token,
    name_from_wire,
    pid_from_wire,
    pid_to_wire,
)

if TYPE_CHECKING:
    from ..consensus._host import RaftHost
    from ..consensus._shell import RaftMember
    from ._names import Names, Policy, Registration

__all__ = ["CONSISTENT", "META_KEY", "ConsistentStatistics", "ConsistentTier"]

log = logging.getLogger("ember.registry.consistent")

CONSISTENT = 4
"""REGISTRY frame kind of this tier."""
META_KEY = "ember.names"
"""Mesh metadata: ``"0"`` a node that can vote, ``"1"`` one that hosts a member."""
SM_REF = "ember.registry._names_sm:NamesStateMachine"
_TICK = 0.1
_PROMISE_TTL = 10.0
_ABSENT_GRACE = 10.0
"""Seconds after start before the leader's node counts a node it never saw as gone (its view of
the mesh is still filling in)."""
_ALIVE = (MemberStatus.ALIVE, MemberStatus.SUSPECT)


@dataclass(slots=True)
class ConsistentStatistics:
    """Counters of the consistent tier on one node."""

    registered: int = 0
    unregistered: int = 0
    released: int = 0
    """Names of local processes that exited, released through Raft."""
    release_writes: int = 0
    node_releases: int = 0
    """Entries that released a failed or departed node's names (one per node)."""
    formations: int = 0
    """Founding rounds this node coordinated."""
    learners_added: int = 0
    pushes_sent: int = 0
    resubscribes: int = 0
    batch_writes: int = 0
    """Entries of registrations and unregistrations this node proposed (group commit)."""
    batched: int = 0
    """Registrations and unregistrations those entries carried."""
    largest_batch: int = 0
    queue_full: int = 0
    """Registrations and unregistrations refused: the group commit queue was full."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Promise:
    __slots__ = ("coordinator", "epoch", "founders", "until")

    def __init__(self, coordinator: str, epoch: int, founders: tuple[str, ...], until: float):
        self.coordinator = coordinator
        self.epoch = epoch
        self.founders = founders
        self.until = until


def founders_for(me: str, candidates: set[str], expect: int) -> tuple[str, ...] | None:
    """The founders ``me`` proposes, if it is the one to coordinate: the ``expect`` smallest of
    ``candidates`` (alive nodes that can vote, ``me`` among them) when ``me`` is the smallest."""
    ordered = sorted(candidates)
    if len(ordered) < expect or ordered[0] != me:
        return None
    return tuple(ordered[:expect])


class ConsistentTier:
    """The consistent tier of one node's registry (see the module docstring)."""

    def __init__(self, registry: Names, config: RegistryConfig) -> None:
        self.registry = registry
        self.node = registry.node
        self.config = config
        self.stats = ConsistentStatistics()
        self.sm: NamesStateMachine | None = None
        """The local member's state machine, once this node hosts one."""
        self.cache: dict[Any, Entry] = {}
        """Consistent names as this node knows them (the state machine's map on a member)."""
        self._apply_waiters: list[tuple[int, asyncio.Future[None]]] = []
        """Registrations made here waiting for this node's member to apply their entry
        (by its index)."""
        self.cluster: Cluster | None = None
        self._cluster_nodes: tuple[str, ...] = ()
        self._tasks = OwnedTasks(log, "consistent registry task")
        self._rng = random.Random(self.node.rng.getrandbits(64))
        self._unsubscribe: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._watches: dict[Pid, tuple[Any, set[Any]]] = {}
        self._releases: set[Pid] = set()
        self._releasing = False
        self._promise: _Promise | None = None
        self._epoch = 0
        self._view: tuple[str, ...] = ()
        self._view_since = 0.0
        self._subscribers: set[str] = set()
        self._outgoing: list[tuple[Any, Entry | None, Entry | None]] = []
        self._push_handle: asyncio.Handle | None = None
        self._source: str | None = None
        """The member node a client's cache follows."""
        self._source_index = 0
        self._released_nodes: dict[str, int] = {}
        self._failed_at: dict[str, int] = {}
        """Nodes seen gone by this leader's node -> the applied index then."""
        self._stale_checked = False
        self._announced: str | None = None
        self._group_cache: tuple[bool, tuple[str, ...]] | None = None
        self._started = 0.0
        self._host: RaftHost | None = None
        self._member_key = (SYSTEM_GROUP, self.node.name)
        self._commit = GroupCommit(
            self._write,
            self._tasks,
            self.stats,
            batch_limit=config.batch_limit,
            batch_bytes=config.group.max_command_bytes // 2,
            queue_limit=config.batch_queue,
            in_flight=config.batches_in_flight,
        )

    @property
    def host(self) -> RaftHost:
        host: RaftHost = self.node.service("raft")
        return host

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        rpc = self.registry.rpc
        rpc.handlers["cn_promise"] = self._serve_promise
        rpc.handlers["cn_abandon"] = self._serve_abandon
        rpc.handlers["cn_found"] = self._serve_found
        rpc.handlers["cn_subscribe"] = self._serve_subscribe
        self.registry.frame_handlers[CONSISTENT] = self._on_frame
        self.registry.fence_check = self.fence_ok
        node = self.node
        if node.mesh is not None:
            self._unsubscribe.append(node.on_member_event(self._on_member))
        if node.dist is not None:
            self._unsubscribe.append(node.dist.add_node_listener(self._on_node))
        self._started = asyncio.get_running_loop().time()
        self._adopt_member()
        self._announce()
        if node.transport is not None or self.config.expect == 1 or self._member() is not None:
            # A node alone (no transport) forms no group unless it is to be one by itself:
            # no background ticks then (they would move a virtual clock under a test).
            self._tasks.spawn(self._run())

    async def stop(self) -> None:
        for remove in self._unsubscribe:
            remove()
        self._unsubscribe.clear()
        await self._tasks.cancel_all()
        self._commit.fail_all(TierUnavailable("consistent", f"{self.node.name} is stopping"))
        self.registry.frame_handlers.pop(CONSISTENT, None)
        self.registry.fence_check = None
        if self.sm is not None:
            self.sm.listener = None
        kernel = self.node.kernel
        for handle, _ in self._watches.values():
            kernel.unwatch(handle)
        self._watches.clear()

    # -- the tier ---------------------------------------------------------------------------

    async def register(
        self, name: Any, pid: Pid, meta: Any, policy: Policy | None, within: float
    ) -> int | None:
        item = [REGISTER, name, pid_to_wire(pid), meta]
        try:
            size = len(msgpack.packb(item))  # the name is checked already: the meta is not
        except (TypeError, ValueError) as exc:
            raise UsageError(f"the meta of a consistent name must be plain data: {exc}") from exc
        if pid not in self._watches and not self.node.kernel.is_alive(pid):
            from .._errors import NoProc

            raise NoProc(pid)
        result = await self._commit.submit(item, size, within)
        if result.__class__ is not int:
            if result.__class__ is list:
                raise NameTaken(name, pid_from_wire(result))
            raise UsageError(f"the system group refused registering {name!r}: {result}")
        self.stats.registered += 1
        token: int = result  # the process is watched once this node sees it hold the name
        await self._see_own_write(name, (pid, meta, token), within)
        return token

    async def _see_own_write(self, name: Any, entry: Entry, within: float) -> None:
        """Read your writes: once ``register`` returns, this node's cached ``whereis`` shows
        it. A client takes the entry into its cache at once (a later push older than the
        token leaves it alone); a member waits, within ``within``, for its own apply."""
        token = entry[2]
        member = self._member()
        if member is None:
            old = self.cache.get(name)
            if old is None or old[2] < token:
                self.cache[name] = entry
                self._changed([(name, old, entry)])
            return
        index = index_of(token)
        if member.applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._apply_waiters.append((index, fut))
        try:
            async with asyncio.timeout(within):
                await fut
        except TimeoutError:
            pass  # applied later; the write itself succeeded
        finally:
            if not fut.done():
                fut.cancel()

    async def unregister(self, name: Any, within: float) -> None:
        item = [UNREGISTER, name]
        result = await self._commit.submit(item, len(msgpack.packb(item)), within)
        if result is not True:
            if result is False:
                raise UnknownName(name)
            raise UsageError(f"the system group refused unregistering {name!r}: {result}")
        self.stats.unregistered += 1

    def lookup(self, name: Any) -> Registration | None:
        entry = self.cache.get(name)
        if entry is None:
            return None
        from ._names import Registration

        return Registration(name, entry[0], "consistent", entry[1], entry[2])

    async def lookup_linearizable(self, name: Any) -> Registration | None:
        from ._names import Registration

        cluster = self._cluster()
        try:
            row = await cluster.read(name, timeout=self.config.request_timeout)
        except (ClusterError, TimeoutError) as exc:
            raise TierUnavailable("consistent", f"no linearizable read: {exc}") from exc
        if row is None:
            return None
        pid, meta, token = row
        return Registration(name, pid_from_wire(pid), "consistent", meta, token)

    def names(self) -> list[Any]:
        return list(self.cache)

    def fence_ok(self, name: Any, pid: Pid, token: int) -> bool:
        """Whether local ``pid`` holds ``name`` at exactly ``token`` as this node sees it."""
        entry = self.cache.get(name)
        return entry is not None and entry[0] == pid and entry[2] == token

    def statistics(self) -> dict[str, Any]:
        out: dict[str, Any] = self.stats.as_dict()
        member = self._member()
        out["names"] = len(self.cache)
        out["member"] = member.id if member is not None else None
        out["role"] = str(member.role) if member is not None else "client"
        out["leader"] = member.leader if member is not None else None
        out["applied"] = member.applied if member is not None else self._source_index
        out["group_nodes"] = list(self._group_nodes())
        out["pending_releases"] = len(self._releases)
        return out

    # -- writes -----------------------------------------------------------------------------

    def _cluster(self) -> Cluster:
        nodes = self._group_nodes()
        if not nodes:
            seen = len(self._candidates())
            raise TierUnavailable(
                "consistent",
                f"the system group {SYSTEM_GROUP} is not formed yet "
                f"({seen} of {self.config.expect} expected voters in view)",
            )
        if self.cluster is None or nodes != self._cluster_nodes:
            cluster = Cluster.connect(
                SYSTEM_GROUP,
                list(nodes),
                node=self.node,
                client_id=f"{self.node.name}/{self.node.creation}/names",
            )
            if self.cluster is not None:
                cluster._leader = self.cluster._leader
            self.cluster, self._cluster_nodes = cluster, nodes
        return self.cluster

    async def _write(self, cmd: dict[str, Any], within: float) -> Any:
        cluster = self._cluster()
        try:
            return await cluster.write(cmd, timeout=within)
        except (NoLeader, NotLeader) as exc:
            raise TierUnavailable("consistent", f"no leader: {exc}") from exc
        except WriteTimeout as exc:
            raise OutcomeUnknown(exc.request_id, str(exc)) from exc

    # -- local processes --------------------------------------------------------------------

    def _watch(self, pid: Pid, name: Any) -> None:
        entry = self._watches.get(pid)
        if entry is None:
            handle = self.node.kernel.watch(pid, self._exited)
            if handle is None:
                self._release(pid)
                return
            entry = self._watches[pid] = (handle, set())
        entry[1].add(name)

    def _unwatch(self, pid: Pid, name: Any) -> None:
        entry = self._watches.get(pid)
        if entry is None:
            return
        entry[1].discard(name)
        if not entry[1]:
            del self._watches[pid]
            self.node.kernel.unwatch(entry[0])

    def _exited(self, pid: Pid, _reason: Any) -> None:
        if self._watches.pop(pid, None) is not None:
            self._release(pid)

    def _release(self, pid: Pid) -> None:
        self._releases.add(pid)
        if not self._releasing:
            self._releasing = True
            self._tasks.spawn(self._flush_releases())

    async def _flush_releases(self) -> None:
        """Release the names of exited local processes, in one write per batch, retrying
        until it commits (the node may be cut off from the group for a while)."""
        pause = 0.05
        try:
            while self._releases:
                batch = sorted(self._releases)
                try:
                    done = await self._write(
                        {"op": "release", "pids": [pid_to_wire(p) for p in batch]},
                        self.config.request_timeout,
                    )
                except (EmberError, TimeoutError) as exc:
                    log.debug("releasing %d pids: %r (retrying)", len(batch), exc)
                    await asyncio.sleep(pause * (0.5 + self._rng.random()))
                    pause = min(pause * 2, 2.0)
                    continue
                self._releases.difference_update(batch)
                self.stats.released += done
                self.stats.release_writes += 1
                pause = 0.05
        finally:
            self._releasing = False

    # -- applied state ----------------------------------------------------------------------

    def _on_applied(self, changes: list[tuple[Any, Entry | None, Entry | None]] | None) -> None:
        """The local member applied a command (``None``: it restored a snapshot)."""
        if changes is None:
            assert self.sm is not None
            old = self.cache
            self.cache = self.sm.names
            changes = [
                (n, old.get(n), self.cache.get(n))
                for n in set(old) | set(self.cache)
                if old.get(n) != self.cache.get(n)
            ]
        self._changed(changes)
        if self._subscribers:
            self._push(changes)
        if self._apply_waiters:
            member = self._member()
            applied = member.applied if member is not None else 0
            waiting = []
            for index, fut in self._apply_waiters:
                if fut.done():
                    continue
                if index <= applied:
                    fut.set_result(None)
                else:
                    waiting.append((index, fut))
            self._apply_waiters = waiting

    def _changed(self, changes: list[tuple[Any, Entry | None, Entry | None]]) -> None:
        # On every member's apply path and a client's push path: no objects made for a
        # change nobody watches.
        me, creation, registry = self.node.name, self.node.creation, self.registry
        watching = registry.watching()
        for name, old, new in changes:
            if old is not None and old[0].node == me and (new is None or new[0] != old[0]):
                self._unwatch(old[0], name)
            if new is not None and new[0].node == me and new[0].creation == creation:
                self._watch(new[0], name)
            if watching and registry.watched("consistent", name):
                from ._names import Registration

                reg = (
                    None
                    if new is None
                    else Registration(name, new[0], "consistent", new[1], new[2])
                )
                registry._changed("consistent", name, reg)

    # -- members, formation, the leader's chores --------------------------------------------

    def _member(self) -> RaftMember | None:
        host = self._host
        if host is None:
            host = self._host = self.node.service("raft")
            if host is None:
                return None
        member: RaftMember | None = host.members.get(self._member_key)
        return member if member is not None and member.running else None

    def _adopt_member(self) -> bool:
        """Attach to the local member if one runs (created here, by the leader, or from disk)."""
        member = self._member()
        if member is None:
            return False
        sm = member.replica.state_machine
        if sm is self.sm:
            return True
        assert isinstance(sm, NamesStateMachine)
        self.sm = sm
        old = self.cache
        self.cache = sm.names
        sm.listener = self._on_applied
        self._source = None
        changes = [
            (n, old.get(n), sm.names.get(n))
            for n in set(old) | set(sm.names)
            if old.get(n) != sm.names.get(n)
        ]
        self._changed(changes)
        for name, (pid, _, _) in list(sm.names.items()):
            if pid.node == self.node.name and pid.creation == self.node.creation:
                self._watch(pid, name)
        self._announce()
        return True

    def _meta_value(self, member: Any) -> str | None:
        """What ``member`` publishes of itself (:data:`META_KEY`): ``"0"``, ``"1"`` or None."""
        value = member.meta.get(META_KEY)
        return value if isinstance(value, str) else None

    def _announce(self) -> None:
        """Publish this node's status in its mesh metadata when it changed (a client, which
        cannot vote, publishes nothing)."""
        mesh = self.node.mesh
        if mesh is None or not self.config.member:
            return
        want = "1" if self._member() is not None else "0"
        if want == self._announced:
            return
        mesh.set_meta_entry(META_KEY, want)
        self._announced = want

    def _alive(self) -> list[Any]:
        return [m for m in self.node.members() if m.status in _ALIVE]

    def _candidates(self) -> set[str]:
        """Alive nodes that can vote (this one included, if it can)."""
        out = {m.name for m in self._alive() if self._meta_value(m) in ("0", "1")}
        if self.config.member:
            out.add(self.node.name)
        return out

    def _group_nodes(self) -> tuple[str, ...]:
        """Alive nodes that host a member of the group (this one among them, if it does);
        recomputed when a member event or a status frame may have changed it."""
        cached = self._group_cache
        if cached is not None and (self._member() is not None) == cached[0]:
            return cached[1]
        out = {m.name for m in self._alive() if self._meta_value(m) == "1"}
        member = self._member() is not None
        if member:
            out.add(self.node.name)
        nodes = tuple(sorted(out))
        self._group_cache = (member, nodes)
        return nodes

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(_TICK):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._step(loop.time())
            except (EmberError, TimeoutError) as exc:
                log.debug("consistent tier: %r", exc)

    async def _step(self, now: float) -> None:
        self._adopt_member()
        self._announce()
        member = self._member()
        if member is None:
            if self.config.member:
                await self._form(now)
            if self._member() is None and self._group_nodes():
                await self._follow()
            return
        if not self._stale_checked:
            await self._release_stale()
        if member.role == Role.LEADER:
            await self._leader_chores(member)

    async def _form(self, now: float) -> None:
        promise = self._promise
        if promise is not None and now > promise.until:
            promise = self._promise = None
        if promise is not None:
            # A founder that got no "found" (its coordinator died) joins what was founded.
            if set(promise.founders) & set(self._group_nodes()):
                self._create(promise.founders)
            return
        if self._group_nodes():
            return
        if self.node.mesh is None:
            if self.config.expect == 1:
                self._create((self.node.name,))
            return
        view = tuple(sorted(self._candidates()))
        if view != self._view:
            self._view, self._view_since = view, now
            return
        if now - self._view_since < self.config.formation_settle:
            return
        founders = founders_for(self.node.name, set(view), self.config.expect)
        if founders is not None:
            await self._coordinate(founders)

    async def _coordinate(self, founders: tuple[str, ...]) -> None:
        self._epoch += 1
        epoch, me = self._epoch, self.node.name
        self.stats.formations += 1
        rpc, within = self.registry.rpc, self.config.request_timeout
        promised: list[str] = []
        try:
            for founder in founders:
                answer = await rpc.call(founder, "cn_promise", [me, epoch, list(founders)], within)
                if answer != "ok":
                    log.info("founding %s: %s answered %s", SYSTEM_GROUP, founder, answer)
                    raise TierUnavailable("consistent", f"{founder}: {answer}")
                promised.append(founder)
            for founder in founders:
                await rpc.call(founder, "cn_found", [me, epoch], within)
            log.info("founded %s with voters %s", SYSTEM_GROUP, ", ".join(founders))
        except (EmberError, TimeoutError):
            for founder in promised:
                try:
                    await rpc.call(founder, "cn_abandon", [me, epoch], within)
                except (EmberError, TimeoutError):
                    pass  # its promise expires
            await asyncio.sleep(self.config.formation_settle * self._rng.random())

    async def _serve_promise(self, coordinator: str, epoch: int, founders: list[str]) -> str:
        if self._member() is not None or self._group_nodes():
            return "exists"
        now = asyncio.get_running_loop().time()
        promise = self._promise
        if (
            promise is not None
            and now <= promise.until
            and ((promise.coordinator, promise.epoch) != (coordinator, epoch))
        ):
            return f"promised to {promise.coordinator}"
        smaller = [n for n in self._candidates() if n < coordinator]
        if smaller:
            return f"{min(smaller)} should coordinate"
        self._promise = _Promise(coordinator, epoch, tuple(founders), now + _PROMISE_TTL)
        return "ok"

    async def _serve_abandon(self, coordinator: str, epoch: int) -> None:
        promise = self._promise
        if promise is not None and (promise.coordinator, promise.epoch) == (coordinator, epoch):
            self._promise = None

    async def _serve_found(self, coordinator: str, epoch: int) -> None:
        if self._member() is not None:
            return
        promise = self._promise
        if promise is None or (promise.coordinator, promise.epoch) != (coordinator, epoch):
            raise UsageError(f"no promise to {coordinator} (epoch {epoch})")
        self._create(promise.founders)

    def _create(self, voters: tuple[str, ...] | None) -> None:
        """Start this node's member: a founder with ``voters``, or empty (None)."""
        group = self.config.group
        meta = {
            "group": SYSTEM_GROUP,
            "member": self.node.name,
            "ref": SM_REF,
            "config": group.as_dict(),
            "durable": "auto" if self.config.durable is None else self.config.durable,
        }
        bootstrap = ConfState(tuple(voters), ()) if voters is not None else None
        self.host.create_member(meta, bootstrap)
        self._promise = None
        self._adopt_member()
        self._wake.set()

    async def _follow(self) -> None:
        """No local member, but a group exists: a client follows a member's changes; a node
        that can vote and is in the group's membership (it lost its state) starts empty."""
        if self.config.member:
            try:
                status = await self._cluster().status(timeout=self.config.request_timeout)
            except (EmberError, TimeoutError):
                return
            if self.node.name in (*status["voters"], *status["learners"]):
                self._create(None)
                return
        if self._source is None or self._source not in self._group_nodes():
            await self._subscribe()
        if self._source is not None and not self._stale_checked:
            await self._release_stale()

    async def _release_stale(self) -> None:
        """Once: release the names of this node's earlier incarnations."""
        me, creation = self.node.name, self.node.creation
        if any(p.node == me and p.creation != creation for p, _, _ in self.cache.values()):
            await self._write(
                {"op": "release_stale", "node": me, "creation": creation},
                self.config.request_timeout,
            )
        self._stale_checked = True

    def _gone(self, nodes: set[str]) -> set[str]:
        """Of ``nodes``, those the mesh declared failed or left, or that it has not seen at
        all since this tier started at least :data:`_ABSENT_GRACE` seconds ago."""
        view = {m.name: m.status for m in self.node.members()}
        gone = {n for n in nodes if view.get(n) in (MemberStatus.FAILED, MemberStatus.LEFT)}
        now = asyncio.get_running_loop().time()
        if now - self._started >= _ABSENT_GRACE:
            gone |= {n for n in nodes if n not in view and n != self.node.name}
        return gone

    async def _leader_chores(self, member: RaftMember) -> None:
        """On the leader's node: release the names of nodes that failed or left (one entry
        per node), and add nodes that can vote as learners."""
        sm = self.sm
        if sm is None:
            return
        gone_nodes = self._gone(sm.nodes())
        for node in list(self._failed_at):
            if node not in gone_nodes:
                del self._failed_at[node]  # back (or its names are gone)
        for gone in sorted(gone_nodes):
            # Only what was registered before the failure was seen: a node that registers
            # after that is alive, whatever the view says.
            upto = self._failed_at.setdefault(gone, member.applied)
            if self._released_nodes.get(gone, -1) >= upto:
                continue
            await self._write(
                {"op": "release_node", "node": gone, "upto": last_token(upto)},
                self.config.request_timeout,
            )
            self._released_nodes[gone] = upto
            self.stats.node_releases += 1
        conf = member.conf
        known = {*conf.voters, *conf.learners}
        for m in self._alive():
            if self._meta_value(m) == "0" and m.name not in known:
                try:
                    await self._cluster().add_member(m.name, timeout=self.config.request_timeout)
                    self.stats.learners_added += 1
                except (EmberError, TimeoutError) as exc:
                    log.debug("adding %s to %s: %r", m.name, SYSTEM_GROUP, exc)

    # -- clients ----------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        nodes = [n for n in self._group_nodes() if n != self.node.name]
        if not nodes:
            return
        source = self._rng.choice(nodes)
        try:
            index, rows = await self.registry.rpc.call(
                source, "cn_subscribe", [self.node.name], self.config.request_timeout
            )
        except (EmberError, TimeoutError):
            return
        self.stats.resubscribes += 1
        old = self.cache
        self.cache = {}
        for name, pid, meta, token in rows:
            self.cache[name_from_wire(name)] = (pid_from_wire(pid), meta, token)
        self._source, self._source_index = source, index
        self._changed(
            [
                (n, old.get(n), self.cache.get(n))
                for n in set(old) | set(self.cache)
                if old.get(n) != self.cache.get(n)
            ]
        )

    async def _serve_subscribe(self, node: str) -> list[Any]:
        sm = self.sm
        member = self._member()
        if sm is None or member is None:
            raise TierUnavailable("consistent", f"{self.node.name} hosts no member")
        self._subscribers.add(node)
        rows = [[n, pid_to_wire(p), m, t] for n, (p, m, t) in sm.names.items()]
        return [member.applied, rows]

    def _push(self, changes: list[tuple[Any, Entry | None, Entry | None]]) -> None:
        """Queue applied changes for the subscribed clients: one frame per loop turn."""
        self._outgoing.extend(changes)
        if self._push_handle is None:
            self._push_handle = asyncio.get_running_loop().call_soon(self._flush_push)

    def _flush_push(self) -> None:
        self._push_handle = None
        changes, self._outgoing = self._outgoing, []
        member = self._member()
        index = member.applied if member is not None else 0
        rows = [
            [n, None, None, 0] if new is None else [n, pid_to_wire(new[0]), new[1], new[2]]
            for n, _, new in changes
        ]
        # The rows are plain data (names and metas are checked to be): packed as one blob,
        # they decode in C on the client, without the node codec's per-array hook.
        frame = self.registry.codec.encode((CONSISTENT, "c", index, msgpack.packb(rows)))
        for node in list(self._subscribers):
            try:
                send_to_node(self.node, node, Channel.REGISTRY, frame)
                self.stats.pushes_sent += 1
            except (QueueFull, NoRoute, UsageError):
                self._subscribers.discard(node)  # it resubscribes when its cache goes stale

    def _on_frame(self, peer: str, frame: list[Any]) -> None:
        if peer != self._source or self.sm is not None:
            return
        _, kind, index, blob = frame
        if kind != "c":
            return
        try:
            changes = self._take_push(index, msgpack.unpackb(blob, strict_map_key=False))
        except (ValueError, TypeError) as exc:
            self.registry.malformed += 1
            log.warning("consistent registry: malformed push from %s: %r", peer, exc)
            return
        if changes:
            self._changed(changes)

    def _take_push(
        self, index: int, rows: list[Any]
    ) -> list[tuple[Any, Entry | None, Entry | None]]:
        """Take pushed rows into this client's cache; the changes they made."""
        self._source_index = index
        changes = []
        cache = self.cache
        for wire_name, pid, meta, token in rows:
            name = name_from_wire(wire_name)
            old = cache.get(name)
            if old is not None and (
                old[2] > last_token(index) or (pid is not None and old[2] == token)
            ):
                # A push from before our own registration of it (read your writes), or of
                # the registration we hold already (our own, taken at once).
                continue
            new = None if pid is None else (pid_from_wire(pid), meta, token)
            if new is None:
                cache.pop(name, None)
            else:
                cache[name] = new
            changes.append((name, old, new))
        return changes

    # -- events -----------------------------------------------------------------------------

    def _on_member(self, event: Any) -> None:
        self._group_cache = None  # a status (metadata) or liveness changed
        self._wake.set()

    def _on_node(self, peer: str, up: bool) -> None:
        if not up:
            self._subscribers.discard(peer)
            if peer == self._source:
                self._source = None
        self._wake.set()
