"""Ember cluster demo: three node processes on loopback find each other by mDNS, this process
joins them the same way, actors run on each node, calls cross nodes, a Raft group spans the
three nodes, a node killed with SIGKILL is seen by the monitors and by the membership while the
Raft group keeps taking writes, a consistent name moves to another node after the kill and a pg
broadcast reaches a group spread over the nodes, then everything shuts down cleanly.

Run it with ``make demo`` (or ``python -m examples.cluster_demo`` from the repository root).
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import ember
from ember.cli._memberscmd import format_table
from ember.consensus import Cluster
from ember.registry import RegistryConfig, TierUnavailable
from ember.testing._localcluster import LocalCluster
from ember.transport._config import TransportConfig


class Watcher(ember.Actor):
    """Monitors pids on other nodes and reports each Down with the time it arrived."""

    def __init__(self, downs: asyncio.Queue[tuple[ember.Down, float]]) -> None:
        self.downs = downs

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("watch", pid):
                return ember.monitor(pid)
            case ember.Down() as down:
                self.downs.put_nowait((down, time.monotonic()))
        return None


async def until_members(node: ember.Node, want: dict[str, str]) -> None:
    """Wait until ``node`` sees each named member in the given status."""
    changed = asyncio.Event()
    remove = node.on_member_event(lambda _: changed.set())
    try:
        async with asyncio.timeout(30):
            while not want.items() <= {m.name: m.status.value for m in node.members()}.items():
                changed.clear()
                await changed.wait()
    finally:
        remove()


async def wait_for_group(node: ember.Node, group: str, size: int) -> None:
    async with asyncio.timeout(30):
        while len(node.pg.get_members(group)) != size:  # noqa: ASYNC110 - other nodes' news
            await asyncio.sleep(0.05)


async def broadcast_add(node: ember.Node, group: str, k: int, pids: list[ember.Pid]) -> None:
    """Broadcast ``("add", k)`` to ``group`` and show each counter once it has it (a broadcast
    travels apart from calls, so a call right after could overtake it)."""
    before = {pid: (await ember.call(pid, "get"))[1] for pid in pids}
    reached = node.pg.broadcast(group, ("add", k))
    async with asyncio.timeout(30):
        for pid in pids:
            while (got := await ember.call(pid, "get"))[1] != before[pid] + k:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            print(f"  call {pid} 'get' -> {got}")
    print(f"  (the broadcast was sent to the {reached} members this node sees)")


async def register_consistent(node: ember.Node, name: str, pid: ember.Pid) -> int:
    """Register ``name`` in the consistent tier, waiting for the system group to form."""
    async with asyncio.timeout(60):
        while True:
            try:
                token = await node.names.register(name, pid, tier="consistent")
                assert token is not None
                return token
            except TierUnavailable:
                await asyncio.sleep(0.2)


async def name_moves(
    node: ember.Node, name: str, token: int, heirs: list[ember.Pid], killed_at: float
) -> None:
    """The owner's node was killed: its consistent name is released through Raft (once the
    mesh declares the node failed), then taken by one of ``heirs``."""
    async with asyncio.timeout(60):
        while node.names.whereis(name) is not None:  # noqa: ASYNC110 - released by the group
            await asyncio.sleep(0.05)
    print(f"'{name}' was released through Raft {time.monotonic() - killed_at:.2f} s after the kill")
    new = await register_consistent(node, name, heirs[0])
    print(f"  and moved: '{name}' -> {node.names.whereis(name)} (token {new} > {token})")
    reply = await ember.call(ember.Name(name, tier="consistent"), "get")
    print(f"  ember.call(Name({name!r}), 'get') -> {reply}")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ember-demo-") as workdir:
        await demo(Path(workdir))


async def demo(workdir: Path) -> None:
    name = f"demo-{secrets.token_hex(3)}"
    async with LocalCluster(3, workdir=workdir, discovery="mdns", cluster=name) as cluster:
        print(f"started 3 node processes of cluster {name!r}; they found each other by mDNS:")
        for n in cluster.nodes.values():
            print(f"  {n.name} at {n.address} (os pid {n.process.pid})")
        config = TransportConfig(heartbeat_interval=0.5, heartbeat_timeout=2.0)
        async with ember.Node(
            "demo",
            listen="127.0.0.1:0",
            cookie=cluster.cookie,
            cluster=name,
            config=config,
            discovery="mdns",
            mesh="local",
            mdns_probe=False,
            meta={"role": "demo"},
            registry=RegistryConfig.local(member=False),  # the three nodes hold ember.names
        ) as me:
            await until_members(me, {n: "alive" for n in cluster.nodes})
            print(f"this process joined by mDNS as node {me.name}; members as it sees them:")
            print("  " + format_table(me.members()).replace("\n", "\n  "))
            counters = {
                name: await me.spawn("examples.cluster_actors:Counter", 10 * i, on=name)
                for i, name in enumerate(cluster.nodes, start=1)
            }
            for name, pid in counters.items():
                print(f"  spawned Counter {pid} on {name}")
            ember.send(counters["n1"], ("relay", counters["n2"], 5))  # n1 sends to n2
            for pid in counters.values():
                print(f"  call {pid} 'get' -> {await ember.call(pid, 'get')}")

            kv = await Cluster.start(nodes=list(cluster.nodes), name="demo-kv", node=me)
            leader = await kv.wait_for_leader(timeout=30)
            await kv.write({"key": "greeting", "value": "hello"})
            print(f"raft group 'demo-kv' on n1, n2, n3 (leader {leader}); wrote greeting=hello,")
            print(f"  a linearizable read gives {await kv.read('greeting')!r}")

            for pid in counters.values():
                await ember.call(pid, ("join", "counters"))
            await wait_for_group(me, "counters", 3)
            print("pg: the counters joined group 'counters' on their nodes; broadcasting +100:")
            await broadcast_add(me, "counters", 100, list(counters.values()))

            downs: asyncio.Queue[tuple[ember.Down, float]] = asyncio.Queue()
            watcher = await me.spawn(Watcher, downs)
            doomed = leader  # kill the Raft leader's node: monitors, membership and Raft all react
            victim = counters[doomed]
            ref = await ember.call(watcher, ("watch", victim))
            token = await register_consistent(me, "primary", victim)
            print(f"registered consistent name 'primary' -> {victim} (fencing token {token})")
            print(f"watching {victim} ({ref}); killing {doomed} (the raft leader) with SIGKILL...")
            killed_at = time.monotonic()
            cluster.kill(doomed)
            down, seen_at = await asyncio.wait_for(downs.get(), timeout=30)
            print(
                f"  Down({down.pid}, reason={down.reason!r}) after "
                f"{seen_at - killed_at:.2f} s (heartbeat timeout {config.heartbeat_timeout} s)"
            )
            try:
                await ember.call(victim, "get", timeout=2)
            except ember.NoProc as exc:
                print(f"  a call to it now raises {type(exc).__name__} ({exc.reason!r})")
            await until_members(me, {doomed: "failed"})
            print(f"the membership agrees: {doomed} is failed")
            print("  " + format_table(me.members()).replace("\n", "\n  "))
            print(f"still connected to {me.connected_nodes()}")
            await kv.write({"key": "after", "value": "the kill"}, timeout=30)
            leader = await kv.wait_for_leader(timeout=30)
            assert leader != doomed
            print(f"raft without {doomed}: new leader {leader}, wrote after='the kill' (2 of 3);")
            print(f"  greeting is still {await kv.read('greeting')!r}")
            heirs = [p for n, p in counters.items() if n != doomed]
            await name_moves(me, "primary", token, heirs, killed_at)
            await wait_for_group(me, "counters", 2)
            print(f"pg: the group lost {doomed}'s member; broadcasting +1000 to the others:")
            alive = [p for n, p in counters.items() if n != doomed]
            await broadcast_add(me, "counters", 1000, alive)
        codes = await cluster.stop()
        print("stopped the cluster: " + ", ".join(f"{n} exit {c}" for n, c in codes.items()))


if __name__ == "__main__":
    ember.run(main)
