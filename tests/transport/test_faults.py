"""Fault injection at the TCP transport: the controller, the faulty connections, the ADMIN
channel request, and the off switch that costs nothing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from transport_kit import CLUSTER, COOKIE, WAIT, Recorder

import ember
from ember import UsageError
from ember.cli._faultcmd import format_state, parse_delay, request_of
from ember.cli._main import build_parser
from ember.transport import FaultInjectionDisabled, FaultState
from ember.transport._config import TransportConfig
from ember.transport._connection import Connection
from ember.transport._faults import Faults, FaultyConnection
from ember.transport._frame import Channel
from ember.transport._transport import Transport

FAST = TransportConfig.local(heartbeat_interval=0.05, heartbeat_timeout=0.2, handshake_timeout=1.0)
CHAOS = FAST.replace(fault_injection=True)


def controller(enabled: bool = True, seed: int = 1) -> Faults:
    return Faults("a", lambda *_: None, enabled=enabled, rng=random.Random(seed))


# -- the controller (no I/O) ----------------------------------------------------------------


def test_set_heal_clear_and_state() -> None:
    f = controller()
    assert f.state() == FaultState("a", True) and not f.active
    s = f.set(partition=["b", "c"], delay=(0.01, 0.05))
    assert s.partitioned == {"b", "c"} and s.delay == (0.01, 0.05) and s.drop == 0.0
    assert f.active and f.blocks("b") and not f.blocks("d")
    s = f.set(drop=0.25)  # the others keep their values
    assert (s.drop, s.delay, s.partitioned) == (0.25, (0.01, 0.05), {"b", "c"})
    assert f.heal("b").partitioned == {"c"}
    assert f.heal().partitioned == frozenset()
    assert f.set(partition=["d"]).partitioned == {"d"}  # a partition replaces the last one
    f.clear()
    assert not f.active and f.state().partitioned == frozenset()


@pytest.mark.parametrize(
    "change",
    [
        {"drop": 1.5},
        {"drop": -0.1},
        {"drop": True},
        {"delay": (0.05, 0.01)},
        {"delay": 61.0},
        {"delay": (0.0, float("nan"))},
        {"delay": "10ms"},
        {"partition": "b"},
        {"partition": ["a"]},
        {"partition": [""]},
        {"disk_latency": -1},
        {"disk_latency": 61.0},
        {"disk_failures": 1.5},
        {"clock_rate": 0.0},
        {"clock_rate": 11},
        {"clock_rate": "2x"},
    ],
)
def test_bad_values_are_usage_errors_and_change_nothing(change: dict[str, Any]) -> None:
    f = controller()
    f.set(drop=0.5)
    with pytest.raises(UsageError):
        f.set(**change)
    assert f.state().drop == 0.5 and f.state().partitioned == frozenset()


def test_a_node_not_started_for_testing_refuses_every_change() -> None:
    f = controller(enabled=False)
    for change in (lambda: f.set(drop=0.1), f.heal, f.clear, lambda: f.apply({"op": "clear"})):
        with pytest.raises(FaultInjectionDisabled, match="start it with --chaos"):
            change()
    assert f.state() == FaultState("a", False)  # reading still works
    assert not f.active


def test_apply_takes_the_wire_request_maps() -> None:
    f = controller()
    assert f.apply({"op": "set", "delay": [0.01, 0.02], "partition": ["b"]}).delay == (0.01, 0.02)
    assert f.apply({"op": "heal", "peers": ["b"]}).partitioned == frozenset()
    assert f.apply({}).node == "a"  # state by default
    for bad in ({"op": "explode"}, {"op": "clear", "drop": 1}, {"op": "heal", "peers": "b"}):
        with pytest.raises(UsageError):
            f.apply(bad)


def test_draws_replay_from_the_seed() -> None:
    def draws(seed: int) -> list[Any]:
        f = controller(seed=seed)
        f.set(drop=0.3, delay=(0.0, 0.1))
        return [(f.lose(), f.lag()) for _ in range(50)]

    assert draws(7) == draws(7) != draws(8)
    f = controller()
    f.set(drop=0.3)
    lost = sum(f.lose() for _ in range(2000))
    assert 450 < lost < 750 and f.state().dropped == lost


def test_the_node_faults_disk_and_clock() -> None:
    f = controller()
    s = f.apply({"op": "set", "disk_latency": 0.2, "disk_failures": 0.5, "clock_rate": 2.0})
    assert (s.disk_latency, s.disk_failures, s.clock_rate) == (0.2, 0.5, 2.0)
    assert not f.active  # the transport's own checks are not involved
    draws = [f.disk() for _ in range(400)]
    assert {latency for latency, _ in draws} == {0.2}
    failed = sum(fails for _, fails in draws)
    assert 140 < failed < 260
    state = f.state()
    assert state.disk_delayed == 400 and state.disk_failed == failed
    assert f.set(drop=0.1).clock_rate == 2.0  # the others keep their values
    s = f.clear()
    assert (s.disk_latency, s.disk_failures, s.clock_rate) == (0.0, 0.0, 1.0)
    assert f.disk() == (0.0, False)


def test_the_cli_shows_the_node_faults() -> None:
    f = controller()
    text = format_state(f.set(disk_latency=0.2, disk_failures=0.5, clock_rate=2.0))
    assert "+200 ms a save, 0.5 of saves fail" in text and "2x" in text
    cleared = format_state(f.clear())
    assert "disk delayed 0, disk failed 0" in cleared and "2x" not in cleared


def test_state_round_trips_through_a_dict() -> None:
    f = controller()
    state = f.set(partition=["b"], delay=(0.0, 0.5), drop=0.1, disk_latency=0.3, clock_rate=0.5)
    assert FaultState.from_dict(state.as_dict()) == state


def test_the_cli_reads_delays_and_actions() -> None:
    assert parse_delay("20ms") == (0.02, 0.02)
    assert parse_delay("10-50ms") == (0.01, 0.05)
    assert parse_delay("0.5-1s") == (0.5, 1.0)
    assert parse_delay("10ms-1s") == (0.01, 1.0)
    assert parse_delay("0") == (0.0, 0.0)
    with pytest.raises(UsageError):
        parse_delay("soon")
    parser = build_parser()
    base = ["fault", "--node", "n1@127.0.0.1:1", "--cookie-file", "c"]
    cases = {
        ("partition", "n2", "n3"): {"op": "set", "partition": ["n2", "n3"]},
        ("heal",): {"op": "heal", "peers": []},
        ("delay", "10-50ms"): {"op": "set", "delay": [0.01, 0.05]},
        ("drop", "0.1"): {"op": "set", "drop": 0.1},
        ("disk", "200ms"): {"op": "set", "disk_latency": 0.2, "disk_failures": 0.0},
        ("disk", "0", "--fail", "0.5"): {"op": "set", "disk_latency": 0.0, "disk_failures": 0.5},
        ("clock", "2"): {"op": "set", "clock_rate": 2.0},
        ("clear",): {"op": "clear"},
        ("status",): {"op": "state"},
    }
    for argv, request in cases.items():
        assert request_of(parser.parse_args([*base, *argv])) == request


# -- over TCP ---------------------------------------------------------------------------------

pytestmark_tcp = pytest.mark.ember_realtime


@contextlib.asynccontextmanager
async def pair(
    config_a: TransportConfig = CHAOS, config_b: TransportConfig = CHAOS
) -> AsyncIterator[tuple[Transport, Recorder, Transport, Recorder]]:
    ra, rb = Recorder(), Recorder()
    a = Transport("a", CLUSTER, COOKIE, 1, config_a, **ra.callbacks())
    b = Transport("b", CLUSTER, COOKIE, 1, config_b, **rb.callbacks())
    await a.start()
    await b.start()
    try:
        assert b.address is not None
        async with asyncio.timeout(WAIT):
            await a.connect("b", *b.address)
        yield a, ra, b, rb
    finally:
        await a.close()
        await b.close()


@pytestmark_tcp
async def test_off_by_default_the_plain_connection_is_used_and_changes_are_refused() -> None:
    async with pair(FAST, FAST) as (a, _ra, _b, _rb):
        assert not a.faults.enabled
        (conn,) = [p.conn for p in a._peers.values()]
        assert type(conn) is Connection  # no fault check on any write or read
        with pytest.raises(FaultInjectionDisabled):
            a.faults.set(partition=["b"])
    async with pair() as (a, _ra, _b, _rb):
        (conn,) = [p.conn for p in a._peers.values()]
        assert type(conn) is FaultyConnection


@pytestmark_tcp
async def test_a_partition_at_one_side_takes_the_connection_down_on_both_and_heals() -> None:
    async with pair() as (a, ra, b, rb):
        a.faults.set(partition=["b"])
        await ra.wait(lambda: len(ra.downs) == 1)
        await rb.wait(lambda: len(rb.downs) == 1)  # b heard nothing more either
        # Whichever side's heartbeat timeout fires first; the other may then see the close.
        assert {ra.downs[0][1], rb.downs[0][1]} <= {"heartbeat_timeout", "peer_closed"}
        assert "heartbeat_timeout" in {ra.downs[0][1], rb.downs[0][1]}
        # While partitioned, a cannot reach b and b cannot get in.
        a.send("b", Channel.USER, b"lost")
        assert b.address is not None and a.address is not None
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):  # the property: nothing connects meanwhile
                await b.connect("a", *a.address)
        state = a.faults.state()
        assert state.blocked_connections >= 1
        a.faults.heal()
        b.send("a", Channel.USER, b"after heal")
        await ra.wait(lambda: ra.payloads("b", Channel.USER) == [b"after heal"])
        assert a.connected_nodes() == ["b"]


@pytestmark_tcp
@pytest.mark.parametrize("side", ["sender", "receiver"])
async def test_a_partition_healed_before_the_heartbeat_timeout_leaves_no_gap(side: str) -> None:
    # TCP under a short partition delivers late, in order, or the connection breaks: a stream
    # with a hole and no down in between would be a fault no network makes (pg, for one,
    # trusts the transport's per-pair order and would diverge for ever).
    patient = CHAOS.replace(heartbeat_interval=0.5, heartbeat_timeout=3.0)
    async with pair(patient, patient) as (a, ra, b, rb):
        cut = a if side == "sender" else b
        for i in range(10):
            a.send("b", Channel.USER, b"%d" % i)
        await rb.wait(lambda: len(rb.payloads("a", Channel.USER)) == 10)
        cut.faults.set(partition=["b" if cut is a else "a"])
        for i in range(10, 20):
            a.send("b", Channel.USER, b"%d" % i)
        a._peers["b"].outbox.flush()  # written into the cut now
        async with asyncio.timeout(WAIT):  # the cut has met them (b: they arrived at b)
            while not (s := cut.faults.state()).blocked_frames and not s.blocked_reads:  # noqa: ASYNC110 - counters announce nothing
                await asyncio.sleep(0.01)
        assert len(rb.payloads("a", Channel.USER)) == 10  # nothing through the cut
        cut.faults.heal()
        for i in range(20, 30):
            a.send("b", Channel.USER, b"%d" % i)
        await rb.wait(lambda: len(rb.payloads("a", Channel.USER)) == 30)
        assert rb.payloads("a", Channel.USER) == [b"%d" % i for i in range(30)]
        assert not ra.downs and not rb.downs


@pytestmark_tcp
async def test_delay_holds_writes_back_in_order() -> None:
    # A delay beyond the heartbeat timeout would (rightly) take the connection down.
    patient = CHAOS.replace(heartbeat_interval=0.5, heartbeat_timeout=2.0)
    async with pair(patient, patient) as (a, _ra, _b, rb):
        a.faults.set(delay=(0.2, 0.3))
        start = time.monotonic()
        for i in range(50):
            a.send("b", Channel.USER, b"%d" % i)
        await rb.wait(lambda: len(rb.payloads("a", Channel.USER)) == 50)
        assert time.monotonic() - start >= 0.2  # a lower bound: never early
        assert rb.payloads("a", Channel.USER) == [b"%d" % i for i in range(50)]
        assert a.faults.state().delayed >= 1


@pytestmark_tcp
async def test_drop_loses_frames_counted_and_keeps_the_rest_in_order() -> None:
    async with pair() as (a, _ra, _b, rb):
        a.faults.set(drop=0.5)
        n = 400
        for i in range(n):
            a.send("b", Channel.USER, b"%d" % i)
        a._peers["b"].outbox.flush()  # written (or lost) now, so the count is final
        dropped = a.statistics().dropped_by_fault
        assert dropped == a.faults.state().dropped and n // 4 < dropped < 3 * n // 4
        await rb.wait(lambda: len(rb.payloads("a", Channel.USER)) == n - dropped)
        got = [int(p) for p in rb.payloads("a", Channel.USER)]
        assert got == sorted(got)


@pytestmark_tcp
async def test_nodes_ask_each_other_over_the_admin_channel() -> None:
    async with (
        ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=CHAOS) as a,
        ember.Node("b", listen="127.0.0.1:0", cookie=COOKIE, config=FAST) as b,
    ):
        assert a.address is not None and b.transport is not None and a.transport is not None
        await b.connect_node(f"a@{a.address}")
        ask = b.transport.faults.channel.ask
        state = await ask("a", {"op": "set", "partition": ["x", "y"]})  # not b: replies get back
        assert (state.node, state.enabled, state.partitioned) == ("a", True, {"x", "y"})
        assert a.transport.faults.state() == state
        with pytest.raises(UsageError, match="probability"):
            await ask("a", {"op": "set", "drop": 2})
        assert (await ask("a", {"op": "heal", "peers": ["x"]})).partitioned == {"y"}
        assert (await ask("a", {"op": "clear"})).partitioned == frozenset()
        # and the other way: b was not started for testing
        with pytest.raises(FaultInjectionDisabled):
            await a.transport.faults.channel.ask("b", {"op": "set", "drop": 0.1})
        assert (await a.transport.faults.channel.ask("b", {"op": "state"})).enabled is False
