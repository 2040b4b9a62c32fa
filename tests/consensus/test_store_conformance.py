"""The ``LogStorage`` contract, run against every implementation: ``MemoryStorage`` (skipped only
while ``ember.consensus._memory`` does not exist), ``DurableStorage``, and ``DurableStorage`` with
a two-entry cache (so reads go to SQLite). Example tests first, then a hypothesis state machine
that compares each store with a plain model across save, compact and (for the durable store)
close-and-reopen. Hypothesis prints the failing example and its seed; replay with ``@seed``."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ember import UsageError
from ember.consensus._store import DurableStorage
from ember.consensus._types import (
    Compacted,
    ConfState,
    Entry,
    EntryType,
    HardState,
    LogStorage,
    Snapshot,
    SnapshotMeta,
    StorageError,
    Unavailable,
)


class Backend:
    """Opens a store and 'reopens' it: a durable store is closed and opened again from its
    directory; an in-memory store is the same object (it has nothing to recover)."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory

    def open(self) -> Any:
        if self.name == "memory":
            try:
                from ember.consensus._memory import MemoryStorage
            except ModuleNotFoundError as exc:
                if exc.name != "ember.consensus._memory":
                    raise
                pytest.skip("ember.consensus._memory does not exist yet")
            return MemoryStorage()
        if self.name == "durable-tiny-cache":
            return DurableStorage(self.directory, cache_entries=2, cache_bytes=64)
        return DurableStorage(self.directory)

    def reopen(self, store: Any) -> Any:
        if self.name == "memory":
            return store
        store.close()
        return self.open()


BACKENDS = ["memory", "durable", "durable-tiny-cache"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path / "raft" / "g1")


@pytest.fixture
def store(backend: Backend) -> Iterator[Any]:
    s = backend.open()
    yield s
    s.close()


def ents(lo: int, hi: int, term: int, size: int = 10) -> list[Entry]:
    return [Entry(i, term, data=bytes([i % 256]) * size) for i in range(lo, hi + 1)]


def snap(index: int, term: int, voters: tuple[str, ...] = ("a", "b", "c")) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, ConfState(voters, ("d",))), f"s{index}".encode())


# -- examples ------------------------------------------------------------------------------------


def test_an_empty_store_starts_at_index_zero(store: LogStorage) -> None:
    assert store.initial_state() == (HardState(), ConfState())
    assert (store.first_index(), store.last_index()) == (1, 0)
    assert store.term(0) == 0
    with pytest.raises(Unavailable):
        store.term(1)
    assert store.entries(1, 1) == []
    assert store.snapshot() == Snapshot()


def test_saved_entries_and_hard_state_survive_reopen(backend: Backend) -> None:
    store = backend.open()
    store.save(HardState(2, "a", 3), [*ents(1, 3, 1), Entry(4, 2, EntryType.CONF_CHANGE, b"cc")])
    store = backend.reopen(store)
    try:
        assert store.initial_state() == (HardState(2, "a", 3), ConfState())
        assert (store.first_index(), store.last_index()) == (1, 4)
        assert [store.term(i) for i in range(5)] == [0, 1, 1, 1, 2]
        assert store.entries(1, 5) == [*ents(1, 3, 1), Entry(4, 2, EntryType.CONF_CHANGE, b"cc")]
        assert store.entries(2, 3) == ents(2, 2, 1)
    finally:
        store.close()


def test_save_without_hard_state_keeps_the_stored_one(store: LogStorage) -> None:
    store.save(HardState(1, "a", 0), ents(1, 2, 1))
    store.save(None, ents(3, 3, 1))
    assert store.initial_state()[0] == HardState(1, "a", 0)
    store.save(HardState(2, None, 1), [])
    assert store.initial_state()[0] == HardState(2, None, 1)
    assert store.last_index() == 3


def test_entries_stop_at_max_bytes_but_return_at_least_one(store: LogStorage) -> None:
    store.save(None, ents(1, 5, 1, size=10))
    assert store.entries(1, 6, max_bytes=0) == ents(1, 1, 1)
    assert store.entries(1, 6, max_bytes=25) == ents(1, 2, 1)
    assert store.entries(1, 6, max_bytes=30) == ents(1, 3, 1)
    assert store.entries(2, 6, max_bytes=10_000) == ents(2, 5, 1)


