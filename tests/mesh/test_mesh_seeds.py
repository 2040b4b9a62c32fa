"""Seeds that are wrong say so: an unreachable seed is a warning naming its address and the
cause, repeated with backoff; a node whose name a live member already holds does not start.
Real nodes on loopback in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ember
from ember.mesh import SwimConfig
from ember.mesh._packet import (
    decode_holder,
    decode_whohas,
    encode_holder,
    encode_whohas,
)
from ember.transport._config import TransportConfig
from ember.transport._errors import ProtocolError

COOKIE = "mesh-cookie"
BOUND = 20.0


def fast_mesh(**overrides: Any) -> SwimConfig:
    return SwimConfig.local(
        **{
            "probe_interval": 0.2,
            "probe_timeout": 0.1,
            "gossip_interval": 0.05,
            "suspicion_mult": 2,
            "rejoin_interval": 0.2,
        }
        | overrides
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def address(node: ember.Node) -> str:
    assert node.address is not None
    return node.address


def meshed(name: str, join: list[str], **kw: Any) -> ember.Node:
    return ember.Node(
        name,
        listen="127.0.0.1:0",
        cookie=COOKIE,
        config=TransportConfig(heartbeat_interval=0.1, heartbeat_timeout=2.0),
        mesh=kw.pop("mesh", fast_mesh()),
        join=join,
        discovery="seeds",
        **kw,
    )


class Warnings(logging.Handler):
    """Collects the mesh's "unreachable" warnings; ``await wait(n)`` until there are ``n``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "unreachable" in record.getMessage():
            self.lines.append(record.getMessage())
            self.changed.set()

    async def wait(self, n: int) -> None:
        async with asyncio.timeout(BOUND):
            while len(self.lines) < n:
                self.changed.clear()
                await self.changed.wait()


@contextlib.contextmanager
def warnings() -> Iterator[Warnings]:
    handler = Warnings()
    logger = logging.getLogger("ember.mesh")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def until(condition: Callable[[], bool], *nodes: ember.Node) -> None:
    """Wait until ``condition()`` holds, re-checking after every member event of ``nodes``."""
    changed = asyncio.Event()
    removers = [n.on_member_event(lambda _: changed.set()) for n in nodes]
    try:
        async with asyncio.timeout(BOUND):
            while not condition():
                changed.clear()
                await changed.wait()
    finally:
        for remove in removers:
            remove()


def test_whohas_and_holder_bodies_round_trip_and_reject_garbage() -> None:
    assert decode_whohas(encode_whohas(b"n" * 8, "a")) == (b"n" * 8, "a")
    assert decode_holder(encode_holder(b"n", "b", "127.0.0.1:1")) == (b"n", "b", "127.0.0.1:1")
    assert decode_holder(encode_holder(b"n", "b", None)) == (b"n", "b", None)
    for body in (b"\xc1", encode_whohas(b"n", "")):
        with pytest.raises(ProtocolError):
            decode_whohas(body)
    with pytest.raises(ProtocolError):
        decode_holder(encode_whohas(b"n", "a"))


@pytest.mark.ember_realtime
async def test_an_unreachable_seed_is_a_warning_with_its_cause_repeated_with_backoff() -> None:
    seed = f"127.0.0.1:{closed_port()}"
    with warnings() as seen:
        node = meshed("lonely", [seed])
        await node.start()
        try:
            assert node.mesh is not None
            assert len(seen.lines) == 1  # at start, before the join
            await seen.wait(4)
            failures = node.mesh.statistics().seed_failures
            assert all(seed in w and "connection refused" in w for w in seen.lines)
            assert "knows no other member" in seen.lines[0]
            # warned at the 1st, 2nd, 4th and 8th unanswered round, not at every one
            assert "8 times in a row" in seen.lines[3] and 8 <= failures < 16
            assert [m.name for m in node.members()] == ["lonely"]
        finally:
            await node.stop()


@pytest.mark.ember_realtime
async def test_a_seed_that_never_answers_is_a_warning_too() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent, warnings() as seen:
        silent.bind(("127.0.0.1", 0))  # bound, never answers
        seed = f"127.0.0.1:{silent.getsockname()[1]}"
        node = meshed("lonely", [seed])
        await node.start()
        try:
            assert len(seen.lines) == 1 and seed in seen.lines[0]
            assert "no answer within" in seen.lines[0] and "cookie" in seen.lines[0]
        finally:
            await node.stop()


@pytest.mark.ember_realtime
async def test_a_node_under_a_name_the_cluster_already_has_does_not_start() -> None:
    a = meshed("a", [])
    await a.start()
    b = meshed("b", [f"a@{address(a)}"])
    await b.start()
    try:
        await until(lambda: {m.name for m in b.members()} == {"a", "b"}, b)
        twin = meshed("a", [address(b)])
        with pytest.raises(ember.NameTaken) as info:
            await twin.start()
        assert info.value.name == "a" and info.value.owner == f"a@{address(a)}"
        assert "a@127.0.0.1" in str(info.value)
        # nothing of the twin is left running, and the cluster did not notice it
        assert twin.transport is not None and twin.transport.address is not None
        assert twin.connected_nodes() == []
        assert b.mesh is not None and b.mesh.member("a").address == address(a)  # type: ignore[union-attr]
    finally:
        await b.stop()
        await a.stop()


@pytest.mark.ember_realtime
async def test_a_restarted_node_is_not_refused_for_a_stale_record_of_itself() -> None:
    """The cluster still lists a crashed node alive at its old address: a new incarnation on
    another port starts, since nobody answers at the old address (the check asks the holder
    the seed names, at that address, who it is)."""
    a = meshed("a", [])
    await a.start()
    b = meshed("b", [f"a@{address(a)}"])
    await b.start()
    try:
        await until(lambda: b.mesh is not None and b.mesh.member("a") is not None, b)
        assert a.mesh is not None and a.transport is not None and b.mesh is not None
        old = address(a)
        await a.mesh.stop()  # a crash: no leave
        await a.transport.close()
        await a.stop()
        assert b.mesh.member("a").address == old  # type: ignore[union-attr]
        again = meshed("a", [address(b)])
        await again.start()  # not NameTaken
        try:
            assert again.mesh is not None and again.mesh.statistics().seed_failures == 0
            assert address(again) != old
        finally:
            await again.stop()
    finally:
        await b.stop()


@pytest.mark.ember_realtime
async def test_a_dead_seed_among_live_ones_is_warned_about_without_saying_alone() -> None:
    a = meshed("a", [])
    await a.start()
    dead = f"127.0.0.1:{closed_port()}"
    try:
        with warnings() as seen:
            b = meshed("b", [address(a), dead])
            await b.start()
            try:
                await until(lambda: {m.name for m in b.members()} == {"a", "b"}, b)
                assert len(seen.lines) == 1 and dead in seen.lines[0]
                assert "knows no other member" not in seen.lines[0]
            finally:
                await b.stop()
    finally:
        await a.stop()
