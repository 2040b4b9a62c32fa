"""The pure pg core against pg.erl's handlers, message by message (no loop, no network).

Two cores talk through a hand-driven exchange: every ``Send`` effect of one is delivered to the
other by :func:`pump`, as the PG channel would (in order, per pair)."""

from __future__ import annotations

from typing import Any

import pytest

from ember import Pid, Ref
from ember.registry import GroupEvent, PgCore
from ember.registry._pg_core import Notify, Send, Unwatch, Watch


def pid(node: str, n: int) -> Pid:
    return Pid(node, n, 1)


def ref(n: int) -> Ref:
    return Ref("a", n, 1)


A1, A2, A3 = pid("a", 1), pid("a", 2), pid("a", 3)
B1, B2 = pid("b", 1), pid("b", 2)


def pump(cores: dict[str, tuple[PgCore, int]], *, drop: set[str] = frozenset()) -> list[Any]:  # type: ignore[assignment]
    """Deliver every pending Send between ``cores`` (node -> (core, instance)) until none is
    left; returns the other effects, in order."""
    others: list[Any] = []
    moved = True
    while moved:
        moved = False
        for node, (core, instance) in cores.items():
            for effect in core.take_effects():
                if not isinstance(effect, Send):
                    others.append((node, effect))
                    continue
                for peer_node, peer_instance in effect.peers:
                    if peer_node in drop or peer_node not in cores:
                        continue
                    target, target_instance = cores[peer_node]
                    if peer_instance not in (0, target_instance):
                        continue
                    target.handle((node, instance), effect.message)
                    moved = True
    return others


def test_single_node_groups_as_in_pg_suite_single() -> None:
    core = PgCore()
    core.join_local("single", [A1])
    core.join_local("single", [A1, A1])
    assert core.get_local_members("single") == [A1, A1, A1]
    assert core.get_members("single") == [A1, A1, A1]
    assert core.leave_local("$missing$", [A1]) is False
    assert core.leave_local("single", [A1, A1]) is True
    assert core.leave_local("single", [A1]) is True
    assert core.which_groups() == []
    assert core.get_members("single") == []
    effects = core.take_effects()
    assert effects.count(Watch(A1)) == 1 and effects.count(Unwatch(A1)) == 1
    # double: a second process, which exits
    core.join_local("single", [A1])
    core.join_local("single", [A2])
    assert sorted(core.get_members("single")) == [A1, A2]
    core.local_exit(A2)
    assert core.get_local_members("single") == [A1]
    core.local_exit(A2)  # a late second report is a no-op
    assert core.get_members("single") == [A1]


def test_newest_first_and_multiset_leave() -> None:
    core = PgCore()
    core.join_local("g", [A1, A2])
    core.join_local("g", [A3])
    assert core.get_members("g") == [A3, A1, A2]
    # a leave listing a non-member still counts when another listed pid was one
    assert core.leave_local("g", [A2, pid("a", 9)]) is True
    assert core.get_members("g") == [A3, A1]
    assert core.which_local_groups() == ["g"]


def test_join_of_no_pids_makes_an_empty_group_as_otp_does() -> None:
    core = PgCore()
    core.join_local("empty", [])
    assert core.which_groups() == ["empty"] and core.get_members("empty") == []
    assert core.which_local_groups() == []


def test_exit_leaves_each_occurrence_with_one_event_each() -> None:
    core = PgCore()
    core.join_local("g", [A1])
    core.join_local("h", [A1])
    core.join_local("g", [A1])
    mon = ref(1)
    core.monitor_scope(A3, mon)
    core.take_effects()
    core.local_exit(A1)
    events = [e.event for e in core.take_effects() if isinstance(e, Notify)]
    # one event per occurrence; the groups joined last go first (OTP orders repeated
    # joins interleaved with others by each join: g, h, g; see docs/pg.md)
    assert events == [
        GroupEvent(mon, "leave", "h", (A1,)),
        GroupEvent(mon, "leave", "g", (A1,)),
        GroupEvent(mon, "leave", "g", (A1,)),
    ]
    assert core.which_groups() == []


def test_monitor_returns_state_then_one_event_per_operation() -> None:
    core = PgCore()
    core.join_local("one", [A1])
    scope_ref, group_ref, other_ref = ref(1), ref(2), ref(3)
    assert core.monitor_scope(A3, scope_ref) == {"one": [A1]}
    assert core.monitor_group(A3, group_ref, "two") == []
    assert core.monitor_group(A2, other_ref, "one") == [A1]
    core.take_effects()
    core.join_local("two", [A1, A1])
    notes = [(e.pid, e.event) for e in core.take_effects() if isinstance(e, Notify)]
    assert notes == [
        (A3, GroupEvent(scope_ref, "join", "two", (A1, A1))),
        (A3, GroupEvent(group_ref, "join", "two", (A1, A1))),
    ]
    assert core.demonitor(group_ref) is True
    assert core.demonitor(group_ref) is False
    assert core.demonitor(scope_ref) is True
    core.join_local("two", [A2])
    assert not [e for e in core.take_effects() if isinstance(e, Notify)]
    assert core.monitored_groups == {"one": [(A2, other_ref)]}