def test_entries_out_of_range_raise_compacted_or_unavailable(store: LogStorage) -> None:
    store.save(None, ents(1, 6, 1))
    store.compact(snap(3, 1))
    with pytest.raises(Compacted):
        store.entries(3, 5)
    with pytest.raises(Compacted):
        store.term(2)
    with pytest.raises(Unavailable):
        store.entries(4, 8)
    with pytest.raises(Unavailable):
        store.term(7)


def test_a_conflicting_suffix_is_replaced(store: LogStorage) -> None:
    # Raft §5.3: "If an existing entry conflicts with a new one (same index but different
    # terms), delete the existing entry and all that follow it."
    store.save(HardState(1, "a", 0), ents(1, 6, 1))
    store.save(HardState(2, "b", 0), ents(3, 4, 2))
    assert store.last_index() == 4
    assert store.entries(1, 5) == ents(1, 2, 1) + ents(3, 4, 2)
    assert [store.term(i) for i in range(1, 5)] == [1, 1, 2, 2]


def test_compact_keeps_the_later_entries(store: LogStorage) -> None:
    store.save(HardState(2, "a", 4), ents(1, 3, 1) + ents(4, 6, 2))
    store.compact(snap(4, 2))
    assert (store.first_index(), store.last_index()) == (5, 6)
    assert store.term(4) == 2
    assert store.entries(5, 7) == ents(5, 6, 2)
    assert store.snapshot() == snap(4, 2)
    assert store.initial_state() == (HardState(2, "a", 4), ConfState(("a", "b", "c"), ("d",)))


def test_compact_ignores_a_stale_snapshot_and_refuses_a_future_one(store: LogStorage) -> None:
    store.save(None, ents(1, 6, 1))
    store.compact(snap(3, 1))
    store.compact(snap(2, 1))  # a newer snapshot is held already: nothing to do
    assert (store.first_index(), store.snapshot()) == (4, snap(3, 1))
    with pytest.raises(StorageError):
        store.compact(snap(7, 1))
    assert (store.first_index(), store.last_index()) == (4, 6)


def test_a_snapshot_not_newer_than_the_held_one_is_refused(store: LogStorage) -> None:
    store.save(None, ents(1, 6, 1))
    store.compact(snap(3, 1))
    with pytest.raises(StorageError):
        store.save(None, [], snap(3, 1))
    assert store.snapshot() == snap(3, 1)


def test_a_saved_snapshot_replaces_the_log(backend: Backend) -> None:
    store = backend.open()
    store.save(HardState(1, "a", 2), ents(1, 5, 1))
    store.save(HardState(3, "c", 9), ents(10, 11, 3), snap(9, 3))
    store = backend.reopen(store)
    try:
        assert (store.first_index(), store.last_index()) == (10, 11)
        assert store.term(9) == 3
        assert store.snapshot() == snap(9, 3)
        assert store.entries(10, 12) == ents(10, 11, 3)
        with pytest.raises(Compacted):
            store.term(5)
    finally:
        store.close()


def test_entries_at_or_before_the_snapshot_are_skipped(store: LogStorage) -> None:
    store.save(None, ents(1, 4, 1))
    store.compact(snap(3, 1))
    store.save(None, ents(2, 6, 1))
    assert (store.first_index(), store.last_index()) == (4, 6)
    assert store.entries(4, 7) == ents(4, 6, 1)


