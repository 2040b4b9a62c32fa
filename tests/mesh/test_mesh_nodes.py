"""The membership shell between real nodes in one event loop: UDP and TCP on loopback.

Timings use a fast profile (probes every 200 ms) and every wait is on a condition with a
generous bound, so the tests are quick and not flaky on a loaded machine.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import ember
from ember.mesh import MemberFailed, MemberJoined, MemberLeft, MemberStatus, SwimConfig
from ember.mesh._packet import Kind, mesh_key, seal
from ember.transport._config import TransportConfig
from ember.transport._transport import parse_address

pytestmark = pytest.mark.ember_realtime

COOKIE = "mesh-cookie"
BOUND = 20.0


def fast_mesh() -> SwimConfig:
    return SwimConfig.local(
        probe_interval=0.2,
        probe_timeout=0.1,
        gossip_interval=0.05,
        suspicion_mult=2,
        rejoin_interval=0.5,
        leave_timeout=1.0,
    )


def fast_transport() -> TransportConfig:
    return TransportConfig(heartbeat_interval=0.1, heartbeat_timeout=2.0)


def spec(node: ember.Node, *, named: bool = True) -> str:
    assert node.address is not None
    return f"{node.name}@{node.address}" if named else node.address


async def start(name: str, join: list[str] | None = None, **kw: Any) -> ember.Node:
    node = ember.Node(
        name,
        listen="127.0.0.1:0",
        cookie=kw.pop("cookie", COOKIE),
        config=fast_transport(),
        mesh=fast_mesh(),
        join=join or [],
        discovery="seeds",
        **kw,
    )
    await node.start()
    return node


async def until(
    condition: Callable[[], bool],
    what: str,
    *nodes: ember.Node,
    timeout: float = BOUND,  # noqa: ASYNC109
) -> None:
    """Wait until ``condition()`` holds, re-checking after every member event of ``nodes``."""
    changed = asyncio.Event()
    removers = [n.on_member_event(lambda _: changed.set()) for n in nodes if n.mesh is not None]
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None
    finally:
        for remove in removers:
            remove()


async def poll(condition: Callable[[], bool], what: str, timeout: float = BOUND) -> None:  # noqa: ASYNC109
    """Wait for a counter condition no event announces (checked every 10 ms)."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():  # noqa: ASYNC110 - counters announce nothing
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None


def statuses(node: ember.Node) -> dict[str, MemberStatus]:
    return {m.name: m.status for m in node.members()}


def sees_alive(node: ember.Node, names: set[str]) -> bool:
    return {n for n, s in statuses(node).items() if s is MemberStatus.ALIVE} >= names


@asynccontextmanager
async def cluster(n: int, *, named: bool = True) -> AsyncIterator[list[ember.Node]]:
    nodes = [await start("m1")]
    try:
        for i in range(2, n + 1):
            nodes.append(await start(f"m{i}", [spec(nodes[0], named=named)]))
        names = {x.name for x in nodes}
        await until(lambda: all(sees_alive(x, names) for x in nodes), "convergence", *nodes)
        yield nodes
    finally:
        for x in nodes:
            await x.stop()


class Inbox(ember.Actor):
    def __init__(self, box: asyncio.Queue[Any]) -> None:
        self.box = box

    async def started(self) -> None:
        node = ember.current()
        assert isinstance(node, ember.Node)
        node.subscribe_members()

    async def receive(self, msg: Any) -> Any:
        if isinstance(msg, tuple) and msg[0] == "watch":
            return ember.monitor(msg[1])
        self.box.put_nowait(msg)
        return None


