"""StateMachine, @apply, KVStateMachine and the client sessions of Replica (no event loop)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ember import UsageError
from ember.consensus import KVStateMachine, StateMachine, apply
from ember.consensus._replica import Replica, Session, encode_command
from ember.consensus._state_machine import resolve_state_machine, state_machine_ref


class Base(StateMachine):
    @apply("a")
    def a(self, cmd: dict[str, Any]) -> str:
        return "base-a"

    @apply("b")
    def b(self, cmd: dict[str, Any]) -> str:
        return "base-b"


class Child(Base):
    @apply("b")
    def b2(self, cmd: dict[str, Any]) -> str:
        return "child-b"

    @apply("c")
    def c(self, cmd: dict[str, Any]) -> Any:
        self.state[cmd["k"]] = cmd["v"]
        return {"set": cmd["k"]}


def test_handlers_are_collected_through_inheritance() -> None:
    assert Base.handlers == {"a": "a", "b": "b"}
    assert Child.handlers == {"a": "a", "b": "b2", "c": "c"}
    sm = Child()
    assert sm.apply_command({"op": "a"}) == "base-a"
    assert sm.apply_command({"op": "b"}) == "child-b"
    with pytest.raises(UsageError, match="no handler"):
        sm.apply_command({"op": "zzz"})
    with pytest.raises(UsageError, match="no handler"):
        sm.apply_command(["a"])


def test_apply_needs_a_name() -> None:
    with pytest.raises(UsageError):
        apply("")


def test_default_snapshot_round_trips_state() -> None:
    sm = Child()
    sm.apply_command({"op": "c", "k": 1, "v": [1, 2]})
    other = Child()
    other.restore(sm.snapshot())
    assert other.state == {1: [1, 2]}
    assert other.read(1) == [1, 2]


def test_kv_state_machine() -> None:
    kv = KVStateMachine()
    assert kv.apply_command({"key": "a", "value": 1}) is None
    assert kv.apply_command({"key": "a", "value": 2, "op": "set"}) == 1
    assert kv.read("a") == 2
    assert kv.apply_command({"key": "a", "op": "delete"}) is True
    assert kv.apply_command({"key": "a", "op": "delete"}) is False
    assert kv.read("a") is None


def chosen(request: str, client: str = "c1") -> Session:
    """The session of a write whose id the caller chose (no seq), from a handle at mark 1."""
    return (client, "s", request, None, 1)


def numbered(seq: int, mark: int, client: str = "c1", stream: str = "s") -> Session:
    """The session of a handle's own request ``seq`` of ``stream`` (id ``w<seq>``)."""
    return (client, stream, f"w{seq}", seq, mark)


def test_replica_applies_a_session_key_once_and_snapshots_sessions() -> None:
    replica = Replica(Child(), session_limit=2)
    assert replica.apply(encode_command(chosen("r1"), {"op": "c", "k": "x", "v": 1})) == (
        True,
        {"set": "x"},
    )
    replica.state_machine.state["x"] = 99  # a second apply would overwrite this
    assert replica.apply(encode_command(chosen("r1"), {"op": "c", "k": "x", "v": 1})) == (
        True,
        {"set": "x"},
    )
    assert replica.state_machine.state["x"] == 99 and replica.duplicates == 1
    assert replica.apply(encode_command(None, {"op": "a"})) == (True, "base-a")
    assert replica.apply(encode_command(None, {"op": "a"})) == (True, "base-a")
    assert replica.duplicates == 1  # no session: applied each time
    # Another client may use the same request id: sessions are per client.
    assert replica.apply(encode_command(chosen("r1", "c2"), {"op": "a"})) == (True, "base-a")

    copy = Replica(Child(), session_limit=2)
    copy.restore(replica.snapshot())
    assert copy.state_machine.state == {"x": 99}
    assert copy.apply(encode_command(chosen("r1"), {"op": "c", "k": "x", "v": 5}))[0] is True
    assert copy.state_machine.state == {"x": 99}  # the session came along

    for k in range(2, 5):  # the oldest outcomes are evicted beyond the limit
        replica.apply(encode_command(chosen(f"r{k}"), {"op": "a"}))
    assert list(replica.sessions) == [("c1", "r3"), ("c1", "r4")]


