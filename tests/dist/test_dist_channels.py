"""Channel handlers: frames of the other layers' channels reach their handler, or are counted."""

from __future__ import annotations

import asyncio

import pytest

import ember
from ember.transport._transport import parse_address
from ember import UsageError
from ember.transport import Channel
from tests.dist.test_dist_two_nodes import COOKIE, fast, pair

pytestmark = pytest.mark.ember_realtime


class Sink:
    """A channel handler that keeps what it gets; ``await sink.wait(n)`` until it has ``n``."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, peer: str, payload: bytes) -> None:
        self.got.append((peer, payload))
        self._changed.set()

    async def wait(self, n: int, bound: float = 10.0) -> None:
        async with asyncio.timeout(bound):
            while len(self.got) < n:
                self._changed.clear()
                await self._changed.wait()


async def test_handlers_get_their_channel_in_order_and_a_raising_one_is_counted() -> None:
    a, b = await pair()
    try:
        assert a.dist is not None and b.transport is not None
        handled = Sink()

        def on_membership(peer: str, payload: bytes) -> None:
            handled(peer, payload)
            if payload == b"5":
                raise RuntimeError("handler bug")

        # PG frames mark progress: they are written after the frames before them, and the
        # receiver handles a connection's frames in the order they arrive. (b's own pg and
        # registry services also talk to a: only the test's marker counts, and the channel
        # nobody listens to is ADMIN, which only operators' tools use.)
        marks = Sink()

        def sync(peer: str, payload: bytes) -> None:
            if payload == b"sync":
                marks(peer, payload)

        for channel in (Channel.MEMBERSHIP, Channel.PG, Channel.ADMIN):
            a.dist.remove_channel_handler(channel)  # this test owns them
        a.dist.add_channel_handler(Channel.MEMBERSHIP, on_membership)
        a.dist.add_channel_handler(Channel.PG, sync)
        for i in range(20):
            b.transport.send("a", Channel.MEMBERSHIP, b"%d" % i)
        b.transport.send("a", Channel.ADMIN, b"nobody listens")
        flush = b.transport._peers["a"].outbox.flush  # type: ignore[attr-defined]
        flush()  # one write before the marker's: a flush writes ADMIN after PG
        b.transport.send("a", Channel.PG, b"sync")
        await marks.wait(1)
        assert handled.got == [("b", b"%d" % i) for i in range(20)]
        assert a.dist.unhandled_frames == 1 and a.dist.callback_errors == 1
        assert a.connected_nodes() == ["b"]  # the connection survived the handler's error
        # Removed: later frames are counted and dropped.
        a.dist.remove_channel_handler(Channel.MEMBERSHIP)
        b.transport.send("a", Channel.MEMBERSHIP, b"late")
        b.transport.send("a", Channel.PG, b"sync")
        await marks.wait(2)
        assert a.dist.unhandled_frames == 2 and len(handled.got) == 20
    finally:
        await b.stop()
        await a.stop()


async def test_sending_on_a_channel_dials_a_known_peer_on_demand() -> None:
    a = ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=fast())
    await a.start()
    c = ember.Node("c", listen="127.0.0.1:0", cookie=COOKIE, config=fast())
    await c.start()
    try:
        assert a.dist is not None and c.transport is not None and a.address is not None
        sink = Sink()
        a.dist.remove_channel_handler(Channel.MEMBERSHIP)  # this test owns it
        a.dist.add_channel_handler(Channel.MEMBERSHIP, sink)
        c.transport.add_peer_address("a", *parse_address(a.address))
        assert c.connected_nodes() == []
        c.transport.send("a", Channel.MEMBERSHIP, b"hello")  # not connected: queued, then dialled
        await sink.wait(1)
        assert sink.got == [("c", b"hello")]
    finally:
        await c.stop()
        await a.stop()


async def test_user_and_control_and_a_second_handler_are_refused() -> None:
    a = ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=fast())
    await a.start()
    try:
        assert a.dist is not None
        for channel in (Channel.USER, Channel.CONTROL):
            with pytest.raises(UsageError):
                a.dist.add_channel_handler(channel, lambda peer, p: None)
        a.dist.remove_channel_handler(Channel.PG)
        a.dist.add_channel_handler(Channel.PG, lambda peer, p: None)
        with pytest.raises(UsageError):
            a.dist.add_channel_handler(Channel.PG, lambda peer, p: None)
    finally:
        await a.stop()


async def test_node_listeners_hear_connections_open_and_end() -> None:
    a, b = await pair()
    seen: list[tuple[str, bool]] = []
    try:
        assert a.dist is not None and b.dist is not None
        remove = a.dist.add_node_listener(lambda peer, up: seen.append((peer, up)))
        a.dist.add_node_listener(lambda peer, up: 1 / 0)  # a raising one is counted, not fatal
        b_transport = b.transport
        assert b_transport is not None
        down = asyncio.Event()
        a.dist.add_node_listener(lambda peer, up: None if up else down.set())
        await b_transport.close()
        async with asyncio.timeout(10):
            await down.wait()
        assert seen == [("b", False)]
        assert a.dist.callback_errors >= 1
        remove()
        remove()  # idempotent
    finally:
        await b.stop()
        await a.stop()
