"""The eventual tier: the :class:`~ember.registry._crdt.NameMap` of this node, kept in step with
every other node's.

- **Deltas.** Each change is pushed at once (batched per loop turn, at most
  ``push_batch`` operations a frame) to every peer on the REGISTRY channel; a turn with few
  changes is also handed to the mesh's gossip, which piggybacks it on SWIM packets where it
  fits and so reaches peers the TCP push could not.
- **Anti-entropy.** Every ``anti_entropy_interval`` a random peer gets this node's shard
  digests; it answers with the shards that differ and asks for ours; both merge. A node that
  comes up (or back) is synced at once, which is how a new node pulls the full state.
- **Failures.** A node the mesh declares failed has its claims hidden (they come back if it
  does); one that left, or was reaped, or runs again with another creation, has its claims
  of the old incarnation retired. Names of local processes that exit are removed here.
- **Conflicts.** When a local process loses its name to a claimant from the other side of a
  partition, its node removes its claim and applies its policy: ``kill`` (exit with
  :class:`NameConflict`), ``notify`` (a :class:`NameLost` message) or a function.

A REGISTRY frame of this tier is ``[EVENTUAL, kind, node, creation, ...]``: kind ``"d"``
(delta operations), ``"g"`` (digests: please compare), ``"s"`` (shard states, and the shards
wanted back).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .._errors import EmberError, NameTaken, NoProc, UnknownName, UsageError
from .._services import send_to_node
from .._tasks import OwnedTasks
from ..actors import Pid
from ..transport._frame import Channel
from ..transport._queue import NoRoute, QueueFull
from ._config import RegistryConfig
from ._crdt import Change, Claim, NameMap, Op, ShardState, claim_pid
from ._errors import NameConflict, NameLost

if TYPE_CHECKING:
    from ._names import Names, Policy, Registration

__all__ = ["EVENTUAL", "EventualStatistics", "EventualTier"]

log = logging.getLogger("ember.registry.eventual")

EVENTUAL = 3
"""REGISTRY frame kind of this tier."""

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
    shards_sent: int = 0
    shards_merged: int = 0
    conflicts: int = 0
    """Local claims that lost their name to a concurrent claimant."""
    malformed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _encode_state(state: ShardState) -> list[Any]:
    return [
        state.shard,
        [[n, r[0], r[1], c, s, m] for n, (r, c, s, m) in state.entries],
        [[r[0], r[1], top] for r, top in state.vv],
        [[r[0], r[1], c] for r, c in state.cloud],
    ]


def _decode_state(value: list[Any], shards: int) -> ShardState:
    index, entries, vv, cloud = value
    if not isinstance(index, int) or not 0 <= index < shards:
        raise ValueError(f"bad shard {index!r}")
    return ShardState(
        index,
        tuple((n, ((node, cr), c, s, m)) for n, node, cr, c, s, m in entries),
        tuple(((node, cr), top) for node, cr, top in vv),
        tuple(((node, cr), c) for node, cr, c in cloud),
    )


def _encode_op(op: Op) -> list[Any]:
    index, kind, name, (node, creation), counter, *rest = op
    return [index, kind, name, node, creation, counter, *rest]


def _decode_op(value: list[Any], shards: int) -> Op:
    index, kind, name, node, creation, counter, *rest = value
    if not isinstance(index, int) or not 0 <= index < shards or kind not in ("a", "r"):
        raise ValueError(f"bad delta operation {value!r}")
    if kind == "a" and len(rest) != 2:
        raise ValueError(f"bad add {value!r}")
    return (index, kind, name, (node, creation), counter, *rest)


class EventualTier:
    """The eventual tier of one node's registry (see the module docstring)."""

    def __init__(self, registry: Names, config: RegistryConfig) -> None:
        self.registry = registry
        self.node = registry.node
        self.config = config
        self.core = NameMap((self.node.name, self.node.creation), config.shards)
        self.stats = EventualStatistics()
        self._policies: dict[tuple[Any, Pid], Policy] = {}
        self._watches: dict[Pid, tuple[Any, set[Any]]] = {}
        self._pending: list[Op] = []
        self._flush: asyncio.Handle | None = None
        self._tasks = OwnedTasks(log, "eventual registry task")
        self._rng = random.Random(self.node.rng.getrandbits(64))
        self._unsubscribe: list[Callable[[], None]] = []
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
        held = self.core.winner(name)
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
        self._publish(self.core.add(name, pid.serial, meta))
        self.stats.registered += 1
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

    def statistics(self) -> dict[str, Any]:
        out: dict[str, Any] = self.stats.as_dict()
        out["names"] = sum(1 for _ in self.core.names())
        out["claims"] = len(self.core)
        out["hidden_nodes"] = sorted(self.core.down)
        out["retired"] = len(self.core.retired)
        return out

    # -- local processes --------------------------------------------------------------------

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
        ops, self._pending = self._pending, []
        peers = self._peers()
        batch = self.config.push_batch
        me = self.node
        for start in range(0, len(ops), batch):
            chunk = [_encode_op(op) for op in ops[start : start + batch]]
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
        while True:
            await asyncio.sleep(self.config.anti_entropy_interval * (0.5 + self._rng.random()))
            peers = self._peers()
            if peers:
                self._send_digests(self._rng.choice(peers))

    def _send_digests(self, peer: str) -> None:
        self.stats.anti_entropy_rounds += 1
        me = self.node
        digests = self.core.digests()
        frame = self.registry.codec.encode((EVENTUAL, "g", me.name, me.creation, digests))
        self._send(peer, frame)

    def _send_states(self, peer: str, shards: list[int], want: list[int]) -> None:
        me = self.node
        states = [_encode_state(self.core.shard_state(i)) for i in shards]
        self.stats.shards_sent += len(states)
        self._send(
            peer, self.registry.codec.encode((EVENTUAL, "s", me.name, me.creation, states, want))
        )

    # -- inbound ----------------------------------------------------------------------------

    def _on_frame(self, peer: str, frame: list[Any]) -> None:
        self._handle(peer, frame)

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
            if kind == "d":
                ops = [_decode_op(v, self.core.nshards) for v in body[0]]
                self.stats.delta_ops_received += len(ops)
                changes += self.core.merge(ops)
            elif kind == "g" and peer is not None:
                differ = self.core.differing(list(body[0]))
                if differ:
                    self._send_states(peer, differ, differ)
            elif kind == "s" and peer is not None:
                states, want = body
                for value in states:
                    changes += self.core.merge_shard(_decode_state(value, self.core.nshards))
                    self.stats.shards_merged += 1
                if want:
                    self._send_states(peer, [i for i in want if 0 <= i < self.core.nshards], [])
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
            self._apply(self.core.set_down(peer, True))

    def _on_member(self, event: Any) -> None:
        name = event.member.name
        if name == self.node.name:
            return
        kind = event.kind
        if kind in _HIDE:
            self._apply(self.core.set_down(name, True))
        elif kind in _RETIRE:
            changes = self.core.set_down(name, False)
            for replica in [r for r in self.core.known if r[0] == name]:
                changes += self.core.retire(replica)
            self._apply(changes)
        elif kind in _BACK:
            self._apply(self.core.set_down(name, False))
            self._send_digests(name)