def test_a_clients_numbered_outcomes_are_forgotten_once_its_mark_passes_them() -> None:
    replica = Replica(Child())
    for seq in (1, 2, 4, 3):  # concurrent writes commit in any order; 1 is still open
        replica.apply(encode_command(numbered(seq, mark=1), {"op": "a"}))
    replica.apply(encode_command(chosen("mine"), {"op": "a"}))
    replica.apply(encode_command(numbered(7, mark=1, client="other"), {"op": "a"}))
    assert len(replica.sessions) == 6
    replica.apply(encode_command(numbered(5, mark=3), {"op": "a"}))  # 1 and 2 are answered
    assert sorted(r for c, r in replica.sessions if c == "c1") == ["mine", "w3", "w4", "w5"]
    # A retry of an open one is still a duplicate; the other client is untouched.
    assert replica.apply(encode_command(numbered(3, mark=3), {"op": "a"})) == (True, "base-a")
    assert replica.duplicates == 1
    copy = Replica(Child())
    copy.restore(replica.snapshot())
    for r in (copy, replica):  # the heaps are rebuilt on restore: both forget alike
        r.apply(encode_command(numbered(6, mark=7), {"op": "a"}))
    assert list(copy.sessions) == list(replica.sessions)
    assert sorted(replica.sessions) == [("c1", "mine"), ("c1", "w6"), ("other", "w7")]


def test_evicted_numbered_outcomes_leave_no_trace() -> None:
    replica = Replica(Child(), session_limit=3)
    for seq in range(1, 50):  # a client that never advances its mark (it vanished)
        replica.apply(encode_command(numbered(seq, mark=1), {"op": "a"}))
    assert list(replica.sessions) == [("c1", "w47"), ("c1", "w48"), ("c1", "w49")]
    assert len(replica._numbered["c1", "s"]) == 3
    replica.apply(encode_command(numbered(50, mark=50), {"op": "a"}))  # it is back
    assert list(replica.sessions) == [("c1", "w50")]
    assert replica._numbered == {("c1", "s"): [(50, "w50")]}


def test_a_mark_forgets_only_its_own_streams_outcomes() -> None:
    # A client id reused after a restart starts a new stream: its marks must not forget what
    # the old stream left open (a retry of it from the new handle must still apply once).
    replica = Replica(Child())
    replica.apply(encode_command(("c1", "old", "old-1", 1, 1), {"op": "a"}))
    for seq in range(1, 4):
        replica.apply(encode_command(("c1", "new", f"new-{seq}", seq, seq), {"op": "a"}))
    assert ("c1", "old-1") in replica.sessions
    assert replica.apply(encode_command(chosen("old-1"), {"op": "a"})) == (True, "base-a")
    assert replica.duplicates == 1


def test_replica_reports_handler_errors_and_unencodable_results() -> None:
    class Bad(StateMachine):
        @apply("boom")
        def boom(self, cmd: Any) -> None:
            raise KeyError("nope")

        @apply("obj")
        def obj(self, cmd: Any) -> object:
            return object()

    replica = Replica(Bad())
    ok, (kind, message) = replica.apply(encode_command(chosen("k"), {"op": "boom"}))
    assert not ok and kind == "builtins.KeyError" and "nope" in message
    ok, (kind, _) = replica.apply(encode_command(None, {"op": "obj"}))
    assert not ok and kind == "builtins.TypeError"
    assert [s[:3] for s in msgpack.unpackb(replica.snapshot())[1]] == [["c1", "k", "s"]]
    again = Replica(Bad())
    again.restore(replica.snapshot())
    assert again.snapshot() == replica.snapshot()  # order and outcomes survive a snapshot


def test_state_machine_references() -> None:
    assert state_machine_ref(KVStateMachine) == "ember.consensus._state_machine:KVStateMachine"
    ref = state_machine_ref(Child)
    assert resolve_state_machine(ref) is Child
    assert resolve_state_machine(ref, allow=(Child.__module__,)) is Child
    with pytest.raises(UsageError, match="spawn_allow"):
        resolve_state_machine(ref, allow=("ember.",))
    for bad in ("nocolon", "ember.consensus:Nope", "builtins:dict", ":X"):
        with pytest.raises(UsageError):
            resolve_state_machine(bad)
