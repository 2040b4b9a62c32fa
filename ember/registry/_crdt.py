"""The eventual tier's replicated map of names: a pure, add-wins observed-remove map (ORSWOT) of
name -> claims, with delta and sharded full-state merges. No clock, no I/O, no randomness.

A *claim* is one registration: ``(replica, counter, serial, meta)``. ``replica`` is
``(node, creation)``, the incarnation of the node that made it, and every claim is made by the
pid's own node, so the pid is ``Pid(node, serial, creation)``. ``(replica, counter)`` is the
claim's *dot*, unique in the cluster: counters run per replica and per shard.

Each shard keeps its entries and its causal context: the dots it has seen, as a version vector
(every dot up to ``vv[replica]``) plus a cloud of dots seen out of order. A dot that is in the
context but not in the entries was removed; an add of it arriving late is ignored, so nothing is
resurrected, and no per-name tombstone is kept (the context compacts to one int per replica).
Deltas carry explicit adds and removes; a shard's full state carries its entries and context.

Visibility: a claim whose node is *down* (declared failed by the mesh) is hidden, not removed,
so a node that was only cut off keeps its names when it returns. When several visible claims
name different pids (registered on two sides of a partition), the claim of the smallest pid
wins, on every replica alike. A *retired* replica (an incarnation that is gone for good: its
node was reaped, or came back with another creation) has its claims dropped and its dots
refused from then on.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ..actors import Pid

__all__ = ["Change", "Claim", "NameMap", "Op", "Replica", "ShardState", "claim_pid", "shard_of"]

Replica = tuple[str, int]
"""A node incarnation: ``(node name, creation)``."""
Claim = tuple[Replica, int, int, Any]
"""``(replica, counter, serial, meta)``: one registration."""
Op = tuple[Any, ...]
"""A delta operation: ``(shard, "a", name, node, creation, counter, serial, meta)`` adds a
claim, ``(shard, "r", name, node, creation, counter)`` removes one (an observed remove)."""

_MASK = (1 << 64) - 1


def shard_of(name: Any, shards: int) -> int:
    """The shard of ``name``: the same on every node and in every process."""
    return zlib.crc32(msgpack.packb(name)) % shards


def claim_pid(claim: Claim) -> Pid:
    (node, creation), _, serial, _ = claim
    return Pid(node, serial, creation)


def _pid_key(claim: Claim) -> tuple[str, int, int]:
    (node, creation), _, serial, _ = claim
    return (node, creation, serial)


def _mix(x: int) -> int:
    """splitmix64's finalizer: spreads the bits of a 64-bit int."""
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def replica_seed(replica: Replica) -> int:
    """A 64-bit value per incarnation, the same in every process."""
    node, creation = replica
    return _mix((zlib.crc32(node.encode()) << 32) ^ creation)


def dot_hash(seed: int, counter: int) -> int:
    """The hash of a claim: of its dot alone, which names it (a dot is made once, for one name,
    pid and meta)."""
    return _mix(seed ^ (counter * 0x9E3779B97F4A7C15))


@dataclass(frozen=True, slots=True)
class Change:
    """The winner of ``name`` changed from ``old`` to ``new`` (pids; None: no holder)."""

    name: Any
    old: Pid | None
    new: Pid | None


@dataclass(frozen=True, slots=True)
class ShardState:
    """One shard's full state: its claims and its causal context."""

    shard: int
    entries: tuple[tuple[Any, Claim], ...]
    vv: tuple[tuple[Replica, int], ...]
    cloud: tuple[tuple[Replica, int], ...]


