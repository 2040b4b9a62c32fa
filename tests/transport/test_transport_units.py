"""Unit tests of the transport shell's pure parts: config, backoff, failure limiter, outbox."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
import random
from pathlib import Path

import pytest

from ember import EmberError, UsageError
from ember.transport._backoff import Backoff, FailureLimiter
from ember.transport._config import ChannelPolicy, TransportConfig
from ember.transport._frame import Channel, FrameDecoder
from ember.transport._queue import EARLY_WRITE, FrameTooLarge, Outbox, QueueFull
from ember.transport._stats import ChannelTraffic, TransportStats

# -- config -----------------------------------------------------------------------------------


def test_profiles_are_valid_and_ordered() -> None:
    local, lan, wan = TransportConfig.local(), TransportConfig.lan(), TransportConfig.wan()
    assert lan == TransportConfig()
    assert lan.heartbeat_interval == 1.0 and lan.heartbeat_timeout == 3.0
    for field in ("heartbeat_timeout", "handshake_timeout", "connect_backoff_max"):
        assert getattr(local, field) < getattr(lan, field) < getattr(wan, field), field
    assert (
        TransportConfig.local(heartbeat_interval=0.05, heartbeat_timeout=0.2).heartbeat_timeout
        == 0.2
    )


def test_config_is_frozen_keyword_only_and_documented() -> None:
    config = TransportConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.heartbeat_timeout = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        TransportConfig(1024)  # type: ignore[call-arg]
    tree = ast.parse(Path(inspect.getfile(TransportConfig)).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TransportConfig")
    documented = {
        stmt.target.id
        for stmt, after in zip(cls.body, cls.body[1:], strict=False)
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(stmt.target, ast.Name)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
    }
    assert documented == {field.name for field in dataclasses.fields(TransportConfig)}


@pytest.mark.parametrize(
    "changes",
    [
        {"heartbeat_interval": 0},
        {"heartbeat_interval": -1.0},
        {"heartbeat_timeout": float("inf")},
        {"heartbeat_interval": 1.0, "heartbeat_timeout": 1.5},
        {"max_frame_size": 0},
        {"max_frame_size": 1 << 33},
        {"max_frame_size": 32 << 20},  # larger than the control queue can hold
        {"connect_backoff_initial": 2.0, "connect_backoff_max": 1.0},
        {"connect_backoff_jitter": 1.0},
        {"handshake_failure_limit": 0},
        {"max_pending_handshakes": 1.5},
        {"write_buffer_high": 0},
        {"user_queue": "reject"},
    ],
)
def test_config_refuses_what_cannot_work(changes: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        TransportConfig(**changes)  # type: ignore[arg-type]


def test_channel_policy_validation() -> None:
    assert ChannelPolicy(max_frames=1, max_bytes=1, overflow="drop_newest").max_frames == 1
    for bad in (
        {"max_frames": 0, "max_bytes": 1, "overflow": "reject"},
        {"max_frames": 1, "max_bytes": 0, "overflow": "reject"},
        {"max_frames": 1, "max_bytes": 1, "overflow": "block"},
    ):
        with pytest.raises(UsageError):
            ChannelPolicy(**bad)  # type: ignore[arg-type]
    config = TransportConfig()
    assert config.policy(Channel.CONTROL).overflow == "drop_oldest"
    assert config.policy(Channel.USER).overflow == "reject"


# -- backoff and limiter ---------------------------------------------------------------------


def test_backoff_doubles_to_its_cap_with_bounded_jitter() -> None:
    plain = Backoff(0.1, 1.0, 0.0, random.Random(0))
    assert [plain.next() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    plain.reset()
    assert plain.next() == 0.1
    jittered = Backoff(0.1, 1.0, 0.2, random.Random(0))
    for base in (0.1, 0.2, 0.4, 0.8, 1.0):
        assert base * 0.8 <= jittered.next() <= base * 1.2
    replay = Backoff(0.1, 1.0, 0.2, random.Random(0))
    again = Backoff(0.1, 1.0, 0.2, random.Random(0))
    assert [replay.next() for _ in range(5)] == [again.next() for _ in range(5)]


def test_failure_limiter_window_and_key_bound() -> None:
    limiter = FailureLimiter(limit=2, window=10.0, max_keys=3)
    assert limiter.allowed("x", 0.0)
    limiter.failed("x", 0.0)
    limiter.failed("x", 1.0)
    assert not limiter.allowed("x", 5.0)
    assert limiter.allowed("y", 5.0)
    assert limiter.allowed("x", 10.5)  # the first failure left the window
    for key in "abcd":
        limiter.failed(key, 11.0)
        limiter.failed(key, 11.0)
    assert len(limiter._failures) == 3  # bounded: the oldest key was forgotten


# -- outbox -----------------------------------------------------------------------------------


class FakeWriter:
    def __init__(self) -> None:
        self.paused = False
        self.closing = False
        self.writes: list[bytes] = []
        self.frames = 0

    def write_frames(self, parts: list[bytes], frames: int, nbytes: int) -> bool:
        if self.closing:
            return False
        data = b"".join(parts)
        assert len(data) == nbytes
        self.writes.append(data)
        self.frames += frames
        return True


def outbox(**policies: ChannelPolicy) -> tuple[Outbox, TransportStats]:
    stats = TransportStats()
    config = TransportConfig(max_frame_size=1000, **policies)  # type: ignore[arg-type]
    return Outbox("peer", config, stats, ChannelTraffic(), asyncio.get_running_loop()), stats


async def test_outbox_counts_frames_and_bytes_by_channel_once_written() -> None:
    stats, traffic = TransportStats(), ChannelTraffic()
    box = Outbox("peer", TransportConfig(), stats, traffic, asyncio.get_running_loop())
    writer = FakeWriter()
    box.attach(writer)
    for i in range(3):
        box.put(Channel.USER, b"u%d" % i)
    box.put(Channel.RAFT, b"r" * 600)  # beyond the cached headers
    box.put(Channel.CONTROL, b"")
    await asyncio.sleep(0)
    assert len(writer.writes) == 1
    assert traffic.frames_sent[Channel.USER] == 3 and traffic.bytes_sent[Channel.USER] == 3 * 7
    assert traffic.frames_sent[Channel.RAFT] == 1 and traffic.bytes_sent[Channel.RAFT] == 605
    assert traffic.frames_sent[Channel.CONTROL] == 1 and traffic.bytes_sent[Channel.CONTROL] == 5
    assert sum(traffic.bytes_sent) == len(writer.writes[0])
    writer.closing = True  # a writer going down takes nothing: nothing more is counted as sent
    box.put(Channel.USER, b"lost")
    await asyncio.sleep(0)
    assert traffic.frames_sent[Channel.USER] == 3 and box.pending == 0
    snap = stats.snapshot(traffic)
    assert snap.frames_sent == 5 and snap.bytes_sent == 3 * 7 + 605 + 5
    assert snap.frames_sent_by_channel == {ch.name: 0 for ch in Channel} | {
        "USER": 3,
        "RAFT": 1,
        "CONTROL": 1,
    }
    assert snap.bytes_sent_by_channel["RAFT"] == 605 and snap.frames_received == 0


async def test_outbox_coalesces_one_write_per_iteration_control_first() -> None:
    box, stats = outbox()
    writer = FakeWriter()
    box.put(Channel.USER, b"u1")
    box.put(Channel.CONTROL, b"c1")
    assert box.pending == 2 and writer.writes == []  # no writer yet: frames wait
    box.attach(writer)
    box.put(Channel.USER, b"u2" * 300)  # beyond the cached headers
    await asyncio.sleep(0)
    assert len(writer.writes) == 1 and box.pending == 0
    frames = FrameDecoder().feed(writer.writes[0])
    assert [(f.channel, f.payload) for f in frames] == [
        (Channel.CONTROL, b"c1"),
        (Channel.USER, b"u1"),
        (Channel.USER, b"u2" * 300),
    ]
    writer.paused = True
    box.put(Channel.USER, b"u3")
    await asyncio.sleep(0)
    assert len(writer.writes) == 1 and box.pending == 1  # paused: nothing written
    writer.paused = False
    box.schedule()
    await asyncio.sleep(0)
    assert len(writer.writes) == 2 and stats == TransportStats()


async def test_outbox_early_writes_double_within_an_iteration() -> None:
    box, _ = outbox()
    writer = FakeWriter()
    box.attach(writer)
    for i in range(1000):
        box.put(Channel.USER, b"%d" % i)
    # Written at once at 16 queued frames, then 32, 64, 128, 256, 512 more would be due.
    assert [len(FrameDecoder().feed(w)) for w in writer.writes] == [16, 32, 64, 128, 256]
    await asyncio.sleep(0)  # the end-of-iteration flush takes the rest and starts over at 16
    assert writer.frames == 1000 and len(writer.writes) == 6
    for i in range(EARLY_WRITE):
        box.put(Channel.USER, b"%d" % i)
    assert len(writer.writes) == 7 and writer.frames == 1000 + EARLY_WRITE


async def test_outbox_policies_count_every_drop() -> None:
    tight = {"max_bytes": 1005}
    box, stats = outbox(
        user_queue=ChannelPolicy(max_frames=2, overflow="reject", **tight),
        control_queue=ChannelPolicy(max_frames=2, overflow="drop_oldest", **tight),
        pg_queue=ChannelPolicy(max_frames=2, overflow="drop_newest", **tight),
    )
    for i in range(4):
        box.put(Channel.CONTROL, b"%d" % i)
        box.put(Channel.PG, b"%d" % i)
    box.put(Channel.USER, b"0")
    box.put(Channel.USER, b"1")
    with pytest.raises(QueueFull) as info:
        box.put(Channel.USER, b"2")
    assert isinstance(info.value, EmberError) and "USER" in str(info.value)
    with pytest.raises(FrameTooLarge):
        box.put(Channel.USER, bytes(1000))
    assert stats.rejected["USER"] == 1
    assert stats.dropped_oldest["CONTROL"] == 2 and stats.dropped_newest["PG"] == 2
    writer = FakeWriter()
    box.attach(writer)
    await asyncio.sleep(0)
    payloads = [(f.channel, f.payload) for f in FrameDecoder().feed(writer.writes[0])]
    assert payloads == [
        (Channel.CONTROL, b"2"),
        (Channel.CONTROL, b"3"),
        (Channel.USER, b"0"),
        (Channel.USER, b"1"),
        (Channel.PG, b"0"),
        (Channel.PG, b"1"),
    ]
    # A byte bound applies too: one big frame evicts the small ones of a drop_oldest queue.
    box.put(Channel.CONTROL, b"a")
    box.put(Channel.CONTROL, bytes(999))
    assert box.queued(Channel.CONTROL) == 1 and stats.dropped_oldest["CONTROL"] == 3


async def test_outbox_put_wait_waits_for_room_and_close_fails_waiters() -> None:
    box, stats = outbox(user_queue=ChannelPolicy(max_frames=1, max_bytes=1005, overflow="reject"))
    box.put(Channel.USER, b"first")
    waiting = asyncio.ensure_future(box.put_wait(Channel.USER, b"second"))
    await asyncio.sleep(0)
    assert not waiting.done() and stats.rejected["USER"] == 0  # waiting is not rejecting
    writer = FakeWriter()
    box.attach(writer)
    async with asyncio.timeout(1):
        await waiting
    await asyncio.sleep(0)
    assert writer.frames == 2
    box.detach()
    box.put(Channel.USER, b"third")
    blocked = asyncio.ensure_future(box.put_wait(Channel.USER, b"fourth"))
    await asyncio.sleep(0)
    assert box.close(UsageError("closed")) == 1
    with pytest.raises(UsageError):
        await blocked


def test_both_transports_have_the_node_transport_interface() -> None:
    from ember.transport._interface import NodeTransport
    from ember.transport._memory import MemoryTransport
    from ember.transport._transport import Transport

    wanted = {name for name in vars(NodeTransport) if not name.startswith("_")}
    assert wanted >= {"send", "send_wait", "connect", "close", "connected_nodes", "start"}
    for cls in (Transport, MemoryTransport):
        for name in wanted:
            ours, theirs = getattr(cls, name), getattr(NodeTransport, name)
            if callable(theirs):
                assert inspect.signature(ours) == inspect.signature(theirs), (cls, name)
            else:
                assert isinstance(ours, property), (cls, name)


async def test_outbox_takes_the_peers_smaller_frame_limit_when_attached() -> None:
    box, stats = outbox()
    box.put(Channel.USER, bytes(10))
    box.put(Channel.USER, bytes(600))  # fits our limit (1000), not the peer's (500)
    box.put(Channel.CONTROL, bytes(20))
    writer = FakeWriter()
    box.attach(writer, peer_limit=500)
    assert stats.dropped_oversized == 1 and box.pending == 2
    with pytest.raises(FrameTooLarge) as info:
        box.put(Channel.USER, bytes(600))
    assert (info.value.limit, info.value.node) == (500, "peer")
    await asyncio.sleep(0)
    assert [len(f.payload) for f in FrameDecoder().feed(writer.writes[0])] == [20, 10]
    box.detach()
    box.attach(writer, peer_limit=5000)  # a larger peer limit: ours binds
    with pytest.raises(FrameTooLarge) as info:
        box.put(Channel.USER, bytes(1000))
    assert (info.value.limit, info.value.node) == (1000, None)
