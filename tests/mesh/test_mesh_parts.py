"""The SWIM core's parts on their own: config, suspicion maths, local health, the broadcast
queue and the wire form. Pure, no event loop."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember import UsageError
from ember.mesh import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Member,
    MemberStatus,
    Nack,
    Ping,
    PushPull,
    Suspect,
    SwimConfig,
    decode_message,
    decode_packet,
    encode_message,
    encode_packet,
    message_size,
)
from ember.mesh._awareness import Awareness
from ember.mesh._broadcast import BroadcastQueue
from ember.mesh._messages import packet_header_size
from ember.mesh._suspicion import Suspicion, suspicion_timeout
from ember.transport import ProtocolError

# -- config --------------------------------------------------------------------------------


def test_profiles_mirror_memberlist() -> None:
    lan, local, wan = SwimConfig.lan(), SwimConfig.local(), SwimConfig.wan()
    assert (lan.probe_interval, lan.probe_timeout, lan.indirect_checks) == (1.0, 0.5, 3)
    assert (lan.gossip_interval, lan.gossip_fanout, lan.push_pull_interval) == (0.2, 3, 30.0)
    assert (lan.retransmit_mult, lan.suspicion_mult, lan.suspicion_max_timeout_mult) == (4, 4, 6)
    assert (lan.awareness_max_multiplier, lan.max_packet_size) == (8, 1400)
    assert (local.probe_timeout, local.indirect_checks, local.gossip_interval) == (0.2, 1, 0.1)
    assert (local.retransmit_mult, local.suspicion_mult) == (2, 3)
    assert (wan.probe_interval, wan.probe_timeout, wan.suspicion_mult) == (5.0, 3.0, 6)
    assert (wan.gossip_interval, wan.gossip_fanout, wan.push_pull_interval) == (0.5, 4, 60.0)
    assert SwimConfig.lan(gossip_fanout=5).gossip_fanout == 5
    assert lan.replace(probe_interval=2.0).probe_interval == 2.0


@pytest.mark.parametrize(
    "overrides",
    [
        {"probe_interval": 0},
        {"probe_interval": math.inf},
        {"probe_timeout": 1.0},  # not below the interval
        {"indirect_checks": -1},
        {"indirect_checks": 1.5},
        {"suspicion_mult": 1},
        {"retransmit_mult": 0},
        {"gossip_fanout": 0},
        {"tcp_fallback_probe": 1},
        {"reclaim_time": -1},
        {"max_packet_size": 700},  # cannot hold a ping plus a suspect
        {"max_meta_size": 1300},  # an alive with that much metadata cannot fit
        {"packet_overhead": 1000},
        {"awareness_max_multiplier": 0},
    ],
)
def test_config_refuses_values_that_cannot_work(overrides: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        SwimConfig(**overrides)  # type: ignore[arg-type]


def test_config_is_frozen_and_keyword_only() -> None:
    with pytest.raises(TypeError):
        SwimConfig(1.0)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        SwimConfig().probe_interval = 2.0  # type: ignore[misc]


def test_derived_quantities() -> None:
    c = SwimConfig.lan()
    # "retransmit a message 4 * log(N+1) times" (memberlist), with the ceiling of log10
    assert [c.retransmit_limit(n) for n in (1, 9, 10, 99, 100, 1000)] == [4, 4, 8, 8, 12, 16]
    # suspicion min = 4 * max(1, log10 n) * probe interval, max = 6 * min
    assert c.suspicion_timeouts(5) == (4.0, 24.0)
    assert c.suspicion_timeouts(100) == pytest.approx((8.0, 48.0))
    assert c.suspicion_confirmations(10) == 2
    assert c.suspicion_confirmations(3) == 0  # too few members to confirm
    assert c.push_pull_period(32) == 30.0
    assert c.push_pull_period(64) == 60.0
    assert c.push_pull_period(200) == 120.0
    assert c.packet_budget == 1400 - 64
    # the failure-detection bound grows with n (round-robin worst case) and the suspicion max
    assert c.detection_bound(10) < c.detection_bound(50) < c.detection_bound(200)
    assert c.detection_bound(10) > 2 * 9 * c.probe_interval + c.suspicion_timeouts(10)[1]


# -- suspicion -----------------------------------------------------------------------------


def test_suspicion_starts_at_max_and_reaches_min_with_k_confirmations() -> None:
    s = Suspicion(accuser="b", k=3, low=4.0, high=24.0, start=100.0)
    assert s.deadline == 124.0
    deadlines = [s.deadline]
    for who in ("c", "d", "e"):
        assert s.confirm(who)
        deadlines.append(s.deadline)
    assert deadlines == sorted(deadlines, reverse=True)
    assert s.deadline == pytest.approx(104.0)
    # the log formula: after 1 of 3, max - (max - min) * log(2) / log(4)
    assert deadlines[1] == pytest.approx(100 + 24 - 20 * math.log(2) / math.log(4))
    assert not s.confirm("f")  # enough: no more counting
    assert s.confirmations == 3


def test_suspicion_ignores_the_accuser_and_repeats() -> None:
    s = Suspicion(accuser="b", k=2, low=4.0, high=24.0, start=0.0)
    assert not s.confirm("b")
    assert s.confirm("c")
    assert not s.confirm("c")
    assert s.confirmations == 1


def test_suspicion_without_possible_confirmations_uses_min() -> None:
    s = Suspicion(accuser="b", k=0, low=4.0, high=24.0, start=10.0)
    assert s.deadline == 14.0
    assert not s.confirm("c")


@given(
    k=st.integers(1, 20),
    n=st.integers(0, 25),
    low=st.floats(0.1, 100),
    mult=st.floats(1, 10),
)
def test_suspicion_timeout_stays_within_bounds_and_shrinks(
    k: int, n: int, low: float, mult: float
) -> None:
    high = low * mult
    t = suspicion_timeout(n, k, low, high)
    assert low - 1e-9 <= t <= high + 1e-9
    assert suspicion_timeout(n + 1, k, low, high) <= t + 1e-9
    if n >= k:
        assert t == pytest.approx(low)


# -- local health --------------------------------------------------------------------------


def test_awareness_clamps_and_scales() -> None:
    a = Awareness(8)
    assert a.scale(1.0) == 1.0
    assert a.apply(3) == 3
    assert a.scale(0.5) == 2.0
    assert a.apply(100) == 7  # max_multiplier - 1
    assert a.scale(1.0) == 8.0
    assert a.apply(-100) == 0
    assert Awareness(1).apply(5) == 0  # a multiplier of 1 disables it


# -- broadcast queue -----------------------------------------------------------------------


def _alive(name: str, meta_size: int = 0) -> Alive:
    return Alive(name, f"{name}:1", 0, {"m": "x" * meta_size} if meta_size else {})


def _queue(**kw: int) -> BroadcastQueue:
    return BroadcastQueue(retransmit_mult=kw.get("mult", 4), max_size=kw.get("max_size", 1335))


def _push(q: BroadcastQueue, msg: Alive | Dead | Suspect) -> None:
    key = msg.node
    q.push(key, msg, message_size(msg))


def test_queue_keeps_one_message_per_member_the_newest() -> None:
    q = _queue()
    _push(q, Alive("b", "b:1", 1))
    _push(q, Suspect("b", 1, "c"))
    _push(q, Dead("b", 1, "c"))
    assert len(q) == 1
    [(msg, _)] = q.take(1, 0, 1336, n=10)
    assert msg == Dead("b", 1, "c")


def test_queue_prefers_least_transmitted_then_newest() -> None:
    q = _queue()
    for name in "abc":
        _push(q, _alive(name))
    budget_one = packet_header_size(1) + message_size(_alive("a"))
    first = q.take(0, 0, budget_one, n=10)
    assert [m.node for m, _ in first] == ["c"]  # type: ignore[union-attr]
    second = q.take(0, 0, budget_one, n=10)
    assert [m.node for m, _ in second] == ["b"]  # type: ignore[union-attr]
    _push(q, _alive("d"))  # fresh news jumps ahead of older untransmitted ones
    assert [m.node for m, _ in q.take(0, 0, budget_one, n=10)] == ["d"]  # type: ignore[union-attr]
    assert [m.node for m, _ in q.take(0, 0, budget_one, n=10)] == ["a"]  # type: ignore[union-attr]
    assert q.transmits("c") == 1 and q.transmits("d") == 1


def test_queue_retransmit_limit_is_lambda_log_n() -> None:
    q = _queue(mult=3)
    _push(q, _alive("a"))
    sends = 0
    while len(q):
        assert q.take(0, 0, 1336, n=50)
        sends += 1
    assert sends == 3 * math.ceil(math.log10(51)) == 6


def test_queue_skips_what_does_not_fit_and_takes_smaller_items() -> None:
    q = _queue()
    big, small = _alive("big", 400), _alive("s")
    _push(q, small)
    _push(q, big)  # newest: tried first
    used = 1336 - message_size(big) + 1  # one byte short for big
    got = q.take(used, 1, 1336, n=10)
    assert [m for m, _ in got] == [small]
    assert q.transmits("big") == 0


def test_queue_refuses_a_message_that_could_never_fit() -> None:
    q = _queue(max_size=300)
    huge = _alive("h", 500)
    assert not q.push("h", huge, message_size(huge))
    assert len(q) == 0 and q.oversized == 1


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 700), min_size=1, max_size=60),
    used=st.integers(1, 700),
    budget=st.integers(700, 1400),
)
def test_queue_never_packs_over_budget(sizes: list[int], used: int, budget: int) -> None:
    q = _queue(max_size=budget - 1)
    for i, meta in enumerate(sizes):
        _push(q, _alive(f"n{i}", meta))
    for _ in range(30):
        got = q.take(used, 1, budget, n=len(sizes))
        total = packet_header_size(1 + len(got)) + (used - 1) + sum(s for _, s in got)
        assert total <= budget
        # what was taken was encoded at the announced size
        msgs = [Ping(1, "x", "y", "z"), *(m for m, _ in got)]
        if used == message_size(msgs[0]) + 1:
            assert len(encode_packet(msgs)) == total


def test_packet_header_grows_past_fifteen_messages() -> None:
    q = _queue()
    for i in range(40):
        _push(q, Suspect(f"n{i:02}", 0, "x"))
    got = q.take(1, 0, 1336, n=40)
    assert len(got) > 15
    msgs = [m for m, _ in got]
    assert len(encode_packet(msgs)) == packet_header_size(len(msgs)) + sum(s for _, s in got)


# -- wire ----------------------------------------------------------------------------------

ALL_MESSAGES = [
    Ping(1, "b", "a", "a:1"),
    IndirectPing(2, "c", "c:1", "a", "a:1", True, 0.4),
    Ack(3, "b"),
    Nack(4, "d"),
    Suspect("b", 7, "a"),
    Alive("b", "b:1", 8, {"roles": ["raft"], "admin": "b:8080"}),
    Dead("b", 9, "a"),
    Dead("b", 9, "b"),
    PushPull(
        "a",
        "a:1",
        (
            Member("a", "a:1", MemberStatus.ALIVE, 1),
            Member("b", "b:1", MemberStatus.FAILED, 2, {"k": 1}),
        ),
        join=True,
    ),
]


def test_every_message_round_trips_at_its_announced_size() -> None:
    data = encode_packet(ALL_MESSAGES)
    assert decode_packet(data) == ALL_MESSAGES
    assert len(data) == packet_header_size(len(ALL_MESSAGES)) + sum(
        message_size(m) for m in ALL_MESSAGES
    )
    for m in ALL_MESSAGES:
        assert decode_message(encode_message(m)) == m
    assert Dead("b", 9, "b").is_leave and not Dead("b", 9, "a").is_leave


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never used in msgpack
        b"\x01",  # not an array
        encode_packet([]) + b"x",
        b"\x91\x93\x63\x01\x02",  # unknown tag 99
        b"\x91\x93\x02\xff\xa1b",  # negative seq
        b"\x91\x93\x02\x01\x01",  # source not a string
        b"\x91\x95\x05\xa1b\xa3b:1\x01\x90",  # meta not a map
    ],
)
def test_malformed_packets_raise_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_packet(data)
    assert info.value.kind == "malformed"


def test_names_over_the_limit_are_malformed() -> None:
    with pytest.raises(ProtocolError):
        decode_packet(encode_packet([Ack(1, "x" * 129)]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decoding_garbage_raises_only_protocol_errors(data: bytes) -> None:
    try:
        decode_packet(data)
    except ProtocolError:
        pass
