"""The eventual tier: the :class:`~ember.registry._crdt.NameMap` of this node, kept in step with
every other node's.

- **Deltas.** Each change is pushed at once (batched per loop turn, at most
  ``push_batch`` operations a frame) to every peer on the REGISTRY channel; a turn with few
  changes is also handed to the mesh's gossip, which piggybacks it on SWIM packets where it
  fits and so reaches peers the TCP push could not.
- **Anti-entropy.** Every ``anti_entropy_interval`` a random peer gets this node's shard
  digests; it answers with the shards that differ and asks for ours; both merge (or, when
  none differs, it answers with no shard: in step). A node that comes up (or back) is synced
  at once, which is how a new node pulls the full state; :meth:`EventualTier.synced` says
  whether it has (see ``_sync.py``).
- **Failures.** A node the mesh declares failed has its claims hidden (they come back if it
  does); one that left, or was reaped, or runs again with another creation, has its claims
  of the old incarnation retired. Names of local processes that exit are removed here.
- **Conflicts.** When a local process loses its name to a claimant from the other side of a
  partition, its node removes its claim and applies its policy: ``kill`` (exit with
  :class:`NameConflict`), ``notify`` (a :class:`NameLost` message) or a function.

A REGISTRY frame of this tier is ``[EVENTUAL, kind, node, creation, ...]``: kind ``"d"``
(delta operations), ``"g"`` (digests: please compare), ``"s"`` (shard states, the shards
wanted back, and whether more differ: the exchange goes on at once, bounded each time).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, NameTaken, NoProc, UnknownName, UsageError
from .._services import send_to_node
from .._tasks import OwnedTasks
from ..actors import Pid
from ..transport._frame import Channel
from ..transport._queue import NoRoute, QueueFull
from ._config import RegistryConfig
from ._crdt import Change, Claim, NameMap, Op, ShardState, claim_pid
from ._errors import NameConflict, NameLost
from ._sync import SyncState

if TYPE_CHECKING:
    from ..transport._codec import Codec
    from ._names import Names, Policy, Registration

__all__ = ["EVENTUAL", "EventualStatistics", "EventualTier"]

log = logging.getLogger("ember.registry.eventual")

EVENTUAL = 3
"""REGISTRY frame kind of this tier."""

INBOX_LIMIT = 4096
"""Frames of this tier waiting to be merged, at most (more are dropped and counted)."""
MAX_DEFERRED = 10
"""Anti-entropy rounds skipped in a row, at most, while deltas flow: then one runs anyway, so
a loss under steady traffic is still repaired."""
MERGE_BUDGET = 2048
"""Claims merged between two yields to the event loop."""
GOSSIP_TOPIC = "ember.names"
"""The mesh gossip topic of this tier's deltas."""

_HIDE = frozenset(("failed",))
_RETIRE = frozenset(("left", "reaped"))
_BACK = frozenset(("joined", "alive"))


