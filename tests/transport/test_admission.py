"""The admission core: which inbound handshakes run, which make room, which are refused.

Pure: connections are plain keys and time is passed in.
"""

from __future__ import annotations

import pytest

from ember.transport._admission import Admission, Admit, Refuse


def table(**overrides: int | float) -> Admission[str]:
    options: dict[str, int | float] = {
        "max_pending": 4,
        "silent_timeout": 1.0,
        "failure_limit": 3,
        "failure_window": 60.0,
        "suspect_pending": 2,
    }
    options.update(overrides)
    return Admission(**options)  # type: ignore[arg-type]


def admitted(verdict: Admit[str] | Refuse) -> Admit[str]:
    assert isinstance(verdict, Admit), verdict
    return verdict


def test_a_full_table_of_silent_handshakes_makes_room_oldest_first() -> None:
    t = table()
    for i in range(4):
        assert admitted(t.arrive(f"s{i}", "10.0.0.9", now=0.1 * i)).evict == ()
    assert admitted(t.arrive("good", "10.0.0.1", now=0.5)).evict == ("s0",)
    t.spoke("good")
    # The flood goes on: each newcomer evicts the oldest silent one, never the speaker.
    evicted = [admitted(t.arrive(f"n{i}", "10.0.0.9", now=0.6)).evict for i in range(10)]
    assert [e for (e,) in evicted[:3]] == ["s1", "s2", "s3"]
    assert "good" in t
    assert t.counts.evicted_silent == 11


def test_a_newcomer_is_refused_busy_only_when_everyone_has_spoken() -> None:
    t = table()
    for i in range(4):
        t.arrive(f"p{i}", f"10.0.0.{i}", now=0.0)
        t.spoke(f"p{i}")
    verdict = t.arrive("late", "10.0.0.9", now=0.1)
    assert verdict == Refuse("busy", "4 handshakes in progress")
    assert "late" not in t and t.counts.refused_busy == 1
    t.leave("p0", now=0.2, failed=False)
    assert admitted(t.arrive("late", "10.0.0.9", now=0.2)).evict == ()


def test_under_pressure_silence_is_cut_short() -> None:
    t = table(max_pending=8, silent_timeout=1.0)
    for i in range(4):  # half full: pressure
        t.arrive(f"s{i}", "10.0.0.9", now=0.0)
    t.spoke("s3")  # spoke: kept however old
    assert admitted(t.arrive("x", "10.0.0.1", now=0.9)).evict == ()  # not silent long enough
    verdict = admitted(t.arrive("y", "10.0.0.1", now=1.0))
    assert verdict.evict == ("s0", "s1", "s2")
    assert "s3" in t and "x" in t


def test_without_pressure_silence_is_left_to_the_handshake_timeout() -> None:
    t = table(max_pending=8)
    t.arrive("s", "10.0.0.9", now=0.0)
    assert admitted(t.arrive("x", "10.0.0.1", now=100.0)).evict == ()
    assert "s" in t


def test_failures_make_an_address_suspect_but_never_lock_it_out() -> None:
    t = table(failure_limit=3, suspect_pending=2)
    for i in range(3):
        assert not admitted(t.arrive(f"bad{i}", "10.0.0.5", now=0.0)).suspect
        t.spoke(f"bad{i}")
        t.leave(f"bad{i}", now=0.0, failed=True)
    assert t.is_suspect("10.0.0.5", now=1.0)
    first = admitted(t.arrive("a", "10.0.0.5", now=1.0))
    assert first.suspect  # admitted, to be paced
    t.spoke("a")
    t.arrive("b", "10.0.0.5", now=1.0)
    # Its share is taken: a third handshake from it evicts its own silent one...
    assert admitted(t.arrive("c", "10.0.0.5", now=1.0)).evict == ("b",)
    t.spoke("c")
    # ... and when both of its handshakes have spoken, it is refused for now.
    verdict = t.arrive("d", "10.0.0.5", now=1.0)
    assert isinstance(verdict, Refuse) and verdict.kind == "rate_limited"
    assert "10.0.0.5 failed over 3 handshakes in 60 s" in verdict.detail
    # Another address is not affected, and the old failures leave the window.
    assert not admitted(t.arrive("e", "10.0.0.6", now=1.0)).suspect
    assert not t.is_suspect("10.0.0.5", now=61.0)
    assert t.counts.rate_limited == 1 and t.counts.suspect == 3


def test_an_evicted_silent_handshake_counts_as_a_failure_of_its_address() -> None:
    t = table(max_pending=1, failure_limit=2)
    t.arrive("s0", "10.0.0.9", now=0.0)
    t.arrive("s1", "10.0.0.9", now=0.0)  # evicts s0
    t.arrive("s2", "10.0.0.9", now=0.0)  # evicts s1
    assert t.is_suspect("10.0.0.9", now=0.0)
    assert not t.is_suspect("10.0.0.1", now=0.0)


def test_leave_is_idempotent_and_ignores_evicted_keys() -> None:
    t = table(max_pending=1, failure_limit=1)
    t.arrive("s0", "10.0.0.9", now=0.0)
    t.arrive("s1", "10.0.0.1", now=0.0)  # evicts s0 (one failure of 10.0.0.9)
    t.leave("s0", now=0.0, failed=True)  # already gone: not counted twice
    t.leave("s1", now=0.0, failed=False)
    t.leave("s1", now=0.0, failed=True)
    assert len(t) == 0
    assert not t.is_suspect("10.0.0.1", now=0.0)


@pytest.mark.parametrize("flood", [10, 1000])
def test_a_speaker_keeps_its_slot_against_any_silent_flood(flood: int) -> None:
    t = table(max_pending=64)
    for i in range(64):
        t.arrive(f"s{i}", f"10.1.{i // 250}.{i % 250}", now=0.0)
    admitted(t.arrive("good", "10.0.0.1", now=0.01))
    t.spoke("good")
    for i in range(flood):
        admitted(t.arrive(f"f{i}", f"10.2.{i // 250}.{i % 250}", now=0.02))
    assert "good" in t and len(t) == 64
