"""StateMachine, @apply, KVStateMachine and the client sessions of Replica (no event loop)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ember import UsageError
from ember.consensus import KVStateMachine, StateMachine, apply
from ember.consensus._replica import Replica, encode_command
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


def test_replica_applies_a_session_key_once_and_snapshots_sessions() -> None:
    replica = Replica(Child(), session_limit=2)
    assert replica.apply(encode_command("c1/1", {"op": "c", "k": "x", "v": 1})) == (
        True,
        {"set": "x"},
    )
    replica.state_machine.state["x"] = 99  # a second apply would overwrite this
    assert replica.apply(encode_command("c1/1", {"op": "c", "k": "x", "v": 1})) == (
        True,
        {"set": "x"},
    )
    assert replica.state_machine.state["x"] == 99 and replica.duplicates == 1
    assert replica.apply(encode_command(None, {"op": "a"})) == (True, "base-a")
    assert replica.apply(encode_command(None, {"op": "a"})) == (True, "base-a")
    assert replica.duplicates == 1  # no key: no session

    copy = Replica(Child(), session_limit=2)
    copy.restore(replica.snapshot())
    assert copy.state_machine.state == {"x": 99}
    assert copy.apply(encode_command("c1/1", {"op": "c", "k": "x", "v": 5}))[0] is True
    assert copy.state_machine.state == {"x": 99}  # the session came along

    for k in range(2, 5):  # the oldest outcomes are evicted beyond the limit
        replica.apply(encode_command(f"c1/{k}", {"op": "a"}))
    assert list(replica.sessions) == ["c1/3", "c1/4"]


def test_replica_reports_handler_errors_and_unencodable_results() -> None:
    class Bad(StateMachine):
        @apply("boom")
        def boom(self, cmd: Any) -> None:
            raise KeyError("nope")

        @apply("obj")
        def obj(self, cmd: Any) -> object:
            return object()

    replica = Replica(Bad())
    ok, (kind, message) = replica.apply(encode_command("k", {"op": "boom"}))
    assert not ok and kind == "builtins.KeyError" and "nope" in message
    ok, (kind, _) = replica.apply(encode_command(None, {"op": "obj"}))
    assert not ok and kind == "builtins.TypeError"
    assert list(msgpack.unpackb(replica.snapshot(), strict_map_key=False)[1]) == ["k"]
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
