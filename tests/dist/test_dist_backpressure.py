"""Back-pressure across the node boundary: a remote sender learns that a mailbox is full, and
send_wait paces a remote producer by credit. Two nodes in one loop over loopback TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest

import ember
from ember import MailboxFull
from ember.transport._config import TransportConfig

pytestmark = pytest.mark.ember_realtime

COOKIE = "test-cookie"
WAIT = 20.0  # generous: the machine is shared


class Consumer(ember.Actor):
    """A bounded mailbox in front of a consumer that works only while its gate is open; it
    records what it handled and the longest mailbox it saw."""

    mailbox_size: ClassVar[int | None] = 10

    def __init__(self, gate: asyncio.Event, got: list[Any], seen: list[int]) -> None:
        self.gate = gate
        self.got = got
        self.seen = seen

    async def receive(self, msg: Any) -> Any:
        if msg == "count":
            return len(self.got)
        await self.gate.wait()
        self.seen[0] = max(self.seen[0], len(self._mbox or ()) + 1)
        self.got.append(msg)
        return None


@asynccontextmanager
async def pair(window: int = 256) -> AsyncIterator[tuple[ember.Node, ember.Node]]:
    config = TransportConfig(heartbeat_interval=0.2, heartbeat_timeout=2.0, send_wait_window=window)
    a = ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=config)
    await a.start()
    b = ember.Node(
        "b", listen="127.0.0.1:0", cookie=COOKIE, config=config, connect=[f"a@{a.address}"]
    )
    try:
        await b.start()
        yield a, b
    finally:
        await b.stop()
        await a.stop()


async def until(predicate: Any, what: str) -> None:
    """Wait for a condition on counters that change as frames arrive (no event to await)."""
    async with asyncio.timeout(WAIT):
        while not predicate():  # noqa: ASYNC110 - counters have no event; bounded by WAIT
            await asyncio.sleep(0.005)


async def test_a_remote_sender_learns_the_mailbox_is_full_and_when_room_returns() -> None:
    async with pair() as (a, b):
        gate, got, seen = asyncio.Event(), [], [0]
        pid = await a.spawn(Consumer, gate, got, seen)
        refused = 0
        sent = 0
        # Flood from b until b itself refuses: the receiver told it the mailbox is full.
        async with asyncio.timeout(WAIT):
            while not refused:
                try:
                    b.send(pid, sent)
                    sent += 1
                except MailboxFull as exc:
                    assert exc.pid == pid
                    refused += 1
                if sent % 50 == 0:
                    await asyncio.sleep(0)  # let frames and the notice flow
        sa, sb = a.statistics().counters, b.statistics().counters
        assert sb["remote_full_received"] == 1 and sb["remote_refused_here"] == 1
        assert sa["remote_full_sent"] == 1
        assert sa["mailbox_rejected"] == sa["remote_rejected_for_peers"] > 0
        with pytest.raises(MailboxFull):  # refused at b without a frame: no more rejections at a
            b.send(pid, "again")
        b.cast(pid, "a cast never raises")  # counted, not raised
        gate.set()  # the consumer drains: a says ROOM, b sends again
        await until(lambda: b.statistics().counters["remote_rejected_there"] > 0, "ROOM")
        b.send(pid, "after room")
        await until(lambda: "after room" in got, "delivery after ROOM")
        sa, sb = a.statistics().counters, b.statistics().counters
        assert sa["remote_room_sent"] == 1
        # Both sides count the same refusals: a's mailbox refused them, b learnt how many.
        assert sb["remote_rejected_there"] == sa["remote_rejected_for_peers"]
        assert len(got) == sent - sa["mailbox_rejected"] + 1


async def test_send_wait_paces_a_remote_producer_by_credit_and_loses_nothing() -> None:
    window = 16
    async with pair(window) as (a, b):
        gate, got, seen = asyncio.Event(), [], [0]
        pid = await a.spawn(Consumer, gate, got, seen)
        n = 500

        async def produce() -> None:  # one producer: its order is kept
            for i in range(n):
                await b.send_wait(pid, i)

        producer = asyncio.ensure_future(produce())
        await until(lambda: b.statistics().counters["remote_paced_waits"] > 0, "a full window")
        assert not producer.done()  # the consumer has not taken anything: the producer waits
        gate.set()
        async with asyncio.timeout(WAIT):
            await producer
        await until(lambda: len(got) == n, "every message")
        assert got == list(range(n))  # in order, none lost
        sa, sb = a.statistics().counters, b.statistics().counters
        assert sa["mailbox_rejected"] == 0 and sa["mailbox_dropped"] == 0
        assert sb["remote_paced_sends"] == n
        assert sa["remote_over_bound"] > 0  # the window ran past the bound, and no further:
        assert seen[0] <= Consumer.mailbox_size + window  # type: ignore[operator]


async def test_a_node_going_down_releases_waiting_producers() -> None:
    async with pair(4) as (a, b):
        gate, got, seen = asyncio.Event(), [], [0]
        pid = await a.spawn(Consumer, gate, got, seen)
        producer = asyncio.ensure_future(asyncio.gather(*(b.send_wait(pid, i) for i in range(50))))
        await until(lambda: b.statistics().counters["remote_paced_waits"] > 0, "a full window")
        await a.stop()  # its node goes down: nobody will grant credit again
        async with asyncio.timeout(WAIT):
            await producer  # released: what they send now is at most once, as any send
        assert b.statistics().counters["remote_paced_sends"] == 50