@dataclass(slots=True)
class EventualStatistics:
    """Counters of the eventual tier on one node."""

    registered: int = 0
    released: int = 0
    deltas_sent: int = 0
    """Delta frames queued for peers."""
    delta_ops_received: int = 0
    push_failures: int = 0
    """Delta frames a peer's queue refused or that had no route (anti-entropy repairs them)."""
    gossiped: int = 0
    """Delta batches also handed to the mesh's gossip."""
    anti_entropy_rounds: int = 0
    anti_entropy_deferred: int = 0
    """Rounds skipped because deltas were flowing (replicas then differ by what is in
    flight)."""
    shards_sent: int = 0
    shards_merged: int = 0
    conflicts: int = 0
    """Local claims that lost their name to a concurrent claimant."""
    malformed: int = 0
    inbox_dropped: int = 0
    """Frames dropped because the inbox was full (anti-entropy repairs them)."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_EXT_TUPLE = 10


def _tuple_default(obj: Any) -> Any:
    if obj.__class__ is tuple:
        return msgpack.ExtType(_EXT_TUPLE, _pack(list(obj)))
    raise TypeError(f"cannot pack {type(obj).__name__}")


def _pack(obj: Any) -> bytes:
    """Plain msgpack for the bulk of this tier's frames (C speed both ways); the only non-plain
    values are tuples inside names (an ext type)."""
    return msgpack.packb(obj, default=_tuple_default, strict_types=True)  # type: ignore[no-any-return]


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_TUPLE:
        return tuple(_unpack(data))
    raise ValueError(f"unexpected ext type {code}")


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


class _Wire:
    """This tier's bulk encodings: delta operations and shard states as plain msgpack, each
    ``meta`` (any value the node's codec takes) as codec bytes inside."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def meta_out(self, meta: Any) -> Any:
        return None if meta is None else self.codec.encode(meta)

    def meta_in(self, data: Any) -> Any:
        if data is None:
            return None
        if data.__class__ is not bytes:
            raise ValueError("bad meta")
        return self.codec.decode(data)

    def pack_ops(self, ops: list[Op]) -> bytes:
        out = []
        for op in ops:
            if op[1] == "a":
                out.append([*op[:7], self.meta_out(op[7])])
            else:
                out.append(list(op))
        return _pack(out)

    def unpack_ops(self, data: bytes) -> list[Op]:
        ops: list[Op] = []
        for op in _unpack(data):
            if len(op) == 8:
                meta = op[7]
                op[7] = None if meta is None else self.meta_in(meta)
            elif len(op) != 6:
                raise ValueError("bad delta operation")
            ops.append(op)
        return ops

    def pack_states(self, states: list[ShardState]) -> bytes:
        return _pack(
            [
                [
                    st.shard,
                    [[n, r[0], r[1], c, s, self.meta_out(m)] for n, (r, c, s, m) in st.entries],
                    [[r[0], r[1], top] for r, top in st.vv],
                    [[r[0], r[1], c] for r, c in st.cloud],
                ]
                for st in states
            ]
        )

    def unpack_states(self, data: bytes) -> list[ShardState]:
        out = []
        for index, entries, vv, cloud in _unpack(data):
            out.append(
                ShardState(
                    index,
                    tuple(
                        (n, ((node, cr), c, s, self.meta_in(m))) for n, node, cr, c, s, m in entries
                    ),
                    tuple(((node, cr), top) for node, cr, top in vv),
                    tuple(((node, cr), c) for node, cr, c in cloud),
                )
            )
        return out


class EventualTier:
    """The eventual tier of one node's registry (see the module docstring)."""

    def __init__(self, registry: Names, config: RegistryConfig) -> None:
        self.registry = registry
        self.node = registry.node
        self.config = config
        self.core = NameMap((self.node.name, self.node.creation), config.shards)
        self.core.interest = self._interested
        self.stats = EventualStatistics()
        self.sync = SyncState()
        self._policies: dict[tuple[Any, Pid], Policy] = {}
        self._watches: dict[Pid, tuple[Any, set[Any]]] = {}
        self._pending: list[Op] = []
        self._flush: asyncio.Handle | None = None
        self._tasks = OwnedTasks(log, "eventual registry task")
        self._rng = random.Random(self.node.rng.getrandbits(64))
        self._unsubscribe: list[Callable[[], None]] = []
        self._wire_codec: _Wire | None = None
        self._inbox: deque[tuple[str | None, list[Any]]] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._last_size = 0
        self._last_delta = float("-inf")
        """When this node last pushed or received a delta (anti-entropy waits for a lull)."""
        self.gossip: Callable[[bytes], bool] | None = None
        """Hands a small delta frame to the mesh's gossip (set when the mesh offers it)."""

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        node = self.node
        self.registry.frame_handlers[EVENTUAL] = self._on_frame
        if node.mesh is not None:
            self._unsubscribe.append(node.on_member_event(self._on_member))
            self.gossip = self._gossip_hook()
        if node.dist is not None:
            self._unsubscribe.append(node.dist.add_node_listener(self._on_node))
        if node.transport is not None:
            self._tasks.spawn(self._anti_entropy())
            for peer in self._peers():
                self._send_digests(peer)

    async def stop(self) -> None:
        for remove in self._unsubscribe:
            remove()
        self._unsubscribe.clear()
        self.registry.frame_handlers.pop(EVENTUAL, None)
        await self._tasks.cancel_all()
        if self._flush is not None:
            self._flush.cancel()
        kernel = self.node.kernel
        for handle, _ in self._watches.values():
            kernel.unwatch(handle)
        self._watches.clear()

    # -- the tier ---------------------------------------------------------------------------

    async def register(
        self, name: Any, pid: Pid, meta: Any, policy: Policy | None, within: float
    ) -> int | None:
        index = self.core.shard_of(name)
        held = self.core.winner(name, index=index)
        if held is not None:
            owner = claim_pid(held)
            if owner != pid:
                raise NameTaken(name, owner)
            if policy is not None:
                self._policies[(name, pid)] = policy
            return None
        if not self._watch(pid, name):
            raise NoProc(pid)
        self._policies[(name, pid)] = policy or self.config.on_conflict
        self._publish(self.core.add(name, pid.serial, meta, index=index))
        self.stats.registered += 1
        if self.registry.watched("eventual", name):
            self.registry._changed("eventual", name, self.lookup(name))
        return None

    async def unregister(self, name: Any, within: float) -> None:
        claims = self.core.claims(name)
        if not claims:
            raise UnknownName(name)
        before = self.core.winner(name)
        self._publish(self.core.remove(name, claims))
        old = claim_pid(before) if before is not None else None
        self._apply([Change(name, old, None)])

    def lookup(self, name: Any) -> Registration | None:
        from ._names import Registration

        claim = self.core.winner(name)
        if claim is None:
            return None
        return Registration(name, claim_pid(claim), "eventual", claim[3])

    def names(self) -> list[Any]:
        return list(self.core.names())

    def synced(self) -> tuple[bool, str]:
        """Whether this node has pulled its live peers' state (after it joined, and after a
        heal), and why: the registry's readiness."""
        return self.sync.check(self._peers(), self.core.down)

    def statistics(self) -> dict[str, Any]:
        out: dict[str, Any] = self.stats.as_dict()
        out["names"] = sum(1 for _ in self.core.names())
        out["claims"] = len(self.core)
        out["hidden_nodes"] = sorted(self.core.down)
        out["retired"] = len(self.core.retired)
        return out

    # -- local processes --------------------------------------------------------------------

    def _interested(self, name: Any, old: Claim | None) -> bool:
        """The changes this node acts on: of names its own processes held (a loss to
        settle), and of names a monitor or a ``wait_for`` watches."""
        return (old is not None and old[0][0] == self.node.name) or self.registry.watched(
            "eventual", name
        )

    def _watch(self, pid: Pid, name: Any) -> bool:
        entry = self._watches.get(pid)
        if entry is None:
            handle = self.node.kernel.watch(pid, self._exited)
            if handle is None:
                return False
            entry = self._watches[pid] = (handle, set())
        entry[1].add(name)
        return True

    def _exited(self, pid: Pid, _reason: Any) -> None:
        entry = self._watches.pop(pid, None)
        if entry is None:
            return
        changes: list[Change] = []
        for name in entry[1]:
            mine = [c for c in self.core.all_claims(name) if claim_pid(c) == pid]
            before = self.core.winner(name)
            self._publish(self.core.remove(name, mine))
            after = self.core.winner(name)
            changes.append(
                Change(
                    name,
                    claim_pid(before) if before else None,
                    claim_pid(after) if after else None,
                )
            )
            self._policies.pop((name, pid), None)
            self.stats.released += 1
        self._apply([c for c in changes if c.old != c.new])

    def _forget(self, pid: Pid, name: Any) -> None:
        """``pid`` no longer holds a claim of ``name``."""
        self._policies.pop((name, pid), None)
        entry = self._watches.get(pid)
        if entry is not None:
            entry[1].discard(name)
            if not entry[1]:
                del self._watches[pid]
                self.node.kernel.unwatch(entry[0])

    def _apply(self, changes: list[Change]) -> None:
        """Tell name monitors, and settle the conflicts local processes lost."""
        me = self.node.name
        for change in changes:
            old, new = change.old, change.new
            if old is not None and old.node == me:
                still = [c for c in self.core.claims(change.name) if claim_pid(c) == old]
                if still and new is not None:
                    self._lose(change.name, old, new, still)
                elif not still:
                    self._forget(old, change.name)
            if self.registry.watched("eventual", change.name):
                self.registry._changed("eventual", change.name, self.lookup(change.name))

    def _lose(self, name: Any, loser: Pid, winner: Pid, claims: list[Claim]) -> None:
        self.stats.conflicts += 1
        policy = self._policies.get((name, loser), self.config.on_conflict)
        self._publish(self.core.remove(name, claims))
        self._forget(loser, name)
        log.info("name %r: %s lost to %s (%s)", name, loser, winner, policy)
        kernel = self.node.kernel
        if policy == "kill":
            kernel.exit(loser, NameConflict(name, winner))
        elif policy == "notify":
            kernel.cast(loser, NameLost(name, winner))
        else:
            try:
                policy(name, loser, winner)
            except Exception:
                log.exception("the on_conflict function of %r failed", name)

    # -- propagation ------------------------------------------------------------------------

    def _wire(self) -> _Wire:
        codec = self.registry.codec
        if self._wire_codec is None or self._wire_codec.codec is not codec:
            self._wire_codec = _Wire(codec)
        return self._wire_codec

    def _peers(self) -> list[str]:
        node = self.node
        names = set(node.transport.connected_nodes()) if node.transport is not None else set()
        names.update(m.name for m in node.members() if m.status in ("alive", "suspect"))
        names.discard(node.name)
        return sorted(names)

    def _publish(self, ops: list[Op]) -> None:
        if not ops or self.node.transport is None:
            return
        self._pending.extend(ops)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._push)

    def _push(self) -> None:
        self._flush = None
        self._last_delta = asyncio.get_running_loop().time()
        ops, self._pending = self._pending, []
        peers = self._peers()
        batch = self.config.push_batch
        me = self.node
        for start in range(0, len(ops), batch):
            chunk = self._wire().pack_ops(ops[start : start + batch])
            frame = self.registry.codec.encode((EVENTUAL, "d", me.name, me.creation, chunk))
            for peer in peers:
                self._send(peer, frame)
                self.stats.deltas_sent += 1
            small = len(ops) <= self.config.gossip_limit
            if small and self.gossip is not None and self.gossip(frame):
                self.stats.gossiped += 1

    def _send(self, peer: str, frame: bytes) -> None:
        try:
            send_to_node(self.node, peer, Channel.REGISTRY, frame)
        except (QueueFull, NoRoute, UsageError):  # UsageError: this node's transport closed
            self.stats.push_failures += 1

    def _gossip_hook(self) -> Callable[[bytes], bool] | None:
        mesh = self.node.mesh
        if mesh is None:
            return None
        self._unsubscribe.append(mesh.add_gossip_listener(self._on_gossip))
        return lambda frame: mesh.gossip(GOSSIP_TOPIC, frame)

    def _on_gossip(self, topic: str, data: bytes) -> None:
        if topic == GOSSIP_TOPIC:
            self._on_payload(None, data)

    # -- anti-entropy -----------------------------------------------------------------------

    async def _anti_entropy(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.anti_entropy_interval
        deferred = 0
        while True:
            await asyncio.sleep(interval * (0.5 + self._rng.random()))
            # While deltas flow, replicas differ only by what is in flight: a round then would
            # ship whole shards for nothing, so this node waits for a quiet moment.
            if loop.time() - self._last_delta < interval and deferred < MAX_DEFERRED:
                deferred += 1
                self.stats.anti_entropy_deferred += 1
                continue
            deferred = 0
            peers = self._peers()
            if peers:
                self._send_digests(self._rng.choice(peers))

    def _send_digests(self, peer: str) -> None:
        self.stats.anti_entropy_rounds += 1
        me = self.node
        digests = self.core.digests()
        frame = self.registry.codec.encode((EVENTUAL, "g", me.name, me.creation, digests))
        self._send(peer, frame)

    def _bounded(self, shards: list[int]) -> list[int]:
        """Of the shards that differ, a random few holding at most ``anti_entropy_limit``
        claims (at least one shard): each round's work stays bounded, and the next rounds
        take the rest."""
        self._rng.shuffle(shards)
        chosen: list[int] = []
        total = 0
        for index in shards:
            size = self.core.shard_size(index)
            if chosen and total + size > self.config.anti_entropy_limit:
                break
            chosen.append(index)
            total += size
        return sorted(chosen)

    def _send_states(self, peer: str, shards: list[int], want: list[int], *, more: bool) -> None:
        """Shard states to ``peer``, asking for its ``want`` back; ``more``: other shards
        differ too (the peer then starts the next exchange at once)."""
        me = self.node
        states = self._wire().pack_states([self.core.shard_state(i) for i in shards])
        self.stats.shards_sent += len(shards)
        frame = (EVENTUAL, "s", me.name, me.creation, states, want, more)
        self._send(peer, self.registry.codec.encode(frame))

    # -- inbound ----------------------------------------------------------------------------

    def _on_frame(self, peer: str, frame: list[Any]) -> None:
        """Frames wait in the inbox and are merged by a task, a bounded amount per loop turn,
        so a flood of deltas never starves the loop (heartbeats, calls, the rest)."""
        if len(self._inbox) >= INBOX_LIMIT:
            self.stats.inbox_dropped += 1  # anti-entropy repairs what this loses
            return
        self._inbox.append((peer, frame))
        if self._draining is None:
            self._draining = self._tasks.spawn(self._drain())

    async def _drain(self) -> None:
        try:
            budget = MERGE_BUDGET
            while self._inbox:
                peer, frame = self._inbox.popleft()
                self._handle(peer, frame)
                budget -= self._last_size
                if budget <= 0:
                    budget = MERGE_BUDGET
                    await asyncio.sleep(0)
        finally:
            self._draining = None

    def _on_payload(self, peer: str | None, payload: bytes) -> None:
        try:
            frame = self.registry.codec.decode(payload)
        except (EmberError, ValueError, TypeError):
            self.stats.malformed += 1
            return
        if isinstance(frame, list | tuple) and frame and frame[0] == EVENTUAL:
            self._handle(peer, list(frame))

    def _handle(self, peer: str | None, frame: list[Any]) -> None:
        try:
            _, kind, node, creation, *body = frame
            changes = self.core.current(node, creation) if node != self.node.name else []
            self._last_size = 1
            if kind == "d":
                self._last_delta = asyncio.get_running_loop().time()
                ops = self._wire().unpack_ops(body[0])
                self._last_size = len(ops)
                self.stats.delta_ops_received += len(ops)
                changes += self.core.merge(ops)
            elif kind == "g" and peer is not None:
                differ = self.core.differing(list(body[0]))
                chosen = self._bounded(differ)
                if chosen:
                    self._send_states(peer, chosen, chosen, more=len(chosen) < len(differ))
                    self.sync.answered(peer, complete=len(chosen) == len(differ))
                else:  # in step: say so, and the asker knows it holds all we hold
                    self.sync.pulled(peer)
                    self._send_states(peer, [], [], more=False)
            elif kind == "s" and peer is not None:
                states, want, more = body
                received = self._wire().unpack_states(states)
                for state in received:
                    changes += self.core.merge_shard(state)
                    self._last_size += len(state.entries)
                    self.stats.shards_merged += 1
                if want:
                    valid = [i for i in want if 0 <= i < self.core.nshards]
                    self._send_states(peer, valid, [], more=False)
                if more:  # the exchange was cut to its bound: go on with the rest at once
                    self._send_digests(peer)
                elif want or not received:  # the whole answer to our digests: merged
                    self.sync.pulled(peer)
                else:  # the shards our answer to its digests asked for
                    self.sync.returned(peer)
            else:
                raise ValueError(f"unknown eventual frame {kind!r}")
        except (ValueError, TypeError, KeyError, IndexError):
            self.stats.malformed += 1
            log.warning("eventual registry: malformed frame from %s", peer, exc_info=True)
            return
        self._apply(changes)

    def _on_node(self, peer: str, up: bool) -> None:
        if up:
            self._send_digests(peer)
        elif self.node.mesh is None:
            self.sync.lost(peer)
            self._apply(self.core.set_down(peer, True))

    def _on_member(self, event: Any) -> None:
        name = event.member.name
        if name == self.node.name:
            return
        kind = event.kind
        if kind in _HIDE:
            self.sync.lost(name)
            self._apply(self.core.set_down(name, True))
        elif kind in _RETIRE:
            self.sync.forget(name)
            changes = self.core.set_down(name, False)
            for replica in [r for r in self.core.known if r[0] == name]:
                changes += self.core.retire(replica)
            self._apply(changes)
        elif kind in _BACK:
            self._apply(self.core.set_down(name, False))
            self._send_digests(name)