def two() -> dict[str, tuple[PgCore, int]]:
    cores = {"a": (PgCore(), 1), "b": (PgCore(), 1)}
    cores["a"][0].node_up("b")
    cores["b"][0].node_up("a")
    pump(cores)
    return cores


def test_discover_sync_join_leave_between_two_scopes() -> None:
    cores = two()
    a, b = cores["a"][0], cores["b"][0]
    assert set(a.remote) == {("b", 1)} and set(b.remote) == {("a", 1)}
    a.join_local("two", [A1])
    pump(cores)
    assert b.get_members("two") == [A1] and b.get_local_members("two") == []
    b.join_local("two", [B1, B2])
    pump(cores)
    assert a.get_members("two") == [B1, B2, A1]
    assert b.leave_local("two", [B2, B1]) is True
    pump(cores)
    assert a.get_members("two") == [A1]
    assert a.remote[("b", 1)] == {}  # empty_group_by_remote_leave: no empty group kept


def test_peer_down_drops_what_it_reported_with_events() -> None:
    cores = two()
    a, b = cores["a"][0], cores["b"][0]
    b.join_local("g", [B1])
    b.join_local("g", [B1])
    pump(cores)
    mon = ref(5)
    a.monitor_group(A1, mon, "g")
    a.take_effects()
    a.peer_down(("b", 1))
    notes = [e.event for e in a.take_effects() if isinstance(e, Notify)]
    assert notes == [GroupEvent(mon, "leave", "g", (B1, B1))]
    assert a.get_members("g") == []
    # a join from a peer that left the overlay is ignored (overlay_missing)
    a.handle(("b", 1), ("join", "g", [B2]))
    assert a.get_members("g") == []


def test_forced_sync_replaces_a_peer_view_silently_for_changed_groups() -> None:
    cores = two()
    a, b = cores["a"][0], cores["b"][0]
    a.join_local("one", [A1])
    b.join_local("one", [B1])
    pump(cores)
    assert sorted(a.get_members("one")) == [A1, B1]
    mon = ref(7)
    a.monitor_scope(A2, mon)
    a.take_effects()
    # a broken sync: "one" changes, "forced_sync" appears
    a.handle(("b", 1), ("sync", [("one", [B1, B1]), ("forced_sync", [B1, B1])]))
    notes = [e.event for e in a.take_effects() if isinstance(e, Notify)]
    assert notes == [GroupEvent(mon, "join", "forced_sync", (B1, B1))]  # "one": silent
    assert sorted(a.get_members("one")) == [A1, B1, B1]
    assert a.get_members("forced_sync") == [B1, B1]
    # a discover makes b send its true state: the bogus group leaves, "one" is mended
    a.take_effects()
    b.handle(("a", 1), ("discover",))
    pump(cores)
    assert sorted(a.get_members("one")) == [A1, B1]
    assert a.get_members("forced_sync") == []


def test_thundering_herd_of_identical_syncs_changes_nothing_after_the_first() -> None:
    core = PgCore()
    for i in range(10_000):
        core.join_local(("group", i), [A1])
    core.take_effects()
    fake = [(("group", 1), [B1, B1])]
    for _ in range(2_000):
        core.handle(("b", 1), ("sync", fake))
    assert core.get_members(("group", 1)) == [B1, B1, A1]
    core.join_local("thundering_herd", [A1])
    assert core.get_members("thundering_herd") == [A1]


def test_scope_restart_keeps_remote_members_and_forgets_local_ones() -> None:
    cores = two()
    cores["a"][0].join_local("g", [A1, A1])
    cores["b"][0].join_local("g", [B1])
    pump(cores)
    # a's scope restarts: b sees the old instance go down, the new one discovers
    cores["b"][0].peer_down(("a", 1))
    cores["a"] = (PgCore(), 2)
    cores["a"][0].discover_all((("b", 0),))
    pump(cores)
    assert cores["a"][0].get_members("g") == [B1]
    assert cores["b"][0].get_members("g") == [B1]


def test_a_malformed_message_raises_value_error() -> None:
    with pytest.raises(ValueError):
        PgCore().handle(("b", 1), ("bogus",))