class Sleeper(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


async def test_three_nodes_join_through_a_named_seed_and_converge() -> None:
    async with cluster(3) as nodes:
        for node in nodes:
            members = node.members()
            assert [m.name for m in members] == ["m1", "m2", "m3"]
            assert {m.address for m in members} == {spec(x, named=False) for x in nodes}
        mesh = nodes[0].mesh
        assert mesh is not None
        # Probes and gossip flow over UDP once the members know each other.
        await poll(
            lambda: mesh.statistics().udp_received > 0 and mesh.statistics().swim.probes > 0,
            "probes over udp",
        )
        stats = mesh.statistics()
        assert stats.auth_failures == 0 and stats.malformed == 0
        assert stats.udp_sent > 0


async def test_a_seed_known_only_by_address_is_asked_its_name() -> None:
    async with cluster(2, named=False) as nodes:
        mesh = nodes[1].mesh
        assert mesh is not None
        # the seed check before the join asks it who holds our name; its answer names it
        assert mesh.statistics().names_learnt >= 1
        assert mesh.statistics().seed_failures == 0


async def test_dns_seeds_introduce_a_node_known_only_by_address() -> None:
    from meshkit import FakeResolver

    from ember.mesh import DnsSeeds

    seed = await start("seed")
    assert seed.address is not None
    host, port = parse_address(seed.address)
    resolver = FakeResolver({("seeds.test", "A"): [host], ("seeds.test", "AAAA"): []})
    joiner = ember.Node(
        "joiner",
        listen="127.0.0.1:0",
        cookie=COOKIE,
        config=fast_transport(),
        mesh=fast_mesh(),
        discovery=[DnsSeeds("seeds.test", port, resolver=resolver)],
    )
    await joiner.start()
    try:
        await until(lambda: sees_alive(seed, {"seed", "joiner"}), "dns join", seed, joiner)
        assert ("seeds.test", "A") in resolver.queries
    finally:
        await joiner.stop()
        await seed.stop()


async def test_metadata_is_gossiped_and_updates_reach_everyone() -> None:
    a = await start("a", meta={"role": "db"})
    b = await start("b", [spec(a)])
    try:
        # The registry publishes its own entry beside the user's (ember.names: "0", no member).
        await until(
            lambda: (
                (m := b.mesh and b.mesh.member("a")) is not None
                and m.meta == {"role": "db", "ember.names": "0"}
            ),
            "meta",
            b,
        )
        assert a.mesh is not None
        a.mesh.update_meta({"role": "web"})  # replaces the user's part only
        await until(
            lambda: (
                (m := b.mesh and b.mesh.member("a")) is not None
                and m.meta == {"role": "web", "ember.names": "0"}
            ),
            "update",
            b,
        )
        a.mesh.set_meta_entry("ember.names", None)
        await until(
            lambda: (m := b.mesh and b.mesh.member("a")) is not None and m.meta == {"role": "web"},
            "entry removed",
            b,
        )
    finally:
        await b.stop()
        await a.stop()


async def test_a_silent_member_is_declared_failed_and_its_monitors_fire_noconnection() -> None:
    async with cluster(3) as nodes:
        a, _, c = nodes
        box: asyncio.Queue[Any] = asyncio.Queue()
        watcher = await a.spawn(Inbox, box)
        target = await c.spawn(Sleeper)
        ref = await ember.call(watcher, ("watch", target), timeout=5)
        assert c.transport is not None and a.transport is not None
        assert await ember.call(target, "hi", timeout=5) == "hi"  # a is connected to c now
        assert c.mesh is not None
        # c stops answering membership traffic but its TCP connections stay up: only the mesh
        # can tell a that c is gone, and the transport must follow it.
        await c.mesh.stop()
        await until(lambda: statuses(a).get("m3") is MemberStatus.FAILED, "m3 failed on m1", a)
        seen: list[Any] = []
        await _next(box, lambda m: seen.append(m) or any(isinstance(x, ember.Down) for x in seen))
        (down,) = [m for m in seen if isinstance(m, ember.Down)]
        assert down.ref == ref and down.reason == "noconnection"
        failed = [m for m in seen if isinstance(m, MemberFailed)]
        assert [m.member.name for m in failed] == ["m3"]


async def test_a_graceful_stop_is_seen_as_left_not_failed() -> None:
    async with cluster(3) as nodes:
        a = nodes[0]
        box: asyncio.Queue[Any] = asyncio.Queue()
        await a.spawn(Inbox, box)
        await nodes[2].stop()
        left = await _next(box, lambda m: isinstance(m, MemberLeft | MemberFailed))
        assert isinstance(left, MemberLeft) and left.member.name == "m3"


async def test_a_restarted_node_rejoins_under_its_name_with_a_higher_incarnation() -> None:
    async with cluster(2) as nodes:
        a, b = nodes
        assert b.mesh is not None
        before = b.mesh.incarnation
        box: asyncio.Queue[Any] = asyncio.Queue()
        await a.spawn(Inbox, box)
        await b.mesh.stop()  # a crash, as far as the mesh can tell
        assert b.transport is not None
        await b.transport.close()
        await until(lambda: statuses(a).get("m2") is MemberStatus.FAILED, "m2 failed", a)
        again = await start("m2", [spec(a)])
        try:
            joined = await _next(
                box, lambda m: isinstance(m, MemberJoined) and m.member.name == "m2"
            )
            assert joined.member.incarnation > before
            await until(
                lambda: sees_alive(a, {"m1", "m2"}) and sees_alive(again, {"m1", "m2"}),
                "rejoin",
                a,
                again,
            )
        finally:
            await again.stop()
            await b.stop()


async def test_a_lonely_node_keeps_asking_its_seeds_until_one_answers() -> None:
    # Reserve a port for the seed, start the joiner first: its join fails, the rejoin loop
    # retries, and the seed started later is found without any new instruction.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    joiner = await start("late", [f"seed@127.0.0.1:{port}"])
    seed = ember.Node(
        "seed",
        listen=f"127.0.0.1:{port}",
        cookie=COOKIE,
        config=fast_transport(),
        mesh=fast_mesh(),
    )
    await seed.start()
    try:
        await until(
            lambda: sees_alive(joiner, {"seed", "late"}) and sees_alive(seed, {"seed", "late"}),
            "late join",
            joiner,
            seed,
        )
    finally:
        await seed.stop()
        await joiner.stop()


async def test_a_seed_replaced_at_the_same_address_by_another_name_is_joined() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def seed_named(name: str) -> ember.Node:
        node = ember.Node(
            name,
            listen=f"127.0.0.1:{port}",
            cookie=COOKIE,
            config=fast_transport(),
            mesh=fast_mesh(),
        )
        await node.start()
        return node

    old = await seed_named("old-seed")
    joiner = await start("joiner", [f"127.0.0.1:{port}"])  # known by address only
    new: ember.Node | None = None
    try:
        await until(lambda: sees_alive(joiner, {"old-seed"}), "joined the old seed", joiner)
        await old.stop()
        await until(
            lambda: statuses(joiner).get("old-seed") is MemberStatus.LEFT, "old seed left", joiner
        )
        new = await seed_named("new-seed")
        await until(lambda: sees_alive(joiner, {"new-seed"}), "joined the new seed", joiner, new)
    finally:
        if new is not None:
            await new.stop()
        await joiner.stop()


async def test_datagrams_of_another_cluster_or_garbage_are_counted_and_ignored() -> None:
    async with cluster(2) as nodes:
        a = nodes[0]
        assert a.mesh is not None and a.address is not None
        target = parse_address(a.address)
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        try:
            udp.sendto(seal(mesh_key("other-cookie", "ember"), Kind.SWIM, b"\x90"), target)
            udp.sendto(seal(mesh_key(COOKIE, "other-cluster"), Kind.SWIM, b"\x90"), target)
            udp.sendto(b"\x01\x00short", target)
            udp.sendto(seal(mesh_key(COOKIE, "ember"), Kind.SWIM, b"\xc1not msgpack"), target)
            await poll(
                lambda: (
                    a.mesh is not None
                    and a.mesh.statistics().auth_failures >= 2
                    and a.mesh.statistics().malformed >= 2
                ),
                "counted",
            )
        finally:
            udp.close()
        assert sees_alive(a, {"m1", "m2"})


async def test_fetch_members_asks_another_node_over_the_transport() -> None:
    from ember.mesh._shell import fetch_members

    async with cluster(2) as nodes:
        client = ember.Node(
            "client", cookie=COOKIE, connect=[spec(nodes[0])], config=fast_transport()
        )
        await client.start()
        try:
            assert client.transport is not None and client.dist is not None
            members = await fetch_members(client.transport, client.dist, "m1", 5.0)
            assert [m.name for m in members] == ["m1", "m2"]
            assert all(m.status is MemberStatus.ALIVE for m in members)
        finally:
            await client.stop()


async def _next(
    box: asyncio.Queue[Any],
    match: Callable[[Any], bool],
    timeout: float = BOUND,  # noqa: ASYNC109
) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            msg = await box.get()
            if match(msg):
                return msg