def test_compact_can_keep_entries_behind_the_snapshot(backend: Backend) -> None:
    # etcd's SnapshotCatchUpEntries: a follower a little behind the snapshot catches up from
    # the log. The compaction point C = max(previous C, S - keep) never moves back.
    store = backend.open()
    store.save(HardState(2, "a", 9), ents(1, 4, 1) + ents(5, 12, 2))
    store.compact(snap(9, 2), keep=5)  # C = 4
    store = backend.reopen(store)
    try:
        assert (store.first_index(), store.last_index()) == (5, 12)
        assert store.snapshot_meta() == snap(9, 2).meta
        assert store.snapshot() == snap(9, 2)
        assert store.term(4) == 1  # the last compacted entry's term is still answered
        assert [store.term(i) for i in range(5, 13)] == [2] * 8
        assert store.entries(5, 13) == ents(5, 12, 2)
        with pytest.raises(Compacted):
            store.term(3)
        with pytest.raises(Compacted):
            store.entries(4, 6)
        store.compact(snap(10, 2), keep=100)  # keeps everything held: C stays 4
        assert (store.first_index(), store.term(4)) == (5, 1)
        store.compact(snap(11, 2), keep=2)  # C = 9
        assert (store.first_index(), store.term(9)) == (10, 2)
        store.save(None, [Entry(10, 2, data=b"no"), Entry(11, 2, data=b"no"), *ents(12, 13, 3)])
        assert store.entries(10, 14) == ents(10, 11, 2) + ents(12, 13, 3)  # 10, 11 skipped
        # Installing a leader's snapshot still replaces the whole log: C = S.
        store.save(None, [], snap(20, 4))
        assert (store.first_index(), store.last_index(), store.term(20)) == (21, 20, 4)
        with pytest.raises(Compacted):
            store.term(19)
    finally:
        store.close()


def test_compact_refuses_a_negative_keep(store: LogStorage) -> None:
    store.save(None, ents(1, 6, 1))
    with pytest.raises(UsageError):
        store.compact(snap(3, 1), keep=-1)
    assert (store.first_index(), store.snapshot_meta()) == (1, SnapshotMeta())


# -- the state machine -----------------------------------------------------------------------


