"""Catching up a lagging member without a runaway (issue 9): a leader paused (SIGSTOP) while
the others elect a new one and write on, then resumed, lags behind the new leader by more than
fits in a few messages, while linearizable reads make the leader send a heartbeat round per
batch of reads. Every heartbeat response used to re-send the probe in flight (or free a slot of
a full window and send another), each one read again from storage: bytes in flight and reads
grew with the read rate instead of being bounded by the window (etcd's ``MaxInflightMsgs x
MaxSizePerMsg``, and ``MaxInflightBytes``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from raftkit import ids

from ember.consensus._memory import MemoryStorage
from ember.consensus._messages import Message, MsgType
from ember.consensus._sim import Simulation
from ember.consensus._types import Entry
from ember.testing import seeded, seeds

ENTRY = 100  # bytes of data per entry
MSG = 1024  # max_size_per_msg: about ten entries per append
READ_ROUNDS = 10  # heartbeat rounds per tick that reads cause


class CountingStorage(MemoryStorage):
    """Counts the entries the core reads back from storage."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        out = super().entries(lo, hi, max_bytes)
        self.read += len(out)
        return out


def _in_flight_to(sim: Simulation, member: str) -> int:
    """Bytes of entry data in appends sent to ``member`` that it has not read yet."""
    queued: Sequence[Message] = [m for _, _, m in sim._queue] + sim.paused.get(member, [])
    return sum(
        len(e.data) for m in queued if m.type == MsgType.APP and m.to == member for e in m.entries
    )


def _write(sim: Simulation, leader: str, n: int, tag: bytes) -> None:
    node = sim.node(leader)
    for k in range(n):
        node.propose(tag + b"%06d" % k + b"." * (ENTRY - len(tag) - 6))


@pytest.mark.parametrize(
    ("window", "config", "bound"),
    [
        # etcd's MaxInflightMsgs x MaxSizePerMsg.
        (4, {}, 4 * MSG),
        # A byte budget (MaxInflightBytes): full at or over it, so at most one message beyond.
        (256, {"max_inflight_bytes": 3 * MSG}, 4 * MSG),
    ],
    ids=["msgs", "bytes"],
)
@pytest.mark.parametrize("seed", seeds(3, 4))
def test_a_lagging_member_is_caught_up_within_the_window_whatever_the_reads(
    seed: int, window: int, config: dict[str, Any], bound: int
) -> None:
    with seeded(seed):
        _catch_up(seed, window, config, bound)


def _catch_up(seed: int, window: int, config: dict[str, Any], bound: int) -> None:
    sim = Simulation(
        ids(3),
        seed,
        latency=1,  # in order, like TCP; answers come a tick later
        check=False,  # the checker reads whole logs; run it once at the end
        storage=lambda _: CountingStorage(),
        max_size_per_msg=MSG,
        max_inflight_msgs=window,
        **config,
    )
    old = sim.wait_leader()
    sim.one(b"warm", 3)
    sim.pause(old)
    assert sim.run_until(lambda: sim.leader() not in (None, old), 100)
    new = sim.leader()
    assert new is not None
    backlog = 0
    for k in range(30):  # 600 entries (60 messages' worth) while the old leader is frozen
        _write(sim, new, 20, b"b%02d-" % k)
        backlog += 20
        sim.tick()
    sim.resume(old)

    store = sim.members[new].storage
    assert isinstance(store, CountingStorage)
    reads_before = store.read
    worst_flight = 0
    worst_reads = 0
    ticks = 0
    target = sim.node(new).raft.log.last_index()  # the backlog, caught up while writes go on
    while sim.members[old].last_applied < target or ticks < 5:
        ticks += 1
        assert ticks < 300, f"the resumed member did not catch up (seed {seed})"
        read_at_tick = store.read
        _write(sim, new, 2, b"w%03d-" % (ticks % 1000))
        for r in range(READ_ROUNDS):  # each batch of reads is confirmed by its own round
            sim.node(new).read_index(b"read-%d-%d" % (ticks, r))
            sim.step_once()
            worst_flight = max(worst_flight, _in_flight_to(sim, old))
        sim.tick()
        worst_flight = max(worst_flight, _in_flight_to(sim, old))
        worst_reads = max(worst_reads, store.read - read_at_tick)

    assert sim.run_until(
        lambda: sim.members[old].last_applied == sim.node(new).raft.log.committed, 20
    )
    assert worst_flight <= bound, (worst_flight, bound)
    # Per tick (READ_ROUNDS + 1 heartbeat rounds) the leader reads at most what the window holds,
    # plus the entries it applies; it never re-reads what is in flight.
    per_msg = MSG // ENTRY
    assert worst_reads <= bound // ENTRY + per_msg + 2 * 2, worst_reads
    # Over the whole catch-up: each entry is read about once to be sent and once to be applied.
    written = backlog + 2 * ticks
    assert store.read - reads_before <= 2 * written + 4 * per_msg, (store.read, written)
    sim.check()
    assert sim.members[old].applied == sim.members[new].applied


def test_a_full_window_is_probed_once_per_heartbeat_with_an_empty_append() -> None:
    # etcd: a heartbeat response to a follower whose window is full sends an empty append (it
    # carries nothing in flight again); its answer tells whether the window was lost.
    sim = Simulation(ids(3), 7, latency=1, max_size_per_msg=MSG, max_inflight_msgs=2)
    leader = sim.wait_leader()
    sim.one(b"warm", 3)
    follower = next(i for i in ids(3) if i != leader)
    sim.pause(follower)
    _write(sim, leader, 60, b"p-")
    sim.tick(3)
    sent: list[Message] = []
    send = sim._send

    def spy(msg: Message) -> None:
        if msg.type == MsgType.APP and msg.to == follower:
            sent.append(msg)
        send(msg)

    sim._send = spy  # type: ignore[method-assign]
    for r in range(READ_ROUNDS):
        sim.node(leader).read_index(b"r%d" % r)
        sim.step_once()
    sim.tick(4)
    assert sum(len(m.entries) for m in sent) == 0  # the window is full: nothing more
    sim.resume(follower)
    assert sim.run_until(
        lambda: sim.members[follower].last_applied == sim.node(leader).raft.log.committed, 100
    )
    assert sim.members[follower].applied == sim.members[leader].applied