class _Shard:
    __slots__ = ("cloud", "digest", "entries", "vv")

    def __init__(self) -> None:
        self.entries: dict[Any, Claim | list[Claim]] = {}
        """name -> its claim, or a list of claims while a conflict lasts."""
        self.vv: dict[Replica, int] = {}
        self.cloud: set[tuple[Replica, int]] = set()
        self.digest = 0
        """XOR of the entries' hashes."""

    def seen(self, replica: Replica, counter: int) -> bool:
        return counter <= self.vv.get(replica, 0) or (replica, counter) in self.cloud

    def see(self, replica: Replica, counter: int) -> None:
        top = self.vv.get(replica, 0)
        if counter <= top:
            return
        if counter != top + 1:
            self.cloud.add((replica, counter))
            return
        top = counter
        cloud = self.cloud
        while cloud and (replica, top + 1) in cloud:
            top += 1
            cloud.discard((replica, top))
        self.vv[replica] = top

    def see_upto(self, replica: Replica, top: int) -> None:
        """Every dot of ``replica`` up to ``top`` is seen."""
        mine = self.vv.get(replica, 0)
        if top <= mine:
            return
        cloud = self.cloud
        if cloud:
            for dot in [d for d in cloud if d[0] == replica and d[1] <= top]:
                cloud.discard(dot)
            while (replica, top + 1) in cloud:
                top += 1
                cloud.discard((replica, top))
        self.vv[replica] = top

    def claims(self, name: Any) -> list[Claim]:
        entry = self.entries.get(name)
        if entry is None:
            return []
        return entry if isinstance(entry, list) else [entry]

    def put(self, name: Any, claim: Claim, digest: int) -> None:
        entry = self.entries.get(name)
        if entry is None:
            self.entries[name] = claim
        elif isinstance(entry, list):
            entry.append(claim)
        else:
            self.entries[name] = [entry, claim]
        self.digest ^= digest

    def drop(self, name: Any, replica: Replica, counter: int, digest: int) -> bool:
        """Remove the claim with that dot, if present (``digest``: its hash)."""
        kept: list[Claim] = []
        gone: Claim | None = None
        for claim in self.claims(name):
            if gone is None and claim[0] == replica and claim[1] == counter:
                gone = claim
            else:
                kept.append(claim)
        if gone is None:
            return False
        self.digest ^= digest
        if not kept:
            del self.entries[name]
        elif len(kept) == 1:
            self.entries[name] = kept[0]
        else:
            self.entries[name] = kept
        return True

    def context_hash(self) -> int:
        packed = msgpack.packb((sorted(self.vv.items()), sorted(self.cloud)))
        return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "little")


