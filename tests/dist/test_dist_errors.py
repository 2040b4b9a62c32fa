"""Errors across two nodes in one event loop tell the truth: a failure on node a reaches the
caller on node b promptly, as the same Ember type it would be locally (or as ``RemoteError``)."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass
from typing import Any

import pytest

import ember
from ember.transport import FrameTooLarge, UndecodableError
from ember.transport._config import TransportConfig

pytestmark = pytest.mark.ember_realtime

COOKIE = "test-cookie"
SMALL = 100_000
BOUND = 10.0  # generous; every failure below is expected within milliseconds


class Big(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("bytes", n):
                return b"x" * n
            case ("fail", "unknown"):
                self.defer_reply().fail(ember.UnknownName("ghost"))
            case ("fail", "oops"):
                self.defer_reply().fail(Oops("custom"))
            case ("value", v):
                return v
            case ("make", "secret"):
                return Secret("s")
        return msg


class FailsToStart(ember.Actor):
    async def started(self) -> None:
        raise ValueError("no database")

    async def receive(self, msg: Any) -> Any:
        return msg


class Idle(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


class BadInit(ember.Actor):
    def __init__(self, n: int) -> None:
        raise KeyError(n)


class Oops(Exception):
    pass


@dataclass(frozen=True)
class Secret:
    word: str


def config(max_frame_size: int | None = None) -> TransportConfig:
    if max_frame_size is None:
        return TransportConfig(heartbeat_interval=0.05, heartbeat_timeout=0.5)
    return TransportConfig(
        heartbeat_interval=0.05, heartbeat_timeout=0.5, max_frame_size=max_frame_size
    )


async def pair(
    a_frame: int | None = None, b_frame: int | None = None, **a_kwargs: Any
) -> tuple[ember.Node, ember.Node]:
    a = ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=config(a_frame), **a_kwargs)
    await a.start()
    b = ember.Node(
        "b",
        listen="127.0.0.1:0",
        cookie=COOKIE,
        config=config(b_frame),
        connect=[f"a@{address(a)}"],
    )
    await b.start()
    return a, b


def address(node: ember.Node) -> str:
    assert node.address is not None
    return node.address


async def stop(*nodes: ember.Node) -> None:
    for n in nodes:
        await n.stop()


# -- a reply too large for a frame --------------------------------------------------------------


@pytest.mark.parametrize("side", ["replier", "caller"])
async def test_a_reply_too_large_for_a_frame_fails_the_call_promptly(side: str, caplog) -> None:
    """On either side of the limit: the replier's own max_frame_size, or the caller's smaller
    one (learnt in the handshake). Also with timeout=None, which would otherwise wait forever."""
    a, b = (await pair(a_frame=SMALL)) if side == "replier" else (await pair(b_frame=SMALL))
    try:
        pid = await a.spawn(Big)
        caplog.set_level(logging.WARNING, logger="ember")
        async with asyncio.timeout(BOUND):
            with pytest.raises(FrameTooLarge) as info:
                await b.call(pid, ("bytes", 2 * SMALL), timeout=None)
            assert info.value.limit == SMALL
            assert info.value.size > 2 * SMALL
            assert "reply" in str(info.value)
            # the connection and the process are fine: a small reply still comes back
            assert await b.call(pid, ("bytes", 10)) == b"x" * 10
        assert b.connected_nodes() == ["a"]
        too_large = [r for r in caplog.records if "too large" in r.getMessage()]
        assert len(too_large) == 1 and too_large[0].name.startswith("ember")
        assert not [r for r in caplog.records if "callback" in r.getMessage()]
        assert a.statistics().counters["dist_replies_failed"] == 1
    finally:
        await stop(b, a)


async def test_a_request_too_large_for_the_peer_fails_at_the_caller() -> None:
    a, b = await pair(a_frame=SMALL)
    try:
        pid = await a.spawn(Big)
        async with asyncio.timeout(BOUND):
            with pytest.raises(FrameTooLarge) as info:
                await b.call(pid, ("value", b"y" * 2 * SMALL), timeout=None)
            assert info.value.limit == SMALL and info.value.node == "a"
            with pytest.raises(FrameTooLarge):
                b.send(pid, b"y" * 2 * SMALL)
            # cast never raises: what it cannot send is counted
            b.cast(pid, b"y" * 2 * SMALL)
            b.cast(pid, object())
            assert b.statistics().counters["cast_refused"] == 2
            assert await b.call(pid, ("value", 1)) == 1
    finally:
        await stop(b, a)


# -- a record type the receiver has not registered -----------------------------------------------


async def test_a_call_with_an_unregistered_record_type_fails_promptly() -> None:
    a, b = await pair()
    try:
        b.register_type(Secret)  # a has not registered it
        pid = await a.spawn(Big)
        async with asyncio.timeout(BOUND):
            with pytest.raises(UndecodableError) as info:
                await b.call(pid, ("value", Secret("x")), timeout=None)
            assert info.value.node == "a"
            assert "Secret" in str(info.value)
            b.send(pid, ("value", Secret("lost")))  # a plain send: counted by the receiver
            assert await b.call(pid, ("value", 2)) == 2
        assert a.dist is not None and a.dist.undecodable == 2
        assert a.statistics().counters["dist_undecodable"] == 2
    finally:
        await stop(b, a)


async def test_a_reply_with_a_record_type_the_caller_lacks_fails_promptly() -> None:
    a, b = await pair()
    try:
        a.register_type(Secret)  # b has not
        pid = await a.spawn(Big)
        async with asyncio.timeout(BOUND):
            with pytest.raises(UndecodableError) as info:
                await b.call(pid, ("make", "secret"), timeout=None)
            assert info.value.node == "b"
    finally:
        await stop(b, a)


# -- remote failures arrive with their type -----------------------------------------------------


async def test_a_remote_spawn_that_fails_in_started_raises_start_error() -> None:
    a, b = await pair()
    try:
        ref = "tests.dist.test_dist_errors:FailsToStart"
        async with asyncio.timeout(BOUND):
            with pytest.raises(ember.StartError) as local:
                await a.spawn(ref)
            with pytest.raises(ember.StartError) as remote:
                await b.spawn(ref, on="a")
        assert isinstance(local.value.reason, ValueError)
        assert remote.value.reason == ("exception", "builtins.ValueError", "no database")
        cause = remote.value.__cause__
        assert isinstance(cause, ember.RemoteError)
        assert cause.type_name == "builtins.ValueError" and cause.message == "no database"
        assert "raise ValueError" in cause.remote_traceback
        assert cause.node == "a"
    finally:
        await stop(b, a)


async def test_a_remote_spawn_under_a_taken_name_raises_name_taken() -> None:
    a, b = await pair()
    try:
        holder = await a.spawn(Idle, name="db")
        async with asyncio.timeout(BOUND):
            with pytest.raises(ember.NameTaken) as info:
                await b.spawn("tests.dist.test_dist_errors:Idle", name="db", on="a")
        assert info.value.name == "db" and info.value.owner == holder
    finally:
        await stop(b, a)


async def test_a_refused_remote_spawn_raises_usage_error() -> None:
    a, b = await pair(spawn_allow=("examples",))
    try:
        async with asyncio.timeout(BOUND):
            with pytest.raises(ember.UsageError, match="not allowed"):
                await b.spawn("tests.dist.test_dist_errors:Idle", on="a")
            with pytest.raises(ember.UsageError, match="cannot import"):
                await b.spawn("examples.no_such_module:Idle", on="a")
    finally:
        await stop(b, a)


async def test_an_arbitrary_remote_exception_is_a_remote_error() -> None:
    a, b = await pair()
    try:
        pid = await a.spawn(Big)
        async with asyncio.timeout(BOUND):
            with pytest.raises(ember.RemoteError) as info:
                await b.spawn("tests.dist.test_dist_errors:BadInit", 7, on="a")
            assert info.value.type_name == "builtins.KeyError"
            assert info.value.message == "7"
            assert "raise KeyError" in info.value.remote_traceback
            # a typed Ember error raised in a remote receive keeps its type
            with pytest.raises(ember.UnknownName) as unknown:
                await b.call(pid, ("fail", "unknown"))
            assert unknown.value.name == "ghost"
            with pytest.raises(ember.RemoteError) as custom:
                await b.call(pid, ("fail", "oops"))
            assert custom.value.type_name == "tests.dist.test_dist_errors.Oops"
            assert custom.value.message == "custom" and custom.value.node == "a"
    finally:
        await stop(b, a)


async def test_calls_to_a_missing_remote_process_raise_noproc() -> None:
    a, b = await pair()
    try:
        pid = await a.spawn(Idle)
        a.exit(pid, ember.KILL)
        await a.wait_exit(pid)
        async with asyncio.timeout(BOUND):
            with pytest.raises(ember.NoProc) as info:
                await b.call(pid, "hello")
        assert info.value.pid == pid and info.value.reason == "noproc"
        assert type(info.value) is ember.NoProc
    finally:
        await stop(b, a)


# -- no future left unobserved -------------------------------------------------------------------


async def test_failed_calls_and_spawns_leave_no_unretrieved_future() -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(str(ctx.get("message"))))
    try:
        a, b = await pair()
        pid = await a.spawn(Idle)
        async with asyncio.timeout(BOUND):
            with pytest.raises(ember.UnsendableError):
                await b.call(pid, object())
            with pytest.raises(ember.UnsendableError):
                await b.spawn("tests.dist.test_dist_errors:Idle", object(), on="a")
        await stop(b, a)
        gc.collect()
        await asyncio.sleep(0)
        assert not [m for m in seen if "never retrieved" in m], seen
    finally:
        loop.set_exception_handler(old)



class Thing:
    def __repr__(self) -> str:
        return "<a thing>"


class Linker(ember.Actor):
    trap_exits = True

    def __init__(self, inbox: asyncio.Queue[Any]) -> None:
        self.inbox = inbox

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("link", pid):
                ember.link(pid)
                return ember.monitor(pid)
            case _:
                self.inbox.put_nowait(msg)
        return None


class Quitter(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        if msg == "quit":
            self.stop(("odd", Thing()))
        return msg


async def test_an_exit_reason_that_cannot_travel_arrives_as_its_repr() -> None:
    a, b = await pair()
    try:
        target = await a.spawn(Quitter)
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        linker = await b.spawn(Linker, inbox)
        async with asyncio.timeout(BOUND):
            ref = await b.call(linker, ("link", target))
            assert await b.call(target, "sync") == "sync"
            b.send(target, "quit")
            got = {type(m).__name__: m for m in [await inbox.get(), await inbox.get()]}
        assert got["Exit"] == ember.Exit(target, "('odd', <a thing>)")
        assert got["Down"] == ember.Down(ref, target, "('odd', <a thing>)")
        assert a.statistics().counters["exited"] >= 1
    finally:
        await stop(b, a)
