"""Properties of the eventual tier's CRDT core (``NameMap``), checked with hypothesis.

- The full-state join is commutative, associative and idempotent.
- Any delivery of the deltas (any order, duplicated, lost) followed by anti-entropy converges:
  every replica holds the same claims and the same digests.
- A removed claim never comes back, whatever arrives late, and the causal context compacts.
- Concurrent claims of one name resolve to the same winner on every replica (the smallest pid).
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ember import Pid
from ember.registry._crdt import NameMap, Op

SHARDS = 4
REPLICAS = [("n0", 1), ("n1", 1), ("n2", 1)]
NAMES = ["a", "b", "c", ("t", 1), 7]


def canonical(m: NameMap) -> list[Any]:
    """What a replica holds: per shard, its claims and the set of dots it has seen."""
    out = []
    for index in range(m.nshards):
        state = m.shard_state(index)
        seen = {(r, c) for r, top in state.vv for c in range(1, top + 1)} | set(state.cloud)
        out.append((sorted(map(repr, state.entries)), sorted(map(repr, seen))))
    return out


def copy(m: NameMap) -> NameMap:
    out = NameMap(m.replica, m.nshards)
    for index in range(m.nshards):
        out.merge_shard(m.shard_state(index))
    return out


def join(a: NameMap, b: NameMap) -> NameMap:
    out = copy(a)
    for index in range(b.nshards):
        out.merge_shard(b.shard_state(index))
    return out


def anti_entropy(replicas: list[NameMap], rng: random.Random) -> None:
    """Pairwise syncs of the shards whose digests differ, until every digest agrees."""
    for _ in range(50):
        if all(r.digests() == replicas[0].digests() for r in replicas):
            return
        a, b = rng.sample(replicas, 2)
        for index in a.differing(b.digests()):
            sa, sb = a.shard_state(index), b.shard_state(index)
            a.merge_shard(sb)
            b.merge_shard(sa)
    raise AssertionError("anti-entropy did not converge")


step = st.tuples(
    st.sampled_from(["add", "remove", "deliver", "drop", "dup"]),
    st.integers(0, len(REPLICAS) - 1),
    st.sampled_from(NAMES),
    st.integers(1, 5),
)


def run(steps: list[tuple[str, int, Any, int]], seed: int) -> tuple[list[NameMap], list[Any]]:
    """Replay ``steps`` on three replicas; returns them and the deltas still in flight."""
    rng = random.Random(seed)
    replicas = [NameMap(r, SHARDS) for r in REPLICAS]
    flight: list[tuple[int, list[Op]]] = []
    for kind, who, name, serial in steps:
        me = replicas[who]
        if kind == "add":
            if me.claims(name):
                continue  # the service refuses it (NameTaken)
            delta = me.add(name, serial)
        elif kind == "remove":
            delta = me.remove(name, me.claims(name))
        elif flight:
            i = rng.randrange(len(flight))
            target, delta = flight[i]
            if kind != "dup":
                flight.pop(i)
            if kind != "drop":
                replicas[target].merge(delta)
            continue
        else:
            continue
        for target in range(len(replicas)):
            if target != who and delta:
                flight.append((target, delta))
    return replicas, flight


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=60), st.integers(0, 2**32))
def test_join_is_commutative_associative_and_idempotent(steps: Any, seed: int) -> None:
    a, b, c = run(steps, seed)[0]
    assert canonical(join(a, b)) == canonical(join(b, a))
    assert canonical(join(join(a, b), c)) == canonical(join(a, join(b, c)))
    assert canonical(join(a, a)) == canonical(a)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=80), st.integers(0, 2**32))
def test_any_delivery_then_anti_entropy_converges(steps: Any, seed: int) -> None:
    replicas, flight = run(steps, seed)
    rng = random.Random(seed)
    rng.shuffle(flight)
    for target, delta in flight[: len(flight) // 2]:  # some late ones arrive, the rest are lost
        replicas[target].merge(delta)
    anti_entropy(replicas, rng)
    states = [canonical(r) for r in replicas]
    assert states[0] == states[1] == states[2]
    for name in NAMES:
        assert len({repr(r.winner(name)) for r in replicas}) == 1
    # late deliveries after convergence change nothing
    for target, delta in flight:
        replicas[target].merge(delta)
    assert [canonical(r) for r in replicas] == states


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.integers(0, 2**32))
def test_a_removed_claim_never_comes_back(rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    owner, other = NameMap(("n0", 1), SHARDS), NameMap(("n1", 1), SHARDS)
    history: list[list[Op]] = []
    for i in range(rounds):
        history.append(owner.add(f"x{i}", i + 1))
        history.append(owner.remove(f"x{i}", owner.claims(f"x{i}")))
    shuffled = list(history)
    rng.shuffle(shuffled)
    for delta in shuffled:
        other.merge(delta)
    assert list(other.names()) == []
    # every dot arrived: the context is one counter per replica, no cloud left
    for index in range(SHARDS):
        assert other.shard_state(index).cloud == ()
    for delta in history:  # everything again, in order: still nothing
        other.merge(delta)
    assert list(other.names()) == [] and len(other) == 0
    anti_entropy([owner, other], rng)
    assert list(owner.names()) == list(other.names()) == []


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(3)), st.integers(0, 2**32))
def test_concurrent_claims_resolve_to_the_same_winner_everywhere(
    order: list[int], seed: int
) -> None:
    replicas = [NameMap(r, SHARDS) for r in REPLICAS]
    deltas = [replicas[i].add("leader", 10 + i) for i in range(3)]  # one per side
    for target in order:
        for i in order:
            if i != target:
                replicas[target].merge(deltas[i])
    winners = {r.winner("leader") for r in replicas}
    assert len(winners) == 1
    (claim,) = winners
    assert claim is not None and claim[0] == ("n0", 1)  # the smallest pid: <n0.10.1>
    # the loser removes its own claim on every replica: one owner left
    loser = replicas[2]
    undo = loser.remove("leader", [c for c in loser.claims("leader") if c[0] == ("n2", 1)])
    for r in replicas[:2]:
        r.merge(undo)
    anti_entropy(replicas, random.Random(seed))
    assert all(len(r.claims("leader")) == 2 for r in replicas)
    assert {r.winner("leader") for r in replicas} == {claim}


def test_hidden_claims_come_back_and_retired_ones_do_not() -> None:
    a, b = NameMap(("a", 1), SHARDS), NameMap(("b", 1), SHARDS)
    b.merge(a.add("svc", 1))
    assert [c.name for c in b.set_down("a", True)] == ["svc"]
    assert b.winner("svc") is None and len(b) == 1  # hidden, kept
    changes = b.set_down("a", False)
    assert [(c.name, c.new) for c in changes] == [("svc", Pid("a", 1, 1))]
    b.retire(("a", 1))
    assert b.winner("svc") is None and len(b) == 0
    b.merge(a.add("late", 2))  # a retired incarnation's dots are refused
    for index in range(SHARDS):
        b.merge_shard(a.shard_state(index))
    assert len(b) == 0
