"""Child process of the store crash test, and the deterministic plan it follows.

``python -m tests.integration.store_writer DIR SEED`` opens the store in ``DIR``, rebuilds a
:class:`LogModel` from it, then performs the operations ``plan(SEED, model)`` yields forever,
printing ``ack <n>`` after the ``n``-th operation's ``save``/``compact`` returned. The test runs
the same plan from the same starting state, so after a SIGKILL it knows exactly which states the
store may hold: the one after the last acknowledged operation, or the one after the next.

Entry contents are a function of (index, term), so a model needs only the terms.
"""

from __future__ import annotations

import copy
import hashlib
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from ember.consensus._store import DurableStorage
from ember.consensus._types import ConfState, Entry, HardState, Snapshot, SnapshotMeta

VOTERS = ("n1", "n2", "n3")


def payload(index: int, term: int) -> bytes:
    """The data of entry ``index`` written in ``term``: 40 to 160 bytes, checkable."""
    digest = hashlib.blake2b(f"{index}:{term}".encode(), digest_size=40).digest()
    return digest * (1 + (index * 7 + term) % 4)


def snapshot_at(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, ConfState(VOTERS)), b"snap:" + payload(index, term))


@dataclass
class Op:
    """One call the writer makes: ``compact(snapshot, keep)`` when ``compact`` is set, else
    ``save``."""

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    compact: bool = False
    keep: int = 0

    def perform(self, store: DurableStorage) -> None:
        if self.compact:
            assert self.snapshot is not None
            store.compact(self.snapshot, self.keep)
        else:
            store.save(self.hard_state, self.entries, self.snapshot)


@dataclass
class LogModel:
    """What the store should hold: the snapshot's position, the compaction point ``base`` (at
    or before it) with its term, the terms of the entries after ``base``, the hard state."""

    snap_index: int = 0
    snap_term: int = 0
    base: int = 0
    base_term: int = 0
    terms: list[int] = field(default_factory=list)
    hard: HardState = field(default_factory=HardState)

    @property
    def last(self) -> int:
        return self.base + len(self.terms)

    @property
    def last_term(self) -> int:
        return self.terms[-1] if self.terms else self.base_term

    def term(self, index: int) -> int:
        return self.base_term if index == self.base else self.terms[index - self.base - 1]

    def apply(self, op: Op) -> None:
        if op.snapshot is not None:
            m = op.snapshot.meta
            if op.compact:
                upto = max(self.base, m.index - op.keep)
                self.base_term = self.term(upto)
                self.terms = self.terms[upto - self.base :]
                self.base = upto
            else:
                self.terms = []
                self.base, self.base_term = m.index, m.term
            self.snap_index, self.snap_term = m.index, m.term
        entries = [e for e in op.entries if e.index > self.snap_index]
        if entries:
            held = entries[0].index - self.base - 1
            self.terms = self.terms[:held] + [e.term for e in entries]
        if op.hard_state is not None:
            self.hard = op.hard_state

    @classmethod
    def from_store(cls, store: DurableStorage) -> LogModel:
        snap = store.snapshot_meta()
        hard, _ = store.initial_state()
        base = store.first_index() - 1
        terms = [store.term(i) for i in range(base + 1, store.last_index() + 1)]
        return cls(snap.index, snap.term, base, store.term(base), terms, hard)

    def mismatch(self, store: DurableStorage) -> str | None:
        """Why the store differs from this model (``None`` when it matches), checking every
        entry's content, the snapshot and the hard state."""
        hard, _ = store.initial_state()
        if hard != self.hard:
            return f"hard state {hard} != {self.hard}"
        snap = store.snapshot()
        if (snap.meta.index, snap.meta.term) != (self.snap_index, self.snap_term):
            return f"snapshot at {snap.meta.index}/{snap.meta.term}, want {self.snap_index}"
        if self.snap_index and snap != snapshot_at(self.snap_index, self.snap_term):
            return "snapshot content differs"
        if (store.first_index(), store.last_index()) != (self.base + 1, self.last):
            held = f"{store.first_index()}..{store.last_index()}"
            return f"log {held}, want {self.base + 1}..{self.last}"
        if store.term(self.base) != self.base_term:
            return f"term of the compaction point {self.base} is {store.term(self.base)}"
        got = store.entries(store.first_index(), store.last_index() + 1)
        want = [Entry(i, t, data=payload(i, t)) for i, t in enumerate(self.terms, self.base + 1)]
        if got != want:
            bad = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
            return f"entry {got[bad].index} is {got[bad]}, want {want[bad]}"
        return None


def plan(seed: int, start: LogModel) -> Iterator[Op]:
    """The writer's operations from ``start``, forever: mostly appended batches of 1 to 64
    entries, sometimes a new term overwriting a suffix, a compaction (keeping 0 to 200 entries
    behind its snapshot), or an installed snapshot."""
    rng = random.Random(seed)
    model = copy.deepcopy(start)
    term = max(model.hard.term, model.last_term, 1)
    while True:
        roll = rng.random()
        held = model.last - model.snap_index  # entries after the snapshot
        if roll < 0.05 and held:
            index = model.snap_index + rng.randint(1, held)
            keep = rng.choice((0, 0, 10, 50, 200))
            op = Op(snapshot=snapshot_at(index, model.term(index)), compact=True, keep=keep)
        elif roll < 0.07:
            term += 1
            index = model.last + rng.randint(1, 10)
            op = Op(HardState(term, "n1", index), snapshot=snapshot_at(index, term))
        else:
            lo = model.last + 1
            if roll < 0.17 and held:
                term += 1
                lo -= rng.randint(1, min(held, 20))  # a new leader overwrites a suffix
            n = rng.choice((1, 1, 4, 16, 64))
            entries = [Entry(i, term, data=payload(i, term)) for i in range(lo, lo + n)]
            commit = max(model.hard.commit, min(lo - 1, model.last))
            op = Op(HardState(term, "n1", commit), entries)
        model.apply(op)
        yield op


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    store = DurableStorage(path)
    ops = plan(seed, LogModel.from_store(store))
    print("ready", flush=True)
    for n, op in enumerate(ops, 1):
        op.perform(store)
        print(f"ack {n}", flush=True)


if __name__ == "__main__":
    main()