class NameMap:
    """The map of names of one replica (see the module docstring). ``replica`` is this node's
    incarnation; ``shards`` must be the same on every node."""

    def __init__(self, replica: Replica, shards: int = 64) -> None:
        self.replica = replica
        self.nshards = shards
        self._shards = [_Shard() for _ in range(shards)]
        self.down: set[str] = set()
        """Nodes whose claims are hidden (declared failed)."""
        self.retired: set[Replica] = set()
        """Incarnations gone for good: their claims are dropped and their dots refused."""
        self.known: set[Replica] = set()
        """Every incarnation a claim here came from (and not retired)."""
        self.interest: Callable[[Any, Claim | None], bool] | None = None
        """If set, only the changes of names for which ``interest(name, old winner)`` is true
        are reported (the others are applied all the same): a replica's shell cares about
        the names its own processes held and the names someone watches."""
        self._replicas: dict[tuple[Any, Any], Replica] = {replica: replica}
        self._seeds: dict[Replica, int] = {}

    # -- reads ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._shards)

    def shard_size(self, index: int) -> int:
        """Names in shard ``index``."""
        return len(self._shards[index].entries)

    def shard_of(self, name: Any) -> int:
        return shard_of(name, self.nshards)

    def all_claims(self, name: Any) -> list[Claim]:
        """Every claim of ``name``, hidden ones too."""
        return self._shards[self.shard_of(name)].claims(name)

    def claims(self, name: Any) -> list[Claim]:
        """The visible claims of ``name``."""
        down = self.down
        return [c for c in self.all_claims(name) if c[0][0] not in down]

    def winner(self, name: Any, *, index: int | None = None) -> Claim | None:
        """The claim that holds ``name`` now (the smallest pid among the visible claims);
        ``index``: the name's shard, if the caller has it."""
        shard = self._shards[self.shard_of(name) if index is None else index]
        return self._winner(shard.claims(name))

    def _winner(self, claims: list[Claim]) -> Claim | None:
        down = self.down
        best: Claim | None = None
        for claim in claims:
            if claim[0][0] in down:
                continue
            if best is None or _pid_key(claim) < _pid_key(best):
                best = claim
        return best

    def names(self) -> Iterator[Any]:
        """Every name with a visible claim."""
        down = self.down
        for shard in self._shards:
            for name, entry in shard.entries.items():
                claims = entry if isinstance(entry, list) else (entry,)
                if any(c[0][0] not in down for c in claims):
                    yield name

    def entries(self) -> Iterator[tuple[Any, Claim]]:
        """Every claim, hidden ones too, with its name."""
        for shard in self._shards:
            for name, entry in shard.entries.items():
                for claim in entry if isinstance(entry, list) else (entry,):
                    yield name, claim

    def owned_by(self, node: str) -> Iterator[tuple[Any, Claim]]:
        """The claims of pids on ``node`` (any incarnation)."""
        for name, claim in self.entries():
            if claim[0][0] == node:
                yield name, claim

    # -- local updates ----------------------------------------------------------------------

    def add(
        self, name: Any, serial: int, meta: Any = None, *, index: int | None = None
    ) -> list[Op]:
        """A claim of ``name`` by this replica's process ``serial``; returns its delta. The
        caller checked that no other visible claim names a live process (``index``: the
        name's shard, if the caller has it)."""
        if index is None:
            index = self.shard_of(name)
        shard = self._shards[index]
        replica = self.replica
        counter = shard.vv.get(replica, 0) + 1
        shard.see(replica, counter)
        shard.put(name, (replica, counter, serial, meta), dot_hash(self._seed(replica), counter))
        self.known.add(replica)
        return [(index, "a", name, replica[0], replica[1], counter, serial, meta)]

    def remove(self, name: Any, claims: Iterable[Claim]) -> list[Op]:
        """Observed remove of ``claims`` of ``name``; returns the delta."""
        index = self.shard_of(name)
        shard = self._shards[index]
        ops: list[Op] = []
        for replica, counter, _, _ in list(claims):
            if shard.drop(name, replica, counter, dot_hash(self._seed(replica), counter)):
                shard.see(replica, counter)
                ops.append((index, "r", name, replica[0], replica[1], counter))
        return ops

    # -- merges -----------------------------------------------------------------------------

    def merge(self, ops: Iterable[Op]) -> list[Change]:
        """Apply a delta (from any replica, in any order, any number of times). Raises
        ``ValueError`` at the first malformed operation (those before it are applied: each
        stands alone)."""
        before: dict[Any, tuple[_Shard, Claim | None]] = {}
        shards = self._shards
        nshards = self.nshards
        retired = self.retired
        replica_of = self._replica
        for op in ops:
            index, kind, name, node, creation, counter = op[:6]
            if (
                index.__class__ is not int
                or not 0 <= index < nshards
                or counter.__class__ is not int
                or counter < 1
            ):
                raise ValueError(f"bad delta operation {op!r:.80}")
            replica = replica_of(node, creation)
            if replica in retired:
                continue
            shard = shards[index]
            if kind == "a":
                if shard.seen(replica, counter):
                    continue
                serial = op[6]
                if serial.__class__ is not int:
                    raise ValueError(f"bad serial in {op!r:.80}")
                if name not in before:
                    before[name] = (shard, self._winner(shard.claims(name)))
                shard.see(replica, counter)
                claim = (replica, counter, serial, op[7])
                shard.put(name, claim, dot_hash(self._seed(replica), counter))
                self.known.add(replica)
            elif kind == "r":
                if name not in before:
                    before[name] = (shard, self._winner(shard.claims(name)))
                shard.drop(name, replica, counter, dot_hash(self._seed(replica), counter))
                shard.see(replica, counter)
            else:
                raise ValueError(f"unknown delta operation {kind!r}")
        return self._changes(before)

    def digests(self) -> list[int]:
        """One digest per shard, over its entries and causal context."""
        return [(s.digest ^ s.context_hash()) & _MASK for s in self._shards]

    def differing(self, digests: list[int]) -> list[int]:
        """The shards whose digest differs from ``digests`` (all of them if the count
        differs)."""
        mine = self.digests()
        if len(digests) != len(mine):
            return list(range(self.nshards))
        return [i for i, (a, b) in enumerate(zip(mine, digests, strict=True)) if a != b]

    def shard_state(self, index: int) -> ShardState:
        shard = self._shards[index]
        entries = tuple(
            (name, claim)
            for name, entry in shard.entries.items()
            for claim in (entry if isinstance(entry, list) else (entry,))
        )
        return ShardState(index, entries, tuple(shard.vv.items()), tuple(sorted(shard.cloud)))

    def merge_shard(self, state: ShardState) -> list[Change]:
        """Join one shard's full state from another replica into this one."""
        if not 0 <= state.shard < self.nshards:
            raise ValueError(f"bad shard {state.shard!r}")
        shard = self._shards[state.shard]
        retired = self.retired
        theirs_vv = dict(state.vv)
        theirs_cloud = set(state.cloud)
        theirs = {(claim[0], claim[1]) for _, claim in state.entries}

        def they_saw(replica: Replica, counter: int) -> bool:
            return counter <= theirs_vv.get(replica, 0) or (replica, counter) in theirs_cloud

        before: dict[Any, tuple[_Shard, Claim | None]] = {}
        for name, claim in [(n, c) for n in list(shard.entries) for c in shard.claims(n)]:
            replica, counter = claim[0], claim[1]
            if (replica, counter) not in theirs and they_saw(replica, counter):
                if name not in before:
                    before[name] = (shard, self._winner(shard.claims(name)))
                shard.drop(name, replica, counter, dot_hash(self._seed(replica), counter))
        for name, (their_replica, counter, serial, meta) in state.entries:
            replica = self._replica(*their_replica)
            if replica in retired or shard.seen(replica, counter):
                continue
            if counter.__class__ is not int or serial.__class__ is not int:
                raise ValueError(f"bad claim of {name!r:.60}")
            if name not in before:
                before[name] = (shard, self._winner(shard.claims(name)))
            claim = (replica, counter, serial, meta)
            shard.put(name, claim, dot_hash(self._seed(replica), counter))
            self.known.add(replica)
        for their_replica, top in theirs_vv.items():
            replica = self._replica(*their_replica)
            if replica not in retired:
                shard.see_upto(replica, top)
        for their_replica, counter in theirs_cloud:
            replica = self._replica(*their_replica)
            if replica not in retired:
                shard.see(replica, counter)
        return self._changes(before)

    # -- membership -------------------------------------------------------------------------

    def set_down(self, node: str, down: bool) -> list[Change]:
        """Hide (``down``) or show again the claims of ``node``'s pids."""
        if (node in self.down) == down:
            return []
        before: dict[Any, tuple[_Shard, Claim | None]] = {}
        for shard in self._shards:
            for name in shard.entries:
                claims = shard.claims(name)
                if name not in before and any(c[0][0] == node for c in claims):
                    before[name] = (shard, self._winner(claims))
        if down:
            self.down.add(node)
        else:
            self.down.discard(node)
        return self._changes(before)

    def retire(self, replica: Replica) -> list[Change]:
        """Drop every claim of ``replica`` and refuse its dots from now on."""
        if replica in self.retired or replica == self.replica:
            return []
        self.retired.add(replica)
        self.known.discard(replica)
        before: dict[Any, tuple[_Shard, Claim | None]] = {}
        seed = self._seed(replica)
        for shard in self._shards:
            doomed = [
                (name, claim)
                for name in list(shard.entries)
                for claim in shard.claims(name)
                if claim[0] == replica
            ]
            for name, claim in doomed:
                if name not in before:
                    before[name] = (shard, self._winner(shard.claims(name)))
                shard.drop(name, replica, claim[1], dot_hash(seed, claim[1]))
            shard.vv.pop(replica, None)
            shard.cloud = {d for d in shard.cloud if d[0] != replica}
        return self._changes(before)

    def current(self, node: str, creation: int) -> list[Change]:
        """``node`` runs as incarnation ``creation`` now: retire its other incarnations."""
        changes: list[Change] = []
        for replica in [r for r in self.known if r[0] == node and r[1] != creation]:
            changes.extend(self.retire(replica))
        return changes

    # -- helpers ----------------------------------------------------------------------------

    def _replica(self, node: Any, creation: Any) -> Replica:
        """The one tuple for this incarnation (claims share it); checks its types."""
        key = (node, creation)
        replica = self._replicas.get(key)
        if replica is None:
            if node.__class__ is not str or creation.__class__ is not int:
                raise ValueError(f"bad replica {key!r:.60}")
            replica = self._replicas[key] = key
        return replica

    def _seed(self, replica: Replica) -> int:
        seed = self._seeds.get(replica)
        if seed is None:
            seed = self._seeds[replica] = replica_seed(replica)
        return seed

    def _changes(self, before: dict[Any, tuple[_Shard, Claim | None]]) -> list[Change]:
        out = []
        winner = self._winner
        interest = self.interest
        for name, (shard, old) in before.items():
            if interest is not None and not interest(name, old):
                continue
            new = winner(shard.claims(name))
            if new is not old:
                out.append(
                    Change(
                        name,
                        claim_pid(old) if old is not None else None,
                        claim_pid(new) if new is not None else None,
                    )
                )
        return out
