"""The consistent tier's state machine alone (pure: commands in, results and changes out): a
batch entry decides each of its registrations in order, with its own fencing token
``index * 2**16 + position``; snapshots keep the tokens, and an older snapshot restores."""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from ember import Pid
from ember.consensus._replica import Replica, encode_command
from ember.registry._names_sm import (
    REGISTER,
    TOKEN_SHIFT,
    UNREGISTER,
    NamesStateMachine,
    index_of,
    last_token,
    pid_to_wire,
    token_at,
)

P = Pid("a", 1, 7)
Q = Pid("b", 2, 7)


def applied(sm: NamesStateMachine, index: int, cmd: dict[str, Any]) -> Any:
    replica = Replica(sm)
    ok, value = replica.apply(encode_command(None, cmd), index)
    assert ok, value
    return value


def reg(name: Any, pid: Pid, meta: Any = None) -> list[Any]:
    return [REGISTER, name, pid_to_wire(pid), meta]


def test_a_batch_decides_each_item_in_order_with_its_own_token() -> None:
    sm = NamesStateMachine()
    seen: list[Any] = []
    sm.listener = seen.append
    items = [
        reg("x", P, {"v": 1}),
        reg("x", Q),  # taken by P, decided after it in the same entry
        reg("x", P),  # the same pid again: its first token
        reg(("t", 1), Q),
        [UNREGISTER, ("t", 1)],
        [UNREGISTER, "nobody"],
        reg(("t", 1), P),  # free again: a later position, a larger token
    ]
    results = applied(sm, 9, {"op": "batch", "items": items})
    base = 9 << TOKEN_SHIFT
    assert results == [base, pid_to_wire(P), base, base + 3, True, False, base + 6]
    assert sm.names["x"] == (P, {"v": 1}, base)
    assert sm.names[("t", 1)] == (P, None, base + 6)
    assert len(seen) == 1  # one listener call per entry, the changes in log order
    assert [(n, old is None, new is None) for n, old, new in seen[0]] == [
        ("x", True, False),
        (("t", 1), True, False),
        (("t", 1), False, True),
        (("t", 1), True, False),
    ]
    assert index_of(base + 6) == 9 and token_at(9, 6) == base + 6
    assert last_token(8) < base <= base + 6 <= last_token(9)


def test_a_bad_item_is_refused_alone() -> None:
    sm = NamesStateMachine()
    results = applied(
        sm, 3, {"op": "batch", "items": [["x", "not", "a pid"], reg("ok", P), [7, "y"]]}
    )
    assert isinstance(results[0], str) and isinstance(results[2], str)
    assert results[1] == token_at(3, 1)
    assert list(sm.names) == ["ok"]


def test_a_batch_over_the_position_limit_is_refused_whole() -> None:
    sm = NamesStateMachine()
    items = [reg(("n", i), P) for i in range((1 << TOKEN_SHIFT) + 1)]
    ok, value = Replica(sm).apply(encode_command(None, {"op": "batch", "items": items}), 4)
    assert not ok and "items" in value[1]
    assert sm.names == {}


def test_tokens_grow_per_name_across_entries_and_release_node_bounds_by_index() -> None:
    sm = NamesStateMachine()
    first = applied(sm, 5, {"op": "batch", "items": [reg("n", P), reg("m", P)]})
    applied(sm, 6, {"op": "batch", "items": [[UNREGISTER, "n"]]})
    second = applied(sm, 7, {"op": "batch", "items": [reg("n", Q)]})
    assert second[0] > first[0]
    # The names of a's processes registered up to index 5 (both positions) go; b's stays.
    assert applied(sm, 8, {"op": "release_node", "node": "a", "upto": last_token(5)}) == 1
    assert set(sm.names) == {"n"}


def test_snapshots_keep_tokens_and_an_older_snapshot_restores() -> None:
    sm = NamesStateMachine()
    applied(sm, 5, {"op": "batch", "items": [reg("n", P, [1, 2]), reg(("t", 1), Q)]})
    again = NamesStateMachine()
    again.restore(sm.snapshot())
    assert again.names == sm.names
    assert again.read("n") == [pid_to_wire(P), [1, 2], token_at(5, 0)]
    # A snapshot of the format before batches (its tokens were bare Raft indexes).
    old = msgpack.packb([["old", pid_to_wire(P), None, 3]])
    restored = NamesStateMachine()
    restored.restore(old)
    assert restored.names["old"] == (P, None, 3)
    applied(restored, 4, {"op": "batch", "items": [[UNREGISTER, "old"]]})
    (token,) = applied(restored, 5, {"op": "batch", "items": [reg("old", Q)]})
    assert token > 3


@pytest.mark.parametrize("op", ["register", "unregister"])
def test_the_single_commands_of_older_logs_still_apply(op: str) -> None:
    sm = NamesStateMachine()
    assert applied(sm, 2, {"op": "register", "name": "n", "pid": pid_to_wire(P)}) == ("ok", 2)
    if op == "unregister":
        assert applied(sm, 3, {"op": "unregister", "name": "n"}) is True
        assert sm.names == {}
    else:
        assert sm.names["n"][2] == 2
