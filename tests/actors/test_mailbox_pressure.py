"""Back-pressure at a mailbox: send_wait waits for room, long mailboxes are reported.

On the virtual-time loop: nothing here sleeps on the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest

import ember
from ember import MailboxFull


class Got(list[Any]):
    """What a :class:`Gate` handled, in order; ``await got.reach(n)``, and ``entered`` is set
    once the gate holds its first message."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()
        self.entered = asyncio.Event()

    async def reach(self, n: int) -> None:
        async with asyncio.timeout(10):
            while len(self) < n:
                self.changed.clear()
                await self.changed.wait()


class Gate(ember.Actor):
    """Holds every message until its gate opens, then records them in order."""

    mailbox_size: ClassVar[int | None] = 4

    def __init__(self, gate: asyncio.Event, got: Got) -> None:
        self.gate = gate
        self.got = got

    async def receive(self, msg: Any) -> Any:
        self.got.entered.set()
        await self.gate.wait()
        self.got.append(msg)
        self.got.changed.set()


class DropGate(Gate):
    mailbox_policy = "drop_newest"


class OpenGate(Gate):
    mailbox_size = None  # unbounded, the default


@pytest.mark.parametrize("cls", [Gate, DropGate])
async def test_send_wait_waits_for_room_and_loses_nothing(cls: type[Gate]) -> None:
    gate, got = asyncio.Event(), Got()
    async with ember.Node("a") as node:
        pid = await node.spawn(cls, gate, got)
        node.send(pid, -1)
        await got.entered.wait()  # the process holds -1 in receive: the mailbox is empty
        for i in range(4):
            node.send(pid, i)  # the mailbox is now full
        if cls is Gate:
            with pytest.raises(MailboxFull):
                node.send(pid, "refused")
        producer = asyncio.ensure_future(
            asyncio.gather(*(node.send_wait(pid, 10 + i) for i in range(20)))
        )
        await asyncio.sleep(1.0)  # virtual: nothing can make room while the gate is shut
        assert not producer.done()
        gate.set()
        async with asyncio.timeout(10):
            await producer
        await got.reach(25)
        assert got == [-1, 0, 1, 2, 3, *range(10, 30)]
        counters = node.statistics().counters
        assert counters["mailbox_dropped"] == 0
        assert counters["mailbox_rejected"] == (1 if cls is Gate else 0)


async def test_send_wait_to_a_process_that_exits_meanwhile_returns() -> None:
    gate, got = asyncio.Event(), Got()
    async with ember.Node("a") as node:
        pid = await node.spawn(Gate, gate, got)
        node.send(pid, 0)
        await got.entered.wait()
        for i in range(1, 5):
            node.send(pid, i)
        waiting = asyncio.ensure_future(node.send_wait(pid, "late"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        ember.exit(pid, "kill")
        async with asyncio.timeout(5):
            await waiting  # it wakes with the exit; the message is dropped as to a dead pid
        assert node.statistics().counters["dropped_dead"] >= 1


async def test_ember_send_wait_and_unknown_names() -> None:
    gate, got = asyncio.Event(), Got()
    gate.set()
    async with ember.Node("a") as node:
        pid = await node.spawn(Gate, gate, got, name="gate")
        await ember.send_wait("gate", "by name")
        await ember.send_wait(pid, "by pid")
        with pytest.raises(ember.UnknownName):
            await node.send_wait("nobody", "x")
        await got.reach(2)
        assert got == ["by name", "by pid"]


async def test_a_long_unbounded_mailbox_is_logged_once_and_listed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate, got = asyncio.Event(), Got()
    async with ember.Node("a", mailbox_warning=50) as node:
        pid = await node.spawn(OpenGate, gate, got)
        for i in range(500):
            node.send(pid, i)
        lines = [r.getMessage() for r in caplog.records if "mailbox_warning" in r.getMessage()]
        assert len(lines) == 1
        assert (
            str(pid) in lines[0]
            and "OpenGate" in lines[0]
            and "has reached 50 messages (mailbox_warning)" in lines[0]
        )
        stats = node.statistics()
        assert stats.counters["mailbox_long"] == 1
        (info,) = stats.long_mailboxes
        assert info.pid == pid and info.mailbox_len == 500 and info.behaviour.endswith("OpenGate")
        gate.set()  # it drains: no longer long, and watched again
        await got.reach(500)
        assert node.statistics().long_mailboxes == ()
        gate.clear()
        for i in range(100):
            node.send(pid, i)
        assert node.statistics().counters["mailbox_long"] == 2  # a new episode, counted
        assert len(node.statistics().long_mailboxes) == 1


async def test_many_long_mailboxes_cost_one_line_per_class_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate, got = asyncio.Event(), Got()
    async with ember.Node("a", mailbox_warning=10) as node:
        pids = [await node.spawn(OpenGate, gate, got) for _ in range(30)]
        with caplog.at_level(logging.WARNING, "ember.actors"):
            for pid in pids:
                for i in range(20):
                    node.send(pid, i)
            assert node.statistics().counters["mailbox_long"] == 30
            assert len(node.statistics().long_mailboxes) == 30
            lines = [r.getMessage() for r in caplog.records if "mailbox_warning" in r.getMessage()]
            assert len(lines) == 1
            await asyncio.sleep(10.0)  # virtual: the interval ends, the count is reported
            lines = [r.getMessage() for r in caplog.records if "mailbox_warning" in r.getMessage()]
            assert len(lines) == 2 and "[and 28 more like it" in lines[1]


async def test_no_warning_when_turned_off_or_below_it(caplog: pytest.LogCaptureFixture) -> None:
    gate, got = asyncio.Event(), Got()
    async with ember.Node("a", mailbox_warning=None) as node:
        pid = await node.spawn(OpenGate, gate, got)
        for i in range(20_000):
            node.send(pid, i)
        assert node.statistics().counters["mailbox_long"] == 0
    with pytest.raises(ember.UsageError):
        ember.Node("b", mailbox_warning=1)