@dataclass
class Model:
    """The obvious implementation: a snapshot, the compaction point ``base`` (at or before the
    snapshot) with its term, a list of the entries after it, a hard state."""

    snap: Snapshot = field(default_factory=Snapshot)
    base: int = 0
    base_term: int = 0
    log: list[Entry] = field(default_factory=list)
    hard: HardState = field(default_factory=HardState)

    @property
    def first(self) -> int:
        return self.base + 1

    @property
    def last(self) -> int:
        return self.base + len(self.log)

    @property
    def last_term(self) -> int:
        return self.log[-1].term if self.log else self.base_term

    def term(self, index: int) -> int:
        if index < self.base:
            raise Compacted(index)
        if index > self.last:
            raise Unavailable(index)
        return self.base_term if index == self.base else self.log[index - self.first].term

    def entries(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        if lo < self.first:
            raise Compacted(lo)
        if hi > self.last + 1:
            raise Unavailable(hi)
        out: list[Entry] = []
        size = 0
        for e in self.log[lo - self.first : hi - self.first]:
            size += len(e.data)
            if out and max_bytes is not None and size > max_bytes:
                break
            out.append(e)
        return out

    def save(self, hard: HardState | None, new: list[Entry], snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            self.snap, self.log = snapshot, []
            self.base, self.base_term = snapshot.meta.index, snapshot.meta.term
        new = [e for e in new if e.index > self.snap.meta.index]
        if new:
            self.log = self.log[: new[0].index - self.first] + new
        if hard is not None:
            self.hard = hard

    def compact(self, snapshot: Snapshot, keep: int) -> None:
        if snapshot.meta.index <= self.snap.meta.index:
            return  # stale: ignored
        base = max(self.base, snapshot.meta.index - keep)
        self.base_term = self.term(base)
        self.log = self.log[base + 1 - self.first :]
        self.base = base
        self.snap = snapshot


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (Compacted, Unavailable) as exc:
        return type(exc)


datas = st.binary(max_size=40)


class StoreMachine(RuleBasedStateMachine):
    backend_name = "durable"

    @initialize()
    def open_store(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="ember-store-")
        self.backend = Backend(self.backend_name, Path(self.tmp.name) / "g")
        self.store = self.backend.open()
        self.model = Model()
        self.max_term = 0

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.close()
            self.tmp.cleanup()

    def _term(self, new_term: bool) -> int:
        if new_term or self.max_term == 0:
            self.max_term += 1
        return self.max_term

    def _save(self, hard: HardState | None, new: list[Entry], snapshot: Snapshot | None) -> None:
        self.store.save(hard, new, snapshot)
        self.model.save(hard, new, snapshot)

    def _hard(self, commit: int) -> HardState:
        return HardState(self.max_term, "n1", max(0, commit))

    @rule(data=st.lists(datas, min_size=1, max_size=8), new_term=st.booleans(), hard=st.booleans())
    def append(self, data: list[bytes], new_term: bool, hard: bool) -> None:
        term = self._term(new_term)
        lo = self.model.last + 1
        new = [Entry(lo + k, term, data=d) for k, d in enumerate(data)]
        self._save(self._hard(self.model.last) if hard else None, new, None)

    @precondition(lambda self: self.model.log)
    @rule(back=st.integers(1, 10), data=st.lists(datas, min_size=1, max_size=6))
    def overwrite_suffix(self, back: int, data: list[bytes]) -> None:
        # Entries at or before the snapshot (kept behind it) are skipped, the rest replaced.
        term = self._term(True)
        lo = max(self.model.first, self.model.last + 1 - back)
        new = [Entry(lo + k, term, data=d) for k, d in enumerate(data)]
        self._save(self._hard(lo - 1), new, None)

    @rule(vote=st.sampled_from([None, "n1", "n2"]), commit=st.integers(0, 50))
    def hard_state_only(self, vote: str | None, commit: int) -> None:
        self._save(HardState(self.max_term, vote, commit), [], None)

    @rule(ahead=st.integers(0, 5), data=st.lists(datas, max_size=3), blob=datas)
    def install_snapshot(self, ahead: int, data: list[bytes], blob: bytes) -> None:
        index = max(self.model.last + ahead, self.model.snap.meta.index + 1)
        term = self._term(False)
        if term < self.model.last_term:
            term = self.model.last_term
        snapshot = Snapshot(SnapshotMeta(index, term, ConfState(("n1", "n2"), ())), blob)
        new = [Entry(index + 1 + k, term, data=d) for k, d in enumerate(data)]
        self._save(self._hard(index), new, snapshot)

    @precondition(lambda self: self.model.log)
    @rule(k=st.integers(0, 100), keep=st.sampled_from([0, 0, 1, 3, 8, 1000]), blob=datas)
    def compact(self, k: int, keep: int, blob: bytes) -> None:
        m = self.model
        lo = m.snap.meta.index + 1 if m.last > m.snap.meta.index else m.first  # else stale
        index = lo + k % (m.last - lo + 1)
        snapshot = Snapshot(SnapshotMeta(index, m.term(index), ConfState(("n1",))), blob)
        self.store.compact(snapshot, keep)
        m.compact(snapshot, keep)

    @rule()
    def reopen(self) -> None:
        self.store = self.backend.reopen(self.store)

    @rule(lo=st.integers(-2, 3), span=st.integers(0, 12), max_bytes=st.none() | st.integers(0, 60))
    def read_range(self, lo: int, span: int, max_bytes: int | None) -> None:
        a = self.model.first + lo
        b = a + span
        if a < self.model.first and b > self.model.last + 1:
            return  # both errors apply; the contract does not rank them
        want = outcome(lambda: self.model.entries(a, b, max_bytes))
        assert outcome(lambda: self.store.entries(a, b, max_bytes)) == want

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "store"):
            return
        m, s = self.model, self.store
        assert (s.first_index(), s.last_index()) == (m.first, m.last)
        assert s.initial_state() == (m.hard, m.snap.meta.conf)
        assert s.snapshot() == m.snap
        assert s.snapshot_meta() == m.snap.meta
        for i in range(m.base - 1, m.last + 2):
            assert outcome(lambda i=i: s.term(i)) == outcome(lambda i=i: m.term(i))
        assert s.entries(m.first, m.last + 1) == m.log


@pytest.mark.parametrize("name", BACKENDS)
def test_store_behaves_like_the_model(name: str) -> None:
    machine = type(f"StoreMachine_{name}", (StoreMachine,), {"backend_name": name})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
