"""Distribution between two nodes in one event loop over loopback TCP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import ember
from ember.transport._config import TransportConfig

pytestmark = pytest.mark.ember_realtime

COOKIE = "test-cookie"


class Echo(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("crash", why):
                raise RuntimeError(why)
            case ("forward", pid, m):
                ember.send(pid, m)
                return None
        return msg


class Collector(ember.Actor):
    """Keeps what it receives; ``("watch", pid)`` monitors, ``("link", pid)`` links."""

    trap_exits = True

    def __init__(self, inbox: asyncio.Queue[Any]) -> None:
        self.inbox = inbox

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("watch", pid):
                return ember.monitor(pid)
            case ("link", pid):
                ember.link(pid)
                return None
            case _:
                self.inbox.put_nowait(msg)
        return None


def fast() -> TransportConfig:
    return TransportConfig(heartbeat_interval=0.05, heartbeat_timeout=0.5)


async def pair() -> tuple[ember.Node, ember.Node]:
    a = ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=fast())
    await a.start()
    b = ember.Node(
        "b", listen="127.0.0.1:0", cookie=COOKIE, config=fast(), connect=[f"a@{a.address}"]
    )
    await b.start()
    return a, b


async def test_send_and_call_across_nodes() -> None:
    a, b = await pair()
    try:
        assert b.connected_nodes() == ["a"]
        pid = await a.spawn(Echo)
        async with asyncio.timeout(10):
            assert await b.call(pid, ("hello", 1)) == ("hello", 1)
            inbox: asyncio.Queue[Any] = asyncio.Queue()
            col = await b.spawn(Collector, inbox)
            # a remote process sends to a remote pid: ordering per pair is kept
            for i in range(100):
                b.send(pid, ("forward", col, i))
            got = [await inbox.get() for _ in range(100)]
            assert got == list(range(100))
    finally:
        await b.stop()
        await a.stop()


async def test_remote_call_to_a_crashing_process_raises_noproc() -> None:
    a, b = await pair()
    try:
        pid = await a.spawn(Echo)
        async with asyncio.timeout(10):
            with pytest.raises(ember.NoProc) as info:
                await b.call(pid, ("crash", "boom"))
            assert info.value.reason[0] == "exception"
            with pytest.raises(ember.NoProc):
                await b.call(pid, "again")
    finally:
        await b.stop()
        await a.stop()


async def test_remote_monitor_and_link_see_exits() -> None:
    a, b = await pair()
    try:
        target = await a.spawn(Echo)
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        col = await b.spawn(Collector, inbox)
        async with asyncio.timeout(10):
            ref = await b.call(col, ("watch", target))
            await b.call(col, ("link", target))
            # the link and monitor travelled on the b->a connection: a call behind them on the
            # same connection returns only after a has applied them
            assert await b.call(target, "sync") == "sync"
            a.exit(target, "bye")
            got = {type(m).__name__: m for m in [await inbox.get(), await inbox.get()]}
            assert got["Down"] == ember.Down(ref, target, "bye")
            assert got["Exit"] == ember.Exit(target, "bye")
    finally:
        await b.stop()
        await a.stop()


async def test_node_down_fires_noconnection() -> None:
    a, b = await pair()
    try:
        target = await a.spawn(Echo)
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        col = await b.spawn(Collector, inbox)
        async with asyncio.timeout(10):
            ref = await b.call(col, ("watch", target))
            await b.call(col, ("link", target))
            assert await b.call(target, "sync") == "sync"
            await a.stop()
            got = {type(m).__name__: m for m in [await inbox.get(), await inbox.get()]}
            # a stopping node's processes exit with shutdown, or the link is lost first
            assert got["Down"].ref == ref and got["Down"].reason in ("shutdown", "noconnection")
            assert got["Exit"].pid == target
    finally:
        await b.stop()
        await a.stop()


async def test_monitor_of_unreachable_node_is_immediate_noconnection() -> None:
    b = ember.Node("b", listen="127.0.0.1:0", cookie=COOKIE, config=fast())
    await b.start()
    try:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        col = await b.spawn(Collector, inbox)
        ghost = ember.Pid("nowhere", 1, 1)
        async with asyncio.timeout(10):
            ref = await b.call(col, ("watch", ghost))
            assert await inbox.get() == ember.Down(ref, ghost, "noconnection")
    finally:
        await b.stop()


async def test_remote_spawn_by_reference() -> None:
    a, b = await pair()
    try:
        async with asyncio.timeout(10):
            pid = await b.spawn("tests.dist.test_dist_two_nodes:Echo", on="a")
            assert pid.node == "a"
            assert await b.call(pid, "hi") == "hi"
            with pytest.raises(ember.EmberError):
                await b.spawn("no.such.module:Thing", on="a")
    finally:
        await b.stop()
        await a.stop()


async def test_wrong_cookie_is_refused() -> None:
    a = ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=fast())
    await a.start()
    try:
        b = ember.Node("b", listen="127.0.0.1:0", cookie="wrong", config=fast())
        await b.start()
        try:
            with pytest.raises((ember.EmberError, TimeoutError)):
                async with asyncio.timeout(3):
                    await b.connect_node(f"a@{a.address}")
            assert a.connected_nodes() == []
        finally:
            await b.stop()
    finally:
        await a.stop()


class NodeWatcher(ember.Actor):
    def __init__(self, inbox: asyncio.Queue[Any]) -> None:
        self.inbox = inbox

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("monitor_node", name):
                ember.monitor_node(name)
            case "subscribe":
                ember.subscribe_nodes()
            case _:
                self.inbox.put_nowait(msg)
        return None


async def test_monitor_node_and_node_events() -> None:
    a, b = await pair()
    try:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        w = await b.spawn(NodeWatcher, inbox)
        async with asyncio.timeout(10):
            await b.call(w, ("monitor_node", "nowhere"))
            assert await inbox.get() == ember.NodeEvent("nowhere", False, "noconnection")
            await b.call(w, ("monitor_node", "a"))
            await b.call(w, "subscribe")
            await a.stop()
            assert await inbox.get() == ember.NodeEvent("a", False, "noconnection")
            assert await inbox.get() == ember.NodeEvent("a", False, "noconnection")
            assert inbox.empty()
    finally:
        await b.stop()
        await a.stop()


@dataclass(frozen=True)
class Order:
    item: str
    qty: int


async def test_user_dataclasses_cross_nodes_once_registered() -> None:
    a, b = await pair()
    try:
        for n in (a, b):
            n.register_type(Order)
        pid = await a.spawn(Echo)
        async with asyncio.timeout(10):
            assert await b.call(pid, Order("tea", 2)) == Order("tea", 2)
            with pytest.raises(ember.UnsendableError):
                b.send(pid, object())
            await b.send_wait(pid, ("fine", 1))
    finally:
        await b.stop()
        await a.stop()


async def test_spawn_allow_list_refuses_other_modules() -> None:
    a = ember.Node(
        "a", listen="127.0.0.1:0", cookie=COOKIE, config=fast(), spawn_allow=("examples.",)
    )
    await a.start()
    b = ember.Node(
        "b", listen="127.0.0.1:0", cookie=COOKIE, config=fast(), connect=[f"a@{a.address}"]
    )
    await b.start()
    try:
        async with asyncio.timeout(10):
            with pytest.raises(ember.EmberError, match="not allowed"):
                await b.spawn("tests.dist.test_dist_two_nodes:Echo", on="a")
            pid = await b.spawn("examples.cluster_actors:Counter", 7, on="a")
            assert await b.call(pid, "get") == ("a", 7)
            assert a.processes() and all(p.node == "a" for p in a.processes())
    finally:
        await b.stop()
        await a.stop()
